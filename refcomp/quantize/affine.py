"""Affine (scale, zero point) integer quantization: gemmlowp / TFLite / ONNX / PyTorch."""

import numbers

import numpy as np

from .._errors import DTypeError, ParameterError, ShapeError
from .._rounding import MODES
from .._validate import check_choice, check_int
from ..kernels.quantize import affine_codes
from ._quantized import Quantized, narrowest_code_dtype, register_decoder
from ._scalar_common import as_3d, channel_shape, check_axis, finite_range, float_input

__all__ = ["affine", "affine_range"]

SCALE_OPS = ("divide", "reciprocal")


def affine_range(bits, *, signed, narrow_range=False):
    """Integer code range (qmin, qmax) of the affine quantizer.

    signed: [−2**(b−1), 2**(b−1) − 1]; unsigned: [0, 2**b − 1];
    ``narrow_range`` raises qmin by one (TFLite int8 weights: [−127, 127]).
    """
    if signed:
        qmin, qmax = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    else:
        qmin, qmax = 0, (1 << bits) - 1
    return qmin + int(bool(narrow_range)), qmax


def affine(w, bits=8, *, symmetric=False, narrow_range=False, axis=None, rounding="half_even",
           scale=None, zero_point=None, rng=None, signed=None, scale_op="divide"):
    """Affine quantization ``real = (q − zero_point) · scale``, zero exactly representable.

    Parameters
    ----------
    w : ndarray, float32 or float64, any shape, non-empty, finite
    bits : int in [2, 16]
    symmetric : bool
        Range from max|w| with the zero point in the middle of the code
        range (0 for signed codes).  Default False (asymmetric, gemmlowp).
    narrow_range : bool
        Drop the most negative code (TFLite int8 weights use [−127, 127]).
    axis : int or None
        None: per tensor.  Otherwise one (scale, zero point) per index of
        this axis (per channel; TFLite conv uses the output axis 0).
    rounding : {"half_even", "half_away", "half_up", "floor", "stochastic"}
        How x / scale becomes an integer (``refcomp._rounding``).  Default
        "half_even" (ONNX QuantizeLinear, ORT, PyTorch ``nearbyint``);
        "half_away" is TFLite's ``TfLiteRound``; "stochastic" is Gupta et
        al. 2015 eq. (1) and needs ``rng``.
    scale, zero_point : optional
        Given quantization parameters (a Python/NumPy float or a 1-D
        ndarray of length C for per-channel; an int or 1-D integer ndarray).
        ``scale`` is rounded (RNE) to ``w.dtype``; it must be > 0 and
        finite.  ``zero_point`` defaults to 0 when ``scale`` is given.
    rng : numpy.random.Generator, only for rounding="stochastic"
        One ``rng.random(w.shape)`` float64 draw, consumed in C order.
    signed : bool or None
        Signed codes; None means ``signed = symmetric`` (int8 symmetric as
        TFLite weights, uint8 asymmetric as gemmlowp/ONNX activations).
    scale_op : {"divide", "reciprocal"}
        "divide" (default): v = x / scale in ``w.dtype`` (one rounding), as
        in the ONNX spec and reference, ORT (MLAS) and TFLite.  Chosen as
        default because it is the written definition of every spec.
        "reciprocal": v = x · (1/scale) with ``1/scale`` rounded to
        ``w.dtype`` first, as PyTorch ``quantize_per_tensor`` /
        ``fake_quantize_per_tensor_affine`` and FBGEMM do.  The two differ
        near ties (FACTS.md §5.8: 0.273939937 / 0.00214854861 gives 127,
        times the reciprocal gives 128).

    Returns
    -------
    Quantized
        ``method="affine"``, ``decoder="affine"``; codes of the narrowest
        integer dtype holding [qmin, qmax] (int8 / uint8 for 8 bits);
        ``params["scale"]`` ndarray (C,) of ``w.dtype`` (C = 1 per tensor),
        ``params["zero_point"]`` int32 ndarray (C,), plus qmin, qmax, axis
        and the options.  ``dequantize()`` returns ``(q − zp) · scale``
        computed in ``w.dtype``: the integer difference converts exactly,
        the product is rounded once (RNE) — the ONNX DequantizeLinear and
        PyTorch fake-quant output.

    Notes
    -----
    Quantization, per element (the ONNX/TFLite/PyTorch order: round, then
    add the zero point, then saturate)::

        v = x / s                   (or x * inv_s), in w.dtype, RNE
        r = rounding(v)             exact
        q = clamp(r + zp, qmin, qmax)   in float64, exact, then to integer

    Computed parameters (when ``scale`` is None), in float64 from the
    exact extremes lo = min(min w, 0), hi = max(max w, 0) (per channel if
    ``axis``):

    * asymmetric: scale = (hi − lo) / (qmax − qmin), rounded to w.dtype;
      zp = clamp(qmin − half_even(lo / scale), qmin, qmax) with the rounded
      scale (PyTorch MinMaxObserver / TFLite nudging).
    * symmetric: scale = max(−lo, hi) / ((qmax − qmin) / 2), rounded to
      w.dtype; zp = 0 for signed codes, (qmin + qmax + 1) // 2 for
      unsigned (128 for uint8, as PyTorch).  This gives TFLite's
      max|w| / 127 for narrow int8 and PyTorch's max|w| / 127.5 for int8.
    * an all-zero range gives scale = 1 (codes all equal zp); a non-zero
      range whose scale underflows to 0 in w.dtype is an error.

    NaN/Inf in ``w``: ValueError with their count (no integer code holds
    them; with a given ``scale`` and a deterministic rounding the check and
    ``info`` theta_min/theta_max come from the coding pass itself, one read
    of ``w``).  Saturation: values beyond the range clamp to qmin/qmax.
    Signed zero: −0.0 and +0.0 give the same code.
    """
    float_input("w", w)
    bits = check_int("bits", bits, lo=2, hi=16)
    check_choice("rounding", rounding, MODES)
    check_choice("scale_op", scale_op, SCALE_OPS)
    axis = check_axis("axis", axis, w.ndim)
    signed = bool(symmetric) if signed is None else bool(signed)
    qmin, qmax = affine_range(bits, signed=signed, narrow_range=narrow_range)
    if rounding == "stochastic" and not isinstance(rng, np.random.Generator):
        raise ParameterError("rounding='stochastic' needs rng=numpy.random.Generator")
    nchan = 1 if axis is None else w.shape[axis]
    dt = w.dtype
    code_dtype = narrowest_code_dtype(qmin, qmax)
    x3 = as_3d(w, axis)
    # With a given scale the range is only reported (info), so the
    # finiteness check and min/max ride along the coding pass (fused scan);
    # the error checks keep their order: NaN/Inf before bad parameters.
    fused = scale is not None and rounding != "stochastic"
    if fused:
        try:
            s = _given_scale(scale, nchan, dt)
            zp = _given_zero_point(zero_point, nchan, qmin, qmax)
        except (ValueError, TypeError):
            finite_range("w", w)
            raise
        codes, rng_ = affine_codes(x3, _scale_operand(s, scale_op, dt), zp.astype(np.float64),
                                   qmin, qmax, rounding, scale_op == "reciprocal", None,
                                   code_dtype, scan=True)
        if rng_ is None:
            finite_range("w", w)                    # raises with the count of NaN/Inf
        lo_all, hi_all = rng_[0] + 0.0, rng_[1] + 0.0
    else:
        lo_all, hi_all = finite_range("w", w)
        if scale is None:
            if zero_point is not None:
                raise ParameterError("zero_point given without scale")
            s, zp = _compute_params(w, axis, lo_all, hi_all, qmin, qmax, symmetric, signed, dt)
        else:
            s = _given_scale(scale, nchan, dt)
            zp = _given_zero_point(zero_point, nchan, qmin, qmax)
        u3 = None
        if rounding == "stochastic":
            u3 = as_3d(rng.random(w.shape), axis)
        codes = affine_codes(x3, _scale_operand(s, scale_op, dt), zp.astype(np.float64), qmin,
                             qmax, rounding, scale_op == "reciprocal", u3, code_dtype)
    params = {"scale": s, "zero_point": zp.astype(np.int32), "axis": axis,
              "qmin": qmin, "qmax": qmax, "symmetric": bool(symmetric),
              "narrow_range": bool(narrow_range), "signed": signed,
              "rounding": rounding, "scale_op": scale_op}
    return Quantized(codes.reshape(w.shape), bits=bits, method="affine", decoder="affine",
                     params=params, dtype=dt, info={"theta_min": lo_all, "theta_max": hi_all})


def _scale_operand(s, scale_op, dt):
    """The per-channel operand of the kernel: s, or 1/s rounded to ``dt``."""
    if scale_op == "reciprocal":
        return (np.ones(1, dt) / s).astype(dt)
    return s


def _compute_params(w, axis, lo_all, hi_all, qmin, qmax, symmetric, signed, dt):
    if axis is None:
        lo, hi = np.array([lo_all]), np.array([hi_all])
    else:
        red = tuple(i for i in range(w.ndim) if i != axis)
        if w.size == 0:
            raise ShapeError("w must not be empty")
        lo = np.min(w, axis=red).astype(np.float64)
        hi = np.max(w, axis=red).astype(np.float64)
    lo = np.minimum(lo, 0.0)
    hi = np.maximum(hi, 0.0)
    if symmetric:
        amax = np.maximum(-lo, hi)
        s64 = amax / ((qmax - qmin) / 2.0)
    else:
        s64 = (hi - lo) / float(qmax - qmin)
    s = s64.astype(dt)
    if np.any((s == 0) & (s64 != 0)):
        raise ParameterError(f"the computed scale underflows to 0 in {dt}; the range of w is "
                             "too small for this dtype")
    s = np.where(s == 0, np.ones_like(s), s)
    if symmetric:
        z = 0 if signed else (qmin + qmax + 1) // 2
        zp = np.full(s.shape, z, dtype=np.int64)
    else:
        zf = float(qmin) - np.rint(lo / s.astype(np.float64))
        zp = np.clip(zf, qmin, qmax).astype(np.int64)
    return s, zp


def _given_scale(scale, nchan, dt):
    if isinstance(scale, np.ndarray):
        if scale.dtype.kind != "f":
            raise DTypeError(f"scale must be a float array, got dtype {scale.dtype}")
        arr = scale.reshape(-1) if scale.ndim == 0 else scale
        if arr.ndim != 1 or arr.shape[0] not in (1, nchan):
            raise ShapeError(f"scale must have shape ({nchan},), got {scale.shape}")
    elif isinstance(scale, numbers.Real) and not isinstance(scale, bool):
        arr = np.array([float(scale)])
    else:
        raise ParameterError(f"scale must be a float or a 1-D float ndarray, got {scale!r}")
    s = np.broadcast_to(arr.astype(dt), (nchan,)).copy()
    if not np.all(np.isfinite(s)) or np.any(s <= 0):
        raise ParameterError(f"scale must be finite and > 0 in {dt}, got {arr}")
    return s


def _given_zero_point(zero_point, nchan, qmin, qmax):
    if zero_point is None:
        zp = np.zeros(nchan, dtype=np.int64)
    elif isinstance(zero_point, np.ndarray):
        if zero_point.dtype.kind not in "iu":
            raise DTypeError(f"zero_point must be an integer array, got dtype {zero_point.dtype}")
        arr = zero_point.reshape(-1)
        if arr.shape[0] not in (1, nchan):
            raise ShapeError(f"zero_point must have shape ({nchan},), got {zero_point.shape}")
        zp = np.broadcast_to(arr.astype(np.int64), (nchan,)).copy()
    else:
        zp = np.full(nchan, check_int("zero_point", zero_point), dtype=np.int64)
    if np.any(zp < qmin) or np.any(zp > qmax):
        raise ParameterError(f"zero_point must lie in [{qmin}, {qmax}], got {zp}")
    return zp


def _decode_affine(q):
    p = q.params
    dt = q.dtype
    scale = np.asarray(p["scale"]).astype(dt, copy=False)
    zp = np.asarray(p["zero_point"]).astype(np.int64)
    axis = p["axis"]
    if axis is None:
        s, z = scale.reshape(()), zp.reshape(())
    else:
        shp = channel_shape(q.shape, int(axis))
        s, z = scale.reshape(shp), zp.reshape(shp)
    diff = (q.codes.astype(np.int64) - z).astype(dt)   # exact: |diff| < 2**17
    return (diff * s).astype(dt, copy=False)


register_decoder("affine", _decode_affine)
