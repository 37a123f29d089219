"""Max-pooling kernel (an exact selection) and its NumPy twin.

Selection rule over the window in row-major order (torch's max_pool2d
CPU rule, ``val > maxval || isnan(val)``, with the first NaN kept): a NaN
already held is kept; a NaN met replaces a number; otherwise ``w`` replaces
``y`` only if ``w > y``, so among equal values (+0.0 and -0.0) the first in
window order wins.  Parallel over batch
images (independent outputs).

Private: ``xp`` is a C-contiguous, already padded NCHW array.
"""

import numba
import numpy as np

__all__ = ["max_pool_nchw", "max_pool_nchw_twin"]


@numba.njit(cache=True, parallel=True)
def _max_pool_kernel(xp, out, kh, kw, sh, sw):
    # Window elements are visited in row-major order (i, j) for a whole
    # output row at a time: the per-element rule becomes a select, so the
    # innermost loop over x has no data-dependent branch and vectorises.
    # Each output still sees its window in the same order: same bits.
    n, c, oh, ow = out.shape
    for b in numba.prange(n):
        for ch in range(c):
            for y in range(oh):
                row = out[b, ch, y]
                src = xp[b, ch, y * sh]
                for x in range(ow):
                    row[x] = src[x * sw]
                for i in range(kh):
                    src = xp[b, ch, y * sh + i]
                    for j in range(kw):
                        if i == 0 and j == 0:
                            continue
                        for x in range(ow):
                            v = src[x * sw + j]
                            m = row[x]
                            take = (m == m) & ((v != v) | (v > m))
                            row[x] = v if take else m


def max_pool_nchw(xp, kh, kw, sh, sw, oh, ow):
    """(N, C, OH, OW) maxima of the windows of ``xp`` (see module rule)."""
    out = np.empty(xp.shape[:2] + (oh, ow), dtype=xp.dtype)
    _max_pool_kernel(xp, out, kh, kw, sh, sw)
    return out


def max_pool_nchw_twin(xp, kh, kw, sh, sw, oh, ow):
    """NumPy twin: the module's selection rule with ``np.where`` over strided
    window views.  (Not ``np.maximum``: its SIMD loops return the *second*
    operand when +0.0 and -0.0 compare equal, which is neither torch's rule
    nor guaranteed across NumPy builds.)"""
    win = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(2, 3))
    win = win[:, :, ::sh, ::sw][:, :, :oh, :ow]
    y = np.array(win[..., 0, 0])
    for i in range(kh):
        for j in range(kw):
            if i or j:
                v = win[..., i, j]
                take = (y == y) & ((v != v) | (v > y))
                y = np.where(take, v, y)
    return y
