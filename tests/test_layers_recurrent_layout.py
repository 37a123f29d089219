"""Recurrent ``layout="time_major"`` (ONNX ``layout=0``) against the batch-first path.

The time-major pass is defined as the batch-first one on ``x.transpose(1, 0, 2)`` with the
output sequence transposed back, so the ground truth here is the batch-first layer on the
transposed input (an independent call with the default layout) and the comparison is bit for
bit, final states included; ONNX's own equations on both layouts are checked in
tests/test_layers_onnx_attributes.py (the gate binding passes ONNX's layout 0 as
``layout="time_major"``).
"""

import numpy as np
import pytest
from hypothesis import given, strategies as st

import refcomp.layers as L
from refcomp import Layer, Model, ParameterError
from refcomp.testing import assert_bits_equal

FN = {"lstm": L.lstm, "gru": L.gru, "simple_rnn": L.simple_rnn}
GATES = {"lstm": 4, "gru": 3, "simple_rnn": 1}


def _weights(rng, kind, f, h, dt):
    g = GATES[kind]
    return [rng.standard_normal(s).astype(dt) for s in ((g * h, f), (g * h, h), (g * h,), (g * h,))]


@given(kind=st.sampled_from(sorted(FN)), direction=st.sampled_from(["forward", "reverse",
                                                                      "bidirectional"]),
       n=st.integers(0, 3), t=st.integers(1, 4), f=st.integers(1, 3), h=st.integers(1, 3),
       seq=st.booleans(), init=st.booleans(), ret=st.booleans(),
       precision=st.sampled_from(["reference", "fast"]),
       dt=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2 ** 31))
def test_time_major_is_the_transposed_batch_first_pass(kind, direction, n, t, f, h, seq, init,
                                                       ret, precision, dt, seed):
    rng = np.random.default_rng(seed)
    W = _weights(rng, kind, f, h, dt)
    xb = rng.standard_normal((n, t, f)).astype(dt)
    kw = {"direction": direction, "return_sequences": ret, "precision": precision}
    d = 2 if direction == "bidirectional" else 1
    if d == 2:
        kw["reverse"] = dict(zip(("W_ih", "W_hh", "b_ih", "b_hh"), _weights(rng, kind, f, h, dt)))
    if seq and n:
        kw["sequence_lens"] = rng.integers(1, t + 1, n).astype(np.int64)
    if init:
        shape = (n, h) if d == 1 else (2, n, h)
        kw["h0"] = rng.standard_normal(shape).astype(dt)
        if kind == "lstm":
            kw["c0"] = rng.standard_normal(shape).astype(dt)
    want_seq, want_states = FN[kind](xb, *W, **kw)
    xt = np.ascontiguousarray(xb.transpose(1, 0, 2))
    got_seq, got_states = FN[kind](xt, *W, layout="time_major", **kw)
    assert_bits_equal(got_seq, want_seq.transpose(1, 0, 2) if ret else want_seq)
    if ret:
        assert got_seq.flags.c_contiguous and got_seq.shape == (t, n, d * h)
    assert len(got_states) == len(want_states)
    for g, w in zip(got_states, want_states):
        assert_bits_equal(g, w)
    # the explicit default is the default
    same_seq, _ = FN[kind](xb, *W, layout="batch_first", **kw)
    assert_bits_equal(same_seq, want_seq)


def test_time_major_hand_case_lstm_one_step_each():
    """T=2, N=1, H=1, zero weights but the bias: every step sees the same pre-activations, so
    the time-major and batch-first outputs hold the same two values on swapped axes."""
    z = np.zeros
    b = np.array([0.0, 0.0, 1.0, 0.0], np.float32)
    x = z((2, 1, 1), np.float32)
    y, (hT, cT) = L.lstm(x, z((4, 1), np.float32), z((4, 1), np.float32), b, None,
                         layout="time_major")
    yb, _ = L.lstm(x.transpose(1, 0, 2), z((4, 1), np.float32), z((4, 1), np.float32), b, None)
    assert y.shape == (2, 1, 1) and yb.shape == (1, 2, 1)
    assert y[:, 0, 0].tolist() == yb[0, :, 0].tolist()
    assert y[1, 0, 0] > y[0, 0, 0] > 0 and hT[0, 0] == y[1, 0, 0]


@pytest.mark.parametrize("kind", sorted(FN))
@pytest.mark.parametrize("bad", ["time-major", "NCHW", 0, 1, None])
def test_unknown_layout_is_a_parameter_error_naming_it(kind, bad):
    rng = np.random.default_rng(0)
    W = _weights(rng, kind, 2, 2, np.float32)
    x = np.zeros((1, 3, 2), np.float32)
    with pytest.raises(ParameterError, match=r"layout.*" + repr(bad).replace("(", r"\(")):
        FN[kind](x, *W, layout=bad)


@pytest.mark.parametrize("kind", sorted(FN))
def test_model_layer_time_major_matches_batch_first_model(kind):
    """The Model layer kinds carry ``layout``; a time-major layer takes (T, N, F) and keeps the
    batch on axis 1 for its sequence_lens and constant initial states."""
    rng = np.random.default_rng(3)
    n, t, f, h = 3, 4, 2, 3
    W = _weights(rng, kind, f, h, np.float32)
    weights = dict(zip(("W_ih", "W_hh", "b_ih", "b_hh"), W))
    weights["h0"] = rng.standard_normal((n, h)).astype(np.float32)
    attrs = {"sequence_lens": [4, 1, 2]}
    if kind == "lstm":
        weights["c0"] = rng.standard_normal((1, h)).astype(np.float32)
    bf = Model([Layer(kind, attrs=attrs, weights=weights)])
    tm = Model([Layer(kind, attrs=dict(attrs, layout="time_major"), weights=weights)])
    x = rng.standard_normal((n, t, f)).astype(np.float32)
    want = bf(x)
    got = tm(np.ascontiguousarray(x.transpose(1, 0, 2)))
    assert_bits_equal(got, want.transpose(1, 0, 2))
    last = Model([Layer(kind, attrs=dict(attrs, layout="time_major", return_sequences=False),
                        weights=weights)])
    assert_bits_equal(last(np.ascontiguousarray(x.transpose(1, 0, 2))),
                      Model([Layer(kind, attrs=dict(attrs, return_sequences=False),
                                   weights=weights)])(x))
    bad = Model([Layer(kind, attrs={"layout": "NTC"}, weights=dict(zip(("W_ih", "W_hh"), W)))])
    with pytest.raises(ParameterError, match="layout.*'NTC'"):
        bad(x)


def test_framework_bound_of_a_time_major_layer_is_the_transposed_batch_first_one():
    """The recurrent error bound of a time-major layer: the batch-first bound on
    x.transpose(1, 0, 2), transposed back like the output (same bits)."""
    from refcomp.testing.framework_bound import framework_error_bound
    rng = np.random.default_rng(1)
    weights = dict(zip(("W_ih", "W_hh", "b_ih", "b_hh"), _weights(rng, "gru", 2, 3, np.float32)))
    x = rng.standard_normal((3, 4, 2)).astype(np.float32)
    ok = Model([Layer("gru", weights=weights)])
    want = framework_error_bound(ok, x)
    assert want.shape == ok(x).shape
    tm = Model([Layer("gru", attrs={"layout": "time_major"}, weights=weights)])
    xt = np.ascontiguousarray(x.transpose(1, 0, 2))
    got = framework_error_bound(tm, xt)
    assert got.shape == tm(xt).shape
    assert np.array_equal(got.view(np.uint64), want.transpose(1, 0, 2).view(np.uint64))
