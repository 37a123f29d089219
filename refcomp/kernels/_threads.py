"""Numba's current thread count, without the threading layer's lock.

``numba.get_num_threads()`` takes the threading layer's process-wide
initialisation lock (a multiprocessing semaphore) on every call; on the
2-core test VM a call made the kernel work that followed measurably slower
(spmv 4096x4096 at 99% on one thread: about 7 us per call of 100).  Once
the layer is up, Numba's own ``get_num_threads`` reads the thread-local
value through a ctypes function without the lock; that function is used
when present (it is not public API, so its absence falls back to the
public call).
"""

import numba
from numba.np.ufunc import parallel as _parallel

__all__ = ["num_threads", "run_serial_below"]


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
    numba.set_num_threads(1)
    try:
        return kernel(*args)
    finally:
        numba.set_num_threads(old)
