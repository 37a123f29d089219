"""Binary and ternary weights: sign, XNOR-Net / BWN, TWN, TTQ."""

import math

import numbers

import numpy as np

from .._errors import ParameterError
from .._validate import check_choice
from ._quantized import Quantized, register_decoder
from ._scalar_common import channel_shape, check_axis, finite_range, float_input

__all__ = ["binary", "xnor", "ternary", "ternary_ttq"]


def _fmean_abs(v):
    """Exactly rounded sum of |v| (math.fsum) divided by the count, float64."""
    return math.fsum(np.abs(v.astype(np.float64)).tolist()) / v.size if v.size else 0.0


def binary(w):
    """Sign binarisation: w >= 0 → +1, w < 0 → −1 (so 0 and −0.0 map to +1).

    ``w`` float32/float64, non-empty, finite (NaN/Inf: ValueError with the
    count).  Returns Quantized with uint8 codes {0: −1, 1: +1}, bits=1,
    ``decoder="codebook"`` with codebook [−1, 1] in ``w.dtype``.
    (BinaryConnect's deterministic sign; XNOR-Net's Torch code keeps 0 at
    0 instead: see :func:`xnor` ``zero="keep"``.)
    """
    float_input("w", w)
    finite_range("w", w)
    codes = (w >= 0).astype(np.uint8)
    return Quantized(codes, bits=1, method="binary", decoder="codebook",
                     params={"codebook": np.array([-1.0, 1.0], dtype=w.dtype)}, dtype=w.dtype)


def xnor(w, *, axis=0, zero="plus"):
    """XNOR-Net / BWN weights (Rastegari et al. 2016): W_b = α_o · sign(W), per output filter.

    α_o = ‖W_o‖₁ / n over every element of slice ``o`` of ``axis`` (axis 0
    = output channels for (out, in) and OIHW); computed as math.fsum of
    |w| in float64 (exactly rounded) divided by n, then rounded (RNE) to
    ``w.dtype``.  ``axis=None``: one α for the tensor.
    ``zero``: "plus" (default, 1-bit codes): 0 → +α; "keep": 0 → 0 as the
    authors' Torch code (``sign(0) = 0``), 2-bit codes.  The authors' mean
    centring and clamping (FACTS.md §7.5) are training steps, not done here.
    Returns codes uint8 ({0,1} → −α, +α, or {0,1,2} → −α, 0, +α),
    ``decoder="sign_scale"``, params alpha (C,), axis, levels.
    """
    float_input("w", w)
    finite_range("w", w)
    check_choice("zero", zero, ("plus", "keep"))
    axis = check_axis("axis", axis, w.ndim)
    if axis is None:
        alpha = np.array([_fmean_abs(w)])
    else:
        wm = np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1)
        alpha = np.array([_fmean_abs(r) for r in wm])
    alpha = alpha.astype(w.dtype)
    if zero == "plus":
        codes, levels, bits = (w >= 0).astype(np.uint8), "binary", 1
    else:
        codes, levels, bits = (np.sign(w) + 1).astype(np.uint8), "ternary", 2
    return Quantized(codes, bits=bits, method="xnor", decoder="sign_scale",
                     params={"alpha": alpha, "axis": axis, "levels": levels}, dtype=w.dtype)


def _decode_sign_scale(q):
    a = q.params["alpha"].astype(q.dtype)
    axis = q.params["axis"]
    a = a.reshape(()) if axis is None else a.reshape(channel_shape(q.shape, int(axis)))
    c = q.codes
    s = (2 * c.astype(np.int8) - 1) if q.params["levels"] == "binary" else c.astype(np.int8) - 1
    return (s.astype(q.dtype) * a).astype(q.dtype)   # exact: ±α or ±0


register_decoder("sign_scale", _decode_sign_scale)


def _ternary_result(w, lo_code_mask, hi_code_mask, neg, pos, method, info):
    codes = np.ones(w.shape, dtype=np.uint8)
    codes[lo_code_mask] = 0
    codes[hi_code_mask] = 2
    cb = np.array([-neg, 0.0, pos]).astype(w.dtype)
    return Quantized(codes, bits=2, method=method, decoder="codebook",
                     params={"codebook": cb}, dtype=w.dtype, info=info)


def ternary(w, *, delta_factor=0.7):
    """Ternary Weight Networks (Li, Zhang & Liu 2016; authors' Caffe code, FACTS.md §7.4).

    Δ = delta_factor · (fsum|w| / N) in float64 (the mean exactly rounded,
    then one rounding for the product), over the whole tensor.
    T = 1[w > Δ] − 1[w < −Δ] (strict, comparisons in float64 on exact
    widened values).  α = fsum(|w| over |w| > Δ) / count, float64, then
    RNE to ``w.dtype``; α = 0 when no weight exceeds Δ.  Output α·T.
    Returns codes uint8 {0: −α, 1: 0, 2: +α}, ``decoder="codebook"``
    (codebook [−α, 0, α]), info delta, alpha.  NaN/Inf: ValueError.
    """
    float_input("w", w)
    finite_range("w", w)
    if not isinstance(delta_factor, numbers.Real) or not 0 <= delta_factor < math.inf:
        raise ParameterError(f"delta_factor must be a finite float >= 0, got {delta_factor!r}")
    x = w.astype(np.float64)
    delta = float(delta_factor) * _fmean_abs(w)
    pos, neg = x > delta, x < -delta
    sel = np.abs(x[pos | neg])
    alpha = _fmean_abs(sel)
    return _ternary_result(w, neg, pos, alpha, alpha, "ternary",
                           {"delta": delta, "alpha": alpha})


def ternary_ttq(w, wp, wn, *, t=0.05):
    """Trained Ternary Quantization (Zhu et al. 2017) forward map with given scales.

    Δ = t · max|w| (float64, one rounding); w > Δ → +wp, w < −Δ → −wn,
    otherwise 0 (strict inequalities).  ``wp``, ``wn`` finite floats >= 0
    (the trained positive / negative scales), rounded to ``w.dtype``.
    Returns codes uint8 {0: −wn, 1: 0, 2: +wp}, ``decoder="codebook"``.
    """
    float_input("w", w)
    lo, hi = finite_range("w", w)
    for name, v in (("wp", wp), ("wn", wn), ("t", t)):
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not 0 <= v < math.inf:
            raise ParameterError(f"{name} must be a finite float >= 0, got {v!r}")
    x = w.astype(np.float64)
    delta = float(t) * max(-lo, hi)
    return _ternary_result(w, x < -delta, x > delta, float(wn), float(wp), "ternary_ttq",
                           {"delta": delta})
