"""Integer kernels on 8-bit codes: int32 accumulators of dense and conv2d (groups, depthwise),
max / average pooling, residual addition, ReLU / ReLU6 clamps.

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
from .._validate import check_choice, describe
from ..kernels.pool import max_pool_nchw
from ..kernels.quantize import fma_twin
from .fixedpoint import VARIANTS, quantize_multiplier
from .requantize import (ACT_DTYPES, LITERT_MODES, MODES, check_scale, check_zero_point,
                         dtype_range, multipliers)
from ..kernels.integer import mbqm_requant

__all__ = ["linear_acc", "conv2d_acc", "max_pool2d_q", "avg_pool2d_q", "add_q",
           "relu_bounds", "wrap_int32"]

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
    return (groups == c and o in (c, 2 * c) and groups % 8 == 0 and k_hw[0] == k_hw[1] and k in (3, 5, 7)
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


def _pool_setup(q, size, stride, padding):
    _codes("q", q, 4)
    k = _pair("size", size)
    s = k if stride is None else _pair("stride", stride)
    pads = conv_pads(padding, q.shape[2:], k, s, (1, 1))
    for ax in (0, 1):
        lo, hi = pads[ax]
        if lo >= k[ax] or hi >= k[ax]:
            raise ShapeError(f"padding {pads[ax]} must be smaller than the pool size {k[ax]}")
        if q.shape[2 + ax] + lo + hi < k[ax]:
            raise ShapeError(f"padded input smaller than the pool window {k} (q {describe(q)})")
    return k, s, pads


def max_pool2d_q(q, size, *, stride=None, padding=0):
    """Max pooling of 8-bit codes (NCHW): exact selection; padded positions never win.

    Input and output share (scale, zero point) (TFLite requires it); since dequantization is
    increasing, this equals the float max pool of the dequantized values.
    """
    k, s, pads = _pool_setup(q, size, stride, padding)
    (pt, pb), (pl, pr) = pads
    xp = np.full(q.shape[:2] + (q.shape[2] + pt + pb, q.shape[3] + pl + pr), -(1 << 15),
                 np.int16)
    xp[:, :, pt:pt + q.shape[2], pl:pl + q.shape[3]] = q
    oh = (xp.shape[2] - k[0]) // s[0] + 1
    ow = (xp.shape[3] - k[1]) // s[1] + 1
    return _max_pool(xp, k, s, oh, ow).astype(q.dtype)


def _max_pool(xp, k, s, oh, ow):
    """kernels.pool.max_pool_nchw, on one thread for small inputs (same bits; fewer thread
    wake-ups on a loaded host)."""
    import numba
    from ..kernels._threads import num_threads
    if xp.size >= 1 << 22:
        return max_pool_nchw(xp, k[0], k[1], s[0], s[1], oh, ow)
    old = num_threads()
    numba.set_num_threads(1)
    try:
        return max_pool_nchw(xp, k[0], k[1], s[0], s[1], oh, ow)
    finally:
        numba.set_num_threads(old)


def avg_pool2d_q(q, size, *, zero_point, stride=None, padding=0, count_include_pad=True,
                 mode, act_min=None, act_max=None):
    """Average pooling of 8-bit codes (NCHW); input and output share (scale, zero point).

    Arithmetic: the window sum S of the codes (int64, exact; a padded position counts as the
    zero point), the count n (kh*kw, or the number of real elements when
    ``count_include_pad`` is False), then

    * tflite_*, xnnpack: TFLite ``AveragePool`` int8: ``(S + n/2) / n`` if S > 0 else
      ``(S - n/2) / n`` with C division (truncation) and n/2 an integer division: round half
      away from zero of S/n (TFLite counts only real elements; with padding use
      count_include_pad=False; XNNPACK's own average pooling is not emulated);
    * onnx, onnx_reference, torch: ``round_half_even((S - n*zp) / n) + zp`` computed exactly
      (refcomp's definition of a rounded mean; not checked against those runtimes).

    Then clamp to [act_min, act_max] (default the dtype range).
    """
    check_choice("mode", mode, MODES)
    k, s, pads = _pool_setup(q, size, stride, padding)
    zp = check_zero_point("zero_point", zero_point, q.dtype)
    lo, hi = dtype_range(q.dtype)
    lo = lo if act_min is None else check_zero_point("act_min", act_min, q.dtype)
    hi = hi if act_max is None else check_zero_point("act_max", act_max, q.dtype)
    (pt, pb), (pl, pr) = pads
    xp = np.full(q.shape[:2] + (q.shape[2] + pt + pb, q.shape[3] + pl + pr), zp, np.int64)
    xp[:, :, pt:pt + q.shape[2], pl:pl + q.shape[3]] = q
    win = np.lib.stride_tricks.sliding_window_view(xp, k, axis=(2, 3))[:, :, ::s[0], ::s[1]]
    ssum = win.sum(axis=(-2, -1))                 # exact int64
    if count_include_pad:
        cnt = np.full(ssum.shape[2:], k[0] * k[1], np.int64)
        ssum_real = ssum
    else:
        ones = np.zeros(xp.shape[2:], np.int64)
        ones[pt:pt + q.shape[2], pl:pl + q.shape[3]] = 1
        cnt = np.lib.stride_tricks.sliding_window_view(ones, k)[::s[0], ::s[1]].sum(axis=(-2, -1))
        # padded positions must not be counted: remove their zero-point contribution
        ssum_real = ssum - (k[0] * k[1] - cnt) * zp
    if mode in LITERT_MODES:
        half = cnt // 2
        num = np.where(ssum_real > 0, ssum_real + half, ssum_real - half)
        # C division truncates toward zero
        r = np.where(num >= 0, num // cnt, -((-num) // cnt))
    else:
        d = ssum_real - cnt * zp                 # sum of centred codes
        fl = d // cnt
        rem2 = 2 * (d - fl * cnt)
        up = (rem2 > cnt) | ((rem2 == cnt) & (fl % 2 == 1))
        r = fl + up + zp
    return np.clip(r, lo, hi).astype(q.dtype)


def relu_bounds(kind, scale, zero_point, dt, mode):
    """(act_min, act_max) of a ReLU / ReLU6 clamp on codes with (scale, zero point).

    ReLU: [max(qmin, zp), qmax].  ReLU6: upper bound min(qmax, zp + round(fl32(6 / s))) with
    the float boundary's rounding of ``mode`` (TFLite ``CalculateActivationRangeQuantized``:
    TfLiteRound, half away, for the TFLite / LiteRT modes; the others half even), which is also
    what a float ReLU6 followed by a re-quantization gives (docs/integer.md).
    """
    lo, hi = dtype_range(dt)
    if kind == "relu":
        return max(lo, zero_point), hi
    if kind != "relu6":
        raise ParameterError(f"unsupported fused activation {kind!r}; use 'relu' or 'relu6'")
    v = float(np.float32(6.0) / np.float32(scale))
    t = int(np.trunc(v))
    if mode in LITERT_MODES:
        six = t + (int(np.sign(v)) if abs(v - t) >= 0.5 else 0)
    else:
        six = int(np.rint(v))
    return max(lo, zero_point), min(hi, zero_point + six)


def add_q(q1, scale1, zp1, q2, scale2, zp2, scale_out, zp_out, *, mode, act_min=None,
          act_max=None):
    """Elementwise sum of two 8-bit code tensors of the same shape and dtype (residual add).

    Parameters
    ----------
    q1, q2 : ndarray int8/uint8, same shape and dtype
    scale1, scale2, scale_out : float, exactly normal float32 values
    zp1, zp2, zp_out : int in the dtype range
    mode : one of :data:`refcomp.integer.MODES`
    act_min, act_max : int, optional clamp (fused ReLU)

    Returns
    -------
    ndarray of the input dtype

    Arithmetic
    ----------
    * tflite_double, tflite_single, tflite_ruy, tflite_float64: TFLite ``ADD`` int8
      (kernels/add.cc, reference_integer_ops/add.h): left shift 20; in double, tm = 2 *
      max(s1, s2), m1 = s1 / tm, m2 = s2 / tm, mo = tm / (2**20 * s_out), each through
      :func:`quantize_multiplier`; per element ``r = MBQM(MBQM((q1 - z1) * 2**20, m1) +
      MBQM((q2 - z2) * 2**20, m2), mo) + z_out`` with int32 sums and
      MultiplyByQuantizedMultiplier with gemmlowp double rounding (SRDHM then
      RoundingDivideByPOT), or single rounding for tflite_single.  (LiteRT 2.3.0's
      reference and optimized ADD both measured as double rounding.)
    * xnnpack: XNNPACK's int8 addition (measured with LiteRT 2.3.0's default delegate): in
      float32 ra = fl32(s1 / s_out), rb = fl32(s2 / s_out); e = the binary exponent of
      max(ra, rb), shift = 20 - e; integer multipliers ``ma = lrint(ra * 2**shift)``,
      ``mb = lrint(rb * 2**shift)`` (exact power-of-two scalings, half even); bias =
      2**(shift-1) - ma*z1 - mb*z2; per element ``((bias + q1*ma + q2*mb) >> shift) + z_out``
      (arithmetic shift: round half up), in int64 (exact).
    * onnx: ONNX Runtime ``QLinearAdd`` on x86-64 AVX2 (MLAS ``qladd_avx2.cpp``): float32
      r1 = fl32(s1 / s_out), r2 = fl32(s2 / s_out), F = fl32(z_out - fl32(fl32(r1*z1) +
      fl32(r2*z2))); per element ``t = fma(q2, r2, F)``, ``v = fma(q1, r1, t)`` (one rounding
      each), round half even.
    * onnx_reference: the QDQ float semantics of the ONNX reference: dequantize both
      (fl32((q - z) * s)), add in float32, divide by s_out in float32, round half even, + z_out.
    * torch: ``quantized::add`` (ATen ``qadd_kernel``, vectorised path): dequantize each by
      ``fma(s, q, fl32(s * -z))``, add in float32, then ``rint(fl32(sum * fl32(1 / s_out))) +
      z_out``.  (ATen's scalar tail, used only for a remainder of fewer than one vector per
      contiguous chunk, dequantizes as fl32((q - z) * s) instead.)

    Then clamp to [act_min, act_max] (default the dtype range).
    """
    check_choice("mode", mode, MODES)
    _codes("q1", q1)
    _codes("q2", q2)
    if q1.shape != q2.shape or q1.dtype != q2.dtype:
        raise ShapeError(f"q1 and q2 must have the same shape and dtype, got {describe(q1)} and "
                         f"{describe(q2)}")
    dt = q1.dtype
    s1, s2, so = (check_scale(n, v) for n, v in (("scale1", scale1), ("scale2", scale2),
                                                  ("scale_out", scale_out)))
    z1, z2, zo = (check_zero_point(n, v, dt) for n, v in (("zp1", zp1), ("zp2", zp2),
                                                          ("zp_out", zp_out)))
    lo, hi = dtype_range(dt)
    lo = lo if act_min is None else check_zero_point("act_min", act_min, dt)
    hi = hi if act_max is None else check_zero_point("act_max", act_max, dt)
    return _add(q1, s1, z1, q2, s2, z2, so, zo, mode, lo, hi)


def add_params(s1, s2, so, mode):
    """TFLite ADD multipliers ((m1, sh1), (m2, sh2), (mo, sho)) in double (see :func:`add_q`)."""
    tm = 2.0 * max(s1, s2)
    qm = [quantize_multiplier(v, mode=mode) for v in (s1 / tm, s2 / tm,
                                                      tm / ((1 << 20) * so))]
    return qm


def _xnnpack_add(q1, z1, q2, z2, s1, s2, so, zo, lo, hi):
    f32 = np.float32
    ra, rb = f32(s1) / f32(so), f32(s2) / f32(so)
    e = int(np.frexp(max(ra, rb))[1]) - 1            # max(ra, rb) in [2**e, 2**(e+1))
    shift = 20 - e
    if not 0 < shift < 62:
        raise ParameterError(f"add (xnnpack): scale ratio {float(max(ra, rb))!r} out of range")
    ma = int(np.rint(np.ldexp(ra.astype(np.float64), shift)))   # exact scaling, half even
    mb = int(np.rint(np.ldexp(rb.astype(np.float64), shift)))
    bias = (1 << (shift - 1)) - ma * z1 - mb * z2
    acc = bias + q1.astype(np.int64) * ma + q2.astype(np.int64) * mb
    return np.clip((acc >> shift) + zo, lo, hi).astype(q1.dtype)


def _add(q1, s1, z1, q2, s2, z2, so, zo, mode, lo, hi):
    shape = q1.shape
    a = q1.reshape(-1).astype(np.int64) - z1
    b = q2.reshape(-1).astype(np.int64) - z2
    if mode == "xnnpack":
        return _xnnpack_add(q1, z1, q2, z2, s1, s2, so, zo, lo, hi)
    if mode in LITERT_MODES:
        fixed = "tflite_single" if mode == "tflite_single" else "tflite_double"
        (m1, h1), (m2, h2), (mo, ho) = add_params(s1, s2, so, fixed)
        variant = VARIANTS[fixed]
        big = np.int64(1) << 20

        def mbqm(x, m, h, zp, lo_, hi_):
            out, bad = mbqm_requant(np.ascontiguousarray(x).reshape(1, 1, -1),
                                    np.array([m], np.int32), np.array([h], np.int32), variant,
                                    zp, lo_, hi_, np.int64)
            if bad:
                raise ParameterError("add: an intermediate overflows int32 (TFLite's int32 "
                                     "arithmetic is undefined there)")
            return out.reshape(-1)
        i32 = (-(1 << 31), (1 << 31) - 1)
        t = mbqm(a * big, m1, h1, 0, *i32) + mbqm(b * big, m2, h2, 0, *i32)
        if t.min(initial=0) < i32[0] or t.max(initial=0) > i32[1]:
            raise ParameterError("add: the raw sum overflows int32")
        r = mbqm(t, mo, ho, zo, lo, hi)
        return r.astype(q1.dtype).reshape(shape)
    f32 = np.float32
    if mode == "onnx":
        r1, r2 = f32(s1) / f32(so), f32(s2) / f32(so)
        fixed = f32(zo) - (f32(r1 * f32(z1)) + f32(r2 * f32(z2)))
        qa = q1.reshape(-1).astype(f32)
        qb = q2.reshape(-1).astype(f32)
        t = fma_twin(qb, np.full(qb.shape, r2, f32), np.full(qb.shape, fixed, f32))
        v = fma_twin(qa, np.full(qa.shape, r1, f32), t)
        r = np.rint(v).astype(np.int64)
    elif mode == "onnx_reference":
        da = (a.astype(f32) * f32(s1))
        db = (b.astype(f32) * f32(s2))
        r = np.rint((da + db) / f32(so)).astype(np.int64) + zo
    else:                                                   # torch
        sa, sb = f32(s1), f32(s2)
        qa = q1.reshape(-1).astype(f32)
        qb = q2.reshape(-1).astype(f32)
        da = fma_twin(np.full(qa.shape, sa, f32), qa, np.full(qa.shape, f32(sa * f32(-z1)), f32))
        db = fma_twin(np.full(qb.shape, sb, f32), qb, np.full(qb.shape, f32(sb * f32(-z2)), f32))
        inv = f32(1.0) / f32(so)
        r = np.rint((da + db) * inv).astype(np.int64) + zo
    return np.clip(r, lo, hi).astype(q1.dtype).reshape(shape)
