"""Minifloats: binary floating-point formats with E exponent and M mantissa bits.

Representation: :func:`minifloat` returns a :class:`Quantized` whose
``codes`` are the **bit patterns** of the format (sign | exponent |
mantissa, MSB first) as unsigned integers (uint8 for formats of up to 8
bits, uint16 for 16-bit ones), ``decoder="minifloat"``, and
``dequantize()`` gives the rounded values widened to the input dtype
(exact for every format that fits the input dtype).  The named standard
formats (bfloat16, float16, float8, float4) are in
:mod:`refcomp.quantize.float_formats`.
"""

import math

import numpy as np

from .._errors import DTypeError, ParameterError
from .._validate import check_choice, check_int
from ..kernels.quantize import minifloat_encode
from ._quantized import Quantized, narrowest_code_dtype, register_decoder
from ._scalar_common import float_input

__all__ = ["minifloat", "minifloat_max", "SPECIALS", "ROUNDINGS", "FINITE_NAN", "default_bias"]

#: Layouts of the special values (see :func:`minifloat`), and their kernel codes.
SPECIALS = ("ieee", "fn", "fnuz", "finite")
#: Rounding directions of :func:`minifloat`.
ROUNDINGS = ("nearest_even", "toward_zero")
#: what a "finite" format (no NaN pattern) does with NaN input: refuse it (default), or
#: the zero ml_dtypes 0.7 gives (sign bit inverted; ONNX's reference Cast and node tests)
FINITE_NAN = ("refuse", "ml_dtypes")


def default_bias(exp_bits, special):
    """IEEE bias ``2**(E-1) - 1``; ``2**(E-1)`` for "fnuz" (E4M3FNUZ 8, E5M2FNUZ 16)."""
    return (1 << (exp_bits - 1)) - (0 if special == "fnuz" else 1)


def minifloat_max(exp_bits, man_bits, bias, special):
    """Largest finite value of the format (float64, exact)."""
    top = (1 << exp_bits) - 1
    if special == "fn":
        return math.ldexp((1 << (man_bits + 1)) - 2, top - bias - man_bits)
    if special in ("fnuz", "finite"):
        return math.ldexp((1 << (man_bits + 1)) - 1, top - bias - man_bits)
    return math.ldexp((1 << (man_bits + 1)) - 1, top - 1 - bias - man_bits)


def _check_format(exp_bits, man_bits, bias, special):
    """Validated (exp_bits, man_bits, bias, special); ParameterError naming the field."""
    exp_bits = check_int("exp_bits", exp_bits, lo=1, hi=11)
    man_bits = check_int("man_bits", man_bits, lo=0, hi=30)
    check_int("1 + exp_bits + man_bits", 1 + exp_bits + man_bits, lo=3, hi=32)
    check_choice("special", special, SPECIALS)
    if special in ("ieee", "fn") and (exp_bits < 2 or man_bits < 1):
        raise ParameterError(f"special={special!r} needs exp_bits >= 2 and man_bits >= 1 (its "
                             f"NaN pattern), got exp_bits={exp_bits}, man_bits={man_bits}")
    bias = default_bias(exp_bits, special) if bias is None else \
        check_int("bias", bias, lo=-1000, hi=1000)
    emax = (1 << exp_bits) - (2 if special == "ieee" else 1) - bias
    if emax > 1000 or 1 - bias - man_bits < -1070:
        raise ParameterError(f"bias={bias} puts the format outside the float64 range "
                             f"(emax={emax}, smallest exponent {1 - bias - man_bits})")
    return exp_bits, man_bits, bias, special


def minifloat(w, exp_bits, man_bits, *, bias=None, subnormals=True, saturate=True,
              special="ieee", rounding="nearest_even", method="minifloat", finite_nan="refuse"):
    """Round to a binary floating-point format with ``exp_bits`` / ``man_bits`` fields.

    Parameters
    ----------
    w : ndarray, float32 or float64, any shape (empty allowed)
    exp_bits : int in [1, 11];  man_bits : int in [0, 30];  3 <= 1 + exp_bits + man_bits <= 32
        ("ieee" and "fn" need exp_bits >= 2 and man_bits >= 1 for their NaN).
    bias : int or None
        Exponent bias; None means the IEEE bias ``2**(exp_bits−1) − 1``,
        or ``2**(exp_bits−1)`` for "fnuz" (ONNX / ml_dtypes E4M3FNUZ: 8,
        E5M2FNUZ: 16).
    subnormals : bool
        True (default): gradual underflow with quantum 2**(emin − man_bits).
        False: no subnormals; magnitudes below 2**emin round to nearest of
        {0, 2**emin}, ties to 0 (the even pattern), i.e. the quantum below
        2**emin is 2**emin.
    saturate : bool
        True (default, a quantizer never produces inf): every non-NaN
        input maps to a finite value; finite overflow and ±inf become ±max
        (the ONNX Cast ``saturate=1`` table).  False: overflow gives ±inf
        (``special="ieee"``) or NaN ("fn", "fnuz"), as IEEE and ml_dtypes
        ``astype`` do.  "finite" formats have neither, so they always
        saturate and ``saturate=False`` is refused (ParameterError).
    special : {"ieee", "fn", "fnuz", "finite"}
        "ieee": the top exponent is reserved (inf with zero mantissa, NaN
        otherwise; emax = 2**E − 2 − bias).  "fn" (OCP E4M3FN layout): no
        inf, only S.1…1.1…1 is NaN, the top exponent holds normal values.
        "fnuz" (E4M3FNUZ / E5M2FNUZ, Graphcore / AMD): no inf and no −0;
        the single NaN is the pattern 1.0…0.0 (0x80 for 8 bits); every
        other pattern is a number; NaN, and overflow without saturation,
        give that NaN; a result that rounds to zero is +0 whatever its
        sign.  "finite" (OCP MX float4 E2M1, float6): every pattern is a
        number (no inf, no NaN, −0 kept); NaN input follows
        ``finite_nan``.
    rounding : {"nearest_even", "toward_zero"}
        "nearest_even" (default, IEEE roundTiesToEven): the nearest value,
        ties to the even mantissa.  "toward_zero" (IEEE roundTowardZero,
        truncation): the representable value of largest magnitude not
        above ``|w|``; a finite value beyond max gives ±max (IEEE), ±inf
        follows ``saturate``.  For bfloat16 from float32 this is taking
        the high 16 bits of the float32 pattern ("float32 truncated to 16
        bits", seed 002 §3) for every non-NaN input; NaN gives the quiet
        NaN (bit truncation could turn a NaN whose payload lies in the low
        16 bits into inf).
    finite_nan : {"refuse", "ml_dtypes"}
        NaN input of a ``special="finite"`` format, which has no NaN
        pattern (ignored for the other formats).  "refuse" (default):
        ParameterError with the count, because no code holds the value and
        the implementations disagree on a substitute (ml_dtypes gives a
        zero, some accelerator libraries ±max).  "ml_dtypes": the code
        ``astype(ml_dtypes.float4_e2m1fn)`` (and float6_e2m3fn /
        float6_e3m2fn) gives in ml_dtypes 0.7, which ONNX's reference Cast
        and its backend node tests use: a zero whose sign bit is the
        *complement* of the NaN's sign bit (a NaN with the sign bit clear,
        e.g. ``numpy.nan``, gives −0, pattern 1.0…0; a NaN with the sign
        bit set gives +0), whatever the payload; measured in
        tests/test_quantize_formats.py.

    Returns
    -------
    Quantized
        codes = bit patterns (unsigned, ``1 + exp_bits + man_bits`` bits,
        narrowest dtype), ``decoder="minifloat"``, params exp_bits,
        man_bits, bias, subnormals, special (and saturate for the record).

    Notes
    -----
    Rounding: one rounding (``rounding``) from the exact value of ``w``
    (float32 widens exactly to float64).  The
    rounding is done with an unbounded exponent and overflow is decided
    after rounding, so a value just above max rounds down to max when it
    is below max + ulp/2 (e4m3fn: 464 → 448 by the tie rule, 465 → NaN or
    448 when saturating).  NaN → the quiet NaN pattern with the input's
    sign (IEEE: exponent all ones, top mantissa bit set; "fn": all ones;
    "fnuz": 1.0…0.0, no sign).  NaN payloads are not kept.  Signed zero is
    kept (not in "fnuz").  Decoding returns the exact format value in
    float64, then one RNE rounding to ``w.dtype``.
    """
    float_input("w", w, allow_empty=True)
    exp_bits, man_bits, bias, special = _check_format(exp_bits, man_bits, bias, special)
    check_choice("rounding", rounding, ROUNDINGS)
    if special == "finite":
        if not saturate:
            raise ParameterError("special='finite' has no inf and no NaN: overflow can only "
                                 "saturate; pass saturate=True")
    check_choice("finite_nan", finite_nan, FINITE_NAN)
    nan_at = None
    if special == "finite":
        nan_at = np.isnan(w).reshape(-1)
        nan = int(np.count_nonzero(nan_at))
        if nan and finite_nan == "refuse":
            raise ParameterError(f"w holds {nan} NaN value(s), which a special='finite' format "
                                 "(no NaN pattern) cannot represent (finite_nan='ml_dtypes' "
                                 "maps them to ml_dtypes' zero)")
        nan_at = nan_at if nan else None
    nbits = 1 + exp_bits + man_bits
    flat = np.ascontiguousarray(w).reshape(-1)
    if nan_at is not None:
        # zeros at the NaN positions, then ml_dtypes' pattern: sign bit = not the NaN's sign
        neg = np.signbit(flat[nan_at])
        flat = np.where(nan_at, flat.dtype.type(0), flat)
    codes = minifloat_encode(flat, man_bits, exp_bits, bias, subnormals, saturate,
                             SPECIALS.index(special), narrowest_code_dtype(0, (1 << nbits) - 1),
                             trunc=rounding == "toward_zero")
    if nan_at is not None:
        codes[nan_at] = np.where(neg, 0, 1 << (nbits - 1)).astype(codes.dtype)
    params = {"exp_bits": exp_bits, "man_bits": man_bits, "bias": bias,
              "subnormals": bool(subnormals), "saturate": bool(saturate), "special": special}
    if rounding != "nearest_even":       # recorded only when not the default (old files)
        params["rounding"] = rounding
    return Quantized(codes.reshape(w.shape), bits=nbits, method=method, decoder="minifloat",
                     params=params, dtype=w.dtype,
                     info={"max": minifloat_max(exp_bits, man_bits, bias, special)})


def check_minifloat_params(params, codes, dtype):
    """Validate the parameters of the "minifloat" decoder; return (E, M, bias, special).

    ``exp_bits``, ``man_bits``, ``bias`` (int), ``special`` (one of
    :data:`SPECIALS`), the codes (integers in [0, 2**(1+E+M))) and the
    output dtype (float32/float64): ParameterError / DTypeError naming the
    parameter and its value.  ``subnormals``, ``saturate`` and
    ``rounding`` only describe the encoding; when present they must be
    bools / a name of :data:`ROUNDINGS`.
    """
    for k in ("exp_bits", "man_bits", "bias", "special"):
        if k not in params:
            raise ParameterError(f"minifloat decoder: missing parameter {k!r}")
    e, m, bias, special = _check_format(params["exp_bits"], params["man_bits"],
                                        params["bias"], params["special"])
    for k in ("subnormals", "saturate"):
        if k in params and not isinstance(params[k], (bool, np.bool_)):
            raise ParameterError(f"minifloat decoder: {k} must be a bool, got {params[k]!r}")
    if "rounding" in params:
        check_choice("rounding", params["rounding"], ROUNDINGS)
    if np.dtype(dtype) not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise DTypeError(f"minifloat decoder: dtype must be float32 or float64, got {dtype}")
    if not isinstance(codes, np.ndarray) or codes.dtype.kind not in "iu":
        raise DTypeError(f"minifloat codes must be an integer ndarray, got "
                         f"{getattr(codes, 'dtype', type(codes).__name__)}")
    if codes.size and (int(codes.min()) < 0 or int(codes.max()) >= 1 << (1 + e + m)):
        raise ParameterError(f"minifloat codes must lie in [0, {(1 << (1 + e + m)) - 1}] "
                             f"(1 + exp_bits + man_bits = {1 + e + m} bits), got "
                             f"[{int(codes.min())}, {int(codes.max())}]")
    return e, m, bias, special


def decode_minifloat_bits(codes, e_bits, m_bits, bias, special):
    """Exact float64 values of validated bit patterns (also used by the ONNX casts)."""
    c = codes.astype(np.int64)
    sign = (c >> (e_bits + m_bits)) & 1
    ef = (c >> m_bits) & ((1 << e_bits) - 1)
    man = c & ((1 << m_bits) - 1)
    top = (1 << e_bits) - 1
    normal = ef > 0
    sig = np.where(normal, man + (1 << m_bits), man).astype(np.float64)
    exp = np.where(normal, ef, 1) - bias - m_bits
    val = np.ldexp(sig, exp.astype(np.int32))   # exact: power-of-two scaling
    if special == "fn":
        nan = (ef == top) & (man == (1 << m_bits) - 1)
        val = np.where(nan, np.nan, val)
    elif special == "ieee":
        val = np.where(ef == top, np.where(man == 0, np.inf, np.nan), val)
    val = np.where(sign == 1, -val, val)
    if special == "fnuz":           # 1.0...0.0 is the single NaN, not -0
        val = np.where(c == 1 << (e_bits + m_bits), np.nan, val)
    return val


def _decode_minifloat(q):
    e, m, bias, special = check_minifloat_params(q.params, q.codes, q.dtype)
    return decode_minifloat_bits(q.codes, e, m, bias, special).astype(q.dtype)


register_decoder("minifloat", _decode_minifloat)
