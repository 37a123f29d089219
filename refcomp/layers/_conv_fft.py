"""FFT convolution for conv2d: radix-2 Cooley-Tukey on separate real and
imaginary arrays, so that every operation and its rounding is stated.

The padded input plane (Hp x Wp) and the dilated kernel are zero-extended to
Hf x Wf (the next powers of two >= Hp, Wp); the cross-correlation is
``y = IFFT2( sum_c FFT2(x_c) * conj(FFT2(w_c)) ) / (Hf Wf)`` (real part), whose
entries at p <= Hp - k_eff equal the linear correlation (no wrap-around),
subsampled by the stride.
"""

import math

import numpy as np

__all__ = ["fft_conv", "fft_error_factor", "next_pow2"]

_U64 = 2.0 ** -53


def next_pow2(n):
    return 1 << max(0, (int(n) - 1).bit_length())


def _bitrev(n):
    t = n.bit_length() - 1
    idx = np.arange(n)
    rev = np.zeros(n, np.int64)
    for b in range(t):
        rev |= ((idx >> b) & 1) << (t - 1 - b)
    return rev


def _twiddles(m, inverse, work):
    """exp(-+2 pi i k / m), k < m/2: angle 2 pi (k/m) in float64 (k/m exact), NumPy
    cos/sin in float64, then one rounding to ``work``."""
    k = np.arange(m // 2, dtype=np.float64) / m
    ang = (2.0 * math.pi) * k
    wr, wi = np.cos(ang), np.sin(ang)
    if not inverse:
        wi = -wi
    return wr.astype(work), wi.astype(work)


def _fft_last(re, im, inverse):
    """In-order radix-2 DIT FFT along the last axis (length a power of two).

    Bit-reversal permutation, then for m = 2, 4, ..., n the butterflies
    ``t = w b`` (complex product ``(wr br - wi bi, wr bi + wi br)``, four
    products and two sums, each rounded), ``a + t``, ``a - t``.
    """
    n = re.shape[-1]
    idx = _bitrev(n)
    re, im = re[..., idx], im[..., idx]          # copies, in bit-reversed order
    nre, nim = np.empty_like(re), np.empty_like(im)
    m = 2
    while m <= n:
        h = m // 2
        wr, wi = _twiddles(m, inverse, re.dtype)
        shape = re.shape[:-1] + (n // m, 2, h)
        r, i = re.reshape(shape), im.reshape(shape)
        ar, ai, br, bi = r[..., 0, :], i[..., 0, :], r[..., 1, :], i[..., 1, :]
        tr = wr * br
        tr -= wi * bi
        ti = wr * bi
        ti += wi * br
        o_r, o_i = nre.reshape(shape), nim.reshape(shape)
        np.add(ar, tr, out=o_r[..., 0, :])
        np.subtract(ar, tr, out=o_r[..., 1, :])
        np.add(ai, ti, out=o_i[..., 0, :])
        np.subtract(ai, ti, out=o_i[..., 1, :])
        re, nre, im, nim = nre, re, nim, im
        m *= 2
    return re, im


def _fft2(re, im, inverse, rows=None, keep=None):
    """2-D transform of the last two axes: along the last axis (each row), then
    along the second-to-last (each column).  ``rows``: only the first
    ``rows`` rows are non-zero (the others transform to zero and are
    skipped); ``keep``: only the first ``keep`` rows of the result are
    needed (inverse transform: columns first, then the kept rows)."""
    if inverse:
        re, im = _fft_last(np.swapaxes(re, -1, -2), np.swapaxes(im, -1, -2), True)
        re, im = np.swapaxes(re, -1, -2), np.swapaxes(im, -1, -2)
        k = re.shape[-2] if keep is None else keep
        return _fft_last(np.ascontiguousarray(re[..., :k, :]),
                         np.ascontiguousarray(im[..., :k, :]), True)
    r = re.shape[-2] if rows is None else rows
    fr, fi = _fft_last(re[..., :r, :], im[..., :r, :], False)
    full_r = np.zeros(re.shape, re.dtype)
    full_i = np.zeros(re.shape, re.dtype)
    full_r[..., :r, :], full_i[..., :r, :] = fr, fi
    re, im = _fft_last(np.swapaxes(full_r, -1, -2), np.swapaxes(full_i, -1, -2), False)
    return np.swapaxes(re, -1, -2), np.swapaxes(im, -1, -2)


def fft_conv(xp, W, stride, dilation, work, *, fast=False):
    """Cross-correlation of a padded NCHW input by FFT (groups = 1, no bias).

    Parameters
    ----------
    xp : (N, C, Hp, Wp); W : (O, C, kh, kw); work : working float dtype.
    fast : channel sum by batched GEMM (BLAS order) instead of sequentially.

    Returns
    -------
    (N, O, OH, OW) of ``work``.

    Arithmetic
    ----------
    All in ``work``: forward transforms of every input and kernel plane
    (:func:`_fft_last`, rows then columns), the products ``X conj(Wf)``
    (``(xr wr + xi wi, xi wr - xr wi)``) summed over channels sequentially
    (c increasing, from +0.0) or by BLAS (``fast``), the inverse transform,
    then the real part times ``1 / (Hf Wf)`` (exact: a power of two).
    """
    n, c, hp, wpd = xp.shape
    o, _, kh, kw = W.shape
    dh, dw = dilation
    keh, kew = (kh - 1) * dh + 1, (kw - 1) * dw + 1
    hf, wf = next_pow2(hp), next_pow2(wpd)
    x = np.zeros((n, c, hf, wf), work)
    x[:, :, :hp, :wpd] = xp
    k = np.zeros((o, c, hf, wf), work)
    k[:, :, :keh:dh, :kew:dw] = W
    xr, xi = _fft2(x, np.zeros_like(x), False, rows=hp)
    kr, ki = _fft2(k, np.zeros_like(k), False, rows=keh)
    if fast:
        # (freq, N, C) @ (freq, C, O) with the conjugate of the kernel spectrum
        X_r = xr.reshape(n, c, -1).transpose(2, 0, 1)
        X_i = xi.reshape(n, c, -1).transpose(2, 0, 1)
        K_r = kr.reshape(o, c, -1).transpose(2, 1, 0)
        K_i = ki.reshape(o, c, -1).transpose(2, 1, 0)
        zr = (np.matmul(X_r, K_r) + np.matmul(X_i, K_i)).transpose(1, 2, 0).reshape(n, o, hf, wf)
        zi = (np.matmul(X_i, K_r) - np.matmul(X_r, K_i)).transpose(1, 2, 0).reshape(n, o, hf, wf)
    else:
        zr = np.zeros((n, o, hf, wf), work)
        zi = np.zeros((n, o, hf, wf), work)
        for cc in range(c):
            a_r, a_i = xr[:, None, cc], xi[:, None, cc]
            b_r, b_i = kr[None, :, cc], ki[None, :, cc]
            zr += a_r * b_r + a_i * b_i
            zi += a_i * b_r - a_r * b_i
    oh = (hp - keh) // stride[0] + 1
    ow = (wpd - kew) // stride[1] + 1
    yr, _ = _fft2(zr, zi, True, keep=(oh - 1) * stride[0] + 1)
    yr = yr * np.dtype(work).type(1.0 / (hf * wf))
    return np.ascontiguousarray(yr[:, :, :(oh - 1) * stride[0] + 1:stride[0],
                                   :(ow - 1) * stride[1] + 1:stride[1]])


def fft_error_factor(hf, wf, c, u):
    """Normwise factor K of the FFT convolution (see refcomp.layers.conv_bounds).

    ``||y^ - y||_2 <= K sqrt(Hf Wf) sum_c ||x_c||_2 ||w_c||_2`` per output plane,
    with ``eps_F = (1 + eta)^t - 1`` (t = log2(Hf Wf) butterfly stages, eta =
    theta + u (1 + theta), theta = mu + (1 + mu) sqrt(2) gamma_2, mu the
    twiddle error), ``kappa = 2 eps_F + eps_F^2 + (sqrt(2) gamma_2 + gamma_{c-1}
    (1 + sqrt(2) gamma_2)) (1 + eps_F)^2`` and ``K = eps_F (1 + kappa) +
    kappa``.
    """
    def gamma(k):
        return k * u / (1 - k * u)
    mu = 32 * _U64 + (u if u > _U64 else 0.0)
    s2g2 = math.sqrt(2.0) * gamma(2)
    theta = mu + (1 + mu) * s2g2
    eta = theta + u * (1 + theta)
    t = int(round(math.log2(hf * wf)))
    eps = (1 + eta) ** t - 1
    kappa = 2 * eps + eps * eps + (s2g2 + gamma(max(c - 1, 0)) * (1 + s2g2)) * (1 + eps) ** 2
    return (eps * (1 + kappa) + kappa) * (1 + 8 * _U64)
