"""Power-of-two quantization (Tang & Kwan 1993; Ristretto): sign, exponent code, zero code."""

import math

import numpy as np

from .._errors import ParameterError
from .._validate import check_choice, check_int
from ._quantized import Quantized, narrowest_code_dtype, register_decoder
from ._scalar_common import finite_range, float_input

__all__ = ["power_of_two"]

_SQRT2 = math.sqrt(2.0)   # fl(sqrt 2) > sqrt 2, so m >= fl(sqrt 2) <=> m >= sqrt 2 for doubles
#: Range of e_max, given (``max_exp``) or computed from the weights.
EMAX_MIN, EMAX_MAX = -1000, 1000


def power_of_two(w, bits, *, domain="log", max_exp=None):
    """Quantize to {0} ∪ {±2**e : e_max − L + 1 <= e <= e_max}, L = 2**(bits−1) − 1.

    Parameters
    ----------
    w : ndarray, float32 or float64, non-empty, finite
    bits : int in [2, 8]: one sign bit, bits − 1 bits of exponent code with
        one code reserved for zero.
    domain : {"log", "linear"}
        "log" (default, Tang & Kwan: the exponent is round(log2|w|)):
        |w| = m·2**e with m in [1, 2) rounds up to 2**(e+1) iff m >= sqrt(2)
        (decided exactly; no tie is possible).  "linear": nearest power in
        value, up iff m >= 1.5 (ties to the larger magnitude).
    max_exp : int or None
        e_max, an integer in [-1000, 1000]; None means the domain-rounded
        exponent of max|w|, raised to -1000 if it is below (only float64
        weights all smaller than about 2**-1000 are affected; see Notes).

    Returns
    -------
    Quantized
        signed codes c in [−L, L]: 0 is zero, ±j is ±2**(j − 1 + e_min);
        ``decoder="power_of_two"``, params e_min, domain.  ``dequantize()``
        is exact (a power of two) unless it falls outside ``w.dtype``.

    Notes
    -----
    After rounding the exponent: e > e_max saturates to e_max.  Underflow:
    "log": e < e_min gives 0; "linear": the nearest of 0 and 2**e_min,
    i.e. |w| < 2**(e_min−1) gives 0 (the midpoint goes to 2**e_min).
    Zero (either sign) gives code 0.  NaN/Inf: ValueError with the count.

    e_max always lies in [-1000, 1000], the range ``max_exp`` accepts, so
    ``power_of_two(w, bits, max_exp=q.info["e_max"])`` reproduces any
    result ``q``.  A computed e_max below -1000 is clamped to -1000: the
    largest magnitude then lies below 2**e_max and keeps its rounded
    exponent when that is at least e_min (else it underflows as above).

    Raises
    ------
    ParameterError
        ``bits``, ``domain`` or ``max_exp`` out of range, or max|w| rounds
        to an exponent above 1000 (float64 weights of about 2**1000 or
        more): pass the weights scaled down.
    """
    float_input("w", w)
    bits = check_int("bits", bits, lo=2, hi=8)
    check_choice("domain", domain, ("log", "linear"))
    lo, hi = finite_range("w", w)
    L = (1 << (bits - 1)) - 1
    a = np.abs(np.ascontiguousarray(w).astype(np.float64))
    m, e = np.frexp(a)                       # a = m * 2**e, m in [0.5, 1)
    m2, e2 = 2.0 * m, e - 1                  # a = m2 * 2**e2, m2 in [1, 2) (exact)
    thr = _SQRT2 if domain == "log" else 1.5
    er = e2 + (m2 >= thr)
    amax = max(-lo, hi)
    if max_exp is None:
        if amax == 0.0:
            emax = 0
        else:
            mm, ee = math.frexp(amax)
            emax = ee - 1 + int(2.0 * mm >= thr)
        if emax > EMAX_MAX:
            raise ParameterError(f"max|w| = {amax!r} rounds to the exponent {emax}, above "
                                 f"{EMAX_MAX}, the largest e_max power_of_two accepts; scale "
                                 "the weights down")
        emax = max(emax, EMAX_MIN)
    else:
        emax = check_int("max_exp", max_exp, lo=EMAX_MIN, hi=EMAX_MAX)
    emin = emax - L + 1
    er = np.minimum(er, emax)
    j = (er - emin + 1).astype(np.int64)
    if domain == "log":
        j = np.where(er < emin, 0, j)
    else:
        j = np.where(er < emin, np.where(a >= math.ldexp(1.0, emin - 1), 1, 0), j)
    j = np.where(a == 0.0, 0, j)
    codes = np.where(np.signbit(w) & (j > 0), -j, j).astype(narrowest_code_dtype(-L, L))
    return Quantized(codes, bits=bits, method="power_of_two", decoder="power_of_two",
                     params={"e_min": int(emin), "domain": domain}, dtype=w.dtype,
                     info={"e_max": int(emax)})


def _decode_pow2(q):
    from . import _decoder_checks as C
    C.need(q.params, "power_of_two", "e_min")
    e_min = C.check_intparam(q.params, "e_min", "power_of_two", -2200, 1100)
    C.check_codes(q.codes, "power_of_two", -2100, 2100)
    C.check_dtype(q.dtype, "power_of_two")
    c = q.codes.astype(np.int64)
    mag = np.where(c == 0, 0.0, np.ldexp(1.0, np.abs(c) - 1 + e_min))
    return np.where(c < 0, -mag, mag).astype(q.dtype)


register_decoder("power_of_two", _decode_pow2)
