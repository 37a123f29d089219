"""Public sparse products: ``spmv``, ``spmm``, and the dense / conv2d layers
with a CSR weight (validated wrappers around :mod:`refcomp.kernels.sparse`)."""

import numpy as np

from .._errors import DTypeError, ParameterError, ShapeError
from .._validate import as_float_array, describe
from ..kernels.sparse import spmm_kernel, spmv_kernel
from ..weights import CompressedWeight

__all__ = ["spmv", "spmm", "linear", "conv2d"]

_ARITHMETIC = """
    Arithmetic
    ----------
    Per output element: the products ``data[j] * x[col]`` of the row's
    stored entries in float64 (exact for float32 factors), summed in float64
    sequentially in increasing column order starting from +0.0, then one
    rounding (half-even) to the output dtype.  Output dtype
    ``numpy.result_type(A.dtype, x.dtype)`` (float32 only when both are
    float32; float32 inputs promoted to float64 are converted exactly).
    Structural zeros are not terms (``inf`` times an absent entry adds
    nothing, as in scipy.sparse); stored explicit zeros are terms.  For
    finite inputs the result equals the float64-accumulated dense product of
    ``A.to_dense()`` in column order bit for bit.  Deterministic for any
    thread count (parallel over rows only).  NaN: a NaN operand propagates
    with its payload; where two NaNs meet in one operation, which payload
    survives is not specified (IEEE 754), and only then may payload bits
    differ between hosts.
"""


def _check_csr(name, A):
    # The CSR class (refcomp.sparse.csr) imports this module for its compute
    # hooks, so it is recognised here by its registered encoding, not imported.
    if not (isinstance(A, CompressedWeight) and A.encoding == "csr"):
        raise ParameterError(f"{name} must be a refcomp.sparse.CSR, got {type(A).__name__}")


def spmv(A, x):
    """Sparse matrix-vector product ``A @ x``.

    Parameters
    ----------
    A : CSR, shape (rows, cols), float32 or float64
    x : ndarray, shape (cols,), float32 or float64

    Returns
    -------
    y : ndarray (rows,), dtype ``result_type(A.dtype, x.dtype)``
    """
    _check_csr("A", A)
    as_float_array("x", x, ndim=1)
    if x.shape[0] != A.shape[1]:
        raise ShapeError(f"x must have shape ({A.shape[1]},) to match A {A.shape}, "
                         f"got {describe(x)}")
    out = np.empty(A.shape[0], dtype=np.result_type(A.dtype, x.dtype))
    return spmv_kernel(A.indptr, A.indices, A.data, np.ascontiguousarray(x), out,
                       order=A.processing_order(), sliced=A.spmv_layout())


def spmm(A, X):
    """Sparse matrix times dense matrix ``A @ X``.

    Parameters
    ----------
    A : CSR, shape (rows, cols), float32 or float64
    X : ndarray, shape (cols, k), float32 or float64 (the scipy orientation:
        ``A @ X``; for a batch of row vectors ``x (N, cols)`` use
        ``spmm(A, x.T).T`` or :func:`linear`)

    Returns
    -------
    Y : ndarray (rows, k), C-contiguous, dtype ``result_type(A.dtype, X.dtype)``
    """
    _check_csr("A", A)
    as_float_array("X", X, ndim=2)
    if X.shape[0] != A.shape[1]:
        raise ShapeError(f"X must have shape ({A.shape[1]}, k) to match A {A.shape}, "
                         f"got {describe(X)}")
    out = np.empty((A.shape[0], X.shape[1]), dtype=np.result_type(A.dtype, X.dtype))
    return spmm_kernel(A.indptr, A.indices, A.data, np.ascontiguousarray(X), out,
                       order=A.processing_order())


spmv.__doc__ += _ARITHMETIC
spmm.__doc__ += _ARITHMETIC


def linear(x, W, b=None):
    """Dense layer ``y = x @ W.T + b`` with a CSR weight W (out, in).

    Parameters
    ----------
    x : ndarray (N, in), float32 or float64
    W : CSR, shape (out, in), dtype of x (2-D ``weight_shape``)
    b : ndarray (out,), dtype of x, optional

    Returns
    -------
    y : ndarray (N, out), dtype of x

    Arithmetic
    ----------
    The arithmetic of :func:`refcomp.layers.dense` ("reference"): per output
    ``y[n, o]`` the products ``x[n, i] * W[o, i]`` of the stored entries in
    float64, summed sequentially in increasing i from +0.0, then ``+ b[o]``
    in float64, then one rounding (half-even) to x's dtype.  For finite x it
    equals ``refcomp.layers.dense(x, W.to_dense(), b)`` bit for bit (skipped
    terms are ``+-0.0`` and cannot change the sum); for non-finite x an
    absent weight contributes nothing (no ``inf * 0 = NaN``).
    """
    _check_csr("W", W)
    as_float_array("x", x, ndim=2)
    if W.dtype != x.dtype or (b is not None and getattr(b, "dtype", None) != x.dtype):
        raise DTypeError(f"x ({x.dtype}), W ({W.dtype}) and b must have the same dtype; "
                         "refcomp never mixes dtypes silently")
    if len(W.weight_shape) != 2:
        raise ShapeError(f"W must be a 2-D (out, in) CSR, got weight_shape {W.weight_shape}")
    if x.shape[1] != W.shape[1]:
        raise ShapeError(f"x has {x.shape[1]} features but W expects {W.shape[1]} "
                         f"(x {describe(x)}, W {W.shape}; W is (out, in))")
    bias = _bias64("b", b, W.shape[0])
    y = np.empty((x.shape[0], W.shape[0]), dtype=x.dtype)
    spmm_kernel(W.indptr, W.indices, W.data, np.ascontiguousarray(x.T), y.T, bias,
                order=W.processing_order())
    return y


def _bias64(name, b, n):
    if b is None:
        return None
    as_float_array(name, b, ndim=1)
    if b.shape[0] != n:
        raise ShapeError(f"{name} must have shape ({n},), got {describe(b)}")
    return b.astype(np.float64)


def conv2d(x, W, b=None, *, stride=1, padding=0, dilation=1, groups=1, layout="NCHW",
           chunk_bytes=1 << 25):
    """2-D convolution with a CSR kernel: sparse im2col path.

    Parameters
    ----------
    x : ndarray (N, C, H, W) ("NCHW") or (N, H, W, C) ("NHWC"), float32/float64
    W : CSR of ``weight_shape`` (O, C/groups, kh, kw), i.e. the matrix
        (O, C/groups*kh*kw) whose columns are the (c, i, j) reduction index in
        C order (:meth:`CSR.from_dense` of the OIHW kernel); dtype of x
    b : ndarray (O,), optional
    stride, padding, dilation, groups, layout : as :func:`refcomp.layers.conv2d`

    Returns
    -------
    y : (N, O, OH, OW) or (N, OH, OW, O), dtype of x

    Arithmetic
    ----------
    Per group, the zero-padded receptive fields are gathered (exact copies)
    into a column matrix (C/groups*kh*kw, N*OH*OW) and multiplied by the
    group's CSR rows with the kernel of :func:`spmm`; per output the stored
    products in float64, summed in increasing (c, i, j) order from +0.0, then
    ``+ b[o]`` in float64 and one half-even rounding: the order of
    :func:`refcomp.layers.conv2d` "reference", so for finite x the result is
    bit-identical to it on ``W.to_dense()`` (padded zeros times stored
    weights are real terms; absent weights are not).
    """
    from ..layers._common import from_nchw
    from ..layers.conv import _pad, conv2d_setup
    _check_csr("W", W)
    if len(W.weight_shape) != 4:
        raise ShapeError(f"W must be a CSR of an OIHW kernel (4-D weight_shape), got "
                         f"{W.weight_shape}")
    # zero-stride stand-in so the dense validation sees W's shape and dtype
    w_view = np.broadcast_to(np.zeros((), dtype=W.dtype), W.weight_shape)
    xc, stride, dilation, groups, pads = conv2d_setup(x, w_view, b, stride, padding,
                                                      dilation, groups, layout)
    xp = _pad(xc, pads, x.dtype)
    n, _, hp, wp = xp.shape
    o, cg, kh, kw = W.weight_shape
    og = o // groups
    oh = (hp - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (wp - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    bias = None if b is None else b.astype(np.float64)
    out = np.empty((n, o, oh, ow), dtype=x.dtype)
    k = cg * kh * kw
    step = max(1, chunk_bytes // max(1, oh * ow * k * xp.dtype.itemsize))
    for s0 in range(0, n, step):
        s1 = min(n, s0 + step)
        for g in range(groups):
            cols = _columns(xp[s0:s1, g * cg:(g + 1) * cg], kh, kw, stride, dilation, oh, ow)
            r0, r1 = g * og, (g + 1) * og
            p0, p1 = W.indptr[r0], W.indptr[r1]
            res = np.empty((og, cols.shape[1]), dtype=x.dtype)
            spmm_kernel(W.indptr[r0:r1 + 1] - p0, W.indices[p0:p1], W.data[p0:p1], cols, res,
                        None if bias is None else bias[r0:r1])
            out[s0:s1, r0:r1] = res.reshape(og, s1 - s0, oh, ow).transpose(1, 0, 2, 3)
    return from_nchw(out, layout)


def _columns(xg, kh, kw, stride, dilation, oh, ow):
    """(cg*kh*kw, n*oh*ow) column matrix: row (c, i, j) holds
    ``xg[:, c, oh*sh + i*dh, ow*sw + j*dw]`` over (n, oh, ow) in C order."""
    n, cg = xg.shape[:2]
    cols = np.empty((cg, kh, kw, n, oh, ow), dtype=xg.dtype)
    for i in range(kh):
        r0 = i * dilation[0]
        for j in range(kw):
            c0 = j * dilation[1]
            cols[:, i, j] = xg[:, :, r0:r0 + (oh - 1) * stride[0] + 1:stride[0],
                               c0:c0 + (ow - 1) * stride[1] + 1:stride[1]].transpose(1, 0, 2, 3)
    return cols.reshape(cg * kh * kw, n * oh * ow)
