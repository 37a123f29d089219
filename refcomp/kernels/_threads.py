"""Numba's current thread count, read and set without the threading layer's lock.

``numba.get_num_threads()`` and ``numba.set_num_threads()`` take the
threading layer's process-wide initialisation lock on every call.  Under the
fork start method that lock is a multiprocessing semaphore shared with every
forked child, so:

* a child killed (SIGKILL) inside ``set_num_threads`` leaves it held, and the
  parent's next call blocks for ever (seen: the kill tests' study writer,
  hung in ``_launch_threads``);
* on the 2-core test VM a call made the kernel work that followed measurably
  slower (spmv 4096x4096 at 99% on one thread: about 7 us per call of 100).

Once the layer is up, Numba's own functions read and set the thread-local
value through ctypes functions without the lock; those are used when present
(they are not public API, so their absence falls back to the public calls).
"""

import numba
from numba.np.ufunc import parallel as _parallel

__all__ = ["num_threads", "set_num_threads", "run_serial_below"]


def num_threads():
    """The thread count ``numba.set_num_threads`` set for this thread (int)."""
    raw = getattr(_parallel, "_get_num_threads", None)
    if raw is not None:
        n = raw()
        if n > 0:
            return n
    # Threading layer not launched yet (or private API changed): the public
    # call launches it and validates the value.
    return numba.get_num_threads()


def set_num_threads(n):
    """``numba.set_num_threads(n)`` without the process-wide lock once the layer is up.

    ``n`` must be valid (1, or a value :func:`num_threads` returned): the raw
    setter does not check it.
    """
    raw = getattr(_parallel, "_set_num_threads", None)
    if raw is not None and getattr(_parallel, "_is_initialized", False):
        raw(int(n))
    else:
        numba.set_num_threads(n)


def run_serial_below(par_min, kernel, n, *args):
    """Call a ``prange`` kernel, on one thread when ``n < par_min``.

    Below the threshold the parallel launch costs more than it saves (on a
    loaded host it waits for descheduled workers).  The kernels it serves
    compute independent elements, so their results do not depend on the
    thread count; the caller's thread count is restored afterwards.
    """
    if n >= par_min:
        return kernel(*args)
    old = num_threads()
    set_num_threads(1)
    try:
        return kernel(*args)
    finally:
        set_num_threads(old)
