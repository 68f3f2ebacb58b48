"""`keras_dae.workers`: the pool behind every `--jobs`; a killed parent takes its workers with it."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from keras_dae.atomic import remove_stale_temporaries
from keras_dae.workers import in_processes, threads, worker_environment

TASK = '''
import os
import time
from pathlib import Path

from keras_dae.atomic import atomic_path


def slow(out, name):
    """Writes OUT/NAME atomically, but first sleeps a minute inside the write (a track in flight)."""
    with atomic_path(Path(out) / name) as tmp:
        tmp.write_text("partial")
        (Path(out) / f"{name}.pid").write_text(str(os.getpid()))
        time.sleep(60)
    return name


def square(value):
    return value * value, int(os.environ["KERAS_DAE_THREADS"])
'''


@pytest.fixture
def task_module(tmp_path, monkeypatch):
    (tmp_path / "pool_task.py").write_text(TASK)
    monkeypatch.syspath_prepend(str(tmp_path))  # spawned workers get this process's sys.path
    import pool_task

    return pool_task


def _gone(pid):
    try:
        with open(f"/proc/{pid}/status") as handle:
            return any(line.startswith("State:") and "Z" in line.split()[1] for line in handle)
    except FileNotFoundError:
        return True


def test_threads_are_shared_out(monkeypatch):
    monkeypatch.setattr("keras_dae.workers.usable_cores", lambda: 16)
    assert worker_environment(4)["TF_NUM_INTRAOP_THREADS"] == "4"
    assert worker_environment(32)["KERAS_DAE_THREADS"] == "1"
    monkeypatch.setenv("KERAS_DAE_THREADS", "3")
    assert threads() == 3


@pytest.mark.slow
def test_results_come_back_with_their_items(task_module, monkeypatch):
    monkeypatch.setattr("keras_dae.workers.usable_cores", lambda: 4)
    found = dict(in_processes(task_module.square, [(2,), (3,), (4,)], jobs=2))
    assert found == {(2,): (4, 2), (3,): (9, 2), (4,): (16, 2)}  # 4 cores // 2 jobs: 2 threads each


@pytest.mark.slow
def test_kill_9_of_the_parent_ends_its_workers_and_a_rerun_cleans_their_temporaries(tmp_path, task_module):
    out = tmp_path / "out"
    out.mkdir()
    parent = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(tmp_path)!r})
        from keras_dae.workers import in_processes
        from pool_task import slow
        if __name__ == "__main__":
            for _ in in_processes(slow, [({str(out)!r}, "a"), ({str(out)!r}, "b")], jobs=2):
                pass
    """)
    process = subprocess.Popen([sys.executable, "-c", parent], stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not all((out / f"{name}.pid").exists() for name in "ab"):
            assert process.poll() is None and time.monotonic() < deadline, "the workers did not start"
            time.sleep(0.2)
        workers = [int((out / f"{name}.pid").read_text()) for name in "ab"]
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        deadline = time.monotonic() + 10
        while not all(_gone(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert all(_gone(pid) for pid in workers), "a worker outlived its killed parent by 10 s"
    finally:
        process.kill()
    left = sorted(path.name for path in out.iterdir() if not path.name.endswith(".pid"))
    assert len(left) == 2 and all(name.startswith((".a.tmp-", ".b.tmp-")) for name in left), left
    remove_stale_temporaries(out)
    assert sorted(path.name for path in out.iterdir()) == ["a.pid", "b.pid"]  # no output, no temporary
