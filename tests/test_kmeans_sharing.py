"""Deep Compression weight sharing on a Model: pruned zeros stay exact, per-layer codebooks."""

from pathlib import Path

import numpy as np
import pytest

import refcomp
from refcomp import Layer, Model, ParameterError
from refcomp.prune import Masked, apply_masks
from refcomp.quantize import Quantized, kmeans, share_weights
from refcomp.testing import assert_bits_equal

DATA = Path(__file__).resolve().parent.parent / "data"


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
    with pytest.raises(ParameterError, match="no layer of a shared kind"):
        share_weights(m, 2, layers=["nope"])
    with pytest.raises(ParameterError, match="no layer of a shared kind"):
        share_weights(m, 2, layers=["1"])                 # an activation layer
    s = share_weights(m, 2)
    with pytest.raises(ParameterError, match="already compressed"):
        share_weights(s, 2)


def _assert_models_equal(a, b):
    for (pa, la), (pb, lb) in zip(a.named_layers(), b.named_layers()):
        assert pa == pb and la.kind == lb.kind and set(la.weights) == set(lb.weights)
        for name, v in la.weights.items():
            w = lb.weights[name]
            assert type(v) is type(w)
            if isinstance(v, np.ndarray):
                assert_bits_equal(v, w)
            else:
                assert v == w


@pytest.mark.parametrize("fname, rnn", [("digits_lstm.h5", "lstm"), ("digits_gru.h5", "gru")])
def test_recurrent_models_share_and_roundtrip(tmp_path, fname, rnn):
    m = refcomp.load(DATA / fname)
    s = share_weights(m, 4)
    layer, orig = s.get_layer("0"), m.get_layer("0")
    assert layer.kind == rnn
    for wname in ("W_ih", "W_hh"):
        q = layer.weights[wname]
        assert isinstance(q, Quantized) and q.method == "kmeans_shared"
        W = orig.weights[wname]
        # one codebook per weight array: k-means of that array alone (no zeros here)
        ref = kmeans(W, bits=4)
        assert_bits_equal(q.codebook, ref.codebook)
        np.testing.assert_array_equal(q.codes, ref.codes)
        assert q.params["zero_code"] == -1 and q.dequantize().dtype == W.dtype
    assert not np.array_equal(layer.weights["W_ih"].codebook, layer.weights["W_hh"].codebook)
    for b in ("b_ih", "b_hh"):                  # biases untouched (the same objects)
        assert layer.weights[b] is orig.weights[b]
    assert isinstance(s.get_layer("1").weights["W"], Quantized)
    refcomp.save(s, tmp_path / "s.h5")
    back = refcomp.load(tmp_path / "s.h5")
    _assert_models_equal(s, back)
    x = np.random.default_rng(0).standard_normal((5,) + m.input_shape).astype(np.float32)
    assert_bits_equal(back(x), s(x))
    # by layer name: only the recurrent layer
    only = share_weights(m, 3, layers=["rnn"])
    assert isinstance(only.get_layer("0").weights["W_hh"], Quantized)
    assert only.get_layer("1").weights["W"] is m.get_layer("1").weights["W"]


@pytest.mark.parametrize("kind, gates", [("mgu", 2), ("simple_rnn", 1)])
def test_other_recurrent_kinds(kind, gates):
    rng = np.random.default_rng(gates)
    H, F = 5, 3
    w = {"W_ih": rng.standard_normal((gates * H, F)), "W_hh": rng.standard_normal((gates * H, H)),
         "b_ih": rng.standard_normal(gates * H)}
    m = Model([Layer(kind, weights=w)], input_shape=(4, F))
    s = share_weights(m, 2)
    for wname in ("W_ih", "W_hh"):
        q = s.get_layer("0").weights[wname]
        np.testing.assert_array_equal(q.dequantize(), kmeans(w[wname], bits=2).dequantize())
    assert s.get_layer("0").weights["b_ih"] is w["b_ih"]
    x = rng.standard_normal((2, 4, F))
    assert s(x).shape == m(x).shape


def test_masked_weights_keep_pruned_zeros(tmp_path):
    m = refcomp.load(DATA / "digits_lstm.h5")
    rng = np.random.default_rng(5)
    masks = {("0", "W_ih"): rng.random((256, 8)) < 0.6,
             ("0", "W_hh"): np.abs(m.get_layer("0").weights["W_hh"]) > 0.05,
             ("1", "W"): rng.random((10, 64)) < 0.3}
    pm = apply_masks(m, masks)
    assert isinstance(pm.get_layer("0").weights["W_hh"], Masked)
    s = share_weights(pm, 3)
    for (path, wname), keep in masks.items():
        q = s.get_layer(path).weights[wname]
        assert isinstance(q, Quantized)
        w = q.dequantize()
        zc = q.params["zero_code"]
        assert q.codebook[zc] == 0 and q.codebook.size <= 8
        assert np.all(w[~keep] == 0) and not np.any(np.signbit(w[~keep]))
        np.testing.assert_array_equal(q.codes == zc, ~keep)     # the mask is recoverable
        kept = m.get_layer(path).weights[wname][keep]
        ref = kmeans(kept, k=7, bits=3)
        assert_bits_equal(w[keep], ref.dequantize())
    # the same result as the dense pruned arrays (apply_masks(..., masked=False))
    dense = share_weights(apply_masks(m, masks, masked=False), 3)
    _assert_models_equal(s, dense)
    refcomp.save(s, tmp_path / "s.h5")
    _assert_models_equal(s, refcomp.load(tmp_path / "s.h5"))


def test_masked_kept_zero_and_compressed_refused():
    W = np.array([[0.0, 1.0, 2.0], [3.0, -0.0, 5.0]], np.float32)
    keep = np.array([[True, True, False], [True, True, True]])
    m = apply_masks(Model([Layer("dense", weights={"W": W})]), {"0": keep})
    q = share_weights(m, 2).get_layer("0").weights["W"]
    w = q.dequantize()
    # pruned entries and kept zeros (like zeros of an ndarray) decode to +0.0
    assert_bits_equal(w[[0, 0, 1], [0, 2, 1]], np.zeros(3, np.float32))
    assert np.all(w[[0, 1, 1], [1, 0, 2]] != 0)
    from refcomp.quantize import uniform
    c = m.replace_weights({("0", "W"): uniform(W, 4)})
    with pytest.raises(ParameterError, match="already compressed"):
        share_weights(c, 2)
