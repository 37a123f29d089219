"""An independent float32 evaluator of refcomp models, in several summation orders.

Written from the layer definitions (FACTS.md §1-3), not from refcomp's
code: every elementary operation is one NumPy float32 operation (one
rounding), and the dot products of dense, conv2d and the recurrent gates
are summed in a chosen order:

* ``"sequential"``: left to right over the terms (then the bias);
* ``"reversed"``: right to left;
* ``"pairwise"``: recursive halving (the terms padded with exact zeros);
* ``"blocked"``: sequential sums of blocks of 4 terms, then the blocks in
  sequence (a GEMM kernel's order).

exp, tanh and sigmoid are NumPy's float32 ``np.exp`` / ``np.tanh`` and
``1 / (1 + exp(-x))``.  Used as ground truth that refcomp's derived bound
must contain (tests/test_testing_conformance.py).
"""

import numpy as np

f32 = np.float32
ORDERS = ("sequential", "reversed", "pairwise", "blocked")


def sum_terms(P, order):
    """Sum float32 terms along the last axis in ``order`` (float32 additions)."""
    P = P.astype(f32)
    n = P.shape[-1]
    if n == 0:
        return np.zeros(P.shape[:-1], f32)
    if order == "sequential":
        acc = P[..., 0].copy()
        for k in range(1, n):
            acc = acc + P[..., k]
        return acc
    if order == "reversed":
        acc = P[..., n - 1].copy()
        for k in range(n - 2, -1, -1):
            acc = acc + P[..., k]
        return acc
    if order == "pairwise":
        while P.shape[-1] > 1:
            if P.shape[-1] % 2:
                P = np.concatenate([P, np.zeros(P.shape[:-1] + (1,), f32)], axis=-1)
            P = P[..., 0::2] + P[..., 1::2]
        return P[..., 0]
    if order == "blocked":
        blocks = [sum_terms(P[..., i:i + 4], "sequential") for i in range(0, n, 4)]
        return sum_terms(np.stack(blocks, axis=-1), "sequential")
    raise ValueError(order)


def dot(x, W, b, order):
    """x (..., n) float32, W (o, n): sum_i x_i W_oi (+ b_o), float32 products."""
    P = x[..., None, :].astype(f32) * W.astype(f32)           # rounded products
    y = sum_terms(P, order)
    return y if b is None else y + b.astype(f32)


def _pair(v):
    return tuple(v) if isinstance(v, (list, tuple)) else (v, v)


def _same(size, k, s, d):
    out = (size + s - 1) // s
    tot = max(0, (out - 1) * s + (k - 1) * d + 1 - size)
    return tot // 2, tot - tot // 2


def _pads(padding, hw, k, s, d):
    if padding == "valid":
        return ((0, 0), (0, 0))
    if padding == "same":
        return tuple(_same(hw[i], k[i], s[i], d[i]) for i in (0, 1))
    if isinstance(padding, int):
        return ((padding, padding),) * 2
    a, b = padding
    if isinstance(a, (list, tuple)):
        return (tuple(a), tuple(b))
    return ((a, a), (b, b))


def _patches(xp, k, s, d):
    """xp (N, C, Hp, Wp) -> (N, OH, OW, C, kh, kw) windows."""
    n, c, hp, wp = xp.shape
    oh = (hp - d[0] * (k[0] - 1) - 1) // s[0] + 1
    ow = (wp - d[1] * (k[1] - 1) - 1) // s[1] + 1
    out = np.empty((n, oh, ow, c, k[0], k[1]), xp.dtype)
    for i in range(k[0]):
        for j in range(k[1]):
            out[..., i, j] = xp[:, :, i * d[0]: i * d[0] + s[0] * (oh - 1) + 1: s[0],
                                j * d[1]: j * d[1] + s[1] * (ow - 1) + 1: s[1]].transpose(0, 2, 3, 1)
    return out


def conv2d(x, W, b, a, order):
    nhwc = a["layout"] == "NHWC"
    xc = x.transpose(0, 3, 1, 2) if nhwc else x
    k, s, d = W.shape[2:], _pair(a["stride"]), _pair(a["dilation"])
    (t, bo), (le, r) = _pads(a["padding"], xc.shape[2:], k, s, d)
    xp = np.pad(xc, ((0, 0), (0, 0), (t, bo), (le, r)))
    g = a["groups"]
    cg, og = W.shape[1], W.shape[0] // g
    outs = []
    for j in range(g):
        pt = _patches(xp[:, j * cg:(j + 1) * cg], k, s, d)
        pt = pt.reshape(pt.shape[:3] + (-1,))
        outs.append(dot(pt, W[j * og:(j + 1) * og].reshape(og, -1),
                        None if b is None else b[j * og:(j + 1) * og], order))
    y = np.concatenate(outs, axis=-1)                      # (N, OH, OW, O)
    return y if nhwc else y.transpose(0, 3, 1, 2)


def pool(x, a, kind):
    nhwc = a["layout"] == "NHWC"
    xc = x.transpose(0, 3, 1, 2) if nhwc else x
    k = _pair(a["size"])
    s = k if a["stride"] is None else _pair(a["stride"])
    (t, bo), (le, r) = _pads(a["padding"], xc.shape[2:], k, s, (1, 1))
    fill = -np.inf if kind == "max" else 0.0
    xp = np.pad(xc, ((0, 0), (0, 0), (t, bo), (le, r)), constant_values=fill).astype(f32)
    pt = _patches(xp, k, s, (1, 1))                        # (N, OH, OW, C, kh, kw)
    if kind == "max":
        y = pt.max(axis=(-2, -1))
    else:
        tot = sum_terms(pt.reshape(pt.shape[:4] + (-1,)), "sequential")
        if a["count_include_pad"]:
            cnt = f32(k[0] * k[1])
        else:
            ones = np.pad(np.ones((1, 1) + xc.shape[2:], f32), ((0, 0), (0, 0), (t, bo), (le, r)))
            cnt = _patches(ones, k, s, (1, 1)).sum(axis=(-2, -1)).astype(f32)[0]
        y = tot / cnt
    y = y.transpose(0, 3, 1, 2)
    return y.transpose(0, 2, 3, 1) if nhwc else y


def _tuple(v, n):
    return tuple(v) if isinstance(v, (list, tuple)) else (v,) * n


def pool_nd(x, a, kind):
    """N-D max / average pooling, channels first, one output element at a time.

    Per axis: window start o*s - lo, positions start + j*d; a position is
    real (0 <= p < size), padding (-lo <= p < size + hi) or overhang (beyond
    the padding, reached in ceil mode).  Output size floor or ceil of
    (size + lo + hi - (k-1) d - 1) / s, plus one, minus one in ceil mode if
    the last window starts at or beyond size + lo (ONNX / PyTorch).
    Average: float32 sum of the real elements in row-major window order,
    divided by their count (plus the padding positions when
    ``count_include_pad``).
    """
    import itertools
    nd = x.ndim - 2
    k = _tuple(a["size"], nd)
    s = k if a["stride"] is None else _tuple(a["stride"], nd)
    d = _tuple(a["dilation"], nd)
    p = a["padding"]
    pads = [(p, p)] * nd if isinstance(p, int) else \
        [tuple(q) if isinstance(q, (list, tuple)) else (q, q) for q in p]
    outs = []
    for i in range(nd):
        span = x.shape[2 + i] + pads[i][0] + pads[i][1] - (k[i] - 1) * d[i] - 1
        o = (-(-span // s[i]) if a["ceil_mode"] else span // s[i]) + 1
        if a["ceil_mode"] and (o - 1) * s[i] >= x.shape[2 + i] + pads[i][0]:
            o -= 1
        outs.append(o)
    y = np.zeros(x.shape[:2] + tuple(outs), f32)
    for oi in itertools.product(*[range(o) for o in outs]):
        vals, padcount = [], 0
        for ji in itertools.product(*[range(kk) for kk in k]):
            pos = [oi[i] * s[i] - pads[i][0] + ji[i] * d[i] for i in range(nd)]
            if all(0 <= pos[i] < x.shape[2 + i] for i in range(nd)):
                vals.append(x[(slice(None), slice(None)) + tuple(pos)])
            elif all(-pads[i][0] <= pos[i] < x.shape[2 + i] + pads[i][1] for i in range(nd)):
                padcount += 1
        V = np.stack(vals, axis=-1).astype(f32)
        if kind == "max":
            r = V.max(axis=-1)
        else:
            cnt = len(vals) + (padcount if a["count_include_pad"] else 0)
            r = sum_terms(V, "sequential") / f32(cnt)
        y[(slice(None), slice(None)) + oi] = r
    return y


def conv1d(x, W, b, a, order):
    """(N, C, L) with W (O, C/g, k) as the conv2d above on a height-1 image."""
    p = a["padding"]
    if isinstance(p, str) and p.lower() == "valid":
        pads = (0, 0)
    elif isinstance(p, str):
        L, k = x.shape[2], W.shape[2]
        s_, d_ = a["stride"], a["dilation"]
        out = (L + s_ - 1) // s_
        tot = max(0, (out - 1) * s_ + (k - 1) * d_ + 1 - L)
        lo = tot - tot // 2 if p.lower() == "same_lower" else tot // 2
        pads = (lo, tot - lo)
    else:
        pads = tuple(p) if isinstance(p, (list, tuple)) else (p, p)
    a2 = {"layout": "NCHW", "stride": (1, a["stride"]), "dilation": (1, a["dilation"]),
          "padding": ((0, 0), pads), "groups": a["groups"]}
    return conv2d(x[:, :, None, :], W[:, :, None, :], b, a2, order)[:, :, 0, :]


def sigmoid(z):
    return f32(1) / (f32(1) + np.exp(-z.astype(f32)))


def _act(f, x, a):
    if f == "relu":
        return np.maximum(x, f32(0))
    if f == "linear":
        return x
    if f == "tanh":
        return np.tanh(x)
    if f == "sigmoid":
        return sigmoid(x)
    if f == "hard_sigmoid":
        if a["variant"] == "onnx":      # ONNX HardSigmoid: float32 attributes alpha, beta
            y = f32(a["alpha"]) * x + f32(a["beta"])
        else:
            y = x / f32(6) + f32(0.5) if a["variant"] == "keras3" else f32(0.2) * x + f32(0.5)
        return np.clip(y, f32(0), f32(1))
    if f == "softmax":
        e = np.exp(x - x.max(axis=a["axis"], keepdims=True))
        return e / e.sum(axis=a["axis"], keepdims=True)
    raise ValueError(f)


def _onnx_act(name, alpha, beta):
    """ONNX recurrent activation in float32 (the operator text's formulas)."""
    n = name.lower()
    a = None if alpha is None else f32(alpha)
    b = None if beta is None else f32(beta)
    table = {
        "sigmoid": sigmoid, "tanh": np.tanh, "relu": lambda v: np.maximum(v, f32(0)),
        "affine": lambda v: a * v + b,
        "leakyrelu": lambda v: np.where(v >= 0, v, a * v),
        "thresholdedrelu": lambda v: np.where(v >= a, v, f32(0)),
        "scaledtanh": lambda v: a * np.tanh(b * v),
        "hardsigmoid": lambda v: np.minimum(np.maximum(a * v + b, f32(0)), f32(1)),
        "elu": lambda v: np.where(v >= 0, v, a * (np.exp(np.minimum(v, f32(0))) - f32(1))),
        "softsign": lambda v: v / (f32(1) + np.abs(v)),
        "softplus": lambda v: np.log1p(np.exp(v)),
    }
    return lambda v: table[n](v.astype(f32)).astype(f32)


_DEFAULTS = {"relu": (None, None), "tanh": (None, None), "sigmoid": (None, None),
             "affine": (1.0, 0.0), "leakyrelu": (0.01, None), "thresholdedrelu": (1.0, None),
             "scaledtanh": (1.0, 1.0), "hardsigmoid": (0.2, 0.5), "elu": (1.0, None),
             "softsign": (None, None), "softplus": (None, None)}


def _acts(kind, a, ndir):
    base = {"lstm": ["Sigmoid", "Tanh", "Tanh"], "gru": ["Sigmoid", "Tanh"],
            "mgu": ["Sigmoid", "Tanh"], "simple_rnn": [a.get("activation", "tanh")]}[kind]
    names = list(a.get("activations") or base * ndir)
    if len(names) == len(base) and ndir == 2:
        names = names * 2
    al, be = list(a.get("activation_alpha") or []), list(a.get("activation_beta") or [])
    out = []
    for nm in names:
        da, db = _DEFAULTS[nm.lower()]
        out.append(_onnx_act(nm, al.pop(0) if da is not None and al else da,
                             be.pop(0) if db is not None and be else db))
    per = len(base)
    return [out[i * per:(i + 1) * per] for i in range(ndir)]


def _rnn_dir(kind, a, w, x, order, acts, h0=None, c0=None, lens=None, rev=False):
    """One direction from h0 / c0 (default zeros) over ``lens`` steps per sample (ONNX: a
    sample's later steps keep its state and output 0; reverse starts at time len - 1)."""
    Wi, Wh = w["W_ih"], w["W_hh"]
    H = Wh.shape[1]
    bi = w.get("b_ih", np.zeros(Wi.shape[0], f32))
    bh = w.get("b_hh", np.zeros(Wi.shape[0], f32))
    P = w.get("P")
    clip = a.get("clip")

    def cl(v):
        return v if clip is None else np.clip(v, f32(-clip), f32(clip))
    N, T, _ = x.shape
    h = np.zeros((N, H), f32) if h0 is None else np.broadcast_to(h0, (N, H)).astype(f32)
    c = np.zeros((N, H), f32) if c0 is None else np.broadcast_to(c0, (N, H)).astype(f32)
    lens = np.full(N, T) if lens is None else np.asarray(lens)
    out = np.zeros((N, T, H), f32)
    for k in range(T):
        run = k < lens
        t_of = [(int(lens[n]) - 1 - k if rev else k) if run[n] else 0 for n in range(N)]
        xt = x[np.arange(N), t_of]
        h_old, c_old = h, c
        gi = dot(xt, Wi, bi, order)
        if kind == "lstm":
            z = gi + dot(h, Wh, bh, order)
            zi, zf, zg, zo = (z[:, j * H:(j + 1) * H] for j in range(4))
            if P is not None:
                zi = zi + P[:H] * c
                zf = zf + P[H:2 * H] * c
            i = acts[0](cl(zi))
            f = (f32(1) - i) if a.get("input_forget") else acts[0](cl(zf))
            c = f * c + i * acts[1](cl(zg))
            if P is not None:
                zo = zo + P[2 * H:] * c
            h = acts[0](cl(zo)) * acts[2](c)
        elif kind == "gru":
            gh = dot(h, Wh[:2 * H], bh[:2 * H], order)
            r = acts[0](cl(gi[:, :H] + gh[:, :H]))
            zz = acts[0](cl(gi[:, H:2 * H] + gh[:, H:]))
            if a["reset_after"]:
                n = acts[1](cl(gi[:, 2 * H:] + r * dot(h, Wh[2 * H:], bh[2 * H:], order)))
            else:
                n = acts[1](cl(gi[:, 2 * H:] + dot(r * h, Wh[2 * H:], bh[2 * H:], order)))
            if a.get("update", "standard") == "seed000":
                h = (f32(1) - zz) * h + zz * n
            else:
                h = (f32(1) - zz) * n + zz * h
        elif kind == "mgu":
            f = sigmoid(gi[:, :H] + dot(h, Wh[:H], bh[:H], order))
            cand = np.tanh(gi[:, H:] + dot(f * h, Wh[H:], bh[H:], order))
            h = (f32(1) - f) * h + f * cand
        else:
            h = acts[0](cl(gi + dot(h, Wh, bh, order)))
        h = np.where(run[:, None], h, h_old)
        c = np.where(run[:, None], c, c_old)
        for n in np.nonzero(run)[0]:
            out[n, t_of[n]] = h[n]
    return out, h


def _rnn(layer, x, order):
    w = {k: np.asarray(v, f32) for k, v in layer.weights.items()}
    kind, a = layer.kind, layer.attrs
    direction = a.get("direction", "forward")
    ndir = 2 if direction == "bidirectional" else 1
    acts = _acts(kind, a, ndir)
    names = ("W_ih", "W_hh", "b_ih", "b_hh", "P")
    runs = []
    if direction in ("forward", "bidirectional"):
        runs.append(({n: w[n] for n in names if n in w}, False, acts[0]))
    if direction in ("reverse", "bidirectional"):
        ww = {n: w[n] for n in names if n in w} if direction == "reverse" else \
            {n: w[n + "_reverse"] for n in names if n + "_reverse" in w}
        runs.append((ww, True, acts[-1]))
    tm = a.get("layout", "batch_first") == "time_major"
    x = x.transpose(1, 0, 2) if tm else x
    lens = a.get("sequence_lens")
    seqs, finals = [], []
    for d, (ww, rev, ac) in enumerate(runs):
        suf = "_reverse" if d == 1 else ""
        seq, h = _rnn_dir(kind, a, ww, x, order, ac, w.get("h0" + suf), w.get("c0" + suf),
                          lens, rev)
        seqs.append(seq)
        finals.append(h)
    if a["return_sequences"]:
        y = np.concatenate(seqs, axis=2)
        return y.transpose(1, 0, 2) if tm else y
    return np.concatenate(finals, axis=1)


def run_layer(layer, x, order):
    k, a = layer.kind, layer.attrs
    w = {n: np.asarray(v) for n, v in layer.weights.items()}
    if k == "dense":
        al, be = f32(a.get("alpha", 1.0)), f32(a.get("beta", 1.0))
        if al == 1 and be == 1:
            return dot(x, w["W"], w.get("b"), order)
        y = al * dot(x, w["W"], None, order)          # Gemm: alpha (A B) + beta C
        return y if w.get("b") is None else y + be * w["b"].astype(f32)
    if k == "conv1d":
        return conv1d(x, w["W"], w.get("b"), a, order)
    if k in ("max_pool", "avg_pool") or (k in ("max_pool2d", "avg_pool2d") and (
            a.get("ceil_mode") or a.get("dilation", 1) not in (1, (1, 1), [1, 1]))):
        if a.get("layout", "NCHW") == "NHWC":
            return pool_nd(x.transpose(0, 3, 1, 2), a, k[:3]).transpose(0, 2, 3, 1)
        return pool_nd(x, a, k[:3])
    if k == "conv2d":
        return conv2d(x, w["W"], w.get("b"), a, order)
    if k in ("max_pool2d", "avg_pool2d"):
        return pool(x, a, k[:3])
    if k == "flatten":
        return x.reshape(x.shape[0], -1)
    if k == "reshape":
        return x.reshape((x.shape[0],) + tuple(a["shape"]))
    if k == "dropout":
        return x
    if k == "activation":
        return _act(a["function"], x, a)
    if k == "batch_norm":
        if a.get("axis") is not None:       # ONNX BatchNormalization: the given axis
            ax = a["axis"] + x.ndim if a["axis"] < 0 else a["axis"]
        else:
            ax = 1 if (x.ndim == 4 and a["layout"] == "NCHW") or x.ndim == 2 else x.ndim - 1
        sh = [1] * x.ndim
        sh[ax] = -1
        s = w["gamma"] / np.sqrt(w["var"] + f32(a["eps"]))
        return (x - w["mean"].reshape(sh)) * s.reshape(sh) + w["beta"].reshape(sh)
    if k == "residual":
        fx = x
        for sub in layer.layers:
            fx = run_layer(sub, fx, order)
        return x + fx
    if k in ("lstm", "gru", "mgu", "simple_rnn"):
        return _rnn(layer, x, order)
    raise ValueError(k)


def run_model(model, x, order="sequential"):
    """float32 output of ``model`` on ``x`` with dot products summed in ``order``."""
    x = np.asarray(x, f32)
    for layer in model.layers:
        x = run_layer(layer, x, order).astype(f32)
    return x
