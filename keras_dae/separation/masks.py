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
import math

import numpy as np
import tensorflow as tf

from keras_dae import spectral as front_end

MASKS = ("subtract", "soft")
EPSILON = 1e-12  # keeps ratio masks finite where both magnitudes are 0
TINY = 1e-30  # the floor of |X| in the subtract mask's gain
IRM_CHUNK_FRAMES = 512  # about 4.5 s at the default hop; the ideal ratio mask's memory is bounded by it


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


def ideal_ratio_mask(mixture, vocals, accompaniment, spectral, *, chunk_frames=IRM_CHUNK_FRAMES):
    """Vocals and accompaniment by the ratio mask of the true sources over all bins.

    Computed `chunk_frames` STFT frames at a time (as `separation.core`
    chunks), so that its memory does not grow with the recording's length:
    each chunk takes its frames plus `ceil(window / hop)` frames of margin
    before them and keeps the samples that only those frames reach. The
    samples are bitwise those of the whole recording at once
    (`chunk_frames=None`): every frame is transformed alone, and the
    overlap-add sums the same frames in the same order for every kept sample
    (tested).

    Args:
        mixture, vocals, accompaniment: float arrays `(samples, channels)`.
        spectral: `SpectralConfig`; its STFT is used with every bin.
        chunk_frames: int or None, default `IRM_CHUNK_FRAMES`: frames
            computed at once; None: all of them.

    Returns:
        dict `"vocals"`, `"accompaniment"`: float32 arrays shaped like `mixture`.
    """
    full_band = dataclasses.replace(spectral, num_bins=spectral.max_bins)
    hop, window, pad_left = full_band.hop_length, full_band.window_length, full_band.pad_left
    num_samples, channels = mixture.shape
    total_frames = full_band.num_frames(num_samples)
    padded_length = (total_frames - 1) * hop + window
    chunk_frames = total_frames if chunk_frames is None else chunk_frames
    # A sample is reached by the frames that start up to `window` samples before it, never by a later one.
    margin = math.ceil(window / hop)
    estimate = np.zeros((num_samples, channels), np.float32)
    for first in range(0, total_frames, chunk_frames):
        last = min(first + chunk_frames, total_frames)
        # Padded samples [start, stop) hold frames [max(first - margin, 0), last).
        start, stop = max(first - margin, 0) * hop, (last - 1) * hop + window
        mask = ratio_mask(*(np.abs(_chunk_stft(audio, start, stop, full_band)) for audio in (vocals, accompaniment)))
        spectrum = mask.astype(np.complex64) * _chunk_stft(mixture, start, stop, full_band)
        restored = front_end.overlap_add(spectrum, full_band).numpy()
        # The samples of padded [first * hop, last * hop) (to the end for the last chunk) within the input's.
        keep_start = max(first * hop, pad_left)
        keep_stop = min(padded_length if last == total_frames else last * hop, pad_left + num_samples)
        if keep_stop > keep_start:
            kept = restored[:, keep_start - start : keep_stop - start]
            estimate[keep_start - pad_left : keep_stop - pad_left] = kept.T
    return {"vocals": estimate, "accompaniment": mixture - estimate}


def _chunk_stft(audio, start, stop, spectral):
    """`keras_dae.spectral.stft_frames` of the samples `[start, stop)` of `audio` `(samples, channels)`
    padded as `keras_dae.spectral.stft` pads it: the frames that fit in them, `(channels, frames, num_bins)`."""
    pad_left = spectral.pad_left
    piece = np.zeros((audio.shape[1], stop - start), np.float32)
    source_start, source_stop = max(start - pad_left, 0), min(stop - pad_left, len(audio))
    if source_stop > source_start:
        offset = source_start + pad_left - start
        piece[:, offset : offset + source_stop - source_start] = audio[source_start:source_stop].T
    return front_end.stft_frames(piece, spectral)
