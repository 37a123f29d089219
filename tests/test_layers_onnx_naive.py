"""ONNX attributes of conv1d, batch_norm and softmax against independent float64 loops, and
the ONNX RNN / LSTM-peephole weight converters against a hand permutation.

Ground truth is written from the ONNX operator definitions with plain Python loops and
Python floats (``math.sqrt`` / ``math.exp``), not from refcomp:

* ``conv1d`` (ONNX Conv, one spatial axis): explicit pads, ``auto_pad`` SAME_UPPER /
  SAME_LOWER / VALID resolved here from ONNX's rule (out = ceil(L / s), total padding
  ``max(0, (out - 1) s + (k - 1) d + 1 - L)``, the odd pixel at the end for SAME_UPPER and
  at the beginning for SAME_LOWER), ``dilations``, ``group``;
* ``batch_norm(axis=)`` (ONNX BatchNormalization, inference) on ranks 2 to 5, any axis;
* ``softmax(axis=)`` (opset >= 13) on 1-D to 4-D inputs, any axis, negative too.

refcomp's reference mode states the same operations in the same order with one final
rounding (float64 sums from +0.0 in the documented order, products of float32 data exact),
so the loops, rounded once (half-even) to the input dtype, must equal it bit for bit,
signed zeros included.

``refcomp.convert.rnn_from_onnx`` / ``rnn_to_onnx`` and ``peepholes_from_onnx`` /
``peepholes_to_onnx`` are checked element by element against the layouts written out by hand
(ONNX RNN B = [Wb, Rb]; ONNX P in order i, o, f, refcomp's i, f, o), both directions of a
bidirectional tensor, then round-tripped bit for bit (NaN, inf and signed zeros included).
"""

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st

import refcomp.layers as L
from refcomp.testing import assert_bits_equal
from refcomp.testing.strategies import conv1d_configs, weight_arrays

import naive

DTYPES = st.sampled_from([np.float32, np.float64])


def _onnx_pads(padding, length, k, s, d):
    """(begin, end) of ONNX Conv for refcomp's ``padding`` spelling, from ONNX's text."""
    if padding == "valid":
        return 0, 0
    if padding in ("same", "same_upper", "same_lower"):
        out = -(-length // s)
        total = max(0, (out - 1) * s + (k - 1) * d + 1 - length)
        small, big = total // 2, total - total // 2
        return (big, small) if padding == "same_lower" else (small, big)
    if isinstance(padding, int):
        return padding, padding
    return tuple(padding)


@pytest.mark.parametrize("style", ["drawn", "same", "same_upper", "same_lower"])
@settings(max_examples=25)
@given(conv1d_configs(), DTYPES, st.data())
def test_conv1d_padding_dilation_groups_reference_bits(style, cfg, dtype, data):
    # "drawn": the config's own padding (int, pair, valid, same_upper, same_lower); the auto_pad
    # styles are forced too, each in its own run ("same" is refcomp's alias of SAME_UPPER)
    pad = cfg["attrs"]["padding"] if style == "drawn" else style
    n, c, length, o, (k,) = cfg["N"], cfg["C"], cfg["L"], cfg["O"], cfg["kernel"]
    g, s, d = cfg["groups"], cfg["attrs"]["stride"], cfg["attrs"]["dilation"]
    x = data.draw(weight_arrays((n, c, length), dtype=dtype), label="x")
    W = data.draw(weight_arrays((o, c // g, k), dtype=dtype), label="W")
    b = data.draw(weight_arrays((o,), dtype=dtype), label="b") if cfg["bias"] else None
    lo, hi = _onnx_pads(pad, length, k, s, d)
    assume(length + lo + hi >= (k - 1) * d + 1)
    got = L.conv1d(x, W, b, stride=s, padding=pad, dilation=d, groups=g)
    want = naive.conv2d(x[:, :, None, :], W[:, :, None, :], b, (1, s), ((0, 0), (lo, hi)),
                        (1, d), g)[:, :, 0, :].astype(dtype)
    assert want.shape[2] == (length + lo + hi - (k - 1) * d - 1) // s + 1
    if pad in ("same", "same_upper", "same_lower"):
        assert want.shape[2] == -(-length // s)
    assert_bits_equal(got, want)


def test_conv1d_same_lower_puts_the_odd_pixel_first():
    # L = 4, k = 2: total padding 1; SAME_LOWER pads the beginning, SAME_UPPER the end
    x = np.array([[[1.0, 2.0, 3.0, 4.0]]], np.float32)
    W = np.array([[[10.0, 1.0]]], np.float32)
    assert L.conv1d(x, W, padding="same_lower").tolist() == [[[1.0, 12.0, 23.0, 34.0]]]
    assert L.conv1d(x, W, padding="same_upper").tolist() == [[[12.0, 23.0, 34.0, 40.0]]]


@st.composite
def _nd_shape_axis(draw, min_rank, max_rank, max_dim):
    shape = tuple(draw(st.lists(st.integers(1, max_dim), min_size=min_rank,
                                max_size=max_rank)))
    return shape, draw(st.integers(-len(shape), len(shape) - 1))


@settings(max_examples=40)
@given(_nd_shape_axis(2, 5, 3), DTYPES, st.sampled_from([0.0, 1e-5, 1e-3, 0.5]), st.data())
def test_batch_norm_axis_ranks_2_to_5_reference_bits(shape_axis, dtype, eps, data):
    shape, axis = shape_axis
    ch = shape[axis]
    x = data.draw(weight_arrays(shape, dtype=dtype), label="x")
    gamma, beta, mean = (data.draw(weight_arrays((ch,), dtype=dtype), label=k)
                         for k in ("gamma", "beta", "mean"))
    var = np.abs(data.draw(weight_arrays((ch,), dtype=dtype, zeros=False), label="var"))
    assume(eps > 0 or np.all(var > 0))
    got = L.batch_norm(x, gamma, beta, mean, var, eps=eps, axis=axis)
    want = np.empty(shape, np.float64)
    for idx in np.ndindex(*shape):
        j = idx[axis]
        scale = float(gamma[j]) / math.sqrt(float(var[j]) + eps)
        want[idx] = (float(x[idx]) - float(mean[j])) * scale + float(beta[j])
    assert_bits_equal(got, want.astype(dtype))


@settings(max_examples=40)
@given(_nd_shape_axis(1, 4, 4), DTYPES, st.data())
def test_softmax_axis_nd_reference_bits(shape_axis, dtype, data):
    shape, axis = shape_axis
    x = data.draw(weight_arrays(shape, dtype=dtype), label="x")
    got = L.softmax(x, axis=axis)
    ax = axis % len(shape)
    want = np.empty(shape, np.float64)
    rest = shape[:ax] + shape[ax + 1:]
    for r in np.ndindex(*rest):
        line = [r[:ax] + (j,) + r[ax:] for j in range(shape[ax])]
        m = max(float(x[i]) for i in line)
        e = [math.exp(float(x[i]) - m) for i in line]
        total = 0.0
        for v in e:                                   # in increasing index order
            total += v
        for i, v in zip(line, e):
            want[i] = v / total
    assert_bits_equal(got, want.astype(dtype))


# -- ONNX RNN and peephole converters against a hand permutation ---------------------------
def _hand_rnn_from_onnx(W, R, B, d):
    """ONNX RNN of direction d (W [D, H, F], R [D, H, H], B [D, 2H] = [Wb, Rb]): one gate,
    element by element."""
    H, F = W.shape[1], W.shape[2]
    W_ih = np.empty((H, F), W.dtype)
    W_hh = np.empty((H, H), W.dtype)
    b_ih, b_hh = np.empty(H, W.dtype), np.empty(H, W.dtype)
    for i in range(H):
        for j in range(F):
            W_ih[i, j] = W[d, i, j]
        for j in range(H):
            W_hh[i, j] = R[d, i, j]
        b_ih[i], b_hh[i] = B[d, i], B[d, H + i]
    return W_ih, W_hh, b_ih, b_hh


def _hand_peepholes_from_onnx(P, d):
    """ONNX P[d] holds p_i, p_o, p_f (H each); refcomp's order is i, f, o."""
    H = P.shape[1] // 3
    p = np.empty(3 * H, P.dtype)
    for k in range(H):
        p[k] = P[d, k]               # i
        p[H + k] = P[d, 2 * H + k]   # f: ONNX's third block
        p[2 * H + k] = P[d, H + k]   # o: ONNX's second block
    return p


def _fresh(got, *sources):
    for a in got:
        assert a.flags.c_contiguous and not any(np.shares_memory(a, s) for s in sources)


@settings(max_examples=40)
@given(st.integers(1, 2), st.integers(1, 4), st.integers(1, 4), DTYPES, st.data())
def test_rnn_onnx_converters_round_trip_against_hand_permutation(D, H, F, dtype, data):
    from refcomp import convert
    W = data.draw(weight_arrays((D, H, F), dtype=dtype, specials=True), label="W")
    R = data.draw(weight_arrays((D, H, H), dtype=dtype, specials=True), label="R")
    B = data.draw(weight_arrays((D, 2 * H), dtype=dtype, specials=True), label="B")
    back = []
    for d in range(D):
        got = convert.rnn_from_onnx(W, R, B, direction=d)
        for g, want in zip(got, _hand_rnn_from_onnx(W, R, B, d)):
            assert_bits_equal(g, want)
        _fresh(got, W, R, B)
        if D == 1:                   # one direction: the direction axis may be left implicit
            for g, want in zip(convert.rnn_from_onnx(W[0], R[0], B[0]), got):
                assert_bits_equal(g, want)
        back.append(convert.rnn_to_onnx(*got))
    for a, want in zip(zip(*back), (W, R, B)):       # bidirectional: directions stacked
        assert_bits_equal(np.concatenate(a), want)
    # no biases: None out, +0.0 written back
    Wi, Wh, bi, bh = convert.rnn_from_onnx(W, R, direction=D - 1)
    assert bi is None and bh is None
    _, _, B0 = convert.rnn_to_onnx(Wi, Wh)
    assert_bits_equal(B0, np.zeros((1, 2 * H), dtype))


@settings(max_examples=40)
@given(st.integers(1, 2), st.integers(1, 4), DTYPES, st.data())
def test_peephole_converters_round_trip_against_hand_permutation(D, H, dtype, data):
    from refcomp import convert
    P = data.draw(weight_arrays((D, 3 * H), dtype=dtype, specials=True), label="P")
    for d in range(D):
        p = convert.peepholes_from_onnx(P, direction=d)
        assert_bits_equal(p, _hand_peepholes_from_onnx(P, d))
        _fresh([p], P)
        back = convert.peepholes_to_onnx(p)
        assert_bits_equal(back, P[d:d + 1])
        _fresh([back], p)
    if D == 1:
        assert_bits_equal(convert.peepholes_from_onnx(P[0]), _hand_peepholes_from_onnx(P, 0))


def test_converters_need_a_direction_for_two():
    from refcomp import ShapeError, convert
    a = np.zeros((2, 6), np.float32)
    with pytest.raises(ShapeError, match="num_directions=2"):
        convert.peepholes_from_onnx(a)
    with pytest.raises(ShapeError, match="num_directions=2"):
        convert.rnn_from_onnx(np.zeros((2, 2, 3), np.float32), np.zeros((2, 2, 2), np.float32))
