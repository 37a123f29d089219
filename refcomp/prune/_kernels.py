"""Exactly rounded row sums (Shewchuk partials, as CPython's ``math.fsum``).

:func:`fsum_rows` is the Numba kernel; :func:`fsum_rows_twin` calls
``math.fsum`` on each row.  Both return, for each row, the float64 nearest
to the exact real sum of its entries (ties to even), independent of order;
tests assert identical bits.  Rows with a non-finite entry, or whose partial
sums overflow, are handed to ``math.fsum`` (its IEEE special cases); an
overflow (``OverflowError`` in ``math.fsum``) gives +inf, which is the right
answer for the callers' non-negative entries (|w| and w*w).
"""

import math

import numba
import numpy as np

__all__ = ["fsum_rows", "fsum_rows_twin"]

_MAXP = 128          # a float64 sum never needs more than ~40 partials


@numba.njit(cache=True)
def _fsum_row(row, partials):
    n = 0
    for k in range(row.shape[0]):
        x = row[k]
        i = 0
        for j in range(n):
            y = partials[j]
            if abs(x) < abs(y):
                x, y = y, x
            hi = x + y
            lo = y - (hi - x)
            if lo != 0.0:
                partials[i] = lo
                i += 1
            x = hi
        if not (abs(x) <= 1.7976931348623157e308):
            return x, False                  # overflow: let math.fsum decide
        n = i
        if x != 0.0:                         # CPython keeps no zero partial (sum of zeros: +0.0)
            partials[n] = x
            n += 1
    # sum_exact(partials[:n]) with CPython's half-way correction
    hi = 0.0
    if n > 0:
        n -= 1
        hi = partials[n]
        lo = 0.0
        while n > 0:
            x = hi
            n -= 1
            y = partials[n]
            hi = x + y
            yr = hi - x
            lo = y - yr
            if lo != 0.0:
                break
        if n > 0 and ((lo < 0.0 and partials[n - 1] < 0.0) or
                      (lo > 0.0 and partials[n - 1] > 0.0)):
            y = lo * 2.0
            x = hi + y
            yr = x - hi
            if y == yr:
                hi = x
    return hi, True


@numba.njit(cache=True)
def _fsum_rows_kernel(a, out, ok):
    partials = np.empty(_MAXP, dtype=np.float64)
    for r in range(a.shape[0]):
        finite = True
        for k in range(a.shape[1]):
            if not (abs(a[r, k]) <= 1.7976931348623157e308):
                finite = False
                break
        if not finite:
            ok[r] = False
            continue
        s, good = _fsum_row(a[r], partials)
        out[r] = s
        ok[r] = good


def fsum_rows(a):
    """Exactly rounded float64 sum of each row of a 2-D float64 array."""
    a = np.ascontiguousarray(a, dtype=np.float64)
    out = np.zeros(a.shape[0], dtype=np.float64)
    ok = np.ones(a.shape[0], dtype=np.bool_)
    _fsum_rows_kernel(a, out, ok)
    for r in np.flatnonzero(~ok):
        out[r] = _py_fsum(a[r].tolist())
    return out


def _py_fsum(values):
    try:
        return math.fsum(values)
    except OverflowError:
        return math.inf


def fsum_rows_twin(a):
    """Plain-Python twin: ``math.fsum`` of each row."""
    return np.array([_py_fsum(r) for r in np.asarray(a, dtype=np.float64).tolist()],
                    dtype=np.float64).reshape(len(a))
