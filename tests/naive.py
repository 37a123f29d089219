"""Naive, independent float64 loop implementations used as ground truth.

Written from the layer definitions (not from refcomp's code): plain Python
loops, Python floats (IEEE float64), ``math`` functions.  For float32 data
each product is exact in float64, so with the same summation order as the
documented contract the results must match refcomp's reference mode bit for
bit.
"""

import math

import numpy as np


def dense(x, W, b=None):
    n, k = x.shape
    o = W.shape[0]
    y = np.empty((n, o), dtype=np.float64)
    for r in range(n):
        for j in range(o):
            acc = 0.0
            for i in range(k):
                acc += float(x[r, i]) * float(W[j, i])
            if b is not None:
                acc += float(b[j])
            y[r, j] = acc
    return y


def conv2d(x, W, b, stride, pads, dilation, groups):
    """x NCHW, W OIHW, pads ((t, b), (l, r)); padded terms count as 0.0 * w."""
    n, c, h, w = x.shape
    o, cg, kh, kw = W.shape
    (pt, pb), (pl, pr) = pads
    oh = (h + pt + pb - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (w + pl + pr - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    og = o // groups
    y = np.empty((n, o, oh, ow))
    for b_ in range(n):
        for oc in range(o):
            g = oc // og
            for i in range(oh):
                for j in range(ow):
                    acc = 0.0
                    for cc in range(cg):
                        for ki in range(kh):
                            for kj in range(kw):
                                r = i * stride[0] + ki * dilation[0] - pt
                                s = j * stride[1] + kj * dilation[1] - pl
                                v = float(x[b_, g * cg + cc, r, s]) if (0 <= r < h and 0 <= s < w) else 0.0
                                acc += v * float(W[oc, cc, ki, kj])
                    if b is not None:
                        acc += float(b[oc])
                    y[b_, oc, i, j] = acc
    return y


def pool2d(x, k, s, pads, mode, count_include_pad=True):
    n, c, h, w = x.shape
    (pt, pb), (pl, pr) = pads
    oh = (h + pt + pb - k[0]) // s[0] + 1
    ow = (w + pl + pr - k[1]) // s[1] + 1
    y = np.empty((n, c, oh, ow))
    for a in range(n):
        for ch in range(c):
            for i in range(oh):
                for j in range(ow):
                    vals, real = [], 0
                    for ki in range(k[0]):
                        for kj in range(k[1]):
                            r, q = i * s[0] + ki - pt, j * s[1] + kj - pl
                            if 0 <= r < h and 0 <= q < w:
                                vals.append(float(x[a, ch, r, q]))
                                real += 1
                            else:
                                vals.append(None)
                    if mode == "max":
                        y[a, ch, i, j] = max(v for v in vals if v is not None)
                    else:
                        acc = 0.0
                        for v in vals:
                            acc += 0.0 if v is None else v
                        y[a, ch, i, j] = acc / (k[0] * k[1] if count_include_pad else real)
    return y


def sig(v):
    return 1.0 / (1.0 + math.exp(-v)) if v >= 0 else math.exp(v) / (1.0 + math.exp(v))


def lstm_cell(x, h, c, W_ih, W_hh, b_ih, b_hh):
    """One LSTM step, float64, gates i,f,g,o (FACTS.md §1.1)."""
    H = h.shape[1]
    a = dense(x, W_ih, b_ih)
    r = dense(h, W_hh, b_hh)
    z = a + r
    i = np.vectorize(sig)(z[:, :H])
    f = np.vectorize(sig)(z[:, H:2 * H])
    g = np.vectorize(math.tanh)(z[:, 2 * H:3 * H])
    o = np.vectorize(sig)(z[:, 3 * H:])
    c2 = f * c + i * g
    h2 = o * np.vectorize(math.tanh)(c2)
    return h2, c2


def gru_cell(x, h, W_ih, W_hh, b_ih, b_hh, reset_after):
    """One GRU step, float64, gates r,z,n (FACTS.md §2.1)."""
    H = h.shape[1]
    a = dense(x, W_ih, b_ih)
    rz = a[:, :2 * H] + dense(h, W_hh[:2 * H], b_hh[:2 * H])
    r = np.vectorize(sig)(rz[:, :H])
    z = np.vectorize(sig)(rz[:, H:])
    if reset_after:
        n = np.vectorize(math.tanh)(a[:, 2 * H:] + r * dense(h, W_hh[2 * H:], b_hh[2 * H:]))
    else:
        n = np.vectorize(math.tanh)(a[:, 2 * H:] + dense(r * h, W_hh[2 * H:], b_hh[2 * H:]))
    return (1 - z) * n + z * h
