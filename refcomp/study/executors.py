"""Executors for independent study tasks: serial, local processes, Dask.

Every task is ``func(state, item)`` where ``state`` is a picklable object
shipped once per worker (processes: initializer; Dask: scattered with
broadcast) and ``item`` is small.  Results come back in task order, so the
output is identical bit for bit whatever the executor.
"""

import concurrent.futures as cf
import multiprocessing

from .._progress import Progress

__all__ = ["run_tasks", "Progress"]

_WORKER = {}


def _init_worker(state):
    _WORKER["state"] = state


def _call(func, item):
    return func(_WORKER["state"], item)


def _dask_call(func, state, item):
    return func(state, item)


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
        1 runs in-process; N > 1 uses N local processes (spawn).
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
            out.append(func(state, it))
            bar.update()
        return out
    ctx = multiprocessing.get_context("spawn")
    out = [None] * len(items)
    with cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker,
                                initargs=(state,)) as pool:
        futures = {pool.submit(_call, func, it): i for i, it in enumerate(items)}
        for fut in cf.as_completed(futures):
            out[futures[fut]] = fut.result()
            bar.update()
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
        for fut in distributed.as_completed(futures):
            out[index[fut.key]] = fut.result()
            bar.update()
        return out
    finally:
        if own:
            client.close()
