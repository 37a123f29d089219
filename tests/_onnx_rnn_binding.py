"""ONNX LSTM / GRU / RNN node -> refcomp.layers.lstm / gru / simple_rnn (gate helper)."""

import math

import numpy as np

import refcomp.layers as L
from refcomp import convert

_CONV = {"LSTM": convert.lstm_from_onnx, "GRU": convert.gru_from_onnx,
         "RNN": convert.rnn_from_onnx}


def run_recurrent(kind, node, a, x):
    names = list(node.input) + [""] * (8 - len(node.input))
    get = lambda i: x.get(names[i]) if names[i] else None  # noqa: E731
    X, W, R, B = get(0), get(1), get(2), get(3)
    seq, h0, c0, P = get(4), get(5), get(6), get(7) if kind == "LSTM" else None
    layout = int(a.get("layout", 0))
    direction = a.get("direction", "forward")
    ndir = 2 if direction == "bidirectional" else 1
    # ONNX layout 0 is the layer functions' layout="time_major": X goes in as given
    lay = "batch_first" if layout else "time_major"
    xb = X if layout else X.transpose(1, 0, 2)                   # (N, T, F), for the shapes

    def state(s):
        if s is None:
            return None
        s = s if not layout else s.transpose(1, 0, 2)            # (D, N, H)
        return np.ascontiguousarray(s[0] if ndir == 1 else s)

    kw = {}
    if kind == "GRU":
        kw["reset_after"] = bool(a.get("linear_before_reset", 0))
    ws = []
    for d in range(ndir):
        extra = {"linear_before_reset": 0} if kind == "GRU" else {}
        ws.append(_CONV[kind](W, R, B, direction=d, **extra))
    opts = dict(direction=direction, activations=a.get("activations"),
                activation_alpha=a.get("activation_alpha"),
                activation_beta=a.get("activation_beta"), clip=a.get("clip"),
                sequence_lens=None if seq is None else seq.astype(np.int64), layout=lay)
    if ndir == 2:
        opts["reverse"] = dict(zip(("W_ih", "W_hh", "b_ih", "b_hh"), ws[1]))
    if kind == "LSTM":
        opts["input_forget"] = bool(a.get("input_forget", 0))
        if P is not None:
            opts["peepholes"] = convert.peepholes_from_onnx(P, direction=0)
            if ndir == 2:
                opts["reverse"]["peepholes"] = convert.peepholes_from_onnx(P, direction=1)
        y, (h, c) = L.lstm(X, *ws[0], h0=state(h0), c0=state(c0), **opts, **kw)
    elif kind == "GRU":
        y, (h,) = L.gru(X, *ws[0], h0=state(h0), **opts, **kw)
        c = None
    else:
        y, (h,) = L.simple_rnn(X, *ws[0], h0=state(h0), **opts)
        c = None
    n, t = xb.shape[:2]
    H = R.shape[-1]
    Y = y.reshape(n, t, ndir, H) if layout else \
        y.reshape(t, n, ndir, H).transpose(0, 2, 1, 3)            # (N, T, D, H) / (T, D, N, H)
    hs = h[None] if ndir == 1 else h                              # (D, N, H)
    cs = None if c is None else (c[None] if ndir == 1 else c)
    if layout:
        hs = hs.transpose(1, 0, 2)
        cs = None if cs is None else cs.transpose(1, 0, 2)
    outs = [np.ascontiguousarray(Y), np.ascontiguousarray(hs),
            None if cs is None else np.ascontiguousarray(cs)]
    return [o for o, name in zip(outs, node.output) if name]


# -- the float64 formula, rounded once per step --------------------------------------------
def _sig(v):
    if v >= 0:
        return 1.0 / (1.0 + math.exp(-v))
    e = math.exp(v)
    return e / (1.0 + e)


def _dot(vec, row):
    acc = 0.0
    for p, q in zip(vec, row):
        acc += float(p) * float(q)
    return acc


def _exp(v):
    try:
        return math.exp(v)
    except OverflowError:
        return math.inf


#: ONNX's recurrent activation functions, written from the LSTM / GRU / RNN operator text
#: (Python floats, libm): name -> (takes alpha, takes beta, f(v, alpha, beta)).  Relu gives
#: +0.0 for every v <= 0 (refcomp's documented rule for max(0, v) at -0.0); Softplus is
#: ln(1 + e^v) evaluated as log1p(e^v) (the 1 + e^v is then not rounded).
_ACTS = {
    "relu": (False, False, lambda v, al, be: v if v > 0 else 0.0),
    "tanh": (False, False, lambda v, al, be: math.tanh(v)),
    "sigmoid": (False, False, lambda v, al, be: _sig(v)),
    "affine": (True, True, lambda v, al, be: al * v + be),
    "leakyrelu": (True, False, lambda v, al, be: v if v >= 0 else al * v),
    "thresholdedrelu": (True, False, lambda v, al, be: v if v >= al else 0.0),
    "scaledtanh": (True, True, lambda v, al, be: al * math.tanh(be * v)),
    "hardsigmoid": (True, True, lambda v, al, be: min(max(al * v + be, 0.0), 1.0)),
    "elu": (True, False, lambda v, al, be: v if v >= 0 else al * (_exp(v) - 1.0)),
    "softsign": (False, False, lambda v, al, be: v / (1.0 + abs(v))),
    "softplus": (False, False, lambda v, al, be: math.log1p(_exp(v))),
}


def _naive_acts(kind, a, ndir):
    """Per direction, the list of one-argument activations (f, g[, h]) of the node's
    ``activations`` / ``activation_alpha`` / ``activation_beta`` (each alpha / beta a float32
    attribute value, consumed in order by the functions that take one)."""
    per = {"LSTM": 3, "GRU": 2, "RNN": 1}[kind]
    names = a.get("activations") or (["Sigmoid", "Tanh", "Tanh"][:per] if kind != "RNN"
                                     else ["Tanh"]) * ndir
    names = [n.decode() if isinstance(n, bytes) else n for n in names]
    alphas = [float(np.float32(v)) for v in (a.get("activation_alpha") or [])]
    betas = [float(np.float32(v)) for v in (a.get("activation_beta") or [])]
    funcs = []
    for name in names:
        ta, tb, fn = _ACTS[name.lower()]
        al = alphas.pop(0) if ta else None
        be = betas.pop(0) if tb else None
        funcs.append(lambda v, fn=fn, al=al, be=be: fn(v, al, be))
    assert not alphas and not betas, "unused activation_alpha / activation_beta values"
    return [funcs[d * per:(d + 1) * per] for d in range(ndir)]


def naive_recurrent(kind, node, a, x):
    """ONNX's equations in Python float64 (gate order of the ONNX tensors, no refcomp code),
    the stored state rounded to the input dtype after every step (as every framework stores
    it): ``((x.W + Wb) + (h.R + Rb)) [+ P*c]``, sequential dot products, libm exp / tanh;
    the node's ``activations`` (with alpha / beta) as ONNX's operator text defines them
    (:data:`_ACTS`; every parameterized function needs its values in the lists)."""
    names = list(node.input) + [""] * (8 - len(node.input))
    get = lambda i: x.get(names[i]) if names[i] else None  # noqa: E731
    X, W, R, B = get(0), get(1), get(2), get(3)
    seq, h0, c0, P = get(4), get(5), get(6), get(7) if kind == "LSTM" else None
    layout = int(a.get("layout", 0))
    direction = a.get("direction", "forward")
    ndir = W.shape[0]
    dt = X.dtype
    Xb = X if layout else X.transpose(1, 0, 2)
    n, t_len, _ = Xb.shape
    H = R.shape[-1]
    G = {"LSTM": 4, "GRU": 3, "RNN": 1}[kind]
    lbr = int(a.get("linear_before_reset", 0))
    clip = a.get("clip")
    cl = (lambda v: v) if clip is None else \
        (lambda v, c=float(np.float32(clip)): min(max(v, -c), c))
    coupled = bool(a.get("input_forget", 0))
    Y = np.zeros((n, t_len, ndir, H), dtype=dt)
    Yh = np.zeros((ndir, n, H), dtype=dt)
    Yc = np.zeros((ndir, n, H), dtype=dt)
    acts = _naive_acts(kind, a, ndir)
    for d in range(ndir):
        rev = direction == "reverse" or d == 1
        Wd, Rd = W[d], R[d]
        fa = acts[d][0]
        ga = acts[d][1] if kind != "RNN" else None
        ha = acts[d][2] if kind == "LSTM" else None
        Bd = B[d] if B is not None else np.zeros(2 * G * H, dt)
        Pd = P[d] if P is not None else np.zeros(3 * H, dt)
        for b in range(n):
            L_b = int(seq[b]) if seq is not None else t_len
            hinit = h0 if not layout or h0 is None else h0.transpose(1, 0, 2)
            cinit = c0 if not layout or c0 is None else c0.transpose(1, 0, 2)
            h = [float(v) for v in (hinit[d, b] if hinit is not None else np.zeros(H))]
            c = [float(v) for v in (cinit[d, b] if cinit is not None else np.zeros(H))]
            steps = range(L_b - 1, -1, -1) if rev else range(L_b)
            for t in steps:
                xt = Xb[b, t]
                pre_x = [_dot(xt, Wd[r]) + float(Bd[r]) for r in range(G * H)]
                pre_h = [_dot(h, Rd[r]) + float(Bd[G * H + r]) for r in range(G * H)]
                if kind == "LSTM":      # ONNX order i, o, f, c
                    new_c, new_h = [], []
                    for j in range(H):
                        zi = cl(pre_x[j] + pre_h[j] + float(Pd[j]) * c[j])
                        zf = cl(pre_x[2 * H + j] + pre_h[2 * H + j] + float(Pd[2 * H + j]) * c[j])
                        zc = cl(pre_x[3 * H + j] + pre_h[3 * H + j])
                        ig = fa(zi)
                        fg = 1.0 - ig if coupled else fa(zf)
                        cj = float(dt.type(fg * c[j] + ig * ga(zc)))
                        zo = cl(pre_x[H + j] + pre_h[H + j] + float(Pd[H + j]) * cj)
                        new_c.append(cj)
                        new_h.append(float(dt.type(fa(zo) * ha(cj))))
                    h, c = new_h, new_c
                elif kind == "GRU":     # ONNX order z, r, h
                    new_h = []
                    r_gate = [fa(cl(pre_x[H + j] + pre_h[H + j])) for j in range(H)]
                    rh = [r_gate[k] * h[k] for k in range(H)]
                    for j in range(H):
                        z = fa(cl(pre_x[j] + pre_h[j]))
                        if lbr:
                            hh = ga(cl(pre_x[2 * H + j] + r_gate[j] * pre_h[2 * H + j]))
                        else:
                            acc = 0.0
                            for k in range(H):
                                acc += rh[k] * float(Rd[2 * H + j, k])
                            hh = ga(cl(pre_x[2 * H + j] + (acc + float(Bd[5 * H + j]))))
                        new_h.append(float(dt.type((1 - z) * hh + z * h[j])))
                    h = new_h
                else:
                    h = [float(dt.type(fa(cl(pre_x[j] + pre_h[j])))) for j in range(H)]
                Y[b, t, d] = h
            Yh[d, b], Yc[d, b] = h, c
    Yo = Y if layout else Y.transpose(1, 2, 0, 3)
    if layout:
        Yh, Yc = Yh.transpose(1, 0, 2), Yc.transpose(1, 0, 2)
    outs = [Yo, Yh, Yc]
    return [o for o, name in zip(outs, node.output) if name]
