"""2-D convolution (cross-correlation, kernel not flipped: FACTS.md §3.1)."""

import numpy as np

from .._errors import ParameterError, ShapeError
from .._validate import as_float_array, check_choice, check_int, check_same_dtype, describe
from ..kernels.linear import conv_rounded
from ._common import (check_hook_result, check_layout, check_precision, check_vector,
                      from_nchw, pair, resolve_padding, to_nchw, weight_operand)

__all__ = ["conv2d", "conv1d", "conv2d_setup", "ALGORITHMS"]

#: conv2d algorithms; "winograd" is F(2x2, 3x3), "winograd4" F(4x4, 3x3).
ALGORITHMS = ("direct", "im2col", "fft", "winograd", "winograd2", "winograd4")


def _canonical_algorithm(algorithm):
    check_choice("algorithm", algorithm, ALGORITHMS)
    return "winograd2" if algorithm == "winograd" else algorithm


def _by_algorithm(x, W, b, algorithm, precision, stride, padding, dilation, groups, layout):
    """conv2d by an explicitly chosen algorithm (see :func:`conv2d`)."""
    xc, stride, dilation, groups, pads = conv2d_setup(x, W, b, stride, padding, dilation,
                                                      groups, layout)
    if algorithm == "direct":
        if precision != "reference":
            raise ParameterError("algorithm='direct' is the reference arithmetic (float64 "
                                 "sequential sums); precision='fast' runs im2col + BLAS")
        return conv2d(x, W, b, stride=stride, padding=pads, dilation=dilation, groups=groups,
                      layout=layout)
    dt = x.dtype
    work = np.dtype(np.float64) if precision == "reference" else dt
    if algorithm == "im2col":
        y = _im2col_conv_fast(_pad(xc, pads, work), W.astype(work, copy=False),
                              None if b is None else b.astype(work), stride, dilation, groups)
        return from_nchw(y.astype(dt, copy=False), layout)
    if algorithm.startswith("winograd"):
        m = int(algorithm[-1])
        if W.shape[2:] != (3, 3) or stride != (1, 1) or dilation != (1, 1):
            raise ParameterError(
                f"algorithm={algorithm!r} (Winograd F({m}x{m}, 3x3)) needs a 3x3 kernel, "
                f"stride 1 and dilation 1; got kernel {W.shape[2]}x{W.shape[3]}, stride "
                f"{stride}, dilation {dilation} (W {describe(W)}); use 'direct', 'im2col' or "
                f"'fft'")
        from ._conv_winograd import winograd_conv

        def run(xg, Wg):
            return winograd_conv(xg, Wg, m, work, fast=precision == "fast")
    else:
        from ._conv_fft import fft_conv

        def run(xg, Wg):
            return fft_conv(xg, Wg, stride, dilation, work, fast=precision == "fast")
    xp = _pad(xc, pads, work)
    cg, og = W.shape[1], W.shape[0] // groups
    y = np.concatenate([run(xp[:, j * cg:(j + 1) * cg], W[j * og:(j + 1) * og])
                        for j in range(groups)], axis=1)
    if b is not None:
        y += b.astype(work)[None, :, None, None]
    return from_nchw(y.astype(dt, copy=False), layout)


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
           precision="reference", algorithm=None):
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

    algorithm : None, "direct", "im2col", "fft", "winograd" (= "winograd2",
        F(2x2, 3x3)) or "winograd4" (F(4x4, 3x3)); keyword only.
        None (default): the arithmetic above (``precision`` chooses direct
        or im2col; a compressed weight's hook runs).  An explicit algorithm
        decodes a compressed ``W`` (``dequantize()``) and runs that
        algorithm with working precision float64 (``precision=
        "reference"``: one rounding to the output dtype at the end) or the
        data dtype (``"fast"``).  "direct" is the reference above (fast
        refused); "im2col": im2col + one GEMM per group (BLAS, any order);
        "fft": radix-2 FFT convolution (:mod:`refcomp.layers._conv_fft`);
        "winograd*": Lavin & Gray's minimal filtering
        (:mod:`refcomp.layers._conv_winograd`; 3x3 kernels, stride 1 and
        dilation 1 only, any padding and groups; anything else is a
        ParameterError).  Each is within the bound of
        :func:`refcomp.layers.conv_bounds.conv2d_error_bound` of the exact
        real result (FFT and Winograd are not bit-identical to direct
        convolution), the bias added in the working precision.
    """
    check_precision(precision)
    if algorithm is not None:
        algorithm = _canonical_algorithm(algorithm)
        if not isinstance(W, np.ndarray):
            W, _ = weight_operand(W, "none")       # decoded: the algorithm runs on it
        return _by_algorithm(x, W, b, algorithm, precision, stride, padding, dilation, groups,
                             layout)
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
    # float64 sums + float64 bias, one rounding (kernels.linear.conv_rounded).
    y = conv_rounded(_pad(xc, pads, x.dtype), W, b, stride, dilation, groups, x.dtype,
                     exact_products=x.dtype == np.float32 and W.dtype == np.float32)
    return from_nchw(y, layout)


def conv1d(x, W, b=None, *, stride=1, padding=0, dilation=1, groups=1, precision="reference"):
    """1-D convolution (cross-correlation) of (N, C, L) with W (O, C/groups, k): ONNX ``Conv``
    with one spatial axis.

    Parameters
    ----------
    x : (N, C, L) float32/float64; W : (O, C/groups, k); b : (O,) optional
    stride, dilation : int >= 1
    padding : int, (begin, end), "valid", "same" / "same_upper" or
        "same_lower" (ONNX ``auto_pad``: out = ceil(L / stride), the odd
        pixel at the end / beginning)
    groups : int
    precision : {"reference", "fast"}

    Returns
    -------
    y : (N, O, OL), dtype of x, ``OL = floor((L + pads - (k-1)*d - 1) / s) + 1``.

    Arithmetic: exactly :func:`conv2d` on (N, C, 1, L) and (O, C/g, 1, k)
    (its reference order with a single kernel row is: channel, then kernel
    column, each sequential; one rounding), reshaped back (exact).
    """
    from ._pool_nd import resolve_padding_nd, tuple_n
    check_precision(precision)
    as_float_array("x", x, ndim=3)
    if not isinstance(W, np.ndarray):
        W, _ = weight_operand(W, "none")
    as_float_array("W", W, ndim=3)
    if b is not None:
        as_float_array("b", b, ndim=1)
    check_same_dtype([("x", x), ("W", W), ("b", b)])
    g = check_int("groups", groups, lo=1)
    if W.shape[1] * g != x.shape[1] or W.shape[0] % g:
        raise ShapeError(f"W expects {W.shape[1]} input channels per group x {g} groups, x has "
                         f"{x.shape[1]} (x {describe(x)} NCL, W {describe(W)} OIL)")
    check_vector("b", b, W.shape[0], W, "one bias per output channel of W", ref_name="W")
    (s,) = tuple_n("stride", stride, 1)
    (d,) = tuple_n("dilation", dilation, 1)
    if isinstance(padding, (tuple, list)) and len(padding) == 2:
        padding = (tuple(padding),)
    ((lo, hi),) = resolve_padding_nd(padding, x.shape[2:], (W.shape[2],), (s,), (d,))
    if x.shape[2] + lo + hi < (W.shape[2] - 1) * d + 1:
        raise ShapeError(f"padded input length {x.shape[2] + lo + hi} is smaller than the "
                         f"dilated kernel {(W.shape[2] - 1) * d + 1} (x {describe(x)}, "
                         f"W {describe(W)})")
    y = conv2d(x[:, :, None, :], W[:, :, None, :], b, stride=(1, s), padding=((0, 0), (lo, hi)),
               dilation=(1, d), groups=groups, precision=precision)
    return np.ascontiguousarray(y[:, :, 0, :])
