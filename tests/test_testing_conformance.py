"""refcomp.testing.conformance: the derived bound is sound and useful.

Sound: float32 evaluations in four summation orders (tests/float32_eval.py,
written from the layer definitions), PyTorch's and ONNX Runtime's float32
results land within the bound on hypothesis-drawn models and layers of
every kind (thousands of output elements), and float16 evaluations within
the float16 bound.

Useful: deliberately wrong implementations, each written independently
(PyTorch modules loaded the wrong way, NumPy or SciPy code), fail, and
the diagnosis names the mistake.
"""

import numpy as np
import pytest
from hypothesis import given, settings

import float32_eval as fe
from refcomp import Layer, Model, ParameterError
from refcomp.testing import assert_conforms, check_conforms, reference_and_bound
from refcomp.testing.strategies import layers, models

f32 = np.float32


# -- soundness ---------------------------------------------------------------------------
def _model_within_bound_in_every_order(model, x):
    """Output elements checked: the float32 evaluation in each summation order
    lies within the derived bound."""
    v, bound = reference_and_bound(model, x)
    n = 0
    for order in fe.ORDERS:
        y = fe.run_model(model, x, order).astype(np.float64)
        assert np.all(np.abs(y - v) <= bound), order
        n += y.size
    return n


def _layer_within_bound_in_every_order(layer, x):
    v, bound = reference_and_bound(Model([layer]), x)
    for order in fe.ORDERS:
        y = fe.run_layer(layer, x, order).astype(f32).astype(np.float64)
        assert np.all(np.abs(y - v) <= bound), order


def test_float32_summation_orders_within_bound():
    count = {"elements": 0}

    @settings(max_examples=100)
    @given(models())
    def run(case):
        count["elements"] += _model_within_bound_in_every_order(*case)
    run()
    assert count["elements"] >= 2000            # thousands of output elements checked


@pytest.mark.slow
def test_bounds_sound_on_thousands_of_drawn_cases():
    """Issue 21's soundness criterion at its stated scale: 1,000 drawn models and
    1,000 drawn single layers (every kind, corner cases, ONNX options), each in the
    four float32 summation orders, all within the derived bound (about 1 min)."""
    count = {"models": 0, "layers": 0}

    @settings(max_examples=1000)
    @given(models())
    def run_models(case):
        _model_within_bound_in_every_order(*case)
        count["models"] += 1

    @settings(max_examples=1000)
    @given(layers(corner_cases=True, onnx_options=True))
    def run_layers(case):
        _layer_within_bound_in_every_order(*case)
        count["layers"] += 1
    run_models()
    run_layers()
    assert count["models"] >= 1000 and count["layers"] >= 1000, count


@settings(max_examples=100)
@given(layers(corner_cases=True, onnx_options=True))
def test_every_layer_kind_within_bound_in_every_order(case):
    _layer_within_bound_in_every_order(*case)


@pytest.mark.frameworks
@settings(max_examples=60)
@given(models())
def test_torch_and_onnxruntime_within_bound(case):
    pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    from refcomp.validate._common import NotExpressible
    from refcomp.validate._onnx_run import onnxruntime_forward
    from refcomp.validate._torch_run import torch_forward
    model, x = case
    for run in (torch_forward, onnxruntime_forward):
        try:
            y = run(model, x)
        except NotExpressible:
            continue
        assert check_conforms(y, model, x, diagnose_failure=False).passed, run.__name__


def test_float16_evaluation_within_float16_bound():
    rng = np.random.default_rng(3)
    n, k, o = 500, 64, 8
    W = rng.standard_normal((o, k)).astype(f32) / 8
    b = rng.standard_normal(o).astype(f32)
    x = rng.standard_normal((n, k)).astype(f32)
    model = Model([Layer("dense", weights={"W": W, "b": b}),
                   Layer("activation", attrs={"function": "tanh"})])
    v, bound = reference_and_bound(model, x, dtype="float16")
    h = np.float16
    P = x.astype(h)[:, None, :] * W.astype(h)
    acc = P[..., 0]
    for j in range(1, k):
        acc = acc + P[..., j]
    y = np.tanh(acc + b.astype(h)).astype(np.float64)
    assert np.all(np.abs(y - v) <= bound)
    assert np.max(np.abs(y - v) / bound) > 1e-3          # and the bound is not vacuous
    v32, bound32 = reference_and_bound(model, x)
    assert np.all(bound32 < bound)


def test_refused_by_name():
    model = Model([Layer("conv2d", weights={"W": np.ones((1, 1, 3, 3), f32)})])
    x = np.ones((1, 1, 4, 4), f32)
    for alg in ("winograd", "fft"):
        with pytest.raises(ParameterError, match=f"'{alg}' algorithm"):
            reference_and_bound(model, x, conv_algorithm=alg)
    with pytest.raises(ParameterError, match="no unit roundoff"):
        reference_and_bound(model, x, dtype="int8")


def test_report_of_a_passing_and_a_failing_candidate():
    rng = np.random.default_rng(1)
    W = rng.standard_normal((3, 5)).astype(f32)
    model = Model([Layer("dense", weights={"W": W})], name="tiny")
    x = rng.standard_normal((4, 5)).astype(f32)
    ok = assert_conforms(lambda x: x @ W.T, model, x)
    assert ok.passed and ok.n_out == 0 and 0 <= ok.worst_ratio <= 1
    y = x @ W.T
    y[2, 1] += 1e-3
    with pytest.raises(AssertionError) as exc:
        assert_conforms(y, model, x)
    msg = str(exc.value)
    assert "1 of 12 elements out of bound" in msg
    assert "at index (2, 1) (input sample 2)" in msg
    assert "no usual mistake reproduces the candidate" in msg
    with pytest.raises(AssertionError, match="shape"):
        assert_conforms(y[:, :2], model, x)


# -- usefulness: wrong implementations are caught and diagnosed ----------------------------
def _r(rng, *shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(f32)


def _torch():
    return pytest.importorskip("torch")


def _diagnosis(candidate, model, x):
    with pytest.raises(AssertionError) as exc:
        assert_conforms(candidate, model, x)
    msg = str(exc.value)
    assert "elements out of bound" in msg or "shape" in msg
    return msg.split("diagnosis: ", 1)[1]


def _first(diag):
    """The mistake named first (the tightest fit)."""
    return diag.split(":", 1)[0]


def _rnn_model(rng, kind, H=4, F=3, **attrs):
    G = {"lstm": 4, "gru": 3}[kind]
    w = {"W_ih": _r(rng, G * H, F, scale=0.5), "W_hh": _r(rng, G * H, H, scale=0.5),
         "b_ih": _r(rng, G * H, scale=0.5), "b_hh": _r(rng, G * H, scale=0.5)}
    return Model([Layer(kind, attrs=dict(attrs, return_sequences=True), weights=w)])


def _torch_rnn(torch, kind, W_ih, W_hh, b_ih, b_hh):
    H, F = W_hh.shape[1], W_ih.shape[1]
    mod = (torch.nn.LSTM if kind == "lstm" else torch.nn.GRU)(F, H, batch_first=True)
    with torch.no_grad():
        for name, a in (("weight_ih_l0", W_ih), ("weight_hh_l0", W_hh), ("bias_ih_l0", b_ih),
                        ("bias_hh_l0", b_hh)):
            getattr(mod, name).copy_(torch.from_numpy(np.ascontiguousarray(a, f32)))

    def run(x):
        with torch.no_grad():
            return mod(torch.from_numpy(x))[0].numpy()
    return run


def test_diagnoses_lstm_gate_order_onnx_weights_read_as_pytorch():
    torch = _torch()
    from refcomp.convert import lstm_to_onnx
    rng = np.random.default_rng(10)
    model = _rnn_model(rng, "lstm")
    w = model.layers[0].weights
    W, R, B = lstm_to_onnx(w["W_ih"], w["W_hh"], w["b_ih"], w["b_hh"])
    cand = _torch_rnn(torch, "lstm", W[0], R[0], B[0, :16], B[0, 16:])
    diag = _diagnosis(cand, model, _r(rng, 6, 5, 3))
    assert _first(diag) == "lstm gate order" and "ONNX order i,o,f,c" in diag


def test_diagnoses_gru_gate_order_keras_weights_read_as_pytorch():
    torch = _torch()
    from refcomp.convert import gru_to_onnx
    rng = np.random.default_rng(11)
    model = _rnn_model(rng, "gru")
    w = model.layers[0].weights
    W, R, B = gru_to_onnx(w["W_ih"], w["W_hh"], w["b_ih"], w["b_hh"])
    cand = _torch_rnn(torch, "gru", W[0], R[0], B[0, :12], B[0, 12:])
    diag = _diagnosis(cand, model, _r(rng, 6, 5, 3))
    assert _first(diag) == "gru gate order" and "z,r,h" in diag


def test_diagnoses_gru_reset_after():
    torch = _torch()
    rng = np.random.default_rng(12)
    model = _rnn_model(rng, "gru", reset_after=False)         # Cho et al. / Keras 2 form
    w = model.layers[0].weights
    cand = _torch_rnn(torch, "gru", w["W_ih"], w["W_hh"], w["b_ih"], w["b_hh"])
    diag = _diagnosis(cand, model, _r(rng, 6, 5, 3))
    assert _first(diag) == "gru reset_after"


def test_diagnoses_transposed_dense_kernel():
    rng = np.random.default_rng(13)
    W = _r(rng, 5, 7)
    model = Model([Layer("dense", weights={"W": W, "b": _r(rng, 5)})])
    kernel = np.ascontiguousarray(W.T)                        # Keras (in, out)
    b = model.layers[0].weights["b"]
    diag = _diagnosis(lambda x: x @ kernel.reshape(5, 7).T + b, model, _r(rng, 8, 7))
    assert _first(diag) == "transposed"


def _conv_model(rng, C=3, O=4, k=3, **attrs):
    return Model([Layer("conv2d", attrs=attrs,
                        weights={"W": _r(rng, O, C, k, k, scale=0.3), "b": _r(rng, O)})])


def _torch_conv(torch, model, x, pad=None, **kw):
    w = model.layers[0].weights
    t = torch.from_numpy(np.ascontiguousarray(x))
    if pad is not None:
        t = torch.nn.functional.pad(t, pad)
    y = torch.nn.functional.conv2d(t, torch.from_numpy(w["W"]), torch.from_numpy(w["b"]), **kw)
    return y.numpy()


def test_diagnoses_nhwc_input_read_as_nchw():
    torch = _torch()
    rng = np.random.default_rng(14)
    model = _conv_model(rng, padding=1)
    x = _r(rng, 2, 3, 5, 6)

    def cand(x):                    # the buffer handed over as NHWC, converted to NCHW
        n, c, h, w = x.shape
        return _torch_conv(torch, model, x.reshape(n, h, w, c).transpose(0, 3, 1, 2),
                           padding=1)
    assert _first(_diagnosis(cand, model, x)) == "input layout"


def test_diagnoses_flatten_order():
    torch = _torch()
    rng = np.random.default_rng(15)
    conv = _conv_model(rng, padding=1).layers[0]
    Wd = _r(rng, 4, 4 * 5 * 6, scale=0.1)
    model = Model([conv, Layer("flatten"), Layer("dense", weights={"W": Wd})])
    x = _r(rng, 3, 3, 5, 6)

    def cand(x):                    # Keras-style: flatten in (h, w, c) order
        y = _torch_conv(torch, Model([conv]), x, padding=1)
        return y.transpose(0, 2, 3, 1).reshape(3, -1) @ Wd.T
    assert _first(_diagnosis(cand, model, x)) == "flatten order"


def test_diagnoses_padding_off_by_one():
    torch = _torch()
    rng = np.random.default_rng(16)
    model = _conv_model(rng, padding=1)
    x = _r(rng, 2, 3, 6, 6)
    diag = _diagnosis(lambda x: _torch_conv(torch, model, x, pad=(2, 0, 2, 0)), model, x)
    assert _first(diag) == "padding" and "shifted" in diag


def test_diagnoses_same_padding_on_the_wrong_side():
    torch = _torch()
    rng = np.random.default_rng(17)
    model = _conv_model(rng, k=2, padding="same")             # one odd pixel: TF puts it after
    x = _r(rng, 2, 3, 5, 5)
    diag = _diagnosis(lambda x: _torch_conv(torch, model, x, pad=(1, 0, 1, 0)), model, x)
    assert _first(diag) == "same padding side"


@pytest.mark.parametrize("mistake", ["bias twice", "bias missing"])
def test_diagnoses_bias(mistake):
    rng = np.random.default_rng(18)
    W, b = _r(rng, 6, 9), _r(rng, 6)
    model = Model([Layer("dense", weights={"W": W, "b": b}),
                   Layer("activation", attrs={"function": "tanh"})])
    k = 2 if mistake == "bias twice" else 0
    diag = _diagnosis(lambda x: np.tanh(x @ W.T + k * b), model, _r(rng, 5, 9))
    assert _first(diag) == mistake


def test_diagnoses_count_include_pad():
    torch = _torch()
    rng = np.random.default_rng(19)
    model = Model([Layer("avg_pool2d", attrs={"size": 3, "stride": 1, "padding": 1,
                                              "count_include_pad": False})])
    x = _r(rng, 2, 2, 5, 5)

    def cand(x):
        return torch.nn.functional.avg_pool2d(torch.from_numpy(x), 3, 1, padding=1,
                                              count_include_pad=True).numpy()
    assert _first(_diagnosis(cand, model, x)) == "count_include_pad"


def test_diagnoses_batch_norm_eps():
    torch = _torch()
    rng = np.random.default_rng(20)
    c = 4
    w = {"gamma": _r(rng, c), "beta": _r(rng, c), "mean": _r(rng, c),
         "var": np.full(c, 0.01, f32)}
    model = Model([Layer("batch_norm", attrs={"eps": 1e-5}, weights=w)])
    x = _r(rng, 3, c, 2, 2)

    def cand(x):                    # Keras' default eps
        t = {k: torch.from_numpy(v) for k, v in w.items()}
        return torch.nn.functional.batch_norm(torch.from_numpy(x), t["mean"], t["var"],
                                              t["gamma"], t["beta"], eps=1e-3).numpy()
    assert _first(_diagnosis(cand, model, x)) == "batch norm eps"


def test_diagnoses_flipped_kernel():
    signal = pytest.importorskip("scipy.signal")
    rng = np.random.default_rng(21)
    W = _r(rng, 1, 1, 3, 3)
    model = Model([Layer("conv2d", weights={"W": W})])
    x = _r(rng, 2, 1, 6, 6)

    def cand(x):                    # true convolution (kernel flipped)
        return np.stack([signal.convolve2d(s[0], W[0, 0], mode="valid")[None]
                         for s in x]).astype(f32)
    assert _first(_diagnosis(cand, model, x)) == "kernel flipped"


def test_diagnoses_hard_sigmoid_variant():
    rng = np.random.default_rng(22)
    model = Model([Layer("activation", attrs={"function": "hard_sigmoid"})])   # keras3
    x = _r(rng, 4, 6, scale=2)
    diag = _diagnosis(lambda x: np.clip(f32(0.2) * x + f32(0.5), 0, 1), model, x)
    assert _first(diag) == "hard_sigmoid"


@pytest.mark.frameworks
def test_onnx_only_kinds_torch_and_onnxruntime_within_bound_and_tight():
    """conv1d, N-D pooling (dilations, ceil_mode, asymmetric pads) and Gemm alpha / beta:
    PyTorch's and ONNX Runtime's float32 results land within the bound, and the bound is
    not vacuous (the worst observed error / bound of the sums of products exceeds 1e-2)."""
    pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    from refcomp.validate._common import NotExpressible
    from refcomp.validate._onnx_run import onnxruntime_forward
    from refcomp.validate._torch_run import torch_forward
    worst = {}

    @settings(max_examples=120, deadline=None)
    @given(layers(kinds=("conv1d", "max_pool", "avg_pool", "dense"), onnx_options=True))
    def run(case):
        layer, x = case
        model = Model([layer])
        v, bound = reference_and_bound(model, x)
        for fn in (torch_forward, onnxruntime_forward):
            try:
                y = fn(model, x)
            except NotExpressible:
                continue
            r = np.abs(y.astype(np.float64) - v) / bound
            assert np.all(r <= 1), (fn.__name__, layer.kind, layer.attrs)
            worst[layer.kind] = max(worst.get(layer.kind, 0.0), float(r.max(initial=0)))
    run()
    assert set(worst) == {"conv1d", "max_pool", "avg_pool", "dense"}
    assert worst["dense"] > 1e-2 and worst["conv1d"] > 1e-2 and worst["avg_pool"] > 1e-3
    assert worst["max_pool"] == 0.0                     # a selection is exact


def _log_softmax32(z, axis, order, shift_first):
    """float32 log_softmax: the shift, np.exp, the sum in ``order``, np.log, then
    (z - m) - L (``shift_first``, TensorFlow) or z - (m + L) (PyTorch's CPU kernel)."""
    z = np.moveaxis(z.astype(f32), axis, -1)
    m = z.max(axis=-1, keepdims=True)
    t = z - m
    L = np.log(fe.sum_terms(np.exp(t), order))[..., None]
    y = t - L if shift_first else z - (m + L)
    return np.moveaxis(y, -1, axis)


def test_log_softmax_within_bound_float32_orders_and_torch():
    """log_softmax alone and after a dense layer (input error carried): float32 in four
    summation orders and both subtraction orders, and torch.log_softmax, land within the
    bound on hypothesis-drawn inputs; the bound is not vacuous."""
    from hypothesis import strategies as st
    from hypothesis.extra.numpy import arrays
    torch = pytest.importorskip("torch")
    worst = {"n": 0, "ratio": 0.0}

    @st.composite
    def cases(draw):
        n, k = draw(st.integers(1, 4)), draw(st.integers(1, 12))
        scale = draw(st.sampled_from([1.0, 30.0, 1e3]))
        x = draw(arrays(f32, (n, k), elements=st.floats(-1, 1, width=32))) * f32(scale)
        dense = draw(st.booleans())
        if dense:
            o = draw(st.integers(1, 9))
            W = draw(arrays(f32, (o, k), elements=st.floats(-2, 2, width=32)))
            b = draw(arrays(f32, (o,), elements=st.floats(-2, 2, width=32)))
            return x, (W, b), -1
        return x, None, draw(st.sampled_from([0, 1, -1]))

    @settings(max_examples=150, deadline=None)
    @given(cases())
    def run(case):
        x, wb, axis = case
        act = Layer("activation", attrs={"function": "log_softmax", "axis": axis})
        layers_ = ([Layer("dense", weights={"W": wb[0], "b": wb[1]})] if wb else []) + [act]
        model = Model(layers_)
        v, bound = reference_and_bound(model, x)
        outs = []
        for order in fe.ORDERS:
            z = fe.dot(x, wb[0], wb[1], order).astype(f32) if wb else x
            outs += [_log_softmax32(z, axis, order, s) for s in (True, False)]
        with torch.no_grad():
            z = torch.from_numpy(x)
            if wb:
                z = torch.nn.functional.linear(z, torch.from_numpy(wb[0]), torch.from_numpy(wb[1]))
            outs.append(torch.log_softmax(z, dim=axis).numpy())
        for y in outs:
            r = np.abs(y.astype(np.float64) - v) / bound
            assert np.all(r <= 1), (x, wb, axis)
            worst["ratio"] = max(worst["ratio"], float(r.max()))
            worst["n"] += y.size
    run()
    assert worst["n"] >= 2000 and worst["ratio"] > 1e-2, worst


def test_log_softmax_bound_by_hand():
    # two equal logits: y = -log 2 exactly in the reals; every term of the rule written out
    x = np.array([[3.0, 3.0]], f32)
    model = Model([Layer("activation", attrs={"function": "log_softmax"})])
    v, bound = reference_and_bound(model, x)
    u, k, L = 2.0 ** -24, 4, np.log(2.0)
    e = (2 * k * u) + (2 * u / (1 - 2 * u)) + 2 * k * u * L + u * (3.0 + 2 * L)
    np.testing.assert_allclose(v, [[-L, -L]], rtol=1e-15)
    np.testing.assert_allclose(bound, e, rtol=1e-6)        # the bound on |y - exact|
