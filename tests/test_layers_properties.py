"""Hypothesis properties of the layers, kernel twins and determinism."""

import hashlib
import math
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


# -- recurrent cells with T=1 against the cell equations (reference mode) -------------
# Written here in Python floats (IEEE float64) from the equations and the
# evaluation order documented in refcomp.layers.recurrent: each dot product
# summed sequentially from +0.0 over increasing index, then its bias;
# (x-part) + (h-part); sigmoid in the documented two-branch form and tanh
# through math (libm); the state update left to right; one half-even
# rounding of each stored state to the dtype.  The order is the documented
# one, so reference mode must match bit for bit (float32 data: exact
# products; float64 data: the same rounded products in the same order).

def _py_sig(v):
    if v >= 0.0:
        return 1.0 / (1.0 + math.exp(-v))
    e = math.exp(v)
    return e / (1.0 + e)


def _py_dot(vec, W, row, b):
    acc = 0.0
    for k in range(len(vec)):
        acc += float(vec[k]) * float(W[row, k])
    return acc if b is None else acc + float(b[row])


def _rnd(v, dtype):
    return float(np.array(v, np.float64).astype(dtype))     # half-even, numpy's cast


def _py_cell(kind, x, h, c, W_ih, W_hh, b_ih, b_hh, dtype, reset_after=True, act="tanh"):
    """One step for every sample; returns (h', c') as lists of lists of floats."""
    H = W_hh.shape[1]
    hs, cs = [], []
    for n in range(x.shape[0]):
        a = [_py_dot(x[n], W_ih, r, b_ih) for r in range(W_ih.shape[0])]
        hn = [float(v) for v in h[n]]
        h_new, c_new = [], []
        for j in range(H):
            if kind == "lstm":
                z = [a[g * H + j] + _py_dot(hn, W_hh, g * H + j, b_hh) for g in range(4)]
                i, f, g, o = _py_sig(z[0]), _py_sig(z[1]), math.tanh(z[2]), _py_sig(z[3])
                c2 = _rnd(f * float(c[n, j]) + i * g, dtype)
                c_new.append(c2)
                h_new.append(_rnd(o * math.tanh(c2), dtype))
            elif kind == "gru":
                r = [_py_sig(a[k] + _py_dot(hn, W_hh, k, b_hh)) for k in range(H)]
                z = _py_sig(a[H + j] + _py_dot(hn, W_hh, H + j, b_hh))
                if reset_after:
                    nn = math.tanh(a[2 * H + j] + r[j] * _py_dot(hn, W_hh, 2 * H + j, b_hh))
                else:
                    rh = [r[k] * hn[k] for k in range(H)]
                    nn = math.tanh(a[2 * H + j] + _py_dot(rh, W_hh, 2 * H + j, b_hh))
                h_new.append(_rnd((1.0 - z) * nn + z * hn[j], dtype))
            elif kind == "mgu":
                f = [_py_sig(a[k] + _py_dot(hn, W_hh, k, b_hh)) for k in range(H)]
                fh = [f[k] * hn[k] for k in range(H)]
                cand = math.tanh(a[H + j] + _py_dot(fh, W_hh, H + j, b_hh))
                h_new.append(_rnd((1.0 - f[j]) * hn[j] + f[j] * cand, dtype))
            else:                                                    # simple_rnn
                z = a[j] + _py_dot(hn, W_hh, j, b_hh)
                v = math.tanh(z) if act == "tanh" else (z if z > 0 else (z if z != z else 0.0))
                h_new.append(_rnd(v, dtype))
        hs.append(h_new)
        cs.append(c_new)
    return hs, cs


_GATES = {"lstm": 4, "gru": 3, "mgu": 2, "simple_rnn": 1}


@given(st.data(), st.sampled_from(["lstm", "gru_after", "gru_before", "mgu", "rnn_tanh",
                                   "rnn_relu"]),
       st.sampled_from([np.float32, np.float64]), st.integers(1, 3), st.integers(0, 4),
       st.integers(1, 4), st.booleans(), st.booleans())
def test_recurrent_t1_equals_cell_equations(data, case, dtype, n, F, H, biases, states):
    kind = {"gru_after": "gru", "gru_before": "gru", "rnn_tanh": "simple_rnn",
            "rnn_relu": "simple_rnn"}.get(case, case)
    G = _GATES[kind]
    x = data.draw(arrays((n, 1, F), dtype))
    W_ih, W_hh = data.draw(arrays((G * H, F), dtype)), data.draw(arrays((G * H, H), dtype))
    b_ih = data.draw(arrays((G * H,), dtype)) if biases else None
    b_hh = data.draw(arrays((G * H,), dtype)) if biases else None
    h0 = data.draw(arrays((n, H), dtype)) if states else None
    c0 = data.draw(arrays((n, H), dtype)) if states else None
    kw = {}
    if kind == "lstm":
        kw["c0"] = c0
    if kind == "gru":
        kw["reset_after"] = case == "gru_after"
    if kind == "simple_rnn":
        kw["activation"] = "relu" if case == "rnn_relu" else "tanh"
    seq, st_ = getattr(L, kind)(x, W_ih, W_hh, b_ih, b_hh, h0=h0, **kw)
    zeros = np.zeros((n, H), dtype)
    hw, cw = _py_cell(kind, x[:, 0], zeros if h0 is None else h0,
                      zeros if c0 is None else c0, W_ih, W_hh, b_ih, b_hh, dtype,
                      reset_after=kw.get("reset_after", True), act=kw.get("activation", "tanh"))
    want_h = np.array(hw, dtype).reshape(n, H)
    assert_bits_equal(st_[0], want_h)
    assert_bits_equal(np.ascontiguousarray(seq[:, 0]), want_h)
    if kind == "lstm":
        assert_bits_equal(st_[1], np.array(cw, dtype).reshape(n, H))


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
    # float32 operands: the kernel's explicit FMA must give the twin's bits
    exact = dtype == np.float32
    assert_bits_equal(K.matmul_acc64(x, wt, exact_products=exact), K.matmul_acc64_twin(x, wt))


@given(st.data(), st.sampled_from([np.float32, np.float64]), st.sampled_from([1, 2]),
       st.sampled_from([1, 2]), st.sampled_from([1, 2]))
def test_conv_kernel_twin(data, dtype, s, d, g):
    xp = data.draw(arrays((2, 4, 8, 7), dtype)).astype(np.float64)
    w = data.draw(arrays((6, 4 // g, 3, 2), dtype)).astype(np.float64)
    exact = dtype == np.float32           # the kernel's explicit FMA: same bits as the twin
    assert_bits_equal(K.conv_acc64(xp, w, (s, 1), (d, 1), g, exact_products=exact),
                      K.conv_acc64_twin(xp, w, (s, 1), (d, 1), g))


def test_elementwise_twins():
    rng = np.random.default_rng(5)
    x = np.concatenate([rng.standard_normal(2000) * 10, rng.standard_normal(200) * 800,
                        [0.0, -0.0, np.inf, -np.inf, np.nan, 1e-310, -1e-310, 710.0, -745.2]])
    for k, t in ((E.exp64, E.exp64_twin), (E.tanh64, E.tanh64_twin),
                 (E.sigmoid64, E.sigmoid64_twin)):
        assert_bits_equal(k(x), t(x))


def test_elementwise_parallel_kernel_twin_and_thread_count():
    # From E._PAR_MIN elements the libm map runs in parallel blocks: the same
    # bits as the twin and for 1 or 2 threads (also the last partial block).
    import numba
    rng = np.random.default_rng(6)
    x = rng.standard_normal(E._PAR_MIN + E._BLOCK + 17) * 20
    x[:9] = [0.0, -0.0, np.inf, -np.inf, np.nan, 1e-310, -1e-310, 710.0, -745.2]
    before = numba.get_num_threads()
    try:
        for k, t in ((E.exp64, E.exp64_twin), (E.tanh64, E.tanh64_twin),
                     (E.sigmoid64, E.sigmoid64_twin)):
            want = t(x)
            for th in sorted({1, min(2, numba.config.NUMBA_NUM_THREADS)}):
                numba.set_num_threads(th)
                assert_bits_equal(k(x), want)
    finally:
        numba.set_num_threads(before)


_DET_SCRIPT = """
import hashlib, numpy as np, refcomp.layers as L
rng = np.random.default_rng(7)
x = rng.standard_normal((16, 3, 12, 12)).astype(np.float32)
W = rng.standard_normal((8, 3, 3, 3)).astype(np.float32)
xd = rng.standard_normal((64, 300)).astype(np.float32)
Wd = rng.standard_normal((40, 300)).astype(np.float32)
h = hashlib.sha256(L.conv2d(x, W, padding=1).tobytes() + L.dense(xd, Wd).tobytes())
# pooling (max: Numba kernel, parallel over images; avg: float64 sums)
for xx in (x, np.ascontiguousarray(x.transpose(0, 2, 3, 1))):
    lay = "NCHW" if xx is x else "NHWC"
    h.update(L.max_pool2d(xx, 3, stride=2, padding=1, layout=lay).tobytes())
    for cip in (True, False):
        h.update(L.avg_pool2d(xx, 3, stride=2, padding=1, count_include_pad=cip,
                              layout=lay).tobytes())
# recurrent layers, reference mode, every output and state
N, T, F, H = 24, 6, 33, 17
xr = rng.standard_normal((N, T, F)).astype(np.float32)
h0 = rng.standard_normal((N, H)).astype(np.float32)
c0 = rng.standard_normal((N, H)).astype(np.float32)
def w(g):
    shapes = ((g * H, F), (g * H, H), (g * H,), (g * H,))
    return [rng.standard_normal(s).astype(np.float32) for s in shapes]
runs = [L.lstm(xr, *w(4), h0=h0, c0=c0), L.gru(xr, *w(3), h0=h0, reset_after=True),
        L.gru(xr, *w(3), h0=h0, reset_after=False), L.mgu(xr, *w(2), h0=h0),
        L.simple_rnn(xr, *w(1), h0=h0), L.simple_rnn(xr, *w(1), h0=h0, activation="relu")]
for seq, states in runs:
    h.update(seq.tobytes())
    for s in states:
        h.update(s.tobytes())
print(h.hexdigest())
"""


def test_reference_deterministic_across_thread_counts():
    # conv2d, dense, max/avg pooling (both layouts), LSTM, GRU (both forms),
    # MGU, simple_rnn (tanh, relu), all reference mode: one digest for
    # NUMBA_NUM_THREADS=1, =2 and this process.
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


def test_fast_within_gamma_bound_recurrent_first_step():
    """The gamma_n bound on the first step of the recurrent layers, where it applies.

    It applies to ``simple_rnn(activation="relu")``: the first-step
    pre-activation ``(x.W_ih + b_ih) + (h0.W_hh + b_hh)`` is one sum of
    n = F + H + 2 terms (products and biases), which fast mode forms in
    float32 in BLAS's order and reference mode in float64 in the documented
    order, rounded once; relu is exact and 1-Lipschitz and commutes with
    the final rounding, so the output error is at most the pre-activation
    error.  (Later steps feed the already different h_1 back: no a-priori
    bound of this form.)

    It does not apply to the outputs of LSTM, GRU, MGU or simple_rnn(tanh):
    there the fast path also evaluates exp/tanh with NumPy's float32
    implementations, whose error is machine-dependent and not part of the
    arithmetic contract (only the dot products are), and the gates multiply
    errors by data-dependent factors; a tolerance there would be arbitrary.
    Their pre-activations are not observable through the public API.
    """
    rng = np.random.default_rng(11)
    N, F, H = 16, 300, 40
    x = rng.standard_normal((N, 1, F)).astype(np.float32)
    W_ih = rng.standard_normal((H, F)).astype(np.float32)
    W_hh = rng.standard_normal((H, H)).astype(np.float32)
    b_ih, b_hh = (rng.standard_normal(H).astype(np.float32) for _ in range(2))
    h0 = rng.standard_normal((N, H)).astype(np.float32)
    args = (x, W_ih, W_hh, b_ih, b_hh)
    ref = L.simple_rnn(*args, h0=h0, activation="relu")[1][0].astype(np.float64)
    fast = L.simple_rnn(*args, h0=h0, activation="relu", precision="fast")[1][0].astype(np.float64)
    u32, u64 = 2.0**-24, 2.0**-53
    n = F + H + 2
    g = lambda u: n * u / (1 - n * u)                                # noqa: E731
    a64 = lambda v: np.abs(v.astype(np.float64))                     # noqa: E731
    mag = a64(x[:, 0]) @ a64(W_ih).T + a64(b_ih) + a64(h0) @ a64(W_hh).T + a64(b_hh)
    bound = (g(u32) + g(u64)) * mag + u32 * np.abs(ref)
    assert np.all(np.abs(fast - ref) <= bound)
    assert np.any(fast != ref) and np.any(ref == 0) and np.any(ref > 0)   # not vacuous
