"""Fully connected layer, Resmerita et al. eq. (5): y = x W^T + b."""

import numpy as np

from .._errors import ShapeError
from .._validate import as_float_array, check_same_dtype, describe
from ..kernels.linear import matmul_acc64
from ._common import check_hook_result, check_precision, check_vector, weight_operand

__all__ = ["dense", "dense_acc64", "gemm", "matmul"]


def dense_acc64(x, W):
    """float64 accumulator of ``x @ W.T`` in the reference order (private, clean input)."""
    return matmul_acc64(np.ascontiguousarray(x),       # float32 is widened exactly inside
                        np.ascontiguousarray(W.T, dtype=np.float64),
                        exact_products=x.dtype == np.float32 and W.dtype == np.float32)


def dense(x, W, b=None, *, precision="reference", alpha=1.0, beta=1.0):
    """Dense (fully connected) layer ``y = x @ W.T + b`` (``alpha * (x @ W.T) + beta * b``).

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
    alpha, beta : real, default 1.0 (ONNX ``Gemm`` attributes)
        Each is first rounded (RNE) to float32, as ONNX attributes are;
        with both 1 the arithmetic below is today's (a product by 1 is
        exact).  Otherwise the float64 accumulator is multiplied by alpha
        (one float64 rounding), ``beta * b`` formed in float64 (one
        rounding) and added (one rounding) before the final rounding; a
        compressed ``W`` is then decoded (its hook is not used).

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
    from .activations import _f32_param
    alpha, beta = _f32_param("alpha", alpha), _f32_param("beta", beta)
    scaled = alpha != 1.0 or beta != 1.0
    owner = W
    W, hook = weight_operand(W, "none" if scaled else "linear")
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
        if scaled:
            y = x.dtype.type(alpha) * y
        if b is not None:
            y += b if not scaled else x.dtype.type(beta) * b
        return y
    acc = dense_acc64(x, W)
    if scaled:
        acc = alpha * acc
    if b is not None:
        acc += b.astype(np.float64) if not scaled else beta * b.astype(np.float64)
    return acc.astype(x.dtype)


def gemm(A, B, C=None, *, alpha=1.0, beta=1.0, trans_a=False, trans_b=False,
         precision="reference"):
    """ONNX ``Gemm``: ``Y = alpha * A' @ B' + beta * C`` (every attribute, opset >= 13).

    Parameters
    ----------
    A : (M, K) float32/float64, or (K, M) with ``trans_a``
    B : (K, N), or (N, K) with ``trans_b``; dtype of A
    C : optional, dtype of A, unidirectionally broadcastable to (M, N):
        shape (), (1,), (N,), (1, N), (M, 1) or (M, N) (ONNX rule)
    alpha, beta : real, each first rounded to float32 (ONNX attributes)
    trans_a, trans_b : bool (ONNX ``transA`` / ``transB`` 0/1)
    precision : {"reference", "fast"}

    Returns
    -------
    Y : (M, N), dtype of A.

    Arithmetic
    ----------
    "reference": per output, the products A'[m, k] * B'[k, n] in float64
    (exact for float32), summed sequentially for k = 0..K-1 from +0.0;
    times alpha (float64, one rounding; exact when alpha = 1); plus
    beta * C[m, n] (float64 product then sum, each rounded); one final
    rounding (half-even) to the dtype.  "fast": NumPy/BLAS in the dtype.
    """
    check_precision(precision)
    from .._errors import ParameterError
    from .._validate import check_choice
    from .activations import _f32_param
    alpha, beta = _f32_param("alpha", alpha), _f32_param("beta", beta)
    for name, v in (("trans_a", trans_a), ("trans_b", trans_b)):
        check_choice(name, v, (False, True))
    as_float_array("A", A, ndim=2)
    as_float_array("B", B, ndim=2)
    if C is not None:
        as_float_array("C", C, ndim=(0, 1, 2))
    check_same_dtype([("A", A), ("B", B), ("C", C)])
    a = A.T if trans_a else A
    bm = B.T if trans_b else B
    if a.shape[1] != bm.shape[0]:
        raise ShapeError(f"inner dimensions differ: A' is {a.shape}, B' is {bm.shape} "
                         f"(A {describe(A)}, trans_a={bool(trans_a)}; B {describe(B)}, "
                         f"trans_b={bool(trans_b)})")
    m, n = a.shape[0], bm.shape[1]
    if C is not None:
        try:
            if np.broadcast_shapes(C.shape, (m, n)) != (m, n):
                raise ValueError
        except ValueError:
            raise ShapeError(f"C {describe(C)} does not broadcast to (M, N) = ({m}, {n})") \
                from None
    if precision == "fast":
        y = x_dt = a.dtype.type(alpha) * (a @ bm) if alpha != 1.0 else a @ bm
        if C is not None:
            y = y + (C if beta == 1.0 else a.dtype.type(beta) * C)
        del x_dt
        return np.asarray(y, dtype=A.dtype)
    if not np.isfinite(alpha) or not np.isfinite(beta):
        raise ParameterError("alpha and beta must be finite")
    acc = dense_acc64(np.ascontiguousarray(a), np.ascontiguousarray(bm.T)) * alpha
    if C is not None:
        acc = acc + beta * C.astype(np.float64)
    return acc.astype(A.dtype)


def matmul(A, B, *, precision="reference"):
    """ONNX ``MatMul`` (NumPy ``matmul`` semantics): batched, broadcast, 1-D operands.

    Parameters
    ----------
    A : (..., M, K) or (K,); B : (..., K, N) or (K,); same float dtype.
        A 1-D A is (1, K) with the 1 removed from the result, a 1-D B is
        (K, 1) likewise; the batch dimensions broadcast (NumPy rules).
    precision : {"reference", "fast"}

    Returns
    -------
    ndarray of the broadcast shape, dtype of A.

    Arithmetic: "reference": every output element is the sequential float64
    sum over k = 0..K-1 of the exact products (as :func:`dense`), from
    +0.0, rounded once (half-even) to the dtype.  "fast": ``np.matmul``.
    """
    check_precision(precision)
    as_float_array("A", A)
    as_float_array("B", B)
    check_same_dtype([("A", A), ("B", B)])
    if A.ndim == 0 or B.ndim == 0:
        raise ShapeError(f"MatMul operands must have at least 1 dimension (A {describe(A)}, "
                         f"B {describe(B)})")
    a = A[None, :] if A.ndim == 1 else A
    b = B[:, None] if B.ndim == 1 else B
    if a.shape[-1] != b.shape[-2]:
        raise ShapeError(f"inner dimensions differ: A {describe(A)}, B {describe(B)}")
    try:
        batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    except ValueError:
        raise ShapeError(f"batch dimensions do not broadcast: A {describe(A)}, "
                         f"B {describe(B)}") from None
    if precision == "fast":
        return np.matmul(A, B)
    ab = np.broadcast_to(a, batch + a.shape[-2:])
    bb = np.broadcast_to(b, batch + b.shape[-2:])
    out = np.empty(batch + (a.shape[-2], b.shape[-1]), dtype=A.dtype)
    for idx in np.ndindex(*batch):
        out[idx] = dense_acc64(np.ascontiguousarray(ab[idx]),
                               np.ascontiguousarray(bb[idx].T)).astype(A.dtype)
    if A.ndim == 1:
        out = out[..., 0, :]
    if B.ndim == 1:
        out = out[..., 0]
    return out
