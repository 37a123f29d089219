"""Max and average pooling: 2-D (NCHW / NHWC) and N-D channels-first (1 to 3 axes)."""

import numpy as np

from .._errors import ShapeError
from .._validate import as_float_array, check_choice, describe
from ._common import check_layout, check_precision, from_nchw, pair, resolve_padding, to_nchw
from ._pool_nd import avg_pool_nd, max_pool_nd, resolve_padding_nd, tuple_n

__all__ = ["max_pool2d", "avg_pool2d", "max_pool", "avg_pool", "max_pool1d", "avg_pool1d"]


def _setup_nd(x, size, stride, padding, dilation, nd=None):
    as_float_array("x", x, ndim=(3, 4, 5) if nd is None else nd + 2)
    n = x.ndim - 2
    k = tuple_n("size", size, n)
    s = k if stride is None else tuple_n("stride", stride, n)
    d = tuple_n("dilation", dilation, n)
    pads = resolve_padding_nd(padding, x.shape[2:], k, s, d)
    return k, s, d, pads


def _check_flag(name, value):
    check_choice(name, value, (False, True))
    return bool(value)


def max_pool(x, size, *, stride=None, padding=0, dilation=1, ceil_mode=False,
             return_indices=False, storage_order=0):
    """N-D max pooling, channels first: ONNX ``MaxPool`` with every attribute.

    Parameters
    ----------
    x : ndarray (N, C, D1[, D2[, D3]]), float32 or float64 (1 to 3 spatial axes)
    size : int or one int per spatial axis (ONNX ``kernel_shape``)
    stride : int or per axis; default ``size`` (PyTorch / Keras default;
        ONNX's default is 1, pass it)
    padding : int, per-axis ints, per-axis (begin, end) pairs, "valid",
        "same" / "same_upper" or "same_lower" (ONNX ``pads`` / ``auto_pad``;
        see :func:`refcomp.layers._pool_nd.resolve_padding_nd`).  Padding
        must be smaller than the dilated window.
    dilation : int or per axis, >= 1 (ONNX ``dilations``)
    ceil_mode : bool (ONNX ``ceil_mode`` 0/1): output size rounded up, a
        last window that would start in the right padding dropped; window
        positions beyond the padding are ignored.
    return_indices : bool, also return ONNX's ``Indices`` output
    storage_order : {0, 1}: indices row-major (0) or with the spatial axes
        column-major (1), ONNX ``storage_order``

    Returns
    -------
    y : (N, C, O1, ...), dtype of x; and with ``return_indices`` an int64
        array of the same shape: flat index into x of each maximum.

    Arithmetic: exact (a selection).  Padding and positions beyond it never
    win; NaN in a window gives NaN (the first NaN's index); among equal
    values (+0.0 / −0.0) the first in row-major window order wins.  A
    window with no input element is a ShapeError.
    """
    k, s, d, pads = _setup_nd(x, size, stride, padding, dilation)
    ceil_mode = _check_flag("ceil_mode", ceil_mode)
    return_indices = _check_flag("return_indices", return_indices)
    check_choice("storage_order", storage_order, (0, 1))
    y, idx = max_pool_nd(x, k, s, d, pads, ceil_mode, return_indices, int(storage_order))
    return (y, idx) if return_indices else y


def avg_pool(x, size, *, stride=None, padding=0, dilation=1, ceil_mode=False,
             count_include_pad=True, precision="reference"):
    """N-D average pooling, channels first: ONNX ``AveragePool`` with every attribute.

    Parameters as :func:`max_pool`; ``count_include_pad`` as
    :func:`avg_pool2d` (ONNX's default is 0: pass False for ONNX graphs).

    Returns
    -------
    y : (N, C, O1, ...), dtype of x.

    Arithmetic
    ----------
    Per output, in a working dtype (float64 for "reference", x's dtype for
    "fast"): the real input elements of the window summed sequentially in
    row-major window order from +0.0 (each addition rounded to the working
    dtype), then one IEEE division by the count: real elements, plus the
    explicit padding positions when ``count_include_pad`` (positions beyond
    the padding that ``ceil_mode`` reaches never count, as ONNX and
    PyTorch).  "reference" then rounds the float64 quotient once (half-even)
    to x's dtype.  NaN propagates; an all-zero window gives +0.0.
    """
    check_precision(precision)
    k, s, d, pads = _setup_nd(x, size, stride, padding, dilation)
    ceil_mode = _check_flag("ceil_mode", ceil_mode)
    count_include_pad = _check_flag("count_include_pad", count_include_pad)
    work = np.float64 if precision == "reference" else x.dtype
    return avg_pool_nd(x, k, s, d, pads, ceil_mode, count_include_pad, work).astype(x.dtype)


def max_pool1d(x, size, *, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False, storage_order=0):
    """1-D max pooling of (N, C, L): :func:`max_pool` with one spatial axis."""
    as_float_array("x", x, ndim=3)
    return max_pool(x, size, stride=stride, padding=padding, dilation=dilation,
                    ceil_mode=ceil_mode, return_indices=return_indices,
                    storage_order=storage_order)


def avg_pool1d(x, size, *, stride=None, padding=0, dilation=1, ceil_mode=False,
               count_include_pad=True, precision="reference"):
    """1-D average pooling of (N, C, L): :func:`avg_pool` with one spatial axis."""
    as_float_array("x", x, ndim=3)
    return avg_pool(x, size, stride=stride, padding=padding, dilation=dilation,
                    ceil_mode=ceil_mode, count_include_pad=count_include_pad,
                    precision=precision)


def _nd_from_2d(x, layout, fn, padding, **kw):
    """A 2-D pooling call with new options, through the N-D engine (NHWC transposed)."""
    check_layout(layout)
    as_float_array("x", x, ndim=4)
    xc = np.ascontiguousarray(to_nchw(x, layout))
    if isinstance(padding, (tuple, list)) and len(padding) == 2 and \
            not isinstance(padding[0], (tuple, list)):
        padding = tuple(padding)
    out = fn(xc, padding=padding, **kw)
    if isinstance(out, tuple):
        return tuple(from_nchw(o, layout) for o in out)
    return from_nchw(out, layout)


def _setup(x, size, stride, padding, layout):
    check_layout(layout)
    as_float_array("x", x, ndim=4)
    k = pair("size", size)
    s = k if stride is None else pair("stride", stride)
    xc = to_nchw(x, layout)
    pads = resolve_padding(padding, xc.shape[2:], k, s, (1, 1))
    for axis in (0, 1):
        lo, hi = pads[axis]
        if lo >= k[axis] or hi >= k[axis]:
            # A window made only of padding has no defined max/average.
            raise ShapeError(f"padding {pads[axis]} must be smaller than the pool size "
                             f"{k[axis]} along {'HW'[axis]}")
        if xc.shape[2 + axis] + lo + hi < k[axis]:
            raise ShapeError(f"padded input smaller than the pool window {k} (x {describe(x)})")
    return xc, k, s, pads


def _windows(xp, k, s):
    win = np.lib.stride_tricks.sliding_window_view(xp, k, axis=(2, 3))
    return win[:, :, ::s[0], ::s[1]]           # (N, C, OH, OW, kh, kw)


def max_pool2d(x, size, *, stride=None, padding=0, layout="NCHW", dilation=1, ceil_mode=False,
               return_indices=False, storage_order=0):
    """2-D max pooling.

    Parameters
    ----------
    x : (N, C, H, W) or (N, H, W, C) float32/float64.
    size : int or (kh, kw).
    stride : int or pair; default ``size`` (PyTorch ``MaxPool2d`` and Keras
        ``MaxPooling2D`` both default the stride to the pool size).
    padding : as :func:`refcomp.layers.conv2d` ("same" = TensorFlow rule);
        padded positions are -inf (PyTorch "implicit negative infinity
        padding", TF "padded values ignored"), never the maximum.  Padding
        must be smaller than the window.
    dilation, ceil_mode, return_indices, storage_order : as :func:`max_pool`
        (defaults: today's behaviour); any non-default value runs the N-D
        engine of :func:`max_pool` (same selection rule, same bits).

    Returns
    -------
    (N, C, OH, OW) (or NHWC), dtype of x, OH = floor((H + pads - kh) / sh) + 1.

    Arithmetic: exact (a selection, no rounding).  NaN anywhere in a window
    gives NaN (as ``torch.max_pool2d``).  Among equal maxima +0.0 and -0.0
    the result is the first in row-major window order.
    """
    from ..kernels.pool import max_pool_nchw
    if dilation != 1 or ceil_mode or return_indices or storage_order:
        return _nd_from_2d(x, layout, max_pool, padding, size=size, stride=stride,
                           dilation=dilation, ceil_mode=ceil_mode,
                           return_indices=return_indices, storage_order=storage_order)
    xc, k, s, pads = _setup(x, size, stride, padding, layout)
    if any(p for pair in pads for p in pair):
        xp = np.pad(xc, ((0, 0), (0, 0)) + pads, constant_values=-np.inf)
    else:
        xp = np.ascontiguousarray(xc)
    oh = (xp.shape[2] - k[0]) // s[0] + 1
    ow = (xp.shape[3] - k[1]) // s[1] + 1
    # First maximum in row-major window order, NaN propagating (kernels.pool).
    return from_nchw(max_pool_nchw(xp, k[0], k[1], s[0], s[1], oh, ow), layout)


def avg_pool2d(x, size, *, stride=None, padding=0, count_include_pad=True, layout="NCHW",
               precision="reference", dilation=1, ceil_mode=False):
    """2-D average pooling.

    Parameters
    ----------
    x : ndarray (N, C, H, W) ("NCHW") or (N, H, W, C) ("NHWC"), float32 or float64
    size, stride, padding, layout : as :func:`max_pool2d`; padded values are
        +0.0 and are summed like real elements.
    count_include_pad : bool, default True
        True divides by kh*kw (PyTorch ``AvgPool2d`` default); False divides
        by the number of real input elements in the window (Keras/TF
        ``AveragePooling2D(padding="same")`` and ONNX ``AveragePool`` default).
        Without padding both agree.
    precision : {"reference", "fast"}
    dilation, ceil_mode : as :func:`avg_pool` (defaults: today's behaviour);
        a non-default value runs the N-D engine of :func:`avg_pool`, whose
        arithmetic is the one below.

    Returns
    -------
    y : (N, C, OH, OW) (or NHWC), dtype of x, OH = floor((H + pads - kh) / sh) + 1.

    Arithmetic
    ----------
    Both precisions compute, per output, the same two steps in a working
    dtype: (1) a sequential sum of the kh*kw window elements (padding
    included) in row-major window order (i, then j), starting at +0.0, each
    addition rounded to the working dtype; (2) one IEEE division (correctly
    rounded, half-even) by the count (kh*kw, or the number of real
    elements), an exact small integer in that dtype.

    - "reference": working dtype float64; the float64 quotient is then
      rounded once (half-even) to the input dtype.
    - "fast": working dtype is the input dtype (float32 input: every
      addition and the division are rounded to float32); no ``mean``, no
      pairwise summation, no final conversion.

    For float64 input the two precisions therefore give identical bits.
    NaN in a window gives NaN, as does +inf with -inf; a window whose
    elements are all zeros (of either sign) gives +0.0, since the sum
    starts at +0.0.
    """
    check_precision(precision)
    if dilation != 1 or ceil_mode:
        return _nd_from_2d(x, layout, avg_pool, padding, size=size, stride=stride,
                           dilation=dilation, ceil_mode=ceil_mode,
                           count_include_pad=count_include_pad, precision=precision)
    xc, k, s, pads = _setup(x, size, stride, padding, layout)
    dt = np.float64 if precision == "reference" else x.dtype
    xp = np.pad(xc.astype(dt, copy=False), ((0, 0), (0, 0)) + pads)
    win = _windows(xp, k, s)
    acc = np.zeros(win.shape[:4], dtype=dt)
    for i in range(k[0]):
        for j in range(k[1]):
            acc += win[..., i, j]
    if count_include_pad:
        count = np.asarray(k[0] * k[1], dtype=dt)
    else:
        ones = np.pad(np.ones(xc.shape[2:], dtype=dt), pads)
        cwin = np.lib.stride_tricks.sliding_window_view(ones, k)[::s[0], ::s[1]]
        count = cwin.sum(axis=(-2, -1))                   # small exact integers
    y = (acc / count).astype(x.dtype)
    return from_nchw(np.ascontiguousarray(y), layout)
