"""Winograd minimal filtering F(m x m, 3 x 3) for conv2d (Lavin & Gray 2016,
"Fast algorithms for convolutional neural networks", cited by seed 004 [12]).

Per output tile of m x m pixels, input tile d (alpha x alpha, alpha = m + 2,
adjacent tiles overlapping by 2) and filter g (3 x 3):
``Y = A^T [ sum_c (G g_c G^T) * (B^T d_c B) ] A`` (``*`` elementwise), which
computes the cross-correlation (FACTS.md §7.11).  F(2x2, 3x3): the paper's
matrices (FACTS.md §7.11).  F(4x4, 3x3): the paper's matrices for the
interpolation points 0, 1, -1, 2, -2 and infinity (checked here in exact
rational arithmetic against the direct 1-D correlation, tests/test_conv_fast.py).
The 1/2, 1/6, 1/12, 1/24 entries of G and the larger entries of B and A (up
to 5 and 8) make the result differ from direct convolution in float; the
error grows with the tile (see :func:`winograd_bound_terms`).
"""

from fractions import Fraction as _F

import numpy as np

__all__ = ["winograd_conv", "winograd_matrices", "WINOGRAD_TILES", "winograd_rounds"]

WINOGRAD_TILES = (2, 4)

_MATS = {
    2: ([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]],
        [[1, 0, 0], [_F(1, 2), _F(1, 2), _F(1, 2)], [_F(1, 2), _F(-1, 2), _F(1, 2)], [0, 0, 1]],
        [[1, 1, 1, 0], [0, 1, -1, -1]]),
    4: ([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
         [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]],
        [[_F(1, 4), 0, 0], [_F(-1, 6), _F(-1, 6), _F(-1, 6)], [_F(-1, 6), _F(1, 6), _F(-1, 6)],
         [_F(1, 24), _F(1, 12), _F(1, 6)], [_F(1, 24), _F(-1, 12), _F(1, 6)], [0, 0, 1]],
        [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]]),
}


def winograd_matrices(m, *, exact=False):
    """(B^T, G, A^T) of F(m x m, 3 x 3) as Fractions (``exact``) or float64 (each
    entry rounded once to nearest)."""
    bt, g, at = _MATS[m]
    if exact:
        return tuple([[_F(v) for v in row] for row in mat] for mat in (bt, g, at))
    return tuple(np.array([[float(v) for v in row] for row in mat]) for mat in (bt, g, at))


def winograd_rounds(m, c):
    """Roundings (in the working precision) any real term of an output goes
    through: 2 stored G entries, U = (G g) G^T 1 + 3 + 1 + 3 and its storage
    1, V = (B^T d) B 2 alpha + 2, the sum over the c channels c + 1, Y =
    (A^T M) A 2 alpha + 2, the bias 1 (alpha = m + 2)."""
    alpha = m + 2
    return 4 * alpha + c + 17


def _left(mat, x, axis):
    """``mat @ x`` along ``axis`` (size k) in float order: out[i] = sum_k mat[i, k] x[k],
    sequential over k from +0.0 (every term, zeros included)."""
    x = np.moveaxis(x, axis, 0)
    out = np.zeros((mat.shape[0],) + x.shape[1:], x.dtype)
    for i in range(mat.shape[0]):
        for k in range(mat.shape[1]):
            out[i] += mat[i, k] * x[k]
    return np.moveaxis(out, 0, axis)


def _tiles(xp, m, oh, ow):
    n, c = xp.shape[:2]
    th, tw = -(-oh // m), -(-ow // m)
    alpha = m + 2
    hp, wp = th * m + 2, tw * m + 2
    full = np.zeros((n, c, hp, wp), xp.dtype)
    full[:, :, :min(hp, xp.shape[2]), :min(wp, xp.shape[3])] = xp[:, :, :hp, :wp]
    win = np.lib.stride_tricks.sliding_window_view(full, (alpha, alpha), axis=(2, 3))
    return np.ascontiguousarray(win[:, :, ::m, ::m]), th, tw     # (N, C, th, tw, a, a)


def winograd_conv(xp, W, m, work, *, mats=None, fast=False):
    """Winograd F(m x m, 3 x 3) cross-correlation of a padded NCHW input (groups = 1).

    Parameters
    ----------
    xp : (N, C, Hp, Wp) zero-padded input; W : (O, C, 3, 3).
    m : 2 or 4.
    work : working dtype (float64 for ``precision="reference"``, the data
        dtype for "fast").
    mats : (B^T, G, A^T) float64 to use instead of the algorithm's (the
        error bound runs the same arithmetic on their absolute values).
    fast : batched matrix products (BLAS order) instead of the sequential
        sums.

    Returns
    -------
    (N, O, Hp - 2, Wp - 2) array of ``work`` (no bias, no final rounding).

    Arithmetic
    ----------
    Matrices rounded once to ``work``.  Not fast: U = (G g) G^T and V =
    (B^T d) B per tile and channel, each matrix product summed sequentially
    over its inner index from +0.0 (all terms, zeros included); M = sum_c U_c
    * V_c sequential over c; Y = (A^T M) A sequentially.  Fast: the same
    transforms by ``numpy.matmul`` and the channel sum by one batched GEMM
    per transform coordinate (BLAS order).  NaN/Inf in a tile spread to its
    whole output tile (no bit contract for non-finite input).
    """
    bt, g, at = winograd_matrices(m) if mats is None else mats
    bt, g, at = (np.asarray(a, work) for a in (bt, g, at))
    n, c, hpad, wpad = xp.shape
    o = W.shape[0]
    oh, ow = hpad - 2, wpad - 2
    alpha = m + 2
    d, th, tw = _tiles(xp.astype(work, copy=False), m, oh, ow)    # (N, C, th, tw, a, a)
    w = W.astype(work, copy=False)
    if fast:
        U = g @ w @ g.T                                   # (O, C, a, a)
        V = bt @ d @ bt.T                                 # (N, C, th, tw, a, a)
        Ut = U.transpose(2, 3, 0, 1).reshape(alpha * alpha, o, c)
        Vt = V.transpose(4, 5, 1, 0, 2, 3).reshape(alpha * alpha, c, n * th * tw)
        M = np.matmul(Ut, Vt).reshape(alpha, alpha, o, n, th, tw).transpose(3, 2, 4, 5, 0, 1)
        Y = at @ M @ at.T                                 # (N, O, th, tw, m, m)
    else:
        U = _left(g, _left(g, w, 2), 3)                   # rows then columns: G g G^T
        V = _left(bt, _left(bt, d, 4), 5)
        M = np.zeros((n, o, th, tw, alpha, alpha), work)
        for cc in range(c):
            M += U[None, :, cc, None, None] * V[:, None, cc]
        Y = _left(at, _left(at, M, 4), 5)
    y = Y.transpose(0, 1, 2, 4, 3, 5).reshape(n, o, th * m, tw * m)
    return np.ascontiguousarray(y[:, :, :oh, :ow])
