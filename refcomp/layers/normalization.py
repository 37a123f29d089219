"""Batch normalisation at inference, and its folding into a preceding layer."""

import numpy as np

from .._errors import DTypeError, ParameterError
from .._validate import as_float_array
from ._common import check_layout, check_precision, check_vector

__all__ = ["batch_norm", "fold_batch_norm"]


def _check_params(gamma, beta, mean, var, eps, channels, ref, ref_name):
    # Each parameter: ndarray of float32/float64 and ndim 1 (as_float_array),
    # then length (ShapeError), then the dtype of ``ref_name`` (DTypeError).
    for name, v in (("gamma", gamma), ("beta", beta), ("mean", mean), ("var", var)):
        if v is None:     # required here (check_vector treats None as "absent")
            raise DTypeError(f"{name} must be a numpy.ndarray, got NoneType")
        check_vector(name, v, channels, ref, "one per channel", ref_name=ref_name)
    if not (isinstance(eps, (float, int)) and eps >= 0):
        raise ParameterError(f"eps must be a non-negative float, got {eps!r}")


def _scale64(gamma, var, eps):
    # gamma / sqrt(var + eps) in float64: one add, one correctly rounded sqrt, one divide.
    return gamma.astype(np.float64) / np.sqrt(var.astype(np.float64) + float(eps))


def channel_axis(ndim, layout, axis=None):
    """The channel axis :func:`batch_norm` normalises over, in ``[0, ndim)``.

    ``axis`` None: axis 1 for 2-D input and for 4-D ``layout="NCHW"``, the
    last axis otherwise (3-D (N, T, C), 4-D NHWC); an int (the layer's
    ``axis`` attribute, e.g. 1 from ONNX's BatchNormalization on rank 3 or
    5): that axis, negative ones counted from the end.  No validation: the
    callers check ``axis`` against ``ndim`` first.
    """
    if axis is None:
        return 1 if (ndim == 4 and layout == "NCHW") or ndim == 2 else ndim - 1
    return int(axis) % ndim


def batch_norm(x, gamma, beta, mean, var, *, eps, layout="NCHW", precision="reference",
               axis=None):
    """Inference batch normalisation ``y = (x - mean) * gamma / sqrt(var + eps) + beta``.

    Parameters
    ----------
    x : ndarray, float32 or float64
        (N, C), (N, T, C), (N, C, H, W) for ``layout="NCHW"`` or (N, H, W, C)
        for "NHWC".  The channel axis is 1 for 2-D input and 4-D NCHW input,
        the last axis otherwise (3-D input and NHWC).
    gamma, beta, mean, var : ndarray, shape (C,), dtype of x
    eps : float or int, >= 0
        PyTorch default 1e-5, Keras default 1e-3: always pass it.
    layout : {"NCHW", "NHWC"}
    precision : {"reference", "fast"}
    axis : int or None
        None (default): the channel axis of the rule above.  An int: that
        axis, for any x with ndim >= 2 (ONNX ``BatchNormalization`` in
        inference mode: axis 1 of (N, C, D1, ...), whatever the rank).

    Returns
    -------
    y : ndarray, shape and dtype of x.

    Raises
    ------
    DTypeError
        x or a parameter is not a float32/float64 ndarray, or a parameter's
        dtype differs from x's (nothing is cast).
    ShapeError
        x is not 2-, 3- or 4-D, or a parameter is not 1-D of length C.
    ParameterError
        eps is negative or not a number; unknown layout or precision.

    Arithmetic
    ----------
    "reference": in float64, ``s = gamma / sqrt(var + eps)`` (one rounded
    add, a correctly rounded sqrt, a correctly rounded division), then
    ``y = (x - mean) * s + beta`` evaluated left to right, each operation
    rounded in float64, and one rounding (half-even) to the input dtype.
    "fast": the same expression in the input dtype (``eps`` first rounded to
    it).  NaN anywhere propagates; ``var + eps == 0`` gives inf/NaN as
    IEEE division does; zeros follow IEEE signs (``x == mean`` gives
    ``+0.0 * s + beta``).
    """
    check_precision(precision)
    check_layout(layout)
    if axis is None:
        as_float_array("x", x, ndim=(2, 3, 4))
    else:
        from .._validate import check_int
        as_float_array("x", x)
        if x.ndim < 2:
            from .._errors import ShapeError
            raise ShapeError(f"x must have at least 2 dimensions, got shape {x.shape}")
        check_int("axis", axis, lo=-x.ndim, hi=x.ndim - 1)
    axis = channel_axis(x.ndim, layout, axis)
    _check_params(gamma, beta, mean, var, eps, x.shape[axis], x, "x")
    shape = [1] * x.ndim
    shape[axis] = -1
    if precision == "fast":
        s = gamma / np.sqrt(var + x.dtype.type(eps))
        return ((x - mean.reshape(shape)) * s.reshape(shape) + beta.reshape(shape)).astype(x.dtype)
    s = _scale64(gamma, var, eps).reshape(shape)
    y = (x.astype(np.float64) - mean.astype(np.float64).reshape(shape)) * s
    y += beta.astype(np.float64).reshape(shape)
    return y.astype(x.dtype)


def fold_batch_norm(W, b, gamma, beta, mean, var, *, eps):
    """Fold an inference batch norm that follows a dense/conv layer into it.

    Parameters
    ----------
    W : (out, in) dense or (O, C/groups, kh, kw) conv weights, float32/float64.
    b : (out,) or None (treated as zeros).
    gamma, beta, mean, var : (out,), dtype of W.

    Returns
    -------
    (W', b') with ``W'[o] = W[o] * s[o]`` and ``b'[o] = (b[o] - mean[o]) * s[o] + beta[o]``,
    ``s = gamma / sqrt(var + eps)``; all in float64, each result rounded once
    (half-even) to W's dtype.  The folded layer equals layer-then-batch-norm
    up to those roundings (not bit-exactly: the order of operations differs).
    """
    as_float_array("W", W, ndim=(2, 4))
    out = W.shape[0]
    check_vector("b", b, out, W, "one bias per output of W", ref_name="W")
    _check_params(gamma, beta, mean, var, eps, out, W, "W")
    s = _scale64(gamma, var, eps)
    w2 = (W.astype(np.float64) * s.reshape((-1,) + (1,) * (W.ndim - 1))).astype(W.dtype)
    b64 = np.zeros(out) if b is None else b.astype(np.float64)
    b2 = ((b64 - mean.astype(np.float64)) * s + beta.astype(np.float64)).astype(W.dtype)
    return w2, b2
