"""Data-movement kernels of the ``precision="fast"`` convolution.

``im2col_nchw`` gathers the receptive fields of an NCHW batch straight into a
channels-last column matrix (fusing the NCHW -> NHWC transpose with im2col);
``scatter_nchw`` writes a GEMM result ``(og, n*oh*ow)`` back into the NCHW
output, adding the bias.  Both are pure copies except the one bias addition
``res + b`` in the array dtype (one IEEE rounding, the same operation NumPy
performs), so the twins give identical bits.  They run in parallel over
batch images, which are independent.

Private: callers pass C-contiguous arrays of consistent shapes and dtypes.
"""

import numba
import numpy as np

__all__ = ["im2col_nchw", "im2col_nchw_twin", "scatter_nchw", "scatter_nchw_twin"]


@numba.njit(cache=True, parallel=True)
def _im2col_kernel(xp, cols, n0, c0, sh, sw, dh, dw):
    nb, oh, ow, kh, kw, cg = cols.shape
    for n in numba.prange(nb):
        for y in range(oh):
            for x in range(ow):
                for i in range(kh):
                    r = y * sh + i * dh
                    for j in range(kw):
                        c = x * sw + j * dw
                        for ch in range(cg):
                            cols[n, y, x, i, j, ch] = xp[n0 + n, c0 + ch, r, c]


def im2col_nchw(xp, n0, n1, c0, cg, kh, kw, stride, dilation, oh, ow):
    """cols[n, y, x, i, j, c] = xp[n0+n, c0+c, y*sh + i*dh, x*sw + j*dw]; shape
    (n1-n0, oh, ow, kh, kw, cg), dtype of ``xp`` (already padded NCHW)."""
    cols = np.empty((n1 - n0, oh, ow, kh, kw, cg), dtype=xp.dtype)
    _im2col_kernel(xp, cols, n0, c0, stride[0], stride[1], dilation[0], dilation[1])
    return cols


def im2col_nchw_twin(xp, n0, n1, c0, cg, kh, kw, stride, dilation, oh, ow):
    """NumPy twin of :func:`im2col_nchw` (strided slices, one copy per (i, j))."""
    xl = xp[n0:n1, c0:c0 + cg].transpose(0, 2, 3, 1)
    cols = np.empty((n1 - n0, oh, ow, kh, kw, cg), dtype=xp.dtype)
    for i in range(kh):
        r0 = i * dilation[0]
        for j in range(kw):
            s0 = j * dilation[1]
            cols[:, :, :, i, j, :] = xl[:, r0:r0 + (oh - 1) * stride[0] + 1:stride[0],
                                        s0:s0 + (ow - 1) * stride[1] + 1:stride[1]]
    return cols


@numba.njit(cache=True, parallel=True)
def _scatter_kernel(res, out, bias, n0, o0, has_bias):
    og = res.shape[0]
    oh, ow = out.shape[2], out.shape[3]
    nb = res.shape[1] // (oh * ow)
    for n in numba.prange(nb):
        base = n * oh * ow
        for o in range(og):
            bo = bias[o0 + o] if has_bias else out.dtype.type(0)
            for y in range(oh):
                for x in range(ow):
                    v = res[o, base + y * ow + x]
                    if has_bias:
                        v = v + bo
                    out[n0 + n, o0 + o, y, x] = v


def scatter_nchw(res, out, bias, n0, o0):
    """out[n0+n, o0+o, y, x] = res[o, (n*oh + y)*ow + x] (+ bias[o0+o]), in place.

    ``res`` is the GEMM result in (og, n*oh*ow) orientation, so each output
    plane is a contiguous run of ``res``."""
    has = bias is not None
    _scatter_kernel(res, out, bias if has else np.zeros(1, out.dtype), n0, o0, has)


def scatter_nchw_twin(res, out, bias, n0, o0):
    """NumPy twin of :func:`scatter_nchw`."""
    oh, ow = out.shape[2], out.shape[3]
    og = res.shape[0]
    blk = res.reshape(og, -1, oh, ow).transpose(1, 0, 2, 3)
    if bias is not None:
        blk = blk + bias[o0:o0 + og][None, :, None, None]
    out[n0:n0 + blk.shape[0], o0:o0 + og] = blk
