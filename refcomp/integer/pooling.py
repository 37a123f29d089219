"""Pooling and ReLU clamps on 8-bit codes (input and output share scale and zero point)."""

import numpy as np

from .._errors import ParameterError, ShapeError
from .._validate import check_choice, describe
from ..kernels.pool import max_pool_nchw
from .ops import _codes, _pair, conv_pads
from .requantize import LITERT_MODES, MODES, check_zero_point, dtype_range

__all__ = ["max_pool2d_q", "avg_pool2d_q", "relu_bounds"]


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
    from ..kernels._threads import run_serial_below
    return run_serial_below(1 << 22, max_pool_nchw, xp.size, xp, k[0], k[1], s[0], s[1], oh, ow)


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
