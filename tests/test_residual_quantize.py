"""Residual quantization: stages against the independent naive product quantizer."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import refcomp
from refcomp import Layer, Model, ParameterError
from refcomp.quantize import residual_quantize
from refcomp.testing import assert_bits_equal
from test_product_quantize import naive_pq

_mats = st.sampled_from([np.float32, np.float64]).flatmap(lambda dt: hnp.arrays(
    dt, st.tuples(st.integers(1, 8), st.integers(1, 5)),
    elements=st.integers(-6, 6).map(lambda i: i / 4.0)))


def naive_rq(W, n_stages, s, k, seed, max_iter):
    """Residuals in float64 rounded to the dtype, stages by the naive PQ, sum in float64."""
    rng = np.random.default_rng(seed)
    residual, total = W, np.zeros(W.shape)
    for _ in range(n_stages):
        rec = naive_pq(residual, s, k, rng, max_iter).astype(np.float64)
        residual = (residual.astype(np.float64) - rec).astype(W.dtype)
        total = total + rec
    return total.astype(W.dtype)


@settings(max_examples=25)
@given(W=_mats, n_stages=st.integers(1, 3), s=st.integers(1, 3), k=st.integers(1, 4),
       seed=st.integers(0, 100))
def test_matches_naive_stages(W, n_stages, s, k, seed):
    s = min(s, W.shape[1])
    q = residual_quantize(W, n_stages=n_stages, n_subspaces=s, k=k,
                          rng=np.random.default_rng(seed), max_iter=10)
    assert_bits_equal(q.dequantize(), naive_rq(W, n_stages, s, k, seed, 10))
    assert q.shape == W.shape and len(q.stages) == n_stages


def test_more_stages_refine_and_exact_when_k_covers_rows():
    rng = np.random.default_rng(0)
    W = rng.standard_normal((40, 12)).astype(np.float32)
    q = residual_quantize(W, n_stages=4, k=8, rng=np.random.default_rng(1))
    assert q.info["sse"][-1] < q.info["sse"][0]
    assert q.stored_bits() == sum(st.stored_bits() for st in q.stages)
    exact = residual_quantize(W, n_stages=2, k=40, rng=np.random.default_rng(1))
    assert_bits_equal(exact.dequantize(), W)


def test_save_load_and_bad_input(tmp_path):
    rng = np.random.default_rng(2)
    W = rng.standard_normal((6, 5)).astype(np.float32)
    q = residual_quantize(W, n_stages=2, k=3, rng=rng)
    m = Model([Layer("dense", weights={"W": q, "b": np.zeros(6, np.float32)})], input_shape=(5,))
    refcomp.save(m, tmp_path / "m.h5")
    back = refcomp.load(tmp_path / "m.h5").layers[0].weights["W"]
    assert_bits_equal(back.dequantize(), q.dequantize())
    with pytest.raises(ParameterError):
        residual_quantize(W, n_stages=0, k=2, rng=rng)
    with pytest.raises(ParameterError):
        residual_quantize(W, n_stages=1, k=2, rng=None)
