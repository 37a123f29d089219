"""Uniform scalar quantizer of Resmerita et al., eq. (15)-(16) (seed 002, §4.1)."""

import numpy as np

from .._errors import ParameterError
from .._validate import check_choice, check_int
from ..kernels.quantize import uniform_range_codes
from ._quantized import Quantized, narrowest_code_dtype, register_decoder
from ._scalar_common import finite_range, float_input

__all__ = ["uniform"]


def uniform(w, bits, *, grid="range"):
    """Uniform b-bit quantizer with midpoint reconstruction (Resmerita eq. 15-16).

    Parameters
    ----------
    w : ndarray, float32 or float64, any shape, non-empty, finite
    bits : int in [1, 16]
    grid : {"range", "zero"}
        ``"range"`` (default): cells anchored at θmin, exactly ``2**bits``
        cells covering [θmin, θmax]::

            Δ = (θmax − θmin) / 2**b
            i = min(floor((w − θmin) / Δ), 2**b − 1)        codes in [0, 2**b − 1]
            ŵ = θmin + Δ·(i + 1/2)

        ``"zero"``: the paper's literal eq. (15)-(16), cells anchored at 0::

            i = floor(w / Δ),   ŵ = Δ·i + Δ/2

        Because floor(θmin/Δ) .. floor(θmax/Δ) spans ``2**b + 1`` integers
        whenever θmin/Δ is not an integer or θmax/Δ is an integer, the
        literal formula can need ``2**b + 1`` levels, i.e. ``bits + 1`` bits
        of storage.  The result stores ``codes = i − floor(θmin/Δ)`` and
        reports ``info["levels"]`` (the number of distinct cells spanned)
        and ``info["storage_bits"]``; ``Quantized.bits`` is the storage
        width.  ``"range"`` is the default because it honours the paper's
        stated budget of ``b`` bits (2**b cells) and keeps every error
        within Δ/2 inside [θmin, θmax].

    Returns
    -------
    Quantized
        ``method="uniform"``, ``decoder="uniform"``, codes of the narrowest
        unsigned dtype, ``params = {grid, theta_min, delta, code_offset}``
        (Python floats/ints), ``dequantize()`` of ``w.dtype``.

    Notes
    -----
    Arithmetic: θmin, θmax are the exact extremes of ``w`` (widened to
    float64; a −0.0 extreme is stored as +0.0).  Every step is float64 with
    IEEE round-to-nearest-even: ``θmax − θmin`` (one rounding), ``/ 2**b``
    (exact unless subnormal), ``w − θmin`` (one rounding), ``/ Δ`` (one
    rounding), ``floor``, then the reconstruction ``Δ·(i + 0.5)`` and
    ``θmin + ·`` (one rounding each) and a single final rounding (RNE) to
    ``w.dtype`` in ``dequantize()``.  With grid="zero": ``w / Δ`` (one
    rounding), floor; reconstruction ``Δ·i + Δ/2`` (``Δ·i`` rounded, ``Δ/2``
    exact, sum rounded), then the final rounding to ``w.dtype``.

    Constant tensor (θmax = θmin, so Δ = 0): every code is 0 and
    ``dequantize()`` returns θmin exactly (for both grids); there is no
    division by zero.  NaN/Inf: rejected (ValueError with their count);
    the range would be undefined.  Signed zeros: −0.0 quantizes like +0.0.
    """
    float_input("w", w)
    bits = check_int("bits", bits, lo=1, hi=16)
    check_choice("grid", grid, ("range", "zero"))
    tmin, tmax = finite_range("w", w)
    delta = (tmax - tmin) / float(1 << bits)
    flat = np.ascontiguousarray(w).reshape(-1)
    info = {"theta_min": tmin, "theta_max": tmax}
    if delta == 0.0:
        # Δ = 0: also covers a range so small that Δ underflows to 0.
        codes = np.zeros(w.shape, dtype=np.uint8)
        offset, storage_bits, levels = 0, bits, 1
    elif grid == "range":
        top = (1 << bits) - 1
        codes = uniform_range_codes(flat, tmin, delta, top,
                                    narrowest_code_dtype(0, top)).reshape(w.shape)
        offset, storage_bits, levels = 0, bits, 1 << bits
    else:
        if max(abs(tmin), abs(tmax)) / delta >= 2.0 ** 52:
            raise ParameterError("grid='zero': |w|/Δ reaches 2**52 (the range is a few ulps "
                                 "wide); cell indices would not be exact")
        i = np.floor(flat.astype(np.float64) / delta)
        lo, hi = int(np.floor(tmin / delta)), int(np.floor(tmax / delta))
        levels = hi - lo + 1
        codes = (i - lo).astype(narrowest_code_dtype(0, hi - lo)).reshape(w.shape)
        offset = lo
        storage_bits = max(bits, (levels - 1).bit_length())
    info.update(levels=levels, storage_bits=storage_bits)
    params = {"grid": grid, "theta_min": tmin, "delta": delta, "code_offset": offset}
    return Quantized(codes, bits=storage_bits, method="uniform", decoder="uniform",
                     params=params, dtype=w.dtype, info=info)


def _decode_uniform(q):
    from . import _decoder_checks as C
    p = q.params
    C.need(p, "uniform", "theta_min", "delta", "grid")
    C.check_codes(q.codes, "uniform")
    C.check_dtype(q.dtype, "uniform")
    tmin = C.check_real(p, "theta_min", "uniform")
    delta = C.check_real(p, "delta", "uniform")
    if delta < 0:
        raise ParameterError(f"uniform decoder: delta must be >= 0, got {delta!r}")
    if p["grid"] not in ("range", "zero"):
        raise ParameterError(f"uniform decoder: grid must be 'range' or 'zero', got "
                             f"{p['grid']!r}")
    if p["grid"] == "zero":
        C.need(p, "uniform", "code_offset")
        C.check_intparam(p, "code_offset", "uniform")
    if delta == 0.0:
        return np.full(q.shape, tmin, dtype=np.float64).astype(q.dtype)
    i = q.codes.astype(np.float64)
    if p["grid"] == "range":
        out = tmin + delta * (i + 0.5)
    else:
        i = i + float(p["code_offset"])          # exact: |i| < 2**53
        out = delta * i + delta / 2.0
    return out.astype(q.dtype)


register_decoder("uniform", _decode_uniform)
