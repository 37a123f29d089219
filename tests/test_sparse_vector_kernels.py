"""The vector-register sparse kernels: the sliced ELLPACK spmv path
(refcomp.kernels._sell) and the register-accumulator spmm rows
(refcomp.kernels._rowvec).  The layout is checked entry by entry against its
definition; results are bit-identical to a plain-Python loop and to the
NumPy twin for every dtype pair, tails, partial column blocks, strided
outputs, biases, non-finite values, serial and parallel drivers and thread
counts, and to the scalar kernels they replace."""

import numba
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import refcomp.kernels.sparse as ks
from refcomp.kernels import _sell
from refcomp.kernels.sparse import (row_order, sliced_layout, spmm_kernel, spmm_twin,
                                    spmv_kernel, spmv_twin)
from refcomp.sparse import CSR, spmv
from refcomp.testing import assert_bits_equal


def mixed_matrix(rng, rows, cols, dtype, max_len):
    """Rows of random lengths 0..max_len (so slices with and without tails)."""
    W = np.zeros((rows, cols), dtype)
    for r in range(rows):
        n = int(rng.integers(0, min(cols, max_len) + 1))
        W[r, rng.choice(cols, n, replace=False)] = rng.standard_normal(n)
    return W


def naive_spmv(A, x, out_dtype, bias=None):
    """Plain Python floats over the stored entries of each row, in stored
    order, from +0.0; bias last; one rounding."""
    y = np.empty(A.shape[0], np.float64)
    for r in range(A.shape[0]):
        acc = 0.0
        for j in range(int(A.indptr[r]), int(A.indptr[r + 1])):
            acc += float(A.data[j]) * float(x[A.indices[j]])
        if bias is not None:
            acc += float(bias[r])
        y[r] = acc
    with np.errstate(over="ignore"):
        return y.astype(out_dtype)


def _force(monkeypatch, parallel):
    monkeypatch.setattr(ks, "_PAR_MIN_SLICED", 0 if parallel else 1 << 62)


@pytest.mark.parametrize("batch", [None, 5, 100])
def test_layout_matches_its_definition(monkeypatch, batch):
    if batch is not None:                     # built in several batches
        monkeypatch.setattr(_sell, "_BUILD_BATCH", batch)
    rng = np.random.default_rng(3)
    A = CSR.from_dense(mixed_matrix(rng, 203, 50, np.float32, 12))
    lay = sliced_layout(A.indptr, A.indices, A.data)
    lanes = _sell.LANES
    order = lay.order.tolist()
    assert order == row_order(A.indptr, _sell.WINDOW).tolist()
    assert sorted(order) == list(range(203))
    n_slices = 203 // lanes
    assert lay.slice_len.shape == (n_slices,) and lay.slice_ptr.shape == (n_slices + 1,)
    lengths = np.diff(A.indptr)
    pos = 0
    for s in range(n_slices):
        rows = order[s * lanes:(s + 1) * lanes]
        n = min(int(lengths[r]) for r in rows)
        assert lay.slice_len[s] == n and lay.slice_ptr[s] == pos
        assert bool(lay.slice_tail[s]) == any(int(lengths[r]) > n for r in rows)
        for p in range(n):
            for lane, r in enumerate(rows):
                assert lay.indices[pos] == A.indices[A.indptr[r] + p]
                assert lay.data[pos].tobytes() == A.data[A.indptr[r] + p].tobytes()
                pos += 1
    assert lay.slice_ptr[-1] == pos == lay.indices.shape[0] == lay.data.shape[0]
    assert lay.indices.dtype == np.int32 and lay.data.dtype == np.float32


@pytest.mark.parametrize("par", [False, True])
# The monkeypatched threshold is the same for every drawn input (intended).
@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(0, 40), st.integers(1, 30), st.integers(0, 30),
       st.sampled_from([np.float32, np.float64]), st.sampled_from([np.float32, np.float64]),
       st.booleans(), st.integers(0, 2**32 - 1))
def test_sliced_twin_and_naive(monkeypatch, par, rows, cols, max_len, adt, xdt, with_bias,
                               seed):
    _force(monkeypatch, par)
    rng = np.random.default_rng(seed)
    A = CSR.from_dense(mixed_matrix(rng, rows, cols, adt, max_len))
    x = rng.standard_normal(cols).astype(xdt)
    bias = rng.standard_normal(rows) if with_bias else None
    out_dt = np.result_type(adt, xdt)
    lay = sliced_layout(A.indptr, A.indices, A.data)
    got = spmv_kernel(A.indptr, A.indices, A.data, x, np.empty(rows, out_dt), bias, sliced=lay)
    assert_bits_equal(got, spmv_twin(A.indptr, A.indices, A.data, x, out_dt, bias))
    assert_bits_equal(got, naive_spmv(A, x, out_dt, bias))


def test_sliced_nonfinite_signed_zero_and_overflow_twin(monkeypatch):
    # inf / NaN in x where no entry is stored add nothing; where an entry is
    # stored they propagate per lane; an exact zero sum is +0.0; float32
    # overflow of the final rounding gives inf; -0.0 stored explicitly is a term.
    rng = np.random.default_rng(8)
    rows, cols = 48, 24
    W = mixed_matrix(rng, rows, cols, np.float32, 10)
    W[:, 0] = 0
    W[5, 3] = 3e38
    W[5, 4] = 3e38
    W[6, :] = 0
    W[6, 7] = 1.0
    W[6, 8] = -1.0
    W[5, 9] = 0
    A = CSR.from_dense(W)
    x = rng.standard_normal(cols).astype(np.float32)
    x[0] = np.inf            # column 0 holds no stored entry
    x[3] = x[4] = 2.0
    x[7] = x[8] = 1.5
    x[9] = np.nan
    lay = sliced_layout(A.indptr, A.indices, A.data)
    for par in (False, True):
        _force(monkeypatch, par)
        got = spmv_kernel(A.indptr, A.indices, A.data, x, np.empty(rows, np.float32), sliced=lay)
        with np.errstate(over="ignore"):       # the twin's float32 rounding overflows row 5
            assert_bits_equal(got, spmv_twin(A.indptr, A.indices, A.data, x, np.float32))
        assert np.isposinf(got[5])
        assert got[6] == 0 and not np.signbit(got[6])
        stored9 = np.array([9 in A.indices[A.indptr[r]:A.indptr[r + 1]] for r in range(rows)])
        assert stored9.any() and np.array_equal(np.isnan(got), stored9)


def test_parallel_parts_cover_every_slice_once():
    rng = np.random.default_rng(4)
    A = CSR.from_dense(mixed_matrix(rng, 8 * 37, 40, np.float32, 30))
    lay = sliced_layout(A.indptr, A.indices, A.data)
    n = lay.slice_len.shape[0]
    cost = int(lay.slice_ptr[-1]) + ks._SLICE_COST * n
    for parts in range(1, 9):
        cuts = [int(ks._cut(lay.slice_ptr, n, cost * p // parts)) for p in range(parts + 1)]
        assert cuts[0] == 0 and cuts[-1] == n and cuts == sorted(cuts)
        # independent: first slice whose start cost reaches the target
        for p in range(parts + 1):
            target = cost * p // parts
            want = next((s for s in range(n)
                         if lay.slice_ptr[s] + ks._SLICE_COST * s >= target), n)
            assert cuts[p] == want


def test_public_spmv_uses_cached_layout_and_thread_counts_agree(monkeypatch):
    monkeypatch.setattr(ks, "GATHER_OK", True)   # the sliced path even where it is not chosen
    rng = np.random.default_rng(9)
    A = CSR.from_dense(mixed_matrix(rng, 1001, 300, np.float32, 60))
    lay = A.spmv_layout()
    assert lay is A.spmv_layout()                                   # built once
    assert all(not a.flags.writeable for a in lay if isinstance(a, np.ndarray))
    x = rng.standard_normal(300).astype(np.float32)
    want = naive_spmv(A, x, np.float32)
    before = numba.get_num_threads()
    try:
        for par in (False, True):
            _force(monkeypatch, par)
            for th in sorted({1, min(2, numba.config.NUMBA_NUM_THREADS)}):
                numba.set_num_threads(th)
                assert_bits_equal(spmv(A, x), want)
    finally:
        numba.set_num_threads(before)
    # Without the gather path (a mitigated CPU) the row loop gives the same bits.
    monkeypatch.setattr(ks, "GATHER_OK", False)
    B = CSR(A.indptr.copy(), A.indices.copy(), A.data.copy(), A.shape)
    assert B.spmv_layout() is None
    assert_bits_equal(spmv(B, x), want)


def test_small_matrices_skip_the_layout():
    A = CSR.from_dense(np.eye(7, dtype=np.float32))
    assert A.spmv_layout() is None
    assert_bits_equal(spmv(A, np.arange(7, dtype=np.float32)), np.arange(7, dtype=np.float32))


# -- spmm with the accumulators in registers (kernels/_rowvec.py) -------------------

def naive_spmm(A, X, out_dtype, bias=None):
    """Plain Python floats per output element over the row's stored entries."""
    rows, k = A.shape[0], X.shape[1]
    y = np.empty((rows, k), np.float64)
    for r in range(rows):
        for t in range(k):
            acc = 0.0
            for j in range(int(A.indptr[r]), int(A.indptr[r + 1])):
                acc += float(A.data[j]) * float(X[A.indices[j], t])
            if bias is not None:
                acc += float(bias[r])
            y[r, t] = acc
    with np.errstate(over="ignore"):
        return y.astype(out_dtype)


@pytest.mark.parametrize("vec", [True, False])
@pytest.mark.parametrize("par", [False, True])
# The monkeypatched switches are the same for every drawn input (intended).
@settings(max_examples=20, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(0, 30), st.integers(1, 25), st.integers(1, 140),
       st.sampled_from([np.float32, np.float64]), st.sampled_from([np.float32, np.float64]),
       st.booleans(), st.booleans(), st.integers(0, 2**32 - 1))
def test_spmm_register_rows_twin_and_naive(monkeypatch, vec, par, rows, cols, k, adt, xdt,
                                           with_bias, strided, seed):
    # k from 1 to 140 covers full 64-column blocks and partial blocks of
    # 8, 16, 32 and 64 lanes; strided outputs take the scatter store.
    monkeypatch.setattr(ks, "ROWVEC_OK", vec)
    monkeypatch.setattr(ks, "_ROWVEC_MAX_K", 1 << 30)     # several 64-column blocks too
    monkeypatch.setattr(ks, "_PAR_MIN", 0 if par else 1 << 62)
    rng = np.random.default_rng(seed)
    A = CSR.from_dense(mixed_matrix(rng, rows, cols, adt, 9))
    X = rng.standard_normal((cols, k)).astype(xdt)
    bias = rng.standard_normal(rows) if with_bias else None
    out_dt = np.result_type(adt, xdt)
    out = np.empty((k, rows), out_dt).T if strided else np.empty((rows, k), out_dt)
    spmm_kernel(A.indptr, A.indices, A.data, X, out, bias)
    want = spmm_twin(A.indptr, A.indices, A.data, X, out_dt, bias)
    assert_bits_equal(np.ascontiguousarray(out), want)
    if k <= 70 and rows * cols <= 300:
        assert_bits_equal(want, naive_spmm(A, X, out_dt, bias))


@pytest.mark.parametrize("vec", [True, False])
def test_spmm_register_rows_nonfinite_and_thread_counts(monkeypatch, vec):
    monkeypatch.setattr(ks, "ROWVEC_OK", vec)
    rng = np.random.default_rng(12)
    A = CSR.from_dense(mixed_matrix(rng, 130, 40, np.float32, 20))
    X = rng.standard_normal((40, 75)).astype(np.float32)
    X[0, :] = np.inf                 # rows storing column 0 get +-inf (or NaN)
    X[1, 5] = np.nan
    X[2, 70] = 3e38                  # float32 overflow of the final rounding
    want = naive_spmm(A, X, np.float32)
    before = numba.get_num_threads()
    try:
        for par in (False, True):
            monkeypatch.setattr(ks, "_PAR_MIN", 0 if par else 1 << 62)
            for th in sorted({1, min(2, numba.config.NUMBA_NUM_THREADS)}):
                numba.set_num_threads(th)
                from refcomp.sparse import spmm
                assert_bits_equal(spmm(A, X), want)
    finally:
        numba.set_num_threads(before)


def test_sliced_nonfinite_unfused_paths_twin(monkeypatch):
    # float64 values or float64 x: the sliced kernel multiplies then adds
    # (no FMA); inf, NaN and overflow still match the twin bit for bit.
    monkeypatch.setattr(ks, "GATHER_OK", True)
    rng = np.random.default_rng(21)
    for adt, xdt in ((np.float64, np.float64), (np.float32, np.float64),
                     (np.float64, np.float32)):
        W = mixed_matrix(rng, 64, 30, adt, 12)
        W[3, :4] = [1e308, 1e308, -1.0, 2.0] if adt == np.float64 else [3e38, 3e38, -1.0, 2.0]
        A = CSR.from_dense(W)
        x = rng.standard_normal(30).astype(xdt)
        x[1] = np.inf
        x[7] = np.nan
        x[2] = 1e308 if xdt == np.float64 else 3e38
        out_dt = np.result_type(adt, xdt)
        lay = sliced_layout(A.indptr, A.indices, A.data)
        got = spmv_kernel(A.indptr, A.indices, A.data, x, np.empty(64, out_dt), sliced=lay)
        with np.errstate(over="ignore", invalid="ignore"):
            want = spmv_twin(A.indptr, A.indices, A.data, x, out_dt)
        assert_bits_equal(got, want)
        assert np.isnan(got).any() and np.isinf(got).any()


@pytest.mark.parametrize("vec", [True, False])
def test_non_contiguous_csr_arrays_are_packed(monkeypatch, vec):
    # Strided, reversed and record-field views handed to the constructor are
    # copied into packed arrays (the vector kernels address them as packed
    # memory): every product matches the twin of the packed arrays.
    monkeypatch.setattr(ks, "ROWVEC_OK", vec)
    rng = np.random.default_rng(31)
    B = CSR.from_dense(mixed_matrix(rng, 40, 12, np.float32, 8))
    rec = np.zeros(B.nnz, dtype=[("col", np.int32), ("val", np.float32)])
    rec["col"], rec["val"] = B.indices, B.data
    views = [
        (B.indptr, rec["col"], rec["val"]),                                    # record fields
        (B.indptr, np.repeat(B.indices, 2)[::2], np.repeat(B.data, 2)[::2]),   # stride 2
        (B.indptr, B.indices[::-1].copy()[::-1], B.data[::-1].copy()[::-1]),   # negative stride
    ]
    from refcomp.sparse import linear, spmm
    x = rng.standard_normal(12).astype(np.float32)
    X = rng.standard_normal((12, 20)).astype(np.float32)
    for indptr, indices, data in views:
        A = CSR(indptr, indices, data, B.shape)
        assert A.indices.flags.c_contiguous and A.data.flags.c_contiguous
        assert_bits_equal(A.data, B.data)
        assert_bits_equal(spmv(A, x), spmv_twin(B.indptr, B.indices, B.data, x, np.float32))
        assert_bits_equal(spmm(A, X), spmm_twin(B.indptr, B.indices, B.data, X, np.float32))
        assert_bits_equal(linear(X.T.copy(), A),
                          spmm_twin(B.indptr, B.indices, B.data, X, np.float32).T)


def test_two_nans_meeting_give_a_nan(monkeypatch):
    # Which payload survives when two NaNs meet is not specified (module
    # docstring of refcomp.kernels.sparse); that the result is a NaN is.
    qa, qb = np.array([0x7FF8000000000001, 0x7FF8000000000002], np.uint64).view(np.float64)
    A = CSR.from_dense(np.full((8, 1), qa), mask=np.ones((8, 1), bool))
    from refcomp.sparse import spmm
    for vec in (True, False):
        monkeypatch.setattr(ks, "ROWVEC_OK", vec)
        monkeypatch.setattr(ks, "GATHER_OK", vec)
        B = CSR(A.indptr, A.indices, A.data, A.shape)
        assert np.isnan(spmv(B, np.array([qb]))).all()
        assert np.isnan(spmm(B, np.array([[qb, 1.0]]))).all()


def test_pickle_drops_the_caches_and_old_pickles_load():
    import pickle
    rng = np.random.default_rng(41)
    A = CSR.from_dense(mixed_matrix(rng, 50, 20, np.float32, 10))
    x = rng.standard_normal(20).astype(np.float32)
    y = spmv(A, x)                                  # builds the caches
    B = pickle.loads(pickle.dumps(A))
    assert B._order is None and B._sliced is False
    assert_bits_equal(spmv(B, x), y)
    assert len(pickle.dumps(A)) < 4 * A.nnz + 8 * A.nnz + 8 * 51 + 2000   # no layout inside
    # The state an older version pickled (default slots state, no cache slots).
    C = CSR.__new__(CSR)
    C.__setstate__((None, {"shape": A.shape, "weight_shape": A.weight_shape,
                           "indptr": A.indptr, "indices": A.indices, "data": A.data,
                           "_order": None}))
    assert_bits_equal(spmv(C, x), y)
