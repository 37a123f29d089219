"""Fully connected layer, Resmerita et al. eq. (5): y = x W^T + b."""

import numpy as np

from .._errors import ShapeError
from .._validate import as_float_array, check_same_dtype, describe
from ..kernels.linear import matmul_acc64
from ._common import check_hook_result, check_precision, check_vector, weight_operand

__all__ = ["dense", "dense_acc64"]


def dense_acc64(x, W):
    """float64 accumulator of ``x @ W.T`` in the reference order (private, clean input)."""
    return matmul_acc64(np.ascontiguousarray(x, dtype=np.float64),
                        np.ascontiguousarray(W.T, dtype=np.float64),
                        exact_products=x.dtype == np.float32 and W.dtype == np.float32)


def dense(x, W, b=None, *, precision="reference"):
    """Dense (fully connected) layer ``y = x @ W.T + b``.

    Parameters
    ----------
    x : ndarray, shape (N, in), float32 or float64
    W : ndarray, shape (out, in), same dtype as ``x`` (Resmerita eq. (5) layout),
        or a :class:`refcomp.weights.CompressedWeight` of that ``weight_shape``
        and dtype: its ``linear`` compute hook runs the product when its type
        has one (e.g. :class:`refcomp.sparse.CSR`: :func:`refcomp.sparse.linear`,
        both precisions), else the layer runs on ``W.dequantize()``
    b : ndarray, shape (out,), same dtype, optional
    precision : {"reference", "fast"}

    Returns
    -------
    y : ndarray, shape (N, out), dtype of ``x``

    Arithmetic
    ----------
    ``"reference"``: each product ``x[n,i] * W[o,i]`` in float64 (exact for
    float32 data), summed in float64 sequentially for i = 0, 1, ..., in-1
    starting from +0.0, then ``+ b[o]`` in float64, then one rounding to the
    output dtype (round half to even).  Bit-identical across runs, threads
    and machines.  An all-zero (or empty, in = 0) sum gives +0.0 before the
    bias.  NaN/Inf propagate by IEEE rules (``0 * inf`` is NaN).

    A compressed ``W`` with a ``linear`` hook: the hook's own documented
    arithmetic (for CSR, the reference above over the stored entries).

    ``"fast"``: ``x @ W.T + b`` by NumPy/BLAS in the input dtype; the order
    of summation is BLAS's.  Error bound against reference:
    ``|fast - ref| <= gamma_n * sum_i |x_i w_i|`` (FACTS.md §8).
    """
    check_precision(precision)
    owner = W
    W, hook = weight_operand(W, "linear")
    # Every argument is checked to be a float ndarray of the right ndim
    # before any attribute of it is used (dtype comparison, shapes).
    as_float_array("x", x, ndim=2)
    as_float_array("W", W, ndim=2)
    if b is not None:
        as_float_array("b", b, ndim=1)
    check_same_dtype([("x", x), ("W", W), ("b", b)])
    if x.shape[1] != W.shape[1]:
        raise ShapeError(f"x has {x.shape[1]} features but W expects {W.shape[1]} "
                         f"(x {describe(x)}, W {describe(W)}; W is (out, in))")
    check_vector("b", b, W.shape[0], W, "one bias per output of W", ref_name="W")
    if hook is not None:       # the weight's own product (x, b validated above)
        return check_hook_result(hook(x, b, precision=precision), (x.shape[0], W.shape[0]),
                                 x.dtype, owner, "linear")
    if precision == "fast":
        y = x @ W.T
        if b is not None:
            y += b
        return y
    acc = dense_acc64(x, W)
    if b is not None:
        acc += b.astype(np.float64)
    return acc.astype(x.dtype)
