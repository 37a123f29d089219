"""Product quantization: exact with k >= rows, naive multi-dim Lloyd, twins, storage."""

import math

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import refcomp
from refcomp import DTypeError, Layer, Model, ParameterError, ShapeError
from refcomp.kernels import kmeans as K
from refcomp.quantize import ProductQuantized, product_quantize
from refcomp.testing import assert_bits_equal


def naive_pq(W, s, k, rng, max_iter):
    """Independent loops: Forgy rows, squared distance left to right, lowest index on ties,
    fsum means rounded to the dtype, empty clusters keep their centroid."""
    out, n_in = W.shape
    blocks = np.array_split(np.arange(n_in), s)
    res = np.empty_like(W)
    for cols in blocks:
        X = [[float(W[r, j]) + 0.0 for j in cols] for r in range(out)]
        idx = list(range(out)) + [out - 1] * (k - out) if k >= out else \
            sorted(rng.choice(out, size=k, replace=False).tolist())
        C = [list(X[i]) for i in idx]

        def assign(C):
            codes = []
            for x in X:
                best, arg = math.inf, 0
                for c, cen in enumerate(C):
                    d = 0.0
                    for a, b in zip(x, cen):
                        d += (a - b) * (a - b)
                    if d < best:
                        best, arg = d, c
                codes.append(arg)
            return codes

        codes = assign(C)
        for _ in range(max_iter):
            for c in range(k):
                mem = [X[r] for r in range(out) if codes[r] == c]
                if mem:
                    C[c] = [float(np.array(math.fsum(col) / len(mem)).astype(W.dtype))
                            for col in zip(*mem)]
            new = assign(C)
            if new == codes:
                break
            codes = new
        for r in range(out):
            res[r, cols] = C[codes[r]]
    return res


_mats = st.sampled_from([np.float32, np.float64]).flatmap(lambda dt: hnp.arrays(
    dt, st.tuples(st.integers(1, 9), st.integers(1, 6)),
    elements=st.integers(-4, 4).map(lambda i: i / 2.0)))


@settings(max_examples=40)
@given(W=_mats, s=st.integers(1, 6), k=st.integers(1, 5), seed=st.integers(0, 1000))
def test_matches_naive(W, s, k, seed):
    s = min(s, W.shape[1])
    q = product_quantize(W, n_subspaces=s, k=k, rng=np.random.default_rng(seed), max_iter=20)
    ref = naive_pq(W, s, k, np.random.default_rng(seed), 20)
    assert_bits_equal(q.dequantize(), ref)


@settings(max_examples=30)
@given(W=_mats, s=st.integers(1, 6), extra=st.integers(0, 3))
def test_k_at_least_rows_is_exact(W, s, extra):
    s = min(s, W.shape[1])
    q = product_quantize(W, n_subspaces=s, k=W.shape[0] + extra, rng=np.random.default_rng(0))
    assert_bits_equal(q.dequantize(), W)
    assert q.info["sse"] == 0.0


def test_golden_shapes_and_storage():
    W = np.arange(24, dtype=np.float32).reshape(4, 6)
    q = product_quantize(W, n_subspaces=4, k=2, rng=np.random.default_rng(0))
    assert q.shape == (4, 6) and q.codes.shape == (4, 4) and q.codebooks.shape == (4, 2, 2)
    np.testing.assert_array_equal(q.offsets, [0, 2, 4, 5, 6])   # array_split: 2, 2, 1, 1
    assert q.bits == 1 and q.stored_bits() == 16 * 1 + 6 * 2 * 32
    # Two well separated pairs: any Forgy start ends with the pair means.
    W2 = np.array([[0, 0], [0, 1], [10, 10], [10, 11]], np.float32)
    for seed in range(5):
        q2 = product_quantize(W2, n_subspaces=1, k=2, rng=np.random.default_rng(seed))
        np.testing.assert_array_equal(q2.dequantize(), [[0, .5], [0, .5], [10, 10.5], [10, 10.5]])


def test_ties_go_to_lowest_index():
    X = np.array([[1.0], [0.0], [2.0]])
    C = np.array([[0.0], [2.0]])
    np.testing.assert_array_equal(K.vq_assign(X, C), [0, 0, 1])
    np.testing.assert_array_equal(K.vq_assign_twin(X, C), [0, 0, 1])


def test_twins_and_threads():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((500, 5))
    C = rng.standard_normal((16, 5))
    codes = K.vq_assign(X, C)
    assert_bits_equal(codes, K.vq_assign_twin(X, C))
    layout = K.exact_layout(X.reshape(-1))
    for to32 in (False, True):
        assert_bits_equal(K.vq_means(X, codes, C, to32, *layout),
                          K.vq_means_twin(X, codes, C, to32))
    W = rng.standard_normal((300, 40)).astype(np.float32)
    old = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        a = product_quantize(W, n_subspaces=8, k=16, rng=np.random.default_rng(3))
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        b = product_quantize(W, n_subspaces=8, k=16, rng=np.random.default_rng(3))
    finally:
        numba.set_num_threads(old)
    assert_bits_equal(a.codes, b.codes)
    assert_bits_equal(a.codebooks, b.codebooks)


def test_model_save_load(tmp_path):
    rng = np.random.default_rng(2)
    W = rng.standard_normal((8, 12)).astype(np.float32)
    q = product_quantize(W, n_subspaces=3, k=4, rng=rng)
    m = Model([Layer("dense", weights={"W": q})], input_shape=(12,))
    refcomp.save(m, tmp_path / "pq.h5")
    back = refcomp.load(tmp_path / "pq.h5").get_layer("0").weights["W"]
    assert isinstance(back, ProductQuantized)
    assert_bits_equal(back.dequantize(), q.dequantize())
    x = rng.standard_normal((2, 12)).astype(np.float32)
    assert_bits_equal(m(x), refcomp.layers.dense(x, q.dequantize()))


@pytest.mark.parametrize("W, kw, exc", [
    (np.ones((3, 4)), dict(n_subspaces=0, k=2), ParameterError),
    (np.ones((3, 4)), dict(n_subspaces=5, k=2), ParameterError),
    (np.ones((3, 4)), dict(n_subspaces=2, k=0), ParameterError),
    (np.ones((3, 4)), dict(n_subspaces=2, k=2, rng=None), ParameterError),
    (np.ones(4), dict(n_subspaces=1, k=2), ShapeError),
    (np.ones((3, 4), np.int64), dict(n_subspaces=1, k=2), DTypeError),
    (np.array([[1.0, np.nan]]), dict(n_subspaces=1, k=2), ParameterError),
    (np.ones((0, 4)), dict(n_subspaces=1, k=2), ShapeError),
])
def test_bad_input(W, kw, exc):
    kw.setdefault("rng", np.random.default_rng(0))
    with pytest.raises(exc):
        product_quantize(W, **kw)
