"""Requantization of an int32 accumulator and the float <-> int8 boundary, per runtime.

Eight named modes (FACTS.md §5; which runtime follows which, measured, in docs/integer.md).
A mode fixes the requantization of dense / conv2d accumulators, the residual addition
(:func:`refcomp.integer.add_q`) and the float boundary (:func:`quantize`, :func:`dequantize`):

================  =====================================================================
mode              requantization of ``acc`` (int32) to the output codes
================  =====================================================================
tflite_double     TFLite's historical default build: ``QuantizeMultiplier(s_in / s_out)``
                  in double, then ``MultiplyByQuantizedMultiplier`` with gemmlowp double
                  rounding (SRDHM ties toward +inf, then RoundingDivideByPOT ties away).
                  LiteRT 2.3.0 reference CONV_2D / DEPTHWISE_CONV_2D.
tflite_single     the ``TFLITE_SINGLE_ROUNDING`` build: the same multiplier (shift
                  clamped to 30), one rounding ``(acc*m + 2**(30-shift)) >> (31-shift)``
                  (ties toward +inf)
tflite_ruy        TFLite's optimized kernels through ruy on x86-64 (LiteRT 2.3.0
                  BUILTIN_WITHOUT_DEFAULT_DELEGATES): SRDHM, then a rounding right shift
                  with ties toward +inf
tflite_float64    LiteRT 2.3.0 reference FULLY_CONNECTED: ``round_half_away(fl64(acc *
                  (s_in / s_out))) + zero point`` (the real multiplier in double)
xnnpack           LiteRT's default CPU path (XNNPACK delegate): float32 requantization
                  as "onnx" (``fl32(fl32(acc) * fl32(fl32(s_in) / s_out))``, half even)
onnx              what ONNX Runtime runs (MLAS ``MlasRequantizeOutput``): float32
                  multiplier ``M = fl32(fl32(s_in) / s_out)``, ``fl32(fl32(acc) * M)``,
                  round half to even, then + zero point
onnx_reference    the ``onnx`` package's reference QLinearMatMul / QLinearConv: the same
                  float32 M, then in float64 ``rint(acc * M + zero_point)``; the zero
                  point is added before the rounding (ties move with an odd zero point)
torch             PyTorch's fbgemm kernels (FBGEMM ``ReQuantizeOutput``, AVX2 path):
                  ``M = fl32(fl32(s_in) / s_out)``; with a float bias b,
                  ``raw = fl32(fl32(acc) + bterm)`` with bterm = fl32(b / fl32(s_in))
                  per output channel, or fl32(b * fl32(1 / fl32(s_in))) (reciprocal
                  computed in double) per tensor; then ``fl32(raw * M)``, round half to
                  even, + zero point
================  =====================================================================

Every mode then clamps to [act_min, act_max] (the output dtype's range by
default; a fused ReLU raises act_min to the zero point).  ``s_in`` is the
accumulator scale s_x * s_w, given as a float64 that is the exact product of
the two float32 scales (``float(s_x) * float(s_w)``): TFLite multiplies the
two in double (exact), ONNX Runtime and PyTorch in float32, which is the
float32 rounding of that exact product, so one argument serves every mode.

The float <-> integer boundary (model input and output), float32, RNE after each operation:

* :func:`quantize`:

  - tflite_double, tflite_single, tflite_float64: ``round_half_away(fl32(x / s)) + zp``
    (TFLite reference QUANTIZE, ``TfLiteRound``);
  - tflite_ruy, xnnpack: ``round_half_even(fl32(x * fl32(1 / s))) + zp`` (LiteRT's
    optimized QUANTIZE and XNNPACK's, measured);
  - onnx, onnx_reference: ``round_half_even(fl32(x / s)) + zp`` (QuantizeLinear, MLAS);
  - torch: ``round_half_even(fl32(x * fl32(1/s) + zp))`` with one rounding (fused
    multiply-add), ``torch.quantize_per_tensor`` on x86-64 AVX2 (FBGEMM ``QuantizeAvx2``);

  then clamp to the dtype range.
* :func:`dequantize`: ``fl32((q - zp) * s)`` (one rounding of an exact product) in every
  runtime except LiteRT's optimized DEQUANTIZE (tflite_ruy), measured as
  ``fl32(fl32(q * s) - fl32(zp * s))``.
"""

import numbers

import numpy as np

from .._errors import DTypeError, ParameterError
from .._validate import check_choice, describe
from ..kernels.integer import (INT32_MAX, INT32_MIN, float32_requant, float64_requant,
                               mbqm_requant)
from ..kernels.quantize import OP_DIVIDE, OP_RECIPROCAL, OP_RECIPROCAL_FMA_ZP, affine_codes
from .fixedpoint import VARIANTS, quantize_multiplier

__all__ = ["MODES", "TFLITE_MODES", "LITERT_MODES", "ACT_DTYPES", "requantize", "quantize",
           "dequantize", "multipliers",
           "check_scale", "check_zero_point", "act_dtype", "dtype_range"]

#: Requantization modes (see the module table).
MODES = ("tflite_double", "tflite_single", "tflite_ruy", "tflite_float64", "xnnpack", "onnx",
         "onnx_reference", "torch")
#: The fixed-point (TFLite MultiplyByQuantizedMultiplier) modes.
TFLITE_MODES = ("tflite_double", "tflite_single", "tflite_ruy")
#: Modes of the TFLite / LiteRT family (TFLite's parameter rules and ADD structure).
LITERT_MODES = TFLITE_MODES + ("tflite_float64", "xnnpack")
#: Modes whose QUANTIZE multiplies by the float32 reciprocal and rounds half to even.
_RECIPROCAL_QUANTIZE = ("tflite_ruy", "xnnpack")
#: Activation code dtypes accepted (8-bit; other widths are refused).
ACT_DTYPES = ("int8", "uint8")


def act_dtype(value, name="out_dtype"):
    """The numpy dtype of an 8-bit activation code type ("int8", "uint8" or a dtype)."""
    try:
        dt = np.dtype(value)
    except TypeError:
        raise ParameterError(f"{name} must be 'int8' or 'uint8', got {value!r}") from None
    if dt.name not in ACT_DTYPES:
        raise ParameterError(f"{name}: unsupported activation type {dt.name} ({dt.itemsize * 8}"
                             f"-bit); integer inference supports 8-bit codes: int8 or uint8")
    return dt


def dtype_range(dt):
    info = np.iinfo(dt)
    return int(info.min), int(info.max)


def check_scale(name, value, *, float32=True):
    """A scale: finite, > 0 and (``float32``) exactly a normal float32 value; returns float.

    Normal float32 (>= 2**-126) keeps ``(q - zp) * s`` exact enough for the
    boundary argument of docs/integer.md (dequantized values re-quantize to
    the same codes); subnormal scales are refused.
    """
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, np.floating)):
        raise ParameterError(f"{name} must be a real number, got {value!r}")
    v = float(value)
    if not np.isfinite(v) or v <= 0:
        raise ParameterError(f"{name} must be finite and > 0, got {v!r}")
    if float32:
        f = np.float32(v)
        if float(f) != v:
            raise ParameterError(f"{name} must be exactly a float32 value (as stored by the "
                                 f"runtimes), got {v!r}; round it with numpy.float32 first")
        if v < 2.0 ** -126 or not np.isfinite(f * np.float32(256)):
            raise ParameterError(f"{name} must be a normal float32 with 256 * scale finite, "
                                 f"got {v!r}")
    return v


def check_zero_point(name, value, dt):
    """An integer zero point inside the range of the code dtype ``dt``; returns int."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, np.integer)):
        raise ParameterError(f"{name} must be an integer, got {value!r}")
    lo, hi = dtype_range(dt)
    if not lo <= int(value) <= hi:
        raise ParameterError(f"{name} must lie in [{lo}, {hi}] ({np.dtype(dt).name}), "
                             f"got {int(value)}")
    return int(value)


def _scales_in(scale_in, nchan):
    """scale_in as a float64 (C,) array, validated (finite, > 0)."""
    if isinstance(scale_in, np.ndarray) and scale_in.ndim == 1:
        if scale_in.dtype.kind != "f":
            raise DTypeError(f"scale_in must be a float array, got {describe(scale_in)}")
        if scale_in.shape[0] != nchan:
            raise ParameterError(f"scale_in has {scale_in.shape[0]} entries but the channel "
                                 f"axis has {nchan}")
        s = scale_in.astype(np.float64)
        bad = int(np.count_nonzero(~np.isfinite(s) | (s <= 0)))
        if bad:
            raise ParameterError(f"scale_in must be finite and > 0; {bad} of {s.size} "
                                 "entries are not")
        return s
    return np.full(nchan, check_scale("scale_in", scale_in, float32=False))


def multipliers(scale_in, scale_out, mode):
    """Per-channel multiplier of ``mode`` for accumulator scales ``scale_in`` (float64 (C,)).

    Returns ``(mult int32 (C,), shift int32 (C,))`` for the TFLite modes
    (:func:`refcomp.integer.quantize_multiplier` of ``scale_in / scale_out``
    in double), else ``M`` float32 (C,) = ``fl32(fl32(scale_in) /
    fl32(scale_out))`` (float64 (C,) holding those float32 values for
    "onnx_reference"; the float64 ``scale_in / scale_out`` for "tflite_float64").
    """
    if mode in TFLITE_MODES:
        pairs = [quantize_multiplier(float(s) / float(scale_out), mode=mode) for s in scale_in]
        mult = np.array([p[0] for p in pairs], np.int64)
        shift = np.array([p[1] for p in pairs], np.int64)
        bad = np.flatnonzero(shift > 30)
        if bad.size:
            raise ParameterError(f"the effective multiplier scale_in / scale_out = "
                                 f"{float(scale_in[bad[0]]) / float(scale_out)!r} is >= 2**30; "
                                 "TFLite's MultiplyByQuantizedMultiplier needs shift <= 30")
        return mult.astype(np.int32), shift.astype(np.int32)
    if mode == "tflite_float64":
        return scale_in / float(scale_out)                 # double, as TFLite's real multiplier
    m32 = scale_in.astype(np.float32) / np.float32(scale_out)
    if mode == "onnx_reference":
        return m32.astype(np.float64)
    return m32


def _torch_bias_term(bias, scale_in, per_channel):
    """FBGEMM's float-bias term bterm (float32 (C,)), see the module table."""
    a = scale_in.astype(np.float32)                 # act_times_w_scale, float32
    if per_channel:
        return bias / a                             # _mm256_div_ps
    rcp = (np.float64(1.0) / a.astype(np.float64)).astype(np.float32)   # 1.0 / float in double
    return bias * rcp                               # _mm256_mul_ps


def requantize(acc, scale_in, scale_out, zero_point, *, mode, axis=None, out_dtype="int8",
               act_min=None, act_max=None, bias=None):
    """Requantize an int32 accumulator to 8-bit codes with the arithmetic of ``mode``.

    Parameters
    ----------
    acc : ndarray int32, any shape
        The accumulator (sum of products of centred codes, plus the int32
        bias where the runtime adds it in int32).
    scale_in : float or ndarray float (C,)
        Accumulator scale(s) s_x * s_w[c] (> 0, finite), float64 exact
        products of float32 scales (see the module docstring); an array
        gives one per index of ``axis``.
    scale_out : float
        Output scale, exactly a normal float32 value.
    zero_point : int
        Output zero point, inside the range of ``out_dtype``.
    mode : one of :data:`MODES`
    axis : int or None
        Channel axis of ``acc`` for array ``scale_in`` (and ``bias``).
    out_dtype : {"int8", "uint8"}
    act_min, act_max : int, optional
        Clamp range (fused activation), inside the dtype range (default the
        whole range).
    bias : ndarray float32 (C,) or (1,), only with mode "torch"
        PyTorch's float bias, added in float32 as FBGEMM does (per channel
        when ``scale_in`` is an array, per tensor otherwise).

    Returns
    -------
    ndarray of ``out_dtype``, shape of ``acc``

    Arithmetic
    ----------
    The table of the module docstring, then ``clamp(., act_min, act_max)``.
    Fixed-point modes compute in int64 (exact); "onnx"/"torch" in float32
    with round-to-nearest-even after every operation (so |acc| > 2**24
    rounds on conversion, as in the runtimes); "onnx_reference" in float64.

    Raises
    ------
    DTypeError
        ``acc`` not an int32 ndarray; ``bias`` not float32.
    ParameterError
        Unknown mode, a scale <= 0, non-finite or (scale_out) not a normal
        float32, a zero point or clamp bound outside the dtype range, an
        unsupported ``out_dtype``, ``bias`` with another mode, or (TFLite
        modes) an accumulator outside MultiplyByQuantizedMultiplier's domain.
    """
    check_choice("mode", mode, MODES)
    if not isinstance(acc, np.ndarray) or acc.dtype != np.int32:
        raise DTypeError(f"acc must be an int32 ndarray, got {describe(acc)}")
    dt = act_dtype(out_dtype)
    so = check_scale("scale_out", scale_out)
    zp = check_zero_point("zero_point", zero_point, dt)
    lo, hi = _act_bounds(act_min, act_max, dt)
    per_channel = isinstance(scale_in, np.ndarray) and scale_in.ndim == 1
    if per_channel:
        if axis is None:
            raise ParameterError("scale_in is an array: give axis, the channel axis of acc")
        if not -acc.ndim <= axis < acc.ndim:
            raise ParameterError(f"axis={axis} is out of range for acc {describe(acc)}")
        axis %= acc.ndim
        nchan = acc.shape[axis]
        a_len = int(np.prod(acc.shape[:axis], dtype=np.int64))
        acc3 = np.ascontiguousarray(acc).reshape(a_len, nchan, -1)
    else:
        nchan = 1
        acc3 = np.ascontiguousarray(acc).reshape(1, 1, -1)
    s_in = _scales_in(scale_in, nchan)
    bterm = None
    if bias is not None:
        if mode != "torch":
            raise ParameterError(f"a float bias is PyTorch's (mode='torch'); mode {mode!r} "
                                 "adds an int32 bias to acc before requantizing")
        if not isinstance(bias, np.ndarray) or bias.dtype != np.float32 or bias.ndim != 1 \
                or bias.shape[0] != nchan:
            raise DTypeError(f"bias must be a float32 ndarray of shape ({nchan},), got "
                             f"{describe(bias)}")
        bterm = _torch_bias_term(bias, s_in, per_channel)
    out = requantize3(acc3, s_in, so, zp, mode, lo, hi, dt, bterm=bterm)
    return out.reshape(acc.shape)


def _act_bounds(act_min, act_max, dt):
    lo, hi = dtype_range(dt)
    if act_min is not None:
        lo = check_zero_point("act_min", act_min, dt)
    if act_max is not None:
        hi = check_zero_point("act_max", act_max, dt)
    if lo > hi:
        raise ParameterError(f"act_min {lo} > act_max {hi}")
    return lo, hi


def requantize3(acc3, s_in, scale_out, zp, mode, lo, hi, dt, *, bterm=None, params=None):
    """Kernel dispatch on a validated (A, C, B) int32 view (private to refcomp.integer).

    ``params`` are precomputed :func:`multipliers` (layers compute them once).
    """
    p = multipliers(s_in, scale_out, mode) if params is None else params
    if mode in TFLITE_MODES:
        out, bad = mbqm_requant(acc3, p[0], p[1], VARIANTS[mode], zp, lo, hi, dt)
        if bad:
            raise ParameterError(f"requantize ({mode}): {bad} accumulator value(s) outside "
                                 "MultiplyByQuantizedMultiplier's domain (acc * 2**shift or "
                                 "the result overflows int32)")
        return out
    if mode in ("onnx_reference", "tflite_float64"):
        return float64_requant(acc3, p, zp, lo, hi, dt, away=mode == "tflite_float64")
    return float32_requant(acc3, p, bterm, zp, lo, hi, dt)


def quantize(x, scale, zero_point, *, mode, out_dtype="int8"):
    """Quantize a float32 activation with the input arithmetic of ``mode``.

    Parameters
    ----------
    x : ndarray float32, any shape, finite
    scale : float, exactly a normal float32 value
    zero_point : int inside the range of ``out_dtype``
    mode : one of :data:`MODES`
    out_dtype : {"int8", "uint8"}

    Returns
    -------
    ndarray of ``out_dtype``, shape of ``x``

    Arithmetic
    ----------
    float32 throughout, RNE after each operation:

    * tflite_double, tflite_single, tflite_float64: ``clamp(round_half_away(x / s) + zp)``
      (TFLite reference QUANTIZE);
    * tflite_ruy, xnnpack: ``clamp(round_half_even(x * fl32(1 / s)) + zp)`` (LiteRT's
      optimized QUANTIZE, XNNPACK; measured);
    * onnx, onnx_reference: ``clamp(round_half_even(x / s) + zp)``
      (QuantizeLinear; MLAS);
    * torch: ``clamp(round_half_even(fma(x, fl32(1/s), zp)))`` (one rounding
      of ``x * inv + zp``, FBGEMM ``QuantizeAvx2``, what
      ``torch.quantize_per_tensor`` runs on x86-64 with AVX2).

    Raises
    ------
    DTypeError
        ``x`` not a float32 ndarray.
    ParameterError
        NaN/Inf in ``x`` (no code holds them), bad scale, zero point or dtype.
    """
    check_choice("mode", mode, MODES)
    if not isinstance(x, np.ndarray) or x.dtype != np.float32:
        raise DTypeError(f"x must be a float32 ndarray, got {describe(x)}")
    dt = act_dtype(out_dtype)
    s = np.float32(check_scale("scale", scale))
    zp = check_zero_point("zero_point", zero_point, dt)
    bad = x.size - int(np.count_nonzero(np.isfinite(x)))
    if bad:
        raise ParameterError(f"x contains {bad} non-finite element(s) (NaN or Inf); "
                             f"{describe(x)}")
    return quantize_codes(x, s, zp, mode, dt)


def quantize_codes(x, s, zp, mode, dt):
    """:func:`quantize` on validated input (private to refcomp.integer)."""
    lo, hi = dtype_range(dt)
    if x.size == 0:
        return np.zeros(x.shape, dt)
    x3 = np.ascontiguousarray(x).reshape(1, 1, -1)
    inv = (np.ones(1, np.float32) / np.array([s], np.float32)).astype(np.float32)
    if mode == "torch":
        codes = affine_codes(x3, inv, np.array([float(zp)]), lo, hi, "half_even",
                             OP_RECIPROCAL_FMA_ZP, None, dt)
    elif mode in _RECIPROCAL_QUANTIZE:
        codes = affine_codes(x3, inv, np.array([float(zp)]), lo, hi, "half_even",
                             OP_RECIPROCAL, None, dt)
    else:
        rounding = "half_away" if mode in LITERT_MODES else "half_even"
        codes = affine_codes(x3, np.array([s], np.float32), np.array([float(zp)]), lo, hi,
                             rounding, OP_DIVIDE, None, dt)
    return codes.reshape(x.shape)


def dequantize(q, scale, zero_point, *, mode=None):
    """Dequantize 8-bit codes with the float32 arithmetic of ``mode``.

    Parameters
    ----------
    q : ndarray int8 or uint8
    scale : float, exactly a normal float32 value
    zero_point : int inside the range of ``q.dtype``
    mode : one of :data:`MODES`, or None (the same as every mode but tflite_ruy)

    Returns
    -------
    ndarray float32, shape of ``q``:

    * ``fl32((q - zp) * s)`` (exact integer difference, one rounding): TFLite reference and
      XNNPACK DEQUANTIZE, ONNX DequantizeLinear, ``torch.dequantize``;
    * mode "tflite_ruy": ``fl32(fl32(q * s) - fl32(zp * s))`` (two roundings), LiteRT's
      optimized DEQUANTIZE (measured); equal to the former when ``zp * s`` is exact.
    """
    if not isinstance(q, np.ndarray) or q.dtype.name not in ACT_DTYPES:
        raise DTypeError(f"q must be an int8 or uint8 ndarray, got {describe(q)}")
    if mode is not None:
        check_choice("mode", mode, MODES)
    s = np.float32(check_scale("scale", scale))
    zp = check_zero_point("zero_point", zero_point, q.dtype)
    return dequantize_codes(q, s, zp, mode)


def dequantize_codes(q, s, zp, mode=None):
    """:func:`dequantize` on validated input (private to refcomp.integer)."""
    if mode == "tflite_ruy":
        return q.astype(np.float32) * np.float32(s) - np.float32(zp) * np.float32(s)
    return (q.astype(np.int32) - np.int32(zp)).astype(np.float32) * np.float32(s)


# INT32 bounds re-exported for the layers' accumulator documentation.
INT32_RANGE = (INT32_MIN, INT32_MAX)
