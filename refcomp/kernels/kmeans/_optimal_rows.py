"""Row solvers of the optimal 1-D k-means DP: divide and conquer, and SMAWK.

One DP row ``D[c][i] = min_{c<=j<=i} D[c-1][j-1] + cost(j, i)`` asks for
the leftmost row minima of a totally monotone matrix.  :func:`_dc_row`
splits the row by monotone divide and conquer (:func:`_split_segment`)
into segments, then solves each segment by SMAWK (:func:`_smawk_rows`,
with :func:`_reduce` and :func:`_interpolate`) or by the same divide and
conquer, the segments in parallel.

Written once in plain Python (the twins run them interpreted: there
``numba.prange`` is ``range`` and array indices are Python ints, uint64
when compiled, see :func:`._optimal_cost._ix`); the ``*_nb`` names are
the compiled versions (:func:`._jit._jit_rebound`).
"""

import numba
import numpy as np

from ._jit import _jit_rebound
from ._optimal_cost import _dp_cost, _dp_cost_nb, _ix, _ix_nb


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
