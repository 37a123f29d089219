"""Batch normalisation at inference, and its folding into a preceding layer."""

import numpy as np

from .._errors import ParameterError, ShapeError
from .._validate import as_float_array, check_same_dtype, describe
from ._common import check_layout, check_precision

__all__ = ["batch_norm", "fold_batch_norm"]


def _check_params(gamma, beta, mean, var, eps, channels, dtype):
    for name, v in (("gamma", gamma), ("beta", beta), ("mean", mean), ("var", var)):
        as_float_array(name, v, ndim=1)
        if v.shape[0] != channels:
            raise ShapeError(f"{name} must have shape ({channels},) (one per channel), "
                             f"got {describe(v)}")
        if v.dtype != dtype:
            raise ShapeError(f"{name} has dtype {v.dtype}, expected {dtype}")
    if not (isinstance(eps, (float, int)) and eps >= 0):
        raise ParameterError(f"eps must be a non-negative float, got {eps!r}")


def _scale64(gamma, var, eps):
    # gamma / sqrt(var + eps) in float64: one add, one correctly rounded sqrt, one divide.
    return gamma.astype(np.float64) / np.sqrt(var.astype(np.float64) + float(eps))


def batch_norm(x, gamma, beta, mean, var, *, eps, layout="NCHW", precision="reference"):
    """Inference batch normalisation ``y = (x - mean) * gamma / sqrt(var + eps) + beta``.

    Parameters
    ----------
    x : (N, C), (N, C, H, W) ("NCHW") or (N, H, W, C) ("NHWC"), float32/float64.
        For 3-D input (N, T, C) the channel axis is the last.
    gamma, beta, mean, var : (C,), dtype of x.
    eps : float (PyTorch default 1e-5, Keras default 1e-3: always pass it).

    Arithmetic (reference): in float64, ``s = gamma / sqrt(var + eps)``
    (correctly rounded sqrt and division), ``y = (x - mean) * s + beta``
    evaluated left to right, one rounding to the input dtype.  "fast": the
    same expression in the input dtype.
    """
    check_precision(precision)
    check_layout(layout)
    as_float_array("x", x, ndim=(2, 3, 4))
    axis = 1 if (x.ndim == 4 and layout == "NCHW") or x.ndim == 2 else x.ndim - 1
    _check_params(gamma, beta, mean, var, eps, x.shape[axis], x.dtype)
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
    check_same_dtype([("W", W), ("b", b)])
    out = W.shape[0]
    _check_params(gamma, beta, mean, var, eps, out, W.dtype)
    if b is not None:
        as_float_array("b", b, ndim=1)
        if b.shape[0] != out:
            raise ShapeError(f"b must have shape ({out},), got {describe(b)}")
    s = _scale64(gamma, var, eps)
    w2 = (W.astype(np.float64) * s.reshape((-1,) + (1,) * (W.ndim - 1))).astype(W.dtype)
    b64 = np.zeros(out) if b is None else b.astype(np.float64)
    b2 = ((b64 - mean.astype(np.float64)) * s + beta.astype(np.float64)).astype(W.dtype)
    return w2, b2
