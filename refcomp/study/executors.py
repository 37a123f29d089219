"""Executors for independent study tasks: serial, local processes, Dask.

Every task is ``func(state, item)`` where ``state`` is a picklable object
shipped once per worker (processes: initializer; Dask: scattered with
broadcast) and ``item`` is small.  Results come back in task order, so the
output is identical bit for bit whatever the executor.
"""

import ast
import concurrent.futures as cf
import contextlib
import multiprocessing
import os
import signal
import sys
import threading

from .. import _interrupt
from .._errors import ParameterError
from .._progress import Progress

__all__ = ["run_tasks", "Progress", "check_main_guard"]

_WORKER = {}

#: Seconds between two checks of the parent by a worker's watchdog thread.
_WATCH_PERIOD = 1.0

# One task at a time per process on Dask workers with several threads: the
# Numba workqueue threading layer (chosen where TBB is absent, see
# refcomp/__init__.py) aborts the process on concurrent parallel launches.
_TASK_LOCK = threading.Lock()


def _die_with_parent(parent):
    """End this worker when process ``parent`` ends (SIGKILL, SIGTERM, crash).

    Linux: ``prctl(PR_SET_PDEATHSIG, SIGKILL)``, delivered by the kernel the
    moment the parent dies.  Everywhere: a daemon thread that polls the parent
    id and leaves with ``os._exit`` once the worker was re-parented.
    """
    if sys.platform.startswith("linux"):
        try:
            import ctypes
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL, 0, 0, 0)        # 1 = PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass

    def watch():
        ev = threading.Event()
        while not ev.wait(_WATCH_PERIOD):
            if os.getppid() != parent:
                os._exit(1)
    if os.getppid() != parent:          # died before prctl took effect
        os._exit(1)
    threading.Thread(target=watch, name="refcomp-parent-watchdog", daemon=True).start()


_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def _signals_held():
    """Hold SIGINT and SIGTERM back while worker processes start.

    A signal that interrupts the parent while it sends a new worker its
    start-up data leaves that worker printing a traceback ("pickle data was
    truncated").  In the main thread: the two signals are blocked (new
    workers inherit the blocked mask and unblock it in their initializer,
    after ignoring SIGINT) and the Python handlers only note a signal that
    another thread receives; afterwards the handlers are restored, the mask
    too (a blocked signal is then handled as usual), and a noted signal is
    raised again.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    noted = []
    old = {s: signal.signal(s, lambda signum, frame: noted.append(signum)) for s in _SIGNALS}
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, signal.SIG_DFL if h is None else h)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    if noted:
        signal.raise_signal(noted[0])


def _init_worker(state, parent):
    # Ctrl-C in a terminal reaches the whole process group: the parent alone
    # handles it (it terminates the workers), so no worker prints a traceback.
    # The parent started this process with both signals blocked (see
    # _signals_held): a SIGTERM sent meanwhile ends it now, silently.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)
    _die_with_parent(parent)
    _WORKER["state"] = state


def _call(func, item):
    return func(_WORKER["state"], item)


def _dask_call(func, state, item):
    with _TASK_LOCK:
        return func(state, item)


def _guarded(tree, lineno):
    """Whether line ``lineno`` of a module lies in an ``if __name__ == ...`` block."""
    for node in tree.body:
        end = getattr(node, "end_lineno", node.lineno)
        if node.lineno <= lineno <= end:
            return isinstance(node, ast.If) and any(
                isinstance(n, ast.Name) and n.id == "__name__" for n in ast.walk(node.test))
    return False


def check_main_guard(what="workers > 1"):
    """Refuse to start processes from the unguarded top level of a script.

    Worker processes are started with ``spawn``: each re-imports the main
    script, which would run the same top-level code again (and again start
    processes) instead of serving tasks; the pool then waits for ever.  When
    the caller's stack runs the main script's module-level code outside an
    ``if __name__ == "__main__":`` block, raise ParameterError at once,
    naming the file and line.  ``python -c``, the interactive prompt and a
    package's ``__main__`` (``python -m refcomp``) are not re-run this way and
    pass; ``python -m package.module`` is re-run and checked like a script.

    Raises
    ------
    ParameterError
        the call comes from unguarded top-level code of the main script.
    """
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    spec = getattr(main, "__spec__", None)
    if main is None or not path or (spec is not None and spec.name.endswith("__main__")):
        return
    frame = sys._getframe(1)
    real = os.path.realpath(path)
    while frame is not None:
        # the main file's own module-level code (not, e.g., a notebook cell
        # executed in __main__'s namespace under another file name)
        if frame.f_code.co_name == "<module>" and frame.f_globals is vars(main) \
                and os.path.realpath(frame.f_code.co_filename) == real:
            break
        frame = frame.f_back
    if frame is None:
        return
    try:
        with open(path, encoding="utf-8") as fh:
            tree = ast.parse(fh.read(), path)
    except (OSError, SyntaxError, ValueError):
        return
    if not _guarded(tree, frame.f_lineno):
        raise ParameterError(
            f"{what} starts worker processes (spawn), which re-import the main script "
            f"{path!r}: line {frame.f_lineno} runs at its top level and would run again in "
            "every worker (the pool would wait for ever). Put that code under "
            "'if __name__ == \"__main__\":' (see the multiprocessing docs, \"Safe importing "
            "of main module\"), or use workers=1")


def _stop(pool):
    """Terminate the workers of ``pool`` now (Ctrl-C, SIGTERM, a failed task)."""
    stop = getattr(pool, "terminate_workers", None)       # Python >= 3.14
    if stop is not None:
        stop()
        return
    # SIGKILL: the workers hold no output (results come back to the parent,
    # which writes), and one still starting has SIGTERM blocked.
    procs = list((getattr(pool, "_processes", None) or {}).values())
    for p in procs:
        if p.is_alive():
            p.kill()
    for p in procs:
        p.join(5)


def run_tasks(func, state, items, *, workers=1, scheduler=None, label="tasks", progress=None):
    """Run ``func(state, item)`` for every item; return the results in order.

    Parameters
    ----------
    func : callable
        Module-level function ``func(state, item)`` (pickled by reference).
    state : object
        Picklable; shipped once per worker.
    items : iterable
        One task each; the progress bar advances once per finished item.
    workers : int
        1 runs in-process; N > 1 uses N local processes (spawn).  They end
        with their parent (killed or not), ignore SIGINT (the parent
        terminates them on Ctrl-C or any exception), and cannot be started
        from the unguarded top level of a script (ParameterError at once,
        see :func:`check_main_guard`).
    scheduler : str or distributed.Client, optional
        Address of a Dask distributed scheduler ("tcp://host:8786"), or a
        client; takes precedence over ``workers``.
    label : str
        Progress bar label.
    progress : bool, optional
        Show the bar; default: only when stderr is a terminal.

    Returns
    -------
    list
        ``[func(state, item) for item in items]``, whatever the executor.
    """
    items = list(items)
    bar = Progress(len(items), label, enabled=progress)
    if scheduler is not None:
        return _run_dask(func, state, items, scheduler, bar)
    if workers <= 1 or len(items) <= 1:
        out = []
        for it in items:
            _interrupt.check()
            out.append(func(state, it))
            bar.update()
        return out
    check_main_guard(f"workers={workers}")
    ctx = multiprocessing.get_context("spawn")
    out = [None] * len(items)
    pool = cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker,
                                  initargs=(state, os.getpid()))
    futures = {}
    try:
        with _signals_held():          # the workers start during the submissions
            for i, it in enumerate(items):
                futures[pool.submit(_call, func, it)] = i
        for fut in cf.as_completed(futures):
            _interrupt.check()
            out[futures[fut]] = fut.result()
            bar.update()
    except BaseException:
        # Ctrl-C, SIGTERM turned into an exception, or a failed task: end the
        # workers now instead of waiting for the tasks already running.
        # No Future.cancel(): Python 3.11's pool manager then fails on the
        # cancelled futures (InvalidStateError printed from its thread) when
        # it marks the pending ones broken after the workers died.
        _stop(pool)
        pool.shutdown(wait=True)
        raise
    pool.shutdown(wait=True)
    return out


def _run_dask(func, state, items, scheduler, bar):
    try:
        import distributed
    except ImportError:
        from .._errors import ParameterError
        raise ParameterError("--scheduler needs the 'dist' extra: pip install 'refcomp[dist]'") \
            from None
    own = not isinstance(scheduler, distributed.Client)
    client = distributed.Client(scheduler) if own else scheduler
    try:
        # Scatter the state as ONE object: scattering a dict would scatter each
        # value under its dict key ("x", "model"...), and keys reused by a later
        # call collide with (and release) the earlier ones.
        [st] = client.scatter([state], broadcast=True, hash=False)
        futures = [client.submit(_dask_call, func, st, it, pure=False) for it in items]
        index = {f.key: i for i, f in enumerate(futures)}
        out = [None] * len(items)
        try:
            for fut in distributed.as_completed(futures):
                _interrupt.check()
                out[index[fut.key]] = fut.result()
                bar.update()
        except BaseException:
            client.cancel(futures)      # the scheduler drops what is queued or running
            raise
        return out
    finally:
        if own:
            client.close()
