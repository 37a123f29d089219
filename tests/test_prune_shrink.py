"""refcomp.prune.shrink and remove_dead_neurons: equivalence with the masked model."""

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import refcomp
from refcomp import Layer, Model
from refcomp.data import load_split
from refcomp.prune import (apply_masks, global_magnitude, prunable_weights,
                           remove_dead_neurons, shrink)

DATA = Path(__file__).resolve().parents[1] / "data"
X_TEST = load_split("test")[0][:120]


def masked_outputs(model, path, keep):
    """The masked model: removed rows/filters and biases set to zero (built by hand)."""
    layer = model.get_layer(path)
    W = layer.weights["W"].copy()
    drop = np.setdiff1d(np.arange(W.shape[0]), keep)
    W[drop] = 0
    upd = {(path, "W"): W}
    if "b" in layer.weights:
        b = layer.weights["b"].copy()
        b[drop] = 0
        upd[(path, "b")] = b
    return model.replace_weights(upd)


SHRINKABLE = {"mlp": ["1", "3"], "cnn": ["1", "3", "7"],
              "resnet": ["3/0", "3/2", "5/0", "5/2"]}


@pytest.mark.parametrize("name", sorted(SHRINKABLE))
def test_shrink_equals_masked_model_on_shipped(name):
    m = refcomp.load(DATA / f"digits_{name}.h5")
    rng = np.random.default_rng(7)
    for path in SHRINKABLE[name]:
        n = m.get_layer(path).weights["W"].shape[0]
        keep = np.sort(rng.choice(n, size=max(1, n // 3), replace=False))
        s = shrink(m, path, keep)
        assert s.get_layer(path).weights["W"].shape[0] == keep.size
        assert s.n_params() < m.n_params()
        # ReLU after every shrunk layer: removed outputs are exact zeros, so the
        # reference pass gives the same numbers (np.array_equal: +0.0 == -0.0)
        assert np.array_equal(s(X_TEST), masked_outputs(m, path, keep)(X_TEST)), path
    if name == "resnet":
        s = shrink(m, "3/2", np.array([1, 4, 9]))
        assert s.get_layer("3").weights["index_map"].tolist() == [1, 4, 9]
        s2 = shrink(s, "3/2", np.array([True, False, True]))
        assert s2.get_layer("3").weights["index_map"].tolist() == [1, 9]


def conv_flatten_model(layout, act):
    rng = np.random.default_rng(11)
    f32 = np.float32
    return Model([
        Layer("conv2d", weights={"W": rng.normal(size=(6, 2, 3, 3)).astype(f32),
                                 "b": rng.normal(size=6).astype(f32)},
              attrs={"layout": layout}),
        Layer("batch_norm", weights={"gamma": rng.uniform(0.5, 2, 6).astype(f32),
                                     "beta": rng.normal(size=6).astype(f32),
                                     "mean": rng.normal(size=6).astype(f32),
                                     "var": rng.uniform(0.5, 2, 6).astype(f32)},
              attrs={"layout": layout}),
        Layer("activation", attrs={"function": act}),
        Layer("max_pool2d", attrs={"size": 2, "layout": layout}),
        Layer("flatten", attrs={"layout": layout}),
        Layer("dense", weights={"W": rng.normal(size=(4, 6 * 2 * 2)).astype(f32),
                                "b": rng.normal(size=4).astype(f32)}),
    ], input_shape=(2, 6, 6) if layout == "NCHW" else (6, 6, 2))


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("act", ["relu", "sigmoid"])
def test_shrink_conv_flatten_dense_both_layouts(layout, act):
    m = conv_flatten_model(layout, act)
    x = np.random.default_rng(2).normal(size=(9,) + m.input_shape).astype(np.float32)
    keep = np.array([0, 2, 3, 5])
    s = shrink(m, "0", keep)
    assert s.layers[5].weights["W"].shape == (4, 4 * 2 * 2)
    assert s.layers[1].weights["gamma"].shape == (4,)
    want = masked_outputs(m, "0", keep)(x)
    got = s(x)
    # batch norm turns the removed channels into a non-zero constant, folded
    # into the dense bias in float64: agreement within the float32 dot bound
    bound = 64 * np.finfo(np.float32).eps * (1 + np.abs(want).max())
    assert np.abs(got - want).max() <= bound


def test_shrink_sigmoid_dense_folding():
    rng = np.random.default_rng(5)
    f64 = np.float64
    m = Model([Layer("dense", weights={"W": rng.normal(size=(5, 3)), "b": rng.normal(size=5)}),
               Layer("activation", attrs={"function": "sigmoid"}),
               Layer("dense", weights={"W": rng.normal(size=(2, 5))})], input_shape=(3,))
    x = rng.normal(size=(4, 3)).astype(f64)
    s = shrink(m, "0", np.array([1, 3]))
    assert "b" in s.layers[2].weights                       # created to absorb 0.5 * W
    np.testing.assert_allclose(s(x), masked_outputs(m, "0", [1, 3])(x), rtol=0, atol=1e-14)


def test_remove_dead_neurons_hand_made():
    f64 = np.float64
    W1 = np.array([[1., 2.], [0., 0.], [3., -1.], [0.5, 0.5]])
    b1 = np.array([0.1, 0.7, -0.2, 0.3])
    W2 = np.array([[1., 2., 0., 1.], [0., 0., 0., 0.], [2., 1., 0., -1.]])   # neuron 2 of L1 unused
    b2 = np.array([0., 0.5, 0.])
    W3 = np.array([[1., 0., 1.], [2., 0., -1.]])            # neuron 1 of L2 unused, and no inputs
    m = Model([Layer("dense", weights={"W": W1, "b": b1}),
               Layer("activation", attrs={"function": "tanh"}),
               Layer("dense", weights={"W": W2, "b": b2}),
               Layer("activation", attrs={"function": "relu"}),
               Layer("dense", weights={"W": W3})], input_shape=(2,))
    d, rep = remove_dead_neurons(m)
    assert rep["removed"] == {"0": [1, 2], "2": [1]}
    assert rep["folded"] == {"0": [1], "2": [1]}      # tanh(0.7) into b2; relu(0.5) * 0 into W3
    assert d.layers[0].weights["W"].shape == (2, 2)
    assert d.layers[2].weights["W"].shape == (2, 2)
    np.testing.assert_allclose(d.layers[2].weights["b"], [np.tanh(0.7) * 2, np.tanh(0.7) * 1])
    x = np.random.default_rng(0).normal(size=(20, 2)).astype(f64)
    np.testing.assert_allclose(d(x), m(x), rtol=0, atol=1e-14)
    assert rep["params_after"] == d.n_params() < rep["params_before"]


@pytest.mark.parametrize("name", ["mlp", "cnn", "resnet"])
def test_remove_dead_neurons_on_pruned_shipped(name):
    m = refcomp.load(DATA / f"digits_{name}.h5")
    pm = apply_masks(m, global_magnitude(prunable_weights(m), 0.95), masked=False)
    d, rep = remove_dead_neurons(pm)
    ref = pm(X_TEST)
    got = d(X_TEST)
    bound = 64 * np.finfo(np.float32).eps * (1 + np.abs(ref).max())
    assert np.abs(got - ref).max() <= bound
    if name != "resnet":
        assert d.n_params() < pm.n_params() and rep["removed"]
    # the output layer is never shrunk
    assert got.shape == ref.shape


def test_shrink_bad_input():
    m = refcomp.load(DATA / "digits_resnet.h5")
    with pytest.raises(refcomp.ParameterError, match="residual shortcut"):
        shrink(m, "1", np.array([0, 1]))
    with pytest.raises(refcomp.ParameterError, match="keeps no output"):
        shrink(m, "9", np.zeros(10, dtype=bool))
    with pytest.raises(refcomp.ParameterError, match="keeps no output"):
        shrink(m, "3/0", np.array([], dtype=np.int64))
    with pytest.raises(refcomp.ShapeError, match="length 16"):
        shrink(m, "3/0", np.ones(15, dtype=bool))
    with pytest.raises(refcomp.ParameterError, match="duplicate"):
        shrink(m, "3/0", np.array([1, 1]))
    with pytest.raises(refcomp.ParameterError, match=r"\[0, 16\)"):
        shrink(m, "3/0", np.array([16]))
    with pytest.raises(refcomp.ParameterError, match="only dense and conv2d"):
        shrink(m, "2", np.array([0]))
    with pytest.raises(refcomp.ParameterError, match="no layer"):
        shrink(m, "3/7", np.array([0]))
    with pytest.raises(refcomp.DTypeError):
        shrink(m, "3/0", [0, 1])
    with pytest.raises(refcomp.DTypeError):
        shrink(m, "3/0", np.array([0.0, 1.0]))
    sig = Model([Layer("conv2d", weights={"W": np.ones((2, 1, 3, 3), np.float32)}),
                 Layer("activation", attrs={"function": "sigmoid"}),
                 Layer("conv2d", weights={"W": np.ones((1, 2, 3, 3), np.float32)},
                       attrs={"padding": 1})], input_shape=(1, 5, 5))
    with pytest.raises(refcomp.ParameterError, match="zero padding"):
        shrink(sig, "0", np.array([0]))


def test_shrink_keeps_masked_weights_and_refuses_recurrent():
    m = refcomp.load(DATA / "digits_cnn.h5")
    pm = apply_masks(m, global_magnitude(prunable_weights(m), 0.8))
    s = shrink(pm, "3", np.arange(0, 64, 2))
    w = s.get_layer("3").weights["W"]
    assert isinstance(w, refcomp.prune.Masked) and w.shape == (32, 32, 3, 3)
    assert isinstance(s.get_layer("7").weights["W"], refcomp.prune.Masked)
    assert s.get_layer("7").weights["W"].shape == (128, 32 * 2 * 2)
    want = masked_outputs(apply_masks(pm, {}, masked=False).replace_weights(
        {(p, "W"): pm.get_layer(p).weights["W"].dequantize() for p in ("1", "3", "7", "9")}),
        "3", np.arange(0, 64, 2))(X_TEST)
    assert np.array_equal(s(X_TEST), want)
    lstm = refcomp.load(DATA / "digits_lstm.h5")
    with pytest.raises(refcomp.ParameterError, match="only dense and conv2d"):
        shrink(lstm, "0", np.array([0]))


@given(st.integers(0, 2 ** 32 - 1), st.sampled_from(["relu", "tanh", "sigmoid"]),
       st.floats(0.3, 0.9))
@settings(max_examples=30)
def test_remove_dead_neurons_random_sparse_mlps(seed, act, density):
    rng = np.random.default_rng(seed)
    sizes = [5, 7, 6, 3]
    layers = []
    for i in range(3):
        W = rng.normal(size=(sizes[i + 1], sizes[i]))
        W *= rng.random(W.shape) < density                  # unstructured pruning
        W[rng.random(sizes[i + 1]) < 0.3] = 0               # whole dead rows
        W[:, rng.random(sizes[i]) < 0.3] = 0                # whole dead columns
        layers.append(Layer("dense", weights={"W": W, "b": rng.normal(size=sizes[i + 1])}))
        if i < 2:
            layers.append(Layer("activation", attrs={"function": act}))
    m = Model(layers, input_shape=(5,))
    d, rep = remove_dead_neurons(m)
    x = rng.normal(size=(8, 5))
    np.testing.assert_allclose(d(x), m(x), rtol=0, atol=1e-12)
    assert d.n_params() <= m.n_params()
    for path in ("0", "2"):          # no remaining neuron has an all-zero row
        W = d.get_layer(path).weights["W"]
        assert W.shape[0] == 1 or np.all(np.any(W != 0, axis=1))


@given(st.integers(0, 2 ** 32 - 1))
@settings(max_examples=25)
def test_shrink_random_keep_sets_mlp(seed):
    rng = np.random.default_rng(seed)
    m = refcomp.load(DATA / "digits_mlp.h5") if seed % 2 else conv_flatten_model("NHWC", "relu")
    path = "1" if seed % 2 else "0"
    n = m.get_layer(path).weights["W"].shape[0]
    keep = np.flatnonzero(rng.random(n) < 0.5)
    if keep.size == 0:
        keep = np.array([0])
    x = (X_TEST[:20] if seed % 2 else
         rng.normal(size=(5,) + m.input_shape).astype(np.float32))
    got, want = shrink(m, path, keep)(x), masked_outputs(m, path, keep)(x)
    if seed % 2:
        assert np.array_equal(got, want)          # ReLU: removed outputs are exact zeros
    else:                                         # BN shift folded into the dense bias
        assert np.abs(got - want).max() <= 64 * np.finfo(np.float32).eps * (
            1 + np.abs(want).max())
