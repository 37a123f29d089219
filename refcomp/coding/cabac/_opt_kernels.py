"""Numba kernel of the encoder's ``param_opt`` rate pass (twin: ``encode_layer_twin``).

NNCodec chooses each context's initialisation (one of the 9 ``ECO_SETS``) by
running the tensor's context-coded bins through all 9 candidate estimators
and summing their estimated bits (``EST_BITS``, 1/32768 bit).  The bins of a
context only ever meet that context's estimators, so the pass is done one
context at a time: the bins are first sorted by context (a stable counting
sort, which keeps each context's order), then each context's sequence runs
through its 9 estimators held in local variables.  The nine chains are
independent, so they overlap in the processor instead of going through
memory after every bin; the sums are the same integers as bin-by-bin
interleaving gives (integer additions, each chain in its own order).

A context reset (the end of a block row) returns every estimator to its
initial state but keeps the sums: it is a marker (2) in every context's
sequence.
"""
import numba
import numpy as np

from ._tables import ECO_SETS, EST_B, FB as _FB, NEXT_F, NEXT_S, SB as _SB

RESET = 2

# The 9 candidate initialisations as compile-time constants: initial biased
# fast and slow states (slow = combined - 16 * fast) and the offsets of their
# rows in NEXT_F / NEXT_S.
for _i in range(9):
    _sh0, _sh1, _s01, _f = (int(v) for v in ECO_SETS[_i])
    if not (0 <= _sh0 <= 3 and 4 <= _sh1 <= 6 and -_FB < _f < _FB
            and -_SB < _s01 - 16 * _f < _SB):
        raise AssertionError("initialisation %d outside the tabulated domain" % _i)
_F = tuple(int(ECO_SETS[i, 3]) + _FB for i in range(9))
_S = tuple(int(ECO_SETS[i, 2]) - 16 * int(ECO_SETS[i, 3]) + _SB for i in range(9))
_OF = tuple(4 * _FB * int(ECO_SETS[i, 0]) for i in range(9))
_OS = tuple(4 * _SB * (int(ECO_SETS[i, 1]) - 4) for i in range(9))
F0, F1, F2, F3, F4, F5, F6, F7, F8 = _F
S0, S1, S2, S3, S4, S5, S6, S7, S8 = _S
G0, G1, G2, G3, G4, G5, G6, G7, G8 = _OF
H0, H1, H2, H3, H4, H5, H6, H7, H8 = _OS


@numba.njit(cache=True, inline="always")
def _value_bins(log, p, q, state, nbc, num_gtx):
    """Append the context-coded bins of value ``q`` (no bypass bins) to ``log``
    as ``4 * context + bin``, in coding order; returns the new length."""
    log[p] = 4 * (3 * state + nbc) + (1 if q != 0 else 0)
    p += 1
    if q == 0:
        return p
    log[p] = 4 * (48 + nbc) + (1 if q < 0 else 0)
    p += 1
    neg = 0 if q > 0 else 1
    rem = (q if q > 0 else -q) - 1
    flag = 1 if rem > 0 else 0
    log[p] = 4 * (53 + neg) + flag
    p += 1
    j = 1
    while flag == 1 and j < num_gtx:
        rem -= 1
        flag = 1 if rem > 0 else 0
        log[p] = 4 * (53 + 2 * j + neg) + flag
        p += 1
        j += 1
    if flag == 1:
        # order-0 Exp-Golomb prefix of rem - 1: context-coded unary bins
        rem -= 1
        c = 53 + 4 * num_gtx
        base = 0
        lg = 0
        while rem >= base + (1 << lg):
            log[p] = 4 * (c + lg) + 1
            p += 1
            base += 1 << lg
            lg += 1
        log[p] = 4 * (c + lg)
        p += 1
    return p


@numba.njit(cache=True)
def _bin_log(levels, order, reset_after, vals, trans, dq, num_gtx, n_ctx):
    """All context-coded bins of the rate pass, in order, as ``4 * ctx + bin``
    (``4 * ctx + RESET`` for every context at a reset); returns (log, length)."""
    n = order.shape[0]
    # one value appends at most 2 + num_gtx + 32 codes
    room = 2 + num_gtx + 32 + n_ctx
    log = np.empty(4 * n + room, np.uint16)
    p = 0
    state = 0
    nbc = 0
    for i in range(n):
        if p + room > log.shape[0]:
            bigger = np.empty(2 * log.shape[0], np.uint16)
            bigger[:p] = log[:p]
            log = bigger
        # NNCodec's rate pass codes the undivided level (its own remark)
        q = np.int64(levels[order[i]])
        p = _value_bins(log, p, q, state, nbc, num_gtx)
        nbc = 0 if q == 0 else (1 if q < 0 else 2)
        if dq:
            state = trans[state, vals[i] & 1]
        if reset_after[i]:
            for c in range(n_ctx):
                log[p] = 4 * c + RESET
                p += 1
    return log, p


@numba.njit(cache=True, inline="always")
def _step(f, s, acc, e, g, h):
    """One bin through one estimator: add its estimated bits, then adapt
    (``e``, ``g``, ``h``: the bin's offsets into EST_B, NEXT_F, NEXT_S)."""
    acc += EST_B[np.uint64(e + ((s + 16 * f) >> 3))]
    return np.int64(NEXT_F[np.uint64(g + f)]), np.int64(NEXT_S[np.uint64(h + s)]), acc


@numba.njit(cache=True)
def _run_context(seq, lo, hi, acc, c):
    f0, f1, f2, f3, f4, f5, f6, f7, f8 = F0, F1, F2, F3, F4, F5, F6, F7, F8
    s0, s1, s2, s3, s4, s5, s6, s7, s8 = S0, S1, S2, S3, S4, S5, S6, S7, S8
    a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = a8 = np.int64(0)
    for k in range(lo, hi):
        b = np.int64(seq[k])
        if b == RESET:
            f0, f1, f2, f3, f4, f5, f6, f7, f8 = F0, F1, F2, F3, F4, F5, F6, F7, F8
            s0, s1, s2, s3, s4, s5, s6, s7, s8 = S0, S1, S2, S3, S4, S5, S6, S7, S8
            continue
        e = 1024 * b
        g = 2 * _FB * b
        h = 2 * _SB * b
        f0, s0, a0 = _step(f0, s0, a0, e, G0 + g, H0 + h)
        f1, s1, a1 = _step(f1, s1, a1, e, G1 + g, H1 + h)
        f2, s2, a2 = _step(f2, s2, a2, e, G2 + g, H2 + h)
        f3, s3, a3 = _step(f3, s3, a3, e, G3 + g, H3 + h)
        f4, s4, a4 = _step(f4, s4, a4, e, G4 + g, H4 + h)
        f5, s5, a5 = _step(f5, s5, a5, e, G5 + g, H5 + h)
        f6, s6, a6 = _step(f6, s6, a6, e, G6 + g, H6 + h)
        f7, s7, a7 = _step(f7, s7, a7, e, G7 + g, H7 + h)
        f8, s8, a8 = _step(f8, s8, a8, e, G8 + g, H8 + h)
    acc[c, 0] += a0
    acc[c, 1] += a1
    acc[c, 2] += a2
    acc[c, 3] += a3
    acc[c, 4] += a4
    acc[c, 5] += a5
    acc[c, 6] += a6
    acc[c, 7] += a7
    acc[c, 8] += a8


@numba.njit(cache=True)
def rate_pass(levels, order, reset_after, vals, trans, dq, num_gtx, acc):
    """Estimated bits ``acc[c, i]`` (1/32768 bit, int64, added to ``acc``) of
    every context ``c`` under each initialisation ``i``, for NNCodec's rate
    pass over the undivided levels (``vals``: the coded values, for the
    dependent-quantization state)."""
    n_ctx = acc.shape[0]
    log, m = _bin_log(levels, order, reset_after, vals, trans, dq, num_gtx, n_ctx)
    # stable counting sort by context
    start = np.zeros(n_ctx + 1, np.int64)
    for k in range(m):
        start[(log[k] >> 2) + 1] += 1
    for c in range(n_ctx):
        start[c + 1] += start[c]
    wpos = start[:n_ctx].copy()
    seq = np.empty(m, np.uint8)
    for k in range(m):
        c = log[k] >> 2
        seq[wpos[c]] = log[k] & 3
        wpos[c] += 1
    for c in range(n_ctx):
        _run_context(seq, start[c], start[c + 1], acc, c)
