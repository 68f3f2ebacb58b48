"""Writes that a crash cannot leave half-done: a temporary name, then a rename."""

import contextlib
import os
import tempfile
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path):
    """Yields a temporary path beside `path`; renames it onto `path` on success.

    The temporary file keeps the suffix of `path` (so writers that infer the
    format from the name still work) and is removed if the block raises, so
    `path` is either the old file, or the complete new one, never a partial one.

    Args:
        path: str or `Path`, the final file. Its parent directory is created.

    Example:

    >>> with atomic_path("runs/demo/figure.png") as tmp:
    ...     figure.savefig(tmp)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(
        prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent
    )
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
