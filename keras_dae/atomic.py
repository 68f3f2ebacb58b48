"""Writes that a crash cannot leave half-done: a temporary name, then a rename.

Every temporary keras-dae writes (files by `atomic_path`, directories by
`temporary_directory` and `make_temporary_directory`) is named

    .<name>.tmp-<pid>-<random><suffix>

beside (or inside) what it becomes: `<name>` the final file's stem (or what
the directory is for), `<pid>` the writing process's id, `<random>` 8
characters of `tempfile`'s alphabet (`[a-z0-9_]`), `<suffix>` the final
file's suffix (kept so that writers that infer the format from the name
work), e.g. `.config.tmp-4242-k3j_x9a0.json`, `.3.tmp-4242-ab12cd34` (an
export's version 3), `.separate.tmp-4242-0a9b8c7d` (a separation's scratch
directory). A process that ends normally, or by an exception, removes its
temporaries; one that is killed (`kill -9`, power loss) cannot.

`remove_stale_temporaries(DIR)`, called by each command when it starts
writing DIR and holds its lock (`keras_dae.locking.directory_lock`), removes
what such a process left: the entries matching `TEMPORARY` whose writer is
gone, that is whose pid is not a running process (`os.kill(pid, 0)` raises
`ProcessLookupError`, or the process has exited and awaits reaping: a
killed command's workers until init reaps them), or is a process that started after the temporary was
last modified (the pid was reused, e.g. a new container's pid 1). Nothing
else is ever removed: not another name, not a temporary of a live writer.
"""

import contextlib
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

# `.<name>.tmp-<pid>-<random><suffix>` (see the module docstring).
TEMPORARY = re.compile(r"^\.(?P<name>.+)\.tmp-(?P<pid>[1-9][0-9]{0,9})-(?P<random>[a-z0-9_]{8})(?P<suffix>\.[^/]*)?$")
# How much older than a live process a temporary must be to be taken for a dead writer's (file system clocks).
CLOCK_SLACK = 5.0


def temporary_prefix(name):
    """The start of this process's temporary names for `name`: `.<name>.tmp-<pid>-` (`tempfile`'s `prefix`)."""
    return f".{name}.tmp-{os.getpid()}-"


def make_temporary_directory(directory, name):
    """Creates `directory/.<name>.tmp-<pid>-<random>` (private, as `tempfile.mkdtemp` makes it): its `Path`.

    The caller renames or removes it.
    """
    return Path(tempfile.mkdtemp(prefix=temporary_prefix(name), dir=directory))


@contextlib.contextmanager
def temporary_directory(directory, name):
    """`make_temporary_directory`, removed with everything in it when the block ends."""
    path = make_temporary_directory(directory, name)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _stat(pid):
    """The fields of `/proc/PID/stat` after the command name (field 3, the state, first); OSError or
    ValueError if there is none."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rindex(")") + 2:].split()


def _process_start(pid):
    """When process `pid` started (seconds since the epoch, rounded down), from /proc; None if unknown."""
    try:
        ticks = int(_stat(pid)[19])  # field 22, starttime
        boot = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def _zombie(pid):
    """Whether `pid` has exited but was not reaped yet (a killed command's workers, until init reaps them)."""
    try:
        return _stat(pid)[0] in ("Z", "X")
    except (OSError, ValueError, IndexError):
        return False


def writer_gone(pid, modified):
    """Whether the process that wrote a temporary named with `pid`, last modified at `modified`, is gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # a live process of another user
    except (OverflowError, OSError):
        return False  # cannot tell: keep it
    if _zombie(pid):
        return True
    started = _process_start(pid)
    return started is not None and modified < started - CLOCK_SLACK


def remove_stale_temporaries(directory, *, depth=0, finals=None):
    """Removes the temporaries in `directory` whose writer is gone (see the module docstring).

    Call it while holding the directory's lock (`keras_dae.locking.directory_lock`).

    Args:
        directory: str or `Path`; a missing directory has none.
        depth: int, default 0. Also look this many levels of subdirectories
            down (a MUSDB tree written by `synth` is `ROOT/<subset>/<track>/`).
        finals: None, or the final names (`<name><suffix>`) whose temporaries
            may be removed; others are kept (several writers of one directory).

    Returns:
        list of the removed `Path`s.
    """
    removed = []
    directory = Path(directory)
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return removed
    for entry in entries:
        match = TEMPORARY.match(entry.name)
        if match is None:
            if depth > 0 and entry.is_dir(follow_symlinks=False):
                removed += remove_stale_temporaries(entry.path, depth=depth - 1, finals=finals)
            continue
        if finals is not None and match["name"] + (match["suffix"] or "") not in finals:
            continue
        try:
            modified = entry.stat(follow_symlinks=False).st_mtime
        except OSError:
            continue
        if not writer_gone(int(match["pid"]), modified):
            continue
        path = Path(entry.path)
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        if not path.exists() and not path.is_symlink():
            log.info("removed '%s', left by process %s, which is gone", path, match["pid"])
            removed.append(path)
    return removed


@contextlib.contextmanager
def atomic_path(path):
    """Yields a temporary path beside `path`; renames it onto `path` on success.

    The temporary file, `.<stem>.tmp-<pid>-<random><suffix>` (see the module
    docstring), keeps the suffix of `path` (so writers that infer the format
    from the name still work) and is removed if the block raises, so
    `path` is either the old file, or the complete new one, never a partial one.

    Args:
        path: str or `Path`, the final file. Its parent directory is created.

    Example:

    >>> with atomic_path("runs/demo/figure.png") as tmp:
    ...     figure.savefig(tmp)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=temporary_prefix(path.stem), suffix=path.suffix, dir=path.parent)
    os.close(handle)
    # mkstemp makes the file private (0600); give it the usual umask mode.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise
