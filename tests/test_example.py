import numpy as np

from keras_dae.data import EXAMPLE_TRACK, load_example


def test_embedded_example_is_the_real_musdb_excerpt():
    track = load_example()
    assert track.name == EXAMPLE_TRACK == "The Easton Ellises - Falcon 69"
    assert track.rate == 44100
    assert set(track.sources) == {"drums", "bass", "other", "vocals"}
    lengths = {audio.shape for audio in track.sources.values()}
    assert len(lengths) == 1
    samples, channels = lengths.pop()
    assert channels == 2 and 5.9 < samples / 44100 < 6.2
    assert all(audio.dtype == np.float32 and np.abs(audio).max() > 0.1 for audio in track.sources.values())
    np.testing.assert_allclose(track.mixture, track.accompaniment + track.vocals, atol=1e-6)


def test_mono_downmix():
    track = load_example()
    mono = track.mono()
    assert mono.vocals.shape == (track.vocals.shape[0], 1)
    np.testing.assert_allclose(mono.vocals[:, 0], track.vocals.mean(axis=1), atol=1e-7)
