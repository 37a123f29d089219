"""2-D max and average pooling."""

import numpy as np

from .._errors import ShapeError
from .._validate import as_float_array, describe
from ._common import check_layout, check_precision, from_nchw, pair, resolve_padding, to_nchw

__all__ = ["max_pool2d", "avg_pool2d"]


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


def max_pool2d(x, size, *, stride=None, padding=0, layout="NCHW"):
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

    Returns
    -------
    (N, C, OH, OW) (or NHWC), dtype of x, OH = floor((H + pads - kh) / sh) + 1.

    Arithmetic: exact (a selection, no rounding).  NaN anywhere in a window
    gives NaN (as ``torch.max_pool2d``).  Among equal maxima +0.0 and -0.0
    the result is the first in row-major window order.
    """
    from ..kernels.pool import max_pool_nchw
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
               precision="reference"):
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
