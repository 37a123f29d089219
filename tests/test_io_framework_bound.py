"""refcomp.testing.framework_bound: the derived tolerance of the import tests.

Checks that the bound's float64 values are the model's function (so the
bound is built around the right trajectory, gate orders included) and that a
float32 evaluation in another summation order (refcomp's precision="fast":
NumPy/BLAS in float32, NumPy's exp/tanh) stays within the one-sided bound.
"""

import numpy as np
import pytest

from refcomp import Layer, Model, ParameterError
from refcomp.testing.framework_bound import _propagate, framework_error_bound


def _models():
    rng = np.random.default_rng(11)
    r = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    H = 5
    image = Model([
        Layer("reshape", attrs={"shape": (2, 6, 6)}),
        Layer("conv2d", attrs={"padding": 1, "stride": 2},
              weights={"W": r(4, 2, 3, 3), "b": r(4)}),
        Layer("batch_norm", weights={"gamma": r(4), "beta": r(4), "mean": r(4),
                                     "var": np.abs(r(4)) + 0.5}, attrs={"eps": 1e-3}),
        Layer("activation", attrs={"function": "tanh"}),
        Layer("residual", layers=[
            Layer("conv2d", attrs={"padding": 1}, weights={"W": r(4, 4, 3, 3)}),
            Layer("activation", attrs={"function": "relu"})]),
        Layer("avg_pool2d", attrs={"size": 2, "stride": 1, "padding": 1,
                                   "count_include_pad": False}),
        Layer("max_pool2d", attrs={"size": 2}),
        Layer("flatten"),
        Layer("dense", weights={"W": r(6, 16), "b": r(6)}),
        Layer("activation", attrs={"function": "sigmoid"}),
        Layer("activation", attrs={"function": "softmax"}),
    ], input_shape=(72,))
    seq = Model([
        Layer("simple_rnn", weights={"W_ih": r(H, 3), "W_hh": r(H, H) / 3, "b_ih": r(H)}),
        Layer("gru", attrs={"reset_after": False},
              weights={"W_ih": r(3 * H, H), "W_hh": r(3 * H, H), "b_ih": r(3 * H),
                       "b_hh": r(3 * H)}),
        Layer("gru", weights={"W_ih": r(3 * H, H), "W_hh": r(3 * H, H), "b_ih": r(3 * H),
                              "b_hh": r(3 * H)}),
        Layer("lstm", attrs={"return_sequences": False},
              weights={"W_ih": r(4 * H, H), "W_hh": r(4 * H, H), "b_ih": r(4 * H),
                       "b_hh": r(4 * H)}),
        Layer("dense", weights={"W": r(4, H), "b": r(4)}),
        Layer("activation", attrs={"function": "softmax"}),
    ], input_shape=(7, 3))
    return [(image, r(20, 72)), (seq, r(20, 7, 3))]


@pytest.mark.parametrize("i", [0, 1], ids=["image", "recurrent"])
def test_bound_values_are_the_model_function(i):
    model, x = _models()[i]
    v, e = _propagate(model, x, 4)
    m64 = Model([_as64(l) for l in model.layers])
    # refcomp's reference on float64 weights and input: the same real function
    np.testing.assert_allclose(v, m64(x.astype(np.float64)), rtol=1e-12, atol=1e-12)
    assert np.all(e > 0) and np.all(np.isfinite(e))


@pytest.mark.parametrize("i", [0, 1], ids=["image", "recurrent"])
def test_float32_evaluation_within_one_sided_bound(i):
    model, x = _models()[i]
    v, e = _propagate(model, x, 4)
    for y in (model(x), model(x, precision="fast")):
        assert np.all(np.abs(y.astype(np.float64) - v) <= e)
    bound = framework_error_bound(model, x)
    assert np.all(np.abs(model(x, precision="fast") - model(x)) <= bound)


def test_refused_by_name():
    conv = Model([Layer("conv2d", weights={"W": np.zeros((2, 1, 3, 3), np.float32)})])
    x = np.zeros((1, 1, 5, 5), np.float32)
    for alg in ("winograd", "fft"):
        with pytest.raises(ParameterError, match=f"layer 0 \\(conv2d.*'{alg}' algorithm"):
            _propagate(conv, x, 4, conv_algorithm=alg)
    elu = Model([Layer("activation", attrs={"function": "elu"})])
    with pytest.raises(ParameterError, match="activation 'elu'"):
        framework_error_bound(elu, np.zeros((1, 2), np.float32))


def _as64(layer):
    w = {k: (v if k == "index_map" else np.asarray(v, np.float64))
         for k, v in layer.weights.items()}
    return Layer(layer.kind, name=layer.name, attrs=dict(layer.attrs), weights=w,
                 layers=None if layer.layers is None else [_as64(s) for s in layer.layers])
