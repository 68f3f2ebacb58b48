import dataclasses

import numpy as np
import pytest

from keras_dae import spectral
from keras_dae.spectral import SpectralConfig

RATE = 44100


def _snr_db(reference, estimate):
    error = reference - estimate
    return 10 * np.log10(np.sum(reference**2) / max(np.sum(error**2), 1e-30))


def _noise(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32) * 0.3


@pytest.mark.parametrize("length", [RATE + 17, 2 * RATE, 1000, 100, 1])
def test_round_trip_is_exact_everywhere(length):
    config = SpectralConfig()
    x = _noise(length)
    y = spectral.istft(spectral.stft(x, config), length, config).numpy()
    assert y.shape == (length,)
    assert _snr_db(x, y) > 60
    # Not only on average: the edges too (the framing covers them fully).
    edge = min(length, 2049)
    assert _snr_db(x[:edge], y[:edge]) > 60
    assert _snr_db(x[-edge:], y[-edge:]) > 60


def test_round_trip_snr_of_a_tone_away_from_edges():
    config = SpectralConfig()
    t = np.arange(3 * RATE) / RATE
    x = (0.5 * np.sin(2 * np.pi * 440 * t) + 0.1 * np.sin(2 * np.pi * 5000 * t)).astype(np.float32)
    y = spectral.istft(spectral.stft(x, config), len(x), config).numpy()
    middle = slice(4096, -4096)
    assert _snr_db(x[middle], y[middle]) > 60


@pytest.mark.parametrize("window", ["hamming", "hann"])
def test_round_trip_with_other_settings(window):
    config = SpectralConfig(window_length=1024, fft_length=1024, hop_length=256, num_bins=513, window=window)
    x = _noise(5000, seed=3)
    y = spectral.istft(spectral.stft(x, config), 5000, config).numpy()
    assert _snr_db(x, y) > 60


def test_stft_matches_numpy_reference_framing():
    config = SpectralConfig(sample_rate=8000, window_length=257, fft_length=512, hop_length=64, num_bins=257)
    x = _noise(3000, seed=1).astype(np.float64)
    # Reference: pad left by window - hop, frame every hop, periodic Hamming, rfft.
    num_frames = config.num_frames(len(x))
    padded = np.zeros((num_frames - 1) * config.hop_length + config.window_length)
    padded[config.pad_left : config.pad_left + len(x)] = x
    n = np.arange(config.window_length)
    # tf.signal's "periodic" window of odd length is the symmetric one.
    window = 0.54 - 0.46 * np.cos(2 * np.pi * n / (config.window_length - 1))
    frames = np.stack(
        [padded[k * config.hop_length : k * config.hop_length + config.window_length] for k in range(num_frames)]
    )
    expected = np.fft.rfft(frames * window, n=config.fft_length)
    actual = spectral.stft(x.astype(np.float32), config).numpy()
    assert actual.shape == expected.shape
    np.testing.assert_allclose(actual, expected, atol=1e-3 * np.abs(expected).max())


def test_shapes_and_dtypes_mono_and_batched():
    config = SpectralConfig()
    mono = spectral.stft(_noise(RATE), config)
    assert mono.shape == (config.num_frames(RATE), 2049)
    assert mono.dtype.name == "complex64"
    batched = spectral.spectrogram(_noise((2, 3, RATE)), config)
    assert batched.shape == (2, 3, config.num_frames(RATE), 2049)
    assert batched.dtype.name == "float32"
    # Each batch element is the spectrogram of that waveform alone.
    x = _noise((2, 5000), seed=4)
    np.testing.assert_allclose(
        spectral.spectrogram(x, config).numpy()[1], spectral.spectrogram(x[1], config).numpy(), atol=1e-4
    )
    waveforms = spectral.istft(spectral.stft(x, config), 5000, config)
    assert waveforms.shape == (2, 5000)


def test_about_115_frames_per_second():
    config = SpectralConfig()
    assert config.num_frames(6 * RATE) == pytest.approx(6 * RATE / 384, abs=6)


def test_num_bins_truncates_and_inverse_zero_fills():
    full = SpectralConfig()
    low = dataclasses.replace(full, num_bins=744)
    x = _noise(RATE, seed=2)
    full_spectrum = spectral.stft(x, full).numpy()
    low_spectrum = spectral.stft(x, low).numpy()
    assert low_spectrum.shape[-1] == 744
    np.testing.assert_allclose(low_spectrum, full_spectrum[:, :744], atol=1e-5)
    zeroed = full_spectrum.copy()
    zeroed[:, 744:] = 0
    np.testing.assert_allclose(
        spectral.istft(low_spectrum, RATE, low).numpy(),
        spectral.istft(zeroed, RATE, full).numpy(),
        atol=1e-5,
    )
    # A low-passed signal survives the truncation.
    t = np.arange(RATE) / RATE
    tone = np.sin(2 * np.pi * 1000 * t).astype(np.float32)
    assert _snr_db(tone, spectral.istft(spectral.stft(tone, low), RATE, low).numpy()) > 60


def test_mixture_phase_reconstruction():
    config = SpectralConfig(num_bins=2049)
    x = _noise(20000, seed=5)
    mixture = spectral.stft(x, config)
    rebuilt = spectral.istft_with_phase(spectral.magnitude(mixture), mixture, 20000, config).numpy()
    assert _snr_db(x, rebuilt) > 60


def test_apply_phase():
    reference = np.array([[3 + 4j, 0j, -2j]], np.complex64)
    magnitudes = np.array([[10.0, 2.0, 1.0]], np.float32)
    result = spectral.apply_phase(magnitudes, reference).numpy()
    np.testing.assert_allclose(result, [[6 + 8j, 2 + 0j, -1j]], atol=1e-6)


def test_config_validation_and_serialization():
    config = SpectralConfig(num_bins=744)
    assert SpectralConfig.from_dict(config.to_dict()) == config
    assert SpectralConfig.from_json(config.to_json()) == config
    assert config.bin_frequencies()[1] == pytest.approx(44100 / 4096)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.num_bins = 10
    with pytest.raises(ValueError, match="num_bins must be at most"):
        SpectralConfig(num_bins=3000)
    with pytest.raises(ValueError, match="hop_length"):
        SpectralConfig(hop_length=0)
    with pytest.raises(ValueError, match="window_length must not exceed"):
        SpectralConfig(window_length=5000)
    with pytest.raises(ValueError, match="window"):
        SpectralConfig(window="kaiser")
    with pytest.raises(ValueError, match="Unknown SpectralConfig settings"):
        SpectralConfig.from_dict({"num_bins": 10, "n_fft": 4096})
