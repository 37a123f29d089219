"""Every new layer attribute against an independent naive float64 loop (hypothesis).

Pooling (ceil_mode, dilations, 1-D/3-D, Indices with storage_order, count_include_pad),
Gemm (alpha, beta, transA/B, bias broadcast), HardSigmoid alpha/beta, LogSoftmax / Softmax
axis, Flatten axis, and the recurrent options (direction, layout, sequence_lens, initial
states, peepholes, clip, input_forget) through ONNX's equations written as Python loops.
"""

import math
from itertools import product
from types import SimpleNamespace

import numpy as np
from hypothesis import assume, given, strategies as st

import refcomp.layers as L
from refcomp.testing import assert_bits_equal

from _onnx_rnn_binding import naive_recurrent, run_recurrent

f32 = np.float32


def _naive_pool(x, k, s, d, pads, ceil_mode, mode, count_include_pad=True, order=0):
    """Straight from the ONNX / PyTorch definition, Python floats, per output element."""
    n, c = x.shape[:2]
    sp = x.shape[2:]
    outs = []
    for i, size in enumerate(sp):
        span = size + pads[i][0] + pads[i][1] - ((k[i] - 1) * d[i] + 1)
        o = (math.ceil(span / s[i]) if ceil_mode else span // s[i]) + 1
        if ceil_mode and (o - 1) * s[i] >= size + pads[i][0]:
            o -= 1
        outs.append(o)
    y = np.zeros((n, c) + tuple(outs), dtype=x.dtype)
    idx = np.zeros((n, c) + tuple(outs), dtype=np.int64)
    for b, ch in product(range(n), range(c)):
        for o in product(*(range(v) for v in outs)):
            best, bi, acc, cnt = None, 0, 0.0, 0
            for off in product(*(range(v) for v in k)):
                pos = [o[i] * s[i] + off[i] * d[i] - pads[i][0] for i in range(len(sp))]
                real = all(0 <= p < sp[i] for i, p in enumerate(pos))
                inpad = all(-pads[i][0] <= p < sp[i] + pads[i][1] for i, p in enumerate(pos))
                if real:
                    v = float(x[(b, ch) + tuple(pos)])
                    acc += v
                    cnt += 1
                    flat = 0
                    axes = range(len(sp)) if order == 0 else range(len(sp) - 1, -1, -1)
                    for a in axes:
                        flat = flat * sp[a] + pos[a]
                    if best is None or (v != v and best == best) or (best == best and v > best):
                        best, bi = v, (b * c + ch) * int(np.prod(sp)) + flat
                elif inpad and count_include_pad:
                    cnt += 1
            if mode == "max":
                y[(b, ch) + o], idx[(b, ch) + o] = best, bi
            else:
                y[(b, ch) + o] = acc / cnt
    return y, idx


@st.composite
def pool_case(draw):
    nd = draw(st.integers(1, 3))
    k = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    s = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    d = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    pads = tuple((draw(st.integers(0, (k[i] - 1) * d[i])), draw(st.integers(0, (k[i] - 1) * d[i])))
                 for i in range(nd))
    sizes = tuple(draw(st.integers((k[i] - 1) * d[i] + 1, (k[i] - 1) * d[i] + (5 if nd < 3 else 2)))
                  for i in range(nd))
    ceil_mode = draw(st.booleans())
    seed = draw(st.integers(0, 2 ** 31))
    return k, s, d, pads, sizes, ceil_mode, seed


@given(pool_case(), st.booleans(), st.integers(0, 1))
def test_pooling_against_naive_loops(case, cip, order):
    k, s, d, pads, sizes, ceil_mode, seed = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((1, 2) + sizes).astype(f32)
    x[x > 1.5] = 0.25                              # ties
    try:
        want_max, want_idx = _naive_pool(x, k, s, d, pads, ceil_mode, "max", order=order)
        want_avg, _ = _naive_pool(x, k, s, d, pads, ceil_mode, "avg", cip)
    except (TypeError, ZeroDivisionError):         # a window without an input element
        assume(False)
    y, idx = L.max_pool(x, k, stride=s, padding=pads, dilation=d, ceil_mode=ceil_mode,
                        return_indices=True, storage_order=order)
    assert_bits_equal(y, want_max)
    assert np.array_equal(idx, want_idx)
    assert_bits_equal(L.avg_pool(x, k, stride=s, padding=pads, dilation=d, ceil_mode=ceil_mode,
                                 count_include_pad=cip), want_avg.astype(f32))


@given(st.integers(1, 4), st.integers(1, 5), st.integers(1, 4), st.booleans(), st.booleans(),
       st.sampled_from([1.0, 0.5, -1.25, 0.3]), st.sampled_from([1.0, 0.0, 2.0, 0.35]),
       st.sampled_from(["none", "scalar", "one", "row", "col", "full"]),
       st.integers(0, 2 ** 31))
def test_gemm_against_naive_loop(m, kk, n, ta, tb, alpha, beta, bias, seed):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((kk, m) if ta else (m, kk)).astype(f32)
    B = rng.standard_normal((n, kk) if tb else (kk, n)).astype(f32)
    C = {"none": None, "scalar": rng.standard_normal(()), "one": rng.standard_normal(1),
         "row": rng.standard_normal(n), "col": rng.standard_normal((m, 1)),
         "full": rng.standard_normal((m, n))}[bias]
    C = None if C is None else np.asarray(C, f32)
    a32, b32 = float(f32(alpha)), float(f32(beta))
    Ap, Bp = (A.T if ta else A), (B.T if tb else B)
    want = np.zeros((m, n), f32)
    for i, j in product(range(m), range(n)):
        acc = 0.0
        for t in range(kk):
            acc += float(Ap[i, t]) * float(Bp[t, j])
        acc = a32 * acc
        if C is not None:
            acc = acc + b32 * float(np.broadcast_to(C, (m, n))[i, j])
        want[i, j] = acc
    assert_bits_equal(L.gemm(A, B, C, alpha=alpha, beta=beta, trans_a=ta, trans_b=tb), want)


@given(st.lists(st.integers(1, 3), min_size=0, max_size=2), st.integers(1, 3),
       st.integers(1, 4), st.integers(1, 3), st.booleans(), st.booleans(), st.integers(0, 2 ** 31))
def test_matmul_against_naive_loop(batch, m, k, n, a1d, b1d, seed):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((k,) if a1d else tuple(batch) + (m, k)).astype(f32)
    B = rng.standard_normal((k,) if b1d else (1,) * len(batch) + (k, n)).astype(f32)
    got = L.matmul(A, B)
    want = np.matmul(A.astype(np.float64), B.astype(np.float64))   # shape only
    assert got.shape == want.shape
    a = A[None] if a1d else A
    b = B[:, None] if b1d else B
    full = np.empty(np.broadcast_shapes(a.shape[:-2], b.shape[:-2]) + (a.shape[-2], b.shape[-1]),
                    f32)
    for idx in np.ndindex(full.shape):
        ai = tuple(i if s > 1 else 0 for i, s in zip(idx[:-2], a.shape[:-2]))
        bi = tuple(i if s > 1 else 0 for i, s in zip(idx[:-2], b.shape[:-2]))
        acc = 0.0
        for t in range(k):
            acc += float(a[ai + (idx[-2], t)]) * float(b[bi + (t, idx[-1])])
        full[idx] = acc
    assert_bits_equal(got.reshape(-1), full.reshape(-1))


@given(st.lists(st.floats(-10, 10, width=32), min_size=1, max_size=12),
       st.floats(-3, 3, width=32), st.floats(-3, 3, width=32))
def test_hard_sigmoid_onnx_against_naive(vals, alpha, beta):
    x = np.array(vals, f32)
    want = np.array([min(max(float(f32(alpha)) * v + float(f32(beta)), 0.0), 1.0) + 0.0
                     for v in x.tolist()], f32)
    assert_bits_equal(L.hard_sigmoid(x, variant="onnx", alpha=alpha, beta=beta), want)


@given(st.integers(1, 3), st.integers(1, 4), st.integers(1, 4), st.integers(-3, 2),
       st.integers(0, 2 ** 31))
def test_log_softmax_and_flatten_axis(a, b, c, axis, seed):
    x = (np.random.default_rng(seed).standard_normal((a, b, c)) * 5).astype(f32)
    got = L.log_softmax(x, axis)
    v = np.moveaxis(x.astype(np.float64), axis, -1)
    want = np.empty_like(v)
    for idx in np.ndindex(v.shape[:-1]):
        row = v[idx].tolist()
        m = max(row)
        s = 0.0
        for t in row:
            s += math.exp(t - m)
        want[idx] = [(t - m) - math.log(s) for t in row]
    assert_bits_equal(got, np.moveaxis(want, -1, axis).astype(f32))
    fa = axis + 3 if axis < 0 else axis
    fl = L.flatten(x, axis=axis)
    assert fl.shape == (int(np.prod(x.shape[:fa])), int(np.prod(x.shape[fa:])))
    assert_bits_equal(fl.reshape(-1), x.reshape(-1))


@st.composite
def rnn_case(draw):
    op = draw(st.sampled_from(["LSTM", "GRU", "RNN"]))
    direction = draw(st.sampled_from(["forward", "reverse", "bidirectional"]))
    layout = draw(st.integers(0, 1))
    n, t, f, h = draw(st.integers(1, 3)), draw(st.integers(1, 4)), draw(st.integers(1, 3)), \
        draw(st.integers(1, 3))
    opts = {"seq": draw(st.booleans()), "init": draw(st.booleans()), "bias": draw(st.booleans())}
    if op == "LSTM":
        opts["peep"] = draw(st.booleans())
        opts["input_forget"] = draw(st.booleans())
    if op == "GRU":
        opts["lbr"] = draw(st.integers(0, 1))
    opts["clip"] = draw(st.sampled_from([None, 0.5, 2.0]))
    return op, direction, layout, n, t, f, h, opts, draw(st.integers(0, 2 ** 31))


@given(rnn_case())
def test_recurrent_options_against_onnx_equations(case):
    op, direction, layout, n, t, f, h, opts, seed = case
    rng = np.random.default_rng(seed)
    d = 2 if direction == "bidirectional" else 1
    g = {"LSTM": 4, "GRU": 3, "RNN": 1}[op]
    x = {"X": rng.standard_normal((n, t, f) if layout else (t, n, f)).astype(f32),
         "W": rng.standard_normal((d, g * h, f)).astype(f32),
         "R": rng.standard_normal((d, g * h, h)).astype(f32)}
    names = ["X", "W", "R", "", "", "", "", ""]
    if opts["bias"]:
        x["B"], names[3] = rng.standard_normal((d, 2 * g * h)).astype(f32), "B"
    if opts["seq"]:
        x["L"], names[4] = rng.integers(1, t + 1, n).astype(np.int32), "L"
    if opts["init"]:
        shape = (n, d, h) if layout else (d, n, h)
        x["H0"], names[5] = rng.standard_normal(shape).astype(f32), "H0"
        if op == "LSTM":
            x["C0"], names[6] = rng.standard_normal(shape).astype(f32), "C0"
    if opts.get("peep"):
        x["P"], names[7] = rng.standard_normal((d, 3 * h)).astype(f32), "P"
    a = {"direction": direction, "layout": layout}
    if opts["clip"] is not None:
        a["clip"] = opts["clip"]
    if opts.get("input_forget"):
        a["input_forget"] = 1
    if op == "GRU":
        a["linear_before_reset"] = opts["lbr"]
    outputs = ["Y", "Y_h", "Y_c"] if op == "LSTM" else ["Y", "Y_h"]
    node = SimpleNamespace(input=names, output=outputs)
    got = run_recurrent(op, node, a, x)
    want = naive_recurrent(op, node, a, x)
    for gv, wv in zip(got, want):
        assert_bits_equal(np.ascontiguousarray(gv), np.ascontiguousarray(wv))


_ACT_NAMES = ["Relu", "Tanh", "Sigmoid", "Affine", "LeakyRelu", "ThresholdedRelu", "ScaledTanh",
              "HardSigmoid", "Elu", "Softsign", "Softplus"]
_TAKES = {"Affine": (1, 1), "LeakyRelu": (1, 0), "ThresholdedRelu": (1, 0),
          "ScaledTanh": (1, 1), "HardSigmoid": (1, 1), "Elu": (1, 0)}


@st.composite
def rnn_activation_case(draw):
    op = draw(st.sampled_from(["LSTM", "GRU", "RNN"]))
    direction = draw(st.sampled_from(["forward", "reverse", "bidirectional"]))
    per = {"LSTM": 3, "GRU": 2, "RNN": 1}[op] * (2 if direction == "bidirectional" else 1)
    names = draw(st.lists(st.sampled_from(_ACT_NAMES), min_size=per, max_size=per))
    val = st.floats(-2.0, 2.0, width=32, allow_subnormal=False)
    alpha = [draw(val) for n in names if _TAKES.get(n, (0, 0))[0]]
    beta = [draw(val) for n in names if _TAKES.get(n, (0, 0))[1]]
    shape = (draw(st.integers(1, 3)), draw(st.integers(1, 4)), draw(st.integers(1, 3)),
             draw(st.integers(1, 3)))
    return (op, direction, draw(st.integers(0, 1)), names, alpha, beta, shape,
            draw(st.sampled_from([None, 1.5])), draw(st.integers(0, 2 ** 31)))


@given(rnn_activation_case())
def test_recurrent_activations_against_onnx_equations(case):
    """``activations`` / ``activation_alpha`` / ``activation_beta`` of LSTM, GRU and RNN, every
    direction, every ONNX activation name: refcomp's float32 reference equals the ONNX equations
    as a Python float64 loop (one time step at a time, the state rounded once per step to
    float32), bit for bit: each activation is one float64 evaluation in both (libm exp / tanh /
    log1p, the same operation order), so there is no bound to allow for."""
    op, direction, layout, names, alpha, beta, (n, t, f, h), clip, seed = case
    rng = np.random.default_rng(seed)
    d = 2 if direction == "bidirectional" else 1
    g = {"LSTM": 4, "GRU": 3, "RNN": 1}[op]
    x = {"X": rng.standard_normal((n, t, f) if layout else (t, n, f)).astype(f32),
         "W": rng.standard_normal((d, g * h, f)).astype(f32),
         "R": (0.5 * rng.standard_normal((d, g * h, h))).astype(f32),
         "B": rng.standard_normal((d, 2 * g * h)).astype(f32)}
    a = {"direction": direction, "layout": layout, "activations": names}
    if alpha:
        a["activation_alpha"] = alpha
    if beta:
        a["activation_beta"] = beta
    if clip is not None:
        a["clip"] = clip
    if op == "GRU":
        a["linear_before_reset"] = int(rng.integers(0, 2))
    outputs = ["Y", "Y_h", "Y_c"] if op == "LSTM" else ["Y", "Y_h"]
    node = SimpleNamespace(input=["X", "W", "R", "B", "", "", "", ""], output=outputs)
    got = run_recurrent(op, node, a, x)
    want = naive_recurrent(op, node, a, x)
    assert len(got) == len(want)
    for gv, wv in zip(got, want):
        assert_bits_equal(np.ascontiguousarray(gv), np.ascontiguousarray(wv))


def test_recurrent_activation_hand_values():
    """One step, H = F = 1, zero weights, bias b: RNN h = f(b) for hand-checkable f."""
    x = {"X": np.zeros((1, 1, 1), f32), "W": np.zeros((1, 1, 1), f32),
         "R": np.zeros((1, 1, 1), f32)}
    node = SimpleNamespace(input=["X", "W", "R", "B", "", "", "", ""], output=["Y", "Y_h"])
    cases = [("Affine", [2.0], [0.5], -1.0, -1.5), ("LeakyRelu", [0.25], [], -2.0, -0.5),
             ("ThresholdedRelu", [1.0], [], 1.0, 1.0), ("ThresholdedRelu", [1.0], [], 0.5, 0.0),
             ("HardSigmoid", [0.5], [0.5], 3.0, 1.0), ("Softsign", [], [], 3.0, 0.75),
             ("Relu", [], [], -0.0, 0.0), ("ScaledTanh", [2.0], [0.0], 5.0, 0.0)]
    for name, al, be, bias, want in cases:
        x["B"] = np.array([[bias, 0.0]], f32)
        a = {"activations": [name], "activation_alpha": al, "activation_beta": be, "layout": 1}
        y, yh = run_recurrent("RNN", node, a, x)
        assert y.reshape(-1).tolist() == [want], (name, y)
        assert np.signbit(y).all() == np.signbit(want), (name, y)
