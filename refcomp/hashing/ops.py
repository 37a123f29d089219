"""Dense and convolution products with a hashed weight, without forming V.

The compute hooks of :class:`refcomp.hashing.HashedWeight` call these
(``refcomp.layers.dense`` / ``conv2d`` with a hashed ``W``).  Each virtual
weight ``V[o, i] = xi(o, i) * w[h(o, i)]`` is hashed on the fly, once per
call, from the seed (Chen et al., ICML 2015, §4; FACTS.md §7.6): memory is
the input, the output and the buckets, never O(|V|).
"""

import numpy as np

from .._errors import DTypeError, ParameterError, ShapeError
from .._validate import as_float_array, check_choice, describe
from ..layers.conv import conv2d_setup
from ..weights import CompressedWeight
from . import _kernels as _k

__all__ = ["hashed_linear", "hashed_conv2d", "PRECISIONS"]

PRECISIONS = ("reference", "fast")


def _check_weight(W, ndim):
    # HashedWeight (refcomp.hashing.weight) imports this module for its hooks,
    # so it is recognised here by its registered encoding, not imported.
    if not (isinstance(W, CompressedWeight) and W.encoding == "hashed"):
        raise ParameterError(f"W must be a refcomp.hashing.HashedWeight, got "
                             f"{type(W).__name__}")
    if len(W.weight_shape) != ndim:
        raise ShapeError(f"W must be a {ndim}-D hashed weight, got shape {W.weight_shape}")


def _check_bias(b, n, dtype):
    if b is None:
        return None
    as_float_array("b", b, ndim=1)
    if b.shape != (n,) or b.dtype != dtype:
        raise ShapeError(f"b must have shape ({n},) and dtype {np.dtype(dtype)}, got "
                         f"{describe(b)}")
    return b


def hashed_linear(x, W, b=None, *, precision="reference"):
    """Dense layer ``y = x @ V.T + b`` with a hashed weight ``V`` (out, in).

    Parameters
    ----------
    x : ndarray (N, in), float32 or float64
    W : HashedWeight of ``weight_shape`` (out, in) and the dtype of ``x``
    b : ndarray (out,), dtype of ``x``, optional
    precision : {"reference", "fast"}

    Returns
    -------
    y : ndarray (N, out), dtype of ``x``

    Arithmetic
    ----------
    ``"reference"`` (the exact mode): per output ``y[n, o]``, the products
    ``x[n, i] * V[o, i]`` in float64 (exact for float32 data; ``V[o, i]`` is
    a bucket value with its sign flipped or not, exact), summed in float64
    sequentially for i = 0, 1, ..., in-1 from +0.0, then ``+ b[o]`` in
    float64 and one rounding (half-even) to x's dtype: bit for bit
    :func:`refcomp.layers.dense` (reference) of ``W.dequantize()`` for
    finite inputs.  ``"fast"``: the same order with every product and sum
    rounded to x's dtype (float32 accumulation for float32 data), then
    ``+ b[o]`` in that dtype; deterministic, and within
    ``refcomp.testing.dot_error_bound("dense", x, V, b)`` of the reference
    (FACTS.md §8: n rounded products and n + 1 sums give at most
    ``gamma_{n+1}(dtype) * (sum_i |x_i V_i| + |b|)`` against the exact
    value; the reference is within ``u + gamma_{n+1}(float64)`` of it).
    Both never form V: each (o, i) is hashed once per call.  NaN and Inf
    propagate by IEEE rules (``0 * inf`` is NaN, as in the dense layer).
    Parallel over outputs only: identical bits for any thread count.
    """
    check_choice("precision", precision, PRECISIONS)
    _check_weight(W, 2)
    as_float_array("x", x, ndim=2)
    if x.dtype != W.dtype:
        raise DTypeError(f"x has dtype {x.dtype} but W has dtype {W.dtype}; refcomp never "
                         "mixes dtypes silently")
    n_out, n_in = W.weight_shape
    if x.shape[1] != n_in:
        raise ShapeError(f"x has {x.shape[1]} features but W expects {n_in} (x {describe(x)}, "
                         f"W {W.weight_shape})")
    b = _check_bias(b, n_out, x.dtype)
    dt = np.float64 if precision == "reference" else x.dtype
    acc = _k.hashed_matmul(np.ascontiguousarray(x, dtype=dt), W.buckets.astype(dt), n_out,
                           W.seed, W.mode, W.sign)
    if b is not None:
        acc += b.astype(dt)
    return acc.astype(x.dtype, copy=False)


def hashed_conv2d(x, W, b=None, *, stride=1, padding=0, dilation=1, groups=1, layout="NCHW",
                  precision="reference"):
    """2-D convolution (cross-correlation) with a hashed kernel ``V`` (O, C/groups, kh, kw).

    Parameters
    ----------
    x, b, stride, padding, dilation, groups, layout
        As :func:`refcomp.layers.conv2d`.
    W : HashedWeight of ``weight_shape`` (O, C/groups, kh, kw), dtype of x.
        Its hash keys are those of the (O, C/groups*kh*kw) matrix view:
        row o + 1, column ``(c*kh + i)*kw + j + 1`` (1-based, C order).
    precision : {"reference", "fast"}

    Returns
    -------
    y : as :func:`refcomp.layers.conv2d`.

    Arithmetic
    ----------
    ``"reference"``: per output element, the padded input (zeros are real
    terms) times ``V`` in float64 (exact for float32 data), summed in
    float64 from +0.0 over c, then kernel row i, then column j, increasing;
    then ``+ b[o]`` in float64 and one rounding (half-even) to x's dtype: bit
    for bit :func:`refcomp.layers.conv2d` (reference) of ``W.dequantize()``
    for finite inputs.  ``"fast"``: the same order in x's dtype (within
    ``refcomp.testing.dot_error_bound("conv2d", ...)`` of the reference).
    V is never formed.  NHWC is computed by transposing to NCHW and back
    (exact).  Parallel over output channels only.
    """
    check_choice("precision", precision, PRECISIONS)
    _check_weight(W, 4)
    stand_in = np.broadcast_to(np.zeros((), dtype=W.dtype), W.weight_shape)
    xc, st, dil, groups, pads = conv2d_setup(x, stand_in, b, stride, padding, dilation, groups,
                                             layout)
    dt = np.float64 if precision == "reference" else x.dtype
    (t, bo), (le, r) = pads
    xp = np.pad(xc.astype(dt), ((0, 0), (0, 0), (t, bo), (le, r)))
    o, cg, kh, kw = W.weight_shape
    acc = _k.hashed_conv(xp, W.buckets.astype(dt), o, cg, kh, kw, groups, st, dil, W.seed,
                         W.mode, W.sign)
    if b is not None:
        acc += b.astype(dt)[None, :, None, None]
    y = acc.astype(x.dtype, copy=False)
    return y if layout == "NCHW" else np.ascontiguousarray(y.transpose(0, 2, 3, 1))
