"""Separating a recording of any length with a trained model, chunk by chunk.

Every channel goes through the mono model frame by frame (the models have no
context). The vocals take the mixture's phase; bins above the model's
`num_bins` get no vocals. The accompaniment is the mixture minus the vocals
(time domain), so the two always add up to the input.

    mask="subtract"  vocals = istft(V * X / |X|), V the model's magnitude (0
                     where the mixture bin X is exactly 0)
    mask="soft"      vocals = istft(V^2 / (V^2 + A^2) * X) with the
                     accompaniment magnitude A = max(|X| - V, 0): a power
                     ratio mask from both estimates

`wiener=N` refines the vocals and accompaniment magnitudes (the latter
`max(|X| - V, 0)`) with N iterations of multichannel Wiener filtering
(`norbert`, as open-unmix does). Its spatial statistics are estimated per
chunk, so with `wiener` the chunk size is part of the method (default
`WIENER_CHUNK_FRAMES`, about 4.5 s, where open-unmix uses 300 frames).

Non-finite and extreme inputs (`separate`, `separate_waveform`,
`separate_blocks`, and the files of `separation.files`):

- NaN and Inf samples are repaired, not refused: the model reads them as
  silence (0), and both stems are 0 at those samples, so every output sample
  is finite. `separate` and `separate_file` log a warning counting them.
  Everywhere the input is finite, vocals + accompaniment = input.
- An input whose peak is above full scale (1.0, possible in float files) is
  separated at a lower level: divided by the power of two at or above its
  peak (exact in floating point), and the vocals multiplied back. The model
  sees the levels it was trained on, its masks stay in range, and the vocals
  stay at the input's level, so float32 rounding of accompaniment = input -
  vocals stays at the input's own precision. Inputs within full scale are
  separated as they are.

Long inputs are processed in chunks of `chunk_frames` STFT frames. Output
sample `n` depends only on the frames whose windows cover it, so each chunk
computes its frames plus `ceil(window / hop)` frames of margin on each side
and keeps the samples that only its own frames (and the margins) reach: the
result equals whole-file processing to float rounding, at memory bounded by
the chunk size.
"""

import logging
import math
import os
import weakref

import numpy as np
import scipy.fft
import tensorflow as tf

from keras_dae import spectral as front_end
from keras_dae import tracing
from keras_dae.checks import non_negative_int, one_of, positive_int, positive_number
from keras_dae.separation.masks import MASKS, soft_mask, subtract_gain
from keras_dae.workers import threads

log = logging.getLogger(__name__)

CHUNK_FRAMES = 2048  # about 18 s at the default hop
WIENER_CHUNK_FRAMES = 512
FLOAT32_MAX = float(np.finfo(np.float32).max)
WORKERS = threads()  # scipy.fft threads: the usable cores, or a worker process's share of them


class _Chunker:
    """The per-chunk maths: STFT, model, mask, windowed inverse frames.

    The transforms use `scipy.fft` (pocketfft, both cores) on NumPy arrays:
    on a chunk of 2 x 2060 frames at `fft_length` 4096 they take about a
    quarter of `tf.signal`'s time, which at 744 bins is most of the work. The
    frames, windows and scaling are `keras_dae.spectral`'s exactly (tested
    against it). The model runs as one traced function per model and bins.
    """

    def __init__(self, model, spectral, mask, wiener):
        self.spectral, self.mask, self.wiener = spectral, mask, wiener
        self.analysis, self.synthesis = front_end.window_arrays(spectral)
        self.predict = _traced(model, spectral.num_bins)
        self.gain = _traced(model, spectral.num_bins, gain=True) if mask == "subtract" and not wiener else None

    def spectrum(self, piece):
        """`(channels, frames, num_bins)` complex64 STFT of padded samples (`spectral.stft_frames`)."""
        spectral = self.spectral
        frames = np.lib.stride_tricks.sliding_window_view(piece, spectral.window_length, axis=-1)[
            :, :: spectral.hop_length
        ]
        # The windowed frames written straight into the FFT's zero-padded input (no padding copy).
        padded = np.zeros(frames.shape[:-1] + (spectral.fft_length,), np.float32)
        np.multiply(frames, self.analysis, out=padded[..., : spectral.window_length])
        return scipy.fft.rfft(padded, axis=-1, workers=WORKERS)[..., : spectral.num_bins]

    def vocals(self, piece):
        """The vocals of padded samples `(channels, samples)`, overlap-added: `(channels, (frames - 1) * hop + window)`."""
        spectral = self.spectral
        spectrum = self.spectrum(piece)
        magnitude = np.abs(spectrum)
        flat = magnitude.reshape(-1, magnitude.shape[-1])
        # The vocals' bins written into the inverse FFT's input, zero above num_bins.
        vocals = np.zeros(spectrum.shape[:-1] + (spectral.max_bins,), np.complex64)
        kept = vocals[..., : spectral.num_bins]
        if self.gain is not None:  # V X / |X|: the mixture's phase (no vocals where the mixture bin is exactly 0)
            np.multiply(spectrum, self.gain(flat).numpy().reshape(magnitude.shape), out=kept)
            return self._inverse(vocals)
        estimate = self.predict(flat).numpy().reshape(magnitude.shape)
        if self.wiener:
            kept[...] = _wiener(spectrum, estimate, np.maximum(magnitude - estimate, 0), self.wiener)
        else:  # soft
            np.multiply(spectrum, soft_mask(estimate, magnitude), out=kept)
        return self._inverse(vocals)

    def _inverse(self, vocals):
        """Overlap-added windowed inverse FFT of full-band frames (bins above num_bins zero)."""
        frames = scipy.fft.irfft(vocals, n=self.spectral.fft_length, axis=-1, workers=WORKERS)
        return _overlap_add(frames[..., : self.spectral.window_length], self.spectral.hop_length, self.synthesis)


_TRACED = weakref.WeakKeyDictionary()


tracing.install()


def _traced(model, num_bins, gain=False):
    """`model` on magnitudes `(frames, num_bins)` float32, traced once per model.

    With `gain`, returns `V / |X|` instead of V: the subtract mask's gain,
    computed in the graph (TensorFlow's element-wise ops use every core).
    """
    functions = _TRACED.setdefault(model, {})
    if (num_bins, gain) not in functions:

        @tf.function(input_signature=[tf.TensorSpec([None, num_bins], tf.float32)])
        def predict_frames(magnitude):
            estimate = model(magnitude, training=False)
            return subtract_gain(estimate, magnitude) if gain else estimate

        functions[(num_bins, gain)] = predict_frames
    return functions[(num_bins, gain)]


def _trim_heap():
    """Returns freed heap memory to the system (glibc's `malloc_trim`; elsewhere nothing).

    A chunk allocates arrays of a few to tens of MB; glibc serves the ones
    under its (self-raising) mmap threshold from the heap, whose free holes
    were measured to grow the resident size with the input's length (1.19 GB
    after 3 minutes, 1.37 GB after 60 at 744 bins). Trimming after each chunk
    keeps it flat.
    """
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def _load_libc():
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc if hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


_LIBC = _load_libc()


def _overlap_add(frames, hop, window=None):
    """`(channels, frames, width)` (times `window`) summed at `hop` spacing, as `tf.signal.overlap_and_add`.

    Each frame is cut into `ceil(width / hop)` hop-long pieces; piece `j` of
    frame `k` lands on output block `k + j`, so the sum is that many
    vectorised adds instead of one per frame.
    """
    channels, count, width = frames.shape
    pieces = -(-width // hop)
    blocks = np.zeros((channels, count + pieces - 1, hop), np.float32)
    for piece in range(pieces):  # strided views of the frames: no padded copy of them
        low, high = piece * hop, min((piece + 1) * hop, width)
        part = frames[..., low:high] if window is None else frames[..., low:high] * window[low:high]
        blocks[:, piece : piece + count, : high - low] += part
    return blocks.reshape(channels, -1)[:, : (count - 1) * hop + width]


def _wiener(spectrum, vocals, accompaniment, iterations):
    """norbert's multichannel Wiener filter; its inputs are `(frames, bins, channels[, sources])`."""
    import warnings

    with warnings.catch_warnings():  # norbert 0.2.1 imports a deprecated scipy.ndimage path
        warnings.simplefilter("ignore", DeprecationWarning)
        import norbert

    sources = np.stack([vocals, accompaniment], axis=-1).transpose(1, 2, 0, 3)
    mixture = spectrum.transpose(1, 2, 0).astype(np.complex128)
    estimates = norbert.wiener(sources.astype(np.float64), mixture, iterations=iterations)
    return estimates[..., 0].transpose(2, 0, 1).astype(np.complex64)


def resolve(model, *, spectral=None):
    """`(keras model, SpectralConfig)` for a model, a `.keras` file or a run directory.

    Args:
        model: a keras-dae Keras model, a `.keras` file or a run directory.
        spectral: `SpectralConfig` or None. None: the run's (`config.json`
            beside the model file), else the paper's with the model's
            number of bins.

    Raises:
        ValueError: not a keras-dae model, or settings whose `num_bins` is not the model's.
    """
    from keras_dae import runs
    from keras_dae.models import describe_model

    run_config = None
    if isinstance(model, (str, os.PathLike)):
        model, info, run_config = runs.load_run_model(model)
    else:
        info = describe_model(model)
    if spectral is None:
        spectral = runs.run_spectral(info, run_config)
    if spectral.num_bins != info["num_bins"]:
        raise ValueError(
            f"the model takes {info['num_bins']} bins but the spectral settings give {spectral.num_bins}; "
            f"use `num_bins={info['num_bins']}` (or the model's own settings)."
        )
    return model, spectral


def separate(model, audio, sample_rate, *, spectral=None, mask="subtract", wiener=0, chunk_frames=None, progress=None):
    """Separates a recording held in memory into vocals and accompaniment.

    Args:
        model: a keras-dae Keras model, a `.keras` file or a run directory.
        audio: float array `(samples,)` (mono) or `(samples, channels)`.
        sample_rate: int, the rate of `audio`; resampled to the model's and
            back (soxr, high quality) when they differ.
        spectral: `SpectralConfig` or None (see `resolve`).
        mask, wiener, chunk_frames, progress: see `separate_waveform`.

    Returns:
        dict with `"vocals"` and `"accompaniment"`, float32 arrays shaped like
        `audio` at `sample_rate`; they add up to `audio` wherever it is
        finite. NaN and Inf samples are separated as silence and both stems
        are 0 there (a warning counts them); an input above full scale is
        separated at a lower level (see the module docstring).

    Example:

    >>> stems = keras_dae.separate("runs/sf", audio, 44100)
    >>> stems["vocals"].shape == audio.shape
    True
    """
    model, spectral = resolve(model, spectral=spectral)
    with np.errstate(over="ignore"):  # float64 beyond float32's range becomes Inf, repaired below
        audio = np.asarray(audio, np.float32)
    if audio.ndim not in (1, 2) or audio.shape[0] == 0:
        raise ValueError(f"audio must be (samples,) or (samples, channels) with samples > 0. Received {audio.shape}")
    non_finite, peak = finite_level(audio)
    scale = input_scale(peak)
    report_level("audio", non_finite, audio.size, peak, scale)
    # Repaired before resampling, which would spread a NaN over its neighbours.
    clean = np.where(np.isfinite(audio), audio, np.float32(0)) if non_finite else audio
    waveform = clean[:, None] if audio.ndim == 1 else clean
    resampled = resample(waveform, sample_rate, spectral.sample_rate)
    vocals, _ = separate_waveform(model, resampled, spectral=spectral, mask=mask, wiener=wiener,
                                  chunk_frames=chunk_frames, progress=progress, scale=scale)
    vocals = fit_length(resample(vocals, spectral.sample_rate, sample_rate), len(waveform))
    vocals, accompaniment = stems_of(vocals.reshape(audio.shape), audio)
    return {"vocals": vocals, "accompaniment": accompaniment}


def finite_level(audio):
    """`(number of NaN and Inf samples, peak of the finite ones)` of an array (peak 0.0 without any)."""
    finite = np.isfinite(audio)
    if finite.all():
        return 0, float(np.abs(audio).max(initial=0.0))
    return int(finite.size - np.count_nonzero(finite)), float(np.abs(audio[finite]).max(initial=0.0))


def input_scale(peak):
    """What an input peaking at `peak` is divided by for the model: 1.0 up to full scale (1.0), else the
    smallest power of two at or above `peak` (dividing by it and multiplying back are exact)."""
    if not (math.isfinite(peak) and peak > 1.0):
        return 1.0
    return float(2.0 ** math.ceil(math.log2(peak)))


def report_level(what, non_finite, size, peak, scale):
    """Logs what `separate` and `separate_file` repair or rescale in an input (`what` names it)."""
    if non_finite:
        log.warning("%s holds %d non-finite samples (NaN or Inf) of %d: they were separated as silence, and "
                    "both stems are 0 there", what, non_finite, size)
    if scale != 1.0:
        log.info("%s peaks at %g, above full scale (1.0): separated at 1/%g of its level, the vocals scaled "
                 "back", what, peak, scale)


def stems_of(vocals, audio):
    """`(vocals, accompaniment)`, float32 like `audio`: accompaniment = audio - vocals where `audio` is
    finite; both 0 where it is NaN or Inf."""
    bad = ~np.isfinite(audio)
    if not bad.any():
        return vocals, audio - vocals
    vocals = np.where(bad, np.float32(0), vocals)
    with np.errstate(invalid="ignore"):  # Inf - Inf, discarded
        return vocals, np.where(bad, np.float32(0), audio - vocals)


def resample(waveform, rate, target_rate):
    """`(samples, channels)` float32 at `target_rate` (soxr HQ, as librosa's default); at least one sample."""
    if rate == target_rate:
        return waveform
    import soxr

    resampled = soxr.resample(waveform, rate, target_rate, quality="HQ").astype(np.float32)
    return resampled if len(resampled) else np.zeros((1, waveform.shape[1]), np.float32)


def fit_length(waveform, length):
    """`waveform` cut or zero-padded to `length` samples."""
    if len(waveform) >= length:
        return waveform[:length]
    return np.concatenate([waveform, np.zeros((length - len(waveform), waveform.shape[1]), waveform.dtype)])


def separate_waveform(model, waveform, *, spectral, mask="subtract", wiener=0, chunk_frames=None, progress=None,
                      scale=None):
    """Vocals and accompaniment of `waveform` at the model's rate.

    Args:
        model: a keras-dae model with `spectral.num_bins` bins.
        waveform: float array `(samples, channels)` at `spectral.sample_rate`.
        spectral: the model's `SpectralConfig`.
        mask: `"subtract"` or `"soft"` (see the module docstring).
        wiener: int >= 0, Wiener filtering iterations (0: none).
        chunk_frames: int, STFT frames computed at once (memory bound);
            default `CHUNK_FRAMES`, or `WIENER_CHUNK_FRAMES` with `wiener`.
        progress: callable or None, called with the samples done so far.
        scale: float or None, see `separate_blocks`; None: `input_scale` of
            the waveform's peak.

    Returns:
        `(vocals, accompaniment)`, float32 arrays shaped like `waveform`;
        accompaniment = waveform - vocals where the waveform is finite, both
        0 at its NaN and Inf samples.
    """
    waveform = np.asarray(waveform, np.float32)
    if waveform.ndim != 2 or waveform.shape[0] == 0:
        raise ValueError(f"waveform must be (samples, channels) with samples > 0. Received shape {waveform.shape}")

    def read(start, stop):
        return waveform[start:stop]

    if scale is None:
        scale = input_scale(finite_level(waveform)[1])
    vocals = np.zeros_like(waveform)
    done = 0
    for block in separate_blocks(model, read, waveform.shape[0], waveform.shape[1], spectral=spectral, mask=mask,
                                 wiener=wiener, chunk_frames=chunk_frames, scale=scale):
        vocals[done : done + len(block)] = block
        done += len(block)
        if progress is not None:
            progress(done)
    return stems_of(vocals, waveform)


def separate_blocks(model, read, num_samples, channels, *, spectral, mask="subtract", wiener=0, chunk_frames=None,
                    scale=1.0):
    """Yields the vocals of a recording block by block, in order, `(block samples, channels)` float32.

    `read(start, stop)` returns the input samples `[start, stop)` as
    `(stop - start, channels)` (a file reader, or a slice of an array), so
    that memory stays bounded by `chunk_frames` whatever the length. The
    blocks together are `num_samples` long.

    NaN and Inf input samples are read as 0 (the callers set both stems to
    0 there). The model sees the input divided by `scale` (a power of two:
    `input_scale` of the input's peak, so that it is within full scale), and
    the vocals are multiplied back by it (limited to float32's range).
    """
    positive_number("scale", scale)
    one_of("mask", mask, MASKS)
    non_negative_int("wiener", wiener)
    if chunk_frames is None:
        chunk_frames = WIENER_CHUNK_FRAMES if wiener else CHUNK_FRAMES
    positive_int("chunk_frames", chunk_frames)
    hop, window, pad_left = spectral.hop_length, spectral.window_length, spectral.pad_left
    total_frames = spectral.num_frames(num_samples)
    padded_length = (total_frames - 1) * hop + window
    margin = math.ceil(window / hop)
    chunker = _Chunker(model, spectral, mask, wiener)
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
            bad = ~np.isfinite(piece)
            if bad.any():
                piece[bad] = 0.0  # a NaN would spread over every frame that covers it
            if scale != 1.0:
                piece *= np.float32(1.0 / scale)  # exact: a power of two
        restored = chunker.vocals(piece)
        _trim_heap()
        # This chunk's exact samples: padded [first * hop, last * hop), to the end for the last chunk,
        # clipped to the input's samples [pad_left, pad_left + num_samples).
        keep_start = max(first * hop, pad_left)
        keep_stop = min(padded_length if last == total_frames else last * hop, pad_left + num_samples)
        if keep_stop > keep_start:
            block = restored[:, keep_start - start : keep_stop - start].T
            if scale != 1.0:
                block = np.clip(block * np.float64(scale), -FLOAT32_MAX, FLOAT32_MAX)
            yield np.ascontiguousarray(block, np.float32)

