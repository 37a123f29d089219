"""Re-jit helper of the k-means kernels written once in plain Python.

The optimal-DP kernels (:mod:`._optimal_cost`, :mod:`._optimal_rows`,
:mod:`._optimal`) are plain Python functions that call each other through
module globals: interpreted, they are their own twins; compiled, each is a
clone whose globals name the compiled helpers instead (``*_nb``).
"""

import types

import numba


def _jit_rebound(func, inline="never", parallel=False, **globals_):
    """Compile ``func`` with some of its global helpers replaced by compiled ones."""
    g = dict(func.__globals__)
    g.update(globals_)
    clone = types.FunctionType(func.__code__, g, func.__name__, func.__defaults__)
    clone.__module__ = func.__module__
    clone.__qualname__ = func.__qualname__
    return numba.njit(cache=True, inline=inline, parallel=parallel)(clone)
