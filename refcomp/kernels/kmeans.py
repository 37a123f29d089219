"""Numba kernels of the k-means family, each with a twin of identical bits.

Exact cell sums
---------------
A centroid is ``fl64(exact_sum / count)``: the exact (infinitely precise)
sum of the cell's values rounded once to float64 (round-half-even, i.e.
what :func:`math.fsum` returns), then one IEEE float64 division.  The
kernels obtain the exact sum without depending on summation order by
turning every float64 value ``x = M·2**E`` (53-bit integer ``M``) into a
fixed-point integer in units of ``2**emin`` (``emin`` is the lowest set bit
over the whole data set), held as ``n_limbs`` signed int64 limbs of 30 bits.
Adding a value (times its multiplicity) touches three limbs; limbs are
never normalised while accumulating, which is safe because each limb stays
below ``2**30 · Σcounts < 2**62``.  Integer addition is associative, so
prefix sums over the sorted distinct values are exact: the sum of a cell
``[a, b)`` is ``P[b] - P[a]`` (stored every ``BLOCK`` entries; each end
starts from its nearer stored prefix and the at most BLOCK/2 entries in
between are added or removed), O(BLOCK + n_limbs) per cell whatever its
size.  Conversion back to float64 propagates carries, negates if needed and
rounds the top 53 bits half-to-even with a sticky bit (``_limbs_to_float``).

Twins: the Lloyd twin sums each cell with :func:`math.fsum` over the
repeated values (an independent exact method) and uses NumPy
``searchsorted``; the SSE twin uses ``np.cumsum`` (sequential); the
parallel ``block_prefix`` is checked against a sequential running sum,
the bit-field ``exact_layout`` against ``np.frexp``, ``merge_distinct``
against ``np.sort`` of the concatenation with ``flatnonzero``;
the Hartigan and optimal-DP kernels are written once in plain Python and
the twin runs the same function interpreted (``numba.prange`` is ``range``;
the DP's array indices are Python ints there, uint64 when compiled, see
``_ix``), which checks the compiled arithmetic against CPython's IEEE floats.

Private module: inputs are validated, finite, contiguous float64/int64.
"""

import math
import types

import numba
import numpy as np

__all__ = ["exact_layout", "exact_layout_twin", "block_prefix", "block_prefix_twin",
           "merge_distinct", "merge_distinct_twin", "boundaries", "lloyd", "lloyd_twin", "sse", "sse_twin",
           "hartigan", "hartigan_twin", "optimal_dp", "optimal_dp_twin",
           "cell_means", "cell_codes", "cell_codes_twin", "kmeanspp", "kmeanspp_twin",
           "vq_assign", "vq_assign_twin", "vq_means", "vq_means_twin",
           "BLOCK"]

_LB = 30                      # bits per limb
_MASK = (1 << _LB) - 1
BLOCK = 64                    # prefix sums are stored every BLOCK distinct values


_CHUNK = 1 << 16              # elements per parallel chunk (fixed: results never depend on it)


@numba.njit(cache=True, parallel=True)
def _layout_kernel(x):
    # Bit fields instead of frexp: per chunk, OR together the significands
    # (with the implicit bit) of the values of each biased exponent E; the
    # lowest set bit of the OR is the lowest over those values.  OR, min and
    # max are exact and order-free, so the result never depends on threads.
    bits = x.view(np.uint64)
    nch = (x.size + _CHUNK - 1) // _CHUNK
    tab = np.zeros((max(nch, 1), 2048), np.uint64)
    frac_mask = np.uint64((1 << 52) - 1)
    implicit = np.uint64(1 << 52)
    for t in numba.prange(nch):
        for i in range(t * _CHUNK, min(x.size, (t + 1) * _CHUNK)):
            b = bits[i]
            e = (b >> np.uint64(52)) & np.uint64(0x7FF)
            f = b & frac_mask
            if e != 0:
                tab[t, e] |= f | implicit
            elif f != 0:                          # subnormal (±0 is skipped)
                tab[t, 0] |= f
    emin = np.int64(1 << 20)
    emax = np.int64(-(1 << 20))
    for e in range(2048):
        o = np.uint64(0)
        for t in range(tab.shape[0]):
            o |= tab[t, e]
        if o == 0:
            continue
        tz = 0
        while (o >> np.uint64(tz)) & np.uint64(1) == 0:
            tz += 1
        if e == 0:
            lo = np.int64(-1074 + tz)
            nb = 0
            while nb < 64 and (o >> np.uint64(nb)) != 0:
                nb += 1
            hi = np.int64(nb - 1127)                 # frexp exponent − 53 of the largest
        else:
            lo = np.int64(e - 1075 + tz)
            hi = np.int64(e - 1075)
        if lo < emin:
            emin = lo
        if hi > emax:
            emax = hi
    return emin, emax


def exact_layout(x):
    """``(emin, n_limbs)`` for exact fixed-point sums of float64 values ``x``.

    ``emin`` is the exponent of the lowest set bit over all non-zero values.
    Multiplicities and their total must stay below ``2**32``.
    """
    emin, emax = _layout_kernel(np.ascontiguousarray(x, dtype=np.float64))
    if emax < emin - (1 << 19):                          # all zeros
        return 0, 4
    # value bits: (emax - emin) + 53, times counts (< 2**32), sign and carry headroom.
    return int(emin), (int(emax) - int(emin) + 53 + 34) // _LB + 4


def exact_layout_twin(x):
    nz = x[x != 0.0].astype(np.float64, copy=False)
    if nz.size == 0:
        return 0, 4
    frac, e = np.frexp(nz)
    mant = np.abs(np.ldexp(frac, 53).astype(np.int64))
    low = mant & -mant                                   # lowest set bit, a power of two
    tz = np.frexp(low.astype(np.float64))[1].astype(np.int64) - 1
    e = e.astype(np.int64) - 53
    emin = int((e + tz).min())
    return emin, (int(e.max()) - emin + 53 + 34) // _LB + 4


@numba.njit(cache=True, inline="always")
def _add_scaled(acc, mant, e2, cnt, emin):
    """acc += cnt · mant · 2**e2 exactly (0 <= mant < 2**53, 2**e2 a
    multiple of 2**emin for the set bits of mant)."""
    s = e2 - emin
    if s < 0:
        mant >>= -s                     # exact: the dropped bits are zero by choice of emin
        s = 0
    q = s // _LB
    r = s - q * _LB
    m0 = (mant & _MASK) << r
    t = ((mant >> _LB) << r) + (m0 >> _LB)
    acc[q] += (m0 & _MASK) * cnt
    acc[q + 1] += (t & _MASK) * cnt
    acc[q + 2] += (t >> _LB) * cnt


@numba.njit(cache=True)
def _add_entry(acc, x, cnt, emin):
    """acc += cnt · x exactly (cnt may be negative, |cnt| < 2**32)."""
    if x == 0.0:
        return
    fr, e = math.frexp(x)
    mant = np.int64(math.ldexp(fr, 53))
    if mant < 0:
        mant = -mant
        cnt = -cnt
    _add_scaled(acc, mant, np.int64(e) - 53, cnt, emin)


@numba.njit(cache=True)
def _limbs_to_float(acc, emin, work):
    """Round the exact integer Σ acc[i]·2**(30i + emin) to float64, half-to-even."""
    n = acc.size
    carry = np.int64(0)
    for i in range(n):
        v = acc[i] + carry
        work[i] = v & _MASK
        carry = v >> _LB
    neg = carry < 0
    if neg:                                  # two's complement negation
        c = np.int64(1)
        for i in range(n):
            v = (_MASK - work[i]) + c
            work[i] = v & _MASK
            c = v >> _LB
    h = n - 1
    while h >= 0 and work[h] == 0:
        h -= 1
    if h < 0:
        return 0.0
    hi = work[h]
    mid = work[h - 1] if h >= 1 else np.int64(0)
    lo = work[h - 2] if h >= 2 else np.int64(0)
    sticky = False
    for i in range(h - 2):
        if work[i] != 0:
            sticky = True
            break
    nb = np.int64(math.frexp(np.float64(hi))[1])      # bit length of hi (exact, hi < 2**30)
    d = nb + 7                                         # bits to drop from the 90-bit window
    top = (hi << _LB) | mid
    if d <= _LB:
        mant = (top << (_LB - d)) | (lo >> d)
        rem = lo & ((np.int64(1) << d) - 1)
        half = np.int64(1) << (d - 1)
        up = rem > half or (rem == half and (sticky or (mant & 1) == 1))
    else:
        e2 = d - _LB
        mant = top >> e2
        rem = top & ((np.int64(1) << e2) - 1)
        half = np.int64(1) << (e2 - 1)
        up = rem > half or (rem == half and (lo != 0 or sticky or (mant & 1) == 1))
    if up:
        mant += 1
    # int(): CPython's math.ldexp (NUMBA_DISABLE_JIT=1) rejects NumPy integers.
    val = math.ldexp(np.float64(mant), int(_LB * (h - 2) + emin + d))
    return -val if neg else val


@numba.njit(cache=True, inline="always")
def _add_entry_bits(acc, b, cnt, emin):
    """:func:`_add_entry` on the IEEE bits ``b`` of a float64: the same
    (mantissa, exponent) pair as frexp/ldexp, subnormals normalised to a
    53-bit mantissa, so the limbs are identical; no libm call."""
    ef = np.int64((b >> np.uint64(52)) & np.uint64(0x7FF))
    mant = np.int64(b & np.uint64((1 << 52) - 1))
    if ef == 0:
        if mant == 0:
            return
        e2 = np.int64(-1074)
        while mant < (np.int64(1) << 52):
            mant <<= 1
            e2 -= 1
    else:
        mant |= np.int64(1) << 52
        e2 = ef - 1075
    if b >> np.uint64(63):
        cnt = -cnt
    _add_scaled(acc, mant, e2, cnt, emin)


@numba.njit(cache=True, parallel=True)
def block_prefix(u, cnt, emin, n_limbs):
    """P[q] = exact Σ_{j < q·BLOCK} cnt[j]·u[j] as limbs, shape (m // BLOCK + 1, n_limbs).

    Each block's limb sums are accumulated in parallel, then the blocks are
    prefix-summed in order; integer addition is exact and associative, so
    the limbs are those of the sequential sum whatever the thread count.
    """
    m = u.size
    nq = m // BLOCK + 1
    P = np.zeros((nq, n_limbs), np.int64)
    ub = u.view(np.uint64)
    for q in numba.prange(1, nq):
        row = P[q]
        for j in range((q - 1) * BLOCK, q * BLOCK):
            _add_entry_bits(row, ub[j], cnt[j], emin)
    for q in range(2, nq):
        for i in range(n_limbs):
            P[q, i] += P[q - 1, i]
    return P


def block_prefix_twin(u, cnt, emin, n_limbs):
    """Sequential running sum (twin of :func:`block_prefix`; Python ints, then int64)."""
    add = getattr(_add_entry, "py_func", _add_entry)
    m = u.size
    P = np.zeros((m // BLOCK + 1, n_limbs), np.int64)
    acc = np.zeros(n_limbs, np.int64)
    for q in range(1, m // BLOCK + 1):
        for j in range((q - 1) * BLOCK, q * BLOCK):
            add(acc, float(u[j]), int(cnt[j]), int(emin))
        P[q, :] = acc
    return P


@numba.njit(cache=True)
def _merge_distinct_kernel(a, b, u, ccum):
    na = a.size
    nb = b.size
    i = 0
    j = 0
    m = 0
    prev = a[0] if na > 0 else b[0]
    pos = 0
    while i < na and j < nb:            # selection without branches (cmov)
        x = a[i]
        y = b[j]
        ta = x <= y
        v = x if ta else y
        i += 1 if ta else 0
        j += 0 if ta else 1
        if pos == 0 or v != prev:
            u[m] = np.float64(v) + 0.0       # -0.0 -> +0.0
            ccum[m] = pos
            m += 1
            prev = v
        pos += 1
    while pos < na + nb:
        if i < na:
            v = a[i]
            i += 1
        else:
            v = b[j]
            j += 1
        if pos == 0 or v != prev:
            u[m] = np.float64(v) + 0.0
            ccum[m] = pos
            m += 1
            prev = v
        pos += 1
    ccum[m] = na + nb
    return m


def merge_distinct(a, b):
    """Distinct values of the union of sorted finite ``a`` and ``b`` (same dtype).

    Returns ``(u, cnt, ccum)``: ``u`` float64 ascending with −0.0 mapped to
    +0.0 (−0.0 == 0.0: one value), ``cnt`` int64 multiplicities, ``ccum``
    int64 (m + 1,) with ``ccum[i] = Σ cnt[:i]``.  Only values and counts are
    produced, so the order of equal elements (±0) in the inputs is irrelevant.
    """
    n = a.size + b.size
    u = np.empty(n, np.float64)
    ccum = np.empty(n + 1, np.int64)
    m = _merge_distinct_kernel(a, b, u, ccum)
    ccum = ccum[: m + 1]
    return u[:m], np.diff(ccum), ccum


def merge_distinct_twin(a, b):
    s = np.sort(np.concatenate([a, b]))
    n = s.size
    starts = np.flatnonzero(np.concatenate([[True], s[1:] != s[:-1]]))
    u = s[starts].astype(np.float64) + 0.0
    cnt = np.diff(np.append(starts, n)).astype(np.int64)
    return u, cnt, np.concatenate([[0], np.cumsum(cnt)]).astype(np.int64)


@numba.njit(cache=True)
def _range_sum(u, cnt, P, a, b, emin, acc, work):
    # Each end starts from its nearer stored prefix, then adds or removes the
    # entries in between.  Every entry contributes fixed integers to fixed
    # limbs, so the limbs (hence the result) are the same whichever prefix is
    # used, and every intermediate is a sum over a subset of entries (same bound).
    last = P.shape[0] - 1
    qa = a // BLOCK
    qb = b // BLOCK
    if a - qa * BLOCK > BLOCK // 2 and qa < last:
        qa += 1
    if b - qb * BLOCK > BLOCK // 2 and qb < last:
        qb += 1
    for i in range(acc.size):
        acc[i] = P[qb, i] - P[qa, i]
    for j in range(qb * BLOCK, b):
        _add_entry(acc, u[j], cnt[j], emin)
    for j in range(b, qb * BLOCK):
        _add_entry(acc, u[j], -cnt[j], emin)
    for j in range(qa * BLOCK, a):
        _add_entry(acc, u[j], -cnt[j], emin)
    for j in range(a, qa * BLOCK):
        _add_entry(acc, u[j], cnt[j], emin)
    return _limbs_to_float(acc, emin, work)


@numba.njit(cache=True)
def _centroid(s, n, to32):
    v = s / np.float64(n)
    if to32:
        v = np.float64(np.float32(v))
    return v


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


# -- globally optimal 1-D k-means: dynamic programming ----------------------------------
def _two_sum(a, b):
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


def _split(a):
    c = 134217729.0 * a                    # 2**27 + 1 (Dekker)
    hi = c - (c - a)
    return hi, a - hi


def _two_prod(a, b):
    p = a * b
    ah, al = _split(a)
    bh, bl = _split(b)
    return p, ((ah * bh - p) + ah * bl + al * bh) + al * bl


def _dp_prefix_py(y, cnt):
    """Compensated prefix sums of cnt·y and cnt·y² as (hi, lo) pairs (double-double)."""
    m = y.size
    Q = np.zeros((m + 1, 5))     # one row per prefix: h1, l1, h2, l2, count (cache locality)
    a1 = 0.0
    b1 = 0.0
    a2 = 0.0
    b2 = 0.0
    for j in range(m):
        w = np.float64(cnt[j])
        p, pe = _two_prod(w, y[j])
        s, se = _two_sum(a1, p)
        b1 = b1 + (se + pe)
        a1, b1 = _two_sum(s, b1)
        q, qe = _two_prod(y[j], y[j])
        r, re = _two_prod(w, q)
        re = re + w * qe
        s, se = _two_sum(a2, r)
        b2 = b2 + (se + re)
        a2, b2 = _two_sum(s, b2)
        Q[j + 1, 0] = a1
        Q[j + 1, 1] = b1
        Q[j + 1, 2] = a2
        Q[j + 1, 3] = b2
        Q[j + 1, 4] = Q[j, 4] + w          # exact: counts total < 2**53
    return Q


def _dp_cost(Q, a, e):
    """SSE of distinct values a..e-1 around their mean, clamped at 0 (``e``
    exclusive, so unsigned indices need no ``+ 1``)."""
    w = Q[e, 4] - Q[a, 4]
    s1 = (Q[e, 0] - Q[a, 0]) + (Q[e, 1] - Q[a, 1])
    s2 = (Q[e, 2] - Q[a, 2]) + (Q[e, 3] - Q[a, 3])
    c = s2 - s1 * s1 / w
    return c if c > 0.0 else 0.0


def _ix(i):
    """Array index, non-negative: a Python int here (the interpreted twin:
    NumPy integer scalars make each load about 4x slower); ``np.uint64`` in
    the compiled kernels (``_ix_nb``), where Numba then skips the
    negative-index wraparound test on every load (about 25 % of an entry
    evaluation).  Index values, and so all float operations, are the same."""
    return int(i)


def _ix_u64(i):
    return np.uint64(i)


def _row_min(prev, Q, olo, stop, mid):
    """Leftmost argmin over j in [olo, stop] of D[c-1][j-1] + cost(j, mid)."""
    # olo >= 1, so j - 1 never wraps.
    e = _ix(mid + 1)
    one = _ix(1)
    best = prev[_ix(olo) - one] + _dp_cost(Q, _ix(olo), e)
    bj = olo
    for j in range(olo + 1, stop + 1):
        ju = _ix(j)
        v = prev[ju - one] + _dp_cost(Q, ju, e)
        if v < best:
            best = v
            bj = j
    return best, bj


def _entry(prev, Q, i, j):
    """Matrix entry D[c-1][j-1] + cost(j, i) of DP row c, for 1 <= j <= i."""
    ju = _ix(j)
    return prev[ju - _ix(1)] + _dp_cost(Q, ju, _ix(i + 1))


def _row_floor(low, i, olo, ohi):
    """Smallest column searched in row i: the previous row's argmin
    ``low[i]`` clamped into the row's columns ``[olo, min(i, ohi)]``
    (non-decreasing in i, as ``low`` is)."""
    return max(olo, min(int(low[_ix(i)]), min(i, ohi)))


def _reduce(prev, Q, cur, low, work, src, ncols, olo, ohi, dst, lo, step, nrows):
    """SMAWK's REDUCE (Aggarwal et al. 1987) for leftmost row minima.

    Rows: ``r(p) = lo + step·(p + 1) − 1``, p < ``nrows``.  Columns,
    ascending: ``work[src + t]`` for t < ``ncols`` (``olo + t`` when
    ``src < 0``).  Row r's entries are searched over the columns
    ``[_row_floor(r), min(r, ohi)]`` (+inf elsewhere): both ends are
    non-decreasing in r, so the matrix stays totally monotone.  The kept
    columns (at most ``nrows``, ascending, including every row's leftmost
    argmin when the matrix is totally monotone) are written to
    ``work[dst:]``; returns their count.  The stack holds column
    ``work[dst + p]`` for row r(p), and ``cur[r(p)]`` caches that entry
    (scratch: the rows' values are written later).

    Comparing a new column j with the stack top t at t's row r: j > r: t
    stays (+inf for j at r and every row above).  t below the floor of r
    (and j <= r): t is +inf at r and below, dropped without evaluation.
    Else if j is not better (entry ≥), it is not better at any row above
    either (total monotonicity), so t stays (ties: the left column); if
    strictly better, it is at every row below, so t is dropped.  Entries
    are evaluated at most once per comparison, plus once per push that
    follows no evaluated drop.  The first column kept is at most the first
    row, whatever the values (it changes only for a column j <= r(0)).
    """
    top = 0
    v = 0.0
    for t in range(ncols):
        if src < 0:
            j = olo + t
        else:
            j = int(work[_ix(src + t)])
        popped = False
        while top > 0:
            r = lo + step * top - 1                 # row of the stack top (position top - 1)
            if j > r:
                break                               # +inf at row r: keep the top
            if int(work[_ix(dst + top - 1)]) < _row_floor(low, r, olo, ohi):
                top -= 1                            # below row r's floor
                popped = False
                continue
            w = _entry(prev, Q, r, j)
            if cur[_ix(r)] <= w:
                break
            top -= 1                                # the stack top is dropped
            v = w
            popped = True
        if top < nrows:
            r = lo + step * (top + 1) - 1
            work[_ix(dst + top)] = j
            if popped:
                cur[_ix(r)] = v                     # the last drop compared j at this very row
            elif j <= r:
                cur[_ix(r)] = _entry(prev, Q, r, j)
            else:
                cur[_ix(r)] = np.inf
            top += 1
    return top


def _interpolate(prev, Q, cur, arg, low, work, off, size, olo, ohi, lo, step, nrows):
    """SMAWK's interpolation step: rows r(k) = lo + step·(k + 1) − 1 for even
    k < ``nrows``, whose odd neighbours are solved (``arg``), over the
    ascending columns ``work[off:off + size]``.

    Row k = r(k) is minimised over the listed columns from
    ``max(arg[r(k − 1)], _row_floor(i))`` (or the first) to
    ``min(i, arg[r(k + 1)])`` (or the last), leftmost on ties; when no
    listed column reaches the floor in that range (rounding), from the
    last one in it.  The argmin lies between its neighbours' whatever the
    values, so the row's argmins are non-decreasing, and it is at most i.
    Each column is scanned by at most two rows.
    """
    t = 0                                           # position of arg[r(k - 1)] in the list
    for k in range(0, nrows, 2):
        i = lo + step * (k + 1) - 1
        if k + 1 < nrows:
            jend = int(arg[_ix(i + step)])
        else:
            jend = int(work[_ix(off + size - 1)])
        lim = min(i, jend)
        f = _row_floor(low, i, olo, ohi)
        u = t
        while (u + 1 < size and int(work[_ix(off + u)]) < f
               and int(work[_ix(off + u + 1)]) <= lim):
            u += 1
        j = int(work[_ix(off + u)])
        best = _entry(prev, Q, i, j)
        bj = j
        u += 1
        while u < size:
            j = int(work[_ix(off + u)])
            if j > lim:
                break
            v = _entry(prev, Q, i, j)
            if v < best:
                best = v
                bj = j
            u += 1
        cur[_ix(i)] = best
        arg[_ix(i)] = bj
        t = u - 1
        while int(work[_ix(off + t)]) < jend:
            t += 1


def _smawk_rows(prev, Q, cur, arg, low, work, lv, lo, hi, olo, ohi):
    """Leftmost minima of DP rows ``lo..hi`` over columns ``olo..ohi`` by SMAWK.

    Requires ``1 <= olo <= lo`` and ``olo <= ohi <= hi``, row ``olo − 1``
    of ``prev`` finite; ``low`` non-decreasing (the previous row's argmins).
    Row i is searched over ``[_row_floor(i), min(i, ohi)]`` (``low[i]``
    clamped into ``[olo, min(i, ohi)]``; +inf elsewhere: both ends are
    non-decreasing in i, so the matrix stays totally monotone).  It gets
    ``cur[i]``, the minimum of D[c-1][j-1] + cost(j, i) there, and
    ``arg[i]``, its leftmost argmin, when the matrix is totally monotone
    (exact arithmetic; rounding can break that only between near-equal
    entries).  Whatever the values, ``olo <= arg[i] <= min(i, ohi)`` and the
    argmins are non-decreasing in i.

    Iterative SMAWK (Aggarwal et al. 1987): level L holds the rows
    ``lo + 2**L·(k + 1) − 1``, k < n >> L (n = hi − lo + 1).  Top-down,
    level L's REDUCE (:func:`_reduce`) keeps at most n >> L of the columns
    of level L−1; it is run only when there are more than twice as many
    columns as rows (at level 0: more columns than rows), otherwise the
    level keeps the previous list: a level then interpolates over at most
    twice its row count, still O(n) in all, and the k = 16 DP on 1.17M
    normal values takes 11 % fewer evaluations than with a REDUCE at every
    level.  The lists are stored in ``work[2·lo : 2·lo + 2·n]`` (each at
    most its level's row count: Σ n >> L < 2n), level L's (offset, size) in
    ``lv[L]`` (``lv``: (64, 2) int64).  Bottom-up, the interpolation
    (:func:`_interpolate`) solves level L's even rows between their solved
    neighbours.  O(n + ohi − olo) entry evaluations (about 6.5 per row on
    the DP rows of 1.17M normal values), no allocation, no recursion.
    """
    lo = int(lo)
    hi = int(hi)
    olo = int(olo)
    ohi = int(ohi)
    n = hi - lo + 1
    off = 2 * lo
    src = -1
    ncols = ohi - olo + 1
    L = 0
    while True:
        nrows = n >> L
        if ncols > 2 * nrows or (src < 0 and ncols > nrows):
            ncols = _reduce(prev, Q, cur, low, work, src, ncols, olo, ohi, off, lo, 1 << L, nrows)
            src = off
            off += ncols
        elif src < 0:
            for t in range(ncols):
                work[_ix(off + t)] = olo + t
            src = off
            off += ncols
        lv[L, 0] = src
        lv[L, 1] = ncols
        if nrows == 1:
            break
        L += 1
    while L >= 0:
        _interpolate(prev, Q, cur, arg, low, work, int(lv[L, 0]), int(lv[L, 1]), olo, ohi, lo,
                     1 << L, n >> L)
        L -= 1


_DC_TASKS = 16                # segments split breadth-first before the parallel part
_DC_PRUNED = 8                # segments by divide and conquer when low cuts the searches 8-fold


def _split_segment(prev, Q, cur, arg, low, src, s, dst, n):
    """Solve the middle row of segment ``src[s] = (lo, hi, olo, ohi)`` and
    write its non-empty halves to ``dst[n]``, ``dst[n + 1]`` (``dst`` may be
    ``src``: the segment is read first).  Returns the new count, the number
    of entries searched and the number without the lower bound ``low``.

    The search starts at ``max(olo, low[mid])``, ``low`` being the previous
    row's argmins (see :func:`_dc_row`), clamped into the segment's interval
    so the argmins stay monotone whatever rounding did."""
    lo = src[s, 0]
    hi = src[s, 1]
    olo = src[s, 2]
    ohi = src[s, 3]
    mid = (lo + hi) >> 1
    stop = min(mid, ohi)
    start = min(max(olo, int(low[mid])), stop)
    best, bj = _row_min(prev, Q, start, stop, mid)
    cur[mid] = best
    arg[mid] = bj
    for half in ((lo, mid - 1, olo, bj), (mid + 1, hi, bj, ohi)):
        if half[0] <= half[1]:
            for t in range(4):
                dst[n, t] = half[t]
            n += 1
    return n, stop - start + 1, stop - olo + 1



def _dc_row(prev, Q, cur, arg, low, c, m, work):
    """One DP row: monotone divide and conquer down to ``_DC_TASKS``
    segments, then each segment by SMAWK or by divide and conquer, the
    segments in parallel.  Returns 1 if the segments were solved by divide
    and conquer, 0 if by SMAWK.

    Rows c..m-1 of D[c][i] = min_{c<=j<=i} D[c-1][j-1] + cost(j, i).  The
    matrix of the entries (+inf for j > i) is totally monotone (the SSE
    satisfies the quadrangle inequality), so its leftmost row minima are
    non-decreasing in i (Grønlund et al. 2017, Lemma 2).  They are also
    monotone in the cluster count: the last cluster of an optimal
    (c+1)-clustering of a prefix starts no earlier than that of an optimal
    c-clustering (Knuth-Yao for costs with the quadrangle inequality), so
    every search starts at ``low[i]``, the previous row's argmin, clamped
    into the row's interval so that the argmins stay monotone whatever
    rounding did.

    Divide and conquer (Grønlund et al. §2.2): the row ``mid`` of a segment
    ``[lo, hi]`` whose argmins lie in ``[olo, ohi]`` is minimised over
    ``[max(olo, low[mid]), min(mid, ohi)]``; its argmin ``bj`` bounds the
    halves: ``[lo, mid-1]`` in ``[olo, bj]`` and ``[mid+1, hi]`` in
    ``[bj, ohi]``.  The first levels are split sequentially, breadth-first,
    until there are ``_DC_TASKS`` = 16 segments (4 levels, about 1.5 entry
    evaluations per row entry for k = 16).

    Each segment's sub-matrix (rows ``[lo, hi]``, columns
    ``[olo, min(ohi, hi)]``) is then solved by SMAWK (:func:`_smawk_rows`,
    Aggarwal et al. 1987): O(rows + columns) entry evaluations, O(m) per
    row instead of the O(m log m) of the divide and conquer.  k = 16 on
    1.17M distinct normal values: 270 -> 119 entry evaluations per value
    over the 15 rows (Laplace: 274 -> 124); the DP 0.90 -> 0.62 s (Laplace
    0.86 -> 0.71 s), min of 5 on a shared two-core machine, 1.38 -> 1.10 s
    on one thread.  But SMAWK's evaluations cost about twice as much as
    the divide and conquer's (branchy REDUCE, short scans), and when the
    previous row's argmins bound the searches tightly (large c: clusters
    of a few thousand values) the divide and conquer needs few
    evaluations (about 8.5 per entry at c = 250 against SMAWK's 6).  So if
    ``low`` cut the searches of the last split level more than
    ``_DC_PRUNED`` = 8-fold, the segments are finished by the same divide
    and conquer, depth-first (k = 256 on 1.17M normal values: from
    c = 79 on; the DP 7.2 s before, 7.4 s with SMAWK only, 6.4 s so).  The
    choice only sets the speed.

    Fewer segments cost fewer sequential evaluations; one parallel region
    per row keeps the threads from waiting at barriers when another
    process holds a core (64 segments, split in parallel level by level:
    as fast alone, about 20 % slower with one core busy).

    Ties keep the leftmost j of the row's search interval.  Every row's
    argmins are non-decreasing with ``c <= arg[i] <= i`` by construction,
    whatever rounding did (each row's search lies between its neighbours'
    argmins), which :func:`_pack_row` needs.  The segments and the choice
    of solver are fixed by (c, m) and the previous row, and each segment is
    solved by itself, so the bits do not depend on the thread count or
    schedule.  ``work``: int32 scratch of ``2·m`` entries.
    """
    seg = np.empty((_DC_TASKS * 2, 4), np.int64)
    nxt = np.empty((_DC_TASKS * 2, 4), np.int64)
    seg[0, 0] = c
    seg[0, 1] = m - 1
    seg[0, 2] = c
    seg[0, 3] = m - 1
    nseg = 1
    searched = 0
    full = 0
    while 0 < nseg < _DC_TASKS:
        nn = 0
        searched = 0                              # of the last level only
        full = 0
        for s in range(nseg):
            nn, a, b = _split_segment(prev, Q, cur, arg, low, seg, s, nxt, nn)
            searched += a
            full += b
        seg, nxt = nxt, seg
        nseg = nn
    dc = _DC_PRUNED * searched < full
    for s in numba.prange(nseg):
        if dc:
            st = np.empty((128, 4), np.int64)     # depth <= log2(m) + 1 < 64
            for t in range(4):
                st[0, t] = seg[s, t]
            top = 1
            while top > 0:
                top = _split_segment(prev, Q, cur, arg, low, st, top - 1, st, top - 1)[0]
        else:
            lv = np.empty((64, 2), np.int64)      # levels <= log2(m) + 1 <= 33
            _smawk_rows(prev, Q, cur, arg, low, work, lv, seg[s, 0], seg[s, 1], seg[s, 2],
                        min(seg[s, 3], seg[s, 1]))
    return 1 if dc else 0


_B55 = np.uint64(0x5555555555555555)
_B33 = np.uint64(0x3333333333333333)
_B0F = np.uint64(0x0F0F0F0F0F0F0F0F)


def _popcount(x):
    """Number of set bits of the uint64 ``x`` (SWAR, no multiplication, so
    interpreted NumPy scalars never overflow either)."""
    x = x - ((x >> np.uint64(1)) & _B55)
    x = (x & _B33) + ((x >> np.uint64(2)) & _B33)
    x = (x + (x >> np.uint64(4))) & _B0F
    x = x + (x >> np.uint64(8))
    x = x + (x >> np.uint64(16))
    x = x + (x >> np.uint64(32))
    return np.int64(x & np.uint64(0x7F))


def _pack_row(arg, c, m, row):
    """Store the argmins ``arg[c..m-1]`` of DP row c in the zeroed bit row ``row``.

    :func:`_dc_row` makes a row's argmins non-decreasing in i (each row's
    search interval ends / starts at its neighbours' argmins), with
    ``c <= arg[i] <= i``: entry i sets bit ``(i − c) + (arg[i] − c)``, i.e.
    the unary code of the increments (Elias-Fano without low bits).  At most
    ``2·(m − c)`` bits: 2 bits per entry instead of an int32.
    """
    one = np.uint64(1)
    for i in range(c, m):
        p = (i - c) + (np.int64(arg[i]) - c)
        row[p >> 6] |= one << np.uint64(p & 63)


def _packed_arg(row, c, i):
    """``arg[i]`` of a row packed by :func:`_pack_row`: the position p of its
    (i − c + 1)-th set bit gives ``arg[i] = p − (i − c) + c``."""
    r = i - c + 1
    w = 0
    x = row[0]
    n = _popcount(x)
    while n < r:
        r -= n
        w += 1
        x = row[w]
        n = _popcount(x)
    b = 0
    while True:
        if (x >> np.uint64(b)) & np.uint64(1):
            r -= 1
            if r == 0:
                break
        b += 1
    return w * 64 + b - (i - c) + c


def _optimal_dp_py(y, cnt, ccum, k):
    """DP of Grønlund et al. (2017) §2.2, each row by :func:`_dc_row`
    (divide and conquer into segments, SMAWK within each).

    D[c][i] = min_{c <= j <= i} D[c-1][j-1] + cost(j, i).  Returns the
    cluster start indices (k,) and the DP value.  Back-pointers: rows
    1..k-1 packed 2 bits per entry (:func:`_pack_row`); the argmins of the
    row being computed and of the previous one (its search lower bounds) in
    two int32 arrays; SMAWK's column lists in one int32 array of 2·m.
    """
    m = y.size
    Q = _dp_prefix_py(y, cnt)
    prev = np.empty(m)
    cur = np.empty(m)
    arg = np.zeros(m, np.int32)
    low = np.zeros(m, np.int32)          # row 0: its one cluster starts at 0
    work = np.empty(2 * m, np.int32)     # SMAWK column lists (see _smawk_rows)
    packed = np.zeros((max(k - 1, 0), (2 * m + 63) >> 6), np.uint64)
    for i in range(m):
        prev[i] = _dp_cost(Q, 0, i + 1)
    for c in range(1, k):
        for i in range(c):
            cur[i] = np.inf
        _dc_row(prev, Q, cur, arg, low, c, m, work)
        _pack_row(arg, c, m, packed[c - 1])
        prev, cur = cur, prev
        arg, low = low, arg
    starts = np.zeros(k, np.int64)
    end = m - 1
    for c in range(k - 1, 0, -1):
        j = _packed_arg(packed[c - 1], c, end)
        starts[c] = j
        end = j - 1
    return starts, prev[m - 1]


def _jit_rebound(func, inline="never", parallel=False, **globals_):
    """Compile ``func`` with some of its global helpers replaced by compiled ones."""
    g = dict(func.__globals__)
    g.update(globals_)
    clone = types.FunctionType(func.__code__, g, func.__name__, func.__defaults__)
    clone.__module__ = func.__module__
    clone.__qualname__ = func.__qualname__
    return numba.njit(cache=True, inline=inline, parallel=parallel)(clone)


_two_sum_nb = numba.njit(cache=True)(_two_sum)
_split_nb = numba.njit(cache=True)(_split)
_two_prod_nb = _jit_rebound(_two_prod, _split=_split_nb)
_dp_cost_nb = numba.njit(cache=True, inline="always")(_dp_cost)
_dp_prefix_nb = _jit_rebound(_dp_prefix_py, _two_sum=_two_sum_nb, _two_prod=_two_prod_nb)
# Under NUMBA_DISABLE_JIT the "compiled" kernels run interpreted: keep int indices there.
_ix_nb = int if numba.config.DISABLE_JIT else numba.njit(cache=True, inline="always")(_ix_u64)
_row_min_nb = _jit_rebound(_row_min, inline="always", _dp_cost=_dp_cost_nb, _ix=_ix_nb)
_split_segment_nb = _jit_rebound(_split_segment, inline="always", _row_min=_row_min_nb)
_entry_nb = _jit_rebound(_entry, inline="always", _dp_cost=_dp_cost_nb, _ix=_ix_nb)
_row_floor_nb = _jit_rebound(_row_floor, inline="always", _ix=_ix_nb)
_reduce_nb = _jit_rebound(_reduce, _entry=_entry_nb, _row_floor=_row_floor_nb, _ix=_ix_nb)
_interpolate_nb = _jit_rebound(_interpolate, _entry=_entry_nb, _row_floor=_row_floor_nb, _ix=_ix_nb)
_smawk_rows_nb = _jit_rebound(_smawk_rows, _reduce=_reduce_nb, _interpolate=_interpolate_nb,
                              _ix=_ix_nb)
_dc_row_nb = _jit_rebound(_dc_row, parallel=True, _split_segment=_split_segment_nb,
                          _smawk_rows=_smawk_rows_nb)
_popcount_nb = numba.njit(cache=True, inline="always")(_popcount)
_pack_row_nb = numba.njit(cache=True)(_pack_row)
_packed_arg_nb = _jit_rebound(_packed_arg, _popcount=_popcount_nb)
_optimal_dp_nb = _jit_rebound(_optimal_dp_py, _dp_cost=_dp_cost_nb, _dp_prefix_py=_dp_prefix_nb,
                              _dc_row=_dc_row_nb, _pack_row=_pack_row_nb,
                              _packed_arg=_packed_arg_nb)


def optimal_dp(y, cnt, ccum, k):
    """Cluster starts and DP cost for centred sorted distinct ``y`` (Numba)."""
    return _optimal_dp_nb(y, cnt, ccum, k)


def optimal_dp_twin(y, cnt, ccum, k):
    """Same DP interpreted by CPython (twin of :func:`optimal_dp`)."""
    return _optimal_dp_py(y, cnt, ccum, k)


# -- vector quantization (product quantization) -----------------------------------------
@numba.njit(cache=True, parallel=True)
def vq_assign(X, C):
    """Index of the nearest row of C for each row of X.

    Squared Euclidean distance in float64, coordinates summed in ascending
    order; the lowest index wins ties.  Rows are independent (prange), so
    the result does not depend on the thread count.
    """
    n, d = X.shape
    k = C.shape[0]
    out = np.empty(n, np.int64)
    for r in numba.prange(n):
        best = np.inf
        arg = 0
        for c in range(k):
            s = 0.0
            for j in range(d):
                t = X[r, j] - C[c, j]
                s += t * t
            if s < best:
                best = s
                arg = c
        out[r] = arg
    return out


def vq_assign_twin(X, C):
    s = np.zeros((X.shape[0], C.shape[0]))
    for j in range(X.shape[1]):
        t = X[:, j][:, None] - C[:, j][None, :]
        s += t * t
    return np.argmin(s, axis=1).astype(np.int64)


@numba.njit(cache=True)
def vq_means(X, codes, C_old, to32, emin, n_limbs):
    """Per-cluster, per-coordinate exactly rounded means; empty clusters keep C_old."""
    n, d = X.shape
    k = C_old.shape[0]
    C = C_old.copy()
    sums = np.zeros((k, d, n_limbs), np.int64)
    counts = np.zeros(k, np.int64)
    work = np.zeros(n_limbs, np.int64)
    for r in range(n):
        c = codes[r]
        counts[c] += 1
        for j in range(d):
            _add_entry(sums[c, j], X[r, j], 1, emin)
    for c in range(k):
        if counts[c] > 0:
            for j in range(d):
                C[c, j] = _centroid(_limbs_to_float(sums[c, j], emin, work), counts[c], to32)
    return C


def vq_means_twin(X, codes, C_old, to32):
    C = C_old.copy()
    for c in range(C.shape[0]):
        rows = X[codes == c]
        if rows.shape[0]:
            for j in range(X.shape[1]):
                v = math.fsum(rows[:, j].tolist()) / float(rows.shape[0])
                C[c, j] = float(np.float32(v)) if to32 else v
    return C
