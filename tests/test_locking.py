"""One writer per output directory (`keras_dae.locking`) and the temporaries a killed writer leaves (`keras_dae.atomic`).

The second writer is a real second process throughout: either a small holder
process that takes the lock (`_holding`, which loads `keras_dae/locking.py`
without TensorFlow) while a command runs in this process, or this process
holding the lock while the console script runs in a fresh one.
"""

import contextlib
import errno
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from keras_dae import locking
from keras_dae.atomic import (
    TEMPORARY,
    atomic_path,
    remove_stale_temporaries,
    temporary_prefix,
)
from keras_dae.locking import LOCK, DirectoryInUse, directory_lock
from keras_dae.spectral import SpectralConfig

CONFIG = SpectralConfig(num_bins=64)  # `model`, `saved_model` (conftest.py): an untrained sf over these bins
TIMEOUT = 120

_HOLDER = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("keras_dae_locking", sys.argv[1])
locking = importlib.util.module_from_spec(spec)
spec.loader.exec_module(locking)
with __import__("contextlib").ExitStack() as stack:
    for options in json.loads(sys.argv[3]):
        stack.enter_context(locking.directory_lock(sys.argv[2], **options))
    print("locked", flush=True)
    sys.stdin.read()
"""


@contextlib.contextmanager
def _holding(directory, *options):
    """A separate process holding `directory_lock(directory, **options)` (each of `options`; default one
    exclusive lock) until the block ends: its `Popen`."""
    process = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, locking.__file__, str(directory), json.dumps(list(options) or [{}])],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert process.stdout.readline().strip() == "locked"
        yield process
    finally:
        if process.poll() is None:
            process.stdin.close()
            process.wait(timeout=TIMEOUT)


def _dead_pid():
    """The pid of a process that has ended (and been reaped)."""
    process = subprocess.Popen([sys.executable, "-c", ""])
    process.wait()
    return process.pid


def _snapshot(directory):
    """Every entry under `directory`: its kind, contents and modification time."""
    found = {}
    for path in sorted(Path(directory).rglob("*")):
        stat = path.stat()
        found[str(path.relative_to(directory))] = (
            path.is_dir(), None if path.is_dir() else path.read_bytes(), stat.st_mtime_ns)
    return found


def _temporaries(directory):
    return sorted(str(path.relative_to(directory)) for path in Path(directory).rglob("*")
                  if TEMPORARY.match(path.name))


# -- the lock -------------------------------------------------------------------------------------------------


def test_lock_file_names_its_owner_and_goes_with_the_lock(tmp_path):
    directory = tmp_path / "new" / "out"
    with directory_lock(directory) as locked:
        assert locked == directory and directory.is_dir()
        pid, command = (directory / LOCK).read_text().splitlines()
        assert int(pid) == os.getpid() and command
    # The lock file is removed, and so are the directories the lock created (empty again).
    assert not (tmp_path / "new").exists()
    (tmp_path / "kept").mkdir()
    with directory_lock(tmp_path / "kept"):
        (tmp_path / "kept" / "file").write_text("x")
    assert [path.name for path in (tmp_path / "kept").iterdir()] == ["file"]


def test_nested_locks_and_the_same_directory_again_in_one_thread(tmp_path):
    with directory_lock(tmp_path / "out"):
        with directory_lock(tmp_path / "out" / "runs" / "sf"):  # another directory, inside the first
            with directory_lock(tmp_path / "out"):  # re-entrant: the process never waits for itself
                assert (tmp_path / "out" / LOCK).exists()
            assert (tmp_path / "out" / LOCK).exists()  # still held by the outer block
        assert not (tmp_path / "out" / "runs").exists()
    assert not (tmp_path / "out").exists()


def test_another_thread_is_refused(tmp_path):
    errors = []

    def other():
        try:
            with directory_lock(tmp_path):
                pass
        except DirectoryInUse as error:
            errors.append(error)

    with directory_lock(tmp_path):
        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
    assert len(errors) == 1 and "another thread of this process" in str(errors[0])
    with directory_lock(tmp_path):  # free again
        pass


def test_a_file_is_not_a_directory(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="`out` '.*file' is a file; give a directory"):
        with directory_lock(tmp_path / "file"):
            pass


def test_a_second_process_is_refused_and_named(tmp_path):
    with _holding(tmp_path) as holder:
        with pytest.raises(DirectoryInUse) as caught:
            with directory_lock(tmp_path, parameter="base"):
                pytest.fail("two owners")
        assert isinstance(caught.value, OSError)  # a user error: one line in the CLI, exit code 1
        assert caught.value.owner[0] == holder.pid and caught.value.directory == tmp_path
        message = str(caught.value)
        assert f"'{tmp_path}' is in use by another keras-dae process (pid {holder.pid}: python -c " in message
        assert message.endswith("wait for it to finish or use another `base`.") and "\n" not in message
    with directory_lock(tmp_path):
        pass
    assert list(tmp_path.iterdir()) == []


def test_a_killed_owner_does_not_block(tmp_path):
    with _holding(tmp_path) as holder:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=TIMEOUT)
        # The killed owner's lock file is still there, naming it; the kernel has let go of its flock.
        assert int((tmp_path / LOCK).read_text().split()[0]) == holder.pid
        with directory_lock(tmp_path):
            assert int((tmp_path / LOCK).read_text().split()[0]) == os.getpid()
    assert not (tmp_path / LOCK).exists()


def test_a_file_system_without_locks_warns_and_goes_on(tmp_path, monkeypatch, caplog):
    def no_locks(fd, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(locking.fcntl, "flock", no_locks)
    with directory_lock(tmp_path / "out"):
        (tmp_path / "out" / "file").write_text("x")
    assert "cannot lock" in caplog.text and "No locks available" in caplog.text
    assert [path.name for path in (tmp_path / "out").iterdir()] == ["file"]


def test_workers_share_a_directory_each_holding_its_part(tmp_path):
    worker_0 = ({"shared": True}, {"part": "worker-0"})
    with _holding(tmp_path, *worker_0):
        with directory_lock(tmp_path, shared=True), directory_lock(tmp_path, part="worker-1"):
            assert sorted(path.name for path in tmp_path.iterdir()) == [
                ".keras-dae.lock", ".keras-dae.worker-0.lock", ".keras-dae.worker-1.lock"]
        with pytest.raises(DirectoryInUse, match=r"\(worker-0\) is in use by another keras-dae process"):
            with directory_lock(tmp_path, part="worker-0"):
                pass
        with pytest.raises(DirectoryInUse):  # a single writer waits for every worker
            with directory_lock(tmp_path):
                pass
        # The worker that lets go last removes the shared lock file; the other leaves it.
        assert (tmp_path / LOCK).exists()
    assert list(tmp_path.iterdir()) == []


def test_prepare_workers_and_a_single_preparation(tmp_path):
    from keras_dae.data.prepare import prepare_dataset
    from keras_dae.data.tracks import list_tracks

    tracks = list_tracks()
    tracks = [tracks[0], tracks[0]]  # two shards: one per worker
    config = SpectralConfig(num_bins=32)
    with _holding(tmp_path, {"shared": True}, {"part": "worker-0"}):
        with pytest.raises(DirectoryInUse, match=r"\(worker-0\)"):
            prepare_dataset(tracks, tmp_path, spectral=config, worker_index=0, num_workers=2, progress=False)
        with pytest.raises(DirectoryInUse):
            prepare_dataset(tracks, tmp_path, spectral=config, progress=False)
        index = prepare_dataset(tracks, tmp_path, spectral=config, worker_index=1, num_workers=2, progress=False)
        assert [shard["frames"] is not None for shard in index["shards"]] == [False, True]


# -- a second command on a directory in use: one line, exit code 1, nothing touched ------------------------


def _command(name, tmp_path, saved_model):
    """`(arguments, the directory the command locks, the flag the message names)` of a command."""
    out = tmp_path / "out"
    if name == "train":
        return ["train", "--out", out, "--num-bins", "32", "--epochs", "1", "--steps-per-epoch", "1"], out, "--out"
    if name == "synth":
        return ["synth", "--out", out, "--tracks", "1", "--seconds", "0.1"], out, "--out"
    if name == "prepare":
        return ["prepare", "--out", out, "--num-bins", "32"], out, "--out"
    if name == "couplings":
        return ["couplings", "--model", saved_model, "--out", out, "--solver", "lstsq", "--max-frames", "200"], \
            out, "--out"
    if name == "compare":
        return ["couplings", "--compare", tmp_path / "a", tmp_path / "b", "--out", out], out, "--out"
    if name == "separate":
        import numpy as np
        import soundfile

        audio = tmp_path / "in.wav"
        soundfile.write(audio, np.zeros((4000, 2), np.float32), 44100)
        return ["separate", "--model", saved_model, "--out", out, audio], out / "in", "--out"
    if name == "evaluate":
        return ["evaluate", "--model", saved_model, "--out", out, "--no-references"], out, "--out"
    if name == "export":
        return ["export", "--model", saved_model, "--out", out, "--name", "m"], out / "m", "--name"
    if name == "reproduce":
        return ["reproduce", "--out", out], out, "--out"
    raise AssertionError(name)


def _populate(directory):
    """A directory in use: a file, and a temporary of a writer that is gone (which a refused command must
    not remove either)."""
    directory.mkdir(parents=True)
    (directory / "keep.txt").write_text("mine")
    (directory / f".config.tmp-{_dead_pid()}-abcdefgh.json").write_text("{")


@pytest.mark.parametrize("name", ["train", "synth", "prepare", "couplings", "compare", "separate", "evaluate",
                                  "export", "reproduce"])
def test_a_command_on_a_directory_in_use_is_refused_and_touches_nothing(name, tmp_path, saved_model, run_cli):
    args, locked, flag = _command(name, tmp_path, saved_model)
    _populate(locked)
    with _holding(locked) as holder:
        before = _snapshot(tmp_path)  # with the holder's lock file
        code, out, err = run_cli(*args)
        assert _snapshot(tmp_path) == before
    assert code == 1 and out == "" and err.count("\n") == 1, err
    assert err.startswith(f"keras-dae: error: '{locked}' is in use by another keras-dae process (pid {holder.pid}: ")
    assert f"wait for it to finish or use another {flag}." in err and "Traceback" not in err


@pytest.mark.slow
@pytest.mark.parametrize("name", ["train", "synth"])
def test_console_script_on_a_directory_in_use(name, tmp_path, saved_model, run_cli):
    """The issue's case: a second `keras-dae train --out DIR` (a fresh process) while DIR is being written."""
    args, locked, _ = _command(name, tmp_path, saved_model)
    _populate(locked)
    with directory_lock(locked):
        before = _snapshot(tmp_path)
        code, out, err = run_cli(*args, process=True, timeout=TIMEOUT)
        assert _snapshot(tmp_path) == before
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 1 and out == "" and len(lines) == 1, err
    assert f"'{locked}' is in use by another keras-dae process (pid {os.getpid()}: " in lines[0]
    assert lines[0].endswith("wait for it to finish or use another --out. (rerun with -vv for details)")


# -- stale temporaries --------------------------------------------------------------------------------------


def test_temporary_names_carry_the_writer_pid(tmp_path):
    with atomic_path(tmp_path / "track.stem.mp4") as tmp:
        match = TEMPORARY.match(tmp.name)
        assert match and int(match["pid"]) == os.getpid() and tmp.name.endswith(".mp4")
        assert match["name"] + match["suffix"] == "track.stem.mp4"
        assert tmp.name.startswith(temporary_prefix("track.stem"))


def test_only_the_temporaries_of_gone_writers_are_removed(tmp_path):
    dead, alive = _dead_pid(), os.getpid()
    stale = [f".config.tmp-{dead}-abcdefgh.json", f".model.tmp-{dead}-a_b0c1d2.keras", f".3.tmp-{dead}-0123abcd"]
    kept = [
        f".config.tmp-{alive}-abcdefgh.json",  # a live writer's
        ".config.abcdefgh.tmp.json",  # the old naming: no pid, cannot be proven stale
        f"config.tmp-{dead}-abcdefgh.json",  # not hidden: not a keras-dae temporary
        f".config.tmp-{dead}-abc.json",  # not the random part of a temporary
        ".config.tmp-0-abcdefgh.json",  # pid 0 is no process
        "notes.txt",
    ]
    for name in stale[:2] + kept:
        (tmp_path / name).write_text("x")
    (tmp_path / stale[2]).mkdir()
    (tmp_path / stale[2] / "saved_model.pb").write_text("x")
    deep = tmp_path / "train" / "track"
    deep.mkdir(parents=True)
    (deep / f".mixture.tmp-{dead}-abcdefgh.wav").write_text("x")

    assert remove_stale_temporaries(tmp_path / "missing") == []
    removed = remove_stale_temporaries(tmp_path)
    assert sorted(path.name for path in removed) == sorted(stale)
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(kept + ["train"])
    assert (deep / f".mixture.tmp-{dead}-abcdefgh.wav").exists()  # depth 0: not below
    assert remove_stale_temporaries(tmp_path, depth=1) == []
    assert remove_stale_temporaries(tmp_path, depth=2) == [deep / f".mixture.tmp-{dead}-abcdefgh.wav"]


def test_finals_restrict_which_temporaries_go(tmp_path):
    dead = _dead_pid()
    for name in ("a", "b"):
        (tmp_path / f".{name}.tmp-{dead}-abcdefgh.tfrecord").write_text("x")
    assert [path.name for path in remove_stale_temporaries(tmp_path, finals={"b.tfrecord"})] == [
        f".b.tmp-{dead}-abcdefgh.tfrecord"]
    assert (tmp_path / f".a.tmp-{dead}-abcdefgh.tfrecord").exists()


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc for process start times")
def test_a_reused_pid_does_not_keep_an_older_temporary(tmp_path):
    """A temporary named with a live pid but older than that process (the pid was reused, e.g. pid 1 in a
    new container) is a gone writer's."""
    old, new = (tmp_path / f".{name}.tmp-{os.getpid()}-abcdefgh.json" for name in ("old", "new"))
    for path in (old, new):
        path.write_text("x")
    an_hour_ago = time.time() - 3600
    os.utime(old, (an_hour_ago, an_hour_ago))
    assert remove_stale_temporaries(tmp_path) == [old]
    assert new.exists()


def test_a_rerun_removes_a_killed_writers_temporaries_and_keeps_a_live_ones(tmp_path, run_cli):
    out = tmp_path / "synthetic"
    track = out / "train" / "synthetic-000"
    track.mkdir(parents=True)
    dead = _dead_pid()
    stale = [track / f".vocals.tmp-{dead}-abcdefgh.wav", out / f".x.tmp-{dead}-abcdefgh"]
    live = track / f".vocals.tmp-{os.getpid()}-abcdefgh.wav"
    stale[0].write_bytes(b"RIFF")
    stale[1].mkdir()
    live.write_bytes(b"RIFF")
    (out / LOCK).write_text(f"{dead}\nkeras-dae synth --out {out}\n")  # a killed run's lock file
    code, _, err = run_cli("synth", "--out", out, "--tracks", "1", "--seconds", "0.1")
    assert code == 0, err
    assert _temporaries(out) == [str(live.relative_to(out))]
    assert not (out / LOCK).exists()
    assert sorted(path.name for path in track.iterdir()) == sorted(
        [live.name, *(f"{stem}.wav" for stem in ("mixture", "drums", "bass", "other", "vocals"))])


def test_separate_removes_the_scratch_directory_of_a_killed_separation(saved_model, tmp_path, run_cli):
    import numpy as np
    import soundfile

    audio = tmp_path / "in.wav"
    soundfile.write(audio, np.zeros((4000, 2), np.float32), 44100)
    scratch = tmp_path / "out" / "in" / f".separate.tmp-{_dead_pid()}-abcdefgh"
    scratch.mkdir(parents=True)
    (scratch / "input.f32").write_bytes(b"\0" * 1024)
    code, _, err = run_cli("separate", "--model", saved_model, "--out", tmp_path / "out", audio)
    assert code == 0, err
    assert sorted(path.name for path in (tmp_path / "out" / "in").iterdir()) == ["accompaniment.wav", "vocals.wav"]


# -- kill -9 in the middle of a write, then a rerun ------------------------------------------------------------

_STALLED = """
import importlib, os, sys, time
from keras_dae_cli import main

target = importlib.import_module("{module}")

real = target.{function}


def stall(path, *args, **kwargs):
    result = real(path, *args, **kwargs)
    print(path, flush=True)  # the temporary is on disk: now the process is killed
    time.sleep(600)
    return result


target.{function} = stall
main(["--quiet", *sys.argv[1:]])
"""


def _kill_mid_write(tmp_path, module, function, *args):
    """Runs `keras-dae ARGS...` in a process stopped inside `module.function` (after it wrote the temporary
    named by its first argument) and kills it with SIGKILL: that temporary's `Path`."""
    script = tmp_path / "stalled.py"
    script.write_text(_STALLED.format(module=module, function=function))
    process = subprocess.Popen([sys.executable, script, *map(str, args)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline().strip()
        assert line, process.stderr.read()[-3000:]
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=TIMEOUT)
    assert process.returncode == -signal.SIGKILL
    temporary = Path(line)
    match = TEMPORARY.match(temporary.name)
    assert temporary.exists() and match and int(match["pid"]) == process.pid, line
    return temporary


@pytest.mark.slow
def test_synth_killed_mid_write_then_rerun(tmp_path, run_cli):
    out = tmp_path / "synthetic"
    args = ["synth", "--out", out, "--tracks", "2", "--seconds", "0.5"]
    temporary = _kill_mid_write(tmp_path, "soundfile", "write", *args)
    assert temporary.suffix == ".wav" and (out / LOCK).exists()  # what kill -9 leaves
    code, _, err = run_cli(*args)
    assert code == 0, err
    assert _temporaries(out) == [] and not (out / LOCK).exists()
    assert len(list(out.rglob("*.wav"))) == 10


@pytest.mark.slow
def test_export_killed_mid_write_then_rerun(saved_model, tmp_path, run_cli):
    base = tmp_path / "serving"
    args = ["export", "--model", saved_model, "--out", base, "--name", "m"]
    temporary = _kill_mid_write(tmp_path, "keras_dae.export", "_make_readable", *args)
    assert temporary.parent == base / "m" and temporary.name.startswith(".1.tmp-")
    assert (temporary / "saved_model.pb").exists()  # a whole SavedModel, never renamed into place
    code, _, err = run_cli(*args)
    assert code == 0, err
    assert sorted(path.name for path in (base / "m").iterdir()) == ["1"]
