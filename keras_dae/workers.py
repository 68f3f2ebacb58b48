"""Running one function over many items in spawned worker processes: the `--jobs` of the CPU-bound commands.

`evaluate` (tracks), `separate_files` (audio files) and `prepare_dataset`
(tracks) hand their items to `in_processes`, which runs them in a
`concurrent.futures.ProcessPoolExecutor` of `jobs` processes and returns
their results to this process in the order they finish. The rules they
share:

- Processes are spawned, not forked (TensorFlow is not fork-safe): a script
  calling one of those functions with `jobs` > 1 must do so under
  `if __name__ == "__main__":`.
- Each worker runs TensorFlow and BLAS on `usable_cores() // jobs` threads
  (at least one), set in its environment before they load, so N jobs use
  about the machine's cores, not N times them.
- A worker watches its parent and exits within about a second of its death
  (`kill -9` of the command): no orphan goes on computing. Each item writes
  its own output atomically (`keras_dae.atomic`), so only the items in
  flight are lost, and their temporaries are removed by the next run.
- The parent holds the lock of the directory it writes (evaluate's `OUT`,
  prepare's cache); the workers do not take it. `separate_files`' workers
  take the lock of their file's own folder, as the sequential path does.
- Workers' standard error is the null device (else each prints
  TensorFlow's start-up log) unless TensorFlow's log is asked for
  (`TF_CPP_MIN_LOG_LEVEL=0`, `keras-dae -vv`). An item's exception is raised
  in the parent, as the sequential path raises it; a worker that dies
  (out of memory, a crash) is one `ChildProcessError` saying what to do.
- On an error or Ctrl-C the items not started are dropped and those in
  flight are finished (or stopped, without a partial file) before it returns.
"""

import concurrent.futures
import concurrent.futures.process
import contextlib
import multiprocessing
import os
import sys
import threading
import time

_THREAD_VARIABLES = (
    "KERAS_DAE_THREADS",  # `threads()`: what keras-dae's own thread pools (scipy's FFTs) use
    "TF_NUM_INTRAOP_THREADS",
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
)


def usable_cores():
    """The cores this process may run on (`os.sched_getaffinity`): the default number of `jobs`."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


def threads():
    """The threads this process's own pools may use: its share in a worker (`KERAS_DAE_THREADS`), else the usable cores."""
    try:
        return max(1, int(os.environ.get("KERAS_DAE_THREADS", "")))
    except ValueError:
        return usable_cores()


def worker_environment(jobs):
    """The thread settings of a worker among `jobs`: `usable_cores() // jobs` threads (at least 1) each."""
    threads = str(max(1, usable_cores() // jobs))
    return {**{name: threads for name in _THREAD_VARIABLES}, "TF_NUM_INTEROP_THREADS": "1"}


def _watch_parent(parent):
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            os._exit(1)


def _start(parent, initializer, initargs):
    """A worker's start: its parent watched, then the caller's `initializer(*initargs)`."""
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    if initializer is not None:
        initializer(*initargs)


@contextlib.contextmanager
def _environment(values):
    """`os.environ` updated with `values` inside the block (what spawned processes inherit)."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def _stderr_to_null():
    """File descriptor 2 points to the null device inside the block (what spawned processes inherit)."""
    sys.stderr.flush()
    saved = os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def in_processes(function, items, *, jobs, initializer=None, initargs=(), describe=str):
    """Yields `(item, function(*item))` for each tuple in `items`, computed in `jobs` spawned processes.

    Args:
        function: a module-level function (picklable by name).
        items: list of argument tuples, one call each.
        jobs: int >= 1: the number of worker processes (at most one per item).
        initializer, initargs: called once in each worker after it starts,
            e.g. to note the model file it loads on first use.
        describe: `describe(item)` names an item in the error of a worker
            that died while computing it.

    Yields:
        `(item, result)` in the order the calls finish.

    Raises:
        the exception of an item's call, as raised in the worker;
        ChildProcessError: a worker died (killed, e.g. out of memory, or crashed).
    """
    items = list(items)
    if not items:
        return
    jobs = max(1, min(jobs, len(items)))
    executor = concurrent.futures.ProcessPoolExecutor(
        jobs, mp_context=multiprocessing.get_context("spawn"),
        initializer=_start, initargs=(os.getpid(), initializer, initargs),
    )
    try:
        # The workers start at `submit` and inherit the environment and standard error of that moment.
        quiet = os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0") != "0"
        with _environment(worker_environment(jobs)), _stderr_to_null() if quiet else contextlib.nullcontext():
            futures = {executor.submit(function, *item): item for item in items}
        for future in concurrent.futures.as_completed(futures):
            try:
                result = future.result()
            except concurrent.futures.process.BrokenProcessPool as error:
                raise ChildProcessError(
                    f"a worker process of `jobs={jobs}` ended abruptly while working on "
                    f"{describe(futures[future])} (killed, e.g. out of memory, or crashed); the finished "
                    "outputs are kept: rerun to resume, with fewer `jobs` if memory is short (a script "
                    "using `jobs` must run under `if __name__ == \"__main__\":`, as processes are spawned)."
                ) from error
            yield futures[future], result
    finally:
        # The items not started are dropped, those in flight finish (each written atomically), then the
        # workers end. Ctrl-C reaches the workers too (one process group).
        executor.shutdown(wait=True, cancel_futures=True)
