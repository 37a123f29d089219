"""Vector quantization kernels of product quantization.

``vq_assign``: nearest centroid of each row (squared Euclidean distance,
lowest index on ties); ``vq_means``: per-cluster, per-coordinate exactly
rounded means (exact sums from :mod:`._exact`).

Twins: NumPy ``argmin`` over the same squared distances; means by
:func:`math.fsum` (an independent exact method).

Private module: inputs are validated, finite, contiguous float64/int64.
"""

import math

import numba
import numpy as np

from ._exact import _add_entry, _centroid, _limbs_to_float

__all__ = ["vq_assign", "vq_assign_twin", "vq_means", "vq_means_twin"]


@numba.njit(cache=True, parallel=True)
def vq_assign(X, C):
    """Index of the nearest row of C for each row of X.

    Squared Euclidean distance in float64, coordinates summed in ascending
    order; the lowest index wins ties.  Rows are independent (prange), so
    the result does not depend on the thread count.
    """
    n, d = X.shape
    k = C.shape[0]
    out = np.empty(n, np.int64)
    for r in numba.prange(n):
        best = np.inf
        arg = 0
        for c in range(k):
            s = 0.0
            for j in range(d):
                t = X[r, j] - C[c, j]
                s += t * t
            if s < best:
                best = s
                arg = c
        out[r] = arg
    return out


def vq_assign_twin(X, C):
    s = np.zeros((X.shape[0], C.shape[0]))
    for j in range(X.shape[1]):
        t = X[:, j][:, None] - C[:, j][None, :]
        s += t * t
    return np.argmin(s, axis=1).astype(np.int64)


@numba.njit(cache=True)
def vq_means(X, codes, C_old, to32, emin, n_limbs):
    """Per-cluster, per-coordinate exactly rounded means; empty clusters keep C_old."""
    n, d = X.shape
    k = C_old.shape[0]
    C = C_old.copy()
    sums = np.zeros((k, d, n_limbs), np.int64)
    counts = np.zeros(k, np.int64)
    work = np.zeros(n_limbs, np.int64)
    for r in range(n):
        c = codes[r]
        counts[c] += 1
        for j in range(d):
            _add_entry(sums[c, j], X[r, j], 1, emin)
    for c in range(k):
        if counts[c] > 0:
            for j in range(d):
                C[c, j] = _centroid(_limbs_to_float(sums[c, j], emin, work), counts[c], to32)
    return C


def vq_means_twin(X, codes, C_old, to32):
    C = C_old.copy()
    for c in range(C.shape[0]):
        rows = X[codes == c]
        if rows.shape[0]:
            for j in range(X.shape[1]):
                v = math.fsum(rows[:, j].tolist()) / float(rows.shape[0])
                C[c, j] = float(np.float32(v)) if to32 else v
    return C
