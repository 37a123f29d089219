"""Numba kernels of the NNC CABAC layer coder (plain-Python twins in ``_twins.py``).

All arithmetic is on integers (int64 registers, masked to 32 bits where the
reference engine uses uint32), so results do not depend on the compiler.
The layout of the context store, the binarization and the engine are
described in :mod:`refcomp.coding.cabac` (module docstring); here are only
the register conventions:

- encoder registers ``er``: ``[low, range, bits_left, n_buffered,
  buffered_byte, out_pos]``;
- decoder registers ``dr``: ``[value, range, bits_needed, in_pos]`` (bytes past
  the end of the payload read as 0; the caller rejects a stream whose
  decoding went past its end);
- a context ``c`` is ``s0[c]`` (fast state), ``s01[c]`` (combined state),
  ``sh0[c]``/``sh1[c]`` (adaptation shifts) and ``eco[c]`` (its
  initialisation index); the encoder's optimiser keeps the same state for
  each of the 9 initialisations, plus their accumulated estimated bits.

Status codes returned by the kernels: ``OK`` (0), ``FULL`` (output buffer too
small: the caller retries with a larger one), ``PARITY`` (a dependent-
quantization level does not belong to the quantizer its state selects),
``BAD`` (a decoded level overflows int32 or the terminating bin is absent).
"""
import numba
import numpy as np

from ._tables import CURVE, ECO_SETS, EST_BITS, RLPS

OK, FULL, PARITY, BAD = 0, 1, 2, 3

#: 8-state dependent-quantization transition table: next = TRANS[state, k & 1].
TRANS = np.array([[0, 2], [7, 5], [1, 3], [6, 4], [2, 0], [5, 7], [3, 1], [4, 6]], dtype=np.int64)
TRANS.setflags(write=False)

_MASK32 = 0xFFFFFFFF
N_ECO = 9


def layout(num_gtx):
    """Context indices: (sig, sign, gtx, rem, eco_flag, row_skip, n_ctx)."""
    sign = 48
    gtx = 53
    rem = 53 + 4 * num_gtx
    return 0, sign, gtx, rem, rem + 32 + 2, rem + 32 + 4, rem + 32 + 5


# ----------------------------------------------------------------- contexts
@numba.njit(cache=True, inline="always")
def _ctx_init(s0, s01, sh0, sh1, eco, c, idx):
    eco[c] = idx
    sh0[c] = ECO_SETS[idx, 0] + 4
    sh1[c] = ECO_SETS[idx, 1]
    s01[c] = ECO_SETS[idx, 2]
    s0[c] = ECO_SETS[idx, 3]


@numba.njit(cache=True, inline="always")
def _ctx_update(s0, s01, sh0, sh1, c, b):
    sign = 1 if b else -1
    a0 = s0[c]
    a1 = s01[c] - a0 * 16
    a0 += sign * (CURVE[16 + ((sign * a0) >> 3)] >> sh0[c])
    a1 += sign * (CURVE[16 + ((sign * a1) >> 7)] >> sh1[c])
    s0[c] = a0
    s01[c] = a1 + 16 * a0


@numba.njit(cache=True, inline="always")
def _clz9(x):
    # number of left shifts that bring x (1 <= x < 512) to [256, 512)
    n = 0
    while x < 256:
        x <<= 1
        n += 1
    return n


# ------------------------------------------------------------------ encoder
@numba.njit(cache=True)
def _write_out(er, out):
    low, bits_left = er[0], er[2]
    lead = low >> (24 - bits_left)
    bits_left += 8
    er[2] = bits_left
    er[0] = low & (_MASK32 >> bits_left)
    if lead == 0xFF:
        er[3] += 1
        return True
    p = er[5]
    if er[3] > 0:
        if p + er[3] > out.shape[0]:
            return False
        carry = lead >> 8
        out[p] = (er[4] + carry) & 0xFF
        p += 1
        er[4] = lead & 0xFF
        fill = (0xFF + carry) & 0xFF
        while er[3] > 1:
            out[p] = fill
            p += 1
            er[3] -= 1
        er[5] = p
    else:
        er[3] = 1
        er[4] = lead
    return True


@numba.njit(cache=True)
def _enc_bin(er, out, s0, s01, sh0, sh1, c, b):
    s = s01[c]
    q = s >> 7
    if q < 0:
        q = -q
    rlps = RLPS[q + (er[1] & 0xE0)]
    rng = er[1] - rlps
    mps = 1 if s >= 0 else 0
    ok = True
    if b == mps:
        if rng < 256:
            rng <<= 1
            er[0] = (er[0] << 1) & _MASK32
            er[2] -= 1
        er[1] = rng
        if er[2] < 12:
            ok = _write_out(er, out)
    else:
        n = _clz9(rlps)
        er[0] = ((er[0] + rng) << n) & _MASK32
        er[1] = rlps << n
        er[2] -= n
        if er[2] < 12:
            ok = _write_out(er, out)
    _ctx_update(s0, s01, sh0, sh1, c, b)
    return ok


@numba.njit(cache=True)
def _enc_bins_ep(er, out, bins, nb):
    ok = True
    if er[1] == 256:
        rem = nb
        while rem > 0:
            k = min(rem, 8)
            nw = (bins >> (rem - k)) & ((1 << k) - 1)
            er[0] = ((er[0] << k) + (nw << 8)) & _MASK32
            rem -= k
            er[2] -= k
            if er[2] < 12:
                ok = ok and _write_out(er, out)
        return ok
    while nb > 8:
        nb -= 8
        pat = bins >> nb
        er[0] = ((er[0] << 8) + er[1] * pat) & _MASK32
        bins -= pat << nb
        er[2] -= 8
        if er[2] < 12:
            ok = ok and _write_out(er, out)
    er[0] = ((er[0] << nb) + er[1] * bins) & _MASK32
    er[2] -= nb
    if er[2] < 12:
        ok = ok and _write_out(er, out)
    return ok


@numba.njit(cache=True)
def _enc_finish(er, out):
    # terminating bin 1, then flush (alignment: a final 1 bit)
    rng = er[1] - 2
    er[0] = ((er[0] + rng) << 7) & _MASK32
    er[1] = 256
    er[2] -= 7
    if er[2] < 12:
        if not _write_out(er, out):
            return False
    if out.shape[0] - er[5] < er[3] + 8:
        return False
    p = er[5]
    low, bits_left = er[0], er[2]
    if (low >> (32 - bits_left)) != 0:
        out[p] = (er[4] + 1) & 0xFF
        p += 1
        while er[3] > 1:
            out[p] = 0
            p += 1
            er[3] -= 1
        low -= 1 << (32 - bits_left)
    else:
        if er[3] > 0:
            out[p] = er[4]
            p += 1
        while er[3] > 1:
            out[p] = 0xFF
            p += 1
            er[3] -= 1
    low = ((low >> 8) << 1) + 1
    bits_left -= 1
    low = (low << (32 - (24 - bits_left))) & _MASK32
    i = 0
    while i < 24 - bits_left:
        out[p] = (low >> (24 - i)) & 0xFF
        p += 1
        i += 8
    er[5] = p
    return True


@numba.njit(cache=True)
def _nb_class(nb):
    return 0 if nb == 0 else (1 if nb < 0 else 2)


@numba.njit(cache=True)
def _enc_value(er, out, s0, s01, sh0, sh1, v, state, nb, num_gtx):
    """Binarize and code one (dependent-quantization-halved) value."""
    ok = _enc_bin(er, out, s0, s01, sh0, sh1, 3 * state + _nb_class(nb), 1 if v != 0 else 0)
    if v == 0:
        return ok
    ok = ok and _enc_bin(er, out, s0, s01, sh0, sh1, 48 + _nb_class(nb), 1 if v < 0 else 0)
    neg = 0 if v > 0 else 1
    a = v if v > 0 else -v
    rem = a - 1
    j = 0
    flag = 1 if rem > 0 else 0
    ok = ok and _enc_bin(er, out, s0, s01, sh0, sh1, 53 + neg, flag)
    j = 1
    while flag == 1 and j < num_gtx:
        rem -= 1
        flag = 1 if rem > 0 else 0
        ok = ok and _enc_bin(er, out, s0, s01, sh0, sh1, 53 + 2 * j + neg, flag)
        j += 1
    if flag == 1:
        rem -= 1
        c = 53 + 4 * num_gtx
        if rem == 0:
            return ok and _enc_bin(er, out, s0, s01, sh0, sh1, c, 0)
        ok = ok and _enc_bin(er, out, s0, s01, sh0, sh1, c, 1)
        base = 1
        lg = 1
        c += 1
        while rem > base + (1 << lg) - 1:
            ok = ok and _enc_bin(er, out, s0, s01, sh0, sh1, c, 1)
            base += 1 << lg
            c += 1
            lg += 1
        ok = ok and _enc_bin(er, out, s0, s01, sh0, sh1, c, 0)
        ok = ok and _enc_bins_ep(er, out, rem - base, lg)
    return ok


# ------------------------------------------------------- encoder optimiser
@numba.njit(cache=True)
def _opt_bin(os0, os01, osh0, osh1, acc, c, b):
    for i in range(N_ECO):
        acc[c, i] += EST_BITS[512 + (os01[c, i] >> 3), b]
        sign = 1 if b else -1
        a0 = os0[c, i]
        a1 = os01[c, i] - a0 * 16
        a0 += sign * (CURVE[16 + ((sign * a0) >> 3)] >> osh0[i])
        a1 += sign * (CURVE[16 + ((sign * a1) >> 7)] >> osh1[i])
        os0[c, i] = a0
        os01[c, i] = a1 + 16 * a0


@numba.njit(cache=True)
def _opt_value(os0, os01, osh0, osh1, acc, v, state, nb, num_gtx):
    """The encoder's rate pass over one value: context bins only (no bypass)."""
    _opt_bin(os0, os01, osh0, osh1, acc, 3 * state + _nb_class(nb), 1 if v != 0 else 0)
    if v == 0:
        return
    _opt_bin(os0, os01, osh0, osh1, acc, 48 + _nb_class(nb), 1 if v < 0 else 0)
    neg = 0 if v > 0 else 1
    rem = (v if v > 0 else -v) - 1
    flag = 1 if rem > 0 else 0
    _opt_bin(os0, os01, osh0, osh1, acc, 53 + neg, flag)
    j = 1
    while flag == 1 and j < num_gtx:
        rem -= 1
        flag = 1 if rem > 0 else 0
        _opt_bin(os0, os01, osh0, osh1, acc, 53 + 2 * j + neg, flag)
        j += 1
    if flag == 1:
        rem -= 1
        c = 53 + 4 * num_gtx
        if rem == 0:
            _opt_bin(os0, os01, osh0, osh1, acc, c, 0)
            return
        _opt_bin(os0, os01, osh0, osh1, acc, c, 1)
        base = 1
        lg = 1
        c += 1
        while rem > base + (1 << lg) - 1:
            _opt_bin(os0, os01, osh0, osh1, acc, c, 1)
            base += 1 << lg
            c += 1
            lg += 1
        _opt_bin(os0, os01, osh0, osh1, acc, c, 0)


@numba.njit(cache=True)
def _opt_reset(os0, os01):
    for c in range(os0.shape[0]):
        for i in range(N_ECO):
            os01[c, i] = ECO_SETS[i, 2]
            os0[c, i] = ECO_SETS[i, 3]


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
def signalled_contexts(num_gtx, dq):
    """Contexts whose initialisation is signalled, in stream order."""
    n_sig = 24 if dq else 3
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


@numba.njit(cache=True)
def encode_layer(levels, order, reset_after, dq, row_skip_bin, ep_start, num_gtx,
                 param_opt, out):
    """Code one layer's levels (int32, C order) into ``out``.

    ``order``: scan order (positions into ``levels``); ``reset_after[i]``: the
    context reset (block-row boundary) after scan index ``i``;
    ``row_skip_bin``: write the general-profile row-skip flag (0) first;
    ``ep_start``: set the range to 256 before the layer (block scans).
    Returns ``(status, nbytes, index)`` (``index``: the offending scan index
    for ``PARITY``).
    """
    n_ctx = 53 + 4 * num_gtx + 37
    s0 = np.zeros(n_ctx, np.int64)
    s01 = np.zeros(n_ctx, np.int64)
    sh0 = np.zeros(n_ctx, np.int64)
    sh1 = np.zeros(n_ctx, np.int64)
    eco = np.zeros(n_ctx, np.int64)
    for c in range(n_ctx):
        _ctx_init(s0, s01, sh0, sh1, eco, c, 0)
    er = np.zeros(6, np.int64)
    er[1] = 510
    er[2] = 23
    n = order.shape[0]
    ok = True
    if row_skip_bin:
        ok = _enc_bins_ep(er, out, 0, 1)
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
            state = TRANS[state, v & 1]
    acc = np.zeros((n_ctx, N_ECO), np.int64)
    if param_opt:
        os0 = np.zeros((n_ctx, N_ECO), np.int64)
        os01 = np.zeros((n_ctx, N_ECO), np.int64)
        osh0 = np.zeros(N_ECO, np.int64)
        osh1 = np.zeros(N_ECO, np.int64)
        for i in range(N_ECO):
            osh0[i] = ECO_SETS[i, 0] + 4
            osh1[i] = ECO_SETS[i, 1]
        _opt_reset(os0, os01)
        state = 0
        nb = np.int64(0)
        for i in range(n):
            # NNCodec's rate pass codes the undivided level (its own remark)
            q = np.int64(levels[order[i]])
            _opt_value(os0, os01, osh0, osh1, acc, q, state, nb, num_gtx)
            nb = q
            if dq:
                state = TRANS[state, vals[i] & 1]
            if reset_after[i]:
                _opt_reset(os0, os01)
    flag_ctx = 53 + 4 * num_gtx + 34
    sig = signalled_contexts(num_gtx, dq)
    for k in range(sig.shape[0]):
        c = sig[k]
        best = _best_eco(acc, c) if param_opt else 0
        ok = ok and _enc_bin(er, out, s0, s01, sh0, sh1, flag_ctx, 1 if best else 0)
        if best:
            ok = ok and _enc_bins_ep(er, out, best - 1, 3)
        _ctx_init(s0, s01, sh0, sh1, eco, c, best)
    if ep_start:
        er[1] = 256
    state = 0
    nb = np.int64(0)
    for i in range(n):
        v = vals[i]
        ok = ok and _enc_value(er, out, s0, s01, sh0, sh1, v, state, nb, num_gtx)
        if not ok:
            return FULL, 0, i
        nb = v
        if dq:
            state = TRANS[state, v & 1]
        if reset_after[i]:
            for c in range(n_ctx):
                s01[c] = ECO_SETS[eco[c], 2]
                s0[c] = ECO_SETS[eco[c], 3]
            nb = 0
            er[1] = 256
    if not ok or not _enc_finish(er, out):
        return FULL, 0, n
    return OK, er[5], 0


# ------------------------------------------------------------------ decoder
@numba.njit(cache=True, inline="always")
def _byte(data, dr):
    p = dr[3]
    dr[3] = p + 1
    if p < data.shape[0]:
        return np.int64(data[p])
    return np.int64(0)


@numba.njit(cache=True)
def _dec_bin(data, dr, s0, s01, sh0, sh1, c):
    s = s01[c]
    q = s >> 7
    if q < 0:
        q = -q
    rlps = RLPS[q + (dr[1] & 0xE0)]
    rmps = dr[1] - rlps
    mps = 1 if s >= 0 else 0
    if dr[0] < (rmps << 7):
        b = mps
        rng = rmps
    else:
        dr[0] -= rmps << 7
        rng = rlps
        b = 1 - mps
    n = _clz9(rng)
    dr[1] = rng << n
    dr[0] <<= n
    dr[2] += n
    if dr[2] >= 0:
        dr[0] += _byte(data, dr) << dr[2]
        dr[2] -= 8
    _ctx_update(s0, s01, sh0, sh1, c, b)
    return b


@numba.njit(cache=True)
def _dec_bins_ep(data, dr, nb):
    bins = np.int64(0)
    if dr[1] == 256:
        rem = nb
        while rem > 0:
            k = min(rem, 8)
            bins = (bins << k) | ((dr[0] >> (15 - k)) & ((1 << k) - 1))
            dr[0] = (dr[0] << k) & 0x7FFF
            rem -= k
            dr[2] += k
            if dr[2] >= 0:
                dr[0] |= _byte(data, dr) << dr[2]
                dr[2] -= 8
        return bins
    rem = nb
    while rem > 8:
        dr[0] = (dr[0] << 8) + (_byte(data, dr) << (8 + dr[2]))
        sr = dr[1] << 15
        for _ in range(8):
            bins <<= 1
            sr >>= 1
            if dr[0] >= sr:
                bins += 1
                dr[0] -= sr
        rem -= 8
    dr[2] += rem
    dr[0] <<= rem
    if dr[2] >= 0:
        dr[0] += _byte(data, dr) << dr[2]
        dr[2] -= 8
    sr = dr[1] << (rem + 7)
    for _ in range(rem):
        bins <<= 1
        sr >>= 1
        if dr[0] >= sr:
            bins += 1
            dr[0] -= sr
    return bins


@numba.njit(cache=True)
def _dec_value(data, dr, s0, s01, sh0, sh1, state, nb, num_gtx):
    """Decode one value; returns (value, ok)."""
    if _dec_bin(data, dr, s0, s01, sh0, sh1, 3 * state + _nb_class(nb)) == 0:
        return np.int64(0), True
    neg = _dec_bin(data, dr, s0, s01, sh0, sh1, 48 + _nb_class(nb))
    a = np.int64(1)
    j = -1
    flag = 1
    while True:
        j += 1
        flag = _dec_bin(data, dr, s0, s01, sh0, sh1, 53 + 2 * j + neg)
        a += flag
        if flag == 0 or j >= num_gtx - 1:
            break
    if flag == 1:
        nbits = 0
        j = -1
        while True:
            j += 1
            flag = _dec_bin(data, dr, s0, s01, sh0, sh1, 53 + 4 * num_gtx + j)
            if flag:
                a += np.int64(1) << nbits
                nbits += 1
            if flag == 0 or j >= 30:
                break
        a += _dec_bins_ep(data, dr, nbits)
    if a > 0x7FFFFFFF:
        return np.int64(0), False
    return (-a if neg else a), True


@numba.njit(cache=True)
def decode_layer(data, order, reset_after, dq, row_skip_bin, ep_start, num_gtx, out):
    """Decode a payload written by :func:`encode_layer` into ``out`` (int32,
    flat).  Returns ``(status, bytes_read)``; ``bytes_read`` may exceed
    ``len(data)`` (bytes past the end read as zero): the caller rejects it."""
    n_ctx = 53 + 4 * num_gtx + 37
    s0 = np.zeros(n_ctx, np.int64)
    s01 = np.zeros(n_ctx, np.int64)
    sh0 = np.zeros(n_ctx, np.int64)
    sh1 = np.zeros(n_ctx, np.int64)
    eco = np.zeros(n_ctx, np.int64)
    for c in range(n_ctx):
        _ctx_init(s0, s01, sh0, sh1, eco, c, 0)
    dr = np.zeros(4, np.int64)
    dr[1] = 510
    dr[2] = -8
    b0 = _byte(data, dr)
    dr[0] = (b0 << 8) + _byte(data, dr)
    if row_skip_bin:
        if _dec_bins_ep(data, dr, 1) != 0:
            return BAD, dr[3]       # row skipping: not written by refcomp
    flag_ctx = 53 + 4 * num_gtx + 34
    sig = signalled_contexts(num_gtx, dq)
    for k in range(sig.shape[0]):
        best = 0
        if _dec_bin(data, dr, s0, s01, sh0, sh1, flag_ctx):
            best = 1 + _dec_bins_ep(data, dr, 3)
        _ctx_init(s0, s01, sh0, sh1, eco, sig[k], best)
    if ep_start:
        dr[1] = 256
    state = 0
    nb = np.int64(0)
    n = order.shape[0]
    for i in range(n):
        v, good = _dec_value(data, dr, s0, s01, sh0, sh1, state, nb, num_gtx)
        if not good or dr[3] > data.shape[0] + 4:
            return BAD, dr[3]
        nb = v
        q = v
        if dq:
            if v != 0:
                q = (v << 1) + ((state & 1) if v < 0 else -(state & 1))
            state = TRANS[state, v & 1]
        out[order[i]] = q
        if reset_after[i]:
            for c in range(n_ctx):
                s01[c] = ECO_SETS[eco[c], 2]
                s0[c] = ECO_SETS[eco[c], 3]
            nb = 0
            dr[1] = 256
    # terminating bin
    dr[1] -= 2
    if dr[0] < (dr[1] << 7):
        return BAD, dr[3]
    return OK, dr[3]
