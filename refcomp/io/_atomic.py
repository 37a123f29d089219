"""File paths of readers and writers: type checks, atomic writing (a temporary
file in the target directory, then os.replace), the removal of temporary files
that a killed writer left behind, and crash-safe writing of a set of files into
an output directory.

Temporary names.  Every temporary file or directory is named
``.refcomp-<host>-<boot>-<pid>-<start>-<random>.tmp``: ``host`` is a CRC-32 of
the host name, ``boot`` the first 8 hex digits of the kernel's boot id
(``/proc/sys/kernel/random/boot_id``), ``pid`` the writer's process id and
``start`` its start time in clock ticks since boot (``/proc/<pid>/stat``
field 22).  A writer killed by SIGKILL (or a power cut) cannot remove its
temporary file, so every later write into the same directory removes the ones
whose owner is provably gone: same host and boot, and either no process
``pid`` or a process ``pid`` that started at another time (the pid was
reused).  A temporary from another host or boot, or an older name without
owner fields, is left alone: its owner may still be writing over a shared
file system.  Outside Linux the start time is unknown ("0") and only
"no process with that pid" counts as gone.
"""

import contextlib
import errno
import hashlib
import os
import secrets
import shutil
import socket
import sys
import zlib

from .. import _interrupt
from .._errors import ParameterError

__all__ = ["atomic_path", "atomic_directory", "check_complete", "checked_path", "temp_name",
           "remove_stale_temps", "COMPLETE_MARKER"]

_PREFIX = ".refcomp-"
_SUFFIX = ".tmp"

#: Completion marker of a directory written by :func:`atomic_directory`.
COMPLETE_MARKER = ".refcomp-complete"


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


def _read(path):
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError:
        return None


def _start_ticks(pid):
    """Start time of process ``pid`` in clock ticks since boot; None when there
    is no such process; 0 when the platform does not tell."""
    raw = _read(f"/proc/{pid}/stat")
    if raw is None:
        if os.path.isdir("/proc/self"):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except OSError:
            pass
        return 0
    # The command name (field 2) is in parentheses and may hold spaces.
    fields = raw[raw.rfind(b")") + 2:].split()
    return int(fields[19])


def _host_tag():
    return f"{zlib.crc32(socket.gethostname().encode()):08x}"


def _boot_tag():
    raw = _read("/proc/sys/kernel/random/boot_id")
    return raw.decode("ascii", "replace").strip().replace("-", "")[:8] if raw else "0"


_OWNER = {}


def _owner():
    """(host, boot, pid, start) of this process; recomputed after a fork."""
    pid = os.getpid()
    if _OWNER.get("pid") != pid:
        _OWNER.update(pid=pid, tag=(_host_tag(), _boot_tag(), str(pid),
                                    str(_start_ticks(pid) or 0)))
    return _OWNER["tag"]


def temp_name(directory):
    """A new temporary path in ``directory`` named after this process (see the module
    docstring); nothing is created."""
    return os.path.join(directory, _PREFIX + "-".join(_owner()) + "-" + secrets.token_hex(4)
                        + _SUFFIX)


def _stale(name, host, boot):
    parts = name[len(_PREFIX):-len(_SUFFIX)].split("-")
    if len(parts) != 5 or parts[0] != host or parts[1] != boot:
        return False
    try:
        pid, start = int(parts[2]), int(parts[3])
    except ValueError:
        return False
    if pid == os.getpid():
        return False
    now = _start_ticks(pid)
    return now is None or (start != 0 and now != 0 and now != start)


def remove_stale_temps(directory):
    """Remove the temporary files and directories in ``directory`` whose owner
    process is gone; return their names.  Errors (a file removed meanwhile, no
    permission) are ignored: this is housekeeping."""
    host, boot = _owner()[:2]
    removed = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return removed
    for e in entries:
        if not (e.name.startswith(_PREFIX) and e.name.endswith(_SUFFIX)):
            continue
        if not _stale(e.name, host, boot):
            continue
        try:
            if e.is_dir(follow_symlinks=False):
                shutil.rmtree(e.path)
            else:
                os.unlink(e.path)
            removed.append(e.name)
        except OSError:
            pass
    return removed


def _fsync_dir(directory):
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path next to ``path``; on success it replaces ``path``.

    On any exception the temporary file is removed and ``path`` is untouched,
    so a crash never leaves a half-written file.  A writer killed outright
    (SIGKILL) leaves its temporary file; the next write into the same
    directory removes it (see the module docstring).  A path that is not a
    file name, names a directory, or lies in a missing directory is refused
    (ParameterError) before anything is created.
    """
    path = checked_path(path)
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise ParameterError(f"cannot write {path!r}: it is a directory")
    if not os.path.isdir(directory):
        raise ParameterError(f"cannot write {path!r}: directory {directory!r} does not exist; "
                             "nothing was written")
    remove_stale_temps(directory)
    tmp = temp_name(directory)
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        # Created with mode 0600; give the file the mode a plain open()
        # would (0666 minus the umask) so outputs are shareable as usual.
        os.chmod(tmp, 0o666 & ~_umask())
        _interrupt.check()          # a signal Python swallowed: do not publish
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _write_marker(stage, names):
    lines = "".join(f"{_sha256(os.path.join(stage, n))}  {n}\n" for n in sorted(names))
    with open(os.path.join(stage, COMPLETE_MARKER), "w", encoding="ascii") as fh:
        fh.write(lines)
        fh.flush()
        os.fsync(fh.fileno())


def check_complete(directory):
    """The names :data:`COMPLETE_MARKER` in ``directory`` lists, after checking
    that each file exists with the recorded SHA-256; None when the marker is
    absent or a file does not match (a write was interrupted)."""
    raw = _read(os.path.join(directory, COMPLETE_MARKER))
    if raw is None:
        return None
    names = []
    for line in raw.decode("ascii").splitlines():
        digest, name = line.split("  ", 1)
        p = os.path.join(directory, name)
        if not os.path.isfile(p) or _sha256(p) != digest:
            return None
        names.append(name)
    return names


def _exchange(a, b):
    """Swap directories ``a`` and ``b`` in one step (Linux renameat2
    RENAME_EXCHANGE); False where the system or file system cannot."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    at_fdcwd, rename_exchange = -100, 2
    if fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EXDEV, errno.ENOTSUP, errno.EPERM):
        return False
    raise OSError(err, os.strerror(err), b)


def _can_exchange(stage, path):
    """Whether swapping the folders is both possible and harmless: ``path`` is a
    real folder on the stage's file system (links are not copies) and holds
    neither this process's working directory (it would be left in the removed
    old folder)."""
    if os.path.islink(path) or os.stat(stage).st_dev != os.stat(path).st_dev:
        return False
    try:
        cwd = os.path.realpath(os.getcwd())
    except OSError:
        return False
    real = os.path.realpath(path)
    return cwd != real and not cwd.startswith(real + os.sep)


def _link_or_copy(src, dst):
    try:
        os.link(src, dst, follow_symlinks=False)
    except OSError:
        shutil.copy2(src, dst, follow_symlinks=False)


def _carry_over(old, stage, written):
    """Give ``stage`` the entries of ``old`` it does not replace: files as hard
    links (a copy where links fail), sub-directories as trees of links,
    symbolic links as such; refcomp's own temporaries and marker are left."""
    for e in os.scandir(old):
        if e.name in written or e.name == COMPLETE_MARKER or (
                e.name.startswith(_PREFIX) and e.name.endswith(_SUFFIX)):
            continue
        dst = os.path.join(stage, e.name)
        if e.is_symlink():
            os.symlink(os.readlink(e.path), dst)
        elif e.is_dir():
            shutil.copytree(e.path, dst, symlinks=True, copy_function=_link_or_copy)
        else:
            _link_or_copy(e.path, dst)
    shutil.copystat(old, stage)


@contextlib.contextmanager
def atomic_directory(path):
    """Yield an empty staging directory; on success its files land in ``path``.

    Write every output file into the yielded directory (plain files, no
    sub-directories).  The staging directory is a temporary sibling of
    ``path``.  When the block ends without an exception a completion marker
    :data:`COMPLETE_MARKER` (each file's SHA-256, ``sha256sum -c`` format)
    is added and:

    - ``path`` missing: the staging directory is renamed to ``path`` in one
      step, so ``path`` is absent or complete; missing parents of ``path``
      are created first.
    - ``path`` an existing directory: the staging directory receives the
      entries of ``path`` that it does not replace (hard links: no data is
      copied) and the two directories are exchanged in one step (Linux
      ``renameat2(RENAME_EXCHANGE)``), so ``path`` is the complete old or
      the complete new folder at every moment; the old one is then removed.
      Where the exchange is not available (another system, a file system
      without it, ``path`` a symbolic link, a mount point, or holding the
      working directory) the files are moved in one by
      one with ``os.replace`` after the old marker is removed: each file is
      complete at every moment, and a marker, when present, matches the
      files it lists; only a kill during those moves (milliseconds) leaves
      a folder without marker holding old and new files.

    On an exception the staging directory is removed and ``path`` is as
    before.  A kill leaves the staging directory, which the next write into
    the same parent directory removes (see the module docstring).
    """
    path = os.path.abspath(checked_path(path))
    if os.path.exists(path) and not os.path.isdir(path):
        raise ParameterError(f"cannot write into {path!r}: it is not a directory")
    parent = os.path.dirname(path)
    for d in (parent, path):
        if os.path.isdir(d):
            remove_stale_temps(d)
    os.makedirs(parent, exist_ok=True)
    stage = temp_name(parent)
    os.mkdir(stage)
    try:
        yield stage
        _interrupt.check()          # a signal Python swallowed: do not publish
        names = sorted(os.listdir(stage))
        _write_marker(stage, names)
        if not os.path.exists(path):
            try:
                os.rename(stage, path)
                _fsync_dir(parent)
                return
            except OSError:
                if not os.path.isdir(path):
                    raise
                # Created meanwhile: write into it as into an existing folder.
        if _can_exchange(stage, path):
            _carry_over(path, stage, set(names))
            if _exchange(stage, path):
                _fsync_dir(parent)
                shutil.rmtree(stage, ignore_errors=True)     # the old folder
                return
            for n in os.listdir(stage):                       # undo the carry-over
                if n not in names and n != COMPLETE_MARKER:
                    p = os.path.join(stage, n)
                    shutil.rmtree(p) if os.path.isdir(p) and not os.path.islink(p) \
                        else os.unlink(p)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(path, COMPLETE_MARKER))
        for n in names:
            os.replace(os.path.join(stage, n), os.path.join(path, n))
        os.replace(os.path.join(stage, COMPLETE_MARKER), os.path.join(path, COMPLETE_MARKER))
        _fsync_dir(path)
        os.rmdir(stage)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
