"""Posit(n, es) rounding (Gustafson; FACTS.md §6.5), bit-exact with SoftPosit for (8,0), (16,1), (32,2)."""

import numpy as np

from .._errors import ParameterError
from .._validate import check_int
from ..kernels.quantize import posit_decode, posit_encode
from ._quantized import Quantized, narrowest_code_dtype, register_decoder
from ._scalar_common import float_input

__all__ = ["posit"]


def posit(w, nbits, es):
    """Round ``w`` to posit(nbits, es); codes are the posit bit patterns.

    Parameters
    ----------
    w : ndarray, float32 or float64, any shape (empty allowed)
    nbits : int in [3, 32]
    es : int in [0, 5], with (nbits − 2)·2**es <= 1000 (maxpos fits float64)

    Returns
    -------
    Quantized
        ``codes``: unsigned bit patterns (uint8 / uint16 / uint32), two's
        complement for negative values, 0 for zero, ``1 << (nbits−1)`` for
        NaR; ``decoder="posit"``, params nbits, es.  ``dequantize()``:
        the exact posit value in float64 (NaR → NaN), then one RNE
        rounding to ``w.dtype`` (posit32 has more precision than float32
        near 1, and posit ranges can exceed float32: those round/overflow).

    Notes
    -----
    Encoding (posit standard as summarised in FACTS.md §6.5): value =
    (−1)**s · useed**k · 2**e · (1.f), useed = 2**(2**es), regime k = m − 1
    for m ones, −m for m zeros.  |w| (exact, float64) is written as the
    infinite bit string regime | exponent | fraction; the first nbits − 1
    bits are kept and **rounded to nearest, ties to the even bit pattern**
    using every dropped bit (round on the bit string, so a truncated
    exponent field rounds as bits, not as a real value).  Then |x| >
    maxpos → maxpos and 0 < |x| < minpos → minpos (no overflow to NaR, no
    underflow to 0).  NaN and ±inf → NaR (not an error: the format holds
    it).  −0.0 → 0 (posits have one zero).  Checked bit for bit against
    the SoftPosit library (posit8 es=0, posit16 es=1, posit32 es=2).
    """
    float_input("w", w, allow_empty=True)
    nbits = check_int("nbits", nbits, lo=3, hi=32)
    es = check_int("es", es, lo=0, hi=5)
    if (nbits - 2) << es > 1000:
        raise ParameterError(f"posit({nbits}, {es}): maxpos = 2**{(nbits - 2) << es} does not "
                             "fit float64")
    flat = np.ascontiguousarray(w).reshape(-1)
    codes = posit_encode(flat, nbits, es, narrowest_code_dtype(0, (1 << nbits) - 1))
    return Quantized(codes.reshape(w.shape), bits=nbits, method="posit", decoder="posit",
                     params={"nbits": nbits, "es": es}, dtype=w.dtype)


def _decode_posit(q):
    from . import _decoder_checks as C
    C.need(q.params, "posit", "nbits", "es")
    nbits = C.check_intparam(q.params, "nbits", "posit", 3, 32)
    es = C.check_intparam(q.params, "es", "posit", 0, 5)
    C.check_codes(q.codes, "posit", 0, (1 << nbits) - 1)
    C.check_dtype(q.dtype, "posit")
    vals = posit_decode(np.ascontiguousarray(q.codes).reshape(-1), nbits, es)
    return vals.reshape(q.shape).astype(q.dtype)


register_decoder("posit", _decode_posit)
