"""Audio data: the embedded MUSDB18 example (later: musdb, tf.data pipelines)."""

from keras_dae.data.example import EXAMPLE_TRACK, Track, load_example

__all__ = ["EXAMPLE_TRACK", "Track", "load_example"]
