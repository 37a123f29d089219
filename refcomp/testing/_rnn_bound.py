"""Per-step error bounds of the recurrent layers (see :mod:`.framework_bound`).

Each function takes a float64 layer (weights already widened), the input
values ``v`` (N, T, F) and bounds ``e``, and the context ``c`` of
:mod:`.framework_bound` (unit roundoff ``c.u``, elementary-function error
``c.f``, extra weight rounding ``c.r``), and returns the lists of per-step
hidden values and bounds.  The cells are those of
:mod:`refcomp.layers.recurrent` (FACTS.md §1.1, §2.1; MGU of Zhou et al.
2016); every gate pre-activation is a dot product of ``F + H`` terms plus
two biases, bounded by ``gamma_{F+H+2}`` whatever the order (FACTS.md §8).

Every float64 product here is refcomp's fixed-order accumulation
(:func:`refcomp.kernels.linear.matmul_acc64`) and tanh is libm's
(:func:`refcomp.kernels.elementwise.tanh64`), not BLAS or NumPy's SIMD
loops, so the values and bounds are the same bits on every machine (the
golden vectors of ``data/conformance`` store them).
"""

import numpy as np

from .._errors import ParameterError
from ..kernels.elementwise import tanh64
from ..kernels.linear import matmul_acc64

__all__ = ["lstm_bound", "gru_bound", "mgu_bound", "simple_rnn_bound"]


def _rnn_weights(layer):
    w = layer.weights
    W_ih, W_hh = w["W_ih"], w["W_hh"]
    b_ih = w.get("b_ih", np.zeros(W_ih.shape[0]))
    b_hh = w.get("b_hh", np.zeros(W_hh.shape[0]))
    return W_ih, W_hh, b_ih, b_hh


def _mm(x, W):
    """``x @ W.T`` in float64, fixed sequential order (deterministic bits)."""
    return matmul_acc64(np.ascontiguousarray(x, np.float64),
                        np.ascontiguousarray(W.T, np.float64))


def _sig(x):
    return 0.5 * (1.0 + tanh64(0.5 * x))


def _dsig(s):
    """sigmoid' from the value s = sigmoid(x) (first order: the derivative at v)."""
    return s * (1.0 - s)


def _dtanh(t):
    """tanh' from the value t = tanh(x)."""
    return 1.0 - t * t


def _pre(W, x, ex, b, c, n_extra):
    """Values and bounds of ``x W^T + b`` (a dot product of len(x) terms + a bias).

    ``gamma_{n + n_extra + c.r}``: ``c.r`` = 1 when the weights and biases
    are rounded to the evaluation dtype first (one more relative error
    ``u`` on every term).
    """
    val = _mm(x, W) + b
    aW = np.abs(W)
    g = c.gamma(W.shape[1] + n_extra + c.r)
    err = _mm(ex, aW) + g * (_mm(np.abs(x) + ex, aW) + np.abs(b))
    return val, err


def lstm_bound(layer, v, e, c):
    W_ih, W_hh, b_ih, b_hh = _rnn_weights(layer)
    H = W_hh.shape[1]
    N, T = v.shape[:2]
    h, eh = np.zeros((N, H)), np.zeros((N, H))
    cs, ec = np.zeros((N, H)), np.zeros((N, H))
    hs, es = [], []
    for t in range(T):
        # z = (x W_ih^T + b_ih) + (h W_hh^T + b_hh): F + H products, two biases
        z1, ez1 = _pre(W_ih, v[:, t], e[:, t], b_ih, c, H + 2)
        z2, ez2 = _pre(W_hh, h, eh, b_hh, c, W_ih.shape[1] + 2)
        z, ez = z1 + z2, ez1 + ez2
        gi, gf, gg, go = (slice(j * H, (j + 1) * H) for j in range(4))
        i, f, g, o = _sig(z[:, gi]), _sig(z[:, gf]), tanh64(z[:, gg]), _sig(z[:, go])
        ei = _dsig(i) * ez[:, gi] + c.f * i
        ef = _dsig(f) * ez[:, gf] + c.f * f
        eg = _dtanh(g) * ez[:, gg] + c.f * np.abs(g)
        eo = _dsig(o) * ez[:, go] + c.f * o
        c_new = f * cs + i * g
        ec = (f * ec + np.abs(cs) * ef + i * eg + np.abs(g) * ei
              + c.gamma(2) * (np.abs(f * cs) + np.abs(i * g)))
        tc = tanh64(c_new)
        h = o * tc
        eh = np.abs(tc) * eo + o * (_dtanh(tc) * ec + c.f * np.abs(tc)) + c.u * np.abs(h)
        cs = c_new
        hs.append(h)
        es.append(eh)
    return hs, es


def gru_bound(layer, v, e, c):
    W_ih, W_hh, b_ih, b_hh = _rnn_weights(layer)
    H = W_hh.shape[1]
    N, T = v.shape[:2]
    reset_after = layer.attrs["reset_after"]
    h, eh = np.zeros((N, H)), np.zeros((N, H))
    hs, es = [], []
    R, Z, Nn = (slice(j * H, (j + 1) * H) for j in range(3))
    for t in range(T):
        # r, z may be formed as one dot product of F + H terms and two biases: gamma_{F+H+2}
        gi, egi = _pre(W_ih, v[:, t], e[:, t], b_ih, c, H + 2)
        gh, egh = _pre(W_hh[:2 * H], h, eh, b_hh[:2 * H], c, W_ih.shape[1] + 2)
        # r, z: (x W_i + b_i) + (h W_h + b_h), one more addition
        pre = gi[:, :2 * H] + gh
        epre = egi[:, :2 * H] + egh + c.u * np.abs(pre)
        r, z = _sig(pre[:, :H]), _sig(pre[:, H:])
        er = _dsig(r) * epre[:, :H] + c.f * r
        ez = _dsig(z) * epre[:, H:] + c.f * z
        if reset_after:
            hn, ehn = _pre(W_hh[Nn], h, eh, b_hh[Nn], c, 1)
            npre = gi[:, Nn] + r * hn
            enpre = (egi[:, Nn] + r * ehn + np.abs(hn) * er
                     + c.gamma(2) * (np.abs(gi[:, Nn]) + np.abs(r * hn)))
        else:
            rh = r * h
            erh = r * eh + np.abs(h) * er + c.u * np.abs(rh)
            hn, ehn = _pre(W_hh[Nn], rh, erh, b_hh[Nn], c, 1)
            npre = gi[:, Nn] + hn
            enpre = egi[:, Nn] + ehn + c.u * np.abs(npre)
        n = tanh64(npre)
        en = _dtanh(n) * enpre + c.f * np.abs(n)
        h_new = (1 - z) * n + z * h
        # covers (1 - z) n + z h and n + z (h - n): three roundings on |n|, |h|, |z (h - n)|
        eh = (np.abs(h - n) * ez + (1 - z) * en + z * eh
              + c.gamma(3) * (np.abs(n) + np.abs(h) + np.abs(z * (h - n))))
        h = h_new
        hs.append(h)
        es.append(eh)
    return hs, es


def simple_rnn_bound(layer, v, e, c):
    W_ih, W_hh, b_ih, b_hh = _rnn_weights(layer)
    H = W_hh.shape[1]
    N, T = v.shape[:2]
    act = layer.attrs["activation"]
    if act not in ("tanh", "relu"):
        raise ParameterError(f"framework_error_bound: simple_rnn activation {act!r} is not "
                             "supported")
    h, eh = np.zeros((N, H)), np.zeros((N, H))
    hs, es = [], []
    for t in range(T):
        z1, ez1 = _pre(W_ih, v[:, t], e[:, t], b_ih, c, H + 2)
        z2, ez2 = _pre(W_hh, h, eh, b_hh, c, W_ih.shape[1] + 2)
        z, ez = z1 + z2, ez1 + ez2
        if act == "tanh":
            h = tanh64(z)
            eh = _dtanh(h) * ez + c.f * np.abs(h)
        else:
            h, eh = np.maximum(z, 0.0), ez
        hs.append(h)
        es.append(eh)
    return hs, es


def mgu_bound(layer, v, e, c):
    """MGU: f = sig(a_f), h~ = tanh(W_h x + b_ih_h + U_h (f h) + b_hh_h),
    h' = (1 - f) h + f h~ (the form of :func:`refcomp.layers.mgu`).

    ``f h`` is one rounded product (``u |f h|`` plus the propagated errors of
    f and h); the update has the GRU's structure with ``z = 1 - f`` and
    ``n = h~``, so the same three-rounding term covers ``(1 - f) h + f h~``
    and ``h + f (h~ - h)``.
    """
    W_ih, W_hh, b_ih, b_hh = _rnn_weights(layer)
    H = W_hh.shape[1]
    F = W_ih.shape[1]
    N, T = v.shape[:2]
    h, eh = np.zeros((N, H)), np.zeros((N, H))
    hs, es = [], []
    Fs, Hs = slice(0, H), slice(H, 2 * H)
    for t in range(T):
        a, ea = _pre(W_ih, v[:, t], e[:, t], b_ih, c, H + 2)
        pf, epf = _pre(W_hh[Fs], h, eh, b_hh[Fs], c, F + 2)
        f = _sig(a[:, Fs] + pf)
        ef = _dsig(f) * (ea[:, Fs] + epf) + c.f * f
        fh = f * h
        efh = f * eh + np.abs(h) * ef + c.u * np.abs(fh)
        pu, epu = _pre(W_hh[Hs], fh, efh, b_hh[Hs], c, F + 2)
        cand = tanh64(a[:, Hs] + pu)
        ec = _dtanh(cand) * (ea[:, Hs] + epu) + c.f * np.abs(cand)
        h_new = (1 - f) * h + f * cand
        eh = (np.abs(cand - h) * ef + f * ec + (1 - f) * eh
              + c.gamma(3) * (np.abs(h) + np.abs(cand) + np.abs(f * (cand - h))))
        h = h_new
        hs.append(h)
        es.append(eh)
    return hs, es
