"""The TFRecord frame cache: round trip, resume, workers, mismatches."""

import json
import os

import numpy as np
import pytest

from keras_dae import spectral
from keras_dae.data import prepare
from keras_dae.data.prepare import prepare_dataset, prepared_frames, read_index
from keras_dae.data.synthetic import write_synthetic_musdb
from keras_dae.data.tracks import list_tracks, read_track
from keras_dae.spectral import SpectralConfig

CONFIG = SpectralConfig(num_bins=64)


@pytest.fixture(scope="module")
def tracks(tmp_path_factory):
    root = tmp_path_factory.mktemp("musdb")
    write_synthetic_musdb(root, num_tracks=3, seconds=2.0, seed=3)
    return list_tracks(root, is_wav=True)


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch):
    # 2 s is 235 frames: chunks of 50 frames and records of 16 put several
    # chunk and record boundaries inside every track.
    monkeypatch.setattr(prepare, "CHUNK_FRAMES", 50)
    monkeypatch.setattr(prepare, "FRAMES_PER_RECORD", 16)


def _whole_track_frames(track):
    mono = read_track(track).mean(axis=2)
    mixture = spectral.spectrogram(mono.sum(axis=0), CONFIG).numpy()
    vocals = spectral.spectrogram(mono[prepare.VOCALS], CONFIG).numpy()
    return mixture, vocals


def _read_all(directory, **kwargs):
    kwargs = {"batch_size": 40, "training": False, "cycle_length": 1, **kwargs}
    batches = list(prepared_frames(directory, **kwargs).as_numpy_iterator())
    return np.concatenate([m for m, _ in batches]), np.concatenate([v for _, v in batches])


def test_round_trip_gives_the_frames_of_each_whole_track(tracks, tmp_path):
    index = prepare_dataset(tracks, tmp_path, spectral=CONFIG, progress=False)
    expected = [_whole_track_frames(track) for track in tracks]
    assert index["complete"]
    assert [shard["frames"] for shard in index["shards"]] == [len(m) for m, _ in expected]
    assert index["spectral"] == CONFIG.to_dict()
    mixture, vocals = _read_all(tmp_path)
    np.testing.assert_allclose(mixture, np.concatenate([m for m, _ in expected]), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(vocals, np.concatenate([v for _, v in expected]), rtol=1e-5, atol=1e-4)
    # The vocals are not the mixture (the check above compares distinct signals).
    assert np.abs(mixture - vocals).max() > 1.0
    on_disk = json.loads((tmp_path / "index.json").read_text())
    assert on_disk["total_frames"] == len(mixture)


def test_training_stream_shuffles_the_same_frames_deterministically(tracks, tmp_path):
    prepare_dataset(tracks, tmp_path, spectral=CONFIG, progress=False)
    ordered, _ = _read_all(tmp_path)
    stream = dict(batch_size=32, training=True, epochs=1, seed=5, shuffle_buffer=500)
    first, first_vocals = _read_all(tmp_path, **stream)
    again, _ = _read_all(tmp_path, **stream)
    other, _ = _read_all(tmp_path, **{**stream, "seed": 6})
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    assert not np.array_equal(first, ordered)
    # One epoch holds every frame once, pairs kept together.
    np.testing.assert_array_equal(np.sort(first, axis=0), np.sort(ordered, axis=0))
    pairs_in = {row.tobytes() for row in np.concatenate([first, first_vocals], axis=1)}
    assert len(pairs_in) == len(first)
    two_epochs, _ = _read_all(tmp_path, **{**stream, "epochs": 2})
    assert len(two_epochs) == 2 * len(ordered)


def test_resume_rewrites_only_incomplete_shards(tracks, tmp_path, monkeypatch):
    prepare_dataset(tracks, tmp_path, spectral=CONFIG, progress=False)
    names = [shard["name"] for shard in read_index(tmp_path)["shards"]]
    reference = _read_all(tmp_path)
    # A run killed while writing the second shard: its sidecar never came.
    (tmp_path / f"{names[1]}.json").unlink()
    with pytest.raises(ValueError, match="incomplete: 1 of 3 shards missing"):
        read_index(tmp_path)
    kept = {name: (tmp_path / f"{name}.tfrecord").stat().st_mtime_ns for name in (names[0], names[2])}
    written = []
    real_write_shard = prepare._write_shard
    monkeypatch.setattr(
        prepare, "_write_shard", lambda directory, name, *rest: written.append(name) or real_write_shard(directory, name, *rest)
    )
    index = prepare_dataset(tracks, tmp_path, spectral=CONFIG, progress=False)
    assert written == [names[1]] and index["complete"]
    assert {name: (tmp_path / f"{name}.tfrecord").stat().st_mtime_ns for name in kept} == kept
    for got, want in zip(_read_all(tmp_path), reference):
        np.testing.assert_array_equal(got, want)
    # A complete cache is not rewritten at all.
    written.clear()
    prepare_dataset(tracks, tmp_path, spectral=CONFIG, progress=False)
    assert written == []


def test_failure_mid_shard_leaves_no_partial_file(tracks, tmp_path, monkeypatch):
    calls = []

    def failing_records(mixture, vocals):
        calls.append(1)
        if len(calls) == 7:  # 5 chunks per track: this is inside the second track
            raise KeyboardInterrupt
        yield from real_records(mixture, vocals)

    real_records = prepare._records
    monkeypatch.setattr(prepare, "_records", failing_records)
    with pytest.raises(KeyboardInterrupt):
        prepare_dataset(tracks, tmp_path, spectral=CONFIG, progress=False)
    leftovers = sorted(path.name for path in tmp_path.iterdir())
    assert not [name for name in leftovers if ".tmp" in name], leftovers
    shards = [name for name in leftovers if name.endswith(".tfrecord")]
    sidecars = [name for name in leftovers if name.endswith(".json") and name != "index.json"]
    assert len(shards) == len(sidecars) == 1
    with pytest.raises(ValueError, match="incomplete"):
        read_index(tmp_path)
    monkeypatch.setattr(prepare, "_records", real_records)
    assert prepare_dataset(tracks, tmp_path, spectral=CONFIG, progress=False)["complete"]


def test_workers_split_the_tracks_and_together_make_the_same_cache(tracks, tmp_path):
    single = tmp_path / "single"
    prepare_dataset(tracks, single, spectral=CONFIG, progress=False)
    shared = tmp_path / "shared"
    first = prepare_dataset(tracks, shared, spectral=CONFIG, worker_index=0, num_workers=2, progress=False)
    assert not first["complete"]
    assert [shard["frames"] is not None for shard in first["shards"]] == [True, False, True]
    with pytest.raises(ValueError, match="incomplete: 1 of 3"):
        prepared_frames(shared, batch_size=8)
    second = prepare_dataset(tracks, shared, spectral=CONFIG, worker_index=1, num_workers=2, progress=False)
    assert second["complete"]
    for got, want in zip(_read_all(shared), _read_all(single)):
        np.testing.assert_array_equal(got, want)


def test_mismatches_and_bad_arguments(tracks, tmp_path):
    prepare_dataset(tracks[:2], tmp_path, spectral=CONFIG, progress=False)
    with pytest.raises(ValueError, match="num_bins 64 there, 32 here"):
        prepare_dataset(tracks[:2], tmp_path, spectral=SpectralConfig(num_bins=32), progress=False)
    with pytest.raises(ValueError, match="another track selection"):
        prepare_dataset(tracks, tmp_path, spectral=CONFIG, progress=False)
    with pytest.raises(ValueError, match="num_bins 64 there, 32 here"):
        prepared_frames(tmp_path, batch_size=8, spectral=SpectralConfig(num_bins=32))
    index = prepare_dataset(tracks, tmp_path, spectral=CONFIG, overwrite=True, progress=False)
    assert index["complete"] and len(index["shards"]) == 3
    assert len(list(tmp_path.glob("*.tfrecord"))) == 3
    with pytest.raises(ValueError, match="worker_index must be in"):
        prepare_dataset(tracks, tmp_path, spectral=CONFIG, worker_index=2, num_workers=2)
    with pytest.raises(ValueError, match="tracks are at 44100 Hz but the spectral settings say 22050 Hz"):
        prepare_dataset(tracks, tmp_path, spectral=SpectralConfig(num_bins=64, sample_rate=22050))
    with pytest.raises(ValueError, match="not a prepared dataset"):
        prepared_frames(tmp_path / "nowhere", batch_size=8)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        prepare_dataset(tracks, tmp_path / "file", spectral=CONFIG)
    (tmp_path / "index.json").write_text("{not json")
    with pytest.raises(ValueError, match="cannot read"):
        read_index(tmp_path)
    assert os.path.exists(tmp_path / "index.json")


def test_cli_prepare_resumes_and_refuses_other_settings(tracks, tmp_path, run_cli):
    root = str(tracks[0].paths[0]).rsplit("/train/", 1)[0]
    args = ["prepare", "--root", root, "--is-wav", "--out", tmp_path, "--num-bins", "64"]
    code, out, err = run_cli(*args)
    assert code == 0, err
    assert f"3 of 3 shards, {3 * CONFIG.num_frames(2 * 44100)} frames, complete" in out
    assert read_index(tmp_path)["selection"] == {"root": root, "is_wav": True, "subset": "train", "split": None}
    code, _, err = run_cli(*args[:-1], "32")
    assert code == 1
    assert err.count("\n") == 1 and "num_bins 64 there, 32 here" in err
    code, _, err = run_cli(*args, "--worker-index", "2", "--num-workers", "2")
    assert code == 2
    assert "--worker-index" in err


def test_cli_info_names_the_audio_backend(run_cli):
    code, out, _ = run_cli("info", quiet=False)
    assert code == 0
    assert "audio backend" in out and ("soundfile" in out or "tensorflow-io" in out)
    assert "tensorflow" in out and "ffmpeg" in out


def test_a_decoded_stem_track_is_freed_after_its_frames(monkeypatch):
    """A `.stem.mp4` is decoded whole; that array must not outlive its frames (`tf.numpy_function` keeps the
    reading function registered: holding the array there kept every prepared track in memory, 170 MB per
    2 minutes of stems)."""
    import gc
    import weakref

    from keras_dae.data.tracks import TrackInfo

    decoded = []

    def fake_read_track(track, start=0, num_samples=None):
        audio = np.random.default_rng(0).uniform(-0.5, 0.5, (4, track.num_samples, 2)).astype(np.float32)
        decoded.append(weakref.ref(audio))
        return audio

    monkeypatch.setattr(prepare, "read_track", fake_read_track)
    track = TrackInfo("stem", "train", 44100, 44100, 2, ("a.stem.mp4",) * 4, stem_ids=(1, 2, 3, 4))
    frames = sum(len(mixture) for mixture, _ in prepare.track_frames(track, spectral=CONFIG))
    gc.collect()
    assert frames == CONFIG.num_frames(44100) and len(decoded) == 1
    assert decoded[0]() is None
