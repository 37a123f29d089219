"""Dependent-quantization trellis of NNC (8 states; 4-state variant), Numba kernel and twin.

Arithmetic (IEEE double throughout, no fused operations): for a weight ``w``
(float32 promoted exactly), ``s = -1 if w < 0 else 1``, ``o = (g * w) * s``
with ``g = 1 / step`` (double), candidates ``t = m .. m + 3`` with
``m = max(1, trunc(o) - 1)``, distortion ``d(t) = c * (o - t)**2`` and
``d(0) = c * o**2`` (``c = 1`` without a rate term).  Candidate ``t`` sits
in slot ``t & 3``, zero in slot 4; its coded value is ``s * ((t + 1) >> 1)``.
Path costs are summed left to right in scan order; each state keeps the
first branch of strictly smallest cost in NNCodec's branch order
(:data:`BRANCHES`); the end state is the first of smallest cost.  The
4-state machine (:data:`refcomp.coding.cabac.TRANS4`) runs the same trellis
over its own branches (:data:`BRANCHES4`, built by the same rule).
"""
import numba
import numpy as np

from ..coding.cabac import TRANS, TRANS4

_DBL_MAX = np.finfo(np.float64).max


def _branches(trans):
    """Per next state, its 3 incoming (previous state, slot) in NNCodec's order."""
    tr = trans.tolist()
    conn = [[] for _ in range(len(tr))]
    for prev in range(len(tr)):
        q = prev & 1
        conn[tr[prev][0]] += [(prev, 3 * q), (prev, 4)]
        conn[tr[prev][1]].append((prev, 2 - q))
    return np.array(conn, dtype=np.int64)


#: BRANCHES[next_state] = [(prev_state, slot)] x 3 (8 states; BRANCHES4: 4 states).
BRANCHES = _branches(TRANS)
BRANCHES4 = _branches(TRANS4)
BRANCHES.setflags(write=False)
BRANCHES4.setflags(write=False)
#: The branch tables by number of states.
DQ_BRANCHES = {8: BRANCHES, 4: BRANCHES4}


@numba.njit(cache=True, inline="always")
def _slots(x, g, c, dist, lvl):
    """The 4 candidates of weight ``x`` (slot ``t & 3``) and zero (slot 4):
    distortion and coded value."""
    s = -1 if x < 0 else 1
    o = (g * x) * s
    m = max(1, np.int64(o) - 1)
    dist[4] = c * (o * o)
    lvl[4] = 0
    for t in range(m, m + 4):
        d = o - t
        dist[t & 3] = c * (d * d)
        lvl[t & 3] = s * ((t + 1) >> 1)


@numba.njit(cache=True)
def _backtrack(cost, dec_lvl, dec_prev, out):
    """Levels of the cheapest end state's path (first minimum)."""
    st = 0
    for ns in range(1, cost.shape[0]):
        if cost[ns] < cost[st]:
            st = ns
    for i in range(dec_lvl.shape[0] - 1, -1, -1):
        v = dec_lvl[i, st]
        st = dec_prev[i, st]
        if v != 0:
            v = 2 * v + ((st & 1) if v < 0 else -(st & 1))
        out[i] = v


@numba.njit(cache=True)
def tcq_kernel(w, g, c, branches, out):
    """Trellis over ``w`` (float64, scan order); writes levels (int32,
    reconstruction indices: value = level * step) into ``out``."""
    n = w.shape[0]
    ns_n = branches.shape[0]
    prev_cost = np.full(ns_n, 0.5 * _DBL_MAX)
    prev_cost[0] = 0.0
    cost = np.empty(ns_n)
    dec_lvl = np.empty((n, ns_n), np.int64)
    dec_prev = np.empty((n, ns_n), np.int64)
    dist = np.empty(5)
    lvl = np.empty(5, np.int64)
    for i in range(n):
        _slots(w[i], g, c, dist, lvl)
        for ns in range(ns_n):
            best = _DBL_MAX
            bl = 0
            bp = 0
            for b in range(3):
                p = branches[ns, b, 0]
                k = branches[ns, b, 1]
                v = prev_cost[p] + dist[k]
                if v < best:
                    best = v
                    bl = lvl[k]
                    bp = p
            cost[ns] = best
            dec_lvl[i, ns] = bl
            dec_prev[i, ns] = bp
        for ns in range(ns_n):
            prev_cost[ns] = cost[ns]
    _backtrack(prev_cost, dec_lvl, dec_prev, out)


def _backtrack_twin(costs, back):
    st = min(range(len(costs)), key=lambda k: (costs[k], k))
    res = [0] * len(back)
    for i in range(len(back) - 1, -1, -1):
        v, st = back[i][st]
        if v:
            v = 2 * v + ((st & 1) if v < 0 else -(st & 1))
        res[i] = v
    return np.array(res, dtype=np.int32)


def _twin_slots(x, g, c):
    """The 5 candidate (distortion, level) slots of one weight, indexed as the kernels
    index them (slot 4: level 0; slot t & 3: the level of quantizer index t)."""
    s = -1 if x < 0 else 1
    o = (g * x) * s
    m = max(1, int(o) - 1)
    slots = [None] * 5
    slots[4] = (c * (o * o), 0)
    for t in range(m, m + 4):
        slots[t & 3] = (c * ((o - t) * (o - t)), s * ((t + 1) >> 1))
    return slots


def tcq_twin(w, g, c, branches=BRANCHES):
    """Plain-Python twin of :func:`tcq_kernel` (lists, Python floats and ints)."""
    br = branches.tolist()
    costs = [0.0] + [0.5 * float(_DBL_MAX)] * (len(br) - 1)
    back = []
    for x in (float(v) for v in w):
        slots = _twin_slots(x, g, c)
        new, step = [], []
        for ns in range(len(br)):
            best = None
            for p, k in br[ns]:
                v = costs[p] + slots[k][0]
                if best is None or v < best[0]:
                    best = (v, slots[k][1], p)
            new.append(best[0])
            step.append((best[1], best[2]))
        costs = new
        back.append(step)
    return _backtrack_twin(costs, back)


# ----------------------------------------------------------------------------
# Rate-distortion variants (NNCodec's lambda_scale > 0): CABAC rate estimates
# in 1/32768 bit from the encoder's table, on context models that start from
# the default initialisation and adapt along each trellis path.
#
# NNCodec's estimator (CabacRate) has quirks this mirrors exactly: each
# trellis state object keeps its own "previous level" (not copied with the
# contexts when a path is extended), the rate of a branch is evaluated in
# the source state but the contexts are updated in the destination state's
# significance contexts, and its greater-than flag count is
# cabac_unary_length_minus1 (one less than the coder's).
from ..coding.cabac._tables import CURVE, ECO_SETS, EST_BITS, n_contexts  # noqa: E402


@numba.njit(cache=True, inline="always")
def _walk(ctx, c, b, update):
    """Rate of bin ``b`` on model ``ctx[c]`` (and its update when asked)."""
    s = ctx[c, 1]
    r = EST_BITS[512 + (s >> 3), b]
    if update:
        sign = 1 if b else -1
        a0 = ctx[c, 0]
        a1 = s - a0 * 16
        a0 += sign * (CURVE[16 + ((sign * a0) >> 3)] >> (ECO_SETS[0, 0] + 4))
        a1 += sign * (CURVE[16 + ((sign * a1) >> 7)] >> ECO_SETS[0, 1])
        ctx[c, 0] = a0
        ctx[c, 1] = a1 + 16 * a0
    return r


@numba.njit(cache=True)
def _value_rate(ctx, v, state, nb, num_gtx, update):
    nbc = 0 if nb == 0 else (1 if nb < 0 else 2)
    bits = _walk(ctx, 3 * state + nbc, 1 if v != 0 else 0, update)
    if v == 0:
        return bits
    neg = 0 if v > 0 else 1
    bits += _walk(ctx, 48 + nbc, neg, update)
    rem = (v if v > 0 else -v) - 1
    flag = 1 if rem > 0 else 0
    bits += _walk(ctx, 53 + neg, flag, update)
    j = 1
    while flag == 1 and j < num_gtx:
        rem -= 1
        flag = 1 if rem > 0 else 0
        bits += _walk(ctx, 53 + 2 * j + neg, flag, update)
        j += 1
    if flag == 1:
        rem -= 1
        c = 53 + 4 * num_gtx
        lg = 0
        base = 0
        while rem >= base + (1 << lg):
            bits += _walk(ctx, c + lg, 1, update)
            base += 1 << lg
            lg += 1
        bits += _walk(ctx, c + lg, 0, update)
        bits += lg << 15
    return bits


@numba.njit(cache=True)
def _init_ctx(ctx):
    for c in range(ctx.shape[0]):
        ctx[c, 0] = ECO_SETS[0, 3]
        ctx[c, 1] = ECO_SETS[0, 2]


@numba.njit(cache=True)
def tcq_rd_kernel(w, g, c, num_gtx, branches, out):
    """Trellis with rate: cost = path + c * (o - t)**2 + rate(level) (double)."""
    n = w.shape[0]
    ns_n = branches.shape[0]
    nctx = n_contexts(num_gtx)
    bank_ctx = np.zeros((2, ns_n, nctx, 2), np.int64)
    bank_nb = np.zeros((2, ns_n), np.int64)
    for b in range(2):
        for s in range(ns_n):
            _init_ctx(bank_ctx[b, s])
    prev_cost = np.full(ns_n, 0.5 * _DBL_MAX)
    prev_cost[0] = 0.0
    cost = np.empty(ns_n)
    dec_lvl = np.empty((n, ns_n), np.int64)
    dec_prev = np.empty((n, ns_n), np.int64)
    dist = np.empty(5)
    lvl = np.empty(5, np.int64)
    rate = np.empty((ns_n, 5))
    pb = 0
    for i in range(n):
        _slots(w[i], g, c, dist, lvl)
        for p in range(ns_n):
            for k in range(5):
                rate[p, k] = float(_value_rate(bank_ctx[pb, p], lvl[k], p, bank_nb[pb, p],
                                               num_gtx, False))
        cb = 1 - pb
        for ns in range(ns_n):
            best = _DBL_MAX
            bl = 0
            bp = 0
            for b in range(3):
                p = branches[ns, b, 0]
                k = branches[ns, b, 1]
                v = prev_cost[p] + dist[k] + rate[p, k]
                if v < best:
                    best = v
                    bl = lvl[k]
                    bp = p
            cost[ns] = best
            dec_lvl[i, ns] = bl
            dec_prev[i, ns] = bp
            bank_ctx[cb, ns, :, :] = bank_ctx[pb, bp, :, :]
            _value_rate(bank_ctx[cb, ns], bl, ns, bank_nb[cb, ns], num_gtx, True)
            bank_nb[cb, ns] = bl
        for ns in range(ns_n):
            prev_cost[ns] = cost[ns]
        pb = cb
    _backtrack(prev_cost, dec_lvl, dec_prev, out)


@numba.njit(cache=True)
def urq_rd_kernel(w, g, c, num_gtx, out):
    """Uniform quantizer with rate: per weight, the cheapest of 0 and the two
    levels below round(|w| g), cost c (o - t)**2 + rate(t) (rate of +t)."""
    nctx = n_contexts(num_gtx)
    ctx = np.zeros((nctx, 2), np.int64)
    _init_ctx(ctx)
    nb = np.int64(0)
    for i in range(w.shape[0]):
        x = w[i]
        s = -1 if x < 0 else 1
        a = (float(s) * x) * g
        best = 0
        mn = c * (a * a) + float(_value_rate(ctx, 0, 0, nb, num_gtx, False))
        fl = np.floor(a)
        top = np.int64(fl) + (1 if a - fl >= 0.5 else 0)     # round half away (a >= 0)
        for t in range(max(1, top - 1), top + 1):
            d = a - t
            v = c * (d * d) + float(_value_rate(ctx, t, 0, nb, num_gtx, False))
            if v < mn:
                best = t
                mn = v
        best *= s
        out[i] = best
        _value_rate(ctx, best, 0, nb, num_gtx, True)
        nb = best


def _twin_value_rate(ctx, v, state, nb, num_gtx, update):
    """Plain-Python twin of ``_value_rate`` (``ctx``: list of [s0, s] lists)."""
    est = EST_BITS.tolist()
    curve = CURVE.tolist()
    sh0, sh1 = int(ECO_SETS[0, 0]) + 4, int(ECO_SETS[0, 1])

    def walk(c, b):
        fast, comb = ctx[c]
        r = est[512 + (comb >> 3)][b]
        if update:
            d = 1 if b else -1
            slow = comb - 16 * fast
            fast += d * (curve[16 + ((d * fast) >> 3)] >> sh0)
            slow += d * (curve[16 + ((d * slow) >> 7)] >> sh1)
            ctx[c] = [fast, slow + 16 * fast]
        return r
    nbc = 0 if nb == 0 else (1 if nb < 0 else 2)
    bits = walk(3 * state + nbc, 1 if v else 0)
    if v == 0:
        return bits
    neg = 0 if v > 0 else 1
    bits += walk(48 + nbc, neg)
    rest = abs(v) - 1
    for j in range(num_gtx):
        bits += walk(53 + 2 * j + neg, 1 if rest > 0 else 0)
        if rest == 0:
            return bits
        rest -= 1
    p = 0
    while rest >= (1 << (p + 1)) - 1:
        bits += walk(53 + 4 * num_gtx + p, 1)
        p += 1
    return bits + walk(53 + 4 * num_gtx + p, 0) + (p << 15)


def _fresh_ctx(num_gtx):
    return [[int(ECO_SETS[0, 3]), int(ECO_SETS[0, 2])] for _ in range(n_contexts(num_gtx))]


def tcq_rd_twin(w, g, c, num_gtx, branches=BRANCHES):
    """Plain-Python twin of :func:`tcq_rd_kernel`."""
    br = branches.tolist()
    ns_n = len(br)
    banks = [[_fresh_ctx(num_gtx) for _ in range(ns_n)] for _ in range(2)]
    nbs = [[0] * ns_n, [0] * ns_n]
    costs = [0.0] + [0.5 * float(_DBL_MAX)] * (ns_n - 1)
    back, pb = [], 0
    for x in (float(v) for v in w):
        slots = _twin_slots(x, g, c)
        rate = [[float(_twin_value_rate(banks[pb][p], slots[k][1], p, nbs[pb][p], num_gtx,
                                        False)) for k in range(5)] for p in range(ns_n)]
        cb = 1 - pb
        new, step = [], []
        for ns in range(ns_n):
            best = None
            for p, k in br[ns]:
                v = costs[p] + slots[k][0] + rate[p][k]
                if best is None or v < best[0]:
                    best = (v, slots[k][1], p)
            new.append(best[0])
            step.append((best[1], best[2]))
            banks[cb][ns] = [list(e) for e in banks[pb][best[2]]]
            _twin_value_rate(banks[cb][ns], best[1], ns, nbs[cb][ns], num_gtx, True)
            nbs[cb][ns] = best[1]
        costs, pb = new, cb
        back.append(step)
    return _backtrack_twin(costs, back)


def urq_rd_twin(w, g, c, num_gtx):
    """Plain-Python twin of :func:`urq_rd_kernel`."""
    import math
    ctx = _fresh_ctx(num_gtx)
    nb, res = 0, []
    for x in (float(v) for v in w):
        s = -1 if x < 0 else 1
        a = (float(s) * x) * g
        best, mn = 0, c * (a * a) + float(_twin_value_rate(ctx, 0, 0, nb, num_gtx, False))
        fl = math.floor(a)
        top = int(fl) + (1 if a - fl >= 0.5 else 0)
        for t in range(max(1, top - 1), top + 1):
            v = c * ((a - t) * (a - t)) + float(_twin_value_rate(ctx, t, 0, nb, num_gtx, False))
            if v < mn:
                best, mn = t, v
        best *= s
        res.append(best)
        _twin_value_rate(ctx, best, 0, nb, num_gtx, True)
        nb = best
    return np.array(res, dtype=np.int32)
