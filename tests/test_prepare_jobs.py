"""`keras-dae prepare --jobs`: shards written in worker processes are the bytes of one process, and resume."""

import shutil
import subprocess

import pytest

from keras_dae.data import prepare
from keras_dae.data.prepare import prepare_dataset, read_index
from keras_dae.data.synthetic import write_synthetic_musdb
from keras_dae.data.tracks import list_tracks
from keras_dae.spectral import SpectralConfig

# The workers are fresh processes: `prepare.CHUNK_FRAMES` and `FRAMES_PER_RECORD` cannot be patched there, so the
# long track (19 s, 2,183 frames) is what puts a chunk boundary (2,048 frames) inside a shard written by a worker.
CONFIG = SpectralConfig(num_bins=64)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """Three 2-second tracks and a 19-second one (`synthetic-long`)."""
    root = tmp_path_factory.mktemp("musdb")
    write_synthetic_musdb(root, num_tracks=3, seconds=2.0, seed=7)
    long = tmp_path_factory.mktemp("long")
    write_synthetic_musdb(long, num_tracks=1, seconds=19.0, seed=8)
    shutil.move(long / "train" / "synthetic-000", root / "train" / "synthetic-long")
    return root


@pytest.fixture(scope="module")
def tracks(root):
    return list_tracks(root, is_wav=True)


@pytest.fixture(scope="module")
def sequential(tracks, tmp_path_factory):
    """The cache of `tracks` written by `jobs=1`."""
    out = tmp_path_factory.mktemp("sequential") / "cache"
    prepare_dataset(tracks, out, spectral=CONFIG, progress=False, jobs=1)
    return out


def _files(directory):
    """`{name: bytes}` of the shards and sidecars (and the index) of a cache: no lock file, no temporary."""
    return {path.name: path.read_bytes() for path in sorted(directory.iterdir()) if not path.name.startswith(".")}


def _spy_on_workers(monkeypatch):
    """The shard names this process hands to worker processes, recorded as `prepare` hands them out."""
    handed_out = []
    real = prepare.in_processes

    def spy(function, items, **kwargs):
        handed_out.extend(item[1] for item in items)
        return real(function, items, **kwargs)

    monkeypatch.setattr(prepare, "in_processes", spy)
    return handed_out


@pytest.mark.slow
def test_jobs_2_writes_the_bytes_of_jobs_1_and_resumes_the_missing_shards(tracks, sequential, tmp_path,
                                                                          monkeypatch):
    handed_out = _spy_on_workers(monkeypatch)
    out = tmp_path / "cache"
    index = prepare_dataset(tracks, out, spectral=CONFIG, progress=False, jobs=2)
    names = [shard["name"] for shard in index["shards"]]
    assert sorted(handed_out) == sorted(names) and index["complete"]
    assert handed_out[0].endswith("synthetic_long")  # the longest track first
    reference = _files(sequential)
    assert len(reference) == 2 * 4 + 1 and _files(out) == reference  # shards, sidecars and index.json
    assert max(shard["frames"] for shard in index["shards"]) > prepare.CHUNK_FRAMES

    # A run killed while writing two shards: their sidecars never came, one left a temporary of a dead writer.
    (out / f"{names[0]}.json").unlink()
    (out / f"{names[3]}.tfrecord").unlink()
    (out / f"{names[3]}.json").unlink()
    stale = out / f".{names[3]}.tmp-{_dead_pid()}-abcdefgh.tfrecord"
    stale.write_bytes(b"half a shard")
    kept = {name: (out / f"{name}.tfrecord").stat().st_mtime_ns for name in names[1:3]}
    handed_out.clear()
    again = prepare_dataset(tracks, out, spectral=CONFIG, progress=False, jobs=2)
    assert sorted(handed_out) == sorted([names[0], names[3]]) and again == index
    assert {name: (out / f"{name}.tfrecord").stat().st_mtime_ns for name in kept} == kept
    assert not stale.exists() and _files(out) == reference
    assert not [path.name for path in out.iterdir() if ".tmp-" in path.name]
    # One shard missing: written in this process (one job per shard to write at most); none: nothing to do.
    (out / f"{names[2]}.json").unlink()
    handed_out.clear()
    assert prepare_dataset(tracks, out, spectral=CONFIG, progress=False, jobs=2)["complete"]
    assert prepare_dataset(tracks, out, spectral=CONFIG, progress=False, jobs=2)["complete"]
    assert handed_out == [] and _files(out) == reference


@pytest.mark.slow
def test_jobs_write_only_this_workers_part(tracks, sequential, tmp_path, monkeypatch):
    handed_out = _spy_on_workers(monkeypatch)
    out = tmp_path / "cache"
    index = prepare_dataset(tracks, out, spectral=CONFIG, worker_index=1, num_workers=2, progress=False, jobs=2)
    names = [shard["name"] for shard in index["shards"]]
    assert [shard["frames"] is not None for shard in index["shards"]] == [False, True, False, True]
    assert sorted(handed_out) == [names[1], names[3]] and not index["complete"]
    written = _files(out)
    assert sorted(written) == sorted([f"{names[i]}{suffix}" for i in (1, 3) for suffix in (".tfrecord", ".json")]
                                     + ["index.json"])
    reference = _files(sequential)
    assert all(written[name] == reference[name] for name in written if name != "index.json")
    # The other worker (in its process): together the cache of one process.
    prepare_dataset(tracks, out, spectral=CONFIG, worker_index=0, num_workers=2, progress=False, jobs=1)
    assert _files(out) == reference


def test_jobs_is_checked(tracks, tmp_path):
    for jobs in (0, -1, 1.5, "2"):
        with pytest.raises(ValueError, match="jobs must be a positive integer or None"):
            prepare_dataset(tracks, tmp_path / "cache", spectral=CONFIG, jobs=jobs)
    assert not (tmp_path / "cache").exists()


@pytest.mark.slow
def test_cli_prepare_jobs(root, sequential, tmp_path, run_cli):
    out = tmp_path / "cache"
    args = ["prepare", "--root", root, "--is-wav", "--out", out, "--num-bins", CONFIG.num_bins]
    code, stdout, err = run_cli(*args, "--jobs", "2", quiet=False)
    assert code == 0, err
    total = sum(shard["frames"] for shard in read_index(sequential)["shards"])
    assert f"4 of 4 shards, {total:,} frames, complete" in stdout
    assert f"{total}/{total}" in stdout  # the progress bar over every job's frames, to its end
    # The index records the selection (root, ...), which `sequential` was not given: compare the shards.
    assert {name: data for name, data in _files(out).items() if name != "index.json"} == {
        name: data for name, data in _files(sequential).items() if name != "index.json"}
    code, _, err = run_cli(*args, "--jobs", "0")
    assert code == 2 and "--jobs" in err and err.count("\n") == 1


def _dead_pid():
    """The pid of a process that has ended."""
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


@pytest.mark.parametrize("cores, expected", [(2, 1), (3, 1), (4, 2), (16, 4)])  # 16: the 4 shards
def test_default_jobs_is_one_per_two_cores(tracks, tmp_path, monkeypatch, cores, expected):
    """One preparation keeps more than a core busy: `jobs=None` starts a worker per `CORES_PER_JOB` cores."""
    used = []
    monkeypatch.setattr(prepare, "usable_cores", lambda: cores)
    monkeypatch.setattr(prepare, "_write_in_workers", lambda directory, todo, spectral, jobs, bar: used.append(jobs))
    monkeypatch.setattr(prepare, "_write_shard", lambda *args, **kwargs: used.append(1))
    index = prepare_dataset(tracks, tmp_path / "cache", spectral=CONFIG, progress=False, jobs=None)
    assert used[0] == expected and not index["complete"]  # nothing was written
