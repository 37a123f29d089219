"""refcomp.sparse: CSR/CSC storage, Deep Compression relative indices, sparse
kernels (vs naive Python loops, dense products and their NumPy twins), the
dense/conv layers and Model with CSR weights, HDF5 round trips, bad input."""

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import refcomp
import refcomp.layers as L
from refcomp import DecodeError, DTypeError, FormatError, ParameterError, ShapeError
from refcomp.kernels.sparse import spmm_kernel, spmm_twin, spmv_kernel, spmv_twin
from refcomp.prune.masked import Masked
from refcomp.sparse import (CSC, CSR, VARIANTS, decode_relative, default_index_bits,
                            encode_relative, from_masked, linear, spmm, spmv)
from refcomp.testing import assert_bits_equal


def sparse_matrix(rng, shape, density, dtype=np.float32):
    W = rng.standard_normal(shape).astype(dtype)
    W[rng.random(shape) >= density] = 0
    return W


# -- naive ground truth (plain Python floats, written from the definitions) ---------

def naive_csr(W):
    """indptr, indices, data lists of W != 0 by a row/column double loop."""
    indptr, indices, data = [0], [], []
    for r in range(W.shape[0]):
        for c in range(W.shape[1]):
            if W[r, c] != 0:
                indices.append(c)
                data.append(W[r, c])
        indptr.append(len(indices))
    return indptr, indices, data


def naive_spmm(W, X, out_dtype, bias=None):
    """float64 sum over the non-zeros of each row in column order, one rounding."""
    rows, k = W.shape[0], X.shape[1]
    y = np.empty((rows, k), dtype=np.float64)
    for r in range(rows):
        for t in range(k):
            acc = 0.0
            for c in range(W.shape[1]):
                if W[r, c] != 0:
                    acc += float(W[r, c]) * float(X[c, t])
            if bias is not None:
                acc += float(bias[r])
            y[r, t] = acc
    return y.astype(out_dtype)


def naive_relative(mask, bits, variant):
    """Codes and filler flags by walking the positions one at a time."""
    top = (1 << bits) - 1
    advance = top if variant == "reserved" else top + 1
    largest_real = top if variant == "fig2" else top - 1
    codes, fillers, prev = [], [], -1
    for p in range(len(mask)):
        if not mask[p]:
            continue
        while p - prev - 1 > largest_real:
            codes.append(top)
            fillers.append(True)
            prev += advance
        codes.append(p - prev - 1)
        fillers.append(False)
        prev = p
    return codes, fillers


# -- CSR / CSC ------------------------------------------------------------------------

@st.composite
def masks2d(draw):
    rows = draw(st.integers(0, 7))
    cols = draw(st.integers(0, 9))
    kind = draw(st.sampled_from(["random", "empty", "full", "one"]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    if kind == "random":
        m = rng.random((rows, cols)) < draw(st.floats(0, 1))
    elif kind == "full":
        m = np.ones((rows, cols), dtype=bool)
    else:
        m = np.zeros((rows, cols), dtype=bool)
        if kind == "one" and rows * cols:
            m.flat[rng.integers(rows * cols)] = True
    return m, seed


@settings(max_examples=40)
@given(masks2d(), st.sampled_from([np.float32, np.float64]))
def test_csr_csc_round_trip_vs_naive(mk, dtype):
    mask, seed = mk
    W = np.where(mask, sparse_matrix(np.random.default_rng(seed), mask.shape, 1.0, dtype), 0)
    A = CSR.from_dense(W)
    ip, ix, dv = naive_csr(W)
    assert A.indptr.dtype == np.int64 and A.indices.dtype == np.int32 and A.data.dtype == dtype
    assert A.indptr.tolist() == ip and A.indices.tolist() == ix
    assert_bits_equal(A.data, np.asarray(dv, dtype=dtype).reshape(-1))
    assert A.nnz == len(dv) and A.shape == W.shape
    assert_bits_equal(A.to_dense(), W)
    assert_bits_equal(A.dequantize(), W)
    C = CSC.from_dense(W)
    ipt, ixt, _ = naive_csr(np.ascontiguousarray(W.T))
    assert C.indptr.tolist() == ipt and C.indices.tolist() == ixt
    assert_bits_equal(C.to_dense(), W)
    assert C.to_csr() == A and A.to_csc() == C
    assert_bits_equal(A.transpose().to_dense(), np.ascontiguousarray(W.T))
    # explicit mask: keeps exactly the mask positions, even zeros
    M = CSR.from_dense(np.zeros(mask.shape, dtype), mask=mask)
    assert M.nnz == int(mask.sum())
    assert M.indptr.tolist() == naive_csr(mask.astype(np.float64))[0]


def test_signed_zero_nan_and_explicit_zeros():
    W = np.array([[0.0, -0.0, np.nan, 1.0], [np.inf, 0.0, 0.0, -2.0]], dtype=np.float32)
    W[0, 2] = np.frombuffer(np.uint32(0x7fc00123).tobytes(), np.float32)[0]  # NaN payload
    A = CSR.from_dense(W)
    assert A.indices.tolist() == [2, 3, 0, 3]          # -0.0 dropped, NaN and Inf kept
    d = A.to_dense()
    assert d[0, 1] == 0 and not np.signbit(d[0, 1])   # -0.0 decodes as +0.0
    assert_bits_equal(d[0, 2:], W[0, 2:])              # NaN payload kept
    mask = W != 0
    mask[0, 1] = True
    B = CSR.from_dense(W, mask=mask)                   # explicit -0.0 kept bit for bit
    assert_bits_equal(B.to_dense(), W)
    assert B.nnz == 5


def test_conv_weight_shape_and_from_masked():
    rng = np.random.default_rng(3)
    Wc = sparse_matrix(rng, (4, 2, 3, 3), 0.4)
    A = CSR.from_dense(Wc)
    assert A.shape == (4, 18) and A.weight_shape == (4, 2, 3, 3)
    assert_bits_equal(A.to_dense(), Wc)
    mask = rng.random(Wc.shape) < 0.5
    mk = Masked(Wc, mask)
    B = from_masked(mk)
    assert B.nnz == int(mask.sum())                    # kept zeros stay entries
    assert_bits_equal(B.to_dense(), mk.dequantize())
    assert_bits_equal(from_masked(mk, format="csc").to_dense(), mk.dequantize())
    assert CSR.from_masked(mk) == B and CSC.from_masked(mk) == from_masked(mk, format="csc")
    assert A.indptr.flags.writeable is False


# -- relative indices -----------------------------------------------------------------

@st.composite
def masks1d(draw):
    kind = draw(st.sampled_from(["random", "empty", "zeros", "ones", "one", "gaps"]))
    size = 0 if kind == "empty" else draw(st.integers(1, 300))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    m = np.zeros(size, dtype=bool)
    if kind == "random":
        m = rng.random(size) < draw(st.floats(0, 1))
    elif kind == "ones":
        m[:] = True
    elif kind == "one":
        m[rng.integers(size)] = True
    elif kind == "gaps":      # gaps that are exact multiples and off-by-one of 2^b
        for p in (0, 1, 9, 17, 33, 64, 65, 129, 257, 299):
            if p < size:
                m[p] = True
    return m


@settings(max_examples=60)
@given(masks1d(), st.integers(1, 9), st.sampled_from(VARIANTS))
def test_relative_round_trip_vs_naive(mask, bits, variant):
    ri = encode_relative(mask, index_bits=bits, variant=variant)
    codes, fillers = naive_relative(mask, bits, variant)
    assert ri.diffs.dtype == (np.uint8 if bits <= 8 else np.uint16)
    assert ri.diffs.tolist() == codes and ri.is_filler.tolist() == fillers
    assert ri.n_entries == len(codes) and ri.size == mask.size and ri.index_bits == bits
    assert ri.diffs.max(initial=0) < (1 << bits)
    assert ri.positions().tolist() == np.flatnonzero(mask).tolist()
    pos, is_f = decode_relative(ri.diffs, index_bits=bits, variant=variant, size=mask.size)
    if variant == "reserved":
        assert pos.tolist() == np.flatnonzero(mask).tolist()
        assert is_f.tolist() == fillers
    else:
        # every entry position, fillers included (they hold zero values)
        assert pos.size == len(codes) and not is_f.any()
        assert set(np.flatnonzero(mask).tolist()) <= set(pos.tolist())
    assert pos.dtype == np.int64


def test_relative_golden_figure2():
    # Han et al. Fig. 2 positions 1, 4, 15 of 16 with 3 bits (origin -1)
    m = np.zeros(16, dtype=bool)
    m[[1, 4, 15]] = True
    f2 = encode_relative(m, index_bits=3, variant="fig2")
    assert f2.diffs.tolist() == [1, 2, 7, 2] and f2.is_filler.tolist() == [0, 0, 1, 0]
    rs = encode_relative(m, index_bits=3, variant="reserved")
    assert rs.diffs.tolist() == [1, 2, 7, 3] and rs.is_filler.tolist() == [0, 0, 1, 0]
    # a gap of exactly 2^b: one code in fig2, one filler in reserved
    m = np.zeros(9, dtype=bool)
    m[[0, 8]] = True
    assert encode_relative(m, index_bits=3, variant="fig2").diffs.tolist() == [0, 7]
    assert encode_relative(m, index_bits=3, variant="reserved").diffs.tolist() == [0, 7, 0]
    assert default_index_bits("conv") == 8 and default_index_bits("dense") == 5
    assert encode_relative(m).index_bits == 5 and encode_relative(m, kind="conv").index_bits == 8
    wide = encode_relative(np.ones(3, bool), index_bits=12)
    assert wide.diffs.dtype == np.uint16


def test_relative_corrupt_streams_raise_decode_error():
    with pytest.raises(DecodeError):       # code does not fit the width
        decode_relative(np.array([9], np.uint8), index_bits=3, variant="reserved", size=100)
    with pytest.raises(DecodeError):       # beyond the weight
        decode_relative(np.array([5, 5], np.uint8), index_bits=3, variant="fig2", size=10)
    with pytest.raises(DecodeError):       # trailing filler
        decode_relative(np.array([1, 7], np.uint8), index_bits=3, variant="reserved", size=100)
    with pytest.raises(DecodeError):       # more entries than positions
        decode_relative(np.zeros(11, np.uint8), index_bits=3, variant="fig2", size=10)
    rng = np.random.default_rng(0)
    ok = bad = 0
    for _ in range(300):
        bits = int(rng.integers(1, 9))
        codes = rng.integers(0, 1 << 9, size=int(rng.integers(0, 40))).astype(np.uint16)
        size = int(rng.integers(0, 400))
        variant = VARIANTS[int(rng.integers(2))]
        try:
            pos, _ = decode_relative(codes, index_bits=bits, variant=variant, size=size)
        except DecodeError:
            bad += 1
            continue
        ok += 1
        assert np.all(np.diff(pos) > 0) and (pos.size == 0 or 0 <= pos[0] and pos[-1] < size)
        if variant == "reserved":   # a valid stream re-encodes to itself
            m = np.zeros(size, bool)
            m[pos] = True
            assert encode_relative(m, index_bits=bits).diffs.tolist() == codes.tolist()
    assert ok and bad
    with pytest.raises(DTypeError):
        decode_relative(np.array([1, 2]), index_bits=3, variant="fig2", size=10)
    with pytest.raises(DTypeError):
        encode_relative(np.array([1, 0]))
    with pytest.raises(ShapeError):
        encode_relative(np.ones((2, 2), bool))
    with pytest.raises(ParameterError):
        encode_relative(np.ones(3, bool), index_bits=0)
    with pytest.raises(ParameterError):
        encode_relative(np.ones(3, bool), variant="paper")


# -- kernels --------------------------------------------------------------------------

@settings(max_examples=25)
@given(st.integers(0, 12), st.integers(0, 12), st.integers(1, 5), st.floats(0, 1),
       st.sampled_from([np.float32, np.float64]), st.sampled_from([np.float32, np.float64]),
       st.integers(0, 2**32 - 1))
def test_spmv_spmm_vs_naive_and_twins(rows, cols, k, density, adt, xdt, seed):
    rng = np.random.default_rng(seed)
    W = sparse_matrix(rng, (rows, cols), density, adt)
    A = CSR.from_dense(W)
    x = rng.standard_normal(cols).astype(xdt)
    X = rng.standard_normal((cols, k)).astype(xdt)
    out_dt = np.result_type(adt, xdt)
    y = spmv(A, x)
    assert_bits_equal(y, naive_spmm(W, x[:, None], out_dt)[:, 0])
    assert_bits_equal(y, spmv_twin(A.indptr, A.indices, A.data, x, out_dt))
    Y = spmm(A, X)
    assert_bits_equal(Y, naive_spmm(W, X, out_dt))
    assert_bits_equal(Y, spmm_twin(A.indptr, A.indices, A.data, X, out_dt))
    bias = rng.standard_normal(rows)
    for kern, twin, arg, shape in ((spmv_kernel, spmv_twin, x, (rows,)),
                                   (spmm_kernel, spmm_twin, X, (rows, k))):
        out = kern(A.indptr, A.indices, A.data, arg, np.empty(shape, out_dt), bias)
        assert_bits_equal(out, twin(A.indptr, A.indices, A.data, arg, out_dt, bias))
    # dense float64 product within the error bound of float64 summation plus
    # the final rounding
    exact = W.astype(np.float64) @ X.astype(np.float64)
    mag = np.abs(W.astype(np.float64)) @ np.abs(X.astype(np.float64))
    eps_out = np.finfo(out_dt).eps / 2
    assert np.all(np.abs(Y - exact) <= eps_out * np.abs(exact) * 1.0000001
                  + 2 * cols * 2.0**-53 * mag + 1e-300)


def test_long_rows_and_thread_count_determinism(monkeypatch):
    import refcomp.kernels.sparse as ks
    monkeypatch.setattr(ks, "_PAR_MIN", 0)             # always take the parallel driver
    monkeypatch.setattr(ks, "_PAR_MIN_SPMV", 0)        # (spmv: when threads > 1)
    rng = np.random.default_rng(7)
    W = sparse_matrix(rng, (301, 2000), 0.3)
    A = CSR.from_dense(W)
    x = rng.standard_normal(2000).astype(np.float32)
    X = rng.standard_normal((2000, 9)).astype(np.float32)
    assert_bits_equal(spmv(A, x), spmv_twin(A.indptr, A.indices, A.data, x, np.float32))
    assert_bits_equal(spmm(A, X), spmm_twin(A.indptr, A.indices, A.data, X, np.float32))
    before = numba.get_num_threads()
    try:
        results = []
        for th in sorted({1, min(2, numba.config.NUMBA_NUM_THREADS)}):
            numba.set_num_threads(th)
            results.append((spmv(A, x), spmm(A, X), linear(X.T.copy(), A)))
        for r in results[1:]:
            for a, b in zip(results[0], r):
                assert_bits_equal(a, b)
    finally:
        numba.set_num_threads(before)


def _force_driver(monkeypatch, parallel):
    """Make spmv/spmm take the parallel (True) or serial (False) driver at any size."""
    import refcomp.kernels.sparse as ks
    monkeypatch.setattr(ks, "_PAR_MIN", 0 if parallel else 1 << 62)
    monkeypatch.setattr(ks, "_PAR_MIN_SPMV", 0 if parallel else 1 << 62)


@pytest.mark.parametrize("par", [False, True])
def test_mixed_row_lengths_twin_and_naive(monkeypatch, par):
    # rows of 0, 1, 2, 3, ... stored entries side by side exercise the short-row
    # and four-row-interleaved kernel paths; with and without bias, float32 and
    # float64 x, k = 1 and 64, strided out, serial and parallel drivers
    _force_driver(monkeypatch, par)
    rng = np.random.default_rng(11)
    rows, cols = 83, 40
    W = np.zeros((rows, cols), np.float32)
    for r in range(rows):
        n = (r * 7) % 13 if r % 5 else r % 3
        W[r, rng.choice(cols, n, replace=False)] = rng.standard_normal(n)
    W[3, 5] = -0.0                                        # explicit stored -0.0
    A = CSR.from_dense(W)
    bias = rng.standard_normal(rows)
    for xdt in (np.float32, np.float64):
        out_dt = np.result_type(np.float32, xdt)
        x = rng.standard_normal(cols).astype(xdt)
        assert_bits_equal(spmv(A, x), naive_spmm(W, x[:, None], out_dt)[:, 0])
        for b in (None, bias):
            out = spmv_kernel(A.indptr, A.indices, A.data, x, np.empty(rows, out_dt), b)
            assert_bits_equal(out, spmv_twin(A.indptr, A.indices, A.data, x, out_dt, b))
        for k in (1, 64):
            X = rng.standard_normal((cols, k)).astype(xdt)
            assert_bits_equal(spmm(A, X), naive_spmm(W, X, out_dt))
            for b in (None, bias):
                out = np.empty((k, rows), out_dt).T            # strided destination
                spmm_kernel(A.indptr, A.indices, A.data, X, out, b)
                assert_bits_equal(np.ascontiguousarray(out),
                                  spmm_twin(A.indptr, A.indices, A.data, X, out_dt, b))


def test_structural_zeros_are_not_terms():
    A = CSR.from_dense(np.array([[1.0, 0.0], [0.0, 2.0]], np.float32))
    y = spmv(A, np.array([1.0, np.inf], np.float32))
    assert y[0] == 1.0 and y[1] == np.inf             # no inf * 0 = NaN in row 0
    # explicit stored zero is a term
    B = CSR.from_dense(np.zeros((1, 2), np.float32), mask=np.array([[True, False]]))
    assert np.isnan(spmv(B, np.array([np.inf, 1.0], np.float32))[0])
    # empty rows give +0.0
    E = CSR.from_dense(np.zeros((3, 4), np.float64))
    out = spmm(E, np.ones((4, 2)))
    assert not np.signbit(out).any() and not out.any()


# -- layers and model -----------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dense_layer_with_csr_equals_dense(dtype):
    rng = np.random.default_rng(11)
    W = sparse_matrix(rng, (23, 40), 0.2, dtype)
    A = CSR.from_dense(W)
    x = rng.standard_normal((6, 40)).astype(dtype)
    b = rng.standard_normal(23).astype(dtype)
    for precision in ("reference", "fast"):
        assert_bits_equal(L.dense(x, A, b, precision=precision), L.dense(x, W, b))
    assert_bits_equal(L.dense(x, A), L.dense(x, W))
    assert_bits_equal(L.dense(x[:1], A, b), L.dense(x[:1], W, b))


@pytest.mark.parametrize("kw,c_in", [({}, 2), ({"stride": 2, "padding": 1}, 2),
                                     ({"groups": 2, "dilation": 2, "padding": "same"}, 4),
                                     ({"layout": "NHWC", "padding": 1}, 2)])
def test_conv_layer_with_csr_equals_dense(kw, c_in):
    rng = np.random.default_rng(5)
    Wc = sparse_matrix(rng, (6, 2, 3, 3), 0.3)
    A = CSR.from_dense(Wc)
    b = rng.standard_normal(6).astype(np.float32)
    x = rng.standard_normal((3, c_in, 9, 8)).astype(np.float32)
    if kw.get("layout") == "NHWC":
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    assert_bits_equal(L.conv2d(x, A, b, **kw), L.conv2d(x, Wc, b, **kw))
    assert_bits_equal(refcomp.sparse.conv2d(x, A, None, chunk_bytes=1, **kw),
                      L.conv2d(x, Wc, None, **kw))


def _models(rng):
    Wc = sparse_matrix(rng, (4, 1, 3, 3), 0.5)
    W = sparse_matrix(rng, (5, 144), 0.1)
    b = rng.standard_normal(5).astype(np.float32)

    def build(wc, w):
        return refcomp.Model([refcomp.Layer("conv2d", weights={"W": wc}),
                              refcomp.Layer("activation", attrs={"function": "relu"}),
                              refcomp.Layer("flatten"),
                              refcomp.Layer("dense", weights={"W": w, "b": b})])
    return build(CSR.from_dense(Wc), CSR.from_dense(W)), build(Wc, W), build(
        CSR.from_dense(Wc), CSC.from_dense(W))


def test_model_with_csr_weights_and_hdf5_round_trip(tmp_path):
    rng = np.random.default_rng(2)
    sparse_m, dense_m, csc_m = _models(rng)
    x = rng.standard_normal((4, 1, 8, 8)).astype(np.float32)
    ref = dense_m(x)
    assert_bits_equal(sparse_m(x), ref)
    assert_bits_equal(csc_m(x), ref)                   # CSC decodes through dequantize()
    for m in (sparse_m, csc_m):
        path = tmp_path / f"{id(m)}.h5"
        refcomp.save(m, path)
        back = refcomp.load(path)
        for (_, la), (_, lb) in zip(m.named_layers(), back.named_layers()):
            for k, v in la.weights.items():
                assert type(lb.weights[k]) is type(v)
                if isinstance(v, (CSR, CSC)):
                    assert lb.weights[k] == v
        assert_bits_equal(back(x), ref)


def _corrupt(tmp_path, edit):
    import h5py
    rng = np.random.default_rng(4)
    m = refcomp.Model([refcomp.Layer("dense", weights={
        "W": CSR.from_dense(sparse_matrix(rng, (6, 10), 0.4))})])
    path = tmp_path / "c.h5"
    refcomp.save(m, path)
    with h5py.File(path, "r+") as f:
        groups = []
        f.visit(lambda n: groups.append(n) if f[n].attrs.get("encoding") == "csr" else None)
        edit(f[groups[0]])
    return path


def _replace(g, key, value):
    del g[key]
    g.create_dataset(key, data=value)


@pytest.mark.parametrize("edit", [
    lambda g: _replace(g, "indptr", g["indptr"][()][::-1].copy()),              # decreasing
    lambda g: _replace(g, "indices", np.full_like(g["indices"][()], 99)),       # out of range
    lambda g: _replace(g, "indices", np.zeros_like(g["indices"][()])),          # not sorted
    lambda g: _replace(g, "indices", g["indices"][()].astype(np.int64)),        # dtype
    lambda g: _replace(g, "data", g["data"][()][:-1].copy()),                   # size
    lambda g: _replace(g, "indptr", np.zeros(3, np.int64)),                     # rows
    lambda g: g.__delitem__("data"),
    lambda g: g.attrs.__setitem__("shape", np.array([6, 11], np.int64)),
    lambda g: g.attrs.__setitem__("shape", np.array([-6, 10], np.int64)),
    lambda g: g.attrs.__setitem__("dtype", "<i4"),
    lambda g: g.attrs.__delitem__("weight_shape"),
])
def test_corrupt_csr_file_raises_format_error(tmp_path, edit):
    path = _corrupt(tmp_path, edit)
    with pytest.raises(FormatError):
        refcomp.load(path)


# -- bad input ------------------------------------------------------------------------

def test_bad_input_errors():
    A = CSR.from_dense(np.eye(3, dtype=np.float32))
    with pytest.raises(ShapeError):
        spmv(A, np.ones(4, np.float32))
    with pytest.raises(ShapeError):
        spmv(A, np.ones((3, 1), np.float32))
    with pytest.raises(DTypeError):
        spmv(A, np.ones(3, np.int32))
    with pytest.raises(DTypeError):
        spmv(A, [1.0, 2.0, 3.0])
    with pytest.raises(ShapeError):
        spmm(A, np.ones((4, 2), np.float32))
    with pytest.raises(ParameterError):
        spmv(np.eye(3, dtype=np.float32), np.ones(3, np.float32))
    with pytest.raises(DTypeError):
        linear(np.ones((2, 3)), A)                      # float64 x, float32 W
    with pytest.raises(DTypeError):
        L.dense(np.ones((2, 3), np.float32), A, np.ones(3))
    with pytest.raises(ShapeError):
        L.dense(np.ones((2, 4), np.float32), A)
    with pytest.raises(ShapeError):
        L.conv2d(np.ones((1, 3, 4, 4), np.float32), A)  # 2-D weight_shape
    with pytest.raises(ShapeError):
        CSR.from_dense(np.ones(3, np.float32))
    with pytest.raises(DTypeError):
        CSR.from_dense(np.ones((2, 2), np.int64))
    with pytest.raises(DTypeError):
        CSR.from_dense(np.ones((2, 2)), mask=np.ones((2, 2)))
    with pytest.raises(ShapeError):
        CSR.from_dense(np.ones((2, 2)), mask=np.ones((2, 3), bool))
    with pytest.raises(FormatError):                    # unsorted indices in a row
        CSR(np.array([0, 2], np.int64), np.array([1, 0], np.int32),
            np.ones(2, np.float32), (1, 2))
    with pytest.raises(FormatError):
        CSR(np.array([0, 1], np.int64), np.array([0], np.int64), np.ones(1), (1, 2))
    with pytest.raises(ParameterError):
        from_masked(np.ones((2, 2)))


def test_row_order_groups_lengths_within_windows():
    from refcomp.kernels.sparse import _ORDER_WINDOW, row_order
    rng = np.random.default_rng(5)
    rows = 2 * _ORDER_WINDOW + 37
    lengths = rng.integers(0, 9, rows)
    indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    order = row_order(indptr)
    assert order.dtype == np.int64 and sorted(order.tolist()) == list(range(rows))
    for w0 in range(0, rows, _ORDER_WINDOW):
        win = order[w0:w0 + _ORDER_WINDOW].tolist()
        assert sorted(win) == list(range(w0, min(rows, w0 + _ORDER_WINDOW)))
        # stable sort by length inside the window, independently checked
        assert win == sorted(win, key=lambda r: (lengths[r], r))
    A = CSR.from_dense(sparse_matrix(rng, (rows, 20), 0.3))
    assert np.array_equal(A.processing_order(), row_order(A.indptr))
    assert A.processing_order() is A.processing_order()          # computed once
    assert not A.processing_order().flags.writeable


@pytest.mark.parametrize("par", [False, True])
def test_processing_order_never_changes_bits_vs_twin(monkeypatch, par):
    # Any permutation of the rows gives the same bits (rows are independent;
    # the additions inside a row keep their order), for the FMA path (float32
    # factors, exact products) and the separate multiply-add path (float64).
    _force_driver(monkeypatch, par)
    rng = np.random.default_rng(19)
    rows, cols = 300, 70
    for adt, xdt in ((np.float32, np.float32), (np.float32, np.float64),
                     (np.float64, np.float64)):
        W = sparse_matrix(rng, (rows, cols), 0.15, adt)
        W[rng.random((rows, cols)) < 0.02] = rng.standard_normal() * 1e30
        A = CSR.from_dense(W)
        out_dt = np.result_type(adt, xdt)
        x = rng.standard_normal(cols).astype(xdt)
        X = rng.standard_normal((cols, 64)).astype(xdt)
        bias = rng.standard_normal(rows)
        want_v = spmv_twin(A.indptr, A.indices, A.data, x, out_dt, bias)
        want_m = spmm_twin(A.indptr, A.indices, A.data, X, out_dt, bias)
        assert_bits_equal(want_v, naive_spmm(W, x[:, None], out_dt, bias)[:, 0])
        for order in (None, np.arange(rows), rng.permutation(rows), np.arange(rows)[::-1].copy()):
            got = spmv_kernel(A.indptr, A.indices, A.data, x, np.empty(rows, out_dt), bias,
                              order=order)
            assert_bits_equal(got, want_v)
            got = spmm_kernel(A.indptr, A.indices, A.data, X, np.empty((rows, 64), out_dt),
                              bias, order=order)
            assert_bits_equal(got, want_m)
