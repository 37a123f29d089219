"""Dependent-quantization trellis of NNC (8 states), Numba kernel and plain-Python twin.

Arithmetic (IEEE double throughout, no fused operations): for a weight ``w``
(float32 promoted exactly), ``s = -1 if w < 0 else 1``, ``o = (g * w) * s``
with ``g = 1 / step`` (double), candidates ``t = m .. m + 3`` with
``m = max(1, trunc(o) - 1)``, distortion ``d(t) = c * (o - t)**2`` and
``d(0) = c * o**2`` (``c = 1`` without a rate term).  Candidate ``t`` sits
in slot ``t & 3``, zero in slot 4; its coded value is ``s * ((t + 1) >> 1)``.
Path costs are summed left to right in scan order; each state keeps the
first branch of strictly smallest cost in NNCodec's branch order
(:data:`BRANCHES`); the end state is the first of smallest cost.
"""
import numba
import numpy as np

from ..coding.cabac import TRANS

_DBL_MAX = np.finfo(np.float64).max


def _branches():
    """Per next state, its 3 incoming (previous state, slot) in NNCodec's order."""
    tr = TRANS.tolist()
    conn = [[] for _ in range(8)]
    for prev in range(8):
        q = prev & 1
        conn[tr[prev][0]] += [(prev, 3 * q), (prev, 4)]
        conn[tr[prev][1]].append((prev, 2 - q))
    return np.array(conn, dtype=np.int64)


#: BRANCHES[next_state] = [(prev_state, slot)] x 3.
BRANCHES = _branches()
BRANCHES.setflags(write=False)


@numba.njit(cache=True)
def tcq_kernel(w, g, c, out):
    """Trellis over ``w`` (float64, scan order); writes levels (int32,
    reconstruction indices: value = level * step) into ``out``."""
    n = w.shape[0]
    prev_cost = np.full(8, 0.5 * _DBL_MAX)
    prev_cost[0] = 0.0
    cost = np.empty(8)
    dec_lvl = np.empty((n, 8), np.int64)
    dec_prev = np.empty((n, 8), np.int64)
    dist = np.empty(5)
    lvl = np.empty(5, np.int64)
    for i in range(n):
        x = w[i]
        s = -1 if x < 0 else 1
        o = (g * x) * s
        m = max(1, np.int64(o) - 1)
        dist[4] = c * (o * o)
        lvl[4] = 0
        for t in range(m, m + 4):
            d = o - t
            dist[t & 3] = c * (d * d)
            lvl[t & 3] = s * ((t + 1) >> 1)
        for ns in range(8):
            best = _DBL_MAX
            bl = 0
            bp = 0
            for b in range(3):
                p = BRANCHES[ns, b, 0]
                k = BRANCHES[ns, b, 1]
                v = prev_cost[p] + dist[k]
                if v < best:
                    best = v
                    bl = lvl[k]
                    bp = p
            cost[ns] = best
            dec_lvl[i, ns] = bl
            dec_prev[i, ns] = bp
        for ns in range(8):
            prev_cost[ns] = cost[ns]
    st = 0
    for ns in range(1, 8):
        if prev_cost[ns] < prev_cost[st]:
            st = ns
    for i in range(n - 1, -1, -1):
        v = dec_lvl[i, st]
        st = dec_prev[i, st]
        if v != 0:
            v = 2 * v + ((st & 1) if v < 0 else -(st & 1))
        out[i] = v


def tcq_twin(w, g, c):
    """Plain-Python twin of :func:`tcq_kernel` (lists, Python floats and ints)."""
    br = BRANCHES.tolist()
    costs = [0.0] + [0.5 * float(_DBL_MAX)] * 7
    back = []
    for x in (float(v) for v in w):
        s = -1 if x < 0 else 1
        o = (g * x) * s
        m = max(1, int(o) - 1)
        slots = [None] * 5
        slots[4] = (c * (o * o), 0)
        for t in range(m, m + 4):
            slots[t & 3] = (c * ((o - t) * (o - t)), s * ((t + 1) >> 1))
        new, step = [], []
        for ns in range(8):
            best = None
            for p, k in br[ns]:
                v = costs[p] + slots[k][0]
                if best is None or v < best[0]:
                    best = (v, slots[k][1], p)
            new.append(best[0])
            step.append((best[1], best[2]))
        costs = new
        back.append(step)
    st = min(range(8), key=lambda k: (costs[k], k))
    res = [0] * len(back)
    for i in range(len(back) - 1, -1, -1):
        v, st = back[i][st]
        if v:
            v = 2 * v + ((st & 1) if v < 0 else -(st & 1))
        res[i] = v
    return np.array(res, dtype=np.int32)
