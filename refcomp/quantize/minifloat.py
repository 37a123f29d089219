"""Minifloats and the standard small float formats (bfloat16, float16, float8 e4m3fn / e5m2).

Representation: every function here returns a :class:`Quantized` whose
``codes`` are the **bit patterns** of the format (sign | exponent |
mantissa, MSB first) as unsigned integers (uint8 for 8-bit formats, uint16
for 16-bit ones), ``decoder="minifloat"``, and ``dequantize()`` gives the
rounded values widened to the input dtype (exact for every format that fits
the input dtype).  The codes can be viewed directly as the framework type,
e.g. ``q.codes.view(ml_dtypes.bfloat16)`` or ``q.codes.view(np.float16)``.
"""

import math

import numpy as np

from .._errors import ParameterError
from .._validate import check_choice, check_int
from ..kernels.quantize import minifloat_encode
from ._quantized import Quantized, narrowest_code_dtype, register_decoder
from ._scalar_common import float_input

__all__ = ["minifloat", "to_bfloat16", "to_float16", "to_float8_e4m3fn", "to_float8_e5m2",
           "minifloat_max"]

SPECIALS = ("ieee", "fn")


def minifloat_max(exp_bits, man_bits, bias, special):
    """Largest finite value of the format (float64, exact)."""
    top = (1 << exp_bits) - 1
    if special == "fn":
        return math.ldexp((1 << (man_bits + 1)) - 2, top - bias - man_bits)
    return math.ldexp((1 << (man_bits + 1)) - 1, top - 1 - bias - man_bits)


def minifloat(w, exp_bits, man_bits, *, bias=None, subnormals=True, saturate=True,
              special="ieee", method="minifloat"):
    """Round to a binary floating-point format with ``exp_bits`` / ``man_bits`` fields.

    Parameters
    ----------
    w : ndarray, float32 or float64, any shape (empty allowed)
    exp_bits : int in [2, 11];  man_bits : int in [1, 30];  1 + exp_bits + man_bits <= 32
    bias : int or None
        Exponent bias; None means the IEEE bias ``2**(exp_bits−1) − 1``.
    subnormals : bool
        True (default): gradual underflow with quantum 2**(emin − man_bits).
        False: no subnormals; magnitudes below 2**emin round to nearest of
        {0, 2**emin}, ties to 0 (the even pattern), i.e. the quantum below
        2**emin is 2**emin.
    saturate : bool
        True (default, a quantizer never produces inf): every non-NaN
        input maps to a finite value; finite overflow and ±inf become ±max
        (the ONNX Cast ``saturate=1`` table).  False: overflow gives ±inf
        (``special="ieee"``) or NaN (``"fn"``), as IEEE and ml_dtypes
        ``astype`` do.
    special : {"ieee", "fn"}
        "ieee": the top exponent is reserved (inf with zero mantissa, NaN
        otherwise; emax = 2**E − 2 − bias).  "fn" (OCP E4M3FN layout): no
        inf, only S.1…1.1…1 is NaN, the top exponent holds normal values.

    Returns
    -------
    Quantized
        codes = bit patterns (unsigned, ``1 + exp_bits + man_bits`` bits,
        narrowest dtype), ``decoder="minifloat"``, params exp_bits,
        man_bits, bias, subnormals, special (and saturate for the record).

    Notes
    -----
    Rounding: round to nearest, ties to even mantissa, from the exact
    value of ``w`` (float32 widens exactly to float64; one rounding).  The
    rounding is done with an unbounded exponent and overflow is decided
    after rounding, so a value just above max rounds down to max when it
    is below max + ulp/2 (e4m3fn: 464 → 448 by the tie rule, 465 → NaN or
    448 when saturating).  NaN → the quiet NaN pattern with the input's
    sign (IEEE: exponent all ones, top mantissa bit set; "fn": all ones).
    NaN payloads are not kept.  Signed zero is kept.  Decoding returns the
    exact format value in float64, then one RNE rounding to ``w.dtype``.
    """
    float_input("w", w, allow_empty=True)
    exp_bits = check_int("exp_bits", exp_bits, lo=2, hi=11)
    man_bits = check_int("man_bits", man_bits, lo=1, hi=30)
    check_int("1 + exp_bits + man_bits", 1 + exp_bits + man_bits, lo=3, hi=32)
    check_choice("special", special, SPECIALS)
    bias = (1 << (exp_bits - 1)) - 1 if bias is None else check_int("bias", bias, lo=-1000,
                                                                       hi=1000)
    emax = (1 << exp_bits) - (1 if special == "fn" else 2) - bias
    if emax > 1000 or 1 - bias - man_bits < -1070:
        raise ParameterError(f"bias={bias} puts the format outside the float64 range "
                             f"(emax={emax}, smallest exponent {1 - bias - man_bits})")
    nbits = 1 + exp_bits + man_bits
    flat = np.ascontiguousarray(w).reshape(-1)
    codes = minifloat_encode(flat, man_bits, exp_bits, bias, subnormals, saturate,
                             special == "fn", narrowest_code_dtype(0, (1 << nbits) - 1))
    params = {"exp_bits": exp_bits, "man_bits": man_bits, "bias": bias,
              "subnormals": bool(subnormals), "saturate": bool(saturate), "special": special}
    return Quantized(codes.reshape(w.shape), bits=nbits, method=method, decoder="minifloat",
                     params=params, dtype=w.dtype,
                     info={"max": minifloat_max(exp_bits, man_bits, bias, special)})


def _decode_minifloat(q):
    p = q.params
    e_bits, m_bits, bias = int(p["exp_bits"]), int(p["man_bits"]), int(p["bias"])
    c = q.codes.astype(np.int64)
    sign = (c >> (e_bits + m_bits)) & 1
    ef = (c >> m_bits) & ((1 << e_bits) - 1)
    man = c & ((1 << m_bits) - 1)
    top = (1 << e_bits) - 1
    normal = ef > 0
    sig = np.where(normal, man + (1 << m_bits), man).astype(np.float64)
    exp = np.where(normal, ef, 1) - bias - m_bits
    val = np.ldexp(sig, exp.astype(np.int32))   # exact: power-of-two scaling
    if p["special"] == "fn":
        nan = (ef == top) & (man == (1 << m_bits) - 1)
        val = np.where(nan, np.nan, val)
    else:
        val = np.where(ef == top, np.where(man == 0, np.inf, np.nan), val)
    val = np.where(sign == 1, -val, val)
    return val.astype(q.dtype)


register_decoder("minifloat", _decode_minifloat)


def _standard(w, exp_bits, man_bits, special, saturate, via_float32, method):
    float_input("w", w, allow_empty=True)
    if via_float32 and w.dtype == np.float64:
        # ml_dtypes casts float64 -> float32 -> target (two RNE roundings).
        src = w.astype(np.float32)
        q = minifloat(src, exp_bits, man_bits, saturate=saturate, special=special, method=method)
        q.dtype = w.dtype
        return q
    return minifloat(w, exp_bits, man_bits, saturate=saturate, special=special, method=method)


_STD_DOC = """Round ``w`` to {name} (RNE), returning bit patterns ({ctype}) in a Quantized.

    Parameters
    ----------
    w : ndarray, float32 or float64, any shape (empty allowed)
    saturate : bool, default False
        False: {overflow} — bit-exact with ``w.astype({ref})``{refnote}.
        True: finite overflow and ±inf map to ±{maxval} (ONNX Cast saturate=1).
    via_float32 : bool, default {via}
        For float64 input: True rounds to float32 first and then to the
        target (two RNE roundings), exactly what ml_dtypes' NumPy cast does
        (FACTS.md §6.1); False rounds once from the exact float64 value.
        Ignored for float32 input.

    Returns
    -------
    Quantized
        ``codes``: {ctype} bit patterns (view them as ``{ref}``),
        ``decoder="minifloat"`` with {fields}, ``method="{method}"``;
        ``dequantize()`` returns the exact {name} value in ``w.dtype``.
        NaN → {nanpat} (sign kept); signed zero and subnormals are kept.
        Same arithmetic as :func:`minifloat`.
    """


def to_bfloat16(w, *, saturate=False, via_float32=True):
    return _standard(w, 8, 7, "ieee", saturate, via_float32, "bfloat16")


def to_float16(w, *, saturate=False, via_float32=False):
    return _standard(w, 5, 10, "ieee", saturate, via_float32, "float16")


def to_float8_e4m3fn(w, *, saturate=False, via_float32=True):
    return _standard(w, 4, 3, "fn", saturate, via_float32, "float8_e4m3fn")


def to_float8_e5m2(w, *, saturate=False, via_float32=True):
    return _standard(w, 5, 2, "ieee", saturate, via_float32, "float8_e5m2")


to_bfloat16.__doc__ = _STD_DOC.format(
    name="bfloat16", ctype="uint16", overflow="overflow gives ±inf", ref="ml_dtypes.bfloat16",
    refnote=" (Eigen ``float_to_bfloat16_rtne``)", maxval="3.3895314e38", via="True",
    fields="exp_bits=8, man_bits=7, bias=127", method="bfloat16", nanpat="0x7FC0 / 0xFFC0")
to_float16.__doc__ = _STD_DOC.format(
    name="IEEE float16", ctype="uint16", overflow="overflow gives ±inf", ref="numpy.float16",
    refnote=" (NumPy rounds float64 directly, hence via_float32=False)", maxval="65504",
    via="False", fields="exp_bits=5, man_bits=10, bias=15", method="float16",
    nanpat="0x7E00 / 0xFE00")
to_float8_e4m3fn.__doc__ = _STD_DOC.format(
    name="float8 E4M3FN", ctype="uint8",
    overflow="overflow (above 464 after RNE) and ±inf give NaN (the format has no inf)",
    ref="ml_dtypes.float8_e4m3fn", refnote="", maxval="448", via="True",
    fields="exp_bits=4, man_bits=3, bias=7, special='fn'", method="float8_e4m3fn",
    nanpat="0x7F / 0xFF")
to_float8_e5m2.__doc__ = _STD_DOC.format(
    name="float8 E5M2", ctype="uint8", overflow="overflow gives ±inf",
    ref="ml_dtypes.float8_e5m2", refnote="", maxval="57344", via="True",
    fields="exp_bits=5, man_bits=2, bias=15", method="float8_e5m2", nanpat="0x7E / 0xFE")
