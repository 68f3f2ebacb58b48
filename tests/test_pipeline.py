import numpy as np
import pytest

from keras_dae.data.pipeline import collect_frames, musdb_frames
from keras_dae.data.synthetic import write_synthetic_musdb
from keras_dae.data.tracks import list_tracks
from keras_dae.spectral import SpectralConfig

CONFIG = SpectralConfig(num_bins=64)


@pytest.fixture(scope="module")
def wav_tracks(tmp_path_factory):
    root = tmp_path_factory.mktemp("musdb")
    write_synthetic_musdb(root, num_tracks=3, seconds=3.0, seed=0)
    return list_tracks(root, is_wav=True, subsets="train")


def _frames(tracks, **kwargs):
    kwargs = {"batch_size": 32, "seed": 1, "excerpt_seconds": 1.0, **kwargs}
    return collect_frames(musdb_frames(tracks, CONFIG, **kwargs))


def test_shapes_dtype_and_determinism(wav_tracks):
    mixture, vocals = _frames(wav_tracks, epochs=2, remix=True, random_gain=True)
    frames_per_excerpt = CONFIG.num_frames(44100)
    assert mixture.shape == vocals.shape == (2 * 3 * frames_per_excerpt, 64)
    assert mixture.dtype == np.float32 and np.all(np.isfinite(mixture))
    again, _ = _frames(wav_tracks, epochs=2, remix=True, random_gain=True)
    np.testing.assert_array_equal(mixture, again)
    other, _ = _frames(wav_tracks, epochs=2, remix=True, random_gain=True, seed=2)
    assert not np.array_equal(mixture, other)


def test_validation_frames_are_spectra_of_the_source_sum(wav_tracks):
    mixture, vocals = _frames(wav_tracks, training=False)
    count = CONFIG.num_frames(44100)
    # Validation excerpts are fixed: two runs agree, and mixture >= 0.
    again, _ = _frames(wav_tracks, training=False)
    np.testing.assert_array_equal(mixture, again)
    assert mixture.shape[0] == 3 * count and np.all(mixture >= 0) and np.all(vocals >= 0)


def test_embedded_example_and_bad_roots(tmp_path):
    tracks = list_tracks()
    assert len(tracks) == 1 and tracks[0].is_stem and tracks[0].rate == 44100
    mixture, vocals = _frames(tracks, epochs=1)
    assert mixture.shape[1] == 64 and len(mixture) == CONFIG.num_frames(44100)
    with pytest.raises(ValueError, match="does not exist"):
        list_tracks(tmp_path / "missing")
    (tmp_path / "train").mkdir()
    with pytest.raises(ValueError, match="no MUSDB tracks"):
        list_tracks(tmp_path, is_wav=True)
