"""Cache-blocked vector drivers of the reference dense and convolution sums.

Same contract as :mod:`refcomp.kernels.linear` (read it first): every
output is the float64 sum of its products in increasing reduction order
from +0.0, with the same FMA rule, so the results are bit-identical to
:func:`refcomp.kernels.linear.matmul_acc64` / ``conv_acc64`` and to their
NumPy twins.  What changes is only which outputs share the machine:

* the weights are packed once per call into blocks of L output columns
  (``Bp[g, ob, k, t] = W[g*og + ob*L + t, k]``, zero columns past the end),
  so a block's weights for consecutive k are one contiguous stream;
* the reduction operand of a chunk of rows (batch rows for dense; output
  pixels of one image for conv, gathered im2col-style in the reduction
  order c, i, j) is read by :func:`refcomp.kernels._tilevec.tile`, which
  keeps R x L sums in vector registers, lane = output column;
* a long reduction is cut into blocks of :data:`KC` steps; between blocks
  the float64 accumulators wait in memory (exact), so the per-output order
  of additions is unchanged;
* threads take whole chunks of rows (``prange``), never a part of one sum,
  so results do not depend on the thread count.

Private: callers pass C-contiguous float64 arrays of consistent shapes, with
a non-empty reduction and output.
"""

import numba
import numpy as np

from ._tilevec import ROWS, tile, tile_gathered, tile_rows

__all__ = ["pack_columns", "matmul_tiled", "conv_tiled", "KC"]

#: Reduction steps per block: a packed block of 16 columns is then 64 KiB,
#: held in L2 while the row tiles of a chunk stream past it.
KC = 512
#: Rows (batch rows, output pixels) per parallel job: a multiple of every tile's rows.
_CHUNK = 96


def pack_columns(wk, lanes):
    """(G, K, M) float64 -> (G, ceil(M/lanes), K, lanes), zero-padded columns."""
    g, k, m = wk.shape
    nob = -(-m // lanes)
    padded = np.zeros((g, k, nob * lanes), dtype=np.float64)
    padded[:, :, :m] = wk
    return np.ascontiguousarray(padded.reshape(g, k, nob, lanes).transpose(0, 2, 1, 3))


@numba.njit(cache=True, parallel=True)
def _matmul_kernel(x, bp, out, fused, chunk, kc):
    n, kk = x.shape
    m = out.shape[1]
    nob, lanes = bp.shape[0], bp.shape[2]
    tr = tile_rows(lanes)
    jobs = (n + chunk - 1) // chunk
    for job in numba.prange(jobs):
        r0 = job * chunk
        rn = min(chunk, n - r0)
        cbuf = np.empty((rn, nob * lanes), dtype=np.float64)
        for k0 in range(0, kk, kc):
            k1 = min(kk, k0 + kc)
            for ob in range(nob):
                for p in range(0, rn, tr):
                    tile(x, bp, cbuf, r0 + p, p, min(tr, rn - p), ob, k0, k1, k0 == 0, fused)
        for r in range(rn):
            for o in range(m):
                out[r0 + r, o] = cbuf[r, o]


def matmul_tiled(x, wt, lanes, *, exact_products=False, chunk=None, kc=KC):
    """:func:`refcomp.kernels.linear.matmul_acc64` by register tiles of
    ``lanes`` (16 or 8) columns; x (N, K) and wt (K, M) float64, K, N, M > 0.
    ``chunk`` (rows per job) and ``kc`` (reduction
    block) only move work around: tests vary them, the bits stay."""
    n = x.shape[0]
    out = np.empty((n, wt.shape[1]), dtype=np.float64)
    bp = pack_columns(wt[None], lanes)[0]
    # Enough jobs for two threads, chunks no longer than _CHUNK rows.
    if chunk is None:
        quarter = -(-n // 4)
        chunk = min(_CHUNK, -(-quarter // ROWS) * ROWS)     # whole tiles of 8 (and 6: 96)
    _matmul_kernel(x, bp, out, bool(exact_products), chunk, kc)
    return out


def _offsets(c, hp, wp, kh, kw, dh, dw):
    # Flat offset in one image of the padded input of reduction step
    # k = (c*kh + i)*kw + j, relative to the output pixel's corner.
    cc, ii, jj = np.meshgrid(np.arange(c), np.arange(kh), np.arange(kw), indexing="ij")
    return np.ascontiguousarray(((cc * hp + ii * dh) * wp + jj * dw).ravel().astype(np.int64))


@numba.njit(cache=True, parallel=True)
def _conv_kernel(xp, off, bp, out, bias, has_bias, sh, sw, ow_n, fused, chunk, kc,
                 gathered):
    # xp (N, C, Hp, Wp) float32/float64 (widened exactly); off (K,) from
    # _offsets; bp (G, nob, K, L); out (N, O, OH*OW), any float dtype: the
    # float64 sum (+ bias) is rounded once on the store.
    n_batch, c_in, hp, wp = xp.shape
    groups, nob, kk, lanes = bp.shape
    cg = c_in // groups
    og = out.shape[1] // groups
    pix = out.shape[2]
    tr = tile_rows(lanes)
    xf = xp.reshape(-1)
    per = (pix + chunk - 1) // chunk
    for job in numba.prange(n_batch * per):
        n = job // per
        p0 = (job % per) * chunk
        pn = min(chunk, pix - p0)
        # Without ``gathered``: an im2col tile a[q, k] (reduction order c, i,
        # j; float32 widened exactly), then the tiles read it.  With it, the
        # tiles read the input in place through the offsets (implicit im2col).
        a = np.empty((0 if gathered else pn, kk), dtype=np.float64)
        corner = np.empty(pn, dtype=np.int64)
        cbuf = np.empty((pn, nob * lanes), dtype=np.float64)
        for g in range(groups):
            img = (n * c_in + g * cg) * hp * wp
            for q in range(pn):
                corner[q] = img + ((p0 + q) // ow_n) * sh * wp + ((p0 + q) % ow_n) * sw
            if not gathered:
                for q in range(pn):
                    for k in range(kk):
                        a[q, k] = xf[corner[q] + off[k]]
            for k0 in range(0, kk, kc):
                k1 = min(kk, k0 + kc)
                for ob in range(nob):
                    for q in range(0, pn, tr):
                        if gathered:
                            tile_gathered(xf, off, corner, bp[g], cbuf, q, min(tr, pn - q), ob,
                                          k0, k1, k0 == 0, fused)
                        else:
                            tile(a, bp[g], cbuf, q, q, min(tr, pn - q), ob, k0, k1, k0 == 0,
                                 fused)
            for o in range(og):
                bo = bias[g * og + o] if has_bias else 0.0
                for q in range(pn):
                    v = cbuf[q, o]
                    if has_bias:
                        v = v + bo
                    out[n, g * og + o, p0 + q] = v


def conv_tiled(xp, wk, out, stride, dilation, kh, kw, lanes, *, bias=None,
               exact_products=False, chunk=_CHUNK, kc=KC, gathered=None):
    """Fill ``out`` (N, O, OH, OW) with the sums of
    :func:`refcomp.kernels.linear.conv_acc64` (``+ bias[o]`` in float64 when
    given), rounded once to ``out``'s dtype; ``wk`` is its grouped kernel
    matrix (G, Cg*kh*kw, Og), ``xp`` the padded input, float32 or float64;
    ``chunk`` (output pixels per job) and ``kc`` as in :func:`matmul_tiled`;
    ``gathered``: the tiles read the input in place (implicit im2col) rather
    than an im2col tile; default with 16 lanes only (one thread, 32 -> 64
    3x3 conv, 100 images: 16 lanes 54.6 -> 51.4 ms, 8 lanes 56.8 -> 64.9 ms).
    Every choice gives the same bits."""
    if gathered is None:
        gathered = lanes == 16
    n, o, oh, ow = out.shape
    has = bias is not None
    off = _offsets(xp.shape[1] // wk.shape[0], xp.shape[2], xp.shape[3], kh, kw,
                   dilation[0], dilation[1])
    _conv_kernel(xp, off, pack_columns(wk, lanes), out.reshape(n, o, oh * ow),
                 bias if has else np.zeros(1), has, stride[0], stride[1], ow,
                 bool(exact_products), chunk, kc, bool(gathered))
    return out
