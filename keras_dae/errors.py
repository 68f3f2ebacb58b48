"""One-line messages for what a full disk, bad data or too large a request cause.

The library turns these into one-line errors where it knows the path (the
output directory a command writes, the frame cache it reads), and the
command line uses the same functions as its safety net for whatever reaches
it unconverted (`keras_dae_cli.main`):

    writing(path, what, parameter)   a block that writes under `path`: a full
                                     disk (ENOSPC, EDQUOT), a read-only file
                                     system (EROFS) or a file where a directory
                                     should be becomes an `OSError` naming
                                     `path`, whether it came as an `OSError` or
                                     as TensorFlow's error (`tf.errors.OpError`
                                     with the text, e.g. `TFRecordWriter`, a
                                     SavedModel's files)
    disk_message(error, ...)         that message, or None for other errors
    tensorflow_message(error)        a `tf.errors.OpError` in one line (out of
                                     memory, corrupted data, the rest)

This module imports nothing from keras_dae or TensorFlow (it looks TensorFlow
up in `sys.modules`), so that the command line can load it without importing
TensorFlow, like `keras_dae.names`.
"""

import contextlib
import errno
import re
import sys
from pathlib import Path

# A write that fails like this fails again until the user frees space or writes elsewhere.
NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
# TensorFlow's file system layer reports errno as text in its errors (`ResourceExhaustedError: PATH; No space
# left on device`).
_TENSORFLOW_TEXT = {
    "No space left on device": errno.ENOSPC,
    "Disk quota exceeded": errno.EDQUOT,
    "Read-only file system": errno.EROFS,
}
# What TensorFlow wraps around an op's message: `{{function_node ...}}`, `[Op:...]`, `[[{{node ...}}]]`, ` name: `.
_TENSORFLOW_NOISE = re.compile(r"\{\{function_node [^}]*\}\}|\[\[\{\{node [^}]*\}\}\]\]|\[Op:[^\]]*\]|\s+name:\s*$")


# A temporary of `keras_dae.atomic` (its `TEMPORARY`): `.<name>.tmp-<pid>-<random><suffix>`, for `<name><suffix>`.
_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.tmp-[1-9][0-9]{0,9}-[a-z0-9_]{8}(?P<suffix>\.[^/]*)?$")


def final_path(path):
    """What a temporary of `keras_dae.atomic` becomes (the file the user asked for); other paths unchanged."""
    match = _TEMPORARY.match(Path(path).name)
    return Path(path).with_name(match["name"] + (match["suffix"] or "")) if match else path


def size_text(num_bytes):
    """`num_bytes` for people: `512 bytes`, `1.8 MB`, `3.2 GB`, `105,840 GB`."""
    if num_bytes < 1e6:
        return f"{num_bytes:,.0f} bytes" if num_bytes < 1e3 else f"{num_bytes / 1e3:,.1f} kB"
    return f"{num_bytes / 1e6:,.1f} MB" if num_bytes < 1e9 else f"{num_bytes / 1e9:,.1f} GB"


def _tensorflow_errors():
    """`tf.errors` if TensorFlow is imported, else None (never imports it)."""
    tf = sys.modules.get("tensorflow")
    return getattr(tf, "errors", None) if tf is not None else None


def is_tensorflow_error(error):
    errors = _tensorflow_errors()
    return errors is not None and isinstance(error, errors.OpError)


def error_number(error):
    """The errno of an `OSError`, or the one a TensorFlow file error states in its text; None otherwise."""
    if isinstance(error, OSError):
        return error.errno
    if is_tensorflow_error(error):
        text = str(getattr(error, "message", "") or error)
        return next((number for part, number in _TENSORFLOW_TEXT.items() if part in text), None)
    return None


def file_in_the_way(path, itself=False):
    """The highest ancestor of `path` (or, with `itself`, `path`) that exists and is not a directory, or None.

    Nothing can be created below it: `mkdir -p` fails with ENOTDIR, or with
    EEXIST when it is `path` itself ("File exists", said of a file where a
    directory was asked for).
    """
    path = Path(path)
    for candidate in [*reversed(path.parents), *([path] if itself else [])]:
        if candidate != Path(".") and candidate.exists() and not candidate.is_dir():
            return candidate
    return None


def disk_message(error, path=None, what="", parameter=None):
    """The one-line message of a write under `path` that failed with `error`, or None for another error.

    Args:
        error: the `OSError` or `tf.errors.OpError` raised.
        path: the file or directory being written (the message names it);
            None: the error's own `filename`.
        what: words before the path, e.g. `"frame cache "`.
        parameter: the parameter that chose `path` (`"out"`), named in the
            advice (the command line shows it as its flag); None: none.
    """
    number = error_number(error)
    if number is None or (isinstance(error, OSError) and error.strerror is None):
        return None  # not a disk problem, or one whose message says it already (`disk_error`)
    path = path if path is not None else getattr(error, "filename", None)
    path = final_path(path) if path is not None else None
    target = f"{what}'{path}'" if path is not None else (what.strip() or "the output")
    elsewhere = f"choose another `{parameter}`" if parameter else "write somewhere else"
    if number in NO_SPACE:
        full = "disk quota exceeded" if number == errno.EDQUOT else "no space left on device"
        return f"{full} while writing {target}; free some space or {elsewhere}."
    if number == errno.EROFS:
        return f"{target} is on a read-only file system; {elsewhere}."
    if number in (errno.ENOTDIR, errno.EEXIST) and path is not None:
        blocker = file_in_the_way(path, itself=number == errno.EEXIST)
        if blocker == Path(path):
            return f"cannot create {target} as a directory: it is a file; {elsewhere}."
        if blocker is not None:
            return f"cannot create {target}: '{blocker}' is a file, not a directory; {elsewhere}."
    return None


def cannot_write(error, directory, label="", parameter="out"):
    """The one-line message for an `OSError` met creating or writing in `directory`: `disk_message`'s, else
    `cannot write to LABEL'DIRECTORY': REASON.`."""
    return (disk_message(error, directory, label, parameter)
            or f"cannot write to {label}'{directory}': {getattr(error, 'strerror', None) or error}.")


def disk_error(message, number):
    """An `OSError` whose text is exactly `message` (one line) and whose `errno` is `number`."""
    error = OSError(message)
    error.errno = number  # not `filename`: OSError's text would become "[Errno N] ..." again
    return error


@contextlib.contextmanager
def writing(path, what="", parameter="out"):
    """Turns a full disk, a read-only file system or a file in the way under `path` into an `OSError` naming it.

    Other errors pass unchanged. See `disk_message` for the arguments.

    Example:

    >>> with writing(out, "frame cache "):
    ...     write_shards(out)
    OSError: no space left on device while writing frame cache 'cache'; free some space or choose another `out`.
    """
    try:
        yield
    except Exception as error:
        message = disk_message(error, path, what, parameter)
        if message is None:
            raise
        raise disk_error(message, error_number(error)) from error


def tensorflow_detail(error):
    """The first line of a `tf.errors.OpError`'s message without TensorFlow's node and op names."""
    text = str(getattr(error, "message", "") or error).strip()
    return _TENSORFLOW_NOISE.sub("", text.splitlines()[0] if text else "").strip() or type(error).__name__


def tensorflow_message(error):
    """A `tf.errors.OpError` as one line: `tensorflow_detail`, and what to do."""
    line = tensorflow_detail(error)
    kind = type(error).__name__
    if kind == "ResourceExhaustedError" and "OOM" in line:
        return f"out of memory ({line[:200]}); use smaller sizes (fewer bins, a smaller batch)."
    if kind == "DataLossError":
        return (f"corrupted data: {line[:200]}; if it comes from a frame cache, run keras-dae prepare again "
                "(delete the damaged shard first).")
    return f"TensorFlow: {line[:300]}"


def memory_message(error):
    """A `MemoryError` as one line: the library's own message, or NumPy's `Unable to allocate ...` explained."""
    detail = str(error).strip().splitlines()[0] if str(error).strip() else ""
    if "memory" in detail.lower():
        return detail  # keras-dae's own, which says what to do
    return f"out of memory ({detail or 'the request is too large'}); ask for smaller sizes."
