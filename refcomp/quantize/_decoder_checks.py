"""Parameter checks shared by the decoding rules (private).

Every registered decoder validates what it is given before decoding, so a
``Quantized`` built by hand (or by :func:`refcomp.quantize.from_codes` from
another framework's codes) either decodes as documented or raises a
refcomp error naming the parameter and its value; NumPy's own errors never
reach the user.
"""

import numbers

import numpy as np

from .._errors import DTypeError, ParameterError, ShapeError

__all__ = ["check_codes", "check_dtype", "need", "check_real", "check_intparam",
           "check_axis_param", "scale_layout"]


def need(params, decoder, *names):
    """ParameterError if one of ``names`` is missing from ``params``."""
    for n in names:
        if n not in params:
            raise ParameterError(f"{decoder} decoder: missing parameter {n!r} (given: "
                                 f"{sorted(params)})")


def check_codes(codes, decoder, lo=None, hi=None):
    """Integer ndarray codes, optionally within [lo, hi]."""
    if not isinstance(codes, np.ndarray) or codes.dtype.kind not in "iu":
        raise DTypeError(f"{decoder} codes must be an integer ndarray, got "
                         f"{getattr(codes, 'dtype', type(codes).__name__)}")
    if codes.size and lo is not None and (int(codes.min()) < lo or int(codes.max()) > hi):
        raise ParameterError(f"{decoder} codes must lie in [{lo}, {hi}], got "
                             f"[{int(codes.min())}, {int(codes.max())}]")
    return codes


def check_dtype(dtype, decoder):
    dt = np.dtype(dtype)
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise DTypeError(f"{decoder} decoder: dtype must be float32 or float64, got {dt}")
    return dt


def check_real(params, name, decoder, *, finite=True, positive=False):
    v = params[name]
    if isinstance(v, np.ndarray) and v.ndim == 0:
        v = v[()]
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (numbers.Real, np.floating)):
        raise ParameterError(f"{decoder} decoder: {name} must be a real number, got {v!r}")
    v = float(v)
    if finite and not np.isfinite(v):
        raise ParameterError(f"{decoder} decoder: {name} must be finite, got {v!r}")
    if positive and not v > 0:
        raise ParameterError(f"{decoder} decoder: {name} must be > 0, got {v!r}")
    return v


def check_intparam(params, name, decoder, lo=None, hi=None):
    v = params[name]
    if isinstance(v, np.ndarray) and v.ndim == 0:
        v = v[()]
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (numbers.Integral, np.integer)):
        raise ParameterError(f"{decoder} decoder: {name} must be an int, got {v!r}")
    v = int(v)
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise ParameterError(f"{decoder} decoder: {name} must lie in [{lo}, {hi}], got {v}")
    return v


def check_axis_param(axis, ndim, decoder):
    """None, or an int in [-ndim, ndim) (returned normalised)."""
    if axis is None:
        return None
    if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, (numbers.Integral, np.integer)):
        raise ParameterError(f"{decoder} decoder: axis must be None or an int, got {axis!r}")
    if not -ndim <= int(axis) < ndim:
        raise ParameterError(f"{decoder} decoder: axis={int(axis)} is out of range for codes "
                             f"with {ndim} dimensions")
    return int(axis) % ndim


def scale_layout(arr, name, shape, axis, block_size, decoder):
    """Broadcastable view of a per-tensor / per-axis / blocked parameter.

    Per tensor (``axis`` None): ``arr`` has one element.  Per axis: 1-D of
    length ``shape[axis]`` (or one element).  Blocked (``block_size`` B >=
    1, ONNX QuantizeLinear/DequantizeLinear opset >= 21): the rank of the
    codes, equal shape except along ``axis`` where its length S must be
    ``ceil(D / B)``; element i along the axis uses block ``i // B`` (the
    last block may be shorter, as ONNX's remainder block).  ShapeError /
    ParameterError otherwise, naming ``name``, ``block_size`` and the shapes.
    """
    if not isinstance(arr, np.ndarray):
        raise ParameterError(f"{decoder} decoder: {name} must be an ndarray, got "
                             f"{type(arr).__name__}")
    if block_size is not None:
        if axis is None:
            raise ParameterError(f"{decoder} decoder: block_size={block_size} needs an axis")
        if isinstance(block_size, (bool, np.bool_)) or \
                not isinstance(block_size, (numbers.Integral, np.integer)) or block_size < 1:
            raise ParameterError(f"{decoder} decoder: block_size must be an int >= 1, got "
                                 f"{block_size!r}")
        b = int(block_size)
        want = list(shape)
        want[axis] = -(-shape[axis] // b)
        if arr.ndim != len(shape) or any(arr.shape[i] != want[i] for i in range(len(shape))
                                         if i != axis):
            raise ShapeError(f"{decoder} decoder: blocked {name} must have the shape of the "
                             f"codes {tuple(shape)} except along axis {axis}, got "
                             f"{arr.shape}")
        if arr.shape[axis] != want[axis]:
            s, d = arr.shape[axis], shape[axis]
            lo = -(-d // s) if s else 0
            hi = (-(-d // (s - 1)) - 1) if s > 1 else max(d, 1)
            fit = f"block sizes that fit: [{lo}, {hi}]" if s and lo <= hi else \
                "no block size fits"
            raise ParameterError(
                f"{decoder} decoder: block_size={b} does not fit axis {axis} of length {d} "
                f"with {name} of length {s} along it: ceil({d}/{b}) = {want[axis]} != {s} "
                f"({fit})")
        return np.repeat(arr, b, axis=axis).take(np.arange(shape[axis]), axis=axis)
    if axis is None:
        if arr.size != 1:
            raise ShapeError(f"{decoder} decoder: per-tensor {name} must have one element, got "
                             f"shape {arr.shape}")
        return arr.reshape(())
    flat = arr.reshape(-1) if arr.ndim <= 1 else arr
    if flat.ndim != 1 or flat.shape[0] not in (1, shape[axis]):
        raise ShapeError(f"{decoder} decoder: per-axis {name} must have shape "
                         f"({shape[axis]},) (axis {axis} of codes {tuple(shape)}), got "
                         f"{arr.shape}")
    out = [1] * len(shape)
    out[axis] = flat.shape[0]
    return flat.reshape(out)
