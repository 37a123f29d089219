"""Numba kernels of the NNC CABAC layer coder (plain-Python twins in ``_twins.py``).

All arithmetic is on integers (int64 registers, masked to 32 bits where the
reference engine uses uint32), so results do not depend on the compiler.
The layout of the context store, the binarization and the engine are
described in :mod:`refcomp.coding.cabac` (module docstring); here are only
the register conventions:

- encoder registers (locals passed through inlined helpers, so that they stay
  in machine registers): ``low`` (masked to 32 bits), ``rng``, ``left``
  (bits left), ``nbuf``/``bb`` (buffered 0xFF run and byte, for carries),
  ``p`` (output position);
- decoder registers: ``val``, ``rng``, ``need`` (bits needed), ``pos`` (bytes
  past the end of the payload read as 0; the caller rejects a stream whose
  decoding went past its end);
- a context ``c`` is the row ``cs[c] = (F, S, g, h)``: its fast and slow
  states biased (``F = s0 + 128``, ``S = s1 + 2048``, so the combined state
  is ``s = S + 16 F - 4096``) and the offsets of its shifts' rows in the
  update tables ``NEXT_F`` / ``NEXT_S`` (``_tables``: the dual-rate update
  tabulated exactly); ``eco[c]`` is its initialisation index.  The encoder's
  choice of initialisations (``param_opt``) is in ``_opt_kernels``.

Status codes returned by the kernels: ``OK`` (0), ``FULL`` (output buffer too
small: the caller retries with a larger one), ``PARITY`` (a dependent-
quantization level does not belong to the quantizer its state selects),
``BAD`` (a decoded level overflows int32 or the terminating bin is absent).
"""
import numba
import numpy as np

from ._opt_kernels import rate_pass
from ._tables import ECO_SETS, FB, NEXT_F, NEXT_S, RLPS_N, SB, n_contexts

OK, FULL, PARITY, BAD = 0, 1, 2, 3

#: 8-state dependent-quantization transition table (NNC, NNCodec's
#: ``Trellis8States``): next = TRANS[state, k & 1]; quantizer Q(state & 1).
TRANS = np.array([[0, 2], [7, 5], [1, 3], [6, 4], [2, 0], [5, 7], [3, 1], [4, 6]], dtype=np.int64)
#: 4-state variant (VVC's table, H.266 ``QStateTransTable = {{0,2},{2,0},{1,3},{3,1}}``
#: with quantizer Q(state >> 1)), relabelled (refcomp state = VVC 0, 2, 1, 3) so
#: that, as with 8 states, the quantizer is Q(state & 1): next = TRANS4[state, k & 1].
TRANS4 = np.array([[0, 1], [2, 3], [1, 0], [3, 2]], dtype=np.int64)
TRANS.setflags(write=False)
TRANS4.setflags(write=False)
#: The state machines by their number of states.
DQ_TRANS = {8: TRANS, 4: TRANS4}

_MASK32 = 0xFFFFFFFF
N_ECO = 9


def layout(num_gtx):
    """Context indices: (sig, sign, gtx, rem, eco_flag, row_skip, n_ctx)."""
    sign = 48
    gtx = 53
    rem = 53 + 4 * num_gtx
    return 0, sign, gtx, rem, rem + 32 + 2, rem + 32 + 4, rem + 32 + 5


# ------------------------------------------------------------------ encoder
# Registers as locals threaded through inlined helpers: low, range (rng),
# bits_left (left), n_buffered (nbuf), buffered byte (bb), output position (p).
@numba.njit(cache=True, inline="always")
def _adapt(cs, c, f, s, b):
    """Dual-rate update of model ``c`` (biased states ``f``, ``s``) after bin ``b``."""
    cs[c, 0] = NEXT_F[np.uint64(cs[c, 2] + 2 * FB * b + f)]
    cs[c, 1] = NEXT_S[np.uint64(cs[c, 3] + 2 * SB * b + s)]


@numba.njit(cache=True, inline="always")
def _wout(out, low, left, nbuf, bb, p):
    lead = low >> (24 - left)
    left += 8
    low &= _MASK32 >> left
    if lead == 0xFF:
        nbuf += 1
    elif nbuf > 0:
        if p + nbuf <= out.shape[0]:
            carry = lead >> 8
            out[p] = (bb + carry) & 0xFF
            p += 1
            fill = (0xFF + carry) & 0xFF
            while nbuf > 1:
                out[p] = fill
                p += 1
                nbuf -= 1
        else:
            p = out.shape[0] + 1          # overflow marker: the caller retries
        bb = lead & 0xFF
    else:
        nbuf = 1
        bb = lead
    return low, left, nbuf, bb, p


@numba.njit(cache=True, inline="always")
def _ebin(out, low, rng, left, nbuf, bb, p, cs, c, b):
    f = cs[c, 0]
    s = cs[c, 1]
    comb = s + 16 * f - (SB + 16 * FB)
    q = comb >> 7
    if q < 0:
        q = -q
    k = np.uint64(q + (rng & 0xE0))
    e = RLPS_N[k]
    rlps = e & 0xFF
    rmps = rng - rlps
    # branch-free: m is all ones for a least-probable symbol, else 0
    m = -np.int64(b != (1 if comb >= 0 else 0))
    r = rmps ^ ((rmps ^ rlps) & m)
    n = (np.int64(rmps < 256) & ~m) | ((e >> 8) & m)
    low = ((low + (rmps & m)) << n) & _MASK32
    rng = r << n
    left -= n
    if left < 12:
        low, left, nbuf, bb, p = _wout(out, low, left, nbuf, bb, p)
    _adapt(cs, c, f, s, b)
    return low, rng, left, nbuf, bb, p


@numba.njit(cache=True, inline="always")
def _eep(out, low, rng, left, nbuf, bb, p, bins, nb):
    if rng == 256:
        rem = nb
        while rem > 0:
            k = min(rem, 8)
            nw = (bins >> (rem - k)) & ((1 << k) - 1)
            low = ((low << k) + (nw << 8)) & _MASK32
            rem -= k
            left -= k
            if left < 12:
                low, left, nbuf, bb, p = _wout(out, low, left, nbuf, bb, p)
        return low, left, nbuf, bb, p
    while nb > 8:
        nb -= 8
        pat = bins >> nb
        low = ((low << 8) + rng * pat) & _MASK32
        bins -= pat << nb
        left -= 8
        if left < 12:
            low, left, nbuf, bb, p = _wout(out, low, left, nbuf, bb, p)
    low = ((low << nb) + rng * bins) & _MASK32
    left -= nb
    if left < 12:
        low, left, nbuf, bb, p = _wout(out, low, left, nbuf, bb, p)
    return low, left, nbuf, bb, p


@numba.njit(cache=True)
def _enc_finish(out, low, rng, left, nbuf, bb, p):
    """Terminating bin 1 and flush (final 1 bit, byte alignment); returns the
    end position (> len(out) when the buffer is too small)."""
    low = ((low + rng - 2) << 7) & _MASK32
    left -= 7
    if left < 12:
        low, left, nbuf, bb, p = _wout(out, low, left, nbuf, bb, p)
    if p + nbuf + 8 > out.shape[0]:
        return out.shape[0] + 1
    if (low >> (32 - left)) != 0:
        out[p] = (bb + 1) & 0xFF
        p += 1
        while nbuf > 1:
            out[p] = 0
            p += 1
            nbuf -= 1
        low -= 1 << (32 - left)
    else:
        if nbuf > 0:
            out[p] = bb
            p += 1
        while nbuf > 1:
            out[p] = 0xFF
            p += 1
            nbuf -= 1
    low = ((low >> 8) << 1) + 1
    left -= 1
    low = (low << (32 - (24 - left))) & _MASK32
    i = 0
    while i < 24 - left:
        out[p] = (low >> (24 - i)) & 0xFF
        p += 1
        i += 8
    return p


# ------------------------------------------------------- encoder optimiser
@numba.njit(cache=True)
def _best_eco(acc, c):
    best = 0
    mn = acc[c, 0]
    for i in range(1, N_ECO):
        if acc[c, i] + 3 * 32768 < mn:
            best = i
            mn = acc[c, i] + 3 * 32768
    return best


@numba.njit(cache=True)
def signalled_contexts(num_gtx, dq, n_states):
    """Contexts whose initialisation is signalled, in stream order (3
    significance contexts per dependent-quantization state)."""
    n_sig = 3 * n_states if dq else 3
    res = np.empty(n_sig + 3 + 2 * num_gtx + 31, dtype=np.int64)
    k = 0
    for c in range(n_sig):
        res[k] = c
        k += 1
    for c in range(48, 51):
        res[k] = c
        k += 1
    for c in range(53, 53 + 2 * num_gtx):
        res[k] = c
        k += 1
    for c in range(53 + 4 * num_gtx, 53 + 4 * num_gtx + 31):
        res[k] = c
        k += 1
    return res


@numba.njit(cache=True, inline="always")
def _cs_reset(cs, eco, c):
    """Model ``c`` back to the states of its initialisation ``eco[c]``."""
    i = eco[c]
    cs[c, 0] = ECO_SETS[i, 3] + FB
    cs[c, 1] = ECO_SETS[i, 2] - 16 * ECO_SETS[i, 3] + SB


@numba.njit(cache=True, inline="always")
def _cs_init(cs, eco, c, idx):
    eco[c] = idx
    cs[c, 2] = 4 * FB * ECO_SETS[idx, 0]
    cs[c, 3] = 4 * SB * (ECO_SETS[idx, 1] - 4)
    _cs_reset(cs, eco, c)


@numba.njit(cache=True)
def _fresh_store(n_ctx):
    """``n_ctx`` models at the default initialisation, and their indices."""
    cs = np.zeros((n_ctx, 4), np.int64)
    eco = np.zeros(n_ctx, np.int64)
    for c in range(n_ctx):
        _cs_init(cs, eco, c, 0)
    return cs, eco


@numba.njit(cache=True)
def encode_layer(levels, order, reset_after, dq, trans, row_skip_bin, ep_start, num_gtx,
                 param_opt, out):
    """Code one layer's levels (int32, C order) into ``out``.

    ``order``: scan order (positions into ``levels``); ``reset_after[i]``: the
    context reset (block-row boundary) after scan index ``i``; ``trans``: the
    dependent-quantization state machine (:data:`TRANS` or :data:`TRANS4`);
    ``row_skip_bin``: write the general-profile row-skip flag (0) first;
    ``ep_start``: set the range to 256 before the layer (block scans).
    Returns ``(status, nbytes, index)`` (``index``: the offending scan index
    for ``PARITY``).
    """
    cs, eco = _fresh_store(n_contexts(num_gtx))
    n_ctx = cs.shape[0]
    low = np.int64(0)
    rng = np.int64(510)
    left = np.int64(23)
    nbuf = np.int64(0)
    bb = np.int64(0)
    p = np.int64(0)
    cap = out.shape[0]
    n = order.shape[0]
    if row_skip_bin:
        low, left, nbuf, bb, p = _eep(out, low, rng, left, nbuf, bb, p, 0, 1)
    # halve dependent-quantization levels (and check their parity) once
    vals = np.empty(n, np.int64)
    state = 0
    for i in range(n):
        q = np.int64(levels[order[i]])
        v = q
        if dq and q != 0:
            v = (q + (-(state & 1) if q < 0 else (state & 1))) >> 1
            back = (v << 1) + ((state & 1) if v < 0 else -(state & 1))
            if back != q or v == 0:
                return PARITY, 0, i
        vals[i] = v
        if dq:
            state = trans[state, v & 1]
    acc = np.zeros((n_ctx, N_ECO), np.int64)
    if param_opt:
        rate_pass(levels, order, reset_after, vals, trans, dq, num_gtx, acc)
    flag_ctx = 53 + 4 * num_gtx + 34
    sig = signalled_contexts(num_gtx, dq, trans.shape[0])
    for k in range(sig.shape[0]):
        c = sig[k]
        best = _best_eco(acc, c) if param_opt else 0
        low, rng, left, nbuf, bb, p = _ebin(out, low, rng, left, nbuf, bb, p, cs, flag_ctx,
                                            1 if best else 0)
        if best:
            low, left, nbuf, bb, p = _eep(out, low, rng, left, nbuf, bb, p, best - 1, 3)
        _cs_init(cs, eco, c, best)
    if ep_start:
        rng = np.int64(256)
    rem_ctx = 53 + 4 * num_gtx
    state = 0
    nbc = 0
    for i in range(n):
        v = vals[i]
        low, rng, left, nbuf, bb, p = _ebin(out, low, rng, left, nbuf, bb, p, cs,
                                            3 * state + nbc, 1 if v != 0 else 0)
        if v != 0:
            neg = 0 if v > 0 else 1
            low, rng, left, nbuf, bb, p = _ebin(out, low, rng, left, nbuf, bb, p, cs,
                                                48 + nbc, neg)
            rem = (v if v > 0 else -v) - 1
            flag = 1 if rem > 0 else 0
            low, rng, left, nbuf, bb, p = _ebin(out, low, rng, left, nbuf, bb, p, cs,
                                                53 + neg, flag)
            j = 1
            while flag == 1 and j < num_gtx:
                rem -= 1
                flag = 1 if rem > 0 else 0
                low, rng, left, nbuf, bb, p = _ebin(out, low, rng, left, nbuf, bb, p, cs,
                                                    53 + 2 * j + neg, flag)
                j += 1
            if flag == 1:
                # order-0 Exp-Golomb of rem: context-coded unary prefix, bypass suffix
                rem -= 1
                lg = 0
                base = 0
                while rem >= base + (1 << lg):
                    low, rng, left, nbuf, bb, p = _ebin(out, low, rng, left, nbuf, bb, p, cs,
                                                        rem_ctx + lg, 1)
                    base += 1 << lg
                    lg += 1
                low, rng, left, nbuf, bb, p = _ebin(out, low, rng, left, nbuf, bb, p, cs,
                                                    rem_ctx + lg, 0)
                if lg > 0:
                    low, left, nbuf, bb, p = _eep(out, low, rng, left, nbuf, bb, p,
                                                  rem - base, lg)
        if p > cap:
            return FULL, 0, i
        nbc = 0 if v == 0 else (1 if v < 0 else 2)
        if dq:
            state = trans[state, v & 1]
        if reset_after[i]:
            for c in range(n_ctx):
                _cs_reset(cs, eco, c)
            nbc = 0
            rng = np.int64(256)
    p = _enc_finish(out, low, rng, left, nbuf, bb, p)
    if p > cap:
        return FULL, 0, n
    return OK, p, 0


# ------------------------------------------------------------------ decoder
# The decoder keeps its registers in locals threaded through inlined helpers
# (value, range, bits_needed, position) so that they stay in machine registers.
@numba.njit(cache=True, inline="always")
def _rd(data, pos):
    if pos < data.shape[0]:
        return np.int64(data[pos])
    return np.int64(0)


@numba.njit(cache=True, inline="always")
def _dbin(data, val, rng, need, pos, cs, c):
    f = cs[c, 0]
    s = cs[c, 1]
    comb = s + 16 * f - (SB + 16 * FB)
    q = comb >> 7
    if q < 0:
        q = -q
    k = np.uint64(q + (rng & 0xE0))
    e = RLPS_N[k]
    rlps = e & 0xFF
    rmps = rng - rlps
    scaled = rmps << 7
    # branch-free: m is all ones for a least-probable symbol, else 0
    lps = np.int64(val >= scaled)
    m = -lps
    b = (1 if comb >= 0 else 0) ^ lps
    val -= scaled & m
    r = rmps ^ ((rmps ^ rlps) & m)
    n = (np.int64(rmps < 256) & ~m) | ((e >> 8) & m)
    rng = r << n
    val <<= n
    need += n
    # a byte is due when need >= 0 (then need < 8): read it branch-free
    t = np.int64(need >= 0)
    val += (_rd(data, pos) << (need & 7)) & -t
    pos += t
    need -= t << 3
    _adapt(cs, c, f, s, b)
    return val, rng, need, pos, b


@numba.njit(cache=True, inline="always")
def _dep(data, val, rng, need, pos, nb):
    bins = np.int64(0)
    if rng == 256:
        rem = nb
        while rem > 0:
            k = min(rem, 8)
            bins = (bins << k) | ((val >> (15 - k)) & ((1 << k) - 1))
            val = (val << k) & 0x7FFF
            rem -= k
            need += k
            if need >= 0:
                val |= _rd(data, pos) << need
                pos += 1
                need -= 8
        return val, need, pos, bins
    rem = nb
    while rem > 8:
        val = (val << 8) + (_rd(data, pos) << (8 + need))
        pos += 1
        sr = rng << 15
        for _ in range(8):
            bins <<= 1
            sr >>= 1
            if val >= sr:
                bins += 1
                val -= sr
        rem -= 8
    need += rem
    val <<= rem
    if need >= 0:
        val += _rd(data, pos) << need
        pos += 1
        need -= 8
    sr = rng << (rem + 7)
    for _ in range(rem):
        bins <<= 1
        sr >>= 1
        if val >= sr:
            bins += 1
            val -= sr
    return val, need, pos, bins


@numba.njit(cache=True)
def decode_layer(data, order, reset_after, dq, trans, row_skip_bin, ep_start, num_gtx, out):
    """Decode a payload written by :func:`encode_layer` into ``out`` (int32,
    flat).  Returns ``(status, bytes_read)``; ``bytes_read`` may exceed
    ``len(data)`` (bytes past the end read as zero): the caller rejects it."""
    cs, eco = _fresh_store(n_contexts(num_gtx))
    n_ctx = cs.shape[0]
    rng = np.int64(510)
    need = np.int64(-8)
    val = (_rd(data, 0) << 8) + _rd(data, 1)
    pos = np.int64(2)
    limit = data.shape[0] + 4
    if row_skip_bin:
        val, need, pos, b = _dep(data, val, rng, need, pos, 1)
        if b != 0:
            return BAD, pos       # row skipping: not written by refcomp
    flag_ctx = 53 + 4 * num_gtx + 34
    rem_ctx = 53 + 4 * num_gtx
    sig = signalled_contexts(num_gtx, dq, trans.shape[0])
    for k in range(sig.shape[0]):
        best = 0
        val, rng, need, pos, b = _dbin(data, val, rng, need, pos, cs, flag_ctx)
        if b:
            val, need, pos, e = _dep(data, val, rng, need, pos, 3)
            best = 1 + e
        _cs_init(cs, eco, sig[k], best)
    if ep_start:
        rng = np.int64(256)
    state = 0
    nbc = 0
    n = order.shape[0]
    for i in range(n):
        val, rng, need, pos, b = _dbin(data, val, rng, need, pos, cs, 3 * state + nbc)
        v = np.int64(0)
        if b:
            val, rng, need, pos, neg = _dbin(data, val, rng, need, pos, cs, 48 + nbc)
            a = np.int64(1)
            j = 0
            while True:
                val, rng, need, pos, g = _dbin(data, val, rng, need, pos, cs, 53 + 2 * j + neg)
                a += g
                j += 1
                if g == 0 or j >= num_gtx:
                    break
            if g == 1:
                nbits = 0
                while True:
                    val, rng, need, pos, g = _dbin(data, val, rng, need, pos, cs,
                                                   rem_ctx + nbits)
                    if g:
                        a += np.int64(1) << nbits
                        nbits += 1
                    if g == 0 or nbits >= 31:
                        break
                val, need, pos, e = _dep(data, val, rng, need, pos, nbits)
                a += e
            if a > 0x7FFFFFFF:
                return BAD, pos
            v = -a if neg else a
        if pos > limit:
            return BAD, pos
        q = v
        if dq:
            if v != 0:
                q = (v << 1) + ((state & 1) if v < 0 else -(state & 1))
            state = trans[state, v & 1]
        out[order[i]] = q
        nbc = 0 if v == 0 else (1 if v < 0 else 2)
        if reset_after[i]:
            for c in range(n_ctx):
                _cs_reset(cs, eco, c)
            nbc = 0
            rng = np.int64(256)
    # terminating bin
    rng -= 2
    if val < (rng << 7):
        return BAD, pos
    return OK, pos


# ---------------------------------------------------- bin-level engine API
@numba.njit(cache=True)
def encode_bins(kinds, ctxs, vals, nbits, ctx_eco, out):
    """Code a bin sequence: ``kinds[i]`` 0 = context bin ``vals[i]`` with model
    ``ctxs[i]``, 1 = ``nbits[i]`` bypass bins holding ``vals[i]`` (MSB first);
    models start from ``ctx_eco``; then terminate.  Returns ``(status, nbytes)``."""
    n_ctx = ctx_eco.shape[0]
    cs = np.zeros((n_ctx, 4), np.int64)
    eco = np.zeros(n_ctx, np.int64)
    for c in range(n_ctx):
        _cs_init(cs, eco, c, ctx_eco[c])
    low = np.int64(0)
    rng = np.int64(510)
    left = np.int64(23)
    nbuf = np.int64(0)
    bb = np.int64(0)
    p = np.int64(0)
    for i in range(kinds.shape[0]):
        if kinds[i] == 0:
            low, rng, left, nbuf, bb, p = _ebin(out, low, rng, left, nbuf, bb, p, cs, ctxs[i],
                                                vals[i])
        else:
            low, left, nbuf, bb, p = _eep(out, low, rng, left, nbuf, bb, p, vals[i], nbits[i])
        if p > out.shape[0]:
            return FULL, 0
    p = _enc_finish(out, low, rng, left, nbuf, bb, p)
    if p > out.shape[0]:
        return FULL, 0
    return OK, p


@numba.njit(cache=True)
def decode_bins(data, kinds, ctxs, nbits, ctx_eco, vals):
    """Inverse of :func:`encode_bins` (the bin kinds, models and widths given);
    writes ``vals``; returns ``(status, bytes_read)``."""
    n_ctx = ctx_eco.shape[0]
    cs = np.zeros((n_ctx, 4), np.int64)
    eco = np.zeros(n_ctx, np.int64)
    for c in range(n_ctx):
        _cs_init(cs, eco, c, ctx_eco[c])
    rng = np.int64(510)
    need = np.int64(-8)
    val = (_rd(data, 0) << 8) + _rd(data, 1)
    pos = np.int64(2)
    for i in range(kinds.shape[0]):
        if kinds[i] == 0:
            val, rng, need, pos, b = _dbin(data, val, rng, need, pos, cs, ctxs[i])
            vals[i] = b
        else:
            val, need, pos, b = _dep(data, val, rng, need, pos, nbits[i])
            vals[i] = b
        if pos > data.shape[0] + 4:
            return BAD, pos
    rng -= 2
    if val < (rng << 7):
        return BAD, pos
    return OK, pos
