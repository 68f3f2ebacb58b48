"""`keras_dae.data.demo`: demo tracks in the MUSDB18-HQ layout, the real clip mixed into synthetic tracks."""

import numpy as np
import pytest
import soundfile

from keras_dae.data.demo import demo_track, write_demo_musdb
from keras_dae.data.example import SOURCES, load_example
from keras_dae.data.tracks import list_tracks


def test_demo_tree_reads_as_musdb_and_adds_up(tmp_path):
    dirs = write_demo_musdb(tmp_path, num_train=2, num_test=1, seconds=2.0, seed=3)
    assert [d.relative_to(tmp_path).as_posix() for d in dirs] == ["train/demo-000", "train/demo-001",
                                                                  "test/demo-000", "train/demo-valid-000"]
    # The validation track sorts last among the train tracks: the one training holds out.
    assert [t.name for t in list_tracks(tmp_path, is_wav=True, subsets="train")] == [
        "demo-000", "demo-001", "demo-valid-000"]
    assert len(list_tracks(tmp_path, is_wav=True, subsets="test")) == 1
    for track_dir in dirs:
        sources = {name: soundfile.read(track_dir / f"{name}.wav", dtype="float32")[0] for name in SOURCES}
        mixture, rate = soundfile.read(track_dir / "mixture.wav", dtype="float32")
        assert rate == 44100 and mixture.shape == (88200, 2)
        np.testing.assert_array_equal(mixture, sources["vocals"] + sources["drums"] + sources["bass"]
                                      + sources["other"])
        assert np.abs(mixture).max() <= 0.99 + 1e-6
    train, test, valid = (soundfile.read(tmp_path / path / "vocals.wav")[0]
                          for path in ("train/demo-000", "test/demo-000", "train/demo-valid-000"))
    assert not np.allclose(train, test) and not np.allclose(train, valid) and not np.allclose(test, valid)


def test_training_holds_out_the_validation_track(tmp_path):
    from keras_dae.training import _train_and_valid_tracks

    write_demo_musdb(tmp_path, num_train=6, num_test=1, seconds=1.0, seed=0)
    train, valid, how = _train_and_valid_tracks(tmp_path, True)
    assert [t.name for t in train] == [f"demo-{index:03d}" for index in range(6)]
    assert [t.name for t in valid] == ["demo-valid-000"] and how == "held-out train tracks: demo-valid-000"


def test_demo_track_holds_the_real_clip():
    """Each source is a scaled synthetic source plus a scaled copy of the clip's, tiled from an offset."""
    from keras_dae.data.synthetic import synthesize_track

    clip = load_example()
    seconds = 2 * len(clip.vocals) / clip.rate + 0.5  # longer than the clip: it is tiled
    seed = (0, 1, 2)
    track = demo_track(clip, seconds, seed=seed)
    synthetic = synthesize_track(seconds, rate=clip.rate, seed=seed)
    offset = int(np.random.default_rng(seed).integers(len(clip.vocals)))
    for name in SOURCES:
        length = len(track[name])
        tiled = np.concatenate([clip.sources[name]] * 4)[offset : offset + length]
        basis = np.stack([synthetic[name].ravel(), tiled.ravel()], axis=1).astype(np.float64)
        weights, *_ = np.linalg.lstsq(basis, track[name].ravel(), rcond=None)
        residual = track[name].ravel() - basis @ weights
        assert np.linalg.norm(residual) < 1e-5 * np.linalg.norm(track[name])
        assert weights[1] > 0.1  # the clip is in it


@pytest.mark.parametrize("kwargs, message", [
    ({"num_train": 0}, "num_train"), ({"num_test": 1.5}, "num_test"), ({"seconds": -1.0}, "seconds"),
    ({"seed": -1}, "seed"), ({"num_valid": -1}, "num_valid"),
])
def test_bad_arguments(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        write_demo_musdb(tmp_path, **kwargs)
    assert not any(tmp_path.iterdir())
