"""Plain-Python twins of :mod:`refcomp.coding.cabac._kernels`.

Same stream, written with Python ints, lists and small classes (a context
object per model, an engine object per direction) instead of flat arrays;
tests assert identical bytes, levels and statuses.
"""
import numpy as np

from ._kernels import BAD, FULL, OK, PARITY
from ._tables import CURVE, ECO_SETS, EST_BITS, RLPS, n_contexts

_RLPS = RLPS.tolist()
_CURVE = CURVE.tolist()
_ECO = ECO_SETS.tolist()
_EST = EST_BITS.tolist()


class _Ctx:
    """One context model: the dual-rate (fast ``s0``, combined ``s01``) state."""

    __slots__ = ("eco", "sh0", "sh1", "s0", "s01")

    def __init__(self, eco=0):
        self.init(eco)

    def init(self, eco):
        self.eco = eco
        self.sh0, self.sh1 = _ECO[eco][0] + 4, _ECO[eco][1]
        self.reset()

    def reset(self):
        self.s01, self.s0 = _ECO[self.eco][2], _ECO[self.eco][3]

    def update(self, b):
        sg = 1 if b else -1
        fast = self.s0
        slow = self.s01 - 16 * fast
        fast += sg * (_CURVE[16 + ((sg * fast) >> 3)] >> self.sh0)
        slow += sg * (_CURVE[16 + ((sg * slow) >> 7)] >> self.sh1)
        self.s0, self.s01 = fast, slow + 16 * fast

    def rlps(self, rng):
        return _RLPS[abs(self.s01 >> 7) + (rng & 0xE0)]

    def mps(self):
        return 1 if self.s01 >= 0 else 0


def _renorm_shift(x):
    return 9 - x.bit_length()


class _Enc:
    def __init__(self):
        self.low, self.rng, self.left = 0, 510, 23
        self.nbuf, self.buf = 0, 0
        self.out = bytearray()

    def _flush_byte(self):
        lead = self.low >> (24 - self.left)
        self.left += 8
        self.low &= 0xFFFFFFFF >> self.left
        if lead == 0xFF:
            self.nbuf += 1
        elif self.nbuf:
            carry = lead >> 8
            self.out.append((self.buf + carry) & 0xFF)
            self.out.extend([(0xFF + carry) & 0xFF] * (self.nbuf - 1))
            self.nbuf, self.buf = 1, lead & 0xFF
        else:
            self.nbuf, self.buf = 1, lead

    def bin(self, ctx, b):
        r_lps = ctx.rlps(self.rng)
        self.rng -= r_lps
        if b == ctx.mps():
            if self.rng < 256:
                self.rng *= 2
                self.low = (self.low * 2) & 0xFFFFFFFF
                self.left -= 1
        else:
            n = _renorm_shift(r_lps)
            self.low = ((self.low + self.rng) << n) & 0xFFFFFFFF
            self.rng = r_lps << n
            self.left -= n
        if self.left < 12:
            self._flush_byte()
        ctx.update(b)

    def bypass(self, bins, nb):
        if self.rng == 256:
            while nb > 0:
                k = min(nb, 8)
                chunk = (bins >> (nb - k)) & ((1 << k) - 1)
                self.low = ((self.low << k) + (chunk << 8)) & 0xFFFFFFFF
                nb -= k
                self.left -= k
                if self.left < 12:
                    self._flush_byte()
            return
        while nb > 8:
            nb -= 8
            top = bins >> nb
            self.low = ((self.low << 8) + self.rng * top) & 0xFFFFFFFF
            bins -= top << nb
            self.left -= 8
            if self.left < 12:
                self._flush_byte()
        self.low = ((self.low << nb) + self.rng * bins) & 0xFFFFFFFF
        self.left -= nb
        if self.left < 12:
            self._flush_byte()

    def finish(self):
        self.low = ((self.low + self.rng - 2) << 7) & 0xFFFFFFFF
        self.rng = 256
        self.left -= 7
        if self.left < 12:
            self._flush_byte()
        if self.low >> (32 - self.left):
            self.out.append((self.buf + 1) & 0xFF)
            self.out.extend([0] * max(self.nbuf - 1, 0))
            self.low -= 1 << (32 - self.left)
        else:
            if self.nbuf:
                self.out.append(self.buf)
            self.out.extend([0xFF] * max(self.nbuf - 1, 0))
        self.left -= 1
        tail = ((((self.low >> 8) << 1) | 1) << (8 + self.left)) & 0xFFFFFFFF
        for i in range(0, 24 - self.left, 8):
            self.out.append((tail >> (24 - i)) & 0xFF)
        return bytes(self.out)


class _Dec:
    def __init__(self, data):
        self.data, self.pos = data, 0
        self.rng, self.need = 510, -8
        self.val = (self._next() << 8) | self._next()

    def _next(self):
        p = self.pos
        self.pos += 1
        return self.data[p] if p < len(self.data) else 0

    def bin(self, ctx):
        r_lps = ctx.rlps(self.rng)
        r_mps = self.rng - r_lps
        if self.val < (r_mps << 7):
            b, self.rng = ctx.mps(), r_mps
        else:
            self.val -= r_mps << 7
            b, self.rng = 1 - ctx.mps(), r_lps
        n = _renorm_shift(self.rng)
        self.rng <<= n
        self.val <<= n
        self.need += n
        if self.need >= 0:
            self.val += self._next() << self.need
            self.need -= 8
        ctx.update(b)
        return b

    def bypass(self, nb):
        bins = 0
        if self.rng == 256:
            while nb > 0:
                k = min(nb, 8)
                bins = (bins << k) | ((self.val >> (15 - k)) & ((1 << k) - 1))
                self.val = (self.val << k) & 0x7FFF
                nb -= k
                self.need += k
                if self.need >= 0:
                    self.val |= self._next() << self.need
                    self.need -= 8
            return bins
        while nb > 8:
            self.val = (self.val << 8) + (self._next() << (8 + self.need))
            sr = self.rng << 15
            for _ in range(8):
                sr >>= 1
                bit = 1 if self.val >= sr else 0
                bins = 2 * bins + bit
                self.val -= sr * bit
            nb -= 8
        self.need += nb
        self.val <<= nb
        if self.need >= 0:
            self.val += self._next() << self.need
            self.need -= 8
        sr = self.rng << (nb + 7)
        for _ in range(nb):
            sr >>= 1
            bit = 1 if self.val >= sr else 0
            bins = 2 * bins + bit
            self.val -= sr * bit
        return bins

    def terminate(self):
        self.rng -= 2
        return self.val >= (self.rng << 7)


def _nbc(nb):
    return 0 if nb == 0 else (1 if nb < 0 else 2)


def _bins_of(v, state, nb, num_gtx):
    """The context-coded bins of value ``v`` as (ctx, bin) pairs, plus the
    bypass part (bits, count) or None."""
    bins = [(3 * state + _nbc(nb), 1 if v else 0)]
    if v == 0:
        return bins, None
    bins.append((48 + _nbc(nb), 1 if v < 0 else 0))
    neg = 0 if v > 0 else 1
    rest = abs(v) - 1
    for j in range(num_gtx):
        bins.append((53 + 2 * j + neg, 1 if rest > 0 else 0))
        if rest == 0:
            return bins, None
        rest -= 1
    base = 53 + 4 * num_gtx
    # Exp-Golomb order 0 with a context-coded unary prefix
    p = 0
    while rest >= (1 << (p + 1)) - 1:
        p += 1
    bins.extend((base + j, 1) for j in range(p))
    bins.append((base + p, 0))
    return bins, ((rest - ((1 << p) - 1), p) if p else None)


def _signalled(num_gtx, dq, n_states):
    return (list(range(3 * n_states if dq else 3)) + [48, 49, 50] + list(range(53, 53 + 2 * num_gtx))
            + list(range(53 + 4 * num_gtx, 53 + 4 * num_gtx + 31)))


def encode_layer_twin(levels, order, reset_after, dq, trans, row_skip_bin, ep_start, num_gtx,
                      param_opt):
    """Twin of ``encode_layer``: returns ``(status, payload bytes, index)``."""
    flat = [int(x) for x in np.asarray(levels).ravel()]
    order = [int(x) for x in order]
    resets = [bool(x) for x in reset_after]
    n_ctx = n_contexts(num_gtx)
    ctx = [_Ctx() for _ in range(n_ctx)]
    enc = _Enc()
    if row_skip_bin:
        enc.bypass(0, 1)
    vals, state = [], 0
    for i, pos in enumerate(order):
        q = flat[pos]
        v = q
        if dq and q:
            odd = state & 1
            v = (q + (odd if q > 0 else -odd)) // 2
            if v == 0 or 2 * v - (odd if v > 0 else -odd) != q:
                return PARITY, b"", i
        vals.append(v)
        if dq:
            state = trans[state][v & 1]
    choice = [0] * n_ctx
    if param_opt:
        cand = [[_Ctx(e) for e in range(9)] for _ in range(n_ctx)]
        cost = [[0] * 9 for _ in range(n_ctx)]
        state, nb = 0, 0
        for i, pos in enumerate(order):
            q = flat[pos]
            for c, b in _bins_of(q, state, nb, num_gtx)[0]:
                for e, m in enumerate(cand[c]):
                    cost[c][e] += _EST[512 + (m.s01 >> 3)][b]
                    m.update(b)
            nb = q
            if dq:
                state = trans[state][vals[i] & 1]
            if resets[i]:
                for row in cand:
                    for m in row:
                        m.reset()
        for c in range(n_ctx):
            total = [cost[c][e] + (3 << 15 if e else 0) for e in range(9)]
            total[0] = cost[c][0]
            choice[c] = min(range(9), key=lambda e: (total[e], e))
    flag = ctx[53 + 4 * num_gtx + 34]
    for c in _signalled(num_gtx, dq, len(trans)):
        enc.bin(flag, 1 if choice[c] else 0)
        if choice[c]:
            enc.bypass(choice[c] - 1, 3)
        ctx[c].init(choice[c])
    if ep_start:
        enc.rng = 256
    state, nb = 0, 0
    for i, v in enumerate(vals):
        bins, ep = _bins_of(v, state, nb, num_gtx)
        for c, b in bins:
            enc.bin(ctx[c], b)
        if ep is not None:
            enc.bypass(*ep)
        nb = v
        if dq:
            state = trans[state][v & 1]
        if resets[i]:
            for m in ctx:
                m.reset()
            nb = 0
            enc.rng = 256
    return OK, enc.finish(), 0


def decode_layer_twin(data, order, reset_after, dq, trans, row_skip_bin, ep_start, num_gtx,
                      n_out):
    """Twin of ``decode_layer``: returns ``(status, bytes_read, levels)``."""
    data = bytes(data)
    n_ctx = n_contexts(num_gtx)
    ctx = [_Ctx() for _ in range(n_ctx)]
    dec = _Dec(data)
    out = np.zeros(n_out, dtype=np.int32)
    if row_skip_bin and dec.bypass(1):
        return BAD, dec.pos, out
    flag = ctx[53 + 4 * num_gtx + 34]
    for c in _signalled(num_gtx, dq, len(trans)):
        ctx[c].init(1 + dec.bypass(3) if dec.bin(flag) else 0)
    if ep_start:
        dec.rng = 256
    state, nb = 0, 0
    for i, pos in enumerate(order):
        v = 0
        if dec.bin(ctx[3 * state + _nbc(nb)]):
            neg = dec.bin(ctx[48 + _nbc(nb)])
            a = 1
            for j in range(num_gtx):
                g = dec.bin(ctx[53 + 2 * j + neg])
                a += g
                if not g:
                    break
            else:
                p = 0
                while p < 31 and dec.bin(ctx[53 + 4 * num_gtx + p]):
                    a += 1 << p
                    p += 1
                a += dec.bypass(p)
            if a > 0x7FFFFFFF:
                return BAD, dec.pos, out
            v = -a if neg else a
        if dec.pos > len(data) + 4:
            return BAD, dec.pos, out
        q = v
        if dq:
            if v:
                odd = state & 1
                q = 2 * v - (odd if v > 0 else -odd)
            state = trans[state][v & 1]
        out[int(pos)] = q
        nb = v
        if reset_after[i]:
            for m in ctx:
                m.reset()
            nb = 0
            dec.rng = 256
    if not dec.terminate():
        return BAD, dec.pos, out
    return OK, dec.pos, out


__all__ = ["encode_layer_twin", "decode_layer_twin", "FULL"]


def encode_bins_twin(kinds, ctxs, vals, nbits, ctx_eco):
    """Twin of ``encode_bins``: returns the payload bytes."""
    ctx = [_Ctx(int(e)) for e in ctx_eco]
    enc = _Enc()
    for k, c, v, nb in zip(kinds.tolist(), ctxs.tolist(), vals.tolist(), nbits.tolist()):
        if k == 0:
            enc.bin(ctx[c], v)
        else:
            enc.bypass(v, nb)
    return enc.finish()


def decode_bins_twin(data, kinds, ctxs, nbits, ctx_eco):
    """Twin of ``decode_bins``: returns ``(status, bytes_read, values)``."""
    ctx = [_Ctx(int(e)) for e in ctx_eco]
    dec = _Dec(bytes(data))
    vals = []
    for k, c, nb in zip(kinds.tolist(), ctxs.tolist(), nbits.tolist()):
        vals.append(dec.bin(ctx[c]) if k == 0 else dec.bypass(nb))
        if dec.pos > len(data) + 4:
            return BAD, dec.pos, np.array(vals, dtype=np.int64)
    if not dec.terminate():
        return BAD, dec.pos, np.array(vals, dtype=np.int64)
    return OK, dec.pos, np.array(vals, dtype=np.int64)
