"""Calibration of a clipping range: min/max, percentile, entropy (TensorRT KL), MSE (Rosetta L2)."""

import math

import numpy as np

from .._errors import ParameterError
from .._validate import check_choice, check_int
from ._scalar_common import finite_range, float_input

__all__ = ["calibrate"]

METHODS = ("minmax", "percentile", "entropy", "mse")
VARIANTS = ("pytorch_quantization", "mxnet")


def calibrate(x, bits=8, *, method, percentile=99.99, variant="pytorch_quantization",
              num_bins=None):
    """Clipping range (lo, hi) as Python floats for a ``bits``-bit quantizer.

    Parameters
    ----------
    x : ndarray float32/float64, non-empty, finite (NaN/Inf: ValueError with the count)
    bits : int in [2, 16]
    method : {"minmax", "percentile", "entropy", "mse"}
        * "minmax": (min x, max x), exact.
        * "percentile": T = ``np.percentile(|x|, percentile)`` (NumPy's
          default "linear" interpolation, float64); returns (−T, T).
        * "entropy": TensorRT-style KL-divergence threshold search
          (FACTS.md §7.2), symmetric (−T, T); two public variants:
          ``variant="pytorch_quantization"`` (default; NVIDIA's open
          re-implementation ``_compute_amax_entropy``): histogram of |x|
          with 2048 bins on [0, max|x|], bins[0] = bins[1], levels
          2**(bits−1), loop i = 128 … 2048, P = bins[:i] with the outliers
          added to P[i−1], Q = per-level counts spread evenly over the
          non-empty source bins, no smoothing (KL = inf if Q = 0 < P), the
          **last** argmin, T = upper edge of bin i−1.
          ``variant="mxnet"`` (MXNet/TVM ``_get_optimal_threshold``):
          signed histogram with 8001 bins on [−max|x|, max|x|], 2**bits − 1
          quantized bins, windows i = 127 … 4000 around the zero bin,
          outliers to both ends, smoothing eps = 1e−4, the **first** argmin,
          T = right edge of the window.  The default is the NVIDIA code
          because TensorRT is NVIDIA's and that code is its public
          reference; both are offered by name.
        * "mse": histogram (2048 bins of |x|, bin centres c, counts n) L2
          search over thresholds T = upper edges of bins 128 … 2048:
          error(T) = Σ n·(c − Q_T(c))² with Q_T the symmetric quantizer
          round_half_even(c / T · L)·T / L, L = 2**(bits−1) − 1, clipped to
          T; the first minimiser.  (Rosetta minimises the L2 error; its
          exact search grid is not published, this grid is ours.)
    num_bins : int or None — overrides 2048 / 8001.

    Notes
    -----
    Histograms are ``np.histogram`` in float64 (exact counts for a given
    bin rule).  Divergences and errors: terms computed with NumPy
    (``np.log``; SIMD ``log`` may differ in the last ulp between machines)
    and summed with ``math.fsum`` (exactly rounded); only the argmin is
    used, and the tie rule is stated per variant.  All-zero x gives (0, 0).
    """
    float_input("x", x)
    bits = check_int("bits", bits, lo=2, hi=16)
    check_choice("method", method, METHODS)
    lo, hi = finite_range("x", x)
    if method == "minmax":
        return lo, hi
    amax = max(-lo, hi)
    if amax == 0.0:
        return 0.0, 0.0
    a = np.abs(x.astype(np.float64)).reshape(-1)
    if method == "percentile":
        if not 0 <= percentile <= 100:
            raise ParameterError(f"percentile must be in [0, 100], got {percentile!r}")
        t = float(np.percentile(a, percentile))
        return -t, t
    if method == "mse":
        t = _mse(a, amax, bits, num_bins or 2048)
        return -t, t
    check_choice("variant", variant, VARIANTS)
    if variant == "pytorch_quantization":
        t = _entropy_pq(a, amax, bits, num_bins or 2048)
    else:
        t = _entropy_mxnet(x.astype(np.float64).reshape(-1), amax, bits, num_bins or 8001)
    return -t, t


def _kl(p, q):
    """scipy.stats.entropy(p, q): both normalised; inf if q = 0 < p; fsum of the terms."""
    sp, sq = math.fsum(p.tolist()), math.fsum(q.tolist())
    m = p > 0
    if np.any(m & (q <= 0)):
        return math.inf
    pn, qn = p[m] / sp, q[m] / sq
    return math.fsum((pn * np.log(pn / qn)).tolist())


def _entropy_pq(a, amax, bits, num_bins):
    hist, edges = np.histogram(a, bins=num_bins, range=(0.0, amax))
    bins = hist.astype(np.float64)
    bins[0] = bins[1]
    nq = 1 << (bits - 1)
    start = min(128, num_bins)
    divs = []
    for i in range(start, num_bins + 1):
        ref = bins[:i].copy()
        ref[i - 1] += bins[i:].sum()            # integer-valued: exact
        space = np.linspace(0, i, num=nq + 1)
        dig = np.digitize(np.arange(i), space) - 1
        dig[bins[:i] == 0] = -1
        ok = dig >= 0
        counts = np.bincount(dig[ok], weights=bins[:i][ok], minlength=nq)
        nsrc = np.bincount(dig[ok], minlength=nq)
        per = np.divide(counts, nsrc, out=np.zeros(nq), where=nsrc > 0)
        q = np.where(ok, per[np.where(ok, dig, 0)], 0.0)
        divs.append(_kl(ref, q))
    divs = np.array(divs)
    last = len(divs) - 1 - int(np.argmin(divs[::-1]))
    return float(edges[last + start])


def _smooth(p, eps=1e-4):
    zeros = p == 0
    nz = int(zeros.sum())
    nnz = p.size - nz
    if nnz == 0:
        return None
    eps1 = eps * nz / nnz
    out = p.astype(np.float64) + np.where(zeros, eps, -eps1)
    return None if np.any(out <= 0) else out


def _entropy_mxnet(x, amax, bits, num_bins):
    nqb = (1 << bits) - 1
    if x.min() >= 0:
        nqb = nqb * 2 + 1
    hist, edges = np.histogram(x, bins=num_bins, range=(-amax, amax))
    hist = hist.astype(np.float64)
    zero = num_bins // 2
    half = nqb // 2
    ths, divs = [], []
    for i in range(half, num_bins // 2 + 1):
        s0, s1 = zero - i, zero + i + 1
        ths.append(float(edges[s1]))
        sl = hist[s0:s1]
        p = sl.copy()
        p[0] += hist[:s0].sum()
        p[-1] += hist[s1:].sum()
        nz = (p != 0)
        merged = sl.size // nqb
        qb = sl[:nqb * merged].reshape(nqb, merged).sum(axis=1)
        qb[-1] += sl[nqb * merged:].sum()
        q = np.zeros(sl.size)
        for j in range(nqb):
            a0 = j * merged
            a1 = sl.size if j == nqb - 1 else a0 + merged
            norm = int(nz[a0:a1].sum())
            if norm:
                q[a0:a1] = qb[j] / norm
        q[p == 0] = 0
        ps, qs = _smooth(p), _smooth(q)
        divs.append(math.inf if ps is None or qs is None else _kl(ps, qs))
    return ths[int(np.argmin(np.array(divs)))]


def _mse(a, amax, bits, num_bins):
    hist, edges = np.histogram(a, bins=num_bins, range=(0.0, amax))
    centres = (edges[:-1] + edges[1:]) / 2
    n = hist.astype(np.float64)
    L = float((1 << (bits - 1)) - 1)
    best, best_t = math.inf, float(edges[-1])
    for i in range(min(128, num_bins), num_bins + 1):
        t = float(edges[i])
        q = np.minimum(np.rint(centres / t * L), L) * t / L
        err = math.fsum((n * (centres - q) ** 2).tolist())
        if err < best:
            best, best_t = err, t
    return best_t
