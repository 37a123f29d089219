"""WebGraph (Boldi-Vigna) adjacency-list coding kernels (Numba) and Python twins.

Layout of one row (the bit stream of :mod:`refcomp.coding.webgraph`):
gamma(d); if d > 0: [unary(r) when window > 0], [if r > 0: gamma(b), then
b block lengths, the first as is and the others minus one, all gamma]; if
extras e > 0: [when L_min > 0: gamma(#intervals), each interval's left end
(the first from the origin, the others as ``left - previous_end - 1``) and
``length - L_min``, all gamma], then the residuals: the first from the
origin, the others as ``gap - 1``, all zeta_k.  "From the origin": the value
itself (``origin=0``) or WebGraph's ``int2nat(value - x)`` with x the row
(``origin=1``; ``int2nat(v) = 2v`` for v >= 0, ``-2v - 1`` otherwise).

Encoder: for each non-empty row, the reference r in 0..min(window, x)
(skipping empty reference rows) with the fewest bits for the row; ties to
the smallest r (0 = no reference).  Copy blocks alternate copy/skip over the
reference list, starting with a copy block (possibly of length 0); the last
block is implicit (copy when b is even).  Intervals are the maximal runs of
consecutive extras of length >= L_min, scanned left to right.

Decoding status codes (returned, never raised): 0 ok, 1 truncated, 2 a
value outside its allowed range (degree, reference, block, column, count),
3 a code word too long for int64.  Bit order and code words: those of
:mod:`refcomp.coding.universal` (gamma = zeta_1, zeta_k; MSB-first).
The plain-Python twins are in :mod:`refcomp.coding._webgraph_twins`.
"""

import numba
import numpy as np

from ._universal_kernels import GAMMA, ZETA, _emit, _get, _put, _zeros

OK, TRUNCATED, BAD, TOO_LARGE = 0, 1, 2, 3
NEED = -1                                   # internal: a buffer must grow (decode_kernel)
_U1 = np.uint64(1)
_TOP = np.uint64(1 << 63)

__all__ = ["encode_kernel", "decode_kernel", "OK", "TRUNCATED", "BAD", "TOO_LARGE"]


# ------------------------------------------------------------------ Numba encoder

@numba.njit(cache=True)
def _int2nat(v):
    return 2 * v if v >= 0 else -2 * v - 1


@numba.njit(cache=True)
def _code_row(indptr, indices, x, r, window, lmin, k, origin, out, pos, write, incopy, ext):
    """Code row x (its degree already written) with reference r; returns the new pos."""
    s0, s1 = indptr[x], indptr[x + 1]
    d = s1 - s0
    if window > 0:
        pos = _put(out, pos + r, _U1, 1, write)            # unary(r): r zeros, a one
    for t in range(d):
        incopy[t] = False
    if r > 0:
        r0, r1 = indptr[x - r], indptr[x - r + 1]
        # pass 1: count the state changes of the copy/skip pattern over R
        b = 0
        state = True                                        # starts in a copy block
        p = s0
        for q in range(r0, r1):
            v = indices[q]
            while p < s1 and indices[p] < v:
                p += 1
            c = p < s1 and indices[p] == v
            if c != state:
                b += 1
                state = c
        pos = _emit(out, pos, np.uint64(b), GAMMA, 0, write)
        # pass 2: write the explicit blocks, mark the copied successors
        state = True
        run = 0
        nb = 0
        p = s0
        for q in range(r0, r1):
            v = indices[q]
            while p < s1 and indices[p] < v:
                p += 1
            c = p < s1 and indices[p] == v
            if c:
                incopy[p - s0] = True
            if c != state:
                val = run if nb == 0 else run - 1
                pos = _emit(out, pos, np.uint64(val), GAMMA, 0, write)
                nb += 1
                state = c
                run = 0
            run += 1
    e = 0
    for t in range(d):
        if not incopy[t]:
            ext[e] = indices[s0 + t]
            e += 1
    if e == 0:
        return pos
    nres = e
    if lmin > 0:
        ni = 0
        t = 0
        while t < e:                                        # count maximal runs >= lmin
            u = t + 1
            while u < e and ext[u] == ext[u - 1] + 1:
                u += 1
            if u - t >= lmin:
                ni += 1
            t = u
        pos = _emit(out, pos, np.uint64(ni), GAMMA, 0, write)
        t = 0
        prev_end = -1
        nres = 0
        while t < e:
            u = t + 1
            while u < e and ext[u] == ext[u - 1] + 1:
                u += 1
            if u - t >= lmin:
                left = ext[t]
                if prev_end < 0:
                    first = left if origin == 0 else _int2nat(left - x)
                    pos = _emit(out, pos, np.uint64(first), GAMMA, 0, write)
                else:
                    pos = _emit(out, pos, np.uint64(left - prev_end - 1), GAMMA, 0, write)
                pos = _emit(out, pos, np.uint64(u - t - lmin), GAMMA, 0, write)
                prev_end = left + (u - t)
            else:
                for w in range(t, u):                       # keep as residuals, in place
                    ext[nres] = ext[w]
                    nres += 1
            t = u
    for t in range(nres):
        if t == 0:
            v = ext[0] if origin == 0 else _int2nat(ext[0] - x)
        else:
            v = ext[t] - ext[t - 1] - 1
        pos = _emit(out, pos, np.uint64(v), ZETA, k, write)
    return pos


@numba.njit(cache=True)
def _encode(indptr, indices, window, lmin, k, origin, out, write, refs):
    n = indptr.shape[0] - 1
    maxd = 1
    for x in range(n):
        if indptr[x + 1] - indptr[x] > maxd:
            maxd = indptr[x + 1] - indptr[x]
    incopy = np.zeros(maxd, dtype=np.bool_)
    ext = np.empty(maxd, dtype=np.int64)
    pos = 0
    for x in range(n):
        d = indptr[x + 1] - indptr[x]
        pos = _emit(out, pos, np.uint64(d), GAMMA, 0, write)
        if d == 0:
            continue
        if write:
            best = refs[x]
        else:
            best = 0
            cost = _code_row(indptr, indices, x, 0, window, lmin, k, origin, out, 0, False,
                             incopy, ext)
            top = window if window < x else x
            for r in range(1, top + 1):
                if indptr[x - r + 1] == indptr[x - r]:
                    continue                                # an empty list copies nothing
                c = _code_row(indptr, indices, x, r, window, lmin, k, origin, out, 0, False,
                              incopy, ext)
                if c < cost:
                    cost = c
                    best = r
            refs[x] = best
        pos = _code_row(indptr, indices, x, best, window, lmin, k, origin, out, pos, write,
                        incopy, ext)
    return pos


def encode_kernel(indptr, indices, window, lmin, k, origin):
    """``(payload uint8 array, payload bits)`` of the rows (int64 CSR arrays)."""
    refs = np.zeros(max(0, indptr.shape[0] - 1), dtype=np.int64)
    empty = np.zeros(0, dtype=np.uint8)
    nbits = _encode(indptr, indices, window, lmin, k, origin, empty, False, refs)
    out = np.zeros((nbits + 7) // 8, dtype=np.uint8)
    _encode(indptr, indices, window, lmin, k, origin, out, True, refs)
    return out, int(nbits)


# ------------------------------------------------------------------ Numba decoder

@numba.njit(cache=True)
def _read_gamma(data, pos, total):
    z, pos, st = _zeros(data, pos, total, 63)
    if st != OK:
        return 0, pos, (TOO_LARGE if st == 2 else st)
    if pos + z > total:
        return 0, pos, TRUNCATED
    n = (_U1 << np.uint64(z)) | _get(data, pos, z)
    pos += z
    if n > _TOP:
        return 0, pos, TOO_LARGE
    return np.int64(n - _U1), pos, OK


@numba.njit(cache=True)
def _read_zeta(data, pos, total, k):
    h, pos, st = _zeros(data, pos, total, 63 // k)
    if st != OK:
        return 0, pos, (TOO_LARGE if st == 2 else st)
    if k == 1:
        if pos + h > total:
            return 0, pos, TRUNCATED
        n = (_U1 << np.uint64(h)) | _get(data, pos, h)
        pos += h
    else:
        hk = h * k
        w = hk + k - 1
        if pos + w > total:
            return 0, pos, TRUNCATED
        if w > 64:
            if _get(data, pos, w - 64) != np.uint64(0):
                return 0, pos, TOO_LARGE
            pos += w - 64
            w = 64
        v = _get(data, pos, w)
        pos += w
        lo = _U1 << np.uint64(hk)
        if v < lo:
            n = lo + v
        else:
            if pos + 1 > total:
                return 0, pos, TRUNCATED
            if v >= _TOP:
                return 0, pos, TOO_LARGE
            n = (v << _U1) | _get(data, pos, 1)
            pos += 1
    if n > _TOP:
        return 0, pos, TOO_LARGE
    return np.int64(n - _U1), pos, OK


@numba.njit(cache=True)
def _nat2int(v):
    return v >> 1 if (v & 1) == 0 else -((v + 1) >> 1)


@numba.njit(cache=True)
def _decode(data, x0, pos0, n_rows, n_cols, nnz, window, lmin, k, origin, indptr, indices,
            bc, bi, br, need):
    """Decode rows x0.. from bit pos0 (the start of row x0).  When a buffer is too
    small for entries about to be written, returns NEED at the row's first bit
    with ``need = (buffer, size)`` (0 bc, 1 bi, 2 br, 3 indices): the caller
    grows it and resumes at that row, so the loops here never reassign arrays
    (which would cost ~20 % in Numba) and every output is as without growth."""
    total = np.int64(data.shape[0]) * 8
    pos = np.int64(pos0)
    cnt = indptr[x0]
    for x in range(x0, n_rows):
        row_pos = pos
        d, pos, st = _read_gamma(data, pos, total)
        if st != OK:
            return st, pos, x
        if d > n_cols or d > nnz - cnt:
            return BAD, pos, x
        if d == 0:
            indptr[x + 1] = cnt
            continue
        r = np.int64(0)
        if window > 0:
            r, pos, st = _zeros(data, pos, total, window)
            if st != OK:
                return (BAD if st == 2 else st), pos, x
            if r > x:
                return BAD, pos, x
        nc = 0
        if r > 0:
            r0, r1 = indptr[x - r], indptr[x - r + 1]
            lr = r1 - r0
            b, pos, st = _read_gamma(data, pos, total)
            if st != OK:
                return st, pos, x
            if b > lr:
                return BAD, pos, x
            q = r0
            state = True
            for t in range(b):
                v, pos, st = _read_gamma(data, pos, total)
                if st != OK:
                    return st, pos, x
                run = v if t == 0 else v + 1
                if run > r1 - q:
                    return BAD, pos, x
                if state:
                    if nc + run > d:
                        return BAD, pos, x
                    if nc + run > bc.shape[0]:
                        need[0], need[1] = 0, nc + run
                        return NEED, row_pos, x
                    for u in range(run):
                        bc[nc] = indices[q + u]
                        nc += 1
                q += run
                state = not state
            if state:                                       # the implicit last block
                if nc + (r1 - q) > d:
                    return BAD, pos, x
                if nc + (r1 - q) > bc.shape[0]:
                    need[0], need[1] = 0, nc + (r1 - q)
                    return NEED, row_pos, x
                for u in range(r1 - q):
                    bc[nc] = indices[q + u]
                    nc += 1
        e = d - nc
        ni_tot = 0
        nr = 0
        if e > 0:
            if lmin > 0:
                ni, pos, st = _read_gamma(data, pos, total)
                if st != OK:
                    return st, pos, x
                if ni > e // lmin:
                    return BAD, pos, x
                prev_end = np.int64(-1)
                for t in range(ni):
                    v, pos, st = _read_gamma(data, pos, total)
                    if st != OK:
                        return st, pos, x
                    if prev_end < 0:
                        left = v if origin == 0 else x + _nat2int(v)
                    else:
                        if v > n_cols:
                            return BAD, pos, x
                        left = prev_end + 1 + v
                    ln, pos, st = _read_gamma(data, pos, total)
                    if st != OK:
                        return st, pos, x
                    if left < 0 or left >= n_cols or ln > e - ni_tot - lmin \
                            or ln + lmin > n_cols - left:
                        return BAD, pos, x
                    ln += lmin
                    if ni_tot + ln > bi.shape[0]:
                        need[0], need[1] = 1, ni_tot + ln
                        return NEED, row_pos, x
                    for u in range(ln):
                        bi[ni_tot + u] = left + u
                    ni_tot += ln
                    prev_end = left + ln
            nr = e - ni_tot
            # a zeta code has at least one bit: the residuals that can be read fit in
            # min(nr, bits left), whatever nr the degree declares
            fit = nr if nr < total - pos else total - pos
            if fit > br.shape[0]:
                need[0], need[1] = 2, fit
                return NEED, row_pos, x
            prev = np.int64(-1)
            for t in range(nr):
                v, pos, st = _read_zeta(data, pos, total, k)
                if st != OK:
                    return st, pos, x
                if t == 0:
                    val = v if origin == 0 else x + _nat2int(v)
                else:
                    if v >= n_cols:
                        return BAD, pos, x
                    val = prev + 1 + v
                if val < 0 or val >= n_cols:
                    return BAD, pos, x
                br[t] = val
                prev = val
        # merge copied, interval and residual successors; strictly increasing
        if cnt + d > indices.shape[0]:                      # d entries are in bc, bi, br
            need[0], need[1] = 3, cnt + d
            return NEED, row_pos, x
        a = 0
        bb = 0
        c = 0
        last = np.int64(-1)
        for t in range(d):
            best = np.int64(-1)
            src = -1
            if a < nc:
                best, src = bc[a], 0
            if bb < ni_tot and (src < 0 or bi[bb] < best):
                best, src = bi[bb], 1
            if c < nr and (src < 0 or br[c] < best):
                best, src = br[c], 2
            if best <= last:
                return BAD, pos, x
            if src == 0:
                a += 1
            elif src == 1:
                bb += 1
            else:
                c += 1
            indices[cnt + t] = best
            last = best
        cnt += d
        indptr[x + 1] = cnt
    if cnt != nnz:
        return BAD, pos, n_rows
    return OK, pos, n_rows


def _grown(buf, size, limit):
    """A copy of ``buf`` in a buffer of min(max(size, 2 * len), limit) entries
    (``size <= limit``): doubling, so O(log) resumptions of the decoder."""
    out = np.zeros(min(max(size, 2 * buf.shape[0]), limit), dtype=buf.dtype)
    out[:buf.shape[0]] = buf
    return out


def decode_kernel(data, n_rows, n_cols, nnz, window, lmin, k, origin):
    """``(status, end_bit, row, indptr, indices)``; ``n_rows`` validated by the
    caller (at most one row per payload bit).  ``nnz`` and ``n_cols`` are only
    upper bounds here: the buffers start small and grow (doubling, capped) when
    the decoder asks for room for entries it is about to write, entries whose
    count the bits read so far justify (copies of a decoded row, an interval
    read, residuals of at least one bit each).  Memory is thus O(rows + entries
    decoded), never what the header declares; but an interval or a copied block
    costs O(log length) bits, so a valid stream may legitimately expand, which
    the caller's ``max_nnz`` bounds."""
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    lim = min(n_cols, nnz)                                  # entries of one row
    indices = np.zeros(min(nnz, 8 * data.shape[0] + 1024), dtype=np.int64)
    bufs = [np.zeros(min(lim, 64), dtype=np.int64) for _ in range(3)]
    need = np.zeros(2, dtype=np.int64)
    x, pos = 0, 0
    while True:
        st, pos, x = _decode(data, x, pos, n_rows, n_cols, nnz, window, lmin, k, origin,
                             indptr, indices, bufs[0], bufs[1], bufs[2], need)
        if st != NEED:
            break
        which, size = int(need[0]), int(need[1])
        if which == 3:
            indices = _grown(indices, size, nnz)
        else:
            bufs[which] = _grown(bufs[which], size, lim)
    if st != OK:
        indices = indices[:0]
    return int(st), int(pos), int(x), indptr, indices
