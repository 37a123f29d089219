"""Shared timing helper of the benchmark scripts."""

import time

import numpy as np


def timings(fn, repeat):
    """Wall times (s, a list) of ``repeat`` calls of ``fn`` after one warm-up
    call (JIT compilation, caches, first-touch page faults)."""
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def timeit(fn, repeat):
    """Median of :func:`timings`."""
    return float(np.median(timings(fn, repeat)))


def timeit_for(fn, min_time, min_repeat=3):
    """:func:`timeit` with enough calls to fill about ``min_time`` seconds
    (at least ``min_repeat``): short calls get many samples, so one
    disturbed call on the shared host does not move the median."""
    one = max(timeit(fn, 1), 1e-7)
    return timeit(fn, max(min_repeat, int(min_time / one)))
