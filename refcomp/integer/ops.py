"""Integer kernels on 8-bit codes: the int32 accumulators of dense and conv2d (groups,
depthwise; FBGEMM's depthwise variant).  Pooling and ReLU clamps live in
:mod:`refcomp.integer.pooling`, the residual addition in :mod:`refcomp.integer.add`.

The int32 accumulator
---------------------
``acc[o] = sum_i (x[i] - zx) * (w[o, i] - zw[o]) + bias[o]``, defined as the exact integer
sum **reduced modulo 2**32** into int32 (two's complement wrap-around), which is what every
runtime's int32 adds do when they overflow (ONNX: "accumulation may overflow if and only if in
32 bits"; in C++ TFLite the overflow is formally undefined, in practice it wraps).  Because
addition modulo 2**32 is associative, the result does not depend on the summation order.  With
8-bit operands an overflow needs more than 66,000 terms at the extremes (127 * 255 per
product), so it never happens in the shipped models; it is tested on purpose.

The sum is computed by a BLAS product of the centred operands: every product and every partial
sum is an integer of magnitude at most ``K * max|x - zx| * max|w - zw|``; below 2**24 the product
runs in float32, else in float64 (exact below 2**53: K < 2**37), so it is exact in **any**
summation order and on any BLAS.  When that bound plus max|bias| is below 2**31 nothing can
wrap and the result is converted and the bias added in int32; otherwise the exact integer is
formed in int64 and wrapped.  This path is bit-identical to the integer definition; the tests
check it against Python-int loops.

Padding of a convolution is the input zero point (a real 0, the TFLite and ONNX Runtime rule),
i.e. a 0 in the centred operand.
"""

import numpy as np

from .._errors import DTypeError, ParameterError, ShapeError
from .._validate import describe
from .requantize import ACT_DTYPES, check_zero_point, dtype_range

__all__ = ["linear_acc", "conv2d_acc", "wrap_int32", "conv_pads", "fbgemm_depthwise_path"]

_EXACT_TERMS = 1 << 37            # K * 255 * 255 < 2**53 for K below this


def wrap_int32(v):
    """Exact integers (int64 or integral float64 array) reduced modulo 2**32 into int32."""
    v = v.astype(np.int64) if v.dtype != np.int64 else v
    return (((v + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)).astype(np.int32)


def _codes(name, q, ndim=None):
    if not isinstance(q, np.ndarray) or q.dtype.name not in ACT_DTYPES:
        raise DTypeError(f"{name} must be an int8 or uint8 ndarray, got {describe(q)}")
    if ndim is not None and q.ndim != ndim:
        raise ShapeError(f"{name} must have {ndim} dimensions, got {describe(q)}")
    return q


def _weights(name, w, ndim):
    if not isinstance(w, np.ndarray) or w.dtype.name not in ("int8", "uint8"):
        raise DTypeError(f"{name} must be an int8 or uint8 ndarray, got {describe(w)}")
    if w.ndim != ndim:
        raise ShapeError(f"{name} must have {ndim} dimensions, got {describe(w)}")
    return w


def _bias(bias, n):
    if bias is None:
        return None
    if not isinstance(bias, np.ndarray) or bias.dtype != np.int32:
        raise DTypeError(f"bias must be an int32 ndarray, got {describe(bias)}")
    if bias.shape != (n,):
        raise ShapeError(f"bias must have shape ({n},) (one per output channel), got "
                         f"{describe(bias)}")
    return bias


def _w_zero_point(zw, n, dt):
    """Weight zero point(s) as an int64 (n,) array (scalar or per output channel)."""
    if isinstance(zw, np.ndarray) and zw.ndim == 1:
        if zw.dtype.kind not in "iu" or zw.shape != (n,):
            raise ParameterError(f"w_zero_point must be an integer scalar or shape ({n},), "
                                 f"got {describe(zw)}")
        lo, hi = dtype_range(dt)
        if zw.size and (zw.min() < lo or zw.max() > hi):
            raise ParameterError(f"w_zero_point must lie in [{lo}, {hi}]")
        return zw.astype(np.int64)
    return np.full(n, check_zero_point("w_zero_point", zw, dt), np.int64)


def linear_acc(xq, x_zero_point, wq, bias=None, *, w_zero_point=0):
    """int32 accumulator of an integer dense layer.

    Parameters
    ----------
    xq : ndarray int8/uint8 (N, K)
    x_zero_point : int in the range of ``xq.dtype``
    wq : ndarray int8/uint8 (O, K) (refcomp's (out, in) layout)
    bias : ndarray int32 (O,), optional
    w_zero_point : int or integer ndarray (O,) (0 for TFLite's symmetric weights)

    Returns
    -------
    acc : ndarray int32 (N, O)
        ``sum_k (x[n,k] - zx) * (w[o,k] - zw[o]) + bias[o]`` reduced modulo 2**32 (module
        docstring).
    """
    _codes("xq", xq, 2)
    _weights("wq", wq, 2)
    zx = check_zero_point("x_zero_point", x_zero_point, xq.dtype)
    if xq.shape[1] != wq.shape[1]:
        raise ShapeError(f"xq has {xq.shape[1]} features but wq expects {wq.shape[1]} "
                         f"(xq {describe(xq)}, wq {describe(wq)}; wq is (out, in))")
    _bias(bias, wq.shape[0])
    zw = _w_zero_point(w_zero_point, wq.shape[0], wq.dtype)
    return _linear_acc(xq, zx, wq, bias, zw)


def _gemm_dtype(k, xmax, wmax):
    """float32 when every partial sum is an integer below 2**24 (exact in float32 in any
    order: K * max|x - zx| * max|w - zw| < 2**24), else float64 (exact below 2**53)."""
    return np.float32 if k * xmax * wmax < (1 << 24) else np.float64


def _finish(out, bias, bound):
    """int32 accumulator from the exact float sums ``out`` plus the int32 bias: directly in
    int32 when |sum| + |bias| < 2**31 (nothing can wrap), else in int64 then wrapped."""
    bmax = 0 if bias is None else int(np.abs(bias.astype(np.int64)).max(initial=0))
    if bound + bmax < (1 << 31):
        acc = out.astype(np.int32)
        if bias is not None:
            acc += bias.reshape((-1,) + (1,) * (out.ndim - 2))
        return acc
    acc = out.astype(np.int64)
    if bias is not None:
        acc += bias.astype(np.int64).reshape((-1,) + (1,) * (out.ndim - 2))
    return wrap_int32(acc)


def _linear_acc(xq, zx, wq, bias, zw=None):
    k = xq.shape[1]
    if k >= _EXACT_TERMS:
        raise ParameterError(f"{k} terms per output: the float64 path is exact only below 2**37")
    lo, hi = dtype_range(xq.dtype)
    xmax = max(hi - zx, zx - lo)
    zmax = 0 if zw is None else int(np.abs(zw).max(initial=0))
    wmax = 128 + zmax if wq.dtype == np.int8 else 255 + zmax
    ft = _gemm_dtype(k, xmax, wmax)
    xc = xq.astype(ft)
    if zx:
        xc -= ft(zx)
    wc = wq.astype(ft)
    if zw is not None and np.any(zw):
        wc = wc - zw.astype(ft)[:, None]
    return _finish(xc @ wc.T, bias, k * xmax * wmax)       # exact (module docstring)


def _pair(name, v, lo=1):
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        v = (int(v), int(v))
    try:
        a, b = (int(t) for t in v)
    except (TypeError, ValueError):
        raise ParameterError(f"{name} must be an int or a pair of ints, got {v!r}") from None
    if a < lo or b < lo:
        raise ParameterError(f"{name} must be >= {lo}, got {v!r}")
    return a, b


def conv_pads(padding, in_hw, k_hw, stride, dilation):
    """((top, bottom), (left, right)) of a padding spec (as refcomp.layers.conv2d)."""
    from ..layers._common import resolve_padding
    return resolve_padding(padding, in_hw, k_hw, stride, dilation)


def conv2d_acc(xq, x_zero_point, wq, bias=None, *, stride=1, padding=0, dilation=1, groups=1,
               w_zero_point=0):
    """int32 accumulator of an integer 2-D convolution (cross-correlation), NCHW / OIHW.

    Parameters
    ----------
    xq : ndarray int8/uint8 (N, C, H, W)
    x_zero_point : int
    wq : ndarray int8/uint8 (O, C/groups, kh, kw)
    bias : ndarray int32 (O,), optional
    stride, dilation : int or pair; padding : as :func:`refcomp.layers.conv2d` (int, pair,
        pair of pairs, "valid", "same" with the TensorFlow rule)
    groups : int dividing C and O (groups == C: depthwise)
    w_zero_point : int or integer ndarray (O,)

    Returns
    -------
    acc : ndarray int32 (N, O, OH, OW); padded positions hold the input zero point (they add
    0); the sum is reduced modulo 2**32 (module docstring).
    """
    _codes("xq", xq, 4)
    _weights("wq", wq, 4)
    zx = check_zero_point("x_zero_point", x_zero_point, xq.dtype)
    st, dil = _pair("stride", stride), _pair("dilation", dilation)
    if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups < 1:
        raise ParameterError(f"groups must be a positive int, got {groups!r}")
    c, o = xq.shape[1], wq.shape[0]
    if c % groups or o % groups or wq.shape[1] * groups != c:
        raise ShapeError(f"groups={groups}: wq {describe(wq)} expects {wq.shape[1]} x {groups} "
                         f"input channels (and O divisible by groups), xq has {c} "
                         f"(xq {describe(xq)})")
    _bias(bias, o)
    zw = _w_zero_point(w_zero_point, o, wq.dtype)
    pads = conv_pads(padding, xq.shape[2:], wq.shape[2:], st, dil)
    for ax in (0, 1):
        eff = (wq.shape[2 + ax] - 1) * dil[ax] + 1
        if xq.shape[2 + ax] + sum(pads[ax]) < eff:
            raise ShapeError(f"padded input smaller than the dilated kernel {eff} along "
                             f"{'HW'[ax]} (xq {describe(xq)}, wq {describe(wq)})")
    return _conv_acc(xq, zx, wq, bias, st, pads, dil, int(groups), zw)


def _conv_acc(xq, zx, wq, bias, stride, pads, dilation, groups, zw=None):
    n, c, h, w = xq.shape
    o, cg, kh, kw = wq.shape
    k = cg * kh * kw
    if k >= _EXACT_TERMS:
        raise ParameterError("too many terms per output for the exact float64 path")
    lo, hi = dtype_range(xq.dtype)
    xmax = max(hi - zx, zx - lo)
    zmax = 0 if zw is None else int(np.abs(zw).max(initial=0))
    wmax = 128 + zmax if wq.dtype == np.int8 else 255 + zmax
    ft = _gemm_dtype(k, xmax, wmax)
    (pt, pb), (pl, pr) = pads
    xc = np.zeros((n, c, h + pt + pb, w + pl + pr), ft)
    xc[:, :, pt:pt + h, pl:pl + w] = xq
    if zx:
        xc[:, :, pt:pt + h, pl:pl + w] -= ft(zx)
    wc = wq.astype(ft)
    if zw is not None and np.any(zw):
        wc = wc - zw.astype(ft)[:, None, None, None]
    eh, ew = (kh - 1) * dilation[0] + 1, (kw - 1) * dilation[1] + 1
    oh = (xc.shape[2] - eh) // stride[0] + 1
    ow = (xc.shape[3] - ew) // stride[1] + 1
    og = o // groups
    out = np.empty((n, o, oh, ow), ft)
    # Channels-last im2col (kernels.im2col, a pure copy), one GEMM per group with the
    # weights in the same (kh, kw, c) order, copied back to NCHW: the summation order is
    # BLAS's, which does not matter for these exact integer sums.
    from ..kernels.im2col import im2col_nchw
    for g in range(groups):
        cols = im2col_nchw(xc, 0, n, g * cg, cg, kh, kw, stride, dilation, oh, ow)
        wm = np.ascontiguousarray(wc[g * og:(g + 1) * og].transpose(0, 2, 3, 1).reshape(og, k))
        res = cols.reshape(n * oh * ow, k) @ wm.T          # (pixels, og): BLAS's fast layout
        out[:, g * og:(g + 1) * og] = res.reshape(n, oh, ow, og).transpose(0, 3, 1, 2)
    return _finish(out, bias, k * xmax * wmax)            # exact (module docstring)


def fbgemm_depthwise_path(c, o, groups, k_hw, stride, dilation, pads):
    """True when PyTorch's fbgemm engine runs a conv on FBGEMM's depthwise fast path
    (FBGEMM ``takeDepthWiseFastPath``, src/FbgemmConv.cc): groups == C == O, groups a multiple
    of 8, square kernel 3x3, 5x5 or 7x7, stride 1 or 2, dilation 1, symmetric padding
    (k - 1) / 2; O == C or O == 2 * C (channel multiplier 2)."""
    (pt, pb), (pl, pr) = pads
    k = k_hw[0]
    return (groups == c and o in (c, 2 * c) and groups % 8 == 0 and k_hw[0] == k_hw[1]
            and k in (3, 5, 7)
            and all(s in (1, 2) for s in stride) and tuple(dilation) == (1, 1)
            and pt == pb == pl == pr == (k - 1) // 2)


def _fbgemm_depthwise_acc(xq, zx, wq, bias, stride, pads):
    """Accumulator of FBGEMM's depthwise kernels (GenerateI8Depthwise.cc): the products of the
    *raw* uint8 codes and the int8 weights are summed in pairs of consecutive kernel taps
    (row-major; an odd last tap paired with 0) by VPMADDUBSW, which **saturates each pair sum
    to int16**; the pairs are then summed exactly in int32 and the zero-point correction
    ``- zx * sum(w)`` and the int32 bias added (wrapped modulo 2**32).  Padding holds the raw
    zero point.  With 7-bit activations (PyTorch's x86 ``reduce_range``) no pair can saturate
    and this equals :func:`conv2d_acc`."""
    n, c, h, w = xq.shape
    o, _, kh, kw = wq.shape
    (pt, pb), (pl, pr) = pads
    xp = np.full((n, c, h + pt + pb, w + pl + pr), zx, np.int64)
    xp[:, :, pt:pt + h, pl:pl + w] = xq
    oh = (xp.shape[2] - kh) // stride[0] + 1
    ow = (xp.shape[3] - kw) // stride[1] + 1
    win = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(2, 3))
    taps = win[:, :, ::stride[0], ::stride[1]][:, :, :oh, :ow].reshape(n, c, oh, ow, kh * kw)
    if o != c:                                  # channel multiplier: output o reads o // (o/c)
        taps = taps[:, np.arange(o) // (o // c)]
    wt = wq.reshape(o, kh * kw).astype(np.int64)
    prods = taps * wt[None, :, None, None, :]
    if (kh * kw) % 2:
        prods = np.concatenate([prods, np.zeros(prods.shape[:-1] + (1,), np.int64)], axis=-1)
    pairs = np.clip(prods[..., 0::2] + prods[..., 1::2], -(1 << 15), (1 << 15) - 1)
    acc = pairs.sum(axis=-1) - zx * wt.sum(axis=1)[None, :, None, None]
    if bias is not None:
        acc += bias.astype(np.int64)[None, :, None, None]
    return wrap_int32(acc)
