"""Compare another implementation's quantization codes with refcomp's: :func:`compare_quantized`.

Two correct quantizers can disagree on an input that sits on, or within
one rounding of, a cell boundary: one divides by the scale and the other
multiplies by its reciprocal (FACTS.md §5.8), one rounds ties half to even
and the other half away from zero (§5.9), one converts through float32 and
the other does not (§6.1).  Those elements are *boundary cases*, listed
apart; only the others count as mismatches.  At an exact tie the report
says which tie rules the other implementation's choices are consistent
with, so a framework that breaks ties another way is told exactly that.

Cell boundaries by decoder (``t`` is the input in the units of the grid,
computed exactly in float64 from the float32/float64 input):

==============  ==============================================================
affine          ``t = w / scale`` (per channel); round-to-nearest modes:
                boundary between codes q and q+1 at ``t = q - zp + 1/2``;
                "floor": at ``t = q + 1 - zp``
fixed_point     the same with ``scale = 2**-frac_bits``, ``zp = 0``
uniform         ``t = (w - theta_min) / delta`` (grid "range") or
                ``w / delta`` ("zero"): boundaries at the integers
minifloat       the midpoint of the two adjacent format values (ties to the even
                pattern)
posit           between magnitudes with patterns p and p+1: the value of the
                (n+1)-bit posit pattern 2p+1 (posits round on the bit string,
                so where exponent bits are cut off the boundary is the
                geometric, not the arithmetic, midpoint); ties to the even
                pattern; none between 0 and ±minpos or beyond ±maxpos
                (posits neither underflow to 0 nor overflow)
power_of_two    "log": sqrt(2)·2**e between 2**e and 2**(e+1), and
                2**(e_min − 1/2) between 0 and 2**e_min (never a float: no
                exact tie); "linear": 1.5·2**e and 2**(e_min − 1), ties to
                the larger magnitude
codebook        the midpoint of two adjacent codebook values (k-means, shared
                weights: ties to the larger centroid; a shared codebook's
                zero code is no cell: pruned weights are exact zeros)
binary          0 (sign, XNOR-Net ``zero="plus"``): w >= 0 gives +1, so both
                zeros tie to the positive code; XNOR-Net ``zero="keep"``: the
                zero code is the single point 0
ternary         ±Δ (TWN, TTQ, per tensor or per channel; ``info["delta"]``):
                |w| <= Δ gives 0 (strict comparisons: ties toward zero)
==============  ==============================================================

Within one rounding: ``|t - boundary| <= 4 u (|t| + |zp| + 1)`` with ``u``
the unit roundoff of the input dtype: a division or a reciprocal and a
product (two roundings of ``|t|``), the zero point added before rounding
(one of ``|t + zp|``), plus one rounding of the boundary's own
computation.  For value boundaries (minifloat, posit, codebook, linear
power of two): ``|w - b| <= 2 u |b|`` (a conversion through float32 first
is one rounding of ``w``).  Log-domain power of two: ``2 u |b| (|e| + 2)``
with ``e`` the boundary's binary exponent (the conversion plus a ``log2``
faithful to one ulp of ``|log2 w| ~ |e|``).  Binary: only ``w == 0``, or
for float64 input ``|w| <= 2**-150`` (which float32 rounds to zero).
Ternary: ``|w ∓ Δ| <= k u Δ`` with k = n + 3 for TWN (Δ = 0.7 · mean
|w| over n weights: the sum in any order, the division, the product and
the factor's rounding, the conversion of Δ) and k = 4 for TTQ (Δ = t ·
max|w|).  Codes that differ by more than one cell are always mismatches.

At an exact tie the report names the rules consistent with the other
implementation at every element of the input on a boundary (where the two
agree and where they differ): :data:`TIE_RULES` for the grid decoders,
:data:`VALUE_TIE_RULES` (half_even, half_away, half_toward_zero, half_up,
half_down, and sign_bit / zero_kept for sign binarisation) for the others.
Decoders without such an analysis (product, residual, NNC; a ternary or
power-of-two result whose ``info["delta"]`` / ``params["domain"]`` is
missing, as from ``from_codes``) are compared exactly: every differing
code is a mismatch.
"""

from fractions import Fraction

import numpy as np

from .._errors import ParameterError, ShapeError
from ._cells import VALUE_TIE_RULES, ordered_cells

__all__ = ["compare_quantized", "QuantizedComparison", "TIE_RULES", "VALUE_TIE_RULES"]

#: Tie rules named in reports: how an exact tie ``k + 1/2`` is rounded;
#: "half_even_after_zp" rounds ``k + 1/2 + zp`` half to even (the zero point
#: added before rounding, as ``torch.quantize_per_tensor``, FACTS.md §5.8).
TIE_RULES = ("half_even", "half_away", "half_up", "half_down", "half_toward_zero",
             "half_even_after_zp")


def _tie_result(k, rule, zp=0):
    """Integer result (zero point excluded) of rounding the exact tie ``k + 1/2``."""
    up = k + 1
    if rule == "half_even_after_zp":
        return _tie_result(k + zp, "half_even") - zp
    if rule == "half_even":
        return k if k % 2 == 0 else up
    if rule == "half_away":
        return up if k >= 0 else k
    if rule == "half_up":
        return up
    if rule == "half_down":
        return k
    return k if k >= 0 else up                      # half_toward_zero


class QuantizedComparison:
    """Result of :func:`compare_quantized`.

    Attributes
    ----------
    size : int
        Elements compared.
    mismatches : ndarray of int (flat indices)
        Codes that differ where ``w`` is not within one rounding of a cell
        boundary (or differ by more than one cell).
    boundary : ndarray of int (flat indices)
        Codes that differ within one rounding of a boundary, exact ties
        excluded.
    ties : ndarray of int (flat indices)
        Codes that differ at an exact tie.
    tie_rules : tuple of str
        The rules of :data:`TIE_RULES` consistent with the other
        implementation's codes at every exact tie of the input, where the
        two agree and where they differ (affine and fixed point; empty
        when none fits, all when the input holds no tie).  The other
        decoders name rules of :data:`VALUE_TIE_RULES` the same way
        (those their decoder offers; see the module docstring).
    refcomp_rule : str or None
        refcomp's rounding (``params["rounding"]``) when it has one.
    ok : bool
        No mismatch (boundary cases and ties allowed).
    """

    def __init__(self, size, mismatches, boundary, ties, tie_rules, refcomp_rule, lines):
        self.size, self.mismatches, self.boundary, self.ties = size, mismatches, boundary, ties
        self.tie_rules, self.refcomp_rule, self._lines = tie_rules, refcomp_rule, lines

    @property
    def ok(self):
        return self.mismatches.size == 0

    def report(self):
        """Multi-line text: counts, the tie rule diagnosis, the first cases of each kind."""
        head = (f"{self.mismatches.size} mismatches, {self.boundary.size} boundary cases, "
                f"{self.ties.size} exact ties decided differently, of {self.size} codes")
        lines = [head]
        if self.ties.size:
            other = ", ".join(self.tie_rules) if self.tie_rules else "no single named rule"
            lines.append(f"ties: refcomp rounds {self.refcomp_rule}; the other implementation "
                         f"breaks ties consistently with: {other}")
        return "\n".join(lines + self._lines)

    def assert_ok(self):
        """Raise AssertionError with :meth:`report` if there is any mismatch."""
        if not self.ok:
            raise AssertionError(self.report())
        return self

    def __repr__(self):
        return (f"QuantizedComparison(mismatches={self.mismatches.size}, "
                f"boundary={self.boundary.size}, ties={self.ties.size}, ok={self.ok})")


def _u(dtype):
    return 2.0 ** -24 if np.dtype(dtype) == np.float32 else 2.0 ** -53


def _grid(q, w):
    """(t, zp, scale, floor?, rule) of the grid decoders (arrays of w's shape), or None."""
    p, dec = q.params, q.decoder
    w64 = w.astype(np.float64)
    if dec in ("affine", "fixed_point"):
        if dec == "affine":
            s = np.asarray(p["scale"], np.float64)
            zp = np.asarray(p["zero_point"], np.float64)
            shp = [1] * w.ndim
            if p["axis"] is not None:
                shp[int(p["axis"])] = -1
            s, zp = s.reshape(shp) if w.ndim else s.reshape(()), \
                zp.reshape(shp) if w.ndim else zp.reshape(())
        else:
            s, zp = np.float64(2.0 ** -p["frac_bits"]), np.float64(0.0)
        s = np.broadcast_to(s, w.shape)
        return (w64 / s, np.broadcast_to(zp, w.shape), s, p["rounding"] == "floor",
                p["rounding"])
    if dec == "uniform":
        d = p["delta"]
        if d == 0:
            return None
        t = (w64 - p["theta_min"]) / d if p["grid"] == "range" else w64 / d
        off = 0.0 if p["grid"] == "range" else float(p["code_offset"])
        return t, np.full(w.shape, -off), None, True, "floor"
    return None


def _exact_tie(wv, sv, k):
    """Is w / s exactly k + 1/2 (Fractions: no rounding)?"""
    return Fraction(float(wv)) / Fraction(float(sv)) == Fraction(2 * k + 1, 2)


def compare_quantized(codes_other, w, quantized, *, max_report=10):
    """Compare another implementation's codes with refcomp's, boundary cases apart.

    Parameters
    ----------
    codes_other : array_like of integers, the shape of ``w``
        The other implementation's codes for ``w``: affine codes in
        ``[qmin, qmax]`` (int8 / uint8 ...), uniform cell indices, minifloat
        bit patterns (e.g. ``x.astype(ml_dtypes.bfloat16).view(np.uint16)``),
        posit bit patterns, signed power-of-two codes, codebook indices
        (binary, ternary, k-means), sign_scale codes.
    w : ndarray, float32 or float64
        The quantized input.
    quantized : refcomp.quantize.Quantized
        refcomp's result for ``w`` (its codes and parameters: the other
        implementation must have used the same scale / zero point / format).
    max_report : int, keyword-only
        Cases of each kind listed in :meth:`QuantizedComparison.report`.

    Returns
    -------
    QuantizedComparison
        ``ok`` when every differing code is a boundary case or an exact
        tie (see the module docstring); ``report()`` lists the first
        mismatches and boundary cases with their index, ``w``, ``t`` and
        both codes, and names the tie rules consistent with the other
        implementation.

    Raises
    ------
    ShapeError
        ``codes_other`` and ``w`` and the codes of ``quantized`` differ in shape.
    ParameterError
        ``codes_other`` is not an integer array.
    """
    w = np.asarray(w)
    co = np.asarray(codes_other)
    cr = np.asarray(quantized.codes)
    if co.shape != w.shape or cr.shape != w.shape:
        raise ShapeError(f"codes_other {co.shape}, w {w.shape} and the quantized codes "
                         f"{cr.shape} must have one shape")
    if co.dtype.kind not in "iub":
        raise ParameterError(f"codes_other must hold integers, got dtype {co.dtype}")
    u = _u(w.dtype)
    co64, cr64 = co.astype(np.int64).reshape(-1), cr.astype(np.int64).reshape(-1)
    diff = np.flatnonzero(co64 != cr64)
    wf = w.reshape(-1)
    near = np.zeros(diff.size, bool)
    tie = np.zeros(diff.size, bool)
    rules = set(TIE_RULES)
    seen_tie = False
    lines = []
    g = _grid(quantized, w)
    rule = quantized.params.get("rounding")
    if g is not None:
        t, zp, sc, floor, rule = g
        t, zp = t.reshape(-1), np.asarray(zp, np.float64).reshape(-1)
        lo = np.minimum(co64[diff], cr64[diff])
        adjacent = np.abs(co64[diff] - cr64[diff]) == 1
        b = lo + 1 - zp[diff] if floor else lo - zp[diff] + 0.5
        near = adjacent & (np.abs(t[diff] - b) <= 4 * u * (np.abs(t[diff]) + np.abs(zp[diff]) + 1))
        if not floor and sc is not None:
            # every exact tie (both codes agreeing or not) narrows the other's tie rule
            sc = sc.reshape(-1)
            frac = t - np.floor(t)
            cand = np.flatnonzero(np.abs(frac - 0.5) <= 4 * u * (np.abs(t) + 1))
            pos = {int(i): j for j, i in enumerate(diff)}
            p = quantized.params
            qmin, qmax = (p["qmin"], p["qmax"]) if quantized.decoder == "affine" else (
                -(1 << (p["word_bits"] - 1)), (1 << (p["word_bits"] - 1)) - 1)
            for i in cand:
                k = int(np.floor(t[i]))
                if not _exact_tie(wf[i], sc[i], k):
                    continue
                chosen = int(co64[i] - zp[i])
                if k + zp[i] < qmin or k + 1 + zp[i] > qmax or chosen not in (k, k + 1):
                    continue                           # saturated: the clamp decided
                rules &= {r for r in TIE_RULES if _tie_result(k, r, int(zp[i])) == chosen}
                seen_tie = True
                if int(i) in pos and near[pos[int(i)]]:
                    tie[pos[int(i)]] = True
    else:
        cells = _ordered(quantized, w, co64)
        bvals = None
        if cells is not None:
            near, tie, bvals, rule, tr = _value_analysis(cells, wf, co64, cr64, diff)
            if tr is not None:
                seen_tie, rules = True, tr
    mism = diff[~near]
    bnd = diff[near & ~tie]
    ties = diff[tie]
    tf = None if g is None else g[0].reshape(-1)
    bmap = {} if g is not None or bvals is None else dict(zip(diff.tolist(), bvals.tolist()))
    for name, idx in (("mismatch", mism), ("boundary case", bnd), ("tie", ties)):
        for i in idx[:max_report]:
            where = tuple(int(a) for a in np.unravel_index(int(i), w.shape))
            extra = "" if tf is None else f", t = {float(tf[i])!r}"
            if name != "mismatch" and int(i) in bmap:
                extra = f", boundary = {bmap[int(i)]!r}"
            lines.append(f"  {name} at {where}: w = {wf[i]}{extra}, refcomp code "
                         f"{int(cr64[i])}, other code {int(co64[i])}")
        if idx.size > max_report:
            lines.append(f"  ... and {idx.size - max_report} more {name}s")
    names = TIE_RULES if g is not None or cells is None else cells.rules
    return QuantizedComparison(int(w.size), mism, bnd, ties,
                               tuple(r for r in names if r in rules) if seen_tie else
                               names, rule, lines)


def _ordered(q, w, co64):
    """The value-domain cells of q (:mod:`._cells`), codebook indices checked."""
    if q.decoder == "codebook":
        n = np.asarray(q.params["codebook"]).size
        if co64.min(initial=0) < 0 or co64.max(initial=0) >= n:
            raise ParameterError(f"codes_other hold indices outside the codebook of "
                                 f"{n} values")
    return ordered_cells(q, w)


def _value_analysis(cells, wf, co64, cr64, diff):
    """(near, tie, boundaries of diff, refcomp's rule, consistent rules or None) of a
    value-domain decoder.

    A differing code is near when both codes are ordered, their ranks are adjacent
    and ``w`` lies within ``cells.tol`` of the boundary between them; a tie when
    ``w`` is that boundary exactly.  The rule diagnosis looks at every element on
    a boundary of its refcomp cell, where both implementations agree or not.
    """
    w64 = wf.astype(np.float64)
    rr, okr = cells.rank(cr64)
    ro, oko = cells.rank(co64)
    lo = np.minimum(rr[diff], ro[diff])
    adjacent = okr[diff] & oko[diff] & (np.abs(rr[diff] - ro[diff]) == 1)
    b = cells.boundary(lo, diff)
    with np.errstate(invalid="ignore"):
        near = adjacent & np.isfinite(b) & (np.abs(w64[diff] - b) <= cells.tol(b, lo, diff))
    tie = near & (w64[diff] == b) & cells.exact_ties
    if not cells.exact_ties:
        return near, tie, b, cells.rule, None
    # every element exactly on a boundary of its refcomp cell narrows the other's rule
    allidx = np.flatnonzero(okr)
    found = []
    for side in (-1, 0):
        lo_all = rr[allidx] + side
        with np.errstate(invalid="ignore"):
            on = w64[allidx] == cells.boundary(lo_all, allidx)
        found.append((allidx[on], lo_all[on]))
    idx = np.concatenate([f[0] for f in found])
    if not idx.size:
        return near, tie, b, cells.rule, None
    los = np.concatenate([f[1] for f in found])
    rules = set(cells.rules)
    picks = cells.choices(los, idx)
    other = ro[idx]
    cand = oko[idx] & ((other == los) | (other == los + 1) | (other == rr[idx]))
    for r, pick in picks.items():
        if np.any(cand & (pick != other)):
            rules.discard(r)
    return near, tie, b, cells.rule, rules
