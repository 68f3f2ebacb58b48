"""The masks that turn a magnitude estimate into stems: one definition each.

Separation (`core`), evaluation's ceiling (`ideal_ratio_mask`) and the
exported serving graph (`keras_dae.export`) all use these.

    subtract   vocals = V X / |X|: the estimate V with the mixture's phase;
               the gain `V / |X|` is taken where |X| > 0 (`TINY` floor), so a
               mixture bin that is exactly 0 gets no vocals
    soft       vocals = V^2 / (V^2 + A^2) X with A = max(|X| - V, 0)
    ideal      vocals = |S_v| / (|S_v| + |S_a|) X from the true sources (the
               ideal ratio mask, an upper reference)

In every case the accompaniment is the mixture minus the vocals, so the two
add up to the input.
"""

import dataclasses

import numpy as np
import tensorflow as tf

from keras_dae import spectral as front_end

MASKS = ("subtract", "soft")
EPSILON = 1e-12  # keeps ratio masks finite where both magnitudes are 0
TINY = 1e-30  # the floor of |X| in the subtract mask's gain


def subtract_gain(estimate, magnitude):
    """The subtract mask's real gain `V / |X|` (TensorFlow ops: used inside traced graphs)."""
    return estimate / tf.maximum(magnitude, TINY)


def apply_gain(spectrum, gain):
    """`gain * spectrum` for a real gain and a complex spectrum, in TensorFlow ops."""
    return tf.complex(tf.math.real(spectrum) * gain, tf.math.imag(spectrum) * gain)


def soft_mask(estimate, magnitude):
    """The soft mask `V^2 / (V^2 + A^2)`, `A = max(|X| - V, 0)`, NumPy arrays of one shape."""
    power = estimate * estimate
    accompaniment = np.maximum(magnitude - estimate, 0)
    return power / (power + accompaniment * accompaniment + EPSILON)


def ratio_mask(voice, rest):
    """The ratio mask `|V| / (|V| + |A|)` of two magnitudes (NumPy)."""
    return voice / (voice + rest + EPSILON)


def ideal_ratio_mask(mixture, vocals, accompaniment, spectral):
    """Vocals and accompaniment by the ratio mask of the true sources over all bins.

    Args:
        mixture, vocals, accompaniment: float arrays `(samples, channels)`.
        spectral: `SpectralConfig`; its STFT is used with every bin.

    Returns:
        dict `"vocals"`, `"accompaniment"`: float32 arrays shaped like `mixture`.
    """
    full_band = dataclasses.replace(spectral, num_bins=spectral.max_bins)

    def spectrum(audio):
        return front_end.stft(np.ascontiguousarray(audio.T), full_band)

    mask = ratio_mask(np.abs(spectrum(vocals)), np.abs(spectrum(accompaniment)))
    estimate = front_end.istft(mask.astype(np.complex64) * spectrum(mixture), len(mixture), full_band).numpy().T
    return {"vocals": estimate, "accompaniment": mixture - estimate}
