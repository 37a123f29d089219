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
  add), so kernel and twin give identical bits; where both factors are
  float32 the kernels use an explicit FMA, which gives the same bits because
  the product is exact (:func:`refcomp.kernels._fma.madd`).

Structural zeros contribute no term at all: ``inf * (absent entry)`` is not
NaN (the scipy.sparse convention).  For finite X this equals the dense
reference bit for bit, because adding ``x * 0.0 = +-0.0`` to a float64
accumulator that starts at +0.0 never changes it (a sum that is exactly zero
rounds to +0.0, so the accumulator is never -0.0).

NaN payloads: a single NaN operand propagates (quieted) with its payload.
When two NaNs meet in one operation (a NaN product added to a NaN
accumulator, or a NaN value times a NaN x), IEEE 754 does not say whose
payload survives; x86 keeps the first operand's, and LLVM may commute the
operands of a vector multiply or add.  So in that case only, the payload
bits may differ between the kernels, the twins and hosts (the sign and the
quiet bit of such a NaN too); every other bit is as stated.

Kernels run in parallel over rows (independent outputs) only, so results are
identical for any thread count.  A serial driver runs the same row body on
one thread, and below ``_PAR_MIN`` multiply-adds (spmm), ``_PAR_MIN_SPMV``
stored entries plus rows (spmv row loop) or ``_PAR_MIN_SLICED`` stored
entries (sliced spmv).  Rows are processed in the order of
:func:`row_order` (grouped by length); the order of independent rows never
changes a bit.  spmv runs, where :func:`use_sliced` says so, on the sliced
ELLPACK copy of the matrix (:mod:`refcomp.kernels._sell`): eight rows' sums
advance together in vector lanes, each lane still the sequential float64
chain above, so the bits are the same.  Private: callers pass C-contiguous
arrays of consistent shapes (``out`` may be a strided view).
"""

import numba
import numpy as np

from ._fma import madd as _madd
from ._rowvec import ROWVEC_OK, row_block
from ._sell import GATHER_OK, LANES, WINDOW as _SLICED_WINDOW, lanes8
from ._sell import sliced_layout as _sliced_layout
from ._threads import num_threads as _num_threads

__all__ = ["row_order", "use_sliced", "sliced_layout", "spmv_kernel", "spmm_kernel",
           "spmv_twin", "spmm_twin"]

#: Rows per parallel task.
_ROW_CHUNK = 64
#: Below this many multiply-adds (nnz * k) the serial driver runs: the work
#: is then under ~100 us, where a parallel launch costs more than it saves
#: and, on a loaded machine, can wait milliseconds for a descheduled worker.
#: Results are identical either way.
_PAR_MIN = 1 << 18
#: spmv runs its parallel driver from this many stored entries plus rows (its
#: per-entry work is a gather plus a multiply-add, so the break-even is lower;
#: measured on two threads: 9216x128 at 99% (11.8k entries) 16 -> 11 us).
_PAR_MIN_SPMV = 1 << 14
_NO_BIAS = np.zeros(1, dtype=np.float64)
#: Cost of one slice in stored entries, for the parallel split (the tails
#: and eight output stores).
_SLICE_COST = 24
#: The sliced spmv runs in parallel from this many stored entries (about
#: 0.3 ns each on one thread: below this the launch costs more than it
#: saves; measured 4096x512 at 97%, 63k entries: 21 us on one thread, 24 on two).
_PAR_MIN_SLICED = 1 << 16
#: spmm keeps its accumulators in registers (kernels/_rowvec.py) up to this
#: many columns of X.  Wider X are read in 64-column blocks, one block per
#: pass over a row's entries, and the row sweeps then stream X better
#: (one thread, 128x9216 at 90%: k = 64 1.05 against 1.17 ms, k = 256 6.98
#: against 6.87 ms, k = 1000 33 against 21 ms).
_ROWVEC_MAX_K = 128
#: Largest float64 copy of X that spmm makes (fits in L2 next to A's arrays).
_X64_MAX_BYTES = 1 << 19

# Indices are converted to uint64 before use: Numba then skips the
# negative-index wraparound test on every load (a measurable cost in these
# load-bound loops).  CSR validation guarantees 0 <= index < length.
_U = np.uint64


#: Rows are reordered by length within windows of this many rows (see
#: :func:`row_order`); small enough that the stored entries of one window stay
#: in L1/L2 whatever the processing order inside it.
_ORDER_WINDOW = 256


def row_order(indptr, window=_ORDER_WINDOW):
    """Processing order of the rows: stable sort by stored length within
    consecutive windows of ``window`` rows; int64 (rows,).

    Only the order in which *independent* rows are computed changes, never
    the order of the additions inside a row, so the results are identical
    bits for any permutation (tests check this).  Rows of equal length
    processed together make the kernels' loop trip counts predictable and
    let four equal-length chains run interleaved without tails: measured
    9216x128 at 90% sparsity, spmv 106 -> 63 us on one thread.
    """
    rows = indptr.shape[0] - 1
    lengths = np.diff(indptr)
    block = np.arange(rows, dtype=np.int64) // window
    return np.lexsort((lengths, block)).astype(np.int64)


@numba.njit(cache=True, inline="always")
def _spmv_row(indptr, indices, data, x, bias, has_bias, out, r, fused):
    acc = 0.0
    for j in range(_U(indptr[r]), _U(indptr[r + 1])):
        acc = _madd(np.float64(data[j]), np.float64(x[_U(indices[j])]), acc, fused)
    if has_bias:
        acc += bias[r]
    out[r] = acc


@numba.njit(cache=True, inline="always")
def _continue4(indptr, indices, data, x, order, q, skip, a0, a1, a2, a3, fused):
    # Rows order[q:q+4], whose first ``skip`` entries are already summed in
    # a0..a3 (skip = 0 and +0.0 for whole rows): each row's float64 sum
    # stays one sequential chain in stored order, but the four independent
    # chains overlap, hiding the add latency that bounds a single chain.
    # With rows grouped by length (row_order) the four usually have the
    # same length, so the tails are empty and the branches predictable.  x
    # may be float32: the float64 conversion on load is exact.
    r0 = _U(order[q])
    r1 = _U(order[q + 1])
    r2 = _U(order[q + 2])
    r3 = _U(order[q + 3])
    s0 = _U(indptr[r0]) + _U(skip)
    s1 = _U(indptr[r1]) + _U(skip)
    s2 = _U(indptr[r2]) + _U(skip)
    s3 = _U(indptr[r3]) + _U(skip)
    e0 = _U(indptr[r0 + _U(1)])
    e1 = _U(indptr[r1 + _U(1)])
    e2 = _U(indptr[r2 + _U(1)])
    e3 = _U(indptr[r3 + _U(1)])
    n = min(min(e0 - s0, e1 - s1), min(e2 - s2, e3 - s3))
    for i in range(n):
        a0 = _madd(np.float64(data[s0 + i]), np.float64(x[_U(indices[s0 + i])]), a0, fused)
        a1 = _madd(np.float64(data[s1 + i]), np.float64(x[_U(indices[s1 + i])]), a1, fused)
        a2 = _madd(np.float64(data[s2 + i]), np.float64(x[_U(indices[s2 + i])]), a2, fused)
        a3 = _madd(np.float64(data[s3 + i]), np.float64(x[_U(indices[s3 + i])]), a3, fused)
    for j in range(s0 + n, e0):
        a0 = _madd(np.float64(data[j]), np.float64(x[_U(indices[j])]), a0, fused)
    for j in range(s1 + n, e1):
        a1 = _madd(np.float64(data[j]), np.float64(x[_U(indices[j])]), a1, fused)
    for j in range(s2 + n, e2):
        a2 = _madd(np.float64(data[j]), np.float64(x[_U(indices[j])]), a2, fused)
    for j in range(s3 + n, e3):
        a3 = _madd(np.float64(data[j]), np.float64(x[_U(indices[j])]), a3, fused)
    return a0, a1, a2, a3


@numba.njit(cache=True)
def _spmv_rows(indptr, indices, data, x, bias, has_bias, out, order, q0, q1, fused):
    # Rows order[q0:q1], four at a time (see _continue4).  (The stores are
    # written out: a shared inlined store helper measured 1.5-2x slower.)
    q = q0
    while q + 3 < q1:
        a0, a1, a2, a3 = _continue4(indptr, indices, data, x, order, q, 0,
                                    0.0, 0.0, 0.0, 0.0, fused)
        r0 = _U(order[q])
        r1 = _U(order[q + 1])
        r2 = _U(order[q + 2])
        r3 = _U(order[q + 3])
        if has_bias:
            a0 += bias[r0]
            a1 += bias[r1]
            a2 += bias[r2]
            a3 += bias[r3]
        out[r0] = a0
        out[r1] = a1
        out[r2] = a2
        out[r3] = a3
        q += 4
    while q < q1:
        _spmv_row(indptr, indices, data, x, bias, has_bias, out, _U(order[q]), fused)
        q += 1


@numba.njit(cache=True)
def _spmv_slices(indptr, indices, data, x, bias, has_bias, out, order, sl_ptr, sl_len, sl_tail,
                 sl_idx, sl_data, s0, s1, fused):
    # Slices s0..s1-1 of the sliced layout (kernels/_sell.py): eight rows'
    # common prefix in vector lanes, then each row's sequential chain
    # continues over its remaining entries in the CSR arrays, four rows
    # interleaved.
    for s in range(s0, s1):
        n = sl_len[s]
        acc = lanes8(sl_data, sl_idx, x, sl_ptr[s], n, fused)
        q = s * LANES
        if sl_tail[s]:
            lo = _continue4(indptr, indices, data, x, order, q, n, acc[0], acc[1], acc[2],
                            acc[3], fused)
            hi = _continue4(indptr, indices, data, x, order, q + 4, n, acc[4], acc[5], acc[6],
                            acc[7], fused)
            acc = (lo[0], lo[1], lo[2], lo[3], hi[0], hi[1], hi[2], hi[3])
        for lane in range(LANES):
            r = order[q + lane]
            a = acc[lane]
            if has_bias:
                a += bias[r]
            out[r] = a


@numba.njit(cache=True, parallel=True)
def _spmv_slices_par(indptr, indices, data, x, bias, has_bias, out, order, sl_ptr, sl_len,
                     sl_tail, sl_idx, sl_data, parts, fused):
    # One part per thread, cut at equal cost (stored entries plus a fixed
    # cost per slice) rather than equal slice counts: the slices are sorted by
    # length within large windows, so equal counts would hand one thread
    # all the short rows.  Parts only change which thread computes a row.
    n_slices = sl_len.shape[0]
    cost = sl_ptr[n_slices] + _SLICE_COST * n_slices
    for p in numba.prange(parts):
        s0 = _cut(sl_ptr, n_slices, cost * p // parts)
        s1 = _cut(sl_ptr, n_slices, cost * (p + 1) // parts)
        _spmv_slices(indptr, indices, data, x, bias, has_bias, out, order, sl_ptr, sl_len, sl_tail,
                     sl_idx, sl_data, s0, s1, fused)


@numba.njit(cache=True, inline="always")
def _cut(sl_ptr, n_slices, target):
    # First slice s with sl_ptr[s] + _SLICE_COST * s >= target (binary search).
    lo = 0
    hi = n_slices
    while lo < hi:
        mid = (lo + hi) // 2
        if sl_ptr[mid] + _SLICE_COST * mid < target:
            lo = mid + 1
        else:
            hi = mid
    return lo


@numba.njit(cache=True, inline="always")
def _spmm_pass(indices, data, X, acc, out, r, j, n, from_acc, to_out, b, has_bias, k, fused):
    # One sweep over the row's k outputs applying stored entries j .. j+n-1
    # (n = 1..4) in order: v = (((v + p0) + p1) + p2) + p3, p_i = a_i*X[c_i, t],
    # starting from +0.0 (first sweep) or the float64 accumulator row, ending
    # in the accumulator or, on the last sweep, rounded into ``out`` (after
    # the bias).  Every call site passes n, from_acc and to_out as constants,
    # so each inlined copy is one branch-free vectorisable loop.  A row of L
    # entries thus costs ceil(L/4) sweeps and no separate zeroing or
    # write-out sweep (rows of <= 4 entries never touch the accumulator).
    a0 = np.float64(data[j])
    c0 = _U(indices[j])
    a1, a2, a3 = a0, a0, a0
    c1, c2, c3 = c0, c0, c0
    if n > 1:
        a1 = np.float64(data[j + _U(1)])
        c1 = _U(indices[j + _U(1)])
    if n > 2:
        a2 = np.float64(data[j + _U(2)])
        c2 = _U(indices[j + _U(2)])
    if n > 3:
        a3 = np.float64(data[j + _U(3)])
        c3 = _U(indices[j + _U(3)])
    for t in range(k):
        v = acc[t] if from_acc else 0.0
        v = _madd(a0, np.float64(X[c0, t]), v, fused)
        if n > 1:
            v = _madd(a1, np.float64(X[c1, t]), v, fused)
        if n > 2:
            v = _madd(a2, np.float64(X[c2, t]), v, fused)
        if n > 3:
            v = _madd(a3, np.float64(X[c3, t]), v, fused)
        if to_out:
            if has_bias:
                v += b
            out[r, t] = v
        else:
            acc[t] = v


@numba.njit(cache=True)
def _spmm_rows(indptr, indices, data, X, bias, has_bias, out, order, q0, q1, fused):
    # Rows order[q0:q1]; per row the entries in stored order, four per sweep
    # (_spmm_pass), the additions of the sequential sum.
    k = _U(X.shape[1])
    acc = np.empty(X.shape[1], dtype=np.float64)
    for q in range(q0, q1):
        r = _U(order[q])
        j = _U(indptr[r])
        end = _U(indptr[r + _U(1)])
        b = bias[r] if has_bias else 0.0
        if end == j:
            for t in range(k):
                v = 0.0
                if has_bias:
                    v += b
                out[r, t] = v
            continue
        from_acc = False
        if end - j > _U(4):
            _spmm_pass(indices, data, X, acc, out, r, j, 4, False, False, b, has_bias, k, fused)
            j += _U(4)
            while end - j > _U(4):
                _spmm_pass(indices, data, X, acc, out, r, j, 4, True, False, b, has_bias, k,
                           fused)
                j += _U(4)
            from_acc = True
        # the last sweep, 1-4 entries (from_acc is loop invariant: LLVM
        # unswitches the sweep's loop on it)
        m = end - j
        if m == _U(1):
            _spmm_pass(indices, data, X, acc, out, r, j, 1, from_acc, True, b, has_bias, k, fused)
        elif m == _U(2):
            _spmm_pass(indices, data, X, acc, out, r, j, 2, from_acc, True, b, has_bias, k, fused)
        elif m == _U(3):
            _spmm_pass(indices, data, X, acc, out, r, j, 3, from_acc, True, b, has_bias, k, fused)
        else:
            _spmm_pass(indices, data, X, acc, out, r, j, 4, from_acc, True, b, has_bias, k, fused)


@numba.njit(cache=True)
def _spmm_rows_vec(indptr, indices, data, X, bias, has_bias, out, order, q0, q1, fused):
    # Rows order[q0:q1], each with its accumulators in vector registers
    # (kernels/_rowvec.py).
    for q in range(q0, q1):
        r = order[q]
        row_block(data, indices, X, indptr[r], indptr[r + 1], out, r, bias, has_bias, fused)


# The three parallel drivers differ only in the row function they call;
# a shared factory would make them closures, which Numba does not cache
# (a parallel compile costs about a second in every new process).
@numba.njit(cache=True, parallel=True)
def _spmm_par_vec(indptr, indices, data, X, bias, has_bias, out, order, chunk, fused):
    rows = out.shape[0]
    for c in numba.prange((rows + chunk - 1) // chunk):
        _spmm_rows_vec(indptr, indices, data, X, bias, has_bias, out, order, c * chunk,
                       min(rows, (c + 1) * chunk), fused)


@numba.njit(cache=True, parallel=True)
def _spmv_par(indptr, indices, data, x, bias, has_bias, out, order, chunk, fused):
    rows = out.shape[0]
    for c in numba.prange((rows + chunk - 1) // chunk):
        _spmv_rows(indptr, indices, data, x, bias, has_bias, out, order, c * chunk,
                   min(rows, (c + 1) * chunk), fused)


@numba.njit(cache=True, parallel=True)
def _spmm_par(indptr, indices, data, X, bias, has_bias, out, order, chunk, fused):
    rows = out.shape[0]
    for c in numba.prange((rows + chunk - 1) // chunk):
        _spmm_rows(indptr, indices, data, X, bias, has_bias, out, order, c * chunk,
                   min(rows, (c + 1) * chunk), fused)


def _exact_products(data, X):
    # Both factors float32: every product is exact in float64 (see _madd).
    return data.dtype == np.float32 and X.dtype == np.float32


def _parallel(work, threshold):
    # On one thread the serial driver runs the same row body without the
    # parallel launch.
    return work >= threshold and _num_threads() > 1


def _bias_arg(bias):
    return (_NO_BIAS, False) if bias is None else (bias, True)


def use_sliced(indptr):
    """Whether spmv should run on the sliced layout of this matrix: at least
    ``LANES`` rows, on a machine whose AVX gathers are not slowed by a
    microcode mitigation.  A speed choice only: both kernels give the same
    bits.  Measured on one thread (2-core VM, float32), row loop -> sliced:
    9216x128 at 99% (1.3 entries per row) 17.8 -> 13.0 us, at 90% (12.8 per
    row) 59 -> 40 us; 4096x4096 at 99% (41 per row) 84 -> 48 us."""
    rows = indptr.shape[0] - 1
    return GATHER_OK and rows >= LANES


def sliced_layout(indptr, indices, data):
    """The :class:`refcomp.kernels._sell.SlicedLayout` of a CSR matrix for
    :func:`spmv_kernel`, rows grouped by length in windows of
    ``_sell.WINDOW`` rows (:func:`row_order`)."""
    return _sliced_layout(indptr, indices, data, row_order(indptr, _SLICED_WINDOW))


def spmv_kernel(indptr, indices, data, x, out, bias=None, order=None, sliced=None):
    """``out[r] = round(sum_j data[j] * x[indices[j]] (+ bias[r]))`` over row r's
    entries in stored order; ``out`` (rows,) of the output dtype, written in
    place; ``bias`` float64 (rows,) or None; ``order`` a permutation of the
    rows giving the processing order (default :func:`row_order`; any
    permutation gives the same bits); ``sliced`` None or the
    :func:`sliced_layout` of these arrays, which then replaces ``order``
    (same bits, faster on long rows: see :func:`use_sliced`)."""
    b, has = _bias_arg(bias)
    fused = _exact_products(data, x)
    if sliced is not None:
        # No float64 copy of x here: the sliced kernel converts eight gathered
        # values in one instruction, and a freshly written copy made its
        # gathers slower (4096x4096 at 99%: 70 -> 81 us).
        n_slices = sliced.slice_len.shape[0]
        order = sliced.order
        args = (indptr, indices, data, x, b, has, out, order, sliced.slice_ptr,
                sliced.slice_len, sliced.slice_tail, sliced.indices, sliced.data)
        threads = _num_threads()
        if data.shape[0] >= _PAR_MIN_SLICED and threads > 1:
            _spmv_slices_par(*args, threads, fused)
        else:
            _spmv_slices(*args, 0, n_slices, fused)
        # The last rows % LANES rows of the order are in no slice.
        _spmv_rows(indptr, indices, data, x, b, has, out, order, n_slices * LANES,
                   out.shape[0], fused)
        return out
    if order is None:
        order = row_order(indptr)
    if x.dtype != np.float64:
        # A float64 copy of x (exact; O(cols)) saves one conversion per stored
        # entry in the row loop: measured 1050 -> 775 us on 4096x4096 at 90%.
        x = x.astype(np.float64)
    if _parallel(data.shape[0] + out.shape[0], _PAR_MIN_SPMV):
        _spmv_par(indptr, indices, data, x, b, has, out, order, _ROW_CHUNK, fused)
    else:
        _spmv_rows(indptr, indices, data, x, b, has, out, order, 0, out.shape[0], fused)
    return out


def spmm_kernel(indptr, indices, data, X, out, bias=None, order=None):
    """``out[r, t] = round(sum_j data[j] * X[indices[j], t] (+ bias[r]))``:
    A (rows, cols) @ X (cols, k) -> out (rows, k), written in place; ``order``
    as in :func:`spmv_kernel`."""
    b, has = _bias_arg(bias)
    if order is None:
        order = row_order(indptr)
    fused = _exact_products(data, X)
    parallel = _parallel(data.shape[0] * X.shape[1], _PAR_MIN)
    if ROWVEC_OK and X.shape[1] <= _ROWVEC_MAX_K:
        # Accumulators in registers; X is read as stored (a float32 row of
        # 64 is 256 bytes: the whole of a 128x64 X stays in L1, where a
        # float64 copy would not).
        if parallel:
            _spmm_par_vec(indptr, indices, data, X, b, has, out, order, _ROW_CHUNK, fused)
        else:
            _spmm_rows_vec(indptr, indices, data, X, b, has, out, order, 0, out.shape[0], fused)
        return out
    if fused and X.nbytes <= _X64_MAX_BYTES // 2:
        # float64 copy of a small X (exact): the inner loop then loads its
        # operand straight into the FMA; measured 9216x128 at 90%, k=64:
        # 980 -> 780 us.  A large copy falls out of L2 and costs more than
        # the conversions it saves (4096x4096: 12.4 -> 17.3 ms).
        X = X.astype(np.float64)
    # Serial driver on one thread (the parallel driver run on one thread
    # measured 2-10 % slower: 9216x128 at 99%, k=64, 221 against 245 us).
    if parallel:
        _spmm_par(indptr, indices, data, X, b, has, out, order, _ROW_CHUNK, fused)
    else:
        _spmm_rows(indptr, indices, data, X, b, has, out, order, 0, out.shape[0], fused)
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
