"""Boundary helpers shared by the scalar quantizers (private)."""

import numpy as np

from .._errors import ParameterError, ShapeError
from .._validate import as_float_array, check_int
from ..kernels.quantize import minmax_nonfinite


def float_input(name, w, *, allow_empty=False):
    """float32/float64 ndarray check (no casting); rejects empty arrays unless allowed."""
    as_float_array(name, w)
    if not allow_empty and w.size == 0:
        raise ShapeError(f"{name} must not be empty, got shape={w.shape} dtype={w.dtype}")
    return w


def finite_range(name, w):
    """(min, max) as float64 of a non-empty array; ValueError counting NaN/Inf."""
    flat = np.ascontiguousarray(w).reshape(-1)
    lo, hi, bad = minmax_nonfinite(flat)
    if bad:
        raise ParameterError(f"{name} contains {bad} non-finite element(s) (NaN or Inf) out of "
                             f"{w.size}; this quantizer cannot represent them")
    # +0.0 turns a -0.0 extreme into +0.0 so parameters do not depend on
    # which signed zero the reduction met first.
    return lo + 0.0, hi + 0.0


def check_axis(name, axis, ndim):
    """Normalise an axis (None allowed) for an array of ``ndim`` dims."""
    if axis is None:
        return None
    axis = check_int(name, axis)
    if not -ndim <= axis < ndim:
        raise ParameterError(f"{name}={axis} is out of range for an array with {ndim} dimensions")
    return axis % ndim


def as_3d(w, axis):
    """Contiguous (A, C, B) view with C the channel axis (C = 1 when axis is None)."""
    w = np.ascontiguousarray(w)
    if axis is None:
        return w.reshape(1, 1, -1)
    a = int(np.prod(w.shape[:axis], dtype=np.int64))
    b = int(np.prod(w.shape[axis + 1:], dtype=np.int64))
    return w.reshape(a, w.shape[axis], b)


def channel_shape(shape, axis):
    """Broadcast shape of a per-channel parameter along ``axis``."""
    out = [1] * len(shape)
    out[axis] = shape[axis]
    return tuple(out)
