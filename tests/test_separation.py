"""`keras_dae.separation`: chunked separation equals whole-file separation and adds up to the input."""

import numpy as np
import pytest

from keras_dae import spectral
from keras_dae.models import build_model
from keras_dae.separation import separate_waveform
from keras_dae.spectral import SpectralConfig

CONFIG = SpectralConfig(num_bins=64)  # `model` (conftest.py): an untrained sf over these bins


def _audio(samples, channels=2, seed=0):
    return np.random.default_rng(seed).uniform(-0.5, 0.5, (samples, channels)).astype(np.float32)


@pytest.mark.parametrize("samples", [100, 2049, 44100 + 17])
def test_whole_file_equals_the_spectral_reference(model, samples):
    audio = _audio(samples)
    vocals, accompaniment = separate_waveform(model, audio, spectral=CONFIG)
    assert vocals.shape == accompaniment.shape == audio.shape
    np.testing.assert_allclose(vocals + accompaniment, audio, atol=1e-6)
    for channel in range(audio.shape[1]):
        mixture = spectral.stft(audio[:, channel], CONFIG)
        estimate = model.predict(np.abs(mixture.numpy()), verbose=0)
        expected = spectral.istft_with_phase(estimate, mixture, samples, CONFIG).numpy()
        np.testing.assert_allclose(vocals[:, channel], expected, atol=1e-5)


@pytest.mark.parametrize("mask", ["subtract", "soft"])
@pytest.mark.parametrize("chunk_frames", [1, 7, 64])
def test_chunks_leave_no_trace(model, mask, chunk_frames):
    audio = _audio(3 * 44100 + 5, seed=1)
    whole, _ = separate_waveform(model, audio, spectral=CONFIG, mask=mask, chunk_frames=10_000)
    seen = []
    chunked, rest = separate_waveform(model, audio, spectral=CONFIG, mask=mask, chunk_frames=chunk_frames,
                                      progress=seen.append)
    np.testing.assert_allclose(chunked, whole, atol=1e-4)
    np.testing.assert_allclose(chunked + rest, audio, atol=1e-6)
    assert seen == sorted(seen) and seen[-1] == len(audio)


def test_bad_arguments(model):
    with pytest.raises(ValueError, match="Unknown mask"):
        separate_waveform(model, _audio(10), spectral=CONFIG, mask="hard")
    with pytest.raises(ValueError, match="chunk_frames"):
        separate_waveform(model, _audio(10), spectral=CONFIG, chunk_frames=0)
    with pytest.raises(ValueError, match="samples > 0"):
        separate_waveform(model, np.zeros((0, 2), np.float32), spectral=CONFIG)


@pytest.mark.parametrize(("width", "hop"), [(2049, 384), (10, 10), (10, 3), (7, 1)])
def test_overlap_add_equals_tensorflows(width, hop):
    import tensorflow as tf

    from keras_dae.separation.core import _overlap_add

    rng = np.random.default_rng(width)
    frames = rng.standard_normal((2, 13, width)).astype(np.float32)
    window = rng.uniform(0, 1, width).astype(np.float32)
    np.testing.assert_allclose(_overlap_add(frames, hop), tf.signal.overlap_and_add(frames, hop).numpy(),
                               atol=1e-5)
    np.testing.assert_allclose(_overlap_add(frames, hop, window),
                               tf.signal.overlap_and_add(frames * window, hop).numpy(), atol=1e-5)


def test_silence_gives_no_vocals_even_when_the_model_outputs_some():
    """Where the mixture's bins are exactly 0 the vocals are 0, not NaN (0 / 0 in the mask gain)."""
    dae = build_model("dae", CONFIG.num_bins, hidden_size=16)
    dae.set_weights([np.ones_like(w) if w.ndim == 1 else w for w in dae.get_weights()])  # biases: V(0) > 0
    assert dae.predict(np.zeros((1, CONFIG.num_bins), np.float32), verbose=0).max() > 0
    audio = np.zeros((20_000, 2), np.float32)
    vocals, accompaniment = separate_waveform(dae, audio, spectral=CONFIG)
    assert np.all(vocals == 0) and np.all(accompaniment == 0)
