"""Command-line interface: ``refcomp <command> ...``.

Every command is a function ``func(args) -> int``.  ``info`` and ``run``
live here; the other commands live in one module per group, each adding its
sub-commands with a ``register(subparsers)`` function listed in
:data:`PLUGINS`:

- :mod:`refcomp.cli._io`: ``convert``, ``eval``;
- :mod:`refcomp.cli._study`: ``study``, ``apply``;
- :mod:`refcomp.cli._compress`: ``compress``, ``size``;
- :mod:`refcomp.cli._quantize`: ``quantize`` (integer int8 models).
- :mod:`refcomp.cli._search`: ``slim`` (AutoSlim-style channel search).
- :mod:`refcomp.cli._validate`: ``validate``.

This package is the top of the import graph: it may import every other part
of refcomp (io, the algorithms, the study), and none of them imports it.
Errors print one line on stderr (``refcomp: error: ...``) and exit
non-zero; no traceback.
"""

import argparse
import contextlib
import importlib
import os
import signal
import sys
import threading

import numpy as np

from .. import _interrupt
from .._errors import RefcompError

#: Modules that add sub-commands with ``register(subparsers)``.
PLUGINS = ("refcomp.cli._io", "refcomp.cli._study", "refcomp.cli._compress",
           "refcomp.cli._quantize", "refcomp.cli._search", "refcomp.cli._validate")


class CLIError(RefcompError):
    """A command-line usage error."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise CLIError(f"{self.prog}: {message}")


def _cmd_info(args):
    from ..io.auto import FILE_KINDS, file_kind, read_any
    from ..io.hdf5 import load, read_arrays
    from ._files import check_input
    path = check_input(args.model, "file")
    kind = file_kind(path)
    if kind == "refcomp-model":
        print(load(path).summary())
    elif kind == "refcomp-weight":
        w = load(path)
        print(f"{path}: {FILE_KINDS[kind]}\n{w!r}\nstored bits {int(w.stored_bits())}")
    elif kind == "arrays":
        arrays = read_arrays(path)
        print(f"{path}: {FILE_KINDS[kind]}")
        for name, a in arrays.items():
            print(f"  {name:<40}{str(a.shape):<20}{a.dtype}")
        print(f"{len(arrays)} arrays, {sum(a.size for a in arrays.values())} elements")
    else:
        print(f"{path}: {FILE_KINDS[kind]}")
        if kind != "torch":                 # a state dict needs its layer spec
            print(read_any(path).summary())
    return 0


def _read_input(path, dataset):
    from ..io.hdf5 import read_arrays
    from ..io.limits import check_fits, declared_bytes
    check_fits(declared_bytes(path), f"the input {path}")        # before reading it
    arrays = read_arrays(path)
    if dataset is None:
        if "x" in arrays:
            dataset = "x"
        elif len(arrays) == 1:
            dataset = next(iter(arrays))
        else:
            raise CLIError(f"{path}: has datasets {sorted(arrays)}; choose one with --dataset")
    if dataset not in arrays:
        raise CLIError(f"{path}: no dataset {dataset!r} (has {sorted(arrays)})")
    return arrays[dataset]


def _report_nonfinite(name, a):
    """One stderr line counting a batch's non-finite values (the forward pass
    propagates them as IEEE arithmetic says; refcomp never hides them)."""
    bad = ~np.isfinite(a)
    if not bad.any():
        return
    samples = np.flatnonzero(bad.reshape(a.shape[0], -1).any(axis=1))
    first = ", ".join(str(int(i)) for i in samples[:5]) + (", ..." if samples.size > 5 else "")
    print(f"refcomp: warning: {name} holds {int(bad.sum())} non-finite values (NaN/Inf) in "
          f"{samples.size} of {a.shape[0]} samples (samples {first})", file=sys.stderr)


def _cmd_run(args):
    from ..io.hdf5 import load_model, write_arrays
    from ._files import check_input, check_output
    check_input(args.model, "model")
    check_input(args.input)
    check_output(args.output, (args.model, args.input), force=args.force)
    from ._files import check_forward_fits, check_model_fits
    check_model_fits(args.model)              # before loading it
    model = load_model(args.model)
    x = _read_input(args.input, args.dataset)
    check_forward_fits(model, x)
    y = model(x, precision=args.precision)
    if x.ndim and x.shape[0]:
        _report_nonfinite("the input", x)
        _report_nonfinite("the output", y)
    write_arrays(args.output, {"y": y})
    print(f"wrote {args.output}: y {y.shape} {y.dtype}")
    return 0


def _add_force(p):
    from ._files import add_force
    add_force(p)


def build_parser():
    parser = _Parser(prog="refcomp", description="Bit-exact reference implementation of "
                     "neural-network compression.")
    from .. import __version__
    parser.add_argument("--version", action="version", version=f"refcomp {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    p = sub.add_parser("info", help="what a file holds: a model's layers, shapes, parameters "
                       "and bytes, or the arrays of a plain HDF5 file")
    p.add_argument("model", metavar="FILE")
    p.set_defaults(func=_cmd_info)
    p = sub.add_parser("run", help="forward pass of a model on an HDF5 input")
    p.add_argument("model")
    p.add_argument("input", help="HDF5 file with dataset 'x' (or --dataset)")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--dataset", default=None)
    p.add_argument("--precision", choices=("reference", "fast"), default="reference")
    _add_force(p)
    p.set_defaults(func=_cmd_run)
    for mod in PLUGINS:
        try:
            module = importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name and mod.startswith(exc.name):
                continue   # optional plugin not present in this tree
            raise
        module.register(sub)
    return parser


class _Terminated(BaseException):
    """SIGTERM, raised in the main thread so that cleanup runs (temporary files
    removed, worker processes terminated) before the exit with status 143."""


def _quiet_after_interrupt():
    """Silence library logging for the rest of an interrupted process.

    The promise is one line on stderr.  An interrupted Dask run leaves
    connections that ``distributed`` reports as WARNING records while the
    interpreter shuts down (after our line, from its own threads and atexit
    hooks); nothing logged after an interrupt helps the user, so every record
    is dropped from here on.
    """
    import logging
    logging.disable(logging.CRITICAL)


class _Interrupted(KeyboardInterrupt):
    """SIGINT.  A subclass, so that every ``except KeyboardInterrupt`` still sees it,
    but not KeyboardInterrupt itself: CPython remembers a KeyboardInterrupt that
    crossed certain C boundaries (an import under way, for instance) and then
    kills the process with SIGINT at exit even though ``main`` caught it and
    returned 130."""


def _callback_roots():
    # llvmlite: LLVM calls back into Python through ctypes (the object cache,
    # the diagnostics handler); numba.core.serialize: compiled code calls
    # back into _numba_unpickle (constants, exceptions to raise).
    roots = []
    for name, whole_package in (("llvmlite", True), ("numba.core.serialize", False)):
        mod = sys.modules.get(name)
        path = getattr(mod, "__file__", None)
        if path:
            roots.append(os.path.dirname(path) + os.sep if whole_package else path)
    return tuple(roots)


def _in_foreign_callback(frame):
    """True if the main thread's stack holds Python code that C calls back.

    An exception raised in such a callback does not cross the C frames
    cleanly: ctypes drops it and LLVM goes on with a buffer pointer left unset
    (SIGSEGV), or the compiled caller returns "a result with an exception
    set" (SystemError and a traceback); each was seen about once in 30
    interrupted studies.  Numba's own compiler is plain Python (an exception
    unwinds it like any other), and compiled code has no Python frame: a
    signal that arrives while it runs is handled in the caller's frame once
    it returns."""
    roots = _callback_roots()
    while roots and frame is not None:
        if frame.f_code.co_filename.startswith(roots):
            return True
        frame = frame.f_back
    return False


#: A signal that arrived inside a callback: [signum, the profile hook it replaced].
_deferred = []
_RETRY_SECONDS = 0.05


def _deliver_when_safe(frame, event, arg):
    # Profile hook of the main thread while a signal waits: the first call made
    # outside every callback raises it there (before the callee runs).
    if event in ("call", "c_call") and _deferred and not _in_foreign_callback(frame):
        _on_signal(_deferred[0], frame)


def _send_again(signum):
    # Backstop for a main thread that makes no Python call for a while (a
    # loop of bytecodes only): the handler runs again at its next bytecode.
    if _deferred and signal.getsignal(signum) is _on_signal:
        os.kill(os.getpid(), signum)


def _clear_deferred():
    if _deferred:
        sys.setprofile(_deferred[1])
        _deferred.clear()


def _on_signal(signum, frame):
    if _in_foreign_callback(frame):
        if not _deferred:
            _deferred[:] = [signum, sys.getprofile()]
            sys.setprofile(_deliver_when_safe)
        t = threading.Timer(_RETRY_SECONDS, _send_again, (signum,))
        t.daemon = True
        t.start()
        return
    _clear_deferred()
    # The first SIGINT/SIGTERM unwinds the command; further ones are ignored so
    # that they cannot cut the cleanup short (it takes milliseconds).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    exc = _Terminated() if signum == signal.SIGTERM else _Interrupted()
    # If the main thread is in a weakref callback or a __del__, Python drops the
    # exception; the waits and the file commits re-raise it (refcomp._interrupt).
    _interrupt.set_pending(exc)
    raise exc


@contextlib.contextmanager
def _signals():
    """SIGINT and SIGTERM raise in the main thread while a command runs; the
    previous handlers come back afterwards (``main`` may be called in-process)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {s: signal.signal(s, _on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        _clear_deferred()
        for s, h in old.items():
            signal.signal(s, h)


def main(argv=None):
    """Entry point of the ``refcomp`` console script; returns the exit code.

    Ctrl-C (SIGINT) and SIGTERM end a command promptly with one line on
    stderr and the shell's status, 130 and 143: temporary files are removed,
    worker processes terminated, no output file is left partial.
    """
    with _signals():
        try:
            return _main(argv)
        finally:
            _interrupt.clear()


def _main(argv):
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help(sys.stderr)
            return 2
        return int(args.func(args) or 0)
    except CLIError as exc:
        print(f"refcomp: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader of stdout went away (``refcomp size m.h5 | head``): stop
        # quietly with the shell's status for SIGPIPE, and keep Python from
        # reporting the failed flush of stdout at exit.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):
            pass
        return 141
    except (RefcompError, OSError) as exc:
        msg = " ".join(str(exc).split())
        print(f"refcomp: error: {msg}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        _quiet_after_interrupt()
        print("refcomp: interrupted", file=sys.stderr)
        return 130
    except _Terminated:
        _quiet_after_interrupt()
        print("refcomp: terminated", file=sys.stderr)
        return 143
    except MemoryError:
        print("refcomp: error: out of memory", file=sys.stderr)
        return 1
