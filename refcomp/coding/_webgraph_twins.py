"""Plain-Python twins of the WebGraph kernels (:mod:`refcomp.coding._webgraph_kernels`).

The same layout and encoder choices, transcribed with Python lists and ints on
the :class:`refcomp.coding._bitio.BitWriter` / ``BitReader``; tests assert
identical bytes and identical decoded arrays, and a non-zero status on the
same rejected streams.
"""

import numpy as np

from .._errors import DecodeError
from ._bitio import BitReader, BitWriter
from ._universal_kernels import GAMMA, ZETA, read_twin, write_twin
from ._webgraph_kernels import BAD, OK, TOO_LARGE, TRUNCATED

__all__ = ["encode_twin", "decode_twin"]


def _row_bits_twin(S, R, x, window, lmin, k, origin, w):
    """Write row S (degree already written) with reference list R (None: r = 0)."""
    Sset = set(S)
    copied = set()
    if R is not None:
        runs, state, run = [], True, 0
        for v in R:
            c = v in Sset
            if c:
                copied.add(v)
            if c != state:
                runs.append(run)
                state, run = c, 0
            run += 1
        write_twin(w, len(runs), GAMMA, 0)
        for t, b in enumerate(runs):
            write_twin(w, b if t == 0 else b - 1, GAMMA, 0)
    ext = [v for v in S if v not in copied]
    if not ext:
        return
    res = ext
    if lmin > 0:
        groups, t = [], 0
        while t < len(ext):
            u = t + 1
            while u < len(ext) and ext[u] == ext[u - 1] + 1:
                u += 1
            groups.append(ext[t:u])
            t = u
        intervals = [g for g in groups if len(g) >= lmin]
        res = [v for g in groups if len(g) < lmin for v in g]
        write_twin(w, len(intervals), GAMMA, 0)
        prev_end = None
        for g in intervals:
            if prev_end is None:
                first = g[0] if origin == 0 else (2 * (g[0] - x) if g[0] >= x
                                                  else 2 * (x - g[0]) - 1)
                write_twin(w, first, GAMMA, 0)
            else:
                write_twin(w, g[0] - prev_end - 1, GAMMA, 0)
            write_twin(w, len(g) - lmin, GAMMA, 0)
            prev_end = g[0] + len(g)
    for t, v in enumerate(res):
        if t == 0:
            val = v if origin == 0 else (2 * (v - x) if v >= x else 2 * (x - v) - 1)
        else:
            val = v - res[t - 1] - 1
        write_twin(w, val, ZETA, k)


def encode_twin(indptr, indices, window, lmin, k, origin):
    """Twin of :func:`encode_kernel` (Python lists and ints, BitWriter)."""
    rows = [indices[indptr[x]:indptr[x + 1]].tolist() for x in range(len(indptr) - 1)]
    w = BitWriter()
    for x, S in enumerate(rows):
        write_twin(w, len(S), GAMMA, 0)
        if not S:
            continue
        best, best_bits = 0, None
        for r in range(0, min(window, x) + 1):
            if r > 0 and not rows[x - r]:
                continue
            t = BitWriter()
            if window > 0:
                t.write_unary(r)
            _row_bits_twin(S, rows[x - r] if r else None, x, window, lmin, k, origin, t)
            if best_bits is None or t.nbits < best_bits:
                best, best_bits = r, t.nbits
        if window > 0:
            w.write_unary(best)
        _row_bits_twin(S, rows[x - best] if best else None, x, window, lmin, k, origin, w)
    return np.frombuffer(w.getvalue(), dtype=np.uint8).copy(), w.nbits


def decode_twin(data, n_rows, n_cols, nnz, window, lmin, k, origin):
    """Twin of :func:`decode_kernel` (BitReader, Python lists, which grow as
    entries are decoded); any inconsistency gives a non-zero status (BAD), a
    short stream TRUNCATED."""
    r_ = BitReader(data.tobytes())
    rows = []
    cnt = 0

    def fail(status, x):
        # like the kernel, nothing sized by the header's nnz: it may lie
        indptr = np.zeros(n_rows + 1, dtype=np.int64)
        return status, r_.pos, x, indptr, np.zeros(0, dtype=np.int64)

    try:
        for x in range(n_rows):
            d = read_twin(r_, GAMMA, 0)
            if d > n_cols or d > nnz - cnt:
                return fail(BAD, x)
            if d == 0:
                rows.append([])
                continue
            r = r_.read_unary(window) if window > 0 else 0
            if r > x:
                return fail(BAD, x)
            copied = []
            if r > 0:
                R = rows[x - r]
                b = read_twin(r_, GAMMA, 0)
                if b > len(R):
                    return fail(BAD, x)
                q, state = 0, True
                for t in range(b):
                    run = read_twin(r_, GAMMA, 0) + (0 if t == 0 else 1)
                    if run > len(R) - q:
                        return fail(BAD, x)
                    if state:
                        copied += R[q:q + run]
                    q += run
                    state = not state
                if state:
                    copied += R[q:]
            if len(copied) > d:
                return fail(BAD, x)
            e = d - len(copied)
            ivals, res = [], []
            if e > 0:
                if lmin > 0:
                    ni = read_twin(r_, GAMMA, 0)
                    if ni > e // lmin:
                        return fail(BAD, x)
                    prev_end = None
                    for _ in range(ni):
                        v = read_twin(r_, GAMMA, 0)
                        if prev_end is None:
                            left = v if origin == 0 else x + (v >> 1 if v % 2 == 0
                                                              else -((v + 1) >> 1))
                        else:
                            left = prev_end + 1 + v
                        ln = read_twin(r_, GAMMA, 0) + lmin
                        if left < 0 or left + ln > n_cols or len(ivals) + ln > e:
                            return fail(BAD, x)
                        ivals += range(left, left + ln)
                        prev_end = left + ln
                for t in range(e - len(ivals)):
                    v = read_twin(r_, ZETA, k)
                    if t == 0:
                        val = v if origin == 0 else x + (v >> 1 if v % 2 == 0
                                                         else -((v + 1) >> 1))
                    else:
                        val = res[-1] + 1 + v
                    if val < 0 or val >= n_cols:
                        return fail(BAD, x)
                    res.append(val)
            S = sorted(copied + ivals + res)
            if len(set(S)) != d:
                return fail(BAD, x)
            rows.append(S)
            cnt += d
    except DecodeError as exc:
        return fail(TRUNCATED if "truncated" in str(exc) else TOO_LARGE, len(rows))
    if cnt != nnz:
        return fail(BAD, n_rows)
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum([len(s) for s in rows], out=indptr[1:])
    flat = [v for s in rows for v in s]
    return OK, r_.pos, n_rows, indptr, np.asarray(flat, dtype=np.int64).reshape(-1)
