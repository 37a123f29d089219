"""Cluster cost of the optimal 1-D k-means DP, from compensated prefix sums.

``cost(j, i)``, the SSE of the distinct values j..i around their mean, is
``S2 − S1²/W`` with double-double prefix sums (TwoSum / Dekker
TwoProduct, no FMA) of cnt·y and cnt·y² (the error analysis is in
:func:`refcomp.quantize.kmeans_optimal`).  Also the DP's array-index
helper ``_ix``.

Written once in plain Python, interpreted by the twins; the ``*_nb`` names
are the compiled versions (:func:`._jit._jit_rebound`).
"""

import numba
import numpy as np

from ._jit import _jit_rebound


def _two_sum(a, b):
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


def _split(a):
    c = 134217729.0 * a                    # 2**27 + 1 (Dekker)
    hi = c - (c - a)
    return hi, a - hi


def _two_prod(a, b):
    p = a * b
    ah, al = _split(a)
    bh, bl = _split(b)
    return p, ((ah * bh - p) + ah * bl + al * bh) + al * bl


def _dp_prefix_py(y, cnt):
    """Compensated prefix sums of cnt·y and cnt·y² as (hi, lo) pairs (double-double)."""
    m = y.size
    Q = np.zeros((m + 1, 5))     # one row per prefix: h1, l1, h2, l2, count (cache locality)
    a1 = 0.0
    b1 = 0.0
    a2 = 0.0
    b2 = 0.0
    for j in range(m):
        w = np.float64(cnt[j])
        p, pe = _two_prod(w, y[j])
        s, se = _two_sum(a1, p)
        b1 = b1 + (se + pe)
        a1, b1 = _two_sum(s, b1)
        q, qe = _two_prod(y[j], y[j])
        r, re = _two_prod(w, q)
        re = re + w * qe
        s, se = _two_sum(a2, r)
        b2 = b2 + (se + re)
        a2, b2 = _two_sum(s, b2)
        Q[j + 1, 0] = a1
        Q[j + 1, 1] = b1
        Q[j + 1, 2] = a2
        Q[j + 1, 3] = b2
        Q[j + 1, 4] = Q[j, 4] + w          # exact: counts total < 2**53
    return Q


def _dp_cost(Q, a, e):
    """SSE of distinct values a..e-1 around their mean, clamped at 0 (``e``
    exclusive, so unsigned indices need no ``+ 1``)."""
    w = Q[e, 4] - Q[a, 4]
    s1 = (Q[e, 0] - Q[a, 0]) + (Q[e, 1] - Q[a, 1])
    s2 = (Q[e, 2] - Q[a, 2]) + (Q[e, 3] - Q[a, 3])
    c = s2 - s1 * s1 / w
    return c if c > 0.0 else 0.0


def _ix(i):
    """Array index, non-negative: a Python int here (the interpreted twin:
    NumPy integer scalars make each load about 4x slower); ``np.uint64`` in
    the compiled kernels (``_ix_nb``), where Numba then skips the
    negative-index wraparound test on every load (about 25 % of an entry
    evaluation).  Index values, and so all float operations, are the same."""
    return int(i)


def _ix_u64(i):
    return np.uint64(i)


_two_sum_nb = numba.njit(cache=True)(_two_sum)
_split_nb = numba.njit(cache=True)(_split)
_two_prod_nb = _jit_rebound(_two_prod, _split=_split_nb)
_dp_cost_nb = numba.njit(cache=True, inline="always")(_dp_cost)
_dp_prefix_nb = _jit_rebound(_dp_prefix_py, _two_sum=_two_sum_nb, _two_prod=_two_prod_nb)
# Under NUMBA_DISABLE_JIT the "compiled" kernels run interpreted: keep int indices there.
_ix_nb = int if numba.config.DISABLE_JIT else numba.njit(cache=True, inline="always")(_ix_u64)
