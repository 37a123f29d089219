"""Ordered cells of the value-domain decoders, for :func:`refcomp.testing.compare_quantized`.

Each quantizer whose codes are not an affine grid (minifloat, posit, power
of two, codebook: k-means, shared weights, binary, ternary; sign_scale:
XNOR-Net, per-channel ternary) is described here by its own decision rule,
written independently of :mod:`refcomp.quantize` (a sibling package):

* ``rank``: an integer order of the codes, monotone in the decoded value;
* ``boundary(lo, i)``: where the rule switches from rank ``lo`` to
  ``lo + 1`` for element ``i`` (float64; NaN where no input switches, e.g.
  across a posit's zero or a saturated end);
* ``tol(b, lo, i)``: the distance from the boundary within which another
  correct implementation may decide the other way (one rounding; see the
  module docstring of :mod:`refcomp.testing.quantized`);
* ``choices(lo, i, w)``: at an exact tie, the rank each named tie rule picks.
"""

import math

import numpy as np

__all__ = ["ordered_cells", "VALUE_TIE_RULES", "posit_value"]

#: Tie rules named for the value-domain decoders: at a tie between two adjacent
#: values, "half_even" takes the even code pattern, "half_away" the larger
#: magnitude, "half_toward_zero" the smaller, "half_up" the larger value,
#: "half_down" the smaller; "sign_bit" (sign binarisation at 0) gives -0.0 the
#: negative and +0.0 the positive code; "zero_kept" (XNOR-Net's sign(0) = 0)
#: keeps 0 on the zero code.
VALUE_TIE_RULES = ("half_even", "half_away", "half_toward_zero", "half_up", "half_down",
                   "sign_bit", "zero_kept")

_SQRT2 = math.sqrt(2.0)


def posit_value(p, nbits, es):
    """Exact float64 values of positive posit(nbits, es) patterns ``p`` (int64, 0 < p < 2**(n-1)).

    nbits up to 33 (the boundaries of posit32 are posit33 values): at most
    30 fraction bits and a scale within float64's range for (nbits-3)·2**es
    <= 1000, so the result is exact.  Regime run m of the first bit b after
    the sign, k = m - 1 (b = 1) or -m (b = 0); exponent bits truncated by
    the end of the word count as 0 (FACTS.md §6.5).
    """
    p = np.asarray(p, np.int64)
    L = nbits - 1
    first = (p >> (L - 1)) & 1
    m = np.zeros(p.shape, np.int64)
    run = np.ones(p.shape, bool)
    for j in range(L - 1, -1, -1):
        run &= ((p >> j) & 1) == first
        m += run
    k = np.where(first == 1, m - 1, -m)
    rem_len = np.maximum(L - m - 1, 0)
    rem = p & ((np.int64(1) << rem_len) - 1)
    sh = rem_len - es
    e = np.where(sh >= 0, rem >> np.maximum(sh, 0), rem << np.maximum(-sh, 0))
    flen = np.maximum(sh, 0)
    f = rem & ((np.int64(1) << flen) - 1)
    frac = 1.0 + np.ldexp(f.astype(np.float64), -flen)
    return np.ldexp(frac, (k << es) + e)


def _values(q, codes):
    """Exact float64 values of ``codes`` under q's decoding rule (q's own class: no
    import of refcomp.quantize, a sibling package)."""
    return type(q)(np.asarray(codes).astype(q.codes.dtype), bits=q.bits, method=q.method,
                   decoder=q.decoder, params=q.params, dtype=np.float64).dequantize()


class _Cells:
    """Defaults: ranks are the codes, no boundary, exact ties possible."""

    exact_ties = True
    rules = ("half_up", "half_down")
    rule = None

    def __init__(self, q, w):
        self.q, self.w = q, w.reshape(-1).astype(np.float64)
        self.u = 2.0 ** -24 if w.dtype == np.float32 else 2.0 ** -53

    def rank(self, codes):
        return np.asarray(codes, np.int64).reshape(-1), np.ones(np.size(codes), bool)

    def value(self, r, i):
        return r.astype(np.float64)

    def even(self, r):
        return r % 2 == 0

    def choices(self, lo, i):
        """Rank picked by each rule of ``self.rules`` at ties between lo and lo + 1."""
        hi = lo + 1
        vlo, vhi = np.abs(self.value(lo, i)), np.abs(self.value(hi, i))
        out = {"half_up": hi, "half_down": lo,
               "half_away": np.where(vhi > vlo, hi, lo),
               "half_toward_zero": np.where(vhi > vlo, lo, hi),
               "half_even": np.where(self.even(lo), lo, hi),
               "sign_bit": np.where(np.signbit(self.w[i]), lo, hi)}
        return {r: out[r] for r in self.rules}

    def tol(self, b, lo, i):
        return 2 * self.u * np.abs(b)              # a conversion of w to the input dtype


class _Minifloat(_Cells):
    rules = ("half_even", "half_away", "half_toward_zero", "half_up", "half_down")
    rule = "half_even"

    def __init__(self, q, w, values):
        super().__init__(q, w)
        self.sign = 1 << (q.bits - 1)
        self._values = values

    def rank(self, codes):
        c = np.asarray(codes, np.int64).reshape(-1)
        return np.where(c & self.sign, -(c & (self.sign - 1)), c), np.ones(c.size, bool)

    def code(self, r):
        return np.where(r < 0, self.sign | -r, r)

    def value(self, r, i):
        ok = np.abs(r) < self.sign
        v = self._values(np.where(ok, self.code(r), 0).astype(self.q.codes.dtype))
        return np.where(ok, v.reshape(-1), np.nan)

    def even(self, r):
        return self.code(r) % 2 == 0

    def boundary(self, lo, i):
        with np.errstate(invalid="ignore", over="ignore"):
            m = (self.value(lo, i) + self.value(lo + 1, i)) / 2
        return np.where(np.isfinite(m), m, np.nan)


class _Posit(_Cells):
    rules = ("half_even", "half_away", "half_toward_zero", "half_up", "half_down")
    rule = "half_even"

    def __init__(self, q, w):
        super().__init__(q, w)
        self.n, self.es = int(q.params["nbits"]), int(q.params["es"])
        self.half = 1 << (self.n - 1)

    def rank(self, codes):
        c = np.asarray(codes, np.int64).reshape(-1)
        return np.where(c >= self.half, c - 2 * self.half, c), c != self.half   # NaR: unordered

    def value(self, r, i):
        mag = np.abs(r)
        ok = (mag > 0) & (mag < self.half)
        v = posit_value(np.where(ok, mag, 1), self.n, self.es)
        return np.where(ok, np.sign(r) * v, 0.0)

    def boundary(self, lo, i):
        # rounding on the bit string: between magnitudes p and p + 1 the switch is the
        # (n+1)-bit pattern 2p + 1; none across zero (0 < |x| < minpos -> minpos)
        p = np.where(lo >= 1, lo, -(lo + 1))
        ok = (p >= 1) & (p < self.half - 1) & (lo != -self.half)
        b = posit_value(np.where(ok, 2 * p + 1, 1), self.n + 1, self.es)
        return np.where(ok, np.where(lo >= 1, b, -b), np.nan)


class _PowerOfTwo(_Cells):
    rules = ("half_away", "half_toward_zero", "half_up", "half_down")

    def __init__(self, q, w):
        super().__init__(q, w)
        self.e_min, self.log = int(q.params["e_min"]), q.params["domain"] == "log"
        self.L = (1 << (q.bits - 1)) - 1
        self.exact_ties = not self.log          # sqrt(2) * 2**e is no float
        self.rule = None if self.log else "half_away"

    def value(self, r, i):
        return np.where(r == 0, 0.0, np.sign(r) * np.ldexp(1.0, np.abs(r) - 1 + self.e_min))

    def boundary(self, lo, i):
        j = np.where(lo >= 0, lo, -(lo + 1))
        ok = (lo >= -self.L) & (lo < self.L)
        if self.log:
            b = np.ldexp(_SQRT2, np.where(j == 0, self.e_min - 1, j - 1 + self.e_min))
        else:
            b = np.where(j == 0, np.ldexp(1.0, self.e_min - 1),
                         np.ldexp(1.5, j - 1 + self.e_min))
        return np.where(ok, np.where(lo >= 0, b, -b), np.nan)

    def tol(self, b, lo, i):
        if not self.log:
            return 2 * self.u * np.abs(b)
        # round(log2|w|): a conversion of w plus a log2 faithful to one ulp of |log2 w|
        e = np.abs(np.floor(np.log2(np.where(b == 0, 1.0, np.abs(b)))))
        return 2 * self.u * np.abs(b) * (e + 2)


class _Codebook(_Cells):
    rules = ("half_away", "half_toward_zero", "half_up", "half_down")

    def __init__(self, q, w):
        super().__init__(q, w)
        book = np.asarray(q.params["codebook"], np.float64)
        self.zero_code = int(q.params.get("zero_code", -1)) if q.method == "kmeans_shared" \
            else -1
        keep = np.ones(book.size, bool)
        if self.zero_code >= 0:               # pruned weights: never a cell of the others
            keep[self.zero_code] = False
        self.book, self.keep = book, keep
        self.uniq = np.unique(book[keep])
        self.rule = "half_up" if q.method in ("kmeans", "kmeans_shared") else None

    def rank(self, codes):
        c = np.asarray(codes, np.int64).reshape(-1)
        return np.searchsorted(self.uniq, self.book[c]), self.keep[c]

    def value(self, r, i):
        return self.uniq[np.clip(r, 0, self.uniq.size - 1)]

    def boundary(self, lo, i):
        ok = (lo >= 0) & (lo < self.uniq.size - 1)
        lo_c = np.clip(lo, 0, max(self.uniq.size - 2, 0))
        hi_c = np.clip(lo + 1, 0, self.uniq.size - 1)
        return np.where(ok, (self.uniq[lo_c] + self.uniq[hi_c]) / 2, np.nan)


class _Sign(_Cells):
    """Sign binarisation (binary, XNOR-Net zero="plus"): one boundary at 0, w >= 0 -> +."""

    rules = ("half_up", "half_down", "sign_bit")
    rule = "half_up"

    def value(self, r, i):
        return 2.0 * r - 1

    def boundary(self, lo, i):
        return np.where(lo == 0, 0.0, np.nan)

    def tol(self, b, lo, i):
        # a float64 input converted to float32 reaches 0 when |w| <= 2**-150
        return np.full(np.shape(b), 0.0 if self.u == 2.0 ** -24 else 2.0 ** -150)


class _SignKeep(_Sign):
    """XNOR-Net zero="keep": codes 0, 1, 2 for w < 0, w == 0, w > 0."""

    rules = ("zero_kept", "half_up", "half_down", "sign_bit")
    rule = "zero_kept"

    def value(self, r, i):
        return r - 1.0

    def boundary(self, lo, i):
        return np.where((lo == 0) | (lo == 1), 0.0, np.nan)

    def choices(self, lo, i):
        neg = np.signbit(self.w[i])
        one = np.ones(np.shape(i), np.int64)
        return {"zero_kept": one, "half_up": 2 * one, "half_down": 0 * one,
                "sign_bit": np.where(neg, 0, 2)}


class _Ternary(_Cells):
    """TWN / TTQ: codes 0, 1, 2 for w < -Δ, |w| <= Δ, w > Δ (strict comparisons)."""

    rules = ("half_toward_zero", "half_away", "half_up", "half_down")
    rule = "half_toward_zero"

    def __init__(self, q, w, delta, count, axis):
        super().__init__(q, w)
        d = np.asarray(delta, np.float64)
        if axis is not None and d.ndim:
            shp = [1] * w.ndim
            shp[axis] = -1
            d = d.reshape(shp)
        self.delta = np.broadcast_to(d, w.shape).reshape(-1)
        # Δ = factor * mean|w|: the mean in any summation order ((n - 1) u for
        # non-negative terms), the division, the product, the factor's own rounding
        # and Δ's conversion; TTQ (t * max|w|): the last three
        self.k = count + 3 if q.method == "ternary" else 4

    def value(self, r, i):
        return r - 1.0

    def boundary(self, lo, i):
        d = self.delta[i]
        return np.where(lo == 0, -d, np.where(lo == 1, d, np.nan))

    def tol(self, b, lo, i):
        return self.k * self.u * np.abs(b)


def ordered_cells(q, w):
    """The cell description of ``q`` (a :class:`refcomp.quantize.Quantized` of ``w``), or None.

    None for the grid decoders (affine, fixed point, uniform: handled by
    ``quantized._grid``), for unknown decoders, and where the rule's
    parameters are missing (a power of two without ``domain``, a ternary
    result without ``info["delta"]``, e.g. one built by ``from_codes``):
    those are compared exactly.
    """
    dec, meth, p = q.decoder, q.method, q.params
    info = getattr(q, "info", None) or {}
    if dec == "minifloat":
        return _Minifloat(q, w, lambda c: _values(q, c))
    if dec == "posit":
        return _Posit(q, w)
    if dec == "power_of_two":
        return _PowerOfTwo(q, w) if p.get("domain") in ("log", "linear") else None
    if dec == "codebook":
        if meth == "binary":
            return _Sign(q, w)
        if meth in ("ternary", "ternary_ttq"):
            return _Ternary(q, w, info["delta"], w.size, None) if "delta" in info else None
        return _Codebook(q, w)
    if dec == "sign_scale":
        if p.get("levels") == "binary":
            return _Sign(q, w)
        if meth == "xnor":
            return _SignKeep(q, w)
        if meth == "ternary" and "delta" in info and p.get("axis") is not None:
            axis = int(p["axis"])
            return _Ternary(q, w, info["delta"], w.size // max(w.shape[axis], 1), axis)
    return None
