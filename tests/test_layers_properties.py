"""Hypothesis properties of the layers, kernel twins and determinism."""

import hashlib
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import refcomp.layers as L
from refcomp import convert
from refcomp.kernels import elementwise as E
from refcomp.kernels import linear as K
from refcomp.testing import assert_bits_equal


@st.composite
def arrays(draw, shape, dtype=np.float32):
    seed = draw(st.integers(0, 2**32 - 1))
    scale = draw(st.sampled_from([1e-3, 1.0, 1e3]))
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(dtype)


@given(st.data(), st.integers(1, 4), st.integers(1, 6), st.integers(1, 6), st.integers(1, 5))
def test_1x1_conv_equals_dense_per_pixel(data, n, c, o, hw):
    x = data.draw(arrays((n, c, hw, hw)))
    W = data.draw(arrays((o, c, 1, 1)))
    b = data.draw(arrays((o,)))
    y = L.conv2d(x, W, b)
    pix = np.ascontiguousarray(x.transpose(0, 2, 3, 1).reshape(-1, c))
    yd = L.dense(pix, W[:, :, 0, 0].copy(), b).reshape(n, hw, hw, o).transpose(0, 3, 1, 2)
    assert_bits_equal(y, np.ascontiguousarray(yd))


@given(st.data(), st.integers(1, 4), st.integers(3, 7), st.integers(1, 3))
def test_depthwise_equals_per_channel(data, c, hw, mult):
    x = data.draw(arrays((2, c, hw, hw)))
    W = data.draw(arrays((c * mult, 1, 3, 3)))
    y = L.conv2d(x, W, padding=1, groups=c)
    for ch in range(c):
        yc = L.conv2d(np.ascontiguousarray(x[:, ch:ch + 1]), W[ch * mult:(ch + 1) * mult], padding=1)
        assert_bits_equal(np.ascontiguousarray(y[:, ch * mult:(ch + 1) * mult]), yc)


@given(st.integers(1, 12), st.integers(1, 12), st.integers(1, 4), st.integers(1, 4),
       st.integers(1, 3), st.integers(1, 2))
def test_same_padding_output_shape(h, w, k, s, d, c):
    x = np.zeros((1, c, h, w), np.float32)
    W = np.zeros((2, c, k, k), np.float32)
    y = L.conv2d(x, W, stride=s, dilation=d, padding="same")
    assert y.shape == (1, 2, -(-h // s), -(-w // s))
    if k <= s:  # pooling padding must stay below the window
        return
    p = L.max_pool2d(x, k, stride=s, padding="same")
    assert p.shape == (1, c, -(-h // s), -(-w // s))


@given(st.data(), st.sampled_from([1, 2]), st.sampled_from([0, 1, "same"]))
def test_nhwc_equals_nchw(data, stride, padding):
    x = data.draw(arrays((2, 3, 6, 5)))
    W = data.draw(arrays((4, 3, 3, 3)))
    b = data.draw(arrays((4,)))
    xh = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    y = L.conv2d(x, W, b, stride=stride, padding=padding)
    yh = L.conv2d(xh, W, b, stride=stride, padding=padding, layout="NHWC")
    assert_bits_equal(np.ascontiguousarray(yh.transpose(0, 3, 1, 2)), y)
    assert_bits_equal(np.ascontiguousarray(L.max_pool2d(xh, 2, layout="NHWC").transpose(0, 3, 1, 2)),
                      L.max_pool2d(x, 2))
    assert_bits_equal(np.ascontiguousarray(L.avg_pool2d(xh, 2, layout="NHWC").transpose(0, 3, 1, 2)),
                      L.avg_pool2d(x, 2))


def _sig(v):
    with np.errstate(over="ignore"):
        return 1 / (1 + np.exp(-v))


def _keras_lstm(x, kernel, rec, bias):
    """Keras LSTM formula (FACTS.md §1.3): columns i, f, c, o; z = x k + h r + b."""
    n, t, _ = x.shape
    H = rec.shape[0]
    h = np.zeros((n, H))
    c = np.zeros((n, H))
    sig = _sig
    for s in range(t):
        z = x[:, s] @ kernel + h @ rec + bias
        i, f, g, o = (z[:, k * H:(k + 1) * H] for k in range(4))
        c = sig(f) * c + sig(i) * np.tanh(g)
        h = sig(o) * np.tanh(c)
    return h


def _keras_gru(x, kernel, rec, bias, reset_after):
    """Keras GRU formula (FACTS.md §2.2): columns z, r, h; h = z h_prev + (1 - z) hh."""
    n, t, _ = x.shape
    H = rec.shape[0]
    h = np.zeros((n, H))
    sig = _sig
    bi, br = (bias[0], bias[1]) if reset_after else (bias, np.zeros_like(bias))
    for s in range(t):
        xz = x[:, s] @ kernel + bi
        z = sig(xz[:, :H] + h @ rec[:, :H] + br[:H])
        r = sig(xz[:, H:2 * H] + h @ rec[:, H:2 * H] + br[H:2 * H])
        if reset_after:
            hh = np.tanh(xz[:, 2 * H:] + r * (h @ rec[:, 2 * H:] + br[2 * H:]))
        else:
            hh = np.tanh(xz[:, 2 * H:] + (r * h) @ rec[:, 2 * H:])
        h = z * h + (1 - z) * hh
    return h


@given(st.data(), st.integers(1, 3), st.integers(1, 4))
def test_keras_layout_lstm_through_converter(data, t, H):
    F = 3
    x = data.draw(arrays((2, t, F), np.float64))
    k, r, b = (data.draw(arrays(s, np.float64)) for s in ((F, 4 * H), (H, 4 * H), (4 * H,)))
    Wi, Wh, bi, bh = convert.lstm_from_keras(k, r, b)
    out, (h, _) = L.lstm(x, Wi, Wh, bi, bh, return_sequences=False)
    np.testing.assert_allclose(h, _keras_lstm(x, k, r, b), rtol=1e-12, atol=1e-12)
    k2, r2, b2 = convert.lstm_to_keras(Wi, Wh, bi, bh)
    for a, b_ in ((k, k2), (r, r2), (b, b2)):
        assert_bits_equal(a, b_)


@given(st.data(), st.booleans(), st.integers(1, 4))
def test_keras_layout_gru_through_converter(data, reset_after, H):
    F = 3
    x = data.draw(arrays((2, 3, F), np.float64))
    bshape = (2, 3 * H) if reset_after else (3 * H,)
    k, r, b = (data.draw(arrays(s, np.float64)) for s in ((F, 3 * H), (H, 3 * H), bshape))
    Wi, Wh, bi, bh = convert.gru_from_keras(k, r, b, reset_after=reset_after)
    _, (h,) = L.gru(x, Wi, Wh, bi, bh, reset_after=reset_after)
    np.testing.assert_allclose(h, _keras_gru(x, k, r, b, reset_after), rtol=1e-12, atol=1e-12)
    for a, b_ in zip((k, r, b), convert.gru_to_keras(Wi, Wh, bi, bh, reset_after=reset_after)):
        assert_bits_equal(a, b_)


@given(st.data(), st.integers(1, 4))
def test_onnx_and_dense_converters_round_trip(data, H):
    F = 3
    W, R = data.draw(arrays((1, 4 * H, F))), data.draw(arrays((1, 4 * H, H)))
    B = data.draw(arrays((1, 8 * H)))
    for a, b in zip((W, R, B), convert.lstm_to_onnx(*convert.lstm_from_onnx(W, R, B))):
        assert_bits_equal(a, b)
    W, R, B = W[:, :3 * H], R[:, :3 * H], B[:, :6 * H]
    W, R, B = (np.ascontiguousarray(a) for a in (W, R, B))
    for a, b in zip((W, R, B), convert.gru_to_onnx(*convert.gru_from_onnx(W, R, B,
                                                                         linear_before_reset=1))):
        assert_bits_equal(a, b)
    k = data.draw(arrays((2 * 3 * 4, 5)))
    assert_bits_equal(convert.dense_to_keras_after_flatten(
        convert.dense_from_keras_after_flatten(k, (2, 3, 4)), (2, 3, 4)), k)
    hw = data.draw(arrays((3, 2, 4, 5)))
    assert_bits_equal(convert.conv2d_to_keras(convert.conv2d_from_keras(hw)), hw)


def test_onnx_lstm_gate_order():
    H, F = 2, 1
    blocks = [np.full((H, F), v, np.float32) for v in (1, 2, 3, 4)]   # ONNX i, o, f, c
    W = np.concatenate(blocks)[None]
    Wi, _, _, _ = convert.lstm_from_onnx(W, np.zeros((1, 4 * H, H), np.float32))
    assert list(Wi[::H, 0]) == [1, 3, 4, 2]                            # i, f, g, o


def test_flatten_converter_reproduces_keras_flatten():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 4, 5))                  # NHWC (H=3, W=4, C=5)
    k = rng.standard_normal((60, 7))
    keras_out = x.reshape(2, -1) @ k
    W = convert.dense_from_keras_after_flatten(k, (3, 4, 5))
    ours = L.dense(L.flatten(np.ascontiguousarray(x.transpose(0, 3, 1, 2))), W)
    np.testing.assert_allclose(ours, keras_out, rtol=1e-12)


# -- kernel twins -------------------------------------------------------------------
@given(st.data(), st.sampled_from([np.float32, np.float64]))
def test_matmul_kernel_twin(data, dtype):
    x = data.draw(arrays((5, 9), dtype)).astype(np.float64)
    wt = data.draw(arrays((9, 4), dtype)).astype(np.float64)
    assert_bits_equal(K.matmul_acc64(x, wt), K.matmul_acc64_twin(x, wt))


@given(st.data(), st.sampled_from([np.float32, np.float64]), st.sampled_from([1, 2]),
       st.sampled_from([1, 2]), st.sampled_from([1, 2]))
def test_conv_kernel_twin(data, dtype, s, d, g):
    xp = data.draw(arrays((2, 4, 8, 7), dtype)).astype(np.float64)
    w = data.draw(arrays((6, 4 // g, 3, 2), dtype)).astype(np.float64)
    assert_bits_equal(K.conv_acc64(xp, w, (s, 1), (d, 1), g), K.conv_acc64_twin(xp, w, (s, 1), (d, 1), g))


def test_elementwise_twins():
    rng = np.random.default_rng(5)
    x = np.concatenate([rng.standard_normal(2000) * 10, rng.standard_normal(200) * 800,
                        [0.0, -0.0, np.inf, -np.inf, np.nan, 1e-310, -1e-310, 710.0, -745.2]])
    for k, t in ((E.exp64, E.exp64_twin), (E.tanh64, E.tanh64_twin),
                 (E.sigmoid64, E.sigmoid64_twin)):
        assert_bits_equal(k(x), t(x))


_DET_SCRIPT = """
import hashlib, numpy as np, refcomp.layers as L
rng = np.random.default_rng(7)
x = rng.standard_normal((16, 3, 12, 12)).astype(np.float32)
W = rng.standard_normal((8, 3, 3, 3)).astype(np.float32)
xd = rng.standard_normal((64, 300)).astype(np.float32)
Wd = rng.standard_normal((40, 300)).astype(np.float32)
h = hashlib.sha256(L.conv2d(x, W, padding=1).tobytes() + L.dense(xd, Wd).tobytes())
print(h.hexdigest())
"""


def test_reference_deterministic_across_thread_counts():
    digests = set()
    for threads in ("1", "2"):
        env = dict(os.environ, NUMBA_NUM_THREADS=threads)
        out = subprocess.run([sys.executable, "-c", _DET_SCRIPT], env=env, capture_output=True,
                             text=True, check=True)
        digests.add(out.stdout.strip())
    exec_ns = {}
    import contextlib
    import io
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        exec(_DET_SCRIPT, exec_ns)
    digests.add(buf.getvalue().strip())
    assert len(digests) == 1


# -- fast vs reference: the gamma_n bound (FACTS.md §8) -------------------------------
def test_fast_within_gamma_bound():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((32, 500)).astype(np.float32)
    W = rng.standard_normal((20, 500)).astype(np.float32)
    b = rng.standard_normal(20).astype(np.float32)
    ref = L.dense(x, W, b).astype(np.float64)
    fast = L.dense(x, W, b, precision="fast").astype(np.float64)
    u32, u64 = 2.0**-24, 2.0**-53
    n = 501
    g = lambda u: n * u / (1 - n * u)
    mag = np.abs(x.astype(np.float64)) @ np.abs(W.astype(np.float64)).T + np.abs(b)
    # fast: float32 accumulation; ref: float64 then one rounding (<= u32 |ref|)
    bound = (g(u32) + g(u64)) * mag + u32 * np.abs(ref)
    assert np.all(np.abs(fast - ref) <= bound)
    xc = rng.standard_normal((4, 3, 10, 10)).astype(np.float32)
    Wc = rng.standard_normal((5, 3, 3, 3)).astype(np.float32)
    refc = L.conv2d(xc, Wc, padding=1).astype(np.float64)
    fastc = L.conv2d(xc, Wc, padding=1, precision="fast").astype(np.float64)
    n = 27
    magc = L.conv2d(np.abs(xc).astype(np.float64), np.abs(Wc).astype(np.float64), padding=1)
    assert np.all(np.abs(fastc - refc) <= (g(u32) + g(u64)) * magc + u32 * np.abs(refc))
