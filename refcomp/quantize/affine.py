"""Affine (scale, zero point) integer quantization: gemmlowp / TFLite / ONNX / PyTorch."""

import numbers

import numpy as np

from .._errors import DTypeError, ParameterError, ShapeError
from .._rounding import MODES
from .._validate import check_choice, check_int
from ..kernels.quantize import (OP_DIVIDE, OP_RECIPROCAL, OP_RECIPROCAL_ADD_ZP,
                                OP_RECIPROCAL_FMA_ZP, affine_codes)
from ._quantized import Quantized, narrowest_code_dtype, register_decoder
from ._scalar_common import as_3d, channel_shape, check_axis, finite_range, float_input

__all__ = ["affine", "affine_range", "affine_params"]

#: Operation orders accepted by ``affine(scale_op=...)``; "torch" is an alias
#: resolved per granularity (see :func:`affine`).
SCALE_OPS = ("divide", "reciprocal", "reciprocal_add_zp", "reciprocal_fma_zp", "torch")
_OP_CODES = {"divide": OP_DIVIDE, "reciprocal": OP_RECIPROCAL,
             "reciprocal_add_zp": OP_RECIPROCAL_ADD_ZP, "reciprocal_fma_zp": OP_RECIPROCAL_FMA_ZP}
#: Rules accepted by :func:`affine_params`.
PARAM_RULES = ("refcomp", "tflite", "pytorch")


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
    scale_op : {"divide", "reciprocal", "reciprocal_add_zp", "reciprocal_fma_zp", "torch"}
        The operation order (FACTS.md §5; every step in ``w.dtype``, RNE):

        * "divide" (default): r = rounding(x / scale) + zp, as in the ONNX
          spec and reference, ORT (MLAS) and TFLite.  Chosen as default
          because it is the written definition of every spec.
        * "reciprocal": r = rounding(x · inv) + zp with ``inv = 1/scale``
          rounded to ``w.dtype`` first, as PyTorch
          ``fake_quantize_per_tensor_affine`` / ``fake_quantize_per_channel_affine``
          and FBGEMM's non-legacy ``Quantize`` do.  Differs from "divide"
          near ties (FACTS.md §5.8: 0.273939937 / 0.00214854861 gives 127,
          times the reciprocal gives 128).
        * "reciprocal_add_zp": r = rounding(fl(fl(x · inv) + zp)): the zero
          point is added *before* rounding, with two roundings in
          ``w.dtype`` (product, then sum).  PyTorch 2.13 CPU
          ``quantize_per_channel`` (measured bit for bit).
        * "reciprocal_fma_zp": r = rounding(fl(x · inv + zp)) with one
          rounding (a fused multiply-add), as FBGEMM's AVX2
          ``QuantizeAvx2<LEGACY=true>`` (``_mm256_fmadd_ps``).  PyTorch 2.13
          CPU ``quantize_per_tensor`` on x86-64 with AVX2 (measured bit for
          bit; other CPUs may take other kernels).
        * "torch": "reciprocal_fma_zp" when ``axis`` is None and
          "reciprocal_add_zp" otherwise, i.e. the codes of
          ``torch.quantize_per_tensor`` / ``torch.quantize_per_channel``;
          ``params["scale_op"]`` records the resolved name.

        Adding the zero point before rounding moves the ties: with an odd
        zero point the half-even tie goes the other way (zp = 77, x/scale =
        0.5: 77 + rint(0.5) = 77 but rint(77.5) = 78), and near-ties move
        with any zero point because ``x · inv + zp`` is rounded to
        ``w.dtype`` (whose spacing grows with |zp|) before the integer
        rounding.

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
    Quantization, per element (the ONNX/TFLite/PyTorch fake-quant order:
    round, then add the zero point, then saturate)::

        v = x / s                   (or x * inv_s), in w.dtype, RNE
        r = rounding(v)             exact
        q = clamp(r + zp, qmin, qmax)   in float64, exact, then to integer

    ("reciprocal_add_zp" / "reciprocal_fma_zp": v = x * inv_s + zp in
    w.dtype as stated above, q = clamp(rounding(v), qmin, qmax).)

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
    if scale_op == "torch":
        scale_op = "reciprocal_fma_zp" if axis is None else "reciprocal_add_zp"
    op = _OP_CODES[scale_op]
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
                                   qmin, qmax, rounding, op, None, code_dtype, scan=True)
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
                             qmax, rounding, op, u3, code_dtype)
    params = {"scale": s, "zero_point": zp.astype(np.int32), "axis": axis,
              "qmin": qmin, "qmax": qmax, "symmetric": bool(symmetric),
              "narrow_range": bool(narrow_range), "signed": signed,
              "rounding": rounding, "scale_op": scale_op}
    return Quantized(codes.reshape(w.shape), bits=bits, method="affine", decoder="affine",
                     params=params, dtype=dt, info={"theta_min": lo_all, "theta_max": hi_all})


def _scale_operand(s, scale_op, dt):
    """The per-channel operand of the kernel: s, or 1/s rounded to ``dt``."""
    if scale_op != "divide":
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
    return _refcomp_params(lo, hi, qmin, qmax, symmetric, signed, dt)


def _refcomp_params(lo, hi, qmin, qmax, symmetric, signed, dt):
    """affine()'s own rule on float64 arrays lo <= hi: (scale (C,) of dt, zp int64 (C,))."""
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


def affine_params(lo, hi, bits=8, *, symmetric=False, narrow_range=False, signed=None,
                  dtype=np.float32, rule="refcomp"):
    """Scale and zero point of :func:`affine` for a calibrated range [lo, hi].

    Turns a clipping range (from :func:`calibrate`, an observer, a model
    file ...) into the ``scale`` / ``zero_point`` arguments of
    :func:`affine`, by one of three named, published rules.

    Parameters
    ----------
    lo, hi : real scalars, or 1-D float ndarrays of equal length C (one
        range per channel); finite, lo <= hi.  The range is first widened
        to contain 0 (lo = min(lo, 0), hi = max(hi, 0)) so that zero is
        exactly representable; every rule below starts from that.
    bits : int in [2, 16]
    symmetric, narrow_range, signed : as in :func:`affine` (code range
        [qmin, qmax] from :func:`affine_range`; ``signed=None`` means
        ``signed = symmetric``).
    dtype : numpy.float32 (default) or numpy.float64
        Dtype of the returned scale (that of the tensor to quantize).
    rule : {"refcomp", "tflite", "pytorch"}
        * "refcomp" (default): exactly the parameters :func:`affine`
          computes itself when ``scale`` is None, so
          ``affine(w, scale=s, zero_point=z)`` with ``(s, z) =
          affine_params(w.min(), w.max(), ...)`` gives ``affine(w)``.  In
          float64: asymmetric scale = (hi − lo) / (qmax − qmin), symmetric
          scale = max(−lo, hi) / ((qmax − qmin) / 2), one RNE rounding to
          ``dtype``; asymmetric zp = clamp(qmin − half_even(lo / scale),
          qmin, qmax) with the rounded scale (the PyTorch MinMaxObserver
          formula, without its float32 intermediate roundings); symmetric
          zp = 0 (signed) or (qmin + qmax + 1) // 2 (unsigned).  A zero
          range gives scale 1, zp as above; a non-zero range whose scale
          underflows to 0 in ``dtype`` raises ParameterError.
        * "tflite": TFLite ``ChooseQuantizationParams<T>(rmin, rmax,
          narrow_range)`` (tensorflow/lite/kernels/internal/
          quantization_util.h), the gemmlowp nudging rule: in float64,
          scale = (rmax − rmin) / (qmax − qmin); zero point from the pair
          (rmin, qmin) or (rmax, qmax), whichever has the smaller
          |q| + |r / scale|; nudged: below qmin → qmin, above qmax → qmax,
          else ``round`` (ties away from zero).  The zero point uses the
          float64 scale; the returned scale is that float64 rounded (RNE)
          to ``dtype`` (TFLite files hold float32 scales).  A zero range
          gives scale 0.0 and zp 0, as TFLite (which :func:`affine`
          refuses: a scale must be > 0).  Asymmetric only (TFLite's
          symmetric int8 weights are ``rule="refcomp", symmetric=True,
          narrow_range=True, signed=True``: max|w| / 127, zp 0).
        * "pytorch": ``torch.ao.quantization.MinMaxObserver`` (and
          PerChannelMinMaxObserver) ``calculate_qparams``, bit for bit, in
          float32 (``dtype`` must be float32): lo, hi rounded (RNE) to
          float32; asymmetric scale = fl32(fl32(hi − lo) / (qmax − qmin)),
          symmetric scale = fl32(max(−lo, hi) / ((qmax − qmin) / 2)), then
          scale = max(scale, 2**−23) (``torch.finfo(float32).eps``);
          asymmetric zp = clamp(qmin − half_even(fl32(lo / scale)), qmin,
          qmax); symmetric zp = 0 (signed), 128 for unsigned 8 bits with
          the full [0, 255] range, 2**15 for unsigned 16 bits (torch.uint16), else
          (qmin + qmax) // 2 (an observer given quant_min / quant_max).

    Returns
    -------
    (scale, zero_point)
        Scalar lo/hi: a Python float (exactly a value of ``dtype``) and a
        Python int.  Array lo/hi: ndarray (C,) of ``dtype`` and ndarray (C,)
        of int32, ready for ``affine(..., axis=...)``.

    Raises
    ------
    ParameterError
        NaN/Inf or lo > hi (with the count of offending entries), unknown
        rule, "tflite" with symmetric=True, "pytorch" with a float64 dtype
        or with lo/hi beyond the float32 range, a scale that underflows to 0
        in ``dtype``, bits out of range.
    DTypeError
        ``dtype`` other than float32/float64, or integer lo/hi arrays.
    ShapeError
        lo / hi arrays that are not 1-D of equal length.
    """
    bits = check_int("bits", bits, lo=2, hi=16)
    check_choice("rule", rule, PARAM_RULES)
    dt = np.dtype(dtype)
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise DTypeError(f"dtype must be float32 or float64, got {dt}")
    signed = bool(symmetric) if signed is None else bool(signed)
    qmin, qmax = affine_range(bits, signed=signed, narrow_range=narrow_range)
    scalar = not isinstance(lo, np.ndarray) and not isinstance(hi, np.ndarray)
    lo64, hi64 = _range_arrays(lo, hi)
    if rule == "refcomp":
        s, zp = _refcomp_params(lo64, hi64, qmin, qmax, symmetric, signed, dt)
    elif rule == "tflite":
        if symmetric:
            raise ParameterError("rule='tflite' is TFLite's asymmetric ChooseQuantizationParams; "
                                 "for its symmetric int8 weights use rule='refcomp', "
                                 "symmetric=True, narrow_range=True, signed=True")
        s, zp = _tflite_params(lo64, hi64, qmin, qmax, dt)
    else:
        if dt != np.float32:
            raise ParameterError("rule='pytorch' computes in float32 as torch observers do; "
                                 "dtype must be numpy.float32")
        s, zp = _pytorch_params(lo64, hi64, qmin, qmax, bits, narrow_range, symmetric, signed)
    if scalar:
        return float(s[0]), int(zp[0])
    return s.astype(dt), zp.astype(np.int32)


def _range_arrays(lo, hi):
    """lo, hi as float64 arrays (C,), validated: finite, lo <= hi."""
    arrs = []
    for name, v in (("lo", lo), ("hi", hi)):
        if isinstance(v, np.ndarray):
            if v.dtype.kind != "f":
                raise DTypeError(f"{name} must be a float array, got dtype {v.dtype}")
            a = v.reshape(-1) if v.ndim == 0 else v
            if a.ndim != 1 or a.size == 0:
                raise ShapeError(f"{name} must be a real scalar or a non-empty 1-D array, "
                                 f"got shape {v.shape}")
            arrs.append(a.astype(np.float64))
        elif isinstance(v, numbers.Real) and not isinstance(v, bool):
            arrs.append(np.array([float(v)]))
        else:
            raise ParameterError(f"{name} must be a real number or a float ndarray, got {v!r}")
    lo64, hi64 = arrs
    if lo64.shape != hi64.shape:
        if lo64.size == 1 or hi64.size == 1:
            lo64, hi64 = np.broadcast_arrays(lo64, hi64)
            lo64, hi64 = lo64.copy(), hi64.copy()
        else:
            raise ShapeError(f"lo and hi must have the same length, got {lo64.shape} and "
                             f"{hi64.shape}")
    bad = int(np.count_nonzero(~np.isfinite(lo64)) + np.count_nonzero(~np.isfinite(hi64)))
    if bad:
        raise ParameterError(f"lo/hi contain {bad} non-finite value(s) (NaN or Inf)")
    inv = int(np.count_nonzero(lo64 > hi64))
    if inv:
        raise ParameterError(f"lo > hi in {inv} of {lo64.size} range(s)")
    return lo64 + 0.0, hi64 + 0.0


def _round_half_away(x):
    t = np.trunc(x)
    return t + np.where(np.abs(x - t) >= 0.5, np.sign(x), 0.0)


def _tflite_params(lo, hi, qmin, qmax, dt):
    rmin, rmax = np.minimum(lo, 0.0), np.maximum(hi, 0.0)
    zero = rmin == rmax
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = (rmax - rmin) / (float(qmax) - float(qmin))
        from_min = float(qmin) - rmin / scale
        from_max = float(qmax) - rmax / scale
        err_min = abs(float(qmin)) + np.abs(rmin / scale)
        err_max = abs(float(qmax)) + np.abs(rmax / scale)
    zpd = np.where(zero, 0.0, np.where(err_min < err_max, from_min, from_max))
    zp = np.where(zpd < qmin, qmin, np.where(zpd > qmax, qmax, _round_half_away(zpd)))
    zp = zp.astype(np.int64)
    s = np.where(zero, 0.0, scale).astype(dt)
    if np.any((s == 0) & ~zero):
        raise ParameterError(f"the TFLite scale underflows to 0 in {dt}")
    return s, zp


def _pytorch_params(lo, hi, qmin, qmax, bits, narrow_range, symmetric, signed):
    f32 = np.float32
    with np.errstate(over="ignore"):
        lo32, hi32 = lo.astype(f32), hi.astype(f32)
    if not (np.all(np.isfinite(lo32)) and np.all(np.isfinite(hi32))):
        raise ParameterError("rule='pytorch': lo/hi overflow float32")
    min_neg = np.minimum(lo32, f32(0))
    max_pos = np.maximum(hi32, f32(0))
    eps = f32(np.finfo(f32).eps)
    if symmetric:
        amax = np.maximum(-min_neg, max_pos)
        scale = np.maximum(amax / f32((qmax - qmin) / 2), eps)
        if signed:
            z = 0
        elif bits == 8 and not narrow_range:
            z = 128
        elif bits == 16:
            z = 1 << 15
        else:
            z = (qmin + qmax) // 2
        zp = np.full(scale.shape, z, dtype=np.int64)
    else:
        scale = np.maximum((max_pos - min_neg) / f32(qmax - qmin), eps)
        zp = qmin - np.rint(min_neg / scale).astype(np.int64)
        zp = np.clip(zp, qmin, qmax)
    return scale.astype(f32), zp


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
    """(q − zp) · scale in ``q.dtype``, per tensor, per axis or blocked (``block_size``).

    Parameters are checked first (:mod:`._decoder_checks`): ``scale`` a
    float ndarray, ``zero_point`` an integer ndarray of the same layout,
    ``axis`` None or an axis of the codes, ``block_size`` absent/None or an
    int >= 1 with ``ceil(D / block_size)`` scales along the axis.  The
    difference is exact in ``q.dtype`` while |q − zp| < 2**24 (float32) /
    2**53 (float64); the product is one IEEE multiplication (RNE).
    """
    from . import _decoder_checks as C
    p = q.params
    C.need(p, "affine", "scale", "zero_point", "axis")
    dt = C.check_dtype(q.dtype, "affine")
    C.check_codes(q.codes, "affine")
    axis = C.check_axis_param(p["axis"], q.codes.ndim, "affine")
    block = p.get("block_size")
    scale, zp = p["scale"], p["zero_point"]
    if not isinstance(scale, np.ndarray) or scale.dtype.kind != "f":
        raise DTypeError(f"affine decoder: scale must be a float ndarray, got "
                         f"{getattr(scale, 'dtype', type(scale).__name__)}")
    if not isinstance(zp, np.ndarray) or zp.dtype.kind not in "iu":
        raise DTypeError(f"affine decoder: zero_point must be an integer ndarray, got "
                         f"{getattr(zp, 'dtype', type(zp).__name__)}")
    if zp.size != 1 and zp.shape != scale.shape:
        raise ShapeError(f"affine decoder: zero_point shape {zp.shape} differs from scale "
                         f"shape {scale.shape}")
    s = C.scale_layout(scale.astype(dt, copy=False), "scale", q.shape, axis, block, "affine")
    z = C.scale_layout(zp.astype(np.int64), "zero_point", q.shape, axis,
                       block if zp.size != 1 else None, "affine") if zp.size != 1 \
        else zp.astype(np.int64).reshape(())
    diff = (q.codes.astype(np.int64) - z).astype(dt)   # exact: |diff| < 2**24 in float32
    return (diff * s).astype(dt, copy=False)


register_decoder("affine", _decode_affine)
