"""Derived error bounds of the conv2d algorithms (``conv2d(..., algorithm=...)``).

:func:`conv2d_error_bound` bounds ``|computed - exact|`` elementwise, where
``exact`` is the real cross-correlation of the given ``x`` and ``W`` plus
``b``; two algorithms therefore agree within the sum of their bounds.
Standard model of floating-point arithmetic (FACTS.md §8): each rounding
multiplies a value by ``1 + delta``, ``|delta| <= u``, no underflow (an
absolute allowance of half a subnormal per term and rounding is added).

* ``"direct"`` / ``"im2col"`` (sums of products in any order): every term
  of an output goes through at most k roundings, so ``|err| <= ((1 +
  gamma_k64(2**-53)) (1 + gamma_kd(u)) - 1) (|x| * |W| + |b|)``: direct
  (reference) k64 = n + 2, kd = 1; im2col reference (float64 GEMM) k64 =
  n + 2, kd = 1; im2col fast (GEMM in the data dtype) kd = n + 2 (n the
  fan-in C/groups kh kw).
* ``"winograd2"`` / ``"winograd4"``: Y = A^T [sum_c (G g G^T) * (B^T d B)] A
  expands to a sum of real terms (products of matrix entries and data),
  each through at most ``4 alpha + C + 17`` roundings
  (:func:`refcomp.layers._conv_winograd.winograd_rounds`), plus the final
  rounding; the sum of their magnitudes is the same algorithm run on
  ``|A^T|``, ``|G|``, ``|B^T|``, ``|x|`` and ``|W|`` in float64 (plus
  ``|b|``).  The larger entries of F(4x4)'s matrices (up to 8 in A^T, 5 in
  B^T) make that magnitude, hence the bound and the error, grow with the
  tile: the bound of F(4x4) is typically 10-100 times F(2x2)'s.
* ``"fft"``: a normwise bound per output plane (n, o):
  ``||y^ - y||_2 <= K sqrt(Hf Wf) sum_c ||x_c||_2 ||w_c||_2`` with ``K`` of
  :func:`refcomp.layers._conv_fft.fft_error_factor` (radix-2 butterflies
  with twiddles within ``mu`` of exact: per stage ``||err|| <= eta ||A_k||
  ||x||``, composed over the ``t = log2(Hf Wf)`` stages as in Higham,
  Accuracy and Stability of Numerical Algorithms, §24.1; then the spectral
  products, the channel sum and the inverse transform), used for every
  element since ``|e_i| <= ||e||_2``; plus ``(2u_work + 2u) (|x| * |W| +
  |b|)`` for the bias and the final rounding.
"""

import math

import numpy as np

from .._errors import ParameterError
from .._validate import check_choice
from ._common import from_nchw
from .conv import _canonical_algorithm, _pad, conv2d, conv2d_setup
from ._conv_fft import fft_error_factor, next_pow2
from ._conv_winograd import winograd_conv, winograd_matrices, winograd_rounds

__all__ = ["conv2d_error_bound", "path_factor"]

_U64 = 2.0 ** -53


def _gamma(k, u):
    if not k * u < 0.5:
        raise ParameterError(f"no error bound for {k} roundings of unit {u}")
    return k * u / (1 - k * u) * (1 + 4 * _U64)


def path_factor(k64, kd, dtype):
    """``(1 + gamma_k64(2**-53)) (1 + gamma_kd(u_dtype)) - 1``, rounded up."""
    u = 2.0 ** -24 if np.dtype(dtype) == np.float32 else _U64
    g1, g2 = _gamma(k64, _U64), _gamma(kd, u)
    return (g1 + g2 + g1 * g2) * (1 + 4 * _U64)


def conv2d_error_bound(x, W, b=None, *, algorithm="direct", precision="reference", stride=1,
                       padding=0, dilation=1, groups=1, layout="NCHW"):
    """Elementwise bound on ``|conv2d(x, W, b, algorithm=..., precision=...) - exact|``.

    Parameters as for :func:`refcomp.layers.conv2d` (plain ndarray ``W``).
    Returns a float64 array of the output's shape and layout.  Finite
    inputs only.  See the module docstring for the derivation.
    """
    algorithm = _canonical_algorithm(algorithm)
    check_choice("precision", precision, ("reference", "fast"))
    xc, st, dil, g, pads = conv2d_setup(x, W, b, stride, padding, dilation, groups, layout)
    dt = x.dtype
    u = 2.0 ** -24 if dt == np.float32 else _U64
    n = int(np.prod(W.shape[1:]))
    ax, aW = np.abs(x.astype(np.float64)), np.abs(W.astype(np.float64))
    ab = None if b is None else np.abs(b.astype(np.float64))
    M = conv2d(ax, aW, ab, stride=stride, padding=padding, dilation=dilation, groups=groups,
               layout=layout)                                     # sum |x w| + |b|
    M = M * (1 + _gamma(n + 2, _U64))                              # its own rounding
    tiny = 2.0 ** -150 if dt == np.float32 else 2.0 ** -1075
    if algorithm in ("direct", "im2col"):
        k64, kd = (n + 2, 1) if precision == "reference" else (0, n + 2)
        return path_factor(k64, kd, dt) * M + (n + 1) * (n + 2) * tiny
    if algorithm.startswith("winograd"):
        m = int(algorithm[-1])
        cg = W.shape[1]
        k = winograd_rounds(m, cg)
        k64, kd = (k, 1) if precision == "reference" else (0, k + 1)
        mats = tuple(np.abs(a) for a in winograd_matrices(m))
        xp = _pad(np.abs(xc.astype(np.float64)), pads, np.float64)
        og = W.shape[0] // g
        parts = [winograd_conv(xp[:, j * cg:(j + 1) * cg], aW[j * og:(j + 1) * og], m,
                               np.float64, mats=mats) for j in range(g)]
        Mw = np.concatenate(parts, axis=1)
        if ab is not None:
            Mw = Mw + ab[None, :, None, None]
        Mw = from_nchw(Mw * (1 + _gamma(k + 2, _U64)), layout)
        return path_factor(k64, kd, dt) * Mw + 36 * n * (k + 2) * tiny
    # fft
    uw = _U64 if precision == "reference" else u
    hp = xc.shape[2] + sum(pads[0])
    wp = xc.shape[3] + sum(pads[1])
    hf, wf = next_pow2(hp), next_pow2(wp)
    cg = W.shape[1]
    K = fft_error_factor(hf, wf, cg, uw)
    xn = np.sqrt(np.sum(xc.astype(np.float64) ** 2, axis=(2, 3)))          # (N, C)
    wn = np.sqrt(np.sum(W.astype(np.float64) ** 2, axis=(2, 3)))           # (O, Cg)
    og = W.shape[0] // g
    S = np.zeros((xc.shape[0], W.shape[0]))
    for j in range(g):
        S[:, j * og:(j + 1) * og] = xn[:, j * cg:(j + 1) * cg] @ wn[j * og:(j + 1) * og].T
    S = S * (1 + _gamma(cg + 4, _U64)) * math.sqrt(hf * wf)
    nchw = M.shape if layout == "NCHW" else (M.shape[0], M.shape[3]) + M.shape[1:3]
    E = from_nchw(np.broadcast_to(K * S[:, :, None, None], nchw), layout)
    return E + (2 * uw + 2 * u) * (1 + 4 * uw) * M + hf * wf * cg * 64 * tiny
