"""Audio data: where the `(mixture, vocals)` frames come from.

    example    the embedded real 6-second MUSDB18 excerpt (the default data)
    tracks     MUSDB18 / MUSDB18-HQ tracks listed through musdb and checked
    readers    reading excerpts of WAV/FLAC files inside tf.data
               (tensorflow-io or soundfile)
    pipeline   streaming magnitude frames with tf.data (`musdb_frames`)
    prepare    the TFRecord frame cache of `keras-dae prepare`
    synthetic  synthetic MUSDB18-layout tracks, a test fixture
    demo       demo tracks for `keras-dae reproduce`: the excerpt mixed into
               synthetic tracks
"""

from keras_dae.data.example import EXAMPLE_TRACK, SOURCES, Track, import_stempeg, load_example

__all__ = ["EXAMPLE_TRACK", "SOURCES", "Track", "import_stempeg", "load_example"]
