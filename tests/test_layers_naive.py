"""Every layer against an independent naive float64 loop (tests/naive.py)."""

import math

import numpy as np
import pytest

import naive
import refcomp.layers as L
from refcomp.testing import assert_bits_equal

RNG = np.random.default_rng(1234)


def rand(*shape, dtype=np.float32):
    return RNG.standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dense_matches_naive_bitwise(dtype):
    x, W, b = rand(5, 17, dtype=dtype), rand(7, 17, dtype=dtype), rand(7, dtype=dtype)
    y = L.dense(x, W, b)
    assert y.dtype == dtype
    assert_bits_equal(y, naive.dense(x, W, b).astype(dtype))


def test_dense_no_bias_and_empty_reduction():
    x, W = np.zeros((2, 0), np.float32), np.zeros((3, 0), np.float32)
    y = L.dense(x, W)
    assert_bits_equal(y, np.zeros((2, 3), np.float32))      # +0.0, not -0.0


@pytest.mark.parametrize("stride,padding,dilation,groups", [
    (1, 0, 1, 1), (2, 1, 1, 1), ((2, 1), ((0, 2), (1, 0)), (1, 2), 1), (1, "same", 1, 2),
    (2, "same", 1, 1), (3, "same", 2, 1), (1, "valid", 1, 4)])
def test_conv2d_matches_naive_bitwise(stride, padding, dilation, groups):
    x = rand(2, 4, 9, 8)
    W = rand(8, 4 // groups, 3, 2)
    b = rand(8)
    y = L.conv2d(x, W, b, stride=stride, padding=padding, dilation=dilation, groups=groups)
    from refcomp.layers._common import pair, resolve_padding
    s, d = pair("s", stride), pair("d", dilation)
    pads = resolve_padding(padding, (9, 8), (3, 2), s, d)
    ref = naive.conv2d(x, W, b, s, pads, d, groups).astype(np.float32)
    assert_bits_equal(y, ref)


@pytest.mark.parametrize("k,s,p", [(2, None, 0), (3, 2, 1), ((2, 3), (1, 2), ((1, 0), (0, 2)))])
def test_pools_match_naive(k, s, p):
    from refcomp.layers._common import pair, resolve_padding
    x = rand(2, 3, 7, 8)
    kk = pair("k", k)
    ss = kk if s is None else pair("s", s)
    pads = resolve_padding(p, (7, 8), kk, ss, (1, 1))
    assert_bits_equal(L.max_pool2d(x, k, stride=s, padding=p),
                      naive.pool2d(x, kk, ss, pads, "max").astype(np.float32))
    for cip in (True, False):
        assert_bits_equal(L.avg_pool2d(x, k, stride=s, padding=p, count_include_pad=cip),
                          naive.pool2d(x, kk, ss, pads, "avg", cip).astype(np.float32))


def test_max_pool_nan_propagates():
    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    x[0, 0, 0, 0] = np.nan
    y = L.max_pool2d(x, 2)
    assert np.isnan(y[0, 0, 0, 0]) and y[0, 0, 1, 1] == 15


def test_activations_golden():
    x = np.array([-np.inf, -3.0, -2.5, -0.0, 0.0, 1.5, 2.5, 3.0, np.inf, np.nan], np.float32)
    r = L.relu(x)
    assert_bits_equal(r, np.array([0, 0, 0, 0, 0, 1.5, 2.5, 3, np.inf, np.nan], np.float32))
    h3 = L.hard_sigmoid(x)
    assert list(h3[:9]) == [0, 0, np.float32(-2.5 / 6 + 0.5), 0.5, 0.5, 0.75,
                            np.float32(2.5 / 6 + 0.5), 1, 1]
    h2 = L.hard_sigmoid(x, variant="keras2")
    assert list(h2[:9]) == [0, 0, 0, 0.5, 0.5, np.float32(0.8), 1, 1, 1]
    s = L.sigmoid(x)
    assert s[0] == 0 and s[8] == 1 and s[3] == 0.5 and np.isnan(s[9])
    for v, got in zip(x[1:8], s[1:8]):
        assert got == np.float32(naive.sig(float(v)))
    t = L.tanh(x)
    for v, got in zip(x[:9], t[:9]):
        assert got == np.float32(math.tanh(float(v)))
    assert L.linear(x) is x


def test_softmax_stable_and_matches_definition():
    x = np.array([[1000.0, 1001.0, 999.0], [-5.0, 0.0, 5.0]], np.float64)
    y = L.softmax(x)
    for row, out in zip(x, y):
        m = max(row)
        e = [math.exp(v - m) for v in row]
        s = 0.0
        for v in e:
            s += v
        assert list(out) == [v / s for v in e]
    assert_bits_equal(L.softmax(x.T, axis=0), y.T.copy())


def test_batch_norm_and_fold():
    x = rand(3, 4, 5, 5, dtype=np.float64)
    g, be, m, v = rand(4, dtype=np.float64), rand(4, dtype=np.float64), rand(4, dtype=np.float64), \
        np.abs(rand(4, dtype=np.float64)) + 0.1
    y = L.batch_norm(x, g, be, m, v, eps=1e-3)
    for c in range(4):
        s = g[c] / math.sqrt(v[c] + 1e-3)
        np.testing.assert_array_equal(y[:, c], (x[:, c] - m[c]) * s + be[c])
    W, b = rand(4, 2, 3, 3, dtype=np.float64), rand(4, dtype=np.float64)
    xin = rand(2, 2, 6, 6, dtype=np.float64)
    W2, b2 = L.fold_batch_norm(W, b, g, be, m, v, eps=1e-3)
    np.testing.assert_allclose(L.conv2d(xin, W2, b2),
                               L.batch_norm(L.conv2d(xin, W, b), g, be, m, v, eps=1e-3),
                               rtol=1e-12, atol=1e-12)


def test_flatten_orders():
    x = np.arange(24, dtype=np.float32).reshape(1, 2, 3, 4)          # NCHW
    assert list(L.flatten(x)[0][:5]) == [0, 1, 2, 3, 4]                # (c, h, w)
    xh = np.ascontiguousarray(x.transpose(0, 2, 3, 1))               # NHWC
    assert list(L.flatten(xh, layout="NHWC")[0][:4]) == [0, 12, 1, 13]  # (h, w, c)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_lstm_multi_step_matches_naive(dtype):
    N, T, F, H = 3, 4, 5, 6
    x = rand(N, T, F, dtype=dtype)
    Wi, Wh = rand(4 * H, F, dtype=dtype), rand(4 * H, H, dtype=dtype)
    bi, bh = rand(4 * H, dtype=dtype), rand(4 * H, dtype=dtype)
    h0, c0 = rand(N, H, dtype=dtype), rand(N, H, dtype=dtype)
    out, (hT, cT) = L.lstm(x, Wi, Wh, bi, bh, h0=h0, c0=c0)
    h, c = h0, c0
    for t in range(T):
        h64, c64 = naive.lstm_cell(x[:, t], h, c, Wi, Wh, bi, bh)
        c = c64.astype(dtype)
        # the contract computes h from the stored (rounded) cell state
        _, _ = h64, None
        H_ = H
        z = naive.dense(x[:, t], Wi, bi) + naive.dense(h, Wh, bh)
        o = np.vectorize(naive.sig)(z[:, 3 * H_:])
        h = (o * np.vectorize(math.tanh)(c.astype(np.float64))).astype(dtype)
        assert_bits_equal(out[:, t], h)
    assert_bits_equal(hT, h)
    assert_bits_equal(cT, c)
    last, _ = L.lstm(x, Wi, Wh, bi, bh, h0=h0, c0=c0, return_sequences=False)
    assert_bits_equal(last, hT)


def _naive_mgu_cell(x, h, Wi, Wh, bi, bh):
    # MGU (Zhou et al. 2016) in float64, as documented in layers.mgu
    H = h.shape[1]
    f = np.vectorize(naive.sig)(naive.dense(x, Wi[:H], bi[:H]) + naive.dense(h, Wh[:H], bh[:H]))
    cand = np.vectorize(math.tanh)(naive.dense(x, Wi[H:], bi[H:])
                                   + naive.dense(f * h, Wh[H:], bh[H:]))
    return (1 - f) * h + f * cand


def _naive_rnn64(kind, x, Wi, Wh, bi, bh, h0, c0=None, **kw):
    """float64 naive recurrence (tests/naive.py cells, no rounding to the dtype)."""
    f64 = lambda a: a.astype(np.float64)                               # noqa: E731
    gates = Wh.shape[0] // Wh.shape[1] if Wh.shape[1] else 1
    H = Wh.shape[1]
    bi = np.zeros(gates * H) if bi is None else f64(bi)
    bh = np.zeros(gates * H) if bh is None else f64(bh)
    Wi, Wh = f64(Wi), f64(Wh)
    h, c, outs = f64(h0), None if c0 is None else f64(c0), []
    for t in range(x.shape[1]):
        xt = f64(x[:, t])
        if x.shape[0]:                       # (np.vectorize refuses empty inputs)
            if kind == "lstm":
                h, c = naive.lstm_cell(xt, h, c, Wi, Wh, bi, bh)
            elif kind == "gru":
                h = naive.gru_cell(xt, h, Wi, Wh, bi, bh, kw["reset_after"])
            elif kind == "mgu":
                h = _naive_mgu_cell(xt, h, Wi, Wh, bi, bh)
            else:
                z = naive.dense(xt, Wi, bi) + naive.dense(h, Wh, bh)
                h = np.tanh(z) if kw["activation"] == "tanh" else np.maximum(z, 0)
        outs.append(h)
    seq = np.stack(outs, axis=1) if outs else np.zeros((x.shape[0], 0, H))
    return seq, ((h, c) if kind == "lstm" else (h,))


_CELLS = [("lstm", 4, {}), ("gru", 3, {"reset_after": True}), ("gru", 3, {"reset_after": False}),
          ("mgu", 2, {}), ("simple_rnn", 1, {"activation": "tanh"}),
          ("simple_rnn", 1, {"activation": "relu"})]


@pytest.mark.parametrize("kind,gates,kw", _CELLS)
@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float32, 3e-6)])
@pytest.mark.parametrize("shape", [(3, 4, 5, 6), (7, 1, 1, 1), (2, 3, 0, 4), (0, 2, 3, 4),
                                   (4, 0, 3, 5)])
@pytest.mark.parametrize("biases", [True, False])
def test_rnn_fast_matches_float64_naive(kind, gates, kw, dtype, tol, shape, biases):
    # precision="fast" (one BLAS product per step, sigmoid as 0.5*tanh(z/2)+0.5)
    # against the float64 naive cells: fast mode has no bit contract, so the
    # check is a tolerance on O(1) data (float32: a few ulps per step).
    N, T, F, H = shape
    fn = getattr(L, kind)
    x = rand(N, T, F, dtype=dtype)
    Wi, Wh = rand(gates * H, F, dtype=dtype) * 0.5, rand(gates * H, H, dtype=dtype) * 0.5
    bi, bh = ((rand(gates * H, dtype=dtype), rand(gates * H, dtype=dtype)) if biases
              else (None, None))
    states = {"h0": rand(N, H, dtype=dtype)}
    if kind == "lstm":
        states["c0"] = rand(N, H, dtype=dtype)
    keep = [a.copy() for a in (x, Wi, Wh, *states.values())]
    out, st = fn(x, Wi, Wh, bi, bh, **states, **kw, precision="fast")
    seq, want = _naive_rnn64(kind, x, Wi, Wh, bi, bh, *states.values(), **kw)
    for got, exp in ((out, seq),) + tuple(zip(st, want)):
        assert got.dtype == dtype and got.shape == exp.shape and got.flags.c_contiguous
        np.testing.assert_allclose(got, exp, rtol=tol, atol=tol * max(1, T))
    for a, b in zip(keep, (x, Wi, Wh, *states.values())):   # inputs never written
        assert_bits_equal(a, b)
    last, st2 = fn(x, Wi, Wh, bi, bh, **states, **kw, return_sequences=False, precision="fast")
    assert_bits_equal(last, st[0])
    for a, b in zip(st2, st):
        assert_bits_equal(a, b)
    zero = fn(x, Wi, Wh, bi, bh, **kw, precision="fast")[0]          # zero initial states
    seq0, _ = _naive_rnn64(kind, x, Wi, Wh, bi, bh,
                           *(np.zeros((N, H)) for _ in states), **kw)
    np.testing.assert_allclose(zero, seq0, rtol=tol, atol=tol * max(1, T))


def test_simple_rnn_fast_relu_signed_zero_and_nan():
    # the exact relu rule in fast mode: -0.0 and negatives -> +0.0, NaN kept
    x = np.array([[[-1.0], [np.nan]], [[0.0], [1.0]]], np.float32)        # (N=2, T=2, F=1)
    Wi = np.array([[1.0]], np.float32)
    Wh = np.array([[0.0]], np.float32)
    out, _ = L.simple_rnn(x, Wi, Wh, activation="relu", precision="fast")
    bits = out.view(np.uint32)
    assert bits[0, 0, 0] == 0 and np.isnan(out[0, 1, 0])                 # +0.0, NaN
    assert bits[1, 0, 0] == 0 and out[1, 1, 0] == 1.0


@pytest.mark.parametrize("reset_after", [True, False])
def test_gru_multi_step_matches_naive(reset_after):
    N, T, F, H = 2, 3, 4, 5
    x = rand(N, T, F, dtype=np.float64)
    Wi, Wh = rand(3 * H, F, dtype=np.float64), rand(3 * H, H, dtype=np.float64)
    bi, bh = rand(3 * H, dtype=np.float64), rand(3 * H, dtype=np.float64)
    h = rand(N, H, dtype=np.float64)
    out, (hT,) = L.gru(x, Wi, Wh, bi, bh, h0=h, reset_after=reset_after)
    for t in range(T):
        h = naive.gru_cell(x[:, t], h, Wi, Wh, bi, bh, reset_after)
        np.testing.assert_allclose(out[:, t], h, rtol=0, atol=1e-14)
    np.testing.assert_allclose(hT, h, rtol=0, atol=1e-14)


def test_mgu_and_simple_rnn_cell_equations():
    N, F, H = 3, 4, 5
    x = rand(N, 1, F, dtype=np.float64)
    Wi, Wh = rand(2 * H, F, dtype=np.float64), rand(2 * H, H, dtype=np.float64)
    bi, bh = rand(2 * H, dtype=np.float64), rand(2 * H, dtype=np.float64)
    h = rand(N, H, dtype=np.float64)
    _, (h1,) = L.mgu(x, Wi, Wh, bi, bh, h0=h)
    f = np.vectorize(naive.sig)(naive.dense(x[:, 0], Wi[:H], bi[:H]) + naive.dense(h, Wh[:H], bh[:H]))
    cand = np.tanh(naive.dense(x[:, 0], Wi[H:], bi[H:]) + naive.dense(f * h, Wh[H:], bh[H:]))
    np.testing.assert_allclose(h1, (1 - f) * h + f * cand, rtol=0, atol=1e-14)
    Wi1, Wh1, b1 = Wi[:H], Wh[:H], bi[:H]
    _, (r1,) = L.simple_rnn(x, Wi1, Wh1, b1, None, h0=h)
    np.testing.assert_allclose(r1, np.tanh(naive.dense(x[:, 0], Wi1, b1) + naive.dense(h, Wh1)),
                               rtol=0, atol=1e-15)


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
@pytest.mark.parametrize("precision", ["reference", "fast"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_simple_rnn_relu_keeps_nan_and_gives_positive_zero(precision, dtype):
    # The rule of layers.relu in both precisions: NaN stays NaN (it used to
    # become 0), zeros of either sign and negatives give +0.0, inf stays inf.
    W_ih = np.array([[1, 1], [-1, -1], [1, -1]], dtype)
    W_hh = np.eye(3, dtype=dtype)
    nz = np.full(3, -0.0, dtype)
    x = np.zeros((3, 2, 2), dtype)
    x[0, 0, 0] = np.nan                               # sample 0: NaN at t=0, carried to t=1
    x[1, 0] = -0.0                                    # sample 1: pre-activations +-0 at t=0
    x[1, 1] = [2, 1]                                  # then 3, -3, 1
    x[2, 0] = [np.inf, 0]                             # sample 2: +inf, -inf, +inf
    h0 = np.full((3, 3), -0.0, dtype)
    out, (hT,) = L.simple_rnn(x, W_ih, W_hh, nz, nz, h0=h0, activation="relu", precision=precision)
    assert np.isnan(out[0]).all()
    assert (out[1, 0] == 0).all() and not np.signbit(out[1, 0]).any()
    assert_bits_equal(out[1, 1], np.array([3, 0, 1], dtype))
    assert_bits_equal(out[2, 0], np.array([np.inf, 0, np.inf], dtype))
    assert_bits_equal(hT, np.ascontiguousarray(out[:, 1]))
    # Same bits as layers.relu on the pre-activation computed independently.
    z = naive.dense(x[1, 1:2], W_ih, nz) + naive.dense(out[1, 0:1], W_hh, nz)
    assert_bits_equal(out[1, 1:2], L.relu(z.astype(dtype)))


@pytest.mark.parametrize("cip", [True, False])
def test_avg_pool_fast_is_sequential_sum_in_input_dtype(cip):
    # The documented "fast" arithmetic: +0.0, then each window element
    # (row-major, padding zeros included) added with a float32 rounding,
    # then one float32 division by the count.  Values spread over many
    # binades so that a different order or a float64 sum would differ.
    rng = np.random.default_rng(8)
    shape = (2, 2, 7, 6)
    x = (rng.standard_normal(shape) * 10.0 ** rng.integers(-4, 5, shape)).astype(np.float32)
    k, s, (pt, pl) = (3, 2), (2, 1), (1, 1)
    y = L.avg_pool2d(x, k, stride=s, padding=(pt, pl), count_include_pad=cip, precision="fast")
    n, c, h, w = x.shape
    want = np.empty_like(y)
    for a in range(n):
        for ch in range(c):
            for i in range(y.shape[2]):
                for j in range(y.shape[3]):
                    acc, real = np.float32(0.0), 0
                    for ki in range(k[0]):
                        for kj in range(k[1]):
                            r, q = i * s[0] + ki - pt, j * s[1] + kj - pl
                            inside = 0 <= r < h and 0 <= q < w
                            acc = np.float32(acc + (x[a, ch, r, q] if inside else np.float32(0.0)))
                            real += inside
                    want[a, ch, i, j] = acc / np.float32(k[0] * k[1] if cip else real)
    assert_bits_equal(y, want)
    ref = L.avg_pool2d(x, k, stride=s, padding=(pt, pl), count_include_pad=cip)
    assert not np.array_equal(y, ref)                 # float32 sums: the precisions differ here
    # float64 input: both precisions are the same float64 computation.
    x64 = x.astype(np.float64)
    assert_bits_equal(L.avg_pool2d(x64, k, stride=s, padding=(pt, pl), count_include_pad=cip,
                                   precision="fast"),
                      L.avg_pool2d(x64, k, stride=s, padding=(pt, pl), count_include_pad=cip))
    # All-zero windows of either sign give +0.0.
    z = np.full((1, 1, 2, 2), -0.0, np.float32)
    for p in ("reference", "fast"):
        assert not np.signbit(L.avg_pool2d(z, 2, precision=p)).any()
