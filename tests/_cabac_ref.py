"""Ground-truth model of the NNC arithmetic encoder, written for the tests.

Independent of refcomp's engine in form: the code value is one unbounded
Python int ``t`` of ``nbits`` bits (no 32-bit register, no byte buffering,
no carry propagation: carries happen in the big-int addition), and the
stream is ``t`` with its last 8 bits replaced by a single 1 bit, padded with
zeros to whole bytes.  The probability model is the standard's dual-rate
update, written out from the formulas of the clause (fast state ``a`` with
shift ``4 + SH0``, slow state ``b`` with shift ``SH1``, combined ``b + 16 a``).
"""
from refcomp.coding.cabac._tables import CURVE, ECO_SETS, RLPS


class Model:
    def __init__(self, eco):
        sh0, sh1, comb, fast = (int(x) for x in ECO_SETS[eco])
        self.k_fast, self.k_slow = 4 + sh0, sh1
        self.fast, self.slow = fast, comb - 16 * fast

    @property
    def comb(self):
        return self.slow + 16 * self.fast

    def update(self, bit):
        d = 1 if bit else -1
        self.fast += d * (int(CURVE[16 + (d * self.fast) // 8]) >> self.k_fast)
        self.slow += d * (int(CURVE[16 + (d * self.slow) // 128]) >> self.k_slow)


class BigEncoder:
    def __init__(self):
        self.t, self.nbits, self.rng = 0, 9, 510

    def _shift(self, n):
        self.t <<= n
        self.nbits += n

    def bin(self, model, bit):
        s = model.comb
        q = abs(s // 128)
        lps = int(RLPS[q + 32 * ((self.rng >> 5) & 7)])
        mps = 1 if s >= 0 else 0
        self.rng -= lps
        if bit != mps:
            self.t += self.rng
            self.rng = lps
        while self.rng < 256:
            self.rng *= 2
            self._shift(1)
        model.update(bit)

    def bypass(self, value, n):
        for k in range(n - 1, -1, -1):
            self._shift(1)
            self.t += self.rng * ((value >> k) & 1)

    def finish(self):
        self.t += self.rng - 2
        self._shift(7)
        t, n = ((self.t >> 8) << 1) | 1, self.nbits - 7
        pad = (-n) % 8
        return (t << pad).to_bytes((n + pad) // 8, "big")


def encode(kinds, ctxs, vals, nbits, ctx_eco):
    models = [Model(int(e)) for e in ctx_eco]
    enc = BigEncoder()
    for k, c, v, nb in zip(kinds.tolist(), ctxs.tolist(), vals.tolist(), nbits.tolist()):
        if k == 0:
            enc.bin(models[c], v)
        else:
            enc.bypass(v, nb)
    return enc.finish()
