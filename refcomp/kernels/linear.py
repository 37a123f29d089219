"""Reference accumulation kernels for dense and convolution layers.

Arithmetic contract (shared by every caller):

* inputs are float64 arrays whose values came exactly from float32 or
  float64 data (``astype(float64)`` of float32 is exact);
* each product ``x * w`` is formed in float64 (exact when both factors
  came from float32: 24 + 24 <= 53 significand bits, FACTS.md §8);
* products are accumulated in float64, sequentially, starting from +0.0,
  in increasing order of the reduction index; no FMA contraction (Numba
  without ``fastmath`` emits separate multiply and add), except an
  explicit FMA where the caller states that both factors came from float32
  (``exact_products=True``): the product is then exact, so the fused
  operation gives the same bits (:func:`refcomp.kernels._fma.madd`);
* the accumulator is returned in float64: the caller adds the bias and
  rounds once to the output dtype.

Kernels run in parallel over *independent outputs only* (batch rows,
output pixels) and vectorise over output channels, never reordering a
sum, so results are identical for any thread count.  Where the host has
float64 vector FMA (AVX-512 or AVX2, :mod:`refcomp.kernels._tilevec`) the
cache-blocked register-tile drivers of :mod:`refcomp.kernels.linear_tiled`
run (same bits: one output per vector lane, each its own sequential sum);
elsewhere, and as their twin, the scalar kernels below.

Private: callers pass C-contiguous float64 arrays of consistent shapes.
"""

import numba
import numpy as np

from ._fma import madd
from ._tilevec import LANES
from .linear_tiled import conv_tiled, matmul_tiled

__all__ = ["matmul_acc64", "matmul_acc64_twin", "conv_acc64", "conv_acc64_twin", "conv_rounded"]


@numba.njit(cache=True, parallel=True)
def _matmul_acc64_kernel(x, wt, out, fused):
    n, k = x.shape
    m = wt.shape[1]
    for r in numba.prange(n):
        acc = np.zeros(m, dtype=np.float64)
        for i in range(k):
            xv = x[r, i]
            for o in range(m):
                acc[o] = madd(xv, wt[i, o], acc[o], fused)
        for o in range(m):
            out[r, o] = acc[o]


def _lanes(lanes):
    # None: the host's choice; 0: the scalar kernel; 16 / 8: that tile width.
    return LANES if lanes is None else lanes


def matmul_acc64(x, wt, *, exact_products=False, lanes=None):
    """float64 accumulator of ``x @ wt``: x (N, K), wt (K, M) -> (N, M) float64
    (x float32 or float64, widened exactly; wt float64).

    ``out[r, o] = (((0 + x[r,0]*wt[0,o]) + x[r,1]*wt[1,o]) + ...)``, in float64.
    ``exact_products``: both operands hold float32 values (then FMA, same bits).
    ``lanes``: kernel choice, for tests and benchmarks (None: the host's
    vector tiles, 0: the scalar kernel, 16 or 8: tiles of that many
    columns); every choice gives the same bits.
    """
    lanes = _lanes(lanes)
    if lanes and x.shape[0] and x.shape[1] and wt.shape[1]:
        # x may stay float32: the tiles widen it exactly as they read it.
        if x.dtype not in (np.float32, np.float64):
            x = x.astype(np.float64)
        return matmul_tiled(np.ascontiguousarray(x), np.ascontiguousarray(wt, dtype=np.float64),
                            lanes, exact_products=exact_products)
    x = np.asarray(x, dtype=np.float64)
    out = np.empty((x.shape[0], wt.shape[1]), dtype=np.float64)
    _matmul_acc64_kernel(x, wt, out, bool(exact_products))
    return out


def matmul_acc64_twin(x, wt):
    """NumPy twin of :func:`matmul_acc64` (same additions in the same order)."""
    acc = np.zeros((x.shape[0], wt.shape[1]), dtype=np.float64)
    for i in range(x.shape[1]):
        acc += x[:, i:i + 1] * wt[i][None, :]
    return acc


@numba.njit(cache=True, parallel=True)
def _conv_acc64_kernel(xp, wk, sh, sw, dh, dw, groups, kh, kw, oh_n, ow_n, out, fused):
    # xp: (N, C, Hp, Wp) padded input; wk: (G, Cg*kh*kw, Og); out: (N, O, OH, OW)
    n_batch, c_in = xp.shape[0], xp.shape[1]
    cg = c_in // groups
    og = wk.shape[2]
    total = n_batch * oh_n
    for job in numba.prange(total):
        n = job // oh_n
        oh = job % oh_n
        acc = np.empty(og, dtype=np.float64)
        for g in range(groups):
            for ow in range(ow_n):
                for o in range(og):
                    acc[o] = 0.0
                for c in range(cg):
                    for i in range(kh):
                        row = oh * sh + i * dh
                        for j in range(kw):
                            xv = xp[n, g * cg + c, row, ow * sw + j * dw]
                            kidx = (c * kh + i) * kw + j
                            for o in range(og):
                                acc[o] = madd(xv, wk[g, kidx, o], acc[o], fused)
                for o in range(og):
                    out[n, g * og + o, oh, ow] = acc[o]


def _conv_geometry(xp_shape, w_shape, stride, dilation):
    kh, kw = w_shape[2], w_shape[3]
    oh = (xp_shape[2] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (xp_shape[3] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    return kh, kw, oh, ow


def _grouped_kernel_matrix(w64, groups):
    # (O, Cg, kh, kw) -> (G, Cg*kh*kw, Og): reduction index (c, i, j) row-major.
    o, cg, kh, kw = w64.shape
    og = o // groups
    return np.ascontiguousarray(
        w64.reshape(groups, og, cg * kh * kw).transpose(0, 2, 1))


def conv_acc64(xp, w64, stride, dilation, groups, *, exact_products=False, lanes=None):
    """float64 accumulator of a 2-D cross-correlation (no bias), NCHW.

    xp : (N, C, Hp, Wp) float64, already zero-padded.
    w64 : (O, C/groups, kh, kw) float64.
    Reduction order for output (n, o, oh, ow): c in [0, C/groups), then
    kernel row i, then column j, all increasing; padded zeros are real
    terms (so ``0 * inf`` gives NaN exactly as in the frameworks).
    ``exact_products``: xp and w64 hold float32 values (then FMA, same bits;
    measured 5-7 % faster on the 32 -> 64 conv of the benchmark CNN).
    ``lanes``: kernel choice as in :func:`matmul_acc64` (same bits).
    """
    kh, kw, oh, ow = _conv_geometry(xp.shape, w64.shape, stride, dilation)
    out = np.empty((xp.shape[0], w64.shape[0], oh, ow), dtype=np.float64)
    if out.size == 0:
        return out
    lanes = _lanes(lanes)
    if lanes and w64.shape[1] * kh * kw:
        # A float64 copy of the input (exact) lets the tiles broadcast straight
        # from memory: 32 -> 64 conv, 100 images, one thread 51.6 -> 45.4 ms
        # for a 0.6 ms copy.
        return conv_tiled(np.ascontiguousarray(xp, dtype=np.float64),
                          _grouped_kernel_matrix(w64, groups), out,
                          stride, dilation, kh, kw, lanes, exact_products=exact_products)
    _conv_acc64_kernel(np.ascontiguousarray(xp), _grouped_kernel_matrix(w64, groups),
                       stride[0], stride[1], dilation[0], dilation[1], groups, kh, kw,
                       oh, ow, out, bool(exact_products))
    return out


def conv_rounded(xp, w, b, stride, dilation, groups, out_dtype, *, exact_products=False,
                 lanes=None):
    """The reference convolution rounded once: ``out_dtype(conv_acc64 + float64(b))``.

    xp : (N, C, Hp, Wp) float32 or float64, already zero-padded (widened
    exactly to float64); w (O, C/groups, kh, kw) and b
    (O,) or None, float32 or float64.  Per output: the float64 sum of
    :func:`conv_acc64` (same order, same FMA rule), then ``+ b[o]`` in
    float64, then one rounding (half-even) to ``out_dtype``; the vector
    path fuses the three steps in its store, the scalar path runs them as
    three NumPy passes (same operations, same bits).
    """
    w64 = w.astype(np.float64)
    b64 = None if b is None else b.astype(np.float64)
    kh, kw, oh, ow = _conv_geometry(xp.shape, w.shape, stride, dilation)
    lanes = _lanes(lanes)
    shape = (xp.shape[0], w.shape[0], oh, ow)
    if lanes and w.shape[1] * kh * kw and all(shape):
        # A float64 copy of the input (exact) lets the tiles broadcast straight
        # from memory: 32 -> 64 conv, 100 images, one thread 51.6 -> 45.4 ms
        # for a 0.6 ms copy.
        return conv_tiled(np.ascontiguousarray(xp, dtype=np.float64),
                          _grouped_kernel_matrix(w64, groups),
                          np.empty(shape, dtype=out_dtype), stride, dilation, kh, kw, lanes,
                          bias=b64, exact_products=exact_products)
    acc = conv_acc64(xp.astype(np.float64), w64, stride, dilation, groups,
                     exact_products=exact_products, lanes=0)
    if b64 is not None:
        acc += b64[None, :, None, None]
    return acc.astype(out_dtype)


def conv_acc64_twin(xp, w64, stride, dilation, groups):
    """NumPy twin of :func:`conv_acc64`: im2col then the same ordered additions."""
    kh, kw, oh, ow = _conv_geometry(xp.shape, w64.shape, stride, dilation)
    n, c = xp.shape[:2]
    cg = c // groups
    wk = _grouped_kernel_matrix(w64, groups)
    og = wk.shape[2]
    out = np.empty((n, w64.shape[0], oh, ow), dtype=np.float64)
    for g in range(groups):
        acc = np.zeros((n, oh, ow, og), dtype=np.float64)
        for cc in range(cg):
            for i in range(kh):
                for j in range(kw):
                    r0, c0 = i * dilation[0], j * dilation[1]
                    patch = xp[:, g * cg + cc,
                               r0:r0 + (oh - 1) * stride[0] + 1:stride[0],
                               c0:c0 + (ow - 1) * stride[1] + 1:stride[1]]
                    acc += patch[..., None] * wk[g, (cc * kh + i) * kw + j][None, None, None, :]
        out[:, g * og:(g + 1) * og] = acc.transpose(0, 3, 1, 2)
    return out
