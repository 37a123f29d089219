"""1-D k-means (Lloyd / Hartigan-Wong) quantizer: Resmerita et al. eq. (12), (17)-(18).

Seed 002 §4.2 uses Lloyd's algorithm [35] as its non-uniform quantizer and
cites Hartigan [36] and k-means++ [37]; Deep Compression (Han et al. 2016,
§3) shares weights with the same per-layer 1-D k-means (FACTS.md §7.1).
"""

import numpy as np

from .._errors import ParameterError
from .._validate import check_choice, check_int
from ..kernels import kmeans as K
# MAX_BITS, check_rng, _Data, codebook_result and resolve_k live in _kmeans_common
# (shared with kmeans_optimal); they stay importable from here.
from ._kmeans_common import MAX_BITS, _Data, check_rng, codebook_result, resolve_k  # noqa: F401
from ._kmeans_optimal_core import optimal_codebook

__all__ = ["kmeans", "INITS", "ALGORITHMS"]

#: Initialisation names accepted by :func:`kmeans`.
INITS = ("linear", "density", "density_tfmot", "random", "random_tfmot", "kmeans++", "optimal")
#: Iteration rules accepted by :func:`kmeans`.
ALGORITHMS = ("lloyd", "hartigan")
_NEEDS_RNG = ("random", "random_tfmot", "kmeans++")


def _init_centroids(d, k, init, rng):
    """Initial centroids, float64 values of the data dtype, sorted."""
    u, cnt, ccum, n = d.u, d.cnt, d.ccum, d.n
    lo, hi = u[0], u[-1]
    if init == "linear":
        # Deep Compression "linear" = tfmot LINEAR = linspace(min, max, k):
        # c_i = min + i·fl((max − min)/(k − 1)), the last one max exactly.
        if k == 1:
            c = np.array([lo])
        else:
            step = (hi - lo) / (k - 1)
            c = lo + np.arange(k, dtype=np.float64) * step
            c[-1] = hi
    elif init == "density":
        # Deep Compression: levels evenly spaced on the CDF's y axis mapped back
        # to x; we take the empirical quantiles at (i + 1/2)/k, i.e. the
        # order statistics x_(j), j = floor((2i + 1)·n / (2k)) (0-based, exact
        # integer arithmetic).
        j = ((2 * np.arange(k, dtype=np.int64) + 1) * n) // (2 * k)
        c = u[np.searchsorted(ccum, j, side="right") - 1]
    elif init == "density_tfmot":
        # tfmot DENSITY_BASED: CDF on 30 grid points over [min − 0.01, max + 0.01],
        # searched at linspace(0.01, 1, k) (side="right", index clipped to 29).
        # tfmot's interpolation clamps its slope denominator with max(x2 − x1,
        # 0.001) where x2 < x1, so it returns the grid point x1 itself (up to
        # float32 rounding); we return x1.  float64 arithmetic here.
        grid = np.linspace(lo - 0.01, hi + 0.01, 30)
        cdf = ccum[np.searchsorted(u, grid, side="right")] / float(n)
        p = np.linspace(0.01, 1.0, k)
        c = grid[np.minimum(np.searchsorted(cdf, p, side="right"), 29)]
    elif init == "random":
        # Forgy: k distinct data values, uniformly among the distinct values.
        if k > u.size:
            raise ParameterError(f"init='random' (Forgy) needs k <= number of distinct "
                                 f"values ({u.size}), got k={k}")
        c = u[np.sort(rng.choice(u.size, size=k, replace=False))]
    elif init == "random_tfmot":
        c = rng.uniform(lo, hi, size=k)          # tfmot RANDOM: uniform in [min, max]
    elif init == "kmeans++":
        c = _kmeanspp(u, cnt, ccum, n, k, rng)
    else:  # "optimal"
        c = optimal_codebook(d, k)
        c = np.concatenate([c, np.full(k - c.size, c[-1])])
    return np.sort(d.to_dtype_values(c))


def _kmeanspp(u, cnt, ccum, n, k, rng):
    """Arthur & Vassilvitskii (2007) D² seeding on the observations (not greedy).

    Draws ``rng.integers(n)`` (the first centre is that observation in sorted
    order) then ``rng.random(k - 1)`` at once; see
    :func:`refcomp.kernels.kmeans.kmeanspp` for the selection rule.  When every
    D² is 0 (fewer distinct values than k) the remaining centres repeat the
    last one.
    """
    first = int(np.searchsorted(ccum, rng.integers(n), side="right") - 1)
    return K.kmeanspp(u, cnt, first, rng.random(k - 1))


def kmeans(w, k=None, *, bits=None, init="linear", algorithm="lloyd", max_iter=300, rng=None):
    """1-D k-means quantizer with exactly rounded centroids (Resmerita eq. 17-18).

    Parameters
    ----------
    w : ndarray, float32 or float64, any shape, non-empty, finite
    k : int in [1, 65536], optional
        Number of centroids.  Default ``2**bits``.
    bits : int in [1, 16], optional
        Code width.  Default ``max(1, ceil(log2 k))``; ``k > 2**bits`` is an error.
    init : str
        ``"linear"`` (default; the best of the three in Deep Compression §3.1
        and identical in tfmot): ``linspace(min, max, k)``.
        ``"density"`` (Deep Compression): empirical quantiles at (i+½)/k.
        ``"density_tfmot"``: tfmot's 30-point CDF grid (FACTS §7.1).
        ``"random"`` (Forgy, Deep Compression): k distinct data values drawn
        without replacement by ``rng.choice``.  ``"random_tfmot"``: uniform in
        [min, max] (``rng.uniform``).  ``"kmeans++"``: D² seeding with ``rng``.
        ``"optimal"``: the codebook of :func:`kmeans_optimal` (padded with
        its largest value when there are fewer distinct values than k).
        Initial centroids are rounded (RNE) to ``w.dtype`` and sorted.
    algorithm : {"lloyd", "hartigan"}
        ``"lloyd"`` (default, the seed's method): alternate eq. (18) and
        eq. (17).  ``"hartigan"``: Hartigan-Wong transfers between adjacent
        cells (one distinct value with its multiplicity at a time) when
        n_l·w/(n_l+w)·(x−μ_l)² < n_i·w/(n_i−w)·(x−μ_i)² (FACTS §7.9; the cell
        never empties); a sweep visits the boundaries left to right.
    max_iter : int >= 0
        Lloyd iterations (centroid updates) or Hartigan sweeps.
    rng : numpy.random.Generator, required by the random inits

    Returns
    -------
    Quantized
        ``method="kmeans"``, ``decoder="codebook"``; ``params["codebook"]``
        (k,) of ``w.dtype``, sorted non-decreasing (duplicates possible when
        cells are empty); codes of the narrowest unsigned dtype, shape of
        ``w``; ``info``: ``sse`` (float64 Σ(w − ŵ)² with ŵ the codebook value,
        summed sequentially in ascending value order), ``n_iter``,
        ``converged``, ``n_empty``.

    Notes
    -----
    Data: ``w`` is widened to float64 (exact), −0.0 becomes +0.0, then
    sorted once into distinct values with counts; everything below works on
    that weighted set, so the result does not depend on the order of ``w``.

    Thresholds (eq. 17): ``t_i = 0.5·c_{i-1} + 0.5·c_i`` in float64 (exact
    for float32 centroids; one RNE rounding for float64).  Cells are
    half-open ``[t_i, t_{i+1})`` as in eq. (12): a value equal to a
    threshold goes to the upper cell; for float32 input this is exactly the
    nearest-centroid rule with ties to the larger centroid.

    Centroids (eq. 18): ``fl_dtype(fl64(fl64(Σ exact) / count))``: the exact
    sum of the cell (integer fixed-point limbs, see
    :mod:`refcomp.kernels.kmeans._exact`; equal to ``math.fsum``), rounded once to
    float64 half-to-even, one float64 division, then for float32 input one
    more RNE rounding to float32 (a documented double rounding).  An empty
    cell keeps its previous centroid.  Iteration: update centroids, recompute
    cells; stop when no cell changes (``converged=True``) or after
    ``max_iter`` updates.  Codes are the cells of the returned codebook.

    Speed: each Lloyd iteration costs O(k log m) binary searches in the m
    sorted distinct values plus O(k·(64 + limbs)) for the cell sums (prefix
    sums stored every 64 distinct values), independent of the data size.

    NaN/Inf: rejected.  Float64 data with max|w|·size >= 2**1020 is
    rejected (cell sums would overflow).
    """
    k, bits = resolve_k(k, bits)
    check_choice("init", init, INITS)
    check_choice("algorithm", algorithm, ALGORITHMS)
    max_iter = check_int("max_iter", max_iter, lo=0)
    if init in _NEEDS_RNG:
        check_rng(rng, f"init={init!r}")
    d = _Data("w", w)
    c0 = _init_centroids(d, k, init, rng)
    emin, n_limbs, P = d.layout()
    if algorithm == "lloyd":
        c, bnd, n_iter, conv = K.lloyd(d.u, d.cnt, d.ccum, c0, d.to32, max_iter, emin, P)
    else:
        bnd = K.boundaries(d.u, c0)
        c, n_iter, conv = K.hartigan(d.u, d.cnt, c0, d.to32, max_iter, emin, n_limbs, bnd)
    params = {"init": init, "algorithm": algorithm, "max_iter": max_iter}
    return codebook_result(d, c, bnd, bits=bits, method="kmeans", params=params,
                           info={"n_iter": int(n_iter), "converged": bool(conv), "k": k})

