"""Recurrent layers with every ONNX LSTM / GRU / RNN attribute (private engine).

One direction at a time, canonical (PyTorch) gate order, batch-first
(N, T, F).  Used by :func:`refcomp.layers.lstm`, :func:`gru` and
:func:`simple_rnn` whenever an option beyond the classic forward pass is
given (direction, sequence_lens, peepholes, clip, input_forget,
activations, the seed-000 GRU update); the classic path is unchanged.

Arithmetic ("reference"; "fast" is the same sequence in the input dtype
with NumPy products): the input projection ``x_t W_ih^T + b_ih`` and the
recurrent one ``h W_hh^T + b_hh`` as :func:`refcomp.layers.dense` (float64
exact products, sequential sums), added in float64; peephole terms
``p * c`` added after (float64); ``clip`` bounds the gate pre-activations
(the inputs of f and g; LSTM: i, f, g, o, not the cell fed to h) to
[-clip, clip] (float64, exact), as ONNX Runtime does (measured: clipping
the cell before h too differs from it by up to 0.08 in
tests/test_io_onnx_attributes.py); activations in float64 (libm); the state
update in float64 left to right as written; h (and c) rounded once to the
dtype at the end of every step.  With ``sequence_lens``, sample b runs
steps 0..len_b-1 (forward) or len_b-1..0 (reverse); its outputs at later
steps are +0.0 and its final state is the state after its last step.
"""

import math

import numpy as np

from .._errors import ParameterError
from ..kernels.elementwise import exp64, sigmoid64, tanh64
from .dense import dense_acc64

__all__ = ["ACTIVATION_DEFAULTS", "make_activation", "run_direction"]

#: ONNX recurrent activation -> (default alpha, default beta); None: takes no parameter.
ACTIVATION_DEFAULTS = {
    "relu": (None, None), "tanh": (None, None), "sigmoid": (None, None),
    "affine": (1.0, 0.0), "leakyrelu": (0.01, None), "thresholdedrelu": (1.0, None),
    "scaledtanh": (1.0, 1.0), "hardsigmoid": (0.2, 0.5), "elu": (1.0, None),
    "softsign": (None, None), "softplus": (None, None),
}


def _log1p_exp(v):
    # log(1 + e^x) in float64, libm exp and log1p per element
    e = exp64(v)
    return np.array([math.log1p(t) for t in e.reshape(-1).tolist()]).reshape(v.shape)


def make_activation(name, alpha, beta, work):
    """Elementwise float function (ONNX RNN activation list), computed in ``work``.

    Relu max(0, x) (NaN kept); Tanh, Sigmoid (libm, as refcomp.layers);
    Affine alpha*x + beta; LeakyRelu x if x >= 0 else alpha*x;
    ThresholdedRelu x if x >= alpha else 0 (the RNN operator text);
    ScaledTanh alpha*tanh(beta*x); HardSigmoid min(max(alpha*x + beta, 0), 1);
    Elu x if x >= 0 else alpha*(e^x - 1); Softsign x/(1 + |x|); Softplus
    log(1 + e^x).  alpha and beta are float32 values (ONNX attributes).
    """
    key = str(name).lower()
    if key not in ACTIVATION_DEFAULTS:
        raise ParameterError(f"activations: unknown function {name!r}; ONNX recurrent "
                             f"activations are {sorted(ACTIVATION_DEFAULTS)}")
    work = np.dtype(work).type
    ref = work == np.float64
    a = None if alpha is None else work(alpha)
    b = None if beta is None else work(beta)
    if key == "tanh":
        return tanh64 if ref else np.tanh
    if key == "sigmoid":
        return sigmoid64 if ref else (lambda v: 1 / (1 + np.exp(-v)))
    if key == "relu":
        return lambda v: np.maximum(v, work(0)) + work(0)
    if key == "affine":
        return lambda v: a * v + b
    if key == "leakyrelu":
        return lambda v: np.where(v >= 0, v, a * v)
    if key == "thresholdedrelu":
        return lambda v: np.where(v >= a, v, work(0))
    if key == "scaledtanh":
        t = tanh64 if ref else np.tanh
        return lambda v: a * t(b * v)
    if key == "hardsigmoid":
        return lambda v: np.minimum(np.maximum(a * v + b, work(0)), work(1))
    if key == "elu":
        ex = exp64 if ref else np.exp
        return lambda v: np.where(v >= 0, v, a * (ex(np.minimum(v, 0)) - work(1)))
    if key == "softsign":
        return lambda v: v / (work(1) + np.abs(v))
    return _log1p_exp if ref else (lambda v: np.log1p(np.exp(v)))


class _Ops:
    def __init__(self, dtype, precision):
        self.dtype = dtype
        self.work = np.float64 if precision == "reference" else np.dtype(dtype).type
        self.ref = precision == "reference"

    def affine(self, x, W, b):
        if self.ref:
            y = dense_acc64(x, W)
            return y if b is None else y + b.astype(np.float64)
        y = x @ W.T
        return y if b is None else y + b

    def store(self, v):
        return v.astype(self.dtype)


def run_direction(kind, x, w, h0, c0, seq_lens, reverse, opts, precision):
    """One direction: returns (Y (N, T, H) dtype, h_T, c_T or None).

    ``w``: dict W_ih, W_hh, b_ih, b_hh (optional), P (LSTM peepholes (3H,)
    in order i, f, o, optional).  ``opts``: acts (callables), clip (float
    or None), input_forget, reset_after, update ("standard" / "seed000").
    """
    ops = _Ops(x.dtype, precision)
    n, t_len, f = x.shape
    W_ih, W_hh, b_ih, b_hh = w["W_ih"], w["W_hh"], w.get("b_ih"), w.get("b_hh")
    H = W_hh.shape[1]
    proj = ops.affine(np.ascontiguousarray(x).reshape(n * t_len, f), W_ih, b_ih)
    proj = proj.reshape(n, t_len, W_ih.shape[0])
    lens = np.full(n, t_len, dtype=np.int64) if seq_lens is None else seq_lens.astype(np.int64)
    clip = opts.get("clip")
    acts = opts["acts"]
    wk = ops.work

    def cl(v):
        return v if clip is None else np.clip(v, wk(-clip), wk(clip))

    h, c = h0, c0
    Y = np.zeros((n, t_len, H), dtype=x.dtype)
    rows = np.arange(n)
    P = w.get("P")
    if P is not None:
        P = P.astype(wk)
    for k in range(t_len):
        active = k < lens
        if not active.any():
            break
        t_idx = np.where(active, (lens - 1 - k) if reverse else k, 0)
        a = proj[rows, t_idx]
        hw = h.astype(wk)
        if kind == "lstm":
            z = a + ops.affine(h, W_hh, b_hh)
            cw = c.astype(wk)
            zi, zf, zg, zo = z[:, :H], z[:, H:2 * H], z[:, 2 * H:3 * H], z[:, 3 * H:]
            if P is not None:
                zi = zi + P[:H] * cw
                zf = zf + P[H:2 * H] * cw
            i = acts[0](cl(zi))
            fg = (wk(1) - i) if opts.get("input_forget") else acts[0](cl(zf))
            g = acts[1](cl(zg))
            c_new = ops.store(fg * cw + i * g)
            cnw = c_new.astype(wk)
            if P is not None:
                zo = zo + P[2 * H:] * cnw
            o = acts[0](cl(zo))
            h_new = ops.store(o * acts[2](cnw))
            c = np.where(active[:, None], c_new, c)
        elif kind == "gru":
            W_hrz, W_hn = W_hh[:2 * H], W_hh[2 * H:]
            b_hrz = None if b_hh is None else b_hh[:2 * H]
            b_hn = None if b_hh is None else b_hh[2 * H:]
            rz = a[:, :2 * H] + ops.affine(h, W_hrz, b_hrz)
            r, zg = acts[0](cl(rz[:, :H])), acts[0](cl(rz[:, H:]))
            if opts.get("reset_after", True):
                nn = acts[1](cl(a[:, 2 * H:] + r * ops.affine(h, W_hn, b_hn)))
            else:
                rh = r * hw
                hn = (dense_acc64(rh, W_hn) if ops.ref else rh @ W_hn.T)
                hn = hn if b_hn is None else hn + b_hn.astype(wk)
                nn = acts[1](cl(a[:, 2 * H:] + hn))
            if opts.get("update", "standard") == "seed000":
                h_new = ops.store((wk(1) - zg) * hw + zg * nn)
            else:
                h_new = ops.store((wk(1) - zg) * nn + zg * hw)
        else:
            h_new = ops.store(acts[0](cl(a + ops.affine(h, W_hh, b_hh))))
        h = np.where(active[:, None], h_new, h)
        Y[rows[active], t_idx[active]] = h_new[active]
    return Y, h, c
