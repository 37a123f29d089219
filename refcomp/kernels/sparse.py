"""CSR sparse-times-dense kernels (Numba) and their NumPy twins.

Arithmetic contract (every function here):

* each stored entry's product ``data[j] * X[indices[j], t]`` is formed in
  float64 from the float64 conversions of both factors (exact when both came
  from float32: 24 + 24 <= 53 significand bits, FACTS.md §8);
* the products of one output element are added in float64, sequentially,
  starting from +0.0, in the order the entries are stored, i.e. increasing
  column index (CSR rows are strictly increasing);
* optionally one float64 bias term is added after the sum (the dense-layer
  order of :mod:`refcomp.kernels.linear`), then the result is rounded once
  (round half to even, the IEEE conversion) to the output dtype;
* no FMA contraction (Numba without ``fastmath`` emits separate multiply and
  add), so kernel and twin give identical bits.

Structural zeros contribute no term at all: ``inf * (absent entry)`` is not
NaN (the scipy.sparse convention).  For finite X this equals the dense
reference bit for bit, because adding ``x * 0.0 = +-0.0`` to a float64
accumulator that starts at +0.0 never changes it (a sum that is exactly zero
rounds to +0.0, so the accumulator is never -0.0).

Kernels run in parallel over rows (independent outputs) only, so results are
identical for any thread count; below ``_PAR_MIN`` multiply-adds (spmm)
or ``_PAR_MIN_SPMV`` stored entries (spmv) a serial driver runs the same
row body.  Private: callers pass C-contiguous arrays of
consistent shapes (``out`` may be a strided view).
"""

import numba
import numpy as np

__all__ = ["spmv_kernel", "spmm_kernel", "spmv_twin", "spmm_twin"]

#: Rows per parallel task.
_ROW_CHUNK = 64
#: Below this many multiply-adds (nnz * k) the serial driver runs: the work
#: is then under ~100 us, where a parallel launch costs more than it saves
#: and, on a loaded machine, can wait milliseconds for a descheduled worker.
#: Results are identical either way.
_PAR_MIN = 1 << 18
#: spmv runs its parallel driver from this many stored entries (its per-entry
#: work is a gather plus a multiply-add, so the break-even is lower; measured:
#: 9216x128 at 90% (118k entries) 75 -> 40 us on two threads).
_PAR_MIN_SPMV = 1 << 16
_NO_BIAS = np.zeros(1, dtype=np.float64)

# Indices are converted to uint64 before use: Numba then skips the
# negative-index wraparound test on every load (a measurable cost in these
# load-bound loops).  CSR validation guarantees 0 <= index < length.
_U = np.uint64


@numba.njit(cache=True, inline="always")
def _spmv_row(indptr, indices, data, x, bias, has_bias, out, r):
    acc = 0.0
    for j in range(_U(indptr[r]), _U(indptr[r + 1])):
        acc += np.float64(data[j]) * np.float64(x[_U(indices[j])])
    if has_bias:
        acc += bias[r]
    out[r] = acc


@numba.njit(cache=True)
def _spmv_rows(indptr, indices, data, x, bias, has_bias, out, r0, r1):
    # Four rows at a time: each row's float64 sum is still one sequential
    # chain in stored order, but the four independent chains overlap, hiding
    # the add latency that bounds a single chain.  x may be float32: the
    # float64 conversion on load is exact (same bits as converting up front).
    # With under ~4 entries per row the chains are too short to overlap and
    # the per-row loop (fewer branches) is faster.
    r = r0
    if indptr[r1] - indptr[r0] < 4 * (r1 - r0):
        r1b = r0
    else:
        r1b = r1
    while r + 3 < r1b:
        s0 = _U(indptr[r])
        s1 = _U(indptr[r + 1])
        s2 = _U(indptr[r + 2])
        s3 = _U(indptr[r + 3])
        e3 = _U(indptr[r + 4])
        n = min(min(s1 - s0, s2 - s1), min(s3 - s2, e3 - s3))
        a0 = 0.0
        a1 = 0.0
        a2 = 0.0
        a3 = 0.0
        for i in range(n):
            a0 += np.float64(data[s0 + i]) * np.float64(x[_U(indices[s0 + i])])
            a1 += np.float64(data[s1 + i]) * np.float64(x[_U(indices[s1 + i])])
            a2 += np.float64(data[s2 + i]) * np.float64(x[_U(indices[s2 + i])])
            a3 += np.float64(data[s3 + i]) * np.float64(x[_U(indices[s3 + i])])
        for j in range(s0 + n, s1):
            a0 += np.float64(data[j]) * np.float64(x[_U(indices[j])])
        for j in range(s1 + n, s2):
            a1 += np.float64(data[j]) * np.float64(x[_U(indices[j])])
        for j in range(s2 + n, s3):
            a2 += np.float64(data[j]) * np.float64(x[_U(indices[j])])
        for j in range(s3 + n, e3):
            a3 += np.float64(data[j]) * np.float64(x[_U(indices[j])])
        if has_bias:
            a0 += bias[r]
            a1 += bias[r + 1]
            a2 += bias[r + 2]
            a3 += bias[r + 3]
        out[r] = a0
        out[r + 1] = a1
        out[r + 2] = a2
        out[r + 3] = a3
        r += 4
    while r < r1:
        _spmv_row(indptr, indices, data, x, bias, has_bias, out, r)
        r += 1


@numba.njit(cache=True, inline="always")
def _spmm_short(indptr, indices, data, X, bias, has_bias, out, r, j, end, k):
    # Rows of 0-2 entries (most rows at 99% sparsity on narrow matrices):
    # one pass straight into ``out`` with the same additions, (+0.0 + p0) + p1,
    # and no accumulator-row traffic.
    b = bias[r] if has_bias else 0.0
    if end == j:
        for t in range(k):
            v = 0.0
            if has_bias:
                v += b
            out[r, t] = v
    elif end - j == _U(1):
        a0 = np.float64(data[j])
        c0 = _U(indices[j])
        for t in range(k):
            v = 0.0 + a0 * np.float64(X[c0, t])
            if has_bias:
                v += b
            out[r, t] = v
    else:
        a0 = np.float64(data[j])
        a1 = np.float64(data[j + _U(1)])
        c0 = _U(indices[j])
        c1 = _U(indices[j + _U(1)])
        for t in range(k):
            v = (0.0 + a0 * np.float64(X[c0, t])) + a1 * np.float64(X[c1, t])
            if has_bias:
                v += b
            out[r, t] = v


@numba.njit(cache=True)
def _spmm_rows(indptr, indices, data, X, bias, has_bias, out, r0, r1):
    # Per row, entries are applied four at a time to the float64 accumulator
    # row: acc[t] = (((acc[t] + p0) + p1) + p2) + p3 with p_i = a_i*X[c_i, t],
    # the sequential order, with a quarter of the accumulator loads/stores.
    k = _U(X.shape[1])
    acc = np.empty(X.shape[1], dtype=np.float64)
    for r in range(r0, r1):
        j = _U(indptr[r])
        end = _U(indptr[r + 1])
        if end - j <= _U(2):
            _spmm_short(indptr, indices, data, X, bias, has_bias, out, r, j, end, k)
            continue
        for t in range(k):
            acc[t] = 0.0
        while j + _U(3) < end:
            a0 = np.float64(data[j])
            a1 = np.float64(data[j + _U(1)])
            a2 = np.float64(data[j + _U(2)])
            a3 = np.float64(data[j + _U(3)])
            c0 = _U(indices[j])
            c1 = _U(indices[j + _U(1)])
            c2 = _U(indices[j + _U(2)])
            c3 = _U(indices[j + _U(3)])
            for t in range(k):
                acc[t] = (((acc[t] + a0 * np.float64(X[c0, t])) + a1 * np.float64(X[c1, t]))
                          + a2 * np.float64(X[c2, t])) + a3 * np.float64(X[c3, t])
            j += _U(4)
        while j < end:
            a0 = np.float64(data[j])
            c0 = _U(indices[j])
            for t in range(k):
                acc[t] += a0 * np.float64(X[c0, t])
            j += _U(1)
        if has_bias:
            b = bias[r]
            for t in range(k):
                out[r, t] = acc[t] + b
        else:
            for t in range(k):
                out[r, t] = acc[t]


@numba.njit(cache=True, parallel=True)
def _spmv_par(indptr, indices, data, x, bias, has_bias, out, chunk):
    rows = out.shape[0]
    for c in numba.prange((rows + chunk - 1) // chunk):
        _spmv_rows(indptr, indices, data, x, bias, has_bias, out, c * chunk,
                   min(rows, (c + 1) * chunk))


@numba.njit(cache=True, parallel=True)
def _spmm_par(indptr, indices, data, X, bias, has_bias, out, chunk):
    rows = out.shape[0]
    for c in numba.prange((rows + chunk - 1) // chunk):
        _spmm_rows(indptr, indices, data, X, bias, has_bias, out, c * chunk,
                   min(rows, (c + 1) * chunk))


def _bias_arg(bias):
    return (_NO_BIAS, False) if bias is None else (bias, True)


def spmv_kernel(indptr, indices, data, x, out, bias=None):
    """``out[r] = round(sum_j data[j] * x[indices[j]] (+ bias[r]))`` over row r's
    entries in stored order; ``out`` (rows,) of the output dtype, written in
    place; ``bias`` float64 (rows,) or None."""
    b, has = _bias_arg(bias)
    if x.dtype != np.float64:
        # A float64 copy of x (exact; O(cols)) saves one conversion per stored
        # entry in the gather loop: measured 1050 -> 775 us on 4096x4096 at 90%.
        x = x.astype(np.float64)
    if data.shape[0] >= min(_PAR_MIN, _PAR_MIN_SPMV):
        _spmv_par(indptr, indices, data, x, b, has, out, _ROW_CHUNK)
    else:
        _spmv_rows(indptr, indices, data, x, b, has, out, 0, out.shape[0])
    return out


def spmm_kernel(indptr, indices, data, X, out, bias=None):
    """``out[r, t] = round(sum_j data[j] * X[indices[j], t] (+ bias[r]))``:
    A (rows, cols) @ X (cols, k) -> out (rows, k), written in place."""
    b, has = _bias_arg(bias)
    if data.shape[0] * X.shape[1] >= _PAR_MIN:
        _spmm_par(indptr, indices, data, X, b, has, out, _ROW_CHUNK)
    else:
        _spmm_rows(indptr, indices, data, X, b, has, out, 0, out.shape[0])
    return out


def _twin_acc(indptr, indices, data, X2):
    # Step p adds the p-th stored entry of every row that has one: per row the
    # additions are those of the kernel, in the same order.
    rows = indptr.shape[0] - 1
    acc = np.zeros((rows, X2.shape[1]), dtype=np.float64)
    lengths = np.diff(indptr)
    for p in range(int(lengths.max(initial=0))):
        rr = np.flatnonzero(lengths > p)
        j = indptr[rr] + p
        acc[rr] += data[j].astype(np.float64)[:, None] * X2[indices[j]].astype(np.float64)
    return acc


def _twin_round(acc, bias, dtype):
    if bias is not None:
        acc += bias[:, None]
    return acc.astype(dtype)


def spmv_twin(indptr, indices, data, x, dtype, bias=None):
    """NumPy twin of :func:`spmv_kernel`; returns a new (rows,) array of ``dtype``."""
    return _twin_round(_twin_acc(indptr, indices, data, x[:, None]), bias, dtype)[:, 0]


def spmm_twin(indptr, indices, data, X, dtype, bias=None):
    """NumPy twin of :func:`spmm_kernel`; returns a new (rows, k) array of ``dtype``."""
    return _twin_round(_twin_acc(indptr, indices, data, X), bias, dtype)
