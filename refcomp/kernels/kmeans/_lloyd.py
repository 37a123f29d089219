"""Lloyd and Hartigan iterations of 1-D k-means, with their helpers.

The data are the sorted distinct values ``u`` with counts ``cnt``; cells
are contiguous ranges of ``u`` and centroids exactly rounded means (cell
sums from :mod:`._exact`).  Here: the cell thresholds (``boundaries``),
Lloyd (``lloyd``), the means of given cells (``cell_means``), the codes of
the elements (``cell_codes``), k-means++ seeding (``kmeanspp``), the SSE
(``sse``) and Hartigan-Wong transfers (``hartigan``).

Twins: the Lloyd twin sums each cell with :func:`math.fsum` over the
repeated values (an independent exact method) and uses NumPy
``searchsorted``; the SSE twin uses ``np.cumsum`` (sequential); the cell
codes twin ``np.searchsorted``; the Hartigan kernel is written once in
plain Python and the twin runs the same function interpreted, which checks
the compiled arithmetic against CPython's IEEE floats.

Private module: inputs are validated, finite, contiguous float64/int64.
"""

import math

import numba
import numpy as np

from ._exact import _add_entry, _centroid, _limbs_to_float, _range_sum

__all__ = ["boundaries", "lloyd", "lloyd_twin", "sse", "sse_twin", "hartigan", "hartigan_twin",
           "cell_means", "cell_codes", "cell_codes_twin", "kmeanspp", "kmeanspp_twin"]


@numba.njit(cache=True)
def _boundaries(u, c, bnd):
    """bnd[i] = first index with u >= t_{i}, t = 0.5·c[i-1] + 0.5·c[i] (upper cell wins ties)."""
    k = c.size
    m = u.size
    bnd[0] = 0
    bnd[k] = m
    lo = 0
    for i in range(1, k):
        t = 0.5 * c[i - 1] + 0.5 * c[i]
        hi = m
        a = lo
        while a < hi:
            mid = (a + hi) >> 1
            if u[mid] < t:
                a = mid + 1
            else:
                hi = mid
        bnd[i] = a
        lo = a


def boundaries(u, c):
    """Cells of sorted centroids ``c`` in sorted ``u`` (thresholds as in :func:`lloyd`)."""
    bnd = np.empty(c.size + 1, np.int64)
    _boundaries(u, c, bnd)
    return bnd


@numba.njit(cache=True)
def lloyd(u, cnt, ccum, c0, to32, max_iter, emin, P):
    """Weighted 1-D Lloyd on sorted distinct ``u`` with counts ``cnt``.

    Returns ``(centroids, boundaries, n_iter, converged)``; cell i is
    ``u[bnd[i]:bnd[i+1]]``.  Each iteration: centroids from the current
    cells (empty cells keep theirs), then new cells from the thresholds;
    stop when the cells do not change.
    """
    k = c0.size
    n_limbs = P.shape[1]
    c = c0.copy()
    bnd = np.empty(k + 1, np.int64)
    new = np.empty(k + 1, np.int64)
    last_a = np.full(k, -1, np.int64)
    last_b = np.full(k, -1, np.int64)
    acc = np.zeros(n_limbs, np.int64)
    work = np.zeros(n_limbs, np.int64)
    _boundaries(u, c, bnd)
    n_iter = 0
    converged = False
    for _ in range(max_iter):
        for i in range(k):
            a = bnd[i]
            b = bnd[i + 1]
            if a == last_a[i] and b == last_b[i]:
                continue                  # same cell, same mean
            last_a[i] = a
            last_b[i] = b
            n = ccum[b] - ccum[a]
            if n > 0:
                c[i] = _centroid(_range_sum(u, cnt, P, a, b, emin, acc, work), n, to32)
        n_iter += 1
        _boundaries(u, c, new)
        same = True
        for i in range(k + 1):
            if new[i] != bnd[i]:
                same = False
            bnd[i] = new[i]
        if same:
            converged = True
            break
    return c, bnd, n_iter, converged


def lloyd_twin(u, cnt, ccum, c0, to32, max_iter):
    """NumPy/fsum twin of :func:`lloyd` (same results, independent summation)."""
    k, m = c0.size, u.size

    def bounds(c):
        t = 0.5 * c[:-1] + 0.5 * c[1:]
        return np.concatenate([[0], np.searchsorted(u, t, side="left"), [m]]).astype(np.int64)

    c = c0.copy()
    bnd = bounds(c)
    n_iter, converged = 0, False
    for _ in range(max_iter):
        for i in range(k):
            a, b = int(bnd[i]), int(bnd[i + 1])
            n = int(ccum[b] - ccum[a])
            if n:
                v = math.fsum(np.repeat(u[a:b], cnt[a:b]).tolist()) / float(n)
                c[i] = float(np.float32(v)) if to32 else v
        n_iter += 1
        new = bounds(c)
        same = np.array_equal(new, bnd)
        bnd = new
        if same:
            converged = True
            break
    return c, bnd, n_iter, converged


@numba.njit(cache=True)
def cell_means(u, cnt, ccum, bnd, c_old, to32, emin, P):
    """Exactly rounded means of the cells ``bnd`` (empty cells keep ``c_old``)."""
    k = bnd.size - 1
    c = c_old.copy()
    acc = np.zeros(P.shape[1], np.int64)
    work = np.zeros(P.shape[1], np.int64)
    for i in range(k):
        n = ccum[bnd[i + 1]] - ccum[bnd[i]]
        if n > 0:
            c[i] = _centroid(_range_sum(u, cnt, P, bnd[i], bnd[i + 1], emin, acc, work), n, to32)
    return c


_COUNT_MAX_K = 32             # up to this k, counting beats binary search


@numba.njit(cache=True, parallel=True)
def _cell_codes_kernel(x, starts, out):
    n = x.size
    k = starts.size
    if k <= _COUNT_MAX_K:
        # Count the starts <= v (equal to the binary search below, as starts
        # is sorted and starts[0] <= every x): j outer, elements inner, so
        # the comparisons vectorise and no branch depends on the data.
        nchunks = (n + 4095) // 4096
        for t in numba.prange(nchunks):
            a = t * 4096
            b = min(n, a + 4096)
            buf = np.zeros(b - a, np.int32)
            for j in range(1, k):
                # starts are data values (or +inf), so they are exact in the
                # dtype of x and the comparison can stay in that dtype.
                s = x.dtype.type(starts[j])
                for i in range(a, b):
                    buf[i - a] += x[i] >= s
            for i in range(a, b):
                out[i] = buf[i - a]
        return
    nchunks = (n + 65535) // 65536
    for t in numba.prange(nchunks):
        for i in range(t * 65536, min(n, (t + 1) * 65536)):
            v = np.float64(x[i])
            lo = 0
            hi = k
            while lo < hi:                 # last cell whose start value <= v
                mid = (lo + hi) >> 1
                if starts[mid] <= v:
                    lo = mid + 1
                else:
                    hi = mid
            out[i] = lo - 1


def cell_codes(x, starts, code_dtype):
    """Cell index of every element of flat ``x``: the last i with starts[i] <= x.

    ``starts`` (float64, sorted) must hold values exactly representable in
    the dtype of ``x`` (cell minima taken from the data) or +inf: for k <= 32
    the comparisons run in that dtype.

    ``starts[i]`` is the smallest value of cell i (+inf for empty trailing
    cells; an empty cell repeats the next start so the later cell wins).
    Elements are independent: the result does not depend on the thread count.
    """
    out = np.empty(x.size, code_dtype)
    _cell_codes_kernel(x, starts, out)
    return out


def cell_codes_twin(x, starts, code_dtype):
    return (np.searchsorted(starts, x.astype(np.float64), side="right") - 1).astype(code_dtype)


@numba.njit(cache=True)
def kmeanspp(u, cnt, first, randoms):
    """D² seeding on distinct values ``u`` with counts (Arthur & Vassilvitskii 2007).

    ``first``: index of the first centre; ``randoms`` (k−1,) uniforms in
    [0, 1).  Step c: D² = min over chosen centres of (u − centre)² (float64,
    d·d), running sum of cnt·D² sequential in ascending u, the next centre
    is the first u whose running sum exceeds randoms[c−1]·total (clamped to
    the last).  A zero total repeats the last centre.
    """
    m = u.size
    k = randoms.size + 1
    centres = np.empty(k)
    centres[0] = u[first]
    d2 = np.empty(m)
    cum = np.empty(m)
    for j in range(m):
        t = u[j] - centres[0]
        d2[j] = t * t
    first_changed = 0
    for c in range(1, k):
        # The running sum is a sequential chain; entries before the first D²
        # that changed in the last step have the same inputs in the same
        # order, so their sums are kept and only the tail is recomputed
        # (same bits as a full pass, about half the work).
        acc = cum[first_changed - 1] if first_changed > 0 else 0.0
        for j in range(first_changed, m):
            acc += np.float64(cnt[j]) * d2[j]
            cum[j] = acc
        if acc == 0.0:
            for cc in range(c, k):
                centres[cc] = centres[c - 1]
            break
        target = randoms[c - 1] * acc
        lo = 0
        hi = m
        while lo < hi:
            mid = (lo + hi) >> 1
            if cum[mid] <= target:
                lo = mid + 1
            else:
                hi = mid
        if lo > m - 1:
            lo = m - 1
        centres[c] = u[lo]
        cu = u[lo]
        first_changed = m
        for j in range(m):
            t = u[j] - cu
            t = t * t
            if t < d2[j]:
                d2[j] = t
                first_changed = j
                break
        for j in range(first_changed + 1, m):
            t = u[j] - cu
            t = t * t
            if t < d2[j]:
                d2[j] = t
    return centres


def kmeanspp_twin(u, cnt, first, randoms):
    centres = [u[first]]
    d2 = (u - centres[0]) * (u - centres[0])
    k = randoms.size + 1
    while len(centres) < k:
        cum = np.cumsum(cnt * d2)
        if cum[-1] == 0.0:
            centres.extend([centres[-1]] * (k - len(centres)))
            break
        j = min(int(np.searchsorted(cum, randoms[len(centres) - 1] * cum[-1], side="right")),
                u.size - 1)
        centres.append(u[j])
        d2 = np.minimum(d2, (u - u[j]) * (u - u[j]))
    return np.array(centres)


@numba.njit(cache=True)
def sse(u, cnt, c, bnd):
    """Σ cnt·(u − c_cell)² in float64, sequential in ascending value order."""
    s = 0.0
    for i in range(c.size):
        for j in range(bnd[i], bnd[i + 1]):
            d = u[j] - c[i]
            s += np.float64(cnt[j]) * (d * d)
    return s


def sse_twin(u, cnt, c, bnd):
    cell = np.repeat(np.arange(c.size), np.diff(bnd))
    d = u - c[cell]
    terms = cnt.astype(np.float64) * (d * d)
    return float(np.cumsum(terms)[-1]) if terms.size else 0.0


# -- Hartigan-Wong transfers (1-D, contiguous cells) ------------------------------------
def _hartigan_py(u, cnt, c0, to32, max_iter, emin, n_limbs, bnd):
    """Hartigan-Wong single-group transfers between adjacent cells.

    ``bnd`` (k+1 boundaries, modified in place) is the starting partition.
    The unit moved is one distinct value with its multiplicity w.  Moving
    x from cell i (n_i, μ_i) to an adjacent cell l (n_l, μ_l) changes the
    SSE by  n_l·w/(n_l+w)·(x−μ_l)² − n_i·w/(n_i−w)·(x−μ_i)²  (exact means:
    the first term is 0 when cell l is empty); it is done when this is
    < 0 and cell i keeps at least one point.  Sweeps run over boundaries
    left to right, the last group of the left cell first; stop after a
    sweep without transfer or ``max_iter`` sweeps.  Returns (c, n_sweeps,
    converged), c the exactly rounded means (empty cells keep c0).
    """
    k = c0.size
    sums = np.zeros((k, n_limbs), np.int64)
    counts = np.zeros(k, np.int64)
    work = np.zeros(n_limbs, np.int64)
    for i in range(k):
        for j in range(bnd[i], bnd[i + 1]):
            _add_entry(sums[i], u[j], cnt[j], emin)
            counts[i] += cnt[j]
    mu = c0.copy()
    for i in range(k):
        if counts[i] > 0:
            mu[i] = _centroid(_limbs_to_float(sums[i], emin, work), counts[i], to32)
    sweeps = 0
    converged = False
    while sweeps < max_iter:
        sweeps += 1
        moved = False
        for i in range(k - 1):
            for direction in range(2):
                while True:
                    if direction == 0:
                        src, dst = i, i + 1
                        j = bnd[i + 1] - 1
                    else:
                        src, dst = i + 1, i
                        j = bnd[i + 1]
                    if bnd[src] == bnd[src + 1]:
                        break
                    w = cnt[j]
                    ns = counts[src]
                    nd = counts[dst]
                    if ns <= w:
                        break
                    x = u[j]
                    fw = np.float64(w)
                    ds = x - mu[src]
                    lose = np.float64(ns) * fw / np.float64(ns - w) * (ds * ds)
                    gain = 0.0
                    if nd > 0:
                        dd = x - mu[dst]
                        gain = np.float64(nd) * fw / np.float64(nd + w) * (dd * dd)
                    if not gain - lose < 0.0:
                        break
                    _add_entry(sums[src], x, -w, emin)
                    _add_entry(sums[dst], x, w, emin)
                    counts[src] = ns - w
                    counts[dst] = nd + w
                    if direction == 0:
                        bnd[i + 1] -= 1
                    else:
                        bnd[i + 1] += 1
                    mu[src] = _centroid(_limbs_to_float(sums[src], emin, work), counts[src], to32)
                    mu[dst] = _centroid(_limbs_to_float(sums[dst], emin, work), counts[dst], to32)
                    moved = True
        if not moved:
            converged = True
            break
    return mu, sweeps, converged


hartigan = numba.njit(cache=True)(_hartigan_py)


def hartigan_twin(u, cnt, c0, to32, max_iter, emin, n_limbs, bnd):
    """Interpreted run of the same Python source as :func:`hartigan`."""
    return _hartigan_py(u, cnt, c0, to32, max_iter, emin, n_limbs, bnd)
