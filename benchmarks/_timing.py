"""Shared timing helper of the benchmark scripts."""

import time

import numpy as np


def timeit(fn, repeat):
    """Median wall time of ``repeat`` calls of ``fn`` after one warm-up call
    (JIT compilation, caches, first-touch page faults)."""
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))
