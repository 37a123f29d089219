"""File paths of readers and writers: type checks, and atomic writing (a temporary
file in the target directory, then os.replace)."""

import contextlib
import os
import tempfile

from .._errors import ParameterError

__all__ = ["atomic_path", "checked_path"]


def checked_path(path, name="path"):
    """``os.fspath(path)`` for a str or path-like object, else a ParameterError."""
    if isinstance(path, bytes) or not isinstance(path, (str, os.PathLike)):
        raise ParameterError(f"{name} must be a file name (str or os.PathLike), got "
                             f"{type(path).__name__} {path!r}"[:200])
    return os.fspath(path)


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path next to ``path``; on success it replaces ``path``.

    On any exception the temporary file is removed and ``path`` is untouched,
    so a crash never leaves a half-written file.  A path that is not a file
    name, names a directory, or lies in a missing directory is refused
    (ParameterError) before anything is created.
    """
    path = checked_path(path)
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise ParameterError(f"cannot write {path!r}: it is a directory")
    if not os.path.isdir(directory):
        raise ParameterError(f"cannot write {path!r}: directory {directory!r} does not exist; "
                             "nothing was written")
    fd, tmp = tempfile.mkstemp(prefix=".refcomp-", suffix=".tmp", dir=directory)
    os.close(fd)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        # mkstemp creates mode 0600; give the file the mode a plain open()
        # would (0666 minus the umask) so outputs are shareable as usual.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
