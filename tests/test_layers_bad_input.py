"""Every public function of refcomp.layers (and refcomp.convert) rejects bad
array arguments with a refcomp error naming the argument, never an
AttributeError/TypeError from deep inside.

For each function a valid call is described once (its array arguments by
shape, plus the other keywords); each array argument is then replaced in
turn by a list, a Python float, an integer array, a float16 array, an array
of the other float dtype, and arrays of wrong ndim or shape.
"""

import re

import numpy as np
import pytest

import refcomp.layers as L
from refcomp import DTypeError, ParameterError, RefcompError, ShapeError, convert

f32 = np.float32


def _rnn(fn, gates, states=("h0",), **kw):
    H, F = 2, 4
    arrays = {"x": ((2, 3, F), [(2, 3), (2, 3, F + 1), (2, 3, F, 1)]),
              "W_ih": ((gates * H, F), [(gates * H, F + 1), (gates * H,), (gates * H + 1, F)]),
              "W_hh": ((gates * H, H), [(gates * H, H + 1), (gates * H + 1, H), (gates * H,)]),
              "b_ih": ((gates * H,), [(gates * H + 1,), (1, gates * H)]),
              "b_hh": ((gates * H,), [(gates * H - 1,), (1, gates * H)])}
    for s in states:
        arrays[s] = ((2, H), [(3, H), (2, H + 1), (2,)])
    return fn, arrays, kw


# name -> (function, {arg: (valid shape, [bad shapes -> ShapeError])}, other keywords)
SPECS = {
    "dense": (L.dense, {"x": ((2, 3), [(2, 4), (3,), (2, 3, 1)]),
                        "W": ((4, 3), [(4, 5), (4,), (4, 3, 1)]),
                        "b": ((4,), [(5,), (4, 1), ()])}, {}),
    "conv2d": (L.conv2d, {"x": ((1, 2, 5, 5), [(1, 3, 5, 5), (2, 5, 5), (1, 2, 5, 5, 1)]),
                          "W": ((3, 2, 3, 3), [(3, 1, 3, 3), (3, 2, 3), (3, 2, 8, 8)]),
                          "b": ((3,), [(2,), (3, 1)])}, {"padding": 1}),
    "max_pool2d": (L.max_pool2d, {"x": ((1, 2, 4, 4), [(2, 4, 4), (1, 2, 4, 4, 1), (1, 2, 1, 1)])},
                   {"size": 2}),
    "avg_pool2d": (L.avg_pool2d, {"x": ((1, 2, 4, 4), [(2, 4, 4), (1, 2, 4, 4, 1), (1, 2, 1, 1)])},
                   {"size": 2}),
    "conv1d": (L.conv1d, {"x": ((1, 2, 5), [(1, 3, 5), (2, 5), (1, 2, 5, 1)]),
                          "W": ((3, 2, 3), [(3, 1, 3), (3, 2), (3, 2, 8)]),
                          "b": ((3,), [(2,), (3, 1)])}, {"padding": 1}),
    "gemm": (L.gemm, {"A": ((2, 3), [(2, 4), (3,), (2, 3, 1)]),
                      "B": ((3, 4), [(5, 4), (4,), (3, 4, 1)]),
                      "C": ((4,), [(5,), (3, 4), (2, 4, 1)])}, {}),
    "matmul": (L.matmul, {"A": ((2, 2, 3), [(2, 2, 4), (), (3, 2, 3)]),
                          "B": ((2, 3, 4), [(2, 5, 4), (), (3, 3, 4)])}, {}),
    "max_pool": (L.max_pool, {"x": ((1, 2, 4, 4), [(2, 4), (1, 2, 1, 1), (1, 2, 4, 4, 1, 1)])},
                 {"size": 2}),
    "avg_pool": (L.avg_pool, {"x": ((1, 2, 4), [(2, 4), (1, 2, 1), (1, 2, 4, 4, 1, 1)])},
                 {"size": 2}),
    "max_pool1d": (L.max_pool1d, {"x": ((1, 2, 4), [(2, 4), (1, 2, 1), (1, 2, 4, 4)])},
                   {"size": 2}),
    "avg_pool1d": (L.avg_pool1d, {"x": ((1, 2, 4), [(2, 4), (1, 2, 1), (1, 2, 4, 4)])},
                   {"size": 2}),
    "log_softmax": (L.log_softmax, {"x": ((2, 3), [])}, {}),
    "flatten": (L.flatten, {"x": ((2, 3, 4), [()])}, {}),
    "reshape": (L.reshape, {"x": ((2, 6), [(), (2, 5)])}, {"shape": (2, 3)}),
    "relu": (L.relu, {"x": ((2, 3), [])}, {}),
    "sigmoid": (L.sigmoid, {"x": ((2, 3), [])}, {}),
    "hard_sigmoid": (L.hard_sigmoid, {"x": ((2, 3), [])}, {}),
    "tanh": (L.tanh, {"x": ((2, 3), [])}, {}),
    "softmax": (L.softmax, {"x": ((2, 3), [])}, {}),
    "linear": (L.linear, {"x": ((2, 3), [])}, {}),
    "batch_norm": (L.batch_norm, {"x": ((2, 3, 4, 4), [(3,), (2, 3, 4, 4, 1), (2, 4, 4, 4)]),
                                  "gamma": ((3,), [(4,), (3, 1)]), "beta": ((3,), [(2,), ()]),
                                  "mean": ((3,), [(4,)]), "var": ((3,), [(1, 3)])},
                   {"eps": 1e-3}),
    "fold_batch_norm": (L.fold_batch_norm, {"W": ((3, 2), [(3,), (3, 2, 1)]),
                                            "b": ((3,), [(4,), (3, 1)]),
                                            "gamma": ((3,), [(4,)]), "beta": ((3,), [(2,)]),
                                            "mean": ((3,), [(3, 3)]), "var": ((3,), [()])},
                        {"eps": 1e-3}),
    "lstm": _rnn(L.lstm, 4, ("h0", "c0")),
    "gru": _rnn(L.gru, 3),
    "gru_reset_before": _rnn(L.gru, 3, reset_after=False),
    "mgu": _rnn(L.mgu, 2),
    "simple_rnn": _rnn(L.simple_rnn, 1),
    "simple_rnn_relu": _rnn(L.simple_rnn, 1, activation="relu"),
}


def test_specs_cover_every_public_layer_function():
    assert {spec[0].__name__ for spec in SPECS.values()} == set(L.__all__)


def _valid(name, dtype=f32):
    fn, arrays, kw = SPECS[name]
    rng = np.random.default_rng(0)
    args = {k: rng.uniform(0.5, 1.0, shape).astype(dtype) for k, (shape, _) in arrays.items()}
    return fn, args, kw


def _cases():
    for name, (_, arrays, _) in SPECS.items():
        multi = len(arrays) > 1
        for arg, (shape, bad_shapes) in arrays.items():
            kinds = ("list", "float", "int32", "float16", "bool") + (("other",) if multi else ())
            for kind in kinds:
                yield pytest.param(name, arg, kind, None, id=f"{name}-{arg}-{kind}")
            for bad in bad_shapes:
                yield pytest.param(name, arg, "shape", bad, id=f"{name}-{arg}-shape{bad}")


def _names(msg, word):
    return re.search(rf"(?<![A-Za-z_]){re.escape(word)}(?![A-Za-z_0-9])", msg) is not None


@pytest.mark.parametrize("name,arg,kind,bad_shape", list(_cases()))
def test_bad_array_argument(name, arg, kind, bad_shape):
    fn, args, kw = _valid(name)
    fn(**args, **kw)                                       # the valid call works
    good = args[arg]
    if kind == "list":
        args[arg], err = good.tolist(), DTypeError
    elif kind == "float":
        args[arg], err = 1.0, DTypeError
    elif kind in ("int32", "float16", "bool"):
        args[arg], err = good.astype(kind), DTypeError
    elif kind == "other":
        args[arg], err = good.astype(np.float64), DTypeError
    else:
        args[arg] = np.random.default_rng(1).uniform(0.5, 1.0, bad_shape).astype(f32)
        err = ShapeError
    with pytest.raises(err) as info:
        fn(**args, **kw)
    msg = str(info.value)
    assert isinstance(info.value, RefcompError)
    assert _names(msg, arg), msg
    bad = args[arg]
    if isinstance(bad, np.ndarray):                        # shape and dtype of the culprit
        assert str(bad.shape) in msg and str(bad.dtype) in msg, msg
    else:
        assert type(bad).__name__ in msg, msg


def test_bias_list_regression():
    # The audit's case: used to raise AttributeError ('list' has no attribute 'dtype').
    with pytest.raises(DTypeError, match=r"\bb must be a numpy.ndarray, got list"):
        L.dense(np.zeros((2, 3), f32), np.zeros((4, 3), f32), b=[0.0] * 4)


def test_batch_norm_dtype_mismatch_is_dtype_error():
    x = np.zeros((2, 3), f32)
    p32, p64 = np.ones(3, f32), np.ones(3, np.float64)
    with pytest.raises(DTypeError, match=r"var .*float64"):
        L.batch_norm(x, p32, p32, p32, p64, eps=1e-3)
    with pytest.raises(DTypeError, match=r"gamma .*float64"):
        L.fold_batch_norm(np.zeros((3, 2), f32), None, p64, p32, p32, p32, eps=1e-3)
    with pytest.raises(ShapeError, match=r"gamma .*\(4,\)"):
        L.batch_norm(x, np.ones(4, f32), p32, p32, p32, eps=1e-3)


@pytest.mark.parametrize("call", [
    lambda x: L.reshape(x, 6),
    lambda x: L.reshape(x, (2, -3)),
    lambda x: L.reshape(x, (2.0, 3)),
    lambda x: L.reshape(x, "23"),
    lambda x: L.softmax(x, axis=2),
    lambda x: L.softmax(np.array(1.0, f32), axis=1),
    lambda x: L.simple_rnn(x[None], np.zeros((1, 6), f32), np.zeros((1, 1), f32),
                           activation="gelu"),
    lambda x: L.batch_norm(x, *[np.ones(6, f32)] * 4, eps=-1.0),
    lambda x: L.hard_sigmoid(x, variant="keras1"),
    lambda x: L.hard_sigmoid(x, variant="onnx", alpha=float("nan")),
    lambda x: L.max_pool(x[None], 2, dilation=-1),
    lambda x: L.max_pool(x[None], 2, ceil_mode=2),
    lambda x: L.avg_pool(x[None], 2, dilation=0),
    lambda x: L.max_pool(x[None], 2, storage_order=2),
    lambda x: L.max_pool(x[None], 2, padding="same_middle"),
    lambda x: L.gemm(x, x.T, alpha=float("inf")),
    lambda x: L.gemm(x, x.T, trans_a=2),
    lambda x: L.flatten(x, axis=3),
    lambda x: L.log_softmax(x, axis=-3),
    lambda x: L.lstm(x[None], np.zeros((4, 6), f32), np.zeros((4, 1), f32), direction="sideways"),
    lambda x: L.lstm(x[None], np.zeros((4, 6), f32), np.zeros((4, 1), f32), clip=-1.0),
    lambda x: L.gru(x[None], np.zeros((3, 6), f32), np.zeros((3, 1), f32), update="seed001"),
    lambda x: L.gru(x[None], np.zeros((3, 6), f32), np.zeros((3, 1), f32),
                    activations=["Sigmoid", "Gelu"]),
    lambda x: L.simple_rnn(x[None], np.zeros((1, 6), f32), np.zeros((1, 1), f32),
                           sequence_lens=np.array([0])),
    lambda x: L.lstm(x[None], np.zeros((4, 6), f32), np.zeros((4, 1), f32),
                     direction="bidirectional"),
])
def test_bad_scalar_options_are_parameter_errors(call):
    with pytest.raises(ParameterError):
        call(np.zeros((2, 6), f32))


def test_softmax_0d_is_one_element_row():
    for p in ("reference", "fast"):
        assert L.softmax(np.array(3.0, f32), precision=p) == 1
        assert np.isnan(L.softmax(np.array(np.nan, f32), precision=p))


def test_reshape_accepts_int_sequences_only():
    x = np.arange(12, dtype=f32).reshape(2, 6)
    for shape in ((2, 3), [2, 3], np.array([2, 3]), (np.int64(3), 2)):
        assert L.reshape(x, shape).shape[1:] == tuple(int(s) for s in shape)


# -- converters: forward and inverse validate the same way ---------------------------
def _conv_cases():
    H, F = 2, 3
    a = lambda *s: np.ones(s, f32)                                     # noqa: E731
    d = lambda *s: np.ones(s, np.float64)                              # noqa: E731
    # (call, error, words the message must contain)
    return [
        # the audit's example: shapes (5, 3) and (7, 2) were accepted
        (lambda: convert.lstm_to_keras(a(5, 3), a(7, 2)), ShapeError, ["W_hh", "(7, 2)"]),
        (lambda: convert.lstm_to_keras(a(8, 3), a(8, 3)), ShapeError, ["W_hh", "(8, 3)"]),
        (lambda: convert.lstm_to_keras(a(7, 3), a(8, 2)), ShapeError, ["W_ih", "(7, 3)"]),
        (lambda: convert.lstm_to_keras(a(8, 3), a(8, 2), a(7)), ShapeError, ["b_ih", "(7,)"]),
        (lambda: convert.lstm_to_keras(a(8, 3), a(8, 2), None, d(8)), DTypeError,
         ["b_hh", "float64"]),
        (lambda: convert.lstm_to_keras(a(8, 3), a(8, 2), [0.0] * 8), DTypeError, ["b_ih", "list"]),
        (lambda: convert.lstm_to_keras(a(8, 3).tolist(), a(8, 2)), DTypeError, ["W_ih", "list"]),
        (lambda: convert.lstm_to_onnx(a(8, 3), a(6, 2)), ShapeError, ["W_hh", "(6, 2)"]),
        (lambda: convert.lstm_to_onnx(a(8, 3), a(8, 2), a(8, 1)), ShapeError, ["b_ih", "(8, 1)"]),
        (lambda: convert.lstm_to_onnx(a(8, 3), d(8, 2)), DTypeError, ["W_hh", "float64"]),
        (lambda: convert.gru_to_keras(a(6, 3), a(4, 2), reset_after=True), ShapeError,
         ["W_hh", "(4, 2)"]),
        (lambda: convert.gru_to_keras(a(6, 3), a(6, 2), a(6), a(5), reset_after=False),
         ShapeError, ["b_hh", "(5,)"]),
        (lambda: convert.gru_to_keras(a(6, 3), a(6, 2), reset_after="yes"), ParameterError,
         ["reset_after"]),
        (lambda: convert.gru_to_keras(a(6, 3).astype(np.int32), a(6, 2), reset_after=True),
         DTypeError, ["W_ih", "int32"]),
        (lambda: convert.gru_to_onnx(a(6, 3), a(6, 2), 1.0), DTypeError, ["b_ih", "float"]),
        (lambda: convert.gru_to_onnx(a(5, 3), a(6, 2)), ShapeError, ["W_ih", "(5, 3)"]),
        (lambda: convert.dense_to_keras(a(4, 3), a(3)), ShapeError, ["b", "(3,)"]),
        (lambda: convert.dense_to_keras(a(4), None), ShapeError, ["W", "(4,)"]),
        (lambda: convert.dense_to_keras([[1.0]]), DTypeError, ["W", "list"]),
        (lambda: convert.dense_to_keras(a(4, 3), d(4)), DTypeError, ["b", "float64"]),
        (lambda: convert.dense_from_keras(a(3, 4), a(3)), ShapeError, ["bias", "(3,)"]),
        (lambda: convert.dense_from_keras(a(3, 4), [0.0] * 4), DTypeError, ["bias", "list"]),
        (lambda: convert.dense_to_keras_after_flatten(a(2, 24), (2, 3)), ParameterError, ["hwc"]),
        (lambda: convert.dense_from_keras_after_flatten(a(24, 2), (2, 3, 0)), ParameterError,
         ["hwc"]),
        (lambda: convert.conv2d_to_keras(a(2, 3, 3)), ShapeError, ["W", "(2, 3, 3)"]),
        # forward converters: the bias dtype is now checked too
        (lambda: convert.lstm_from_keras(a(F, 4 * H), a(H, 4 * H), d(4 * H)), DTypeError,
         ["bias", "float64"]),
        (lambda: convert.gru_from_keras(a(F, 3 * H), a(H, 3 * H), [0.0] * 6, reset_after=False),
         DTypeError, ["bias", "list"]),
        (lambda: convert.lstm_from_onnx(a(1, 8, 3), a(1, 8, 2), d(1, 16)), DTypeError,
         ["B", "float64"]),
        (lambda: convert.gru_from_onnx(a(1, 6, 3), a(1, 6, 2), a(1, 5), linear_before_reset=1),
         ShapeError, ["B", "(5,)"]),
    ]


@pytest.mark.parametrize("case", range(len(_conv_cases())))
def test_converter_bad_inputs(case):
    call, err, words = _conv_cases()[case]
    with pytest.raises(err) as info:
        call()
    for w in words:
        assert _names(str(info.value), w) or w in str(info.value), (w, str(info.value))


def test_inverse_converters_accept_what_forward_converters_return():
    rng = np.random.default_rng(3)
    H, F = 3, 2
    k, r, b = (rng.standard_normal(s).astype(f32) for s in ((F, 4 * H), (H, 4 * H), (4 * H,)))
    for a, b_ in zip((k, r, b), convert.lstm_to_keras(*convert.lstm_from_keras(k, r, b))):
        np.testing.assert_array_equal(a, b_)
    W, bb = rng.standard_normal((F, 5)).astype(f32), rng.standard_normal(5).astype(f32)
    for a, b_ in zip((W, bb), convert.dense_to_keras(*convert.dense_from_keras(W, bb))):
        np.testing.assert_array_equal(a, b_)
