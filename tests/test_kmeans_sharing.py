"""Deep Compression weight sharing on a Model: pruned zeros stay exact, per-layer codebooks."""

import numpy as np
import pytest

import refcomp
from refcomp import Layer, Model, ParameterError
from refcomp.quantize import Quantized, kmeans, share_weights


def _model(rng, prune=True):
    W1 = rng.standard_normal((6, 1, 3, 3)).astype(np.float32)
    W2 = rng.standard_normal((4, 6 * 4 * 4)).astype(np.float32)
    if prune:
        W1[np.abs(W1) < 0.5] = 0.0
        W2[np.abs(W2) < 0.8] = -0.0
    W3 = rng.standard_normal((4, 4)).astype(np.float32)
    inner = Layer("dense", name="inner", weights={"W": W3})
    return Model([
        Layer("conv2d", name="conv", weights={"W": W1, "b": np.zeros(6, np.float32)}),
        Layer("activation", attrs={"function": "relu"}),
        Layer("flatten"),
        Layer("dense", name="fc", weights={"W": W2}),
        Layer("residual", layers=[inner]),
    ], input_shape=(1, 6, 6))


def test_pruned_zeros_stay_exact_and_codebooks_per_layer():
    rng = np.random.default_rng(0)
    m = _model(rng)
    s = share_weights(m, 3)
    for path, layer in s.named_layers():
        if layer.kind in ("dense", "conv2d"):
            q = layer.weights["W"]
            orig = m.get_layer(path).weights["W"]
            assert isinstance(q, Quantized) and q.method == "kmeans_shared"
            w = q.dequantize()
            assert w.dtype == orig.dtype and q.codebook.size <= 8
            zero = orig == 0
            np.testing.assert_array_equal(w == 0, zero | (w == 0))
            assert np.all(w[zero] == 0) and not np.any(np.signbit(w[zero]))
            if zero.any():
                zc = q.params["zero_code"]
                assert q.codebook[zc] == 0 and np.all(q.codes[zero] == zc)
                # Non-zeros: the same codebook values as k-means on the non-zeros alone.
                ref = kmeans(orig[~zero], k=7, bits=3)
                np.testing.assert_array_equal(np.sort(np.setdiff1d(q.codebook, [0.0])),
                                              np.setdiff1d(ref.codebook, [0.0]))
                np.testing.assert_array_equal(w[~zero], ref.dequantize())
    assert s.get_layer("0").weights["b"] is m.get_layer("0").weights["b"]
    x = rng.standard_normal((2, 1, 6, 6)).astype(np.float32)
    assert s(x).shape == m(x).shape


def test_unpruned_layer_uses_all_codes():
    m = _model(np.random.default_rng(1), prune=False)
    s = share_weights(m, 2, layers=["fc"])
    q = s.get_layer("3").weights["W"]
    assert q.params["zero_code"] == -1 and q.codebook.size == 4
    ref = kmeans(m.get_layer("3").weights["W"], bits=2)
    np.testing.assert_array_equal(q.codes, ref.codes)
    np.testing.assert_array_equal(q.codebook, ref.codebook)
    assert isinstance(s.get_layer("0").weights["W"], np.ndarray)


def test_layers_by_path_and_save_roundtrip(tmp_path):
    m = _model(np.random.default_rng(2))
    s = share_weights(m, 4, layers=["4/0", "conv"])
    assert isinstance(s.get_layer("4/0").weights["W"], Quantized)
    assert isinstance(s.get_layer("3").weights["W"], np.ndarray)
    refcomp.save(s, tmp_path / "m.h5")
    back = refcomp.load(tmp_path / "m.h5")
    assert back.get_layer("0").weights["W"] == s.get_layer("0").weights["W"]


def test_all_zero_layer():
    W = np.zeros((3, 2), np.float64)
    m = Model([Layer("dense", weights={"W": W})])
    q = share_weights(m, 2).get_layer("0").weights["W"]
    np.testing.assert_array_equal(q.dequantize(), W)


def test_bad_input():
    m = _model(np.random.default_rng(3))
    with pytest.raises(ParameterError):
        share_weights(m, 0)
    with pytest.raises(ParameterError, match="no dense/conv2d"):
        share_weights(m, 2, layers=["nope"])
    s = share_weights(m, 2)
    with pytest.raises(ParameterError, match="already compressed"):
        share_weights(s, 2)
