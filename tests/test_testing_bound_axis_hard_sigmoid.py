"""Regressions of the derived bound (issue 21 audit): batch norm on its ``axis``
attribute (ONNX BatchNormalization on rank 3 / 5 inputs) and ONNX HardSigmoid
with its own ``alpha`` / ``beta``.

Ground truth: float32 evaluations written here and in tests/float32_eval.py
from the operator definitions (ONNX BatchNormalization, HardSigmoid), not
refcomp's layers.
"""

import numpy as np
import pytest

import float32_eval as fe
from refcomp import Layer, Model
from refcomp.testing import check_conforms, reference_and_bound

f32 = np.float32


def _bn_layer(c, axis, rng, spread=True):
    gamma = (rng.standard_normal(c) * (10.0 ** np.arange(c) if spread else 1)).astype(f32)
    return Layer("batch_norm", attrs={"eps": 1e-5, "axis": axis},
                 weights={"gamma": gamma, "beta": rng.standard_normal(c).astype(f32),
                          "mean": rng.standard_normal(c).astype(f32),
                          "var": rng.uniform(0.1, 2.0, c).astype(f32)})


def _bn_float32_forms(x, w, eps, axis):
    """ONNX BatchNormalization in float32, channel on ``axis``: the literal form,
    the folded scale-and-shift form, and a multiply-by-rsqrt form."""
    sh = [1] * x.ndim
    sh[axis] = -1
    g, b, m, v = (w[n].reshape(sh) for n in ("gamma", "beta", "mean", "var"))
    e = f32(eps)
    s = g / np.sqrt(v + e)
    return [(x - m) / np.sqrt(v + e) * g + b,
            (x - m) * s + b,
            x * s + (b - m * s),
            (x - m) * (g * (f32(1) / np.sqrt(v + e))) + b]


@pytest.mark.parametrize("shape, axis", [((2, 3, 5), 1), ((2, 3, 3), 1), ((2, 3, 3), -2),
                                         ((2, 4, 3, 2, 2), 1), ((3, 2, 4), 2),
                                         ((2, 3, 3), 0)])
def test_batch_norm_bound_follows_the_axis_attribute(shape, axis):
    rng = np.random.default_rng(sum(shape) + axis)
    ax = axis % len(shape)
    layer = _bn_layer(shape[ax], axis, rng)
    x = (rng.standard_normal(shape) * 4).astype(f32)
    v, bound = reference_and_bound(Model([layer]), x)     # (2,3,5) axis=1 used to raise
    assert bound.shape == x.shape and np.all(bound > 0)
    for y in _bn_float32_forms(x, layer.weights, 1e-5, ax):
        assert np.all(np.abs(y.astype(np.float64) - v) <= bound)
    for order in fe.ORDERS:
        y = fe.run_layer(layer, x, order).astype(np.float64)
        assert np.all(np.abs(y - v) <= bound)
    # the bound follows the channels along the layer's axis: gamma = 10**k on channel k,
    # mean = beta = 0, x = 1 gives a bound 10x larger per channel, constant elsewhere
    c = shape[ax]
    lay = Layer("batch_norm", attrs={"eps": 0.0, "axis": axis},
                weights={"gamma": (10.0 ** np.arange(c)).astype(f32), "beta": np.zeros(c, f32),
                         "mean": np.zeros(c, f32), "var": np.ones(c, f32)})
    _, bd = reference_and_bound(Model([lay]), np.ones(shape, f32))
    per = np.moveaxis(bd, ax, 0).reshape(c, -1)
    assert np.allclose(per, per[:, :1], rtol=1e-12)
    assert np.allclose(per[1:, 0] / per[:-1, 0], 10.0, rtol=1e-6)


def test_batch_norm_axis_1_after_conv1d_within_bound():
    rng = np.random.default_rng(5)
    W = rng.standard_normal((3, 2, 3)).astype(f32)
    model = Model([Layer("conv1d", weights={"W": W}), _bn_layer(3, 1, rng)])
    x = rng.standard_normal((2, 2, 7)).astype(f32)
    v, bound = reference_and_bound(model, x)
    for order in fe.ORDERS:
        assert np.all(np.abs(fe.run_model(model, x, order).astype(np.float64) - v) <= bound)


def _dense_hsig(alpha, beta, n_in=256, seed=7):
    rng = np.random.default_rng(seed)
    W = (rng.standard_normal((4, n_in)) / n_in).astype(f32)
    x = rng.standard_normal((6, n_in)).astype(f32)
    dense = Layer("dense", weights={"W": W})
    hs = Layer("activation", attrs={"function": "hard_sigmoid", "variant": "onnx",
                                    "alpha": alpha, "beta": beta})
    return dense, hs, x


def test_onnx_hard_sigmoid_bound_uses_alpha():
    dense, hs, x = _dense_hsig(4.0, 0.5)
    x = x * f32(0.25)
    vd, bd = reference_and_bound(Model([dense]), x)
    assert np.all(np.abs(4 * vd) < 0.45)                   # every output on the linear piece
    z = vd + 0.9 * bd                                      # a dense output within its bound
    model = Model([dense, hs])
    v, bound = reference_and_bound(model, x)
    good = np.clip(np.float64(f32(4.0)) * z + 0.5, 0, 1)   # ONNX HardSigmoid of it
    assert np.all(np.abs(good - v) <= bound)
    assert check_conforms(good, model, x, diagnose_failure=False).passed
    # the old bound (slope 0.2, intercept 0.5) was ~18x too small for this candidate
    old = 0.2 * bd + 3 * 2.0 ** -24 * (0.2 * np.abs(vd) + 0.5) + 2.0 ** -126
    assert np.max(np.abs(good - v) / old) > 10
    # a deliberately wrong slope (Keras 2's 0.2 instead of alpha) fails
    wrong = np.clip(0.2 * vd + 0.5, 0, 1)
    assert not check_conforms(wrong, model, x, diagnose_failure=False).passed


@pytest.mark.parametrize("alpha, beta", [(4.0, 0.5), (-0.5, 0.25), (1.0 / 6.0, 0.5),
                                         (0.3, -2.5), (7.9, 3.0)])
def test_onnx_hard_sigmoid_float32_evaluations_within_bound(alpha, beta):
    dense, hs, x = _dense_hsig(alpha, beta, n_in=64, seed=3)
    x = x * 8
    model = Model([dense, hs])
    v, bound = reference_and_bound(model, x)
    a, b = f32(alpha), f32(beta)
    for order in fe.ORDERS:
        y = fe.run_model(model, x, order)
        assert np.all(np.abs(y.astype(np.float64) - v) <= bound), order
        z = fe.run_model(Model([dense]), x, order)
        lit = np.minimum(np.maximum(a * z + b, f32(0)), f32(1))   # ONNX text, float32
        assert np.all(np.abs(lit.astype(np.float64) - v) <= bound), order
