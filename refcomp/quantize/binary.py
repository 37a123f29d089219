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
    """Mean of |v| over every element of ``v`` (any shape), float64.

    The sum is ``math.fsum`` of the exactly widened |v| (correctly rounded),
    then one division by the count; 0.0 for an empty array.
    """
    if not v.size:
        return 0.0
    return math.fsum(np.abs(v.astype(np.float64)).reshape(-1).tolist()) / v.size


def binary(w):
    """Sign binarisation: w >= 0 → +1, w < 0 → −1 (so 0 and −0.0 map to +1).

    Parameters
    ----------
    w : ndarray, float32 or float64, any shape, non-empty, finite
        (NaN/Inf: ValueError with their count).

    Returns
    -------
    Quantized
        uint8 codes {0: −1, 1: +1} of the input shape, bits=1,
        ``decoder="codebook"`` with codebook [−1, 1] in ``w.dtype`` (exact;
        no rounding or saturation is involved).  BinaryConnect's
        deterministic sign; XNOR-Net's Torch code keeps 0 at 0 instead: see
        :func:`xnor` ``zero="keep"``.
    """
    float_input("w", w)
    finite_range("w", w)
    codes = (w >= 0).astype(np.uint8)
    return Quantized(codes, bits=1, method="binary", decoder="codebook",
                     params={"codebook": np.array([-1.0, 1.0], dtype=w.dtype)}, dtype=w.dtype)


def xnor(w, *, axis=0, zero="plus"):
    """XNOR-Net / BWN weights (Rastegari et al. 2016): W_b = α_o · sign(W), per output filter.

    Parameters
    ----------
    w : ndarray, float32 or float64, any shape (1-D, (out, in), OIHW ...),
        non-empty, finite (NaN/Inf: ValueError with their count).
    axis : int or None, default 0
        One α per index of this axis (axis 0 = output channels for
        (out, in) and OIHW); None: one α for the whole tensor.
    zero : {"plus", "keep"}
        "plus" (default, 1-bit codes): 0 and −0.0 → +α; "keep": 0 → 0 as
        the authors' Torch code (``sign(0) = 0``), 2-bit codes.

    Returns
    -------
    Quantized
        codes uint8 ({0, 1} → −α, +α, or {0, 1, 2} → −α, 0, +α), input
        shape; ``decoder="sign_scale"``, params alpha (C,) of ``w.dtype``
        (C = 1 for ``axis=None``), axis, levels ("binary" / "ternary").

    Notes
    -----
    α_o = ‖W_o‖₁ / n over every element of slice ``o`` of ``axis``:
    math.fsum of the exactly widened |w| (correctly rounded) divided by n
    in float64, then one RNE rounding to ``w.dtype``.  Decoding ±α is
    exact.  The authors' mean centring and clamping (FACTS.md §7.5) are
    training steps, not done here.
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
    from . import _decoder_checks as C
    C.need(q.params, "sign_scale", "alpha", "axis", "levels")
    C.check_dtype(q.dtype, "sign_scale")
    levels = q.params["levels"]
    if levels not in ("binary", "ternary"):
        raise ParameterError(f"sign_scale decoder: levels must be 'binary' or 'ternary', got "
                             f"{levels!r}")
    C.check_codes(q.codes, "sign_scale", 0, 1 if levels == "binary" else 2)
    axis = C.check_axis_param(q.params["axis"], q.codes.ndim, "sign_scale")
    alpha = q.params["alpha"]
    if not isinstance(alpha, np.ndarray) or alpha.dtype.kind != "f":
        raise ParameterError(f"sign_scale decoder: alpha must be a float ndarray, got "
                             f"{getattr(alpha, 'dtype', type(alpha).__name__)}")
    a = C.scale_layout(alpha, "alpha", q.shape, axis, None, "sign_scale").astype(q.dtype)
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


def ternary(w, *, delta_factor=0.7, axis=None):
    """Ternary Weight Networks (Li, Zhang & Liu 2016; authors' Caffe code, FACTS.md §7.4).

    Parameters
    ----------
    w : ndarray, float32 or float64, any shape, non-empty, finite
        (NaN/Inf: ValueError with their count).
    delta_factor : float >= 0, finite, default 0.7
    axis : int or None
        None (default, the authors' per-layer rule): one Δ and one α for
        the whole tensor.  An int: one Δ and one α per index of this axis
        (per output filter with ``axis=0`` for (out, in) and OIHW weights),
        each computed by the per-tensor rule on its slice.

    Returns
    -------
    Quantized
        codes uint8 {0: −α, 1: 0, 2: +α} of the input shape, bits=2.
        ``axis=None``: ``decoder="codebook"`` with codebook [−α, 0, α] in
        ``w.dtype``, ``info`` delta, alpha (Python floats).  ``axis`` given:
        ``decoder="sign_scale"`` (levels "ternary") with ``params["alpha"]``
        (C,) of ``w.dtype``, ``info`` delta, alpha (float64 arrays (C,)).

    Notes
    -----
    Δ = delta_factor · (fsum|w| / N) in float64 (the mean correctly
    rounded, then one rounding for the product), over the tensor or slice.
    T = 1[w > Δ] − 1[w < −Δ] (strict; comparisons in float64 on exactly
    widened values).  α = fsum(|w| over |w| > Δ) / count, float64, then one
    RNE rounding to ``w.dtype``; α = 0 when no weight exceeds Δ.  Output
    α·T; zeros (either sign) and |w| <= Δ decode to +0.0.
    """
    float_input("w", w)
    finite_range("w", w)
    if not isinstance(delta_factor, numbers.Real) or not 0 <= delta_factor < math.inf:
        raise ParameterError(f"delta_factor must be a finite float >= 0, got {delta_factor!r}")
    axis = check_axis("axis", axis, w.ndim)
    x = w.astype(np.float64)
    if axis is None:
        delta = float(delta_factor) * _fmean_abs(w)
        pos, neg = x > delta, x < -delta
        sel = np.abs(x[pos | neg])
        alpha = _fmean_abs(sel)
        return _ternary_result(w, neg, pos, alpha, alpha, "ternary",
                               {"delta": delta, "alpha": alpha})
    xm = np.moveaxis(x, axis, 0).reshape(w.shape[axis], -1)
    deltas = np.array([float(delta_factor) * _fmean_abs(r) for r in xm])
    shp = channel_shape(w.shape, axis)
    d = deltas.reshape(shp)
    pos, neg = x > d, x < -d
    alphas = np.array([_fmean_abs(r[np.abs(r) > dc]) for r, dc in zip(xm, deltas)])
    codes = np.ones(w.shape, dtype=np.uint8)
    codes[neg] = 0
    codes[pos] = 2
    return Quantized(codes, bits=2, method="ternary", decoder="sign_scale",
                     params={"alpha": alphas.astype(w.dtype), "axis": axis, "levels": "ternary"},
                     dtype=w.dtype, info={"delta": deltas, "alpha": alphas})


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
