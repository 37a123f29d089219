"""2-D convolution (cross-correlation, kernel not flipped: FACTS.md §3.1)."""

import numpy as np

from .._errors import ShapeError
from .._validate import as_float_array, check_int, check_same_dtype, describe
from ..kernels.linear import conv_acc64
from ._common import (check_hook_result, check_layout, check_precision, check_vector,
                      from_nchw, pair, resolve_padding, to_nchw, weight_operand)

__all__ = ["conv2d", "conv2d_setup"]


def conv2d_setup(x, W, b, stride, padding, dilation, groups, layout):
    """Validate and normalise conv2d arguments (shared with sparse/quantized paths).

    Returns ``(x_nchw, stride, dilation, groups, pads)`` with pads
    ``((top, bottom), (left, right))``.
    """
    check_layout(layout)
    as_float_array("x", x, ndim=4)
    as_float_array("W", W, ndim=4)
    if b is not None:
        as_float_array("b", b, ndim=1)
    check_same_dtype([("x", x), ("W", W), ("b", b)])
    stride = pair("stride", stride)
    dilation = pair("dilation", dilation)
    groups = check_int("groups", groups, lo=1)
    xc = to_nchw(x, layout)
    c_in = xc.shape[1]
    o, cg = W.shape[0], W.shape[1]
    if c_in % groups or o % groups:
        raise ShapeError(f"groups={groups} must divide input channels {c_in} and output "
                         f"channels {o} (x {describe(x)}, W {describe(W)})")
    if cg * groups != c_in:
        raise ShapeError(f"W expects {cg} input channels per group x {groups} groups = "
                         f"{cg * groups}, x has {c_in} (x {describe(x)} {layout}, "
                         f"W {describe(W)} OIHW)")
    check_vector("b", b, o, W, "one bias per output channel of W", ref_name="W")
    k_hw = W.shape[2:]
    pads = resolve_padding(padding, xc.shape[2:], k_hw, stride, dilation)
    for axis, (lo, hi) in enumerate(pads):
        eff = (k_hw[axis] - 1) * dilation[axis] + 1
        if xc.shape[2 + axis] + lo + hi < eff:
            raise ShapeError(f"padded input size {xc.shape[2 + axis] + lo + hi} along "
                             f"{'HW'[axis]} is smaller than the dilated kernel {eff} "
                             f"(x {describe(x)}, W {describe(W)})")
    return xc, stride, dilation, groups, pads


def _pad(xc, pads, dtype):
    (t, bo), (le, r) = pads
    xc = xc.astype(dtype, copy=False)
    if t == bo == le == r == 0:
        return xc            # np.pad would copy even for zero widths
    return np.pad(xc, ((0, 0), (0, 0), (t, bo), (le, r)))


def _im2col_conv_fast(xp, W, b, stride, dilation, groups, chunk_bytes=1 << 24):
    # Channels-last im2col gathered straight from NCHW (kernels.im2col), one
    # BLAS GEMM per group, results scattered back to NCHW with the bias; in
    # batch chunks so the column matrix stays around 16 MB whatever the batch.
    from ..kernels.im2col import im2col_nchw, scatter_nchw
    n, c, hp, wp = xp.shape
    o, cg, kh, kw = W.shape
    og = o // groups
    oh = (hp - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (wp - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    xp = np.ascontiguousarray(xp)
    out = np.empty((n, o, oh, ow), dtype=xp.dtype)
    step = max(1, chunk_bytes // max(1, oh * ow * cg * kh * kw * xp.dtype.itemsize))
    # (og, kh*kw*cg) so that the GEMM result is (og, pixels): every output
    # plane is then one contiguous run for the scatter back to NCHW.
    wms = [np.ascontiguousarray(W[g * og:(g + 1) * og].transpose(0, 2, 3, 1).reshape(og, -1))
           for g in range(groups)]
    bias = None if b is None else np.ascontiguousarray(b)
    for s0 in range(0, n, step):
        s1 = min(n, s0 + step)
        for g in range(groups):
            cols = im2col_nchw(xp, s0, s1, g * cg, cg, kh, kw, stride, dilation, oh, ow)
            res = wms[g] @ cols.reshape(-1, kh * kw * cg).T
            scatter_nchw(res, out, bias, s0, g * og)
    return out


def conv2d(x, W, b=None, *, stride=1, padding=0, dilation=1, groups=1, layout="NCHW",
           precision="reference"):
    """2-D convolution (cross-correlation) with zero padding.

    Parameters
    ----------
    x : ndarray, (N, C, H, W) for ``layout="NCHW"`` or (N, H, W, C) for "NHWC";
        float32 or float64.
    W : ndarray, (O, C/groups, kh, kw) (OIHW, PyTorch/ONNX layout) in both
        layouts; same dtype as x; or a :class:`refcomp.weights.CompressedWeight`
        of that ``weight_shape`` and dtype: its ``conv2d`` compute hook runs
        the convolution when its type has one (e.g. :class:`refcomp.sparse.CSR`:
        :func:`refcomp.sparse.conv2d`, both precisions), else the layer runs
        on ``W.dequantize()``.  Use
        :func:`refcomp.convert.conv2d_from_keras` for Keras HWIO kernels.
    b : ndarray (O,), optional.
    stride, dilation : int or (sh, sw).
    padding : int, (ph, pw), ((top, bottom), (left, right)), "valid" or "same".
        "same" is the TensorFlow rule for any stride: out = ceil(in / s),
        total padding ``max(0, (out-1)*s + (k-1)*d + 1 - in)``, the odd extra
        pixel at the bottom/right (FACTS.md §3.3; equal to PyTorch
        ``padding="same"`` when stride is 1, and ONNX SAME_UPPER).
    groups : int; ``groups == C`` is a depthwise convolution.

    Returns
    -------
    y : (N, O, OH, OW) or (N, OH, OW, O), dtype of x, with
        ``OH = floor((H + top + bottom - (kh-1)*dh - 1) / sh) + 1``.

    Arithmetic
    ----------
    "reference": per output element, the padded input (zeros are real terms,
    so ``0 * inf`` is NaN as in the frameworks) times the kernel, products in
    float64 (exact for float32 data), summed sequentially in float64 over
    input channel c of the group, then kernel row i, then column j (all
    increasing), starting at +0.0; then ``+ b[o]`` in float64 and one
    rounding (half-even) to the output dtype.  A compressed ``W`` with a
    ``conv2d`` hook: the hook's own documented arithmetic (for CSR, the
    reference order above over the stored entries).  "fast": im2col and one BLAS GEMM
    per group in the input dtype (summation order is BLAS's).  NHWC is computed by transposing to NCHW and back (exact).
    """
    check_precision(precision)
    owner = W
    W, hook = weight_operand(W, "conv2d")
    if hook is not None:       # the weight's own convolution, on validated arguments
        xc, st, dil, _, pads = conv2d_setup(x, W, b, stride, padding, dilation, groups, layout)
        y = hook(x, b, stride=stride, padding=padding, dilation=dilation, groups=groups,
                 layout=layout, precision=precision)
        shape = [xc.shape[0], W.shape[0]] + [
            (xc.shape[2 + a] + sum(pads[a]) - dil[a] * (W.shape[2 + a] - 1) - 1) // st[a] + 1
            for a in (0, 1)]
        return check_hook_result(y, shape if layout == "NCHW" else shape[:1] + shape[2:]
                                 + shape[1:2], x.dtype, owner, "conv2d")
    xc, stride, dilation, groups, pads = conv2d_setup(x, W, b, stride, padding, dilation,
                                                      groups, layout)
    if precision == "fast":
        y = _im2col_conv_fast(_pad(xc, pads, x.dtype), W, b, stride, dilation, groups)
        return from_nchw(y, layout)
    acc = conv_acc64(_pad(xc, pads, np.float64), W.astype(np.float64), stride, dilation, groups,
                     exact_products=x.dtype == np.float32 and W.dtype == np.float32)
    if b is not None:
        acc += b.astype(np.float64)[None, :, None, None]
    return from_nchw(acc.astype(x.dtype), layout)
