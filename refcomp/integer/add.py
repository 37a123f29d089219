"""Residual addition of two 8-bit code tensors, with each runtime's arithmetic."""

import numpy as np

from .._errors import ParameterError, ShapeError
from .._validate import check_choice, describe
from ..kernels.integer import mbqm_requant
from ..kernels.quantize import fma_twin
from .fixedpoint import VARIANTS, quantize_multiplier
from .ops import _codes
from .requantize import LITERT_MODES, MODES, check_scale, check_zero_point, dtype_range

__all__ = ["add_q", "add_params"]


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
    s1, s2, so = (check_scale(n, v) for n, v in
                  (("scale1", scale1), ("scale2", scale2), ("scale_out", scale_out)))
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
