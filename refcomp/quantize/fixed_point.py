"""Fixed point Qm.n (saturating) and dynamic fixed point (Courbariaux et al. 2015, Ristretto)."""

import math

import numpy as np

from .._errors import ParameterError
from .._rounding import MODES
from .._validate import check_choice, check_int
from ..kernels.quantize import affine_codes
from ._quantized import Quantized, narrowest_code_dtype, register_decoder
from ._scalar_common import as_3d, finite_range, float_input

__all__ = ["fixed_point", "dynamic_fixed_point", "dynamic_frac_bits"]


def fixed_point(w, word_bits, frac_bits, *, rounding="half_even", rng=None):
    """Two's-complement fixed point with ``word_bits`` bits, ``frac_bits`` of them fractional.

    Parameters
    ----------
    w : ndarray, float32 or float64, non-empty, finite
    word_bits : int in [2, 32]   (sign bit included; Qm.n has m + n + 1 = word_bits)
    frac_bits : int in [-32, 64]  (negative: a coarser grid than the integers)
    rounding : name from ``refcomp._rounding.MODES``; default "half_even"
    rng : numpy.random.Generator, only for "stochastic" (one ``rng.random(w.shape)`` draw)

    Returns
    -------
    Quantized
        ``method="fixed_point"``, ``decoder="fixed_point"``, signed codes
        q in [−2**(word−1), 2**(word−1) − 1] (narrowest dtype), params
        ``word_bits``, ``frac_bits``, ``rounding``.  ``dequantize()`` is
        ``q · 2**−frac_bits`` computed exactly in float64 then rounded once
        (RNE) to ``w.dtype`` (exact whenever the value fits the dtype).

    Notes
    -----
    q = clamp(rounding(w · 2**frac_bits), qmin, qmax).  The product is an
    exact power-of-two scaling in ``w.dtype`` (unless it overflows to ±inf,
    which then saturates correctly, or lands in the subnormal range).
    Saturating: out-of-range values clamp to the extreme codes.  NaN/Inf:
    ValueError with their count.  −0.0 gives code 0.
    """
    float_input("w", w)
    word_bits = check_int("word_bits", word_bits, lo=2, hi=32)
    frac_bits = check_int("frac_bits", frac_bits, lo=-32, hi=64)
    check_choice("rounding", rounding, MODES)
    if rounding == "stochastic" and not isinstance(rng, np.random.Generator):
        raise ParameterError("rounding='stochastic' needs rng=numpy.random.Generator")
    finite_range("w", w)
    return _fixed(w, word_bits, frac_bits, rounding, rng, "fixed_point", {})


def _fixed(w, word_bits, frac_bits, rounding, rng, method, info):
    qmin, qmax = -(1 << (word_bits - 1)), (1 << (word_bits - 1)) - 1
    mult = np.array([math.ldexp(1.0, frac_bits)], dtype=w.dtype)
    u3 = as_3d(rng.random(w.shape), None) if rounding == "stochastic" else None
    codes = affine_codes(as_3d(w, None), mult, np.zeros(1), qmin, qmax, rounding, True, u3,
                         narrowest_code_dtype(qmin, qmax))
    params = {"word_bits": word_bits, "frac_bits": frac_bits, "rounding": rounding}
    return Quantized(codes.reshape(w.shape), bits=word_bits, method=method,
                     decoder="fixed_point", params=params, dtype=w.dtype, info=info)


def dynamic_frac_bits(max_abs, word_bits):
    """Ristretto's fractional length: ``word_bits − (ceil(log2(max_abs)) + 1)``.

    The integer length il = ceil(log2 max|w|) + 1 (one sign bit) is the
    smallest that holds max|w| in magnitude, computed exactly with frexp
    (no floating-point log).  Consequence of the rule (kept on purpose, as
    in Ristretto): when max|w| is an exact power of two 2**k, il = k + 1 and
    max|w| itself saturates to 2**k − 2**−frac.  max|w| = 0 gives
    frac = word_bits − 1.
    """
    if max_abs == 0.0:
        return word_bits - 1
    m, e = math.frexp(max_abs)          # max_abs = m * 2**e, m in [0.5, 1)
    ceil_log2 = e - 1 if m == 0.5 else e
    return word_bits - (ceil_log2 + 1)


def dynamic_fixed_point(w, word_bits, *, rounding="half_even", rng=None):
    """Dynamic fixed point: :func:`fixed_point` with the fractional length chosen per tensor.

    Courbariaux et al. 2015 / Ristretto (Gysel et al.): one fractional
    length per tensor from max|w| by :func:`dynamic_frac_bits`, clamped to
    [−32, 64].  Same arithmetic, codes and decoder as :func:`fixed_point`;
    ``method="dynamic_fixed_point"``; ``info["max_abs"]``.
    """
    float_input("w", w)
    word_bits = check_int("word_bits", word_bits, lo=2, hi=32)
    check_choice("rounding", rounding, MODES)
    lo, hi = finite_range("w", w)
    max_abs = max(-lo, hi)
    frac = min(64, max(-32, dynamic_frac_bits(max_abs, word_bits)))
    if rounding == "stochastic" and not isinstance(rng, np.random.Generator):
        raise ParameterError("rounding='stochastic' needs rng=numpy.random.Generator")
    return _fixed(w, word_bits, frac, rounding, rng, "dynamic_fixed_point", {"max_abs": max_abs})


def _decode_fixed(q):
    from . import _decoder_checks as C
    C.need(q.params, "fixed_point", "frac_bits")
    frac = C.check_intparam(q.params, "frac_bits", "fixed_point", -1074, 1074)
    C.check_codes(q.codes, "fixed_point")
    C.check_dtype(q.dtype, "fixed_point")
    vals = np.ldexp(q.codes.astype(np.float64), -frac)
    return vals.astype(q.dtype)


register_decoder("fixed_point", _decode_fixed)
