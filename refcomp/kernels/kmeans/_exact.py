"""Exact superaccumulator sums: the cell sums of the k-means kernels.

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

The sums are taken over ``merge_distinct``'s sorted distinct values with
their counts; ``_centroid`` divides an exact sum by the count (the one
float64 division of a mean, then the float32 rounding for float32 data).

Twins: the parallel ``block_prefix`` is checked against a sequential
running sum, the bit-field ``exact_layout`` against ``np.frexp``,
``merge_distinct`` against ``np.sort`` of the concatenation with
``flatnonzero``; the exact sums themselves against :func:`math.fsum` by
the twins of the Lloyd and vector-quantization kernels.

Private module: inputs are validated, finite, contiguous float64/int64.
"""

import math

import numba
import numpy as np

__all__ = ["exact_layout", "exact_layout_twin", "block_prefix", "block_prefix_twin",
           "merge_distinct", "merge_distinct_twin", "BLOCK"]

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
