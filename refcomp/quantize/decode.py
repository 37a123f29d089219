"""The public decode path: a :class:`Quantized` from codes and stated parameters.

:func:`from_codes` lets a user decode codes that another framework produced
(ONNX QuantizeLinear outputs, float8 bit patterns from PyTorch, a codebook
and indices from a file) without building a ``Quantized`` by hand.  The
parameters are checked twice: names against the method's list here, values
by the decoder itself (every decoder validates every parameter it uses), so
a mistake is a refcomp error naming the parameter and its value.
"""

import numpy as np

from .._errors import ParameterError
from .._validate import check_int
from ._quantized import Quantized
from .float_formats import FORMATS
from .minifloat import default_bias

__all__ = ["from_codes", "as_codes", "METHODS"]

#: method -> (decoder, required parameters, optional parameters with defaults)
METHODS = {
    "affine": ("affine", ("scale",), {"zero_point": 0, "axis": None, "block_size": None}),
    "codebook": ("codebook", ("codebook",), {}),
    "uniform": ("uniform", ("theta_min", "delta"), {"grid": "range", "code_offset": 0}),
    "fixed_point": ("fixed_point", ("frac_bits",), {}),
    "power_of_two": ("power_of_two", ("e_min",), {}),
    "posit": ("posit", ("nbits", "es"), {}),
    "sign_scale": ("sign_scale", ("alpha",), {"axis": None, "levels": "binary"}),
    "minifloat": ("minifloat", ("exp_bits", "man_bits"),
                  {"bias": None, "special": "ieee", "subnormals": True}),
}
for _name in FORMATS:
    METHODS[_name] = ("minifloat", (), {})


_NUMPY_FLOAT_NAMES = ("float16", "float32", "float64", "longdouble", "float128", "float96")


def as_codes(a):
    """Integer codes of an ml_dtypes array (kind "V"): bit patterns (uint8 / uint16) of
    the float formats, values (int8 / uint8) of int4, uint4, int2, uint2.  Other
    arrays are returned unchanged."""
    if not isinstance(a, np.ndarray):
        return a
    name = a.dtype.name
    if a.dtype.kind != "V" and not (a.dtype.kind == "f" and name not in _NUMPY_FLOAT_NAMES):
        return a            # (ml_dtypes' float8_e5m2 reports kind "f": caught by its name)
    if name in ("int4", "int2"):
        return a.astype(np.int8)
    if name in ("uint4", "uint2"):
        return a.astype(np.uint8)
    if a.dtype.itemsize in (1, 2):
        return a.view(np.uint8 if a.dtype.itemsize == 1 else np.uint16)
    raise ParameterError(f"codes of dtype {a.dtype} are not supported")


def _bits_for(codes):
    if codes.size == 0:
        return 1
    span = int(codes.max()) - int(codes.min())
    return max(1, span.bit_length())


def from_codes(codes, method, *, dtype=np.float32, bits=None, **params):
    """Build the :class:`Quantized` that decodes ``codes`` by ``method``'s rule.

    Parameters
    ----------
    codes : integer ndarray (any shape; not copied)
        Integer codes as the decoder reads them: bit patterns for float
        formats (uint8/uint16; an ml_dtypes array is viewed as its bits),
        signed or unsigned integers for the affine rule, indices for a
        codebook.
    method : str
        A key of :data:`METHODS`: "affine" (``scale``, optional
        ``zero_point`` (default 0), ``axis``, ``block_size``: ``(q − zp) ·
        scale``, per tensor / per axis / blocked as ONNX DequantizeLinear),
        "codebook" (``codebook``), "uniform" (``theta_min``, ``delta``,
        ``grid``, ``code_offset``), "fixed_point" (``frac_bits``),
        "power_of_two" (``e_min``), "posit" (``nbits``, ``es``),
        "sign_scale" (``alpha``, ``axis``, ``levels``), "minifloat"
        (``exp_bits``, ``man_bits``, ``bias``, ``special``,
        ``subnormals``), or a named float format of
        :data:`refcomp.quantize.float_formats.FORMATS` ("bfloat16",
        "float8_e4m3fnuz", "float4_e2m1fn", ...; no parameters).
    dtype : float32 (default) or float64
        The dtype ``dequantize()`` returns.
    bits : int, optional
        Bits per stored code (for ``stored_bits()`` and files).  Default:
        the format's width for float formats and posits, else the fewest
        bits that hold ``codes.max() − codes.min()``.
    **params
        The method's parameters.  Scalars given for ``scale`` /
        ``zero_point`` / ``alpha`` become 1-element arrays (scale of
        ``dtype``, zero point int32).

    Returns
    -------
    Quantized
        ``method`` and ``decoder`` as in the table; ``dequantize()`` runs
        the decoder (and its checks) with the arithmetic documented for it.

    Raises
    ------
    ParameterError
        An unknown method, an unknown or missing parameter (named), or a
        value the decoder refuses (an unknown ``special``, a block size
        that does not fit the axis, codes out of range...), checked here
        by decoding once.
    ShapeError, DTypeError
        A scale of the wrong shape, non-integer codes, a bad ``dtype``.
    """
    if method not in METHODS:
        raise ParameterError(f"method must be one of {sorted(METHODS)}, got {method!r}")
    decoder, required, optional = METHODS[method]
    unknown = sorted(set(params) - set(required) - set(optional))
    if unknown:
        raise ParameterError(f"from_codes(method={method!r}): unknown parameter(s) {unknown}; "
                             f"expected {list(required) + list(optional)}")
    missing = [k for k in required if k not in params]
    if missing:
        raise ParameterError(f"from_codes(method={method!r}): missing parameter(s) {missing}")
    codes = as_codes(codes)
    full = dict(optional)
    full.update(params)
    dt = np.dtype(dtype)
    if method in FORMATS:
        e, m, bias, special = FORMATS[method]
        full = {"exp_bits": e, "man_bits": m, "bias": bias, "subnormals": True,
                "special": special}
    elif decoder == "minifloat" and full["bias"] is None:
        full["bias"] = default_bias(check_int("exp_bits", full["exp_bits"], lo=1, hi=11),
                                    full["special"])
    if decoder == "affine":
        for k, kind in (("scale", dt), ("zero_point", np.int32)):
            if not isinstance(full[k], np.ndarray):
                full[k] = np.array([full[k]], dtype=kind)
        if full["block_size"] is None:
            del full["block_size"]
    if decoder == "sign_scale" and not isinstance(full["alpha"], np.ndarray):
        full["alpha"] = np.array([full["alpha"]], dtype=dt)
    if bits is None:
        if decoder == "minifloat":
            bits = 1 + int(full["exp_bits"]) + int(full["man_bits"])
        elif decoder == "posit":
            bits = int(full["nbits"])
        else:
            bits = _bits_for(codes) if isinstance(codes, np.ndarray) else 1
    bits = check_int("bits", bits, lo=1, hi=64)
    q = Quantized(codes, bits=bits, method=method, decoder=decoder, params=full, dtype=dt)
    q.dequantize()                    # runs every check of the decoder once
    if isinstance(codes, np.ndarray) and codes.size and \
            int(codes.max()) - int(codes.min()) >= 1 << bits:
        raise ParameterError(f"bits={bits} cannot hold the code range "
                             f"[{int(codes.min())}, {int(codes.max())}]")
    return q
