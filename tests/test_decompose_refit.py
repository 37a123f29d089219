"""Coordinate refit (seed 004 §3.2, least-squares counterpart)."""

import math

import numpy as np
import pytest

import refcomp
from refcomp import Layer, Model, ParameterError, ShapeError
from refcomp.data import load_split
from refcomp.decompose import PCAWeight, pca_filters, pca_model, refit_coordinates
from refcomp.layers import conv2d, dense


def _layer_in(model, path, x):
    """Independent walk: run the model layer by layer, collecting the input of ``path``."""
    target = [int(p) for p in path.split("/")]

    def walk(seq, a, prefix):
        for i, layer in enumerate(seq):
            here = prefix + [i]
            if here == target:
                return a, True
            if layer.kind == "residual":
                h, found = walk(layer.layers, a, here)
                if found:
                    return h, True
            a = Model([layer])(a)
        return a, False
    a, found = walk(model.layers, x, [])
    assert found
    return a


def _out(layer, W, a):
    at = layer.attrs
    b = layer.w("b")
    if layer.kind == "dense":
        return dense(a, W, b)
    return conv2d(a, W, b, stride=at["stride"], padding=at["padding"], dilation=at["dilation"],
                  groups=at["groups"], layout=at["layout"])


def _err(y, z):
    d = y.astype(np.float64) - z.astype(np.float64)
    return math.fsum((d * d).ravel().tolist())


@pytest.mark.parametrize("name, energy, layers", [("digits_cnn", 0.7, "all"),
                                                  ("digits_resnet", 0.6, None)])
def test_refit_never_increases_layer_error(name, energy, layers):
    m = refcomp.load(refcomp.data.default_data_dir() / f"{name}.h5")
    xc, _ = load_split("calib")
    xc = xc[:120]
    mp = pca_model(m, energy, layers=layers)
    mr = refit_coordinates(mp, xc, original=m)
    improved = 0
    for p, layer in mp.named_layers():
        w = layer.weights.get("W")
        if not isinstance(w, PCAWeight):
            continue
        wr = mr.get_layer(p).weights["W"]
        assert isinstance(wr, PCAWeight)
        assert wr.basis is w.basis and wr.mean is w.mean     # basis and mean fixed
        z = _out(m.get_layer(p), m.get_layer(p).w("W"), _layer_in(m, p, xc))
        a = _layer_in(mr, p, xc)            # the refitted model's own activations
        before = _err(_out(layer, w.dequantize(), a), z)
        after = _err(_out(layer, wr.dequantize(), a), z)
        assert after <= before
        assert wr.info["refit"]["error_after"] == after
        improved += after < 0.9 * before
    assert improved >= 1


def test_refit_original_inputs_and_accuracy_gain():
    m = refcomp.load(refcomp.data.default_data_dir() / "digits_cnn.h5")
    xc, _ = load_split("calib")
    xt, yt = load_split("test")
    mp = pca_model(m, 0.6, layers="all")
    mr = refit_coordinates(mp, xc, original=m, inputs="original")
    acc = lambda mod: np.mean(np.argmax(mod(xt), axis=1) == yt)   # noqa: E731
    assert acc(mr) > acc(mp)
    for p, layer in mr.named_layers():
        w = layer.weights.get("W")
        if isinstance(w, PCAWeight):
            assert w.info["refit"]["inputs"] == "original"


def test_refit_is_least_squares_on_a_dense_layer():
    """One dense layer, full calibration: the refit equals numpy's lstsq solution."""
    rng = np.random.default_rng(0)
    W = rng.standard_normal((6, 10)).astype(np.float64)
    b = rng.standard_normal(6)
    m = Model([Layer("dense", weights={"W": W, "b": b})], input_shape=(10,))
    x = rng.standard_normal((50, 10)) * np.linspace(0.2, 3, 10)   # anisotropic inputs
    w = pca_filters(W, n_components=3)
    mp = m.replace_weights({("0", "W"): w})
    mr = refit_coordinates(mp, x, original=m)
    wr = mr.get_layer("0").weights["W"]
    F = x @ w.basis.T
    target = x @ W.T - (x @ w.mean)[:, None]
    Y_ls = np.linalg.lstsq(F, target, rcond=None)[0].T
    np.testing.assert_allclose(wr.coords, Y_ls, rtol=1e-8, atol=1e-10)


def test_refit_bad_input():
    m = refcomp.load(refcomp.data.default_data_dir() / "digits_cnn.h5")
    mp = pca_model(m, 0.8)
    xc, _ = load_split("calib")
    with pytest.raises(ShapeError, match="x_calib"):
        refit_coordinates(mp, xc.reshape(-1, 64), original=m)
    with pytest.raises(ShapeError, match="x_calib"):
        refit_coordinates(mp, xc[:, :7], original=m)
    with pytest.raises(ShapeError, match="x_calib"):
        refit_coordinates(mp, xc.astype(np.float64), original=m)
    with pytest.raises(ShapeError, match="empty"):
        refit_coordinates(mp, xc[:0], original=m)
    with pytest.raises(refcomp.DTypeError):
        refit_coordinates(mp, xc.tolist(), original=m)
    with pytest.raises(ParameterError, match="no PCAWeight"):
        refit_coordinates(m, xc, original=m)
    other = refcomp.load(refcomp.data.default_data_dir() / "digits_mlp.h5")
    with pytest.raises(ParameterError, match="structure"):
        refit_coordinates(mp, xc, original=other)
    with pytest.raises(ParameterError, match="inputs"):
        refit_coordinates(mp, xc, original=m, inputs="both")
    with pytest.raises(ParameterError, match="rcond"):
        refit_coordinates(mp, xc, original=m, rcond=2.0)
    with pytest.raises(ParameterError, match="Model"):
        refit_coordinates(mp, xc, original="digits_cnn.h5")
