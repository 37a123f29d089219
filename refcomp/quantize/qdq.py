"""ONNX QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear and Cast of the float formats.

Element types are named as NumPy / ml_dtypes name them: "int8", "uint8",
"int16", "uint16", "int4", "uint4", "int2", "uint2", "int32" (dequantize
only), "float8_e4m3fn", "float8_e4m3fnuz", "float8_e5m2", "float8_e5m2fnuz",
"float4_e2m1fn", "bfloat16", "float16", "float32", "float64".  Arrays of the
types NumPy lacks are passed and returned as their integer representation:
sub-byte integers as int8 / uint8 values, float formats as bit patterns
(uint8, uint16 for bfloat16); an ml_dtypes array is accepted as input and
read as such (``x_type`` then defaults to its dtype's name).

Arithmetic (ONNX opset 21-25 operator texts, FACTS.md §5.6 and §6):

* QuantizeLinear: ``v = x / y_scale`` with one IEEE division in the
  precision of ``y_scale``'s dtype (or ``precision``); integer outputs
  ``clamp(rint(v) + zp)`` (ties to even, exact), float outputs ``v``
  rounded once (RNE) to the format, saturating or not (``saturate``,
  float8 only; float4 always saturates).  NaN with an integer output type
  is a ParameterError (no code holds it).
* DequantizeLinear: ``(x - zp) * x_scale`` rounded **once** (RNE) to the
  output type from the exact real product (float64 product made
  round-to-odd when inexact, then one rounding: correct for every output
  of at most 24 significand bits).
* Cast: the exact input value rounded once (RNE) to the target (through
  :func:`refcomp.quantize.to_format` for bfloat16 / float8 / float4 with
  ``via_float32=False``).
"""

import numbers

import numpy as np

from .._errors import DTypeError, ParameterError, ShapeError
from .._validate import check_choice
from ._decoder_checks import scale_layout
from .decode import as_codes
from .float_formats import FORMATS, to_format
from .minifloat import decode_minifloat_bits

__all__ = ["quantize_linear", "dequantize_linear", "dynamic_quantize_linear", "cast",
           "INT_TYPES", "FLOAT_TYPES"]

#: integer element type -> (qmin, qmax, NumPy dtype holding the values)
INT_TYPES = {"int8": (-128, 127, np.int8), "uint8": (0, 255, np.uint8),
             "int16": (-32768, 32767, np.int16), "uint16": (0, 65535, np.uint16),
             "int4": (-8, 7, np.int8), "uint4": (0, 15, np.uint8),
             "int2": (-2, 1, np.int8), "uint2": (0, 3, np.uint8),
             "int32": (-(1 << 31), (1 << 31) - 1, np.int32)}
#: float element types with bit-pattern representations (FORMATS of float_formats)
FLOAT_TYPES = tuple(FORMATS)
_NUMPY_FLOATS = {"float16": np.float16, "float32": np.float32, "float64": np.float64}


def _type_of(a, given, what):
    if given is not None:
        return given
    return a.dtype.name


def _float_array(name, a):
    """float16 / float32 / float64 ndarray, or an ml_dtypes bfloat16 array (-> float32)."""
    if isinstance(a, np.ndarray) and a.dtype.kind == "V" and a.dtype.name == "bfloat16":
        return a.astype(np.float32)
    if not isinstance(a, np.ndarray) or a.dtype not in (np.float16, np.float32, np.float64):
        raise DTypeError(f"{name} must be a float16/float32/float64 ndarray, got "
                         f"{getattr(a, 'dtype', type(a).__name__)}")
    return a


def _layout(name, arr, shape, axis, block_size):
    """Broadcastable per-tensor / per-axis / blocked parameter (ONNX rules)."""
    if isinstance(block_size, bool) or not isinstance(block_size, (numbers.Integral, np.integer)) \
            or block_size < 0:
        raise ParameterError(f"block_size must be an int >= 0 (0: not blocked), got "
                             f"{block_size!r}")
    if arr.ndim == 0 or arr.size == 1 and arr.ndim <= 1 and not block_size:
        return arr.reshape(())
    nd = len(shape)
    if isinstance(axis, bool) or not isinstance(axis, (numbers.Integral, np.integer)) or \
            not -nd <= axis < nd:
        raise ParameterError(f"axis={axis!r} is out of range for x with {nd} dimensions")
    ax = int(axis) % nd
    return scale_layout(arr, name, tuple(shape), ax, int(block_size) if block_size else None,
                        "ONNX")


def _round_once(exact_hi, exact_lo, out):
    """Round hi + lo (hi = fl64(hi + lo), the pair exact) once to ``out``.

    Round-to-odd: an inexact float64 hi with an even last bit is moved one
    ulp toward lo, so the final RNE rounding to a format of <= 51 bits is the
    correct rounding of the exact sum (Boldo & Melquiond).
    """
    hi = exact_hi.copy()
    odd = hi.view(np.int64) & 1
    fix = (exact_lo != 0) & (odd == 0) & np.isfinite(hi)
    hi[fix] = np.nextafter(hi[fix], np.where(exact_lo[fix] > 0, np.inf, -np.inf))
    if out in _NUMPY_FLOATS:
        with np.errstate(over="ignore"):
            return hi.astype(_NUMPY_FLOATS[out]) if out != "float64" else exact_hi
    return to_format(hi, out, via_float32=False, saturate=False).codes


def _two_product(a, b):
    """(p, e) with p = fl64(a*b) and p + e = a*b exactly (Dekker / Veltkamp, no FMA)."""
    p = a * b
    split = 134217729.0                  # 2**27 + 1

    def halves(v):
        c = split * v
        hi = c - (c - v)
        return hi, v - hi

    with np.errstate(over="ignore", invalid="ignore"):
        ah, al = halves(a)
        bh, bl = halves(b)
        e = ((ah * bh - p) + ah * bl + al * bh) + al * bl
    e = np.where(np.isfinite(p), e, 0.0)
    return p, e


def quantize_linear(x, y_scale, y_zero_point=None, *, axis=1, block_size=0, saturate=True,
                    output_dtype=None, precision=None):
    """ONNX ``QuantizeLinear`` (opset 21-25): per tensor, per axis or blocked.

    Parameters
    ----------
    x : float16 / float32 / float64 ndarray (or ml_dtypes bfloat16)
    y_scale : float ndarray: 0-d / one element (per tensor), 1-D of length
        ``x.shape[axis]`` (per axis) or x's rank with ``ceil(D / block_size)``
        along ``axis`` (blocked); > 0 and finite.
    y_zero_point : optional ndarray of the output type (same layout as the
        scale); its dtype (ml_dtypes for int4 / float8...) names the output
        type; must be zero for float outputs.
    axis : int, default 1;  block_size : int >= 0 (0: not blocked)
    saturate : bool, default True (float8 outputs only: False turns overflow
        into NaN, or ±inf for float8_e5m2)
    output_dtype : str, optional: the output type when there is no zero
        point (default "uint8"); must equal the zero point's type if both.
    precision : {None, "float16", "float32", "float64"}: dtype of the
        division (default: y_scale's dtype).

    Returns
    -------
    ndarray: integer values (int8 / uint8 for 4- and 2-bit types, int16 /
    uint16) or uint8 bit patterns of the float format.
    """
    x = _float_array("x", x)
    y_scale = _float_array("y_scale", y_scale)
    if not np.all(np.isfinite(y_scale)) or np.any(y_scale <= 0):
        raise ParameterError("y_scale must be finite and > 0")
    zp_type = None
    if y_zero_point is not None:
        if not isinstance(y_zero_point, np.ndarray):
            raise DTypeError(f"y_zero_point must be an ndarray, got {type(y_zero_point).__name__}")
        zp_type = y_zero_point.dtype.name
        if output_dtype is not None and output_dtype != zp_type:
            raise ParameterError(f"output_dtype={output_dtype!r} differs from the zero point's "
                                 f"type {zp_type!r}")
    out = zp_type or output_dtype or "uint8"
    check_choice("output type", out, tuple(k for k in INT_TYPES if k != "int32")
                 + tuple(k for k in FLOAT_TYPES if k not in ("bfloat16", "float16")))
    check_choice("saturate", saturate, (False, True))
    pdt = y_scale.dtype if precision is None else np.dtype(
        check_choice("precision", precision, tuple(_NUMPY_FLOATS)))
    s = _layout("y_scale", y_scale, x.shape, axis, block_size).astype(pdt)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        v = x.astype(pdt) / s                            # one IEEE division in pdt
    zp = None
    if y_zero_point is not None:
        zp = _layout("y_zero_point", as_codes(y_zero_point), x.shape, axis, block_size)
    if out in INT_TYPES:
        lo, hi, npt = INT_TYPES[out]
        nan = int(np.count_nonzero(np.isnan(v)))
        if nan:
            raise ParameterError(f"x / y_scale holds {nan} NaN value(s); no {out} code holds NaN")
        r = np.rint(v.astype(np.float64))
        if zp is not None:
            r = r + zp.astype(np.float64)
        return np.clip(r, lo, hi).astype(npt)
    if zp is not None:
        e, m, bias, special = FORMATS[out]
        zv = decode_minifloat_bits(zp, e, m, bias, special)
        if np.any(zv != 0):
            raise ParameterError(f"y_zero_point must be zero for the float output type {out!r}")
        v = v + zv.astype(pdt)        # the operator's formula: -0.0 + 0 gives +0.0
    return to_format(np.asarray(v, dtype=np.float64 if pdt == np.float64 else np.float32),
                     out, saturate=bool(saturate), via_float32=False).codes


def _decode(x, x_type):
    """(exact float64 values, is_float_format) of codes of ``x_type``."""
    if x_type in INT_TYPES:
        lo, hi, _ = INT_TYPES[x_type]
        if x.dtype.kind not in "iu":
            raise DTypeError(f"x of type {x_type!r} must hold integers, got dtype {x.dtype}")
        if x.size and (int(x.min()) < lo or int(x.max()) > hi):
            raise ParameterError(f"x holds values outside the {x_type} range [{lo}, {hi}]")
        return x.astype(np.float64), False
    if x_type in FLOAT_TYPES:
        e, m, bias, special = FORMATS[x_type]
        if x_type == "float16" and x.dtype == np.float16:
            return x.astype(np.float64), True
        if x.dtype.kind not in "u" or x.size and int(x.max()) >= 1 << (1 + e + m):
            raise ParameterError(f"x of type {x_type!r} must hold its bit patterns (unsigned "
                                 f"integers below 2**{1 + e + m}), got dtype {x.dtype}")
        return decode_minifloat_bits(x, e, m, bias, special), True
    raise ParameterError(f"x_type must be one of {sorted(INT_TYPES) + sorted(FLOAT_TYPES)}, got "
                         f"{x_type!r}")


def dequantize_linear(x, x_scale, x_zero_point=None, *, axis=1, block_size=0,
                      output_dtype=None, x_type=None):
    """ONNX ``DequantizeLinear`` (opset 21-25): ``y = (x - zp) * x_scale``.

    Parameters
    ----------
    x : codes (see the module docstring) or an ml_dtypes array
    x_scale : float16 / float32 / float64 ndarray (layouts as
        :func:`quantize_linear`)
    x_zero_point : optional, of x's type (zero for float formats; int32 x has none)
    axis, block_size : as :func:`quantize_linear`
    output_dtype : {None, "float16", "float32", "float64", "bfloat16"}:
        default x_scale's dtype
    x_type : str, optional: x's element type (default: x's dtype name;
        required for bit patterns held in uint8 / uint16)

    Returns
    -------
    ndarray of the output dtype (uint16 bit patterns for bfloat16).

    Arithmetic: x and zp decoded exactly; ``x - zp`` exact (float64); the
    product with the scale rounded once from its exact value (module
    docstring).  NaN codes give NaN.
    """
    xt = _type_of(x, x_type, "x")
    codes = as_codes(x)
    vals, is_float = _decode(codes, xt)
    x_scale = _float_array("x_scale", x_scale)
    out = output_dtype or x_scale.dtype.name
    check_choice("output_dtype", out, ("float16", "float32", "float64", "bfloat16"))
    s = _layout("x_scale", x_scale, codes.shape, axis, block_size).astype(np.float64)
    if x_zero_point is not None:
        if xt == "int32":
            raise ParameterError("int32 x has no zero point (ONNX DequantizeLinear)")
        if not isinstance(x_zero_point, np.ndarray):
            raise DTypeError(f"x_zero_point must be an ndarray, got "
                             f"{type(x_zero_point).__name__}")
        zt = x_zero_point.dtype.name if x_zero_point.dtype.kind == "V" or x_type is None \
            else xt
        if zt != xt and not (is_float and x_zero_point.dtype == np.uint8):
            raise DTypeError(f"x_zero_point has type {zt!r}, x has {xt!r}")
        zv, _ = _decode(as_codes(x_zero_point), xt)
        if is_float and np.any(zv != 0):
            raise ParameterError(f"x_zero_point must be zero for the float type {xt!r}")
        vals = vals - _layout("x_zero_point", zv, codes.shape, axis, block_size)
    with np.errstate(invalid="ignore"):
        p, e = _two_product(vals, np.broadcast_to(s, vals.shape))
    return _round_once(p, e, out)


def dynamic_quantize_linear(x):
    """ONNX ``DynamicQuantizeLinear``: (y uint8, y_scale float32 0-d, y_zero_point uint8 0-d).

    x : float32 ndarray, finite, not all zero.  In float32 as the operator
    text: ``lo = min(0, min x)``, ``hi = max(0, max x)``, ``y_scale =
    (hi - lo) / 255`` (one float32 rounding), ``zp = clamp(rint(0 - lo /
    y_scale), 0, 255)``, ``y = clamp(rint(x / y_scale) + zp, 0, 255)``
    (divisions in float32, ties to even).
    """
    if not isinstance(x, np.ndarray) or x.dtype != np.float32:
        raise DTypeError(f"x must be a float32 ndarray, got {getattr(x, 'dtype', type(x))}")
    if x.size == 0:
        raise ShapeError("x must not be empty")
    if not np.all(np.isfinite(x)):
        raise ParameterError("x must be finite (DynamicQuantizeLinear's range)")
    lo = np.float32(min(0.0, float(x.min())))
    hi = np.float32(max(0.0, float(x.max())))
    scale = np.float32((hi - lo) / np.float32(255))
    if scale == 0:
        raise ParameterError("x is all zeros: y_scale would be 0")
    zp = np.clip(np.rint(np.float64(np.float32(0) - lo / scale)), 0, 255)
    y = quantize_linear(x, np.array(scale), np.array(zp, np.uint8))
    return y, np.array(scale, np.float32), np.array(zp, np.uint8)


def cast(x, to, *, saturate=True, x_type=None, finite_nan="refuse"):
    """ONNX ``Cast`` between float16/float32/float64/bfloat16 and every float8 / float4 format.

    Parameters
    ----------
    x : float16 / float32 / float64 ndarray, or codes of a float format
        (ml_dtypes array, or bit patterns with ``x_type``)
    to : one of "float16", "float32", "float64", "bfloat16", "float8_e4m3fn",
        "float8_e4m3fnuz", "float8_e5m2", "float8_e5m2fnuz", "float4_e2m1fn"
    saturate : bool (float8 targets only, ONNX Cast opset >= 19 tables):
        True (default): ±inf and overflow give ±max; False: NaN, or ±inf
        for float8_e5m2.  Ignored for the other targets: bfloat16 / float16
        overflow to ±inf (IEEE); float4_e2m1fn always saturates.
    finite_nan : {"refuse", "ml_dtypes"}, default "refuse"
        NaN cast to float4_e2m1fn, which has no NaN: "refuse" raises
        ParameterError (the implementations disagree); "ml_dtypes" gives
        what ml_dtypes 0.7, ONNX's reference Cast and its node tests give,
        a zero with the sign bit inverted (NaN -> 0x8, -NaN -> 0x0); see
        :func:`refcomp.quantize.minifloat`.  Ignored for the other targets.

    Returns
    -------
    ndarray: float16/32/64 values, or the bit patterns of the target format
    (uint16 for bfloat16, uint8 otherwise).

    Arithmetic: the exact input value rounded once (RNE) to ``to``; a
    float target keeps NaN and goes to ±inf on overflow (NumPy's cast).
    """
    # FLOAT_TYPES holds float16 too (a refcomp format): each name once in the message
    check_choice("to", to, tuple(dict.fromkeys(tuple(_NUMPY_FLOATS) + FLOAT_TYPES)))
    check_choice("saturate", saturate, (False, True))
    if isinstance(x, np.ndarray) and x.dtype in (np.float16, np.float32, np.float64) and \
            x_type is None:
        v = x.astype(np.float64)
    else:
        xt = _type_of(x, x_type, "x")
        if xt not in FLOAT_TYPES and xt not in _NUMPY_FLOATS:
            raise ParameterError(f"x_type must be a float type, got {xt!r}")
        v, _ = _decode(as_codes(x), xt) if xt in FLOAT_TYPES else (x.astype(np.float64), 1)
    if to in _NUMPY_FLOATS:
        with np.errstate(over="ignore"):
            return v.astype(_NUMPY_FLOATS[to])
    # saturate applies to the float8 targets only (bfloat16: IEEE overflow to inf)
    sat = bool(saturate) and to.startswith("float8")
    return to_format(v, to, saturate=sat, via_float32=False, finite_nan=finite_nan).codes
