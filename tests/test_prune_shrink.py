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
from refcomp.testing import dot_error_bound, model_error_bound

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


def last_dense_bound(model, x):
    """FACTS.md §8 bound for models that differ only in their last (dense) layer's
    bias: gamma * (sum_i |x_i w_i| + |b|) on the reference model's input to it."""
    a = model.forward_all(x)[-2] if len(model.layers) > 1 else x
    last = model.layers[-1]
    assert last.kind == "dense"
    return dot_error_bound("dense", a, last.weights["W"], last.weights.get("b"))


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
    mm = masked_outputs(m, "0", keep)
    want = mm(x)
    got = s(x)
    # batch norm turns the removed channels into a non-zero constant, folded
    # into the dense bias in float64.  Only the last (dense) layer computes
    # differently, on the same input: the FACTS.md §8 bound gamma * sum|x w|
    assert np.all(np.abs(got - want) <= last_dense_bound(mm, x))


def test_shrink_sigmoid_dense_folding():
    rng = np.random.default_rng(5)
    f64 = np.float64
    m = Model([Layer("dense", weights={"W": rng.normal(size=(5, 3)), "b": rng.normal(size=5)}),
               Layer("activation", attrs={"function": "sigmoid"}),
               Layer("dense", weights={"W": rng.normal(size=(2, 5))})], input_shape=(3,))
    x = rng.normal(size=(4, 3)).astype(f64)
    s = shrink(m, "0", np.array([1, 3]))
    assert "b" in s.layers[2].weights                       # created to absorb 0.5 * W
    mm = masked_outputs(m, "0", [1, 3])
    assert np.all(np.abs(s(x) - mm(x)) <= last_dense_bound(mm, x))


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
    # folds in layers 2 and 4: the derived bound propagated through the model
    y, bound = model_error_bound(m, x)
    assert np.all(np.abs(d(x) - y) <= bound)
    assert rep["params_after"] == d.n_params() < rep["params_before"]


@pytest.mark.parametrize("name", ["mlp", "cnn", "resnet"])
def test_remove_dead_neurons_on_pruned_shipped(name):
    m = refcomp.load(DATA / f"digits_{name}.h5")
    pm = apply_masks(m, global_magnitude(prunable_weights(m), 0.95), masked=False)
    d, rep = remove_dead_neurons(pm)
    got = d(X_TEST)
    # Folded constants change biases of several layers: the comparison crosses
    # layers, so the single-layer gamma_n bound does not apply; use the derived
    # bound that propagates it (refcomp.testing.model_error_bound).
    ref, bound = model_error_bound(pm, X_TEST)
    assert np.all(np.abs(got - ref) <= bound)
    assert d.n_params() < pm.n_params() and rep["removed"]
    if name == "resnet":
        # 3/0 [13] has no outgoing weights: removed.  Kept, as no exact fold
        # exists: 3/2 [10] ends a residual body whose block is followed by a
        # ReLU (the constant it adds to the trunk cannot cross it), and 5/0 [2]
        # feeds the zero-padded conv 5/2 (position-dependent border terms).
        assert rep["removed"] == {"3/0": [13]}
        assert rep["kept_unfoldable"] == {"3/2": [10], "5/0": [2]}
        assert d.get_layer("3/0").weights["W"].shape[0] == 15
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
    y, bound = model_error_bound(m, x)        # folds in several layers: derived bound
    assert np.all(np.abs(d(x) - y) <= bound)
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
    mm = masked_outputs(m, path, keep)
    got, want = shrink(m, path, keep)(x), mm(x)
    if seed % 2:
        assert np.array_equal(got, want)          # ReLU: removed outputs are exact zeros
    else:                                         # BN shift folded into the dense bias
        assert np.all(np.abs(got - want) <= last_dense_bound(mm, x))


# -- hand-made dead-neuron graphs: conv, flatten, residual ------------------------------
def _conv(rng, o, i, k, layout, padding=0):
    return Layer("conv2d", weights={"W": rng.normal(size=(o, i, k, k)).astype(np.float32),
                                    "b": rng.normal(size=o).astype(np.float32)},
                 attrs={"layout": layout, "padding": padding})


def _relu():
    return Layer("activation", attrs={"function": "relu"})


def _shape(layout, c, h, w):
    return (c, h, w) if layout == "NCHW" else (h, w, c)


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_remove_dead_neurons_conv_flatten(layout):
    rng = np.random.default_rng(21)
    c0, c2 = _conv(rng, 4, 2, 3, layout), _conv(rng, 3, 4, 3, layout)
    c0.weights["W"][[1, 3]] = 0                 # no inputs: constants relu(b)
    c0.weights["b"][[1, 3]] = [0.7, -0.5]       # 0.7 folds into conv 2's bias, -0.5 -> 0
    c2.weights["W"][:, 2] = 0                   # conv 0's filter 2 reaches nothing
    c2.weights["W"][2] = 0
    c2.weights["b"][2] = 0.3                    # relu(0.3) through flatten into the dense bias
    dense = Layer("dense", weights={"W": rng.normal(size=(5, 3 * 2 * 2)).astype(np.float32),
                                    "b": rng.normal(size=5).astype(np.float32)})
    m = Model([c0, _relu(), c2, _relu(), Layer("flatten", attrs={"layout": layout}), dense],
              input_shape=_shape(layout, 2, 6, 6))
    d, rep = remove_dead_neurons(m)
    assert rep["removed"] == {"0": [1, 2, 3], "2": [2]}
    assert rep["folded"] == {"0": [1, 3], "2": [2]}
    assert rep["kept_unfoldable"] == {}
    assert d.layers[0].weights["W"].shape == (1, 2, 3, 3)
    assert d.layers[2].weights["W"].shape == (2, 1, 3, 3)
    assert d.layers[5].weights["W"].shape == (5, 2 * 2 * 2)
    # the dense keeps exactly the flatten features of conv 2's kept channels 0, 1
    keep = [c * 4 + hw for c in (0, 1) for hw in range(4)] if layout == "NCHW" else \
        [hw * 3 + c for hw in range(4) for c in (0, 1)]
    assert np.array_equal(d.layers[5].weights["W"], dense.weights["W"][:, keep])
    x = rng.normal(size=(6,) + m.input_shape).astype(np.float32)
    y, bound = model_error_bound(m, x)           # folds in two layers: derived bound
    assert np.all(np.abs(d(x) - y) <= bound)


def test_remove_dead_neurons_before_zero_padded_conv():
    rng = np.random.default_rng(22)
    c0, c2 = _conv(rng, 4, 1, 3, "NCHW"), _conv(rng, 3, 4, 3, "NCHW", padding=1)
    c0.weights["W"][[1, 2]] = 0
    c0.weights["b"][[1, 2]] = [0.7, -0.5]        # 0.7: border-dependent term; -0.5: relu -> 0
    m = Model([c0, _relu(), c2, _relu(), Layer("flatten"),
               Layer("dense", weights={"W": rng.normal(size=(2, 3 * 4 * 4)).astype(np.float32)})],
              input_shape=(1, 6, 6))
    d, rep = remove_dead_neurons(m)
    # filter 1's constant meets conv 2's zero padding: kept; filter 2 is removed alone
    assert rep["kept_unfoldable"] == {"0": [1]}
    assert rep["removed"] == {"0": [2]}
    assert d.layers[0].weights["W"].shape[0] == 3
    x = rng.normal(size=(5, 1, 6, 6)).astype(np.float32)
    assert np.array_equal(d(x), m(x))             # relu(-0.5) = 0: exact zeros dropped


def _res_model(layout, after_block, rng):
    """conv -> relu -> residual[1x1 conv -> relu -> 1x1 conv] -> after_block
    -> flatten -> dense, with a dead first filter (bias 0.4) and a dead last
    filter (bias 0.9) in the body."""
    C = 4
    body = [_conv(rng, 3, C, 1, layout), _relu(), _conv(rng, C, 3, 1, layout)]
    body[0].weights["W"][0] = 0
    body[0].weights["b"][0] = 0.4
    body[2].weights["W"][1] = 0
    body[2].weights["b"][1] = 0.9
    layers = [_conv(rng, C, 2, 3, layout), _relu(),
              Layer("residual", layers=body, attrs={"layout": layout})] + after_block + [
        Layer("flatten", attrs={"layout": layout}),
        Layer("dense", weights={"W": rng.normal(size=(5, C * 2 * 2)).astype(np.float32),
                                "b": rng.normal(size=5).astype(np.float32)})]
    return Model(layers, input_shape=_shape(layout, 2, 6, 6))


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_remove_dead_neurons_residual_body_end_folded(layout):
    rng = np.random.default_rng(23)
    f32 = np.float32
    bn = Layer("batch_norm", weights={"gamma": rng.uniform(0.5, 2, 4).astype(f32),
                                      "beta": rng.normal(size=4).astype(f32),
                                      "mean": rng.normal(size=4).astype(f32),
                                      "var": rng.uniform(0.5, 2, 4).astype(f32)},
               attrs={"layout": layout})
    # affine layers between the block and the dense: batch norm, max pooling
    m = _res_model(layout, [bn, Layer("max_pool2d", attrs={"size": 2, "layout": layout})], rng)
    d, rep = remove_dead_neurons(m)
    assert rep["removed"] == {"2/0": [0], "2/2": [1]}
    assert rep["folded"] == {"2/0": [0], "2/2": [1]}
    assert rep["kept_unfoldable"] == {}
    blk = d.get_layer("2")
    assert blk.weights["index_map"].tolist() == [0, 2, 3]      # selective addition
    assert d.get_layer("2/2").weights["W"].shape == (3, 2, 1, 1)
    assert d.n_params() < m.n_params()
    # the trunk keeps its width; the constant 0.9 * s (BN scale) moved into the dense bias
    assert d.layers[-1].weights["W"].shape == (5, 16)
    assert not np.array_equal(d.layers[-1].weights["b"], m.layers[-1].weights["b"])
    x = rng.normal(size=(7,) + m.input_shape).astype(f32)
    y, bound = model_error_bound(m, x)
    assert np.all(np.abs(d(x) - y) <= bound)


def test_remove_dead_neurons_residual_body_end_before_relu_kept():
    rng = np.random.default_rng(24)
    m = _res_model("NCHW", [_relu(), Layer("max_pool2d", attrs={"size": 2})], rng)
    d, rep = remove_dead_neurons(m)
    # relu(x + 0.9) cannot be written with x alone and a later bias: kept
    assert rep["kept_unfoldable"] == {"2/2": [1]}
    assert rep["removed"] == {"2/0": [0]}                      # folded into 2/2's bias
    assert "index_map" not in d.get_layer("2").weights
    x = rng.normal(size=(7, 2, 6, 6)).astype(np.float32)
    y, bound = model_error_bound(m, x)
    assert np.all(np.abs(d(x) - y) <= bound)


def test_shrink_residual_body_end_nonzero_constant():
    # a body ending with batch norm: the removed channels' constant BN(0) is
    # added to the trunk; it folds into the dense after the block (flatten
    # only), or is refused when a ReLU comes first
    rng = np.random.default_rng(25)
    f32 = np.float32

    def model(after):
        body = [_conv(rng, 4, 4, 1, "NCHW"),
                Layer("batch_norm", weights={"gamma": rng.uniform(0.5, 2, 4).astype(f32),
                                             "beta": rng.normal(size=4).astype(f32),
                                             "mean": rng.normal(size=4).astype(f32),
                                             "var": rng.uniform(0.5, 2, 4).astype(f32)})]
        return Model([_conv(rng, 4, 1, 3, "NCHW"), _relu(),
                      Layer("residual", layers=body)] + after + [
            Layer("flatten"),
            Layer("dense", weights={"W": rng.normal(size=(3, 4 * 4 * 4)).astype(f32)})],
            input_shape=(1, 6, 6))
    m = model([])
    keep = np.array([0, 3])
    s = shrink(m, "2/0", keep)
    assert s.get_layer("2").weights["index_map"].tolist() == [0, 3]
    mm = masked_outputs(m, "2/0", keep)
    x = rng.normal(size=(6, 1, 6, 6)).astype(f32)
    y, bound = model_error_bound(mm, x)
    assert np.all(np.abs(s(x) - y) <= bound)
    with pytest.raises(refcomp.ParameterError, match="'relu' activation"):
        shrink(model([_relu()]), "2/0", keep)


def nhwc_resnet():
    rng = np.random.default_rng(26)
    return Model([_conv(rng, 6, 2, 3, "NHWC", padding=1), _relu(),
                  Layer("residual", layers=[_conv(rng, 5, 6, 3, "NHWC", padding=1), _relu(),
                                            _conv(rng, 6, 5, 3, "NHWC", padding=1)],
                        attrs={"layout": "NHWC"}),
                  _relu(), Layer("max_pool2d", attrs={"size": 2, "layout": "NHWC"}),
                  Layer("flatten", attrs={"layout": "NHWC"}),
                  Layer("dense", weights={"W": rng.normal(size=(4, 6 * 3 * 3)).astype(np.float32),
                                          "b": rng.normal(size=4).astype(np.float32)})],
                 input_shape=(6, 6, 2))


@pytest.mark.parametrize("path,keep", [("2/0", [0, 2, 4]), ("2/2", [1, 2, 5])])
def test_shrink_nhwc_residual_model_equals_masked(path, keep):
    m = nhwc_resnet()
    keep = np.array(keep)
    s = shrink(m, path, keep)
    x = np.random.default_rng(3).normal(size=(8, 6, 6, 2)).astype(np.float32)
    # ReLU / zero bias: the removed outputs are exact zeros, identical numbers
    assert np.array_equal(s(x), masked_outputs(m, path, keep)(x))
    if path == "2/2":
        assert s.get_layer("2").weights["index_map"].tolist() == keep.tolist()
        assert s.get_layer("2/2").weights["W"].shape == (3, 5, 3, 3)
    else:
        assert s.get_layer("2/2").weights["W"].shape == (6, 3, 3, 3)
    with pytest.raises(refcomp.ParameterError, match="residual shortcut"):
        shrink(m, "0", keep)
