import numpy as np
import pytest

from keras_dae import spectral
from keras_dae.data.pipeline import VOCALS, collect_frames, excerpt_plans, musdb_frames
from keras_dae.data.synthetic import convert_to_stems, write_synthetic_musdb
from keras_dae.data.tracks import list_tracks, read_track
from keras_dae.spectral import SpectralConfig

CONFIG = SpectralConfig(num_bins=64)


@pytest.fixture(scope="module")
def wav_tracks(tmp_path_factory):
    root = tmp_path_factory.mktemp("musdb")
    write_synthetic_musdb(root, num_tracks=3, seconds=3.0, seed=0)
    return list_tracks(root, is_wav=True, subsets="train")


def _frames(tracks, **kwargs):
    kwargs = {"batch_size": 32, "seed": 1, "excerpt_seconds": 1.0, **kwargs}
    return collect_frames(musdb_frames(tracks, spectral=CONFIG, **kwargs))


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


def _relative_error(actual, expected):
    return float(np.abs(actual - expected).max() / np.abs(expected).max())


def _expected_spectra(vocals_sources, accompaniment_sources):
    """`(mixture, vocals)` spectra of vocals from one read, the rest from another."""
    sources = accompaniment_sources.copy()
    sources[VOCALS] = vocals_sources[VOCALS]
    mixture = sources.sum(axis=0).mean(axis=1)
    vocals = sources[VOCALS].mean(axis=1)
    spectra = spectral.spectrogram(np.stack([mixture, vocals]), CONFIG).numpy()
    return spectra[0], spectra[1]


@pytest.mark.parametrize("remix", [False, True])
def test_frames_are_spectra_of_the_planned_source_sums(wav_tracks, remix):
    excerpt = 44100
    arguments = {"seed": 3, "epochs": 2, "training": True, "remix": remix}
    plans = excerpt_plans(wav_tracks, excerpt_samples=excerpt, **arguments)
    # No shuffling, one excerpt at a time: frames come in plan order.
    mixture, vocals = _frames(wav_tracks, shuffle_buffer=1, cycle_length=1, **arguments)
    count = CONFIG.num_frames(excerpt)
    assert plans.shape == (6, 4) and mixture.shape == vocals.shape == (6 * count, 64)
    for epoch in range(2):  # every track once per epoch, in a shuffled order
        assert sorted(plans[3 * epoch : 3 * epoch + 3, 0]) == [0, 1, 2]
    assert not np.array_equal(plans[:3, 0], plans[3:, 0])
    lengths = np.array([track.num_samples for track in wav_tracks])
    for track_column, start_column in ((0, 1), (2, 3)):
        assert np.all(plans[:, start_column] >= 0)
        assert np.all(plans[:, start_column] <= lengths[plans[:, track_column]] - excerpt)
    if remix:
        # Vocals over another track's accompaniment, at another start.
        assert np.sum(plans[:, 0] != plans[:, 2]) >= 3
        assert np.all(plans[:, 1] != plans[:, 3])
    else:
        np.testing.assert_array_equal(plans[:, 0], plans[:, 2])
        np.testing.assert_array_equal(plans[:, 1], plans[:, 3])

    wrong_errors = []
    for index, (vocals_track, vocals_start, accompaniment_track, accompaniment_start) in enumerate(plans):
        frames = slice(index * count, (index + 1) * count)
        vocals_read = read_track(wav_tracks[vocals_track], vocals_start, excerpt)
        accompaniment_read = read_track(wav_tracks[accompaniment_track], accompaniment_start, excerpt)
        expected_mixture, expected_vocals = _expected_spectra(vocals_read, accompaniment_read)
        assert _relative_error(mixture[frames], expected_mixture) < 1e-4, index
        assert _relative_error(vocals[frames], expected_vocals) < 1e-4, index
        # What a pipeline reading the wrong excerpt would give is far off.
        if remix:
            wrong = _expected_spectra(vocals_read, vocals_read)  # the remix ignored
        else:
            other = wav_tracks[(vocals_track + 1) % len(wav_tracks)]
            wrong = _expected_spectra(vocals_read, read_track(other, vocals_start, excerpt))
        wrong_errors.append(_relative_error(mixture[frames], wrong[0]))
        shifted = read_track(wav_tracks[vocals_track], vocals_start + 4410, excerpt)
        wrong_errors.append(_relative_error(vocals[frames], _expected_spectra(shifted, shifted)[1]))
    assert min(wrong_errors) > 0.05


def test_validation_ignores_augmentation(wav_tracks):
    # The left downmix, so that channel_swap would show too.
    augmentation = {"remix": True, "random_gain": True, "channel_swap": True}
    plain = _frames(wav_tracks, training=False, downmix="left")
    augmented = _frames(wav_tracks, training=False, downmix="left", **augmentation)
    for plain_part, augmented_part in zip(plain, augmented):
        assert plain_part.shape == (3 * CONFIG.num_frames(44100), 64)
        np.testing.assert_array_equal(plain_part, augmented_part)
    np.testing.assert_array_equal(
        excerpt_plans(wav_tracks, excerpt_samples=44100, seed=1, training=False, remix=True),
        excerpt_plans(wav_tracks, excerpt_samples=44100, seed=1, training=False),
    )
    # The same options do change training frames (same seed, same order).
    in_order = {"training": True, "epochs": 1, "shuffle_buffer": 1, "cycle_length": 1, "downmix": "left"}
    plain, _ = _frames(wav_tracks, **in_order)
    for option in augmentation:
        changed, _ = _frames(wav_tracks, **in_order, **{option: True})
        assert _relative_error(changed, plain) > 0.05, option


def test_stem_tracks_give_the_frames_of_the_wav_tracks(tmp_path):
    wav_root, stem_root = tmp_path / "wav", tmp_path / "stems"
    write_synthetic_musdb(wav_root, num_tracks=1, seconds=2.0, seed=6)
    convert_to_stems(wav_root, stem_root)
    wav_tracks = list_tracks(wav_root, is_wav=True)
    (stem_track,) = list_tracks(stem_root)
    assert stem_track.is_stem and stem_track.name == "synthetic-000" and stem_track.stem_ids == (1, 2, 3, 4)
    assert stem_track.rate == 44100 and stem_track.channels == 2
    assert 2 * 44100 <= stem_track.num_samples <= 2 * 44100 + 1024  # AAC may pad the last frame
    # Equal lengths give the WAV and stem tracks equal excerpt starts; if the
    # encoder padded the stems, excerpts longer than both start at 0.
    same_length = stem_track.num_samples == wav_tracks[0].num_samples
    excerpt_seconds = 1.0 if same_length else 3.0
    count = CONFIG.num_frames(round(excerpt_seconds * 44100))
    if same_length:  # remix reads the stem file twice, at two starts
        plan = excerpt_plans([stem_track], excerpt_samples=44100, seed=1, remix=True)
        assert plan[0, 1] != plan[0, 3]
    # Validation, then remix: one track is its own partner, at another start.
    for arguments in ({"training": False}, {"remix": True, "epochs": 1}):
        stem_frames = _frames([stem_track], excerpt_seconds=excerpt_seconds, **arguments)
        wav_frames = _frames(wav_tracks, excerpt_seconds=excerpt_seconds, **arguments)
        for stem_part, wav_part in zip(stem_frames, wav_frames):
            assert stem_part.shape == wav_part.shape == (count, 64)
            assert np.all(np.isfinite(stem_part))
            # AAC is lossy: close, not equal.
            error = np.linalg.norm(stem_part - wav_part) / np.linalg.norm(wav_part)
            assert error < 0.1 and np.corrcoef(stem_part.ravel(), wav_part.ravel())[0, 1] > 0.99
        # ... and far from the vocals alone.
        assert np.linalg.norm(stem_frames[0] - wav_frames[1]) / np.linalg.norm(wav_frames[0]) > 0.3


def test_split_track_parts_read_only_their_own_samples(wav_tracks):
    from keras_dae.data.tracks import split_track

    track = wav_tracks[0]
    first, second = split_track(track, 0.5)
    assert first.num_samples + second.num_samples == track.num_samples
    whole = read_track(track)
    np.testing.assert_array_equal(read_track(second), whole[:, first.num_samples :])
    # Excerpts longer than a part are zero after its end, never the next part's audio.
    mixture, _ = _frames([first], training=False, excerpt_seconds=2.0)
    padded = np.zeros((whole.shape[0], 2 * 44100, 2), np.float32)
    padded[:, : first.num_samples] = whole[:, : first.num_samples]
    expected = spectral.spectrogram(padded.mean(axis=2).sum(axis=0), CONFIG).numpy()
    np.testing.assert_allclose(mixture, expected, rtol=1e-4, atol=1e-3)
    later, _ = _frames([second], training=False, excerpt_seconds=1.0)
    assert not np.allclose(later, mixture[: len(later)])
    with pytest.raises(ValueError, match="fraction must be between 0 and 1"):
        split_track(track, 1.0)
    with pytest.raises(ValueError, match="epochs must be a positive integer"):
        musdb_frames(wav_tracks, spectral=CONFIG, batch_size=4, epochs=0)


def test_first_epoch_continues_the_plan_of_a_longer_run(wav_tracks):
    arguments = dict(excerpt_samples=44100, seed=4, training=True, remix=True)
    two = excerpt_plans(wav_tracks, epochs=2, **arguments)
    second = excerpt_plans(wav_tracks, epochs=1, first_epoch=1, **arguments)
    np.testing.assert_array_equal(second, two[len(wav_tracks) :])
    assert not np.array_equal(second, two[: len(wav_tracks)])
