"""TFLite / gemmlowp fixed-point primitives: QuantizeMultiplier, SRDHM, RoundingDivideByPOT,
MultiplyByQuantizedMultiplier with double or single rounding (FACTS.md §5.2-5.4).

Every function takes integer ndarrays (any integer dtype whose values lie in
the stated range; Python ints are accepted too) and computes in int64, where
all intermediates of the C++ int32/int64 definitions are exact.  Results are
int32 ndarrays (or Python ints for scalar input).  Values outside a
function's definition domain raise :class:`refcomp.ParameterError` with
their count; nothing wraps or saturates silently except where the C++
definition saturates (SRDHM at INT32_MIN * INT32_MIN).
"""

import math
import numbers

import numpy as np

from .._errors import DTypeError, ParameterError
from .._validate import check_choice, describe
from ..kernels.integer import INT32_MAX, INT32_MIN, mbqm_requant, rdbpot, srdhm

__all__ = ["quantize_multiplier", "saturating_rounding_doubling_high_mul",
           "rounding_divide_by_pot", "multiply_by_quantized_multiplier", "FIXED_MODES",
           "VARIANTS"]

#: Modes of :func:`multiply_by_quantized_multiplier`.
FIXED_MODES = ("tflite_double", "tflite_single", "tflite_ruy")
#: Kernel variant code of each fixed-point mode (refcomp.kernels.integer).
VARIANTS = {"tflite_double": 0, "tflite_single": 1, "tflite_ruy": 2}


def quantize_multiplier(real, *, mode="tflite_double"):
    """TFLite ``QuantizeMultiplier(double m, int32* qm, int* shift)``.

    Parameters
    ----------
    real : float
        The real multiplier (a Python/NumPy float, used as an IEEE double;
        finite).  Negative values follow the C++ code too (frexp keeps the
        sign), although no TFLite kernel passes one.
    mode : {"tflite_double", "tflite_single", "tflite_ruy"}
        "tflite_single" adds the ``TFLITE_SINGLE_ROUNDING`` clamp of step 6
        ("tflite_ruy" computes the multiplier as "tflite_double").

    Returns
    -------
    (multiplier, shift) : (int, int)
        ``real ~= multiplier * 2**(shift - 31)``; a positive shift is a left
        shift.

    Arithmetic (tensorflow/lite/kernels/internal/quantization_util.cc)
    ---------------------------------------------------------------------
    1. real == 0 -> (0, 0).
    2. ``q, shift = frexp(real)`` (exact; |q| in [0.5, 1)).
    3. ``q_fixed = round(q * 2**31)`` with ``TfLiteRound`` = ``std::round``:
       round half **away from zero**; q * 2**31 is exact in double.
    4. q_fixed == 2**31 -> q_fixed = 2**30, shift += 1.
    5. shift < -31 -> (0, 0) (tiny multipliers flush to zero).
    6. single rounding only: shift > 30 -> (2**31 - 1, 30).

    Raises
    ------
    ParameterError
        ``real`` is not a finite real number, or ``mode`` is unknown.
    """
    check_choice("mode", mode, FIXED_MODES)
    if isinstance(real, bool) or not isinstance(real, (numbers.Real, np.floating, np.integer)):
        raise ParameterError(f"real must be a real number, got {real!r}")
    real = float(real)
    if not math.isfinite(real):
        raise ParameterError(f"real must be finite, got {real!r}")
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    scaled = q * 2.0 ** 31                      # exact: a power-of-two scaling
    t = math.trunc(scaled)
    q_fixed = int(t) + (int(math.copysign(1, scaled)) if abs(scaled - t) >= 0.5 else 0)
    if q_fixed == 1 << 31:
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    if mode == "tflite_single" and shift > 30:
        return INT32_MAX, 30
    return q_fixed, shift


def _int_array(name, x, lo=INT32_MIN, hi=INT32_MAX):
    """(int64 flat array, original shape, scalar?) of integer input within [lo, hi]."""
    scalar = not isinstance(x, np.ndarray)
    if scalar:
        if isinstance(x, bool) or not isinstance(x, (numbers.Integral, np.integer)):
            raise DTypeError(f"{name} must be an integer or an integer ndarray, got {x!r}")
        arr = np.array([int(x)], dtype=object)
        if not lo <= int(x) <= hi:
            raise ParameterError(f"{name} must lie in [{lo}, {hi}], got {int(x)}")
        return arr.astype(np.int64), (), True
    if x.dtype.kind not in "iu":
        raise DTypeError(f"{name} must have an integer dtype, got {describe(x)}")
    flat = x.reshape(-1)
    if flat.size:
        mn, mx = int(flat.min()), int(flat.max())
        if mn < lo or mx > hi:
            bad = int(np.count_nonzero((flat < lo) | (flat > hi)))
            raise ParameterError(f"{name} must lie in [{lo}, {hi}]; {bad} element(s) of "
                                 f"{describe(x)} do not (min {mn}, max {mx})")
    return flat.astype(np.int64), x.shape, False


def _result(flat, shape, scalar):
    if scalar:
        return int(flat[0])
    return flat.astype(np.int32).reshape(shape)


def _broadcast(names_values):
    """Broadcast integer inputs; returns flat int64 arrays, the shape and scalar flag."""
    parts = [_int_array(n, v, lo, hi) for n, v, lo, hi in names_values]
    shapes = [p[1] for p in parts]
    try:
        shape = np.broadcast_shapes(*shapes)
    except ValueError:
        desc = ", ".join(f"{n} {s}" for (n, *_), s in zip(names_values, shapes))
        raise ParameterError(f"shapes do not broadcast: {desc}") from None
    flats = [np.broadcast_to(p[0].reshape(p[1]), shape).reshape(-1) for p in parts]
    return flats, shape, all(p[2] for p in parts)


def saturating_rounding_doubling_high_mul(a, b):
    """gemmlowp ``SaturatingRoundingDoublingHighMul(int32 a, int32 b)``.

    Parameters
    ----------
    a, b : int or integer ndarray (broadcast together), values in int32

    Returns
    -------
    int32 ndarray of the broadcast shape (Python int for scalar input)

    Arithmetic (gemmlowp fixedpoint/fixedpoint.h)
    ---------------------------------------------
    INT32_MAX when a == b == INT32_MIN (the only overflow); otherwise
    ab = a*b exact in int64, nudge = 2**30 if ab >= 0 else 1 - 2**30, and
    the result is (ab + nudge) / 2**31 with C++ division (truncation toward
    zero).  This is round(a*b / 2**31) to nearest with ties toward **+inf**
    (FACTS.md §5.3): +0.5 -> 1, -0.5 -> 0, -1.5 -> -1.
    """
    (fa, fb), shape, scalar = _broadcast([("a", a, INT32_MIN, INT32_MAX),
                                          ("b", b, INT32_MIN, INT32_MAX)])
    return _result(srdhm(np.ascontiguousarray(fa), np.ascontiguousarray(fb)), shape, scalar)


def rounding_divide_by_pot(x, exponent):
    """gemmlowp ``RoundingDivideByPOT(int32 x, int exponent)``.

    Parameters
    ----------
    x : int or integer ndarray, values in int32
    exponent : int or integer ndarray (broadcast with x), values in [0, 31]

    Returns
    -------
    int32 ndarray (Python int for scalar input)

    Arithmetic (gemmlowp fixedpoint/fixedpoint.h)
    ---------------------------------------------
    mask = 2**e - 1, remainder = x & mask, threshold = (mask >> 1) + (1 if
    x < 0 else 0); result = (x >> e) + (1 if remainder > threshold else 0)
    with an arithmetic (flooring) shift.  This is round(x / 2**e) to
    nearest with ties **away from zero**: -2.5 -> -3, 2.5 -> 3.
    """
    (fx, fe), shape, scalar = _broadcast([("x", x, INT32_MIN, INT32_MAX),
                                          ("exponent", exponent, 0, 31)])
    return _result(rdbpot(np.ascontiguousarray(fx), np.ascontiguousarray(fe)), shape, scalar)


def multiply_by_quantized_multiplier(acc, multiplier, shift, *, mode):
    """TFLite ``MultiplyByQuantizedMultiplier(int32 x, int32 qm, int shift)``.

    Parameters
    ----------
    acc : int or integer ndarray, values in int32
    multiplier : int or integer ndarray (broadcast with acc), values in
        [0, 2**31 - 1] (as :func:`quantize_multiplier` returns for a real
        multiplier >= 0)
    shift : int or integer ndarray (broadcast with acc), values in [-31, 30]
    mode : {"tflite_double", "tflite_single", "tflite_ruy"}

    Returns
    -------
    int32 ndarray of the broadcast shape (Python int for scalar input)

    Arithmetic (tensorflow/lite/kernels/internal/common.h; ruy x86 kernels)
    ------------------------------------------------------
    * "tflite_double" (the default build; two roundings): left = max(shift,
      0), right = max(-shift, 0); ``RoundingDivideByPOT(SRDHM(acc * 2**left,
      multiplier), right)``: SRDHM rounds ties toward +inf, then the
      division by 2**right rounds ties away from zero.
    * "tflite_single" (``TFLITE_SINGLE_ROUNDING``): total = 31 - shift;
      ``(acc * multiplier + 2**(total - 1)) >> total`` in int64 with an
      arithmetic shift: one rounding, ties toward +inf.
    * "tflite_ruy" (TFLite's optimized kernels through ruy on x86-64, measured
      with LiteRT 2.3.0, docs/integer.md): SRDHM as in "tflite_double", then a
      rounding right shift with ties toward **+inf**: ``(v + 2**(right-1)) >>
      right``.  Differs from "tflite_double" only on negative ties of the
      second rounding.

    Raises
    ------
    ParameterError
        An argument outside its range; "tflite_double" with an element whose
        ``acc * 2**left`` overflows int32 (undefined in the C++ code);
        "tflite_single" with a result outside int32 (a DCHECK in TFLite).
        The message counts the offending elements.
    """
    check_choice("mode", mode, FIXED_MODES)
    (fx, fm, fs), shape, scalar = _broadcast([("acc", acc, INT32_MIN, INT32_MAX),
                                              ("multiplier", multiplier, 0, INT32_MAX),
                                              ("shift", shift, -31, 30)])
    n = fx.size
    out, bad = mbqm_requant(np.ascontiguousarray(fx).reshape(1, n, 1) if n else
                            fx.reshape(1, 0, 1),
                            np.ascontiguousarray(fm), np.ascontiguousarray(fs),
                            VARIANTS[mode], 0, INT32_MIN, INT32_MAX, np.int64)
    if bad:
        what = ("the result overflows int32 (a TFLite DCHECK)" if mode == "tflite_single"
                else "acc * 2**shift overflows int32 (undefined in TFLite's int32 code)")
        raise ParameterError(f"multiply_by_quantized_multiplier: {bad} element(s) outside the "
                             f"definition domain: {what}")
    return _result(out.reshape(-1), shape, scalar)
