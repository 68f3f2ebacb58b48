"""The spectral front end: STFT, magnitude and inverse STFT in `tf.signal`.

Every function takes a `SpectralConfig` and works on any number of leading
batch dimensions: a waveform `(..., samples)` becomes a spectrum
`(..., frames, num_bins)` and back. All real tensors are float32, complex
tensors complex64.

Framing. The waveform is zero-padded by `window_length - hop_length` samples
on the left and by up to `window_length` samples on the right, so that every
input sample lies under the same number of (whole) analysis windows. With the
window-sum normalisation of `tf.signal.inverse_stft_window_fn` the inverse is
then exact for every sample, edges included, not only away from them. Frame
`k` is centred on sample `k * hop_length + window_length // 2 -
(window_length - hop_length)` of the input.
"""

import dataclasses
import json

import numpy as np
import tensorflow as tf

from keras_dae.checks import ParameterError, positive_int

_WINDOWS = {
    "hamming": tf.signal.hamming_window,
    "hann": tf.signal.hann_window,
}


@dataclasses.dataclass(frozen=True)
class SpectralConfig:
    """Settings of the short-time Fourier transform, saved with every run.

    The defaults are the authors' usual settings (see docs/paper.md; not
    confirmed for this paper): 44.1 kHz, a 2049-sample Hamming window, FFT size 4096,
    hop 384, all 2049 bins. Their earlier models kept only the lowest 744
    bins (about 8 kHz): `SpectralConfig(num_bins=744)`.

    Args:
        sample_rate: int, default 44100. Sample rate in Hz of the waveforms.
        window_length: int, default 2049. Analysis window length in samples.
        fft_length: int, default 4096. FFT size; `fft_length // 2 + 1` bins.
        hop_length: int, default 384. Samples between frames.
        num_bins: int, default 2049. Number of lowest bins kept; the inverse
            zero-fills the bins above.
        window: str, default `"hamming"`. `"hamming"` or `"hann"`, as
            `tf.signal` makes them: periodic for even lengths, symmetric for
            odd ones (so the default 2049-sample window is symmetric).

    Raises:
        ValueError: if a setting is out of range.
    """

    sample_rate: int = 44100
    window_length: int = 2049
    fft_length: int = 4096
    hop_length: int = 384
    num_bins: int = 2049
    window: str = "hamming"

    def __post_init__(self):
        for name in ("sample_rate", "window_length", "fft_length", "hop_length", "num_bins"):
            positive_int(name, getattr(self, name))
        if self.window_length > self.fft_length:
            raise ParameterError(
                "window_length", "SpectralConfig.window_length must not exceed fft_length. Received: "
                f"window_length={self.window_length}, fft_length={self.fft_length}"
            )
        if self.hop_length > self.window_length:
            raise ParameterError(
                "hop_length", "SpectralConfig.hop_length must not exceed window_length (frames would "
                f"leave gaps). Received: hop_length={self.hop_length}, "
                f"window_length={self.window_length}"
            )
        if self.num_bins > self.max_bins:
            raise ParameterError(
                "num_bins", f"SpectralConfig.num_bins must be at most fft_length // 2 + 1 = {self.max_bins}. "
                f"Received: num_bins={self.num_bins}"
            )
        if self.window not in _WINDOWS:
            raise ParameterError(
                "window", f"SpectralConfig.window must be one of {sorted(_WINDOWS)}. "
                f"Received: window={self.window!r}"
            )

    @property
    def max_bins(self):
        """Number of non-negative frequency bins of the FFT, `fft_length // 2 + 1`."""
        return self.fft_length // 2 + 1

    @property
    def pad_left(self):
        """Zeros added before the waveform so the first sample is fully covered."""
        return self.window_length - self.hop_length

    @property
    def frames_per_second(self):
        return self.sample_rate / self.hop_length

    def bin_frequencies(self):
        """Centre frequency in Hz of each kept bin, a NumPy array `(num_bins,)`."""
        return np.arange(self.num_bins) * self.sample_rate / self.fft_length

    def num_frames(self, num_samples):
        """Number of STFT frames of a waveform of `num_samples` samples."""
        return (self.pad_left + max(int(num_samples), 1) - 1) // self.hop_length + 1

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values):
        """Rebuild a config from `to_dict()` output; unknown keys are an error."""
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"Unknown SpectralConfig settings {unknown}; known ones are {sorted(known)}."
            )
        return cls(**values)

    def to_json(self):
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text):
        return cls.from_dict(json.loads(text))


def _window_fn(spectral):
    return _WINDOWS[spectral.window]


def _pad(waveform, spectral):
    """Zero-pads the last axis as described in the module docstring."""
    num_samples = tf.shape(waveform)[-1]
    pad_left = spectral.pad_left
    num_frames = (pad_left + tf.maximum(num_samples, 1) - 1) // spectral.hop_length + 1
    padded_length = (num_frames - 1) * spectral.hop_length + spectral.window_length
    pad_right = padded_length - pad_left - num_samples
    rank = tf.rank(waveform)
    paddings = tf.concat(
        [tf.zeros([rank - 1, 2], tf.int32), [[pad_left, pad_right]]], axis=0
    )
    return tf.pad(waveform, paddings)


def stft(waveform, spectral=SpectralConfig()):
    """Short-time Fourier transform of a waveform.

    Args:
        waveform: float tensor or array `(..., samples)`.
        spectral: `SpectralConfig`.

    Returns:
        complex64 tensor `(..., frames, num_bins)` with
        `frames == spectral.num_frames(samples)`.
    """
    waveform = tf.convert_to_tensor(waveform, tf.float32)
    return stft_frames(_pad(waveform, spectral), spectral)


def stft_frames(padded, spectral=SpectralConfig()):
    """STFT of an already padded waveform: frame `k` starts at sample `k * hop_length`.

    `stft(x)` is `stft_frames(pad(x))`. Frames `[k0, k1)` of a long signal are
    `stft_frames` of the padded samples `[k0 * hop, (k1 - 1) * hop + window)`,
    which is how long tracks are cut into chunks with exactly the frames of
    the whole track.

    Args:
        padded: float tensor `(..., samples)`, at least `window_length` long.
        spectral: `SpectralConfig`.

    Returns:
        complex64 tensor `(..., frames, num_bins)`.
    """
    spectrum = tf.signal.stft(
        tf.convert_to_tensor(padded, tf.float32),
        frame_length=spectral.window_length,
        frame_step=spectral.hop_length,
        fft_length=spectral.fft_length,
        window_fn=_window_fn(spectral),
        pad_end=False,
    )
    return spectrum[..., : spectral.num_bins]


def magnitude(spectrum):
    """Magnitude `|X|` of a complex spectrum, float32, same shape."""
    return tf.abs(tf.convert_to_tensor(spectrum, tf.complex64))


def spectrogram(waveform, spectral=SpectralConfig()):
    """Magnitude spectrogram `(..., frames, num_bins)` of a waveform `(..., samples)`."""
    return magnitude(stft(waveform, spectral))


def apply_phase(magnitude_spectrum, reference):
    """Gives a magnitude spectrum the phase of a reference (mixture) spectrum.

    Where the reference is exactly zero its phase is undefined; phase 0 is used.

    Args:
        magnitude_spectrum: float tensor `(..., frames, num_bins)`.
        reference: complex tensor of the same shape, usually `stft(mixture)`.

    Returns:
        complex64 tensor `magnitude * reference / |reference|`.
    """
    magnitude_spectrum = tf.convert_to_tensor(magnitude_spectrum, tf.float32)
    reference = tf.convert_to_tensor(reference, tf.complex64)
    reference_magnitude = tf.abs(reference)
    unit = tf.where(
        reference_magnitude > 0,
        reference / tf.cast(tf.maximum(reference_magnitude, 1e-30), tf.complex64),
        tf.ones_like(reference),
    )
    return tf.cast(magnitude_spectrum, tf.complex64) * unit


def istft(spectrum, length, spectral=SpectralConfig()):
    """Inverse STFT: the waveform whose `stft` is `spectrum`.

    Bins above `spectral.num_bins` are taken as zero. `istft(stft(x), len(x))`
    reconstructs `x` to float32 precision.

    Args:
        spectrum: complex tensor `(..., frames, num_bins)`.
        length: int or scalar int tensor, number of samples to return (the
            length of the waveform the spectrum came from).
        spectral: `SpectralConfig`.

    Returns:
        float32 tensor `(..., length)`.
    """
    waveform = overlap_add(spectrum, spectral)
    return waveform[..., spectral.pad_left : spectral.pad_left + length]


def overlap_add(spectrum, spectral=SpectralConfig()):
    """Inverse STFT of frames, untrimmed: `(..., (frames - 1) * hop_length + window_length)`.

    Sample `n` of the result is exact wherever every frame whose window covers
    `n` is among the given frames, so consecutive runs of frames can be
    inverted chunk by chunk. `istft` trims the padding off this.
    """
    return tf.signal.overlap_and_add(inverse_frames(spectrum, spectral), spectral.hop_length)


def window_arrays(spectral=SpectralConfig()):
    """The analysis window and `inverse_frames`' synthesis window, float32 NumPy `(window_length,)`."""
    analysis = _window_fn(spectral)(spectral.window_length, dtype=tf.float32)
    synthesis = tf.signal.inverse_stft_window_fn(spectral.hop_length, forward_window_fn=_window_fn(spectral))(
        spectral.window_length, tf.float32
    )
    return analysis.numpy(), synthesis.numpy()


def inverse_frames(spectrum, spectral=SpectralConfig()):
    """The windowed inverse FFT of each frame, `(..., frames, window_length)`, before overlap-add.

    `overlap_add` sums frame `k` into samples `[k * hop, k * hop + window)`;
    this is `tf.signal.inverse_stft` without that last step (bins above
    `num_bins` taken as zero).
    """
    spectrum = tf.convert_to_tensor(spectrum, tf.complex64)
    missing = spectral.max_bins - spectral.num_bins
    if missing:
        rank = tf.rank(spectrum)
        paddings = tf.concat([tf.zeros([rank - 1, 2], tf.int32), [[0, missing]]], axis=0)
        spectrum = tf.pad(spectrum, paddings)
    frames = tf.signal.irfft(spectrum, [spectral.fft_length])[..., : spectral.window_length]
    window = tf.signal.inverse_stft_window_fn(spectral.hop_length, forward_window_fn=_window_fn(spectral))(
        spectral.window_length, tf.float32
    )
    return frames * window


def istft_with_phase(magnitude_spectrum, reference, length, spectral=SpectralConfig()):
    """Waveform of a magnitude estimate with the phase of `reference` (the mixture STFT)."""
    return istft(apply_phase(magnitude_spectrum, reference), length, spectral)
