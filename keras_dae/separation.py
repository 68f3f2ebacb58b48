"""Separating a recording of any length with a trained model, chunk by chunk.

Every channel goes through the mono model frame by frame (the models have no
context). The vocals take the mixture's phase; bins above the model's
`num_bins` get no vocals. The accompaniment is the mixture minus the vocals
(time domain), so the two always add up to the input.

    mask="subtract"  vocals = istft(V * X / |X|), V the model's magnitude
    mask="soft"      vocals = istft(V^2 / (V^2 + A^2) * X) with the
                     accompaniment magnitude A = max(|X| - V, 0): a power
                     ratio mask from both estimates

Long inputs are processed in chunks of `chunk_frames` STFT frames. Output
sample `n` depends only on the frames whose windows cover it, so each chunk
computes its frames plus `ceil(window / hop)` frames of margin on each side
and keeps the samples that only its own frames (and the margins) reach: the
result equals whole-file processing to float rounding, at memory bounded by
the chunk size.
"""

import math

import numpy as np
import tensorflow as tf

from keras_dae import spectral

MASKS = ("subtract", "soft")
CHUNK_FRAMES = 2048  # about 18 s at the default hop
EPSILON = 1e-12


def _vocals_spectrum(model, spectrum, mask):
    """Vocals STFT `(channels, frames, bins)` from the mixture STFT (kept bins only)."""
    magnitude = tf.abs(spectrum)
    flat = tf.reshape(magnitude, [-1, magnitude.shape[-1]])
    estimate = tf.reshape(model(flat, training=False), tf.shape(magnitude))
    if mask == "soft":
        accompaniment = tf.nn.relu(magnitude - estimate)
        ratio = estimate**2 / (estimate**2 + accompaniment**2 + EPSILON)
        return tf.cast(ratio, tf.complex64) * spectrum
    return spectral.apply_phase(estimate, spectrum)


def separate_waveform(model, waveform, config, *, mask="subtract", chunk_frames=CHUNK_FRAMES, progress=None):
    """Vocals and accompaniment of `waveform` at the model's rate.

    Args:
        model: a keras-dae model with `config.num_bins` bins.
        waveform: float array `(samples, channels)` at `config.sample_rate`.
        config: the model's `SpectralConfig`.
        mask: `"subtract"` or `"soft"` (see the module docstring).
        chunk_frames: int, STFT frames computed at once (memory bound).
        progress: callable or None, called with the samples done so far.

    Returns:
        `(vocals, accompaniment)`, float32 arrays shaped like `waveform`.
    """
    waveform = np.asarray(waveform, np.float32)
    if waveform.ndim != 2 or waveform.shape[0] == 0:
        raise ValueError(f"waveform must be (samples, channels) with samples > 0. Received shape {waveform.shape}")

    def read(start, stop):
        return waveform[start:stop]

    vocals = np.zeros_like(waveform)
    done = 0
    for block in separate_blocks(model, read, waveform.shape[0], waveform.shape[1], config, mask=mask,
                                 chunk_frames=chunk_frames):
        vocals[done : done + len(block)] = block
        done += len(block)
        if progress is not None:
            progress(done)
    return vocals, waveform - vocals


def separate_blocks(model, read, num_samples, channels, config, *, mask="subtract", chunk_frames=CHUNK_FRAMES):
    """Yields the vocals of a recording block by block, in order, `(block samples, channels)` float32.

    `read(start, stop)` returns the input samples `[start, stop)` as
    `(stop - start, channels)` (a file reader, or a slice of an array), so
    that memory stays bounded by `chunk_frames` whatever the length. The
    blocks together are `num_samples` long.
    """
    if mask not in MASKS:
        raise ValueError(f"Unknown mask {mask!r}; valid ones are {', '.join(MASKS)}.")
    if isinstance(chunk_frames, bool) or not isinstance(chunk_frames, int) or chunk_frames <= 0:
        raise ValueError(f"chunk_frames must be a positive integer. Received: chunk_frames={chunk_frames!r}")
    hop, window, pad_left = config.hop_length, config.window_length, config.pad_left
    total_frames = config.num_frames(num_samples)
    padded_length = (total_frames - 1) * hop + window
    margin = math.ceil(window / hop)
    for first in range(0, total_frames, chunk_frames):
        last = min(first + chunk_frames, total_frames)
        low, high = max(first - margin, 0), min(last + margin, total_frames)
        # Padded samples [low * hop, (high - 1) * hop + window) hold frames [low, high).
        start, stop = low * hop, (high - 1) * hop + window
        piece = np.zeros((channels, stop - start), np.float32)
        source_start, source_stop = max(start - pad_left, 0), min(stop - pad_left, num_samples)
        if source_stop > source_start:
            offset = source_start + pad_left - start
            piece[:, offset : offset + source_stop - source_start] = np.asarray(
                read(source_start, source_stop), np.float32
            ).T
        estimate = _vocals_spectrum(model, spectral.stft_frames(piece, config), mask)
        restored = spectral.overlap_add(estimate, config).numpy()
        # This chunk's exact samples: padded [first * hop, last * hop), to the end for the last chunk,
        # clipped to the input's samples [pad_left, pad_left + num_samples).
        keep_start = max(first * hop, pad_left)
        keep_stop = min(padded_length if last == total_frames else last * hop, pad_left + num_samples)
        if keep_stop > keep_start:
            yield np.ascontiguousarray(restored[:, keep_start - start : keep_stop - start].T)

