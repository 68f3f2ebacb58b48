"""One writer per output directory: an exclusive `flock` on a lock file inside it.

Every `keras-dae` command that writes a run or output directory holds
`directory_lock(DIR)` from before it reads, writes or cleans anything there
until it is done:

    DIR/.keras-dae.lock   the lock file, locked with `flock(LOCK_EX | LOCK_NB)`;
                          it holds the owner's pid and command line (for the
                          message a second process gets) and is removed when
                          the owner lets go

A second process that asks for the lock of a directory in use gets
`DirectoryInUse` at once, before it has touched anything there; the command
line shows it as one line and exits with code 1:

    keras-dae: error: 'runs/sf' is in use by another keras-dae process
    (pid 1234: keras-dae train --out runs/sf); wait for it to finish or use another --out

The kernel releases a `flock` when its process ends, even by `kill -9`, so a
lock file left by a killed process never blocks: the next owner takes it
over (and removes it when it is done).

Nesting: a process may hold the locks of several directories at once
(`reproduce` holds OUT while `train` holds OUT/runs/sf), and asking again for a
directory that the same thread holds already is a no-op (the lock is
re-entrant), so a process never waits for itself. Another thread of the same
process is refused like another process.

Several workers preparing one frame cache (`prepare` with `num_workers > 1`)
share the directory: each holds `.keras-dae.lock` with `shared=True` (which
keeps out an exclusive owner, and which an exclusive owner keeps out) and
exclusively its own part, `part="worker-I"` (`.keras-dae.worker-I.lock`).

Where `fcntl` does not exist (Windows), `directory_lock` only creates the
directory; on a file system without locks it warns and goes on unlocked.
`flock` works across machines on NFS (Linux maps it to NFS locks), not on a
mount with `local_lock=all` or `nolock`.
"""

import contextlib
import errno
import functools
import inspect
import logging
import os
import shlex
import shutil
import sys
import threading
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - not on POSIX
    fcntl = None

log = logging.getLogger(__name__)

LOCK = ".keras-dae.lock"
# What `flock` raises on a file system that has no locks.
_UNSUPPORTED = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL}
_LOCK_PREFIX, _LOCK_SUFFIX = ".keras-dae.", ".lock"
# Locks this process holds: (device, inode, lock file name) -> [thread ident, depth].
_HELD = {}
_GUARD = threading.Lock()


class DirectoryInUse(OSError):
    """Another keras-dae process (or another thread of this one) holds the lock of the directory.

    Attributes:
        directory: `Path` of the directory.
        owner: `(pid, command line)` of the owner as its lock file says, or None if it does not say yet.
    """

    def __init__(self, message, directory=None, owner=None):
        super().__init__(message)
        self.directory = directory
        self.owner = owner


def lock_name(part=None):
    """The lock file's name: `.keras-dae.lock`, or `.keras-dae.PART.lock` for one part of a directory."""
    return LOCK if part is None else f"{_LOCK_PREFIX}{part}{_LOCK_SUFFIX}"


def is_lock_file(name):
    """Whether `name` is one of keras-dae's lock files (`.keras-dae.lock`, `.keras-dae.PART.lock`)."""
    return name.startswith(_LOCK_PREFIX) and name.endswith(_LOCK_SUFFIX)


def command_line():
    """This process's command line, one line of at most 300 characters (`keras-dae train --out runs/sf`)."""
    argv = list(sys.argv) or ["python"]
    argv[:1] = ["python", "-c"] if argv[0] == "-c" else [os.path.basename(argv[0]) or "python"]
    text = " ".join(shlex.join(argv).split())  # no line breaks
    return text if len(text) <= 300 else text[:297] + "..."


def _cannot_write(error, directory, label):
    """`keras_dae.errors.cannot_write`'s one line (a file in the way, a full or read-only disk named as such)."""
    from keras_dae.errors import cannot_write  # imports nothing either (this module loads on its own)

    return cannot_write(error, directory, label)


def _make_directory(directory, label):
    """Creates `directory` and its missing parents; the ones created, deepest first."""
    missing = []
    for path in [directory, *directory.parents]:
        if path.exists():
            break
        missing.append(path)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(_cannot_write(error, directory, label)) from None
    return missing


def _remove_created(created):
    """Removes the directories `_make_directory` created, deepest first, while they are empty."""
    for path in created:
        try:
            path.rmdir()
        except OSError:
            break


def _read_owner(fd):
    """`(pid, command line)` written in an open lock file, or None."""
    try:
        lines = os.pread(fd, 4096, 0).decode("utf-8", "replace").splitlines()
        return int(lines[0]), (lines[1] if len(lines) > 1 else "")
    except (OSError, ValueError, IndexError):
        return None


def _in_use(directory, owner, parameter, part):
    where = f"'{directory}'" + (f" ({part})" if part else "")
    if owner is None:
        who = "another keras-dae process"
    elif owner[0] == os.getpid():
        who = f"another thread of this process (pid {owner[0]})"
    else:
        who = f"another keras-dae process (pid {owner[0]}" + (f": {owner[1]})" if owner[1] else ")")
    return f"{where} is in use by {who}; wait for it to finish or use another `{parameter}`."


def _same_file(fd, path):
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except OSError:
        return False


def _acquire(lock_path, shared, directory, parameter, part, label):
    """An open descriptor of `lock_path` holding its flock (retried if the file was removed meanwhile)."""
    mode = (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB
    while True:
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        except OSError as error:
            raise ValueError(_cannot_write(error, directory, label)) from None
        try:
            fcntl.flock(fd, mode)
        except BlockingIOError:
            owner = _read_owner(fd)
            os.close(fd)
            raise DirectoryInUse(_in_use(directory, owner, parameter, part), directory, owner) from None
        except OSError as error:
            if error.errno not in _UNSUPPORTED:
                os.close(fd)
                raise
            # A file system without locks (NFS without a lock manager): as before there were locks.
            log.warning("cannot lock '%s' (%s): nothing keeps another process from writing it at the same time",
                        directory, error.strerror or error)
            return fd
        except BaseException:
            os.close(fd)
            raise
        # Its previous owner may have removed the file between our open and flock: then lock the new one.
        if _same_file(fd, lock_path):
            return fd
        os.close(fd)


def _release(fd, lock_path, shared):
    """Removes the lock file (only when no one else holds it) and lets go of the lock."""
    try:
        if shared:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # no other worker holds it
            except BlockingIOError:
                return
        if _same_file(fd, lock_path):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(lock_path)
    finally:
        os.close(fd)


@contextlib.contextmanager
def directory_lock(path, *, parameter="out", label="", shared=False, part=None):
    """Holds the lock of the directory `path` (created if missing) for the `with` block.

    Args:
        path: str or `Path`, the directory.
        parameter: the caller's parameter that names the directory, for the
            message (`use another `out``).
        label: words before the directory in a "cannot write" message
            (`"run directory "`).
        shared: hold the lock shared, with other `shared` holders (the workers
            of one frame cache); an exclusive holder excludes them all.
        part: None, or the name of one part of the directory that is locked
            on its own (`.keras-dae.PART.lock`), e.g. `"worker-1"`.

    Yields:
        `Path` of the directory.

    Raises:
        DirectoryInUse: another process (or thread) holds the lock.
        ValueError: `path` is a file, or the directory or its lock file cannot
            be created.

    Directories this call created are removed again on exit if they are
    empty, so a command that fails early leaves nothing behind.
    """
    directory = Path(path)
    if directory.exists() and not directory.is_dir():
        raise ValueError(f"`{parameter}` '{directory}' is a file; give a directory.")
    created = _make_directory(directory, label)
    if fcntl is None:  # pragma: no cover - not on POSIX
        try:
            yield directory
        finally:
            _remove_created(created)
        return
    name = lock_name(part)
    status = os.stat(directory)
    key = (status.st_dev, status.st_ino, name)
    me = threading.get_ident()
    with _GUARD:
        held = _HELD.get(key)
        if held is not None and held[0] == me:
            held[1] += 1
        elif held is not None:
            owner = (os.getpid(), command_line())
            raise DirectoryInUse(_in_use(directory, owner, parameter, part), directory, owner)
    if held is not None:  # this thread holds it already: nothing more to do
        try:
            yield directory
        finally:
            with _GUARD:
                held[1] -= 1
        return
    try:
        fd = _acquire(directory / name, shared, directory, parameter, part, label)
    except BaseException:
        _remove_created(created)
        raise
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n{command_line()}\n".encode(), 0)
    except OSError:
        pass  # the message will not name the owner; the lock holds all the same
    with _GUARD:
        _HELD[key] = [me, 1]
    try:
        yield directory
    finally:
        with _GUARD:
            _HELD.pop(key, None)
        _release(fd, directory / name, shared)
        _remove_created(created)


def holds_lock(parameter="out", **options):
    """Decorator: the function runs holding `directory_lock` of its argument `parameter` (and `options`).

    A full disk or a read-only file system met meanwhile is raised as one
    line naming that directory (`keras_dae.errors.writing`).
    """

    def decorate(function):
        signature = inspect.signature(function)

        @functools.wraps(function)
        def locked(*args, **kwargs):
            try:
                bound = signature.bind(*args, **kwargs)
            except TypeError:
                return function(*args, **kwargs)  # raises the usual TypeError
            bound.apply_defaults()
            directory = bound.arguments[parameter]
            from keras_dae.errors import writing  # imports nothing either (this module loads on its own)

            # A full disk or a read-only file system while it writes: one line naming the directory.
            with directory_lock(directory, parameter=parameter, **options), writing(directory, parameter=parameter):
                return function(*args, **kwargs)

        return locked

    return decorate


def clear_directory(path):
    """Removes everything in the directory `path` except keras-dae's lock files (for `overwrite`)."""
    path = Path(path)
    if not path.is_dir():
        return
    for child in path.iterdir():
        if is_lock_file(child.name):
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                child.unlink()
