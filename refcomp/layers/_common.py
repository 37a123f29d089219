"""Shared argument parsing for the layer functions (private)."""

import numbers

import numpy as np

from .._errors import DTypeError, ParameterError, ShapeError
from .._validate import as_float_array, check_choice, describe
from ..weights import CompressedWeight

PRECISIONS = ("reference", "fast")
LAYOUTS = ("NCHW", "NHWC")


def check_precision(precision):
    return check_choice("precision", precision, PRECISIONS)


def check_layout(layout):
    return check_choice("layout", layout, LAYOUTS)


def pair(name, value, *, lo=1):
    """An int or a pair of ints -> (a, b), each >= lo."""
    if isinstance(value, (numbers.Integral, np.integer)) and not isinstance(value, bool):
        value = (int(value), int(value))
    try:
        a, b = value
        a, b = int(a), int(b)
    except (TypeError, ValueError):
        raise ParameterError(f"{name} must be an int or a pair of ints, got {value!r}") from None
    if a < lo or b < lo:
        raise ParameterError(f"{name} must be >= {lo}, got {value!r}")
    return a, b


def same_padding_1d(size, k, stride, dilation):
    """TensorFlow SAME rule (FACTS.md §3.3): odd extra pixel at the end."""
    out = (size + stride - 1) // stride
    eff = (k - 1) * dilation + 1
    total = max(0, (out - 1) * stride + eff - size)
    return total // 2, total - total // 2


def resolve_padding(padding, in_hw, k_hw, stride, dilation):
    """Normalise a padding spec to ((top, bottom), (left, right)).

    Accepts int, (ph, pw), ((top, bottom), (left, right)), "valid", "same"
    (= "same_upper": TensorFlow SAME, ONNX SAME_UPPER, odd pixel at the
    end) and "same_lower" (ONNX SAME_LOWER, odd pixel at the beginning).
    """
    if isinstance(padding, str):
        p = padding.lower()
        if p == "valid":
            return (0, 0), (0, 0)
        if p in ("same", "same_upper", "same_lower"):
            pads = (same_padding_1d(in_hw[0], k_hw[0], stride[0], dilation[0]),
                    same_padding_1d(in_hw[1], k_hw[1], stride[1], dilation[1]))
            return tuple(pp[::-1] for pp in pads) if p == "same_lower" else pads
        raise ParameterError(f"padding must be an int, a pair, a pair of pairs, 'valid', "
                             f"'same' ('same_upper') or 'same_lower', got {padding!r}")
    if isinstance(padding, (numbers.Integral, np.integer)) and not isinstance(padding, bool):
        p = int(padding)
        if p < 0:
            raise ParameterError(f"padding must be >= 0, got {padding}")
        return (p, p), (p, p)
    try:
        a, b = padding
    except (TypeError, ValueError):
        raise ParameterError(f"invalid padding {padding!r}") from None
    if isinstance(a, (tuple, list)):
        (t, bo), (le, r) = pair("padding[0]", a, lo=0), pair("padding[1]", b, lo=0)
        return (t, bo), (le, r)
    ph, pw = pair("padding", (a, b), lo=0)
    return (ph, ph), (pw, pw)


def to_nchw(x, layout):
    return x if layout == "NCHW" else x.transpose(0, 3, 1, 2)


def from_nchw(y, layout):
    return y if layout == "NCHW" else np.ascontiguousarray(y.transpose(0, 2, 3, 1))


def check_vector(name, v, length, ref, what, *, ref_name="x"):
    """Optional 1-D parameter (bias, gamma...) of length ``length`` and the
    dtype of the array ``ref`` (called ``ref_name`` in messages).

    ShapeError for a wrong ndim or length, DTypeError for a non-array or
    another dtype; the message names the argument with its shape and dtype,
    and ``ref_name`` with its own.
    """
    if v is None:
        return None
    as_float_array(name, v, ndim=1)
    if v.shape[0] != length:
        raise ShapeError(f"{name} must have shape ({length},) ({what}; {ref_name} "
                         f"{describe(ref)}), got {describe(v)}")
    if v.dtype != ref.dtype:
        raise DTypeError(f"{name} must have the dtype of {ref_name} ({ref_name} {describe(ref)}), "
                         f"got {describe(v)}; refcomp never mixes dtypes silently")
    return v


def weight_operand(W, hook):
    """Resolve a layer's weight argument against the compressed-weight protocol.

    Parameters
    ----------
    W : ndarray, refcomp.weights.CompressedWeight, or anything else
    hook : str
        The compute hook the calling layer would use ("linear", "conv2d").

    Returns
    -------
    (W_for_checks, bound_hook)
        For a CompressedWeight whose type provides ``hook``: a read-only
        zero-stride stand-in of ``W.weight_shape`` and ``W.dtype`` (so the
        layer validates ``x`` and ``b`` exactly as for a dense weight, with
        the same messages, without decoding), and the bound hook.  For a
        CompressedWeight without it: ``(W.dequantize(), None)``, the
        documented decoding.  Anything else is returned unchanged with
        ``None`` (the layer's own checks then accept or reject it).
    """
    if not isinstance(W, CompressedWeight):
        return W, None
    fn = getattr(W, hook, None)
    if fn is None:
        return W.dequantize(), None
    return np.broadcast_to(np.zeros((), dtype=W.dtype), W.weight_shape), fn


def check_hook_result(y, shape, dtype, owner, hook):
    """Refuse a compute hook's output of the wrong type, shape or dtype."""
    where = f"the {hook} hook of {type(owner).__name__}"
    if not isinstance(y, np.ndarray):
        raise DTypeError(f"{where} returned {type(y).__name__}, expected an ndarray")
    if y.dtype != dtype:
        raise DTypeError(f"{where} returned dtype {y.dtype}, expected {np.dtype(dtype)}")
    if tuple(y.shape) != tuple(shape):
        raise ShapeError(f"{where} returned shape {y.shape}, expected {tuple(shape)}")
    return y
