"""Globally optimal 1-D k-means by dynamic programming (Grønlund et al. 2017 §2.2).

:func:`optimal_dp` fills the k DP rows, each by :func:`._optimal_rows._dc_row`
on the costs of :mod:`._optimal_cost`, keeps the back-pointers 2 bits per
entry (:func:`_pack_row`, :func:`_packed_arg`) and backtracks.

The DP is written once in plain Python: :func:`optimal_dp` runs it
compiled (:func:`._jit._jit_rebound`), the twin :func:`optimal_dp_twin`
interpreted (``numba.prange`` is ``range``; the DP's array indices are
Python ints there, uint64 when compiled, see ``_ix``), which checks the
compiled arithmetic against CPython's IEEE floats.
"""

import numba
import numpy as np

from ._jit import _jit_rebound
from ._optimal_cost import _dp_cost, _dp_cost_nb, _dp_prefix_nb, _dp_prefix_py
from ._optimal_rows import _dc_row, _dc_row_nb

__all__ = ["optimal_dp", "optimal_dp_twin"]


_B55 = np.uint64(0x5555555555555555)
_B33 = np.uint64(0x3333333333333333)
_B0F = np.uint64(0x0F0F0F0F0F0F0F0F)


def _popcount(x):
    """Number of set bits of the uint64 ``x`` (SWAR, no multiplication, so
    interpreted NumPy scalars never overflow either)."""
    x = x - ((x >> np.uint64(1)) & _B55)
    x = (x & _B33) + ((x >> np.uint64(2)) & _B33)
    x = (x + (x >> np.uint64(4))) & _B0F
    x = x + (x >> np.uint64(8))
    x = x + (x >> np.uint64(16))
    x = x + (x >> np.uint64(32))
    return np.int64(x & np.uint64(0x7F))


def _pack_row(arg, c, m, row):
    """Store the argmins ``arg[c..m-1]`` of DP row c in the zeroed bit row ``row``.

    :func:`_dc_row` makes a row's argmins non-decreasing in i (each row's
    search interval ends / starts at its neighbours' argmins), with
    ``c <= arg[i] <= i``: entry i sets bit ``(i − c) + (arg[i] − c)``, i.e.
    the unary code of the increments (Elias-Fano without low bits).  At most
    ``2·(m − c)`` bits: 2 bits per entry instead of an int32.
    """
    one = np.uint64(1)
    for i in range(c, m):
        p = (i - c) + (np.int64(arg[i]) - c)
        row[p >> 6] |= one << np.uint64(p & 63)


def _packed_arg(row, c, i):
    """``arg[i]`` of a row packed by :func:`_pack_row`: the position p of its
    (i − c + 1)-th set bit gives ``arg[i] = p − (i − c) + c``."""
    r = i - c + 1
    w = 0
    x = row[0]
    n = _popcount(x)
    while n < r:
        r -= n
        w += 1
        x = row[w]
        n = _popcount(x)
    b = 0
    while True:
        if (x >> np.uint64(b)) & np.uint64(1):
            r -= 1
            if r == 0:
                break
        b += 1
    return w * 64 + b - (i - c) + c


def _optimal_dp_py(y, cnt, ccum, k):
    """DP of Grønlund et al. (2017) §2.2, each row by :func:`_dc_row`
    (divide and conquer into segments, SMAWK within each).

    D[c][i] = min_{c <= j <= i} D[c-1][j-1] + cost(j, i).  Returns the
    cluster start indices (k,) and the DP value.  Back-pointers: rows
    1..k-1 packed 2 bits per entry (:func:`_pack_row`); the argmins of the
    row being computed and of the previous one (its search lower bounds) in
    two int32 arrays; SMAWK's column lists in one int32 array of 2·m.
    """
    m = y.size
    Q = _dp_prefix_py(y, cnt)
    prev = np.empty(m)
    cur = np.empty(m)
    arg = np.zeros(m, np.int32)
    low = np.zeros(m, np.int32)          # row 0: its one cluster starts at 0
    work = np.empty(2 * m, np.int32)     # SMAWK column lists (see _smawk_rows)
    packed = np.zeros((max(k - 1, 0), (2 * m + 63) >> 6), np.uint64)
    for i in range(m):
        prev[i] = _dp_cost(Q, 0, i + 1)
    for c in range(1, k):
        for i in range(c):
            cur[i] = np.inf
        _dc_row(prev, Q, cur, arg, low, c, m, work)
        _pack_row(arg, c, m, packed[c - 1])
        prev, cur = cur, prev
        arg, low = low, arg
    starts = np.zeros(k, np.int64)
    end = m - 1
    for c in range(k - 1, 0, -1):
        j = _packed_arg(packed[c - 1], c, end)
        starts[c] = j
        end = j - 1
    return starts, prev[m - 1]


_popcount_nb = numba.njit(cache=True, inline="always")(_popcount)
_pack_row_nb = numba.njit(cache=True)(_pack_row)
_packed_arg_nb = _jit_rebound(_packed_arg, _popcount=_popcount_nb)
_optimal_dp_nb = _jit_rebound(_optimal_dp_py, _dp_cost=_dp_cost_nb, _dp_prefix_py=_dp_prefix_nb,
                              _dc_row=_dc_row_nb, _pack_row=_pack_row_nb,
                              _packed_arg=_packed_arg_nb)


def optimal_dp(y, cnt, ccum, k):
    """Cluster starts and DP cost for centred sorted distinct ``y`` (Numba)."""
    return _optimal_dp_nb(y, cnt, ccum, k)


def optimal_dp_twin(y, cnt, ccum, k):
    """Same DP interpreted by CPython (twin of :func:`optimal_dp`)."""
    return _optimal_dp_py(y, cnt, ccum, k)
