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
minifloat       the midpoint of the two adjacent format values
codebook        the midpoint of two adjacent codebook values (k-means)
==============  ==============================================================

Within one rounding: ``|t - boundary| <= 4 u (|t| + |zp| + 1)`` with ``u``
the unit roundoff of the input dtype: a division or a reciprocal and a
product (two roundings of ``|t|``), the zero point added before rounding
(one of ``|t + zp|``), plus one rounding of the boundary's own
computation.  For value midpoints (minifloat, codebook): ``|w - m| <= 2 u
|m|`` (a conversion through float32 first is one rounding of ``w``).
Codes that differ by more than one cell are always mismatches.  Other
decoders (posit, power of two, binary, ternary, product ...) are compared
exactly, without a boundary analysis.
"""

from fractions import Fraction

import numpy as np

from .._errors import ParameterError, ShapeError

__all__ = ["compare_quantized", "QuantizedComparison", "TIE_RULES"]

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
        when none fits, all when the input holds no tie).  For minifloat
        and codebook ties: ("half_even",) when every differing tie went
        to the even pattern, else ().
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


def _values(q, codes):
    """Exact float64 values of ``codes`` under q's decoding rule (q's own class: no
    import of refcomp.quantize, a sibling package)."""
    return type(q)(np.asarray(codes).astype(q.codes.dtype), bits=q.bits, method=q.method,
                     decoder=q.decoder, params=q.params, dtype=np.float64).dequantize()


def compare_quantized(codes_other, w, quantized, *, max_report=10):
    """Compare another implementation's codes with refcomp's, boundary cases apart.

    Parameters
    ----------
    codes_other : array_like of integers, the shape of ``w``
        The other implementation's codes for ``w``: affine codes in
        ``[qmin, qmax]`` (int8 / uint8 ...), uniform cell indices, minifloat
        bit patterns (e.g. ``x.astype(ml_dtypes.bfloat16).view(np.uint16)``),
        codebook indices.
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
    elif quantized.decoder in ("minifloat", "codebook"):
        w64 = wf.astype(np.float64)
        if quantized.decoder == "codebook":
            book = np.asarray(quantized.params["codebook"], np.float64)
            if co64.min(initial=0) < 0 or co64.max(initial=0) >= book.size:
                raise ParameterError(f"codes_other hold indices outside the codebook of "
                                     f"{book.size} values")
            vr, vo = book[cr64], book[co64]
            rank = np.searchsorted(np.unique(book), vr[diff]), np.searchsorted(
                np.unique(book), vo[diff])
            adjacent = np.abs(rank[0] - rank[1]) == 1
        else:
            vr, vo = _values(quantized, cr).reshape(-1), _values(quantized, co).reshape(-1)
            sign = 1 << (quantized.bits - 1)         # sign-magnitude patterns: the order key

            def key(c):
                return np.where(c & sign, -(c & (sign - 1)), c)
            adjacent = np.abs(key(cr64[diff]) - key(co64[diff])) == 1
        m = (vr[diff] + vo[diff]) / 2
        near = adjacent & np.isfinite(m) & (np.abs(w64[diff] - m) <= 2 * u * np.abs(m))
        tie = near & (w64[diff] == m)
        rule = "half_even" if quantized.decoder == "minifloat" else "to the lower centroid"
        if tie.any():
            seen_tie = True
            even = [_keys_even(quantized, c) for c in co64[diff[tie]]]
            rules = {"half_even"} if all(even) else set()
    mism = diff[~near]
    bnd = diff[near & ~tie]
    ties = diff[tie]
    tf = None if g is None else g[0].reshape(-1)
    for name, idx in (("mismatch", mism), ("boundary case", bnd), ("tie", ties)):
        for i in idx[:max_report]:
            where = tuple(int(a) for a in np.unravel_index(int(i), w.shape))
            extra = "" if tf is None else f", t = {float(tf[i])!r}"
            lines.append(f"  {name} at {where}: w = {wf[i]}{extra}, refcomp code "
                         f"{int(cr64[i])}, other code {int(co64[i])}")
        if idx.size > max_report:
            lines.append(f"  ... and {idx.size - max_report} more {name}s")
    return QuantizedComparison(int(w.size), mism, bnd, ties,
                               tuple(r for r in TIE_RULES if r in rules) if seen_tie else
                               TIE_RULES, rule, lines)


def _keys_even(q, code):
    """Is a minifloat / codebook code's pattern even (the half-even choice at a tie)?"""
    return int(code) % 2 == 0
