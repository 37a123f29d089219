"""The named small float formats: bfloat16, float16, float8 (E4M3FN, E4M3FNUZ, E5M2,
E5M2FNUZ) and float4 E2M1, as :func:`refcomp.quantize.minifloat` instances.

Every function returns a :class:`Quantized` of bit patterns (view them as
the ml_dtypes / NumPy type: ``q.codes.view(ml_dtypes.bfloat16)``); the
table :data:`FORMATS` gives each format's fields, and :func:`to_format`
rounds to a format by name.
"""

from .._validate import check_choice
from ._scalar_common import float_input
from .minifloat import minifloat

__all__ = ["FORMATS", "to_format", "to_bfloat16", "to_float16", "to_float8_e4m3fn",
           "to_float8_e4m3fnuz", "to_float8_e5m2", "to_float8_e5m2fnuz", "to_float4_e2m1"]

#: name -> (exp_bits, man_bits, bias, special); names as ml_dtypes / NumPy spell them.
FORMATS = {
    "bfloat16": (8, 7, 127, "ieee"),
    "float16": (5, 10, 15, "ieee"),
    "float8_e4m3fn": (4, 3, 7, "fn"),
    "float8_e4m3fnuz": (4, 3, 8, "fnuz"),
    "float8_e5m2": (5, 2, 15, "ieee"),
    "float8_e5m2fnuz": (5, 2, 16, "fnuz"),
    "float4_e2m1fn": (2, 1, 1, "finite"),
}


def to_format(w, name, *, saturate=False, via_float32=None, rounding="nearest_even",
              finite_nan="refuse"):
    """Round ``w`` to the format ``name`` (a key of :data:`FORMATS`).

    ``via_float32`` None means the format's own default (False for float16,
    True for the others, see :func:`to_bfloat16`).  "float4_e2m1fn" has no
    inf and no NaN: it always saturates (``saturate`` is ignored) and NaN
    input follows ``finite_nan`` ("refuse", default, or "ml_dtypes": the
    zero ml_dtypes gives; ignored by the other formats).  Otherwise as
    :func:`refcomp.quantize.minifloat`.
    """
    check_choice("format", name, FORMATS)
    e, m, bias, special = FORMATS[name]
    if via_float32 is None:
        via_float32 = name != "float16"
    if special == "finite":
        saturate = True
    float_input("w", w, allow_empty=True)
    src = w.astype("float32") if via_float32 and w.dtype == "float64" else w
    q = minifloat(src, e, m, bias=bias, saturate=saturate, special=special, rounding=rounding,
                  method=name, finite_nan=finite_nan)
    q.dtype = w.dtype
    return q


_STD_DOC = """Round ``w`` to {name}, returning bit patterns ({ctype}) in a Quantized.

    Parameters
    ----------
    w : ndarray, float32 or float64, any shape (empty allowed)
    saturate : bool, default {satdef}
        False: {overflow}.
        True: finite overflow and ±inf map to ±{maxval} (ONNX Cast saturate=1).
    via_float32 : bool, default {via}
        For float64 input only (ignored for float32, where both agree):
        True rounds to float32 first and then to {name} (two roundings):
        what PyTorch's ``torch.Tensor.to(torch.{torchname})`` does for a
        float64 tensor.  False rounds once from the exact float64 value:
        what ``w.astype({ref})`` does with ml_dtypes 0.7 (older ml_dtypes
        releases cast through float32, FACTS.md §6.1).  The two differ
        when the float32 rounding lands on a {name} tie, e.g. bfloat16 of
        1 + 2**-8 + 2**-30: 1.0 via float32, 1.0078125 rounded once.
    rounding : {{"nearest_even", "toward_zero"}}
        "nearest_even" (IEEE RNE, the frameworks' cast); "toward_zero"
        truncates (see :func:`refcomp.quantize.minifloat`).

    Returns
    -------
    Quantized
        ``codes``: {ctype} bit patterns (view them as ``{ref}``),
        ``decoder="minifloat"`` with {fields}, ``method="{method}"``;
        ``dequantize()`` returns the exact {name} value in ``w.dtype``.
        NaN → {nanpat}; subnormals are kept.
        Same arithmetic as :func:`refcomp.quantize.minifloat`.
    """


def to_bfloat16(w, *, saturate=False, via_float32=True, rounding="nearest_even"):
    return to_format(w, "bfloat16", saturate=saturate, via_float32=via_float32,
                     rounding=rounding)


def to_float16(w, *, saturate=False, via_float32=False, rounding="nearest_even"):
    return to_format(w, "float16", saturate=saturate, via_float32=via_float32,
                     rounding=rounding)


def to_float8_e4m3fn(w, *, saturate=False, via_float32=True, rounding="nearest_even"):
    return to_format(w, "float8_e4m3fn", saturate=saturate, via_float32=via_float32,
                     rounding=rounding)


def to_float8_e4m3fnuz(w, *, saturate=False, via_float32=True, rounding="nearest_even"):
    return to_format(w, "float8_e4m3fnuz", saturate=saturate, via_float32=via_float32,
                     rounding=rounding)


def to_float8_e5m2(w, *, saturate=False, via_float32=True, rounding="nearest_even"):
    return to_format(w, "float8_e5m2", saturate=saturate, via_float32=via_float32,
                     rounding=rounding)


def to_float8_e5m2fnuz(w, *, saturate=False, via_float32=True, rounding="nearest_even"):
    return to_format(w, "float8_e5m2fnuz", saturate=saturate, via_float32=via_float32,
                     rounding=rounding)


def to_float4_e2m1(w, *, saturate=True, via_float32=True, rounding="nearest_even",
                   finite_nan="refuse"):
    return to_format(w, "float4_e2m1fn", saturate=saturate, via_float32=via_float32,
                     rounding=rounding, finite_nan=finite_nan)


to_bfloat16.__doc__ = _STD_DOC.format(
    name="bfloat16", ctype="uint16", satdef="False",
    overflow="overflow gives ±inf, bit-exact with ``w.astype(ml_dtypes.bfloat16)`` (Eigen "
             "``float_to_bfloat16_rtne``) and ``torch.Tensor.to(torch.bfloat16)``",
    ref="ml_dtypes.bfloat16", torchname="bfloat16", maxval="3.3895314e38", via="True",
    fields="exp_bits=8, man_bits=7, bias=127", method="bfloat16",
    nanpat="0x7FC0 / 0xFFC0 (sign kept); signed zero kept")
to_float16.__doc__ = _STD_DOC.format(
    name="IEEE float16", ctype="uint16", satdef="False",
    overflow="overflow gives ±inf, bit-exact with ``w.astype(numpy.float16)`` (NumPy rounds "
             "float64 once, hence via_float32=False)",
    ref="numpy.float16", torchname="float16", maxval="65504", via="False",
    fields="exp_bits=5, man_bits=10, bias=15", method="float16",
    nanpat="0x7E00 / 0xFE00 (sign kept); signed zero kept")
to_float8_e4m3fn.__doc__ = _STD_DOC.format(
    name="float8 E4M3FN", ctype="uint8", satdef="False",
    overflow="overflow (above 464 after RNE) and ±inf give NaN (the format has no inf), as "
             "``astype(ml_dtypes.float8_e4m3fn)``",
    ref="ml_dtypes.float8_e4m3fn", torchname="float8_e4m3fn", maxval="448", via="True",
    fields="exp_bits=4, man_bits=3, bias=7, special='fn'", method="float8_e4m3fn",
    nanpat="0x7F / 0xFF (sign kept); signed zero kept")
to_float8_e4m3fnuz.__doc__ = _STD_DOC.format(
    name="float8 E4M3FNUZ", ctype="uint8", satdef="False",
    overflow="overflow and ±inf give the NaN 0x80, as ``astype(ml_dtypes.float8_e4m3fnuz)``",
    ref="ml_dtypes.float8_e4m3fnuz", torchname="float8_e4m3fnuz", maxval="240", via="True",
    fields="exp_bits=4, man_bits=3, bias=8, special='fnuz'", method="float8_e4m3fnuz",
    nanpat="0x80 (the only NaN; no -0: -0.0 and negative underflow give 0x00)")
to_float8_e5m2.__doc__ = _STD_DOC.format(
    name="float8 E5M2", ctype="uint8", satdef="False",
    overflow="overflow gives ±inf, as ``astype(ml_dtypes.float8_e5m2)``",
    ref="ml_dtypes.float8_e5m2", torchname="float8_e5m2", maxval="57344", via="True",
    fields="exp_bits=5, man_bits=2, bias=15", method="float8_e5m2",
    nanpat="0x7E / 0xFE (sign kept); signed zero kept")
to_float8_e5m2fnuz.__doc__ = _STD_DOC.format(
    name="float8 E5M2FNUZ", ctype="uint8", satdef="False",
    overflow="overflow and ±inf give the NaN 0x80, as ``astype(ml_dtypes.float8_e5m2fnuz)``",
    ref="ml_dtypes.float8_e5m2fnuz", torchname="float8_e5m2fnuz", maxval="57344", via="True",
    fields="exp_bits=5, man_bits=2, bias=16, special='fnuz'", method="float8_e5m2fnuz",
    nanpat="0x80 (the only NaN; no -0: -0.0 and negative underflow give 0x00)")
to_float4_e2m1.__doc__ = _STD_DOC.format(
    name="float4 E2M1", ctype="uint8 (4 bits used)", satdef="True",
    overflow="refused: the format has no inf and no NaN, so every overflow and ±inf saturate "
             "to ±6 (as ``astype(ml_dtypes.float4_e2m1fn)``); the argument is ignored",
    ref="ml_dtypes.float4_e2m1fn", torchname="float4_e2m1fn_x2 (packed pairs)", maxval="6",
    via="True", fields="exp_bits=2, man_bits=1, bias=1, special='finite'",
    method="float4_e2m1fn",
    nanpat="refused by default (ParameterError: the format has no NaN); "
           "``finite_nan='ml_dtypes'`` gives ml_dtypes' zero, sign bit inverted: NaN -> 0x8 "
           "(−0), −NaN -> 0x0 (see :func:`refcomp.quantize.minifloat`)")
to_float4_e2m1.__doc__ = to_float4_e2m1.__doc__.replace(
    "\n    Returns\n", "\n    finite_nan : {\"refuse\", \"ml_dtypes\"}, default \"refuse\"\n"
    "        NaN input: a ParameterError (no code holds NaN), or ml_dtypes' zero\n"
    "        (ONNX's reference Cast; see :func:`refcomp.quantize.minifloat`).\n\n"
    "    Returns\n", 1)
