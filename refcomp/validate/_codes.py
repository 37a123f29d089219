"""Shared scoring of code-level cases (quantizers, casts, masks, integer products)."""

import numpy as np

from ..testing import compare_quantized
from ._report import CaseResult

__all__ = ["CodeTally", "nan_codes"]


def nan_codes(q, codes):
    """Boolean mask: ``codes`` decode to NaN under q's rule (minifloat formats)."""
    from ..quantize import Quantized
    v = Quantized(np.asarray(codes).astype(q.codes.dtype), bits=q.bits, method=q.method,
                  decoder=q.decoder, params=q.params, dtype=np.float64).dequantize()
    return np.isnan(v)


class CodeTally:
    """Accumulates :func:`refcomp.testing.compare_quantized` results over examples.

    ``add(other_codes, w, q)`` compares one example; NaN encodings that
    differ (both NaN, other bits) are counted apart as a known difference.
    ``exact(a, b)`` adds an example that must be bit-identical (integer
    results, dequantized floats).  ``result(suite, case)`` gives the
    :class:`CaseResult`: FAIL on any mismatch, "known difference" when only
    NaN encodings differ, pass otherwise, with the boundary cases and tie
    rules in the note.
    """

    def __init__(self):
        self.examples = self.elements = self.mismatches = self.boundary = self.ties = 0
        self.nan = 0
        self.rules = None
        self.first = None
        self.notes = []

    def add(self, other, w, q):
        other = np.asarray(other)
        both_nan = np.zeros(w.shape, bool)
        if q.decoder == "minifloat":
            both_nan = nan_codes(q, other) & nan_codes(q, q.codes)
            keep = ~both_nan
            self.nan += int(np.count_nonzero(both_nan & (other.astype(np.int64)
                                                          != q.codes.astype(np.int64))))
            other = np.where(keep, other, q.codes).astype(other.dtype)
        res = compare_quantized(other, w, q)
        self.examples += 1
        self.elements += res.size
        self.mismatches += int(res.mismatches.size)
        self.boundary += int(res.boundary.size)
        self.ties += int(res.ties.size)
        if res.ties.size:
            r = set(res.tie_rules)
            self.rules = r if self.rules is None else self.rules & r
        if res.mismatches.size and self.first is None:
            self.first = res.report().split("\n")[-1].strip()
        return res

    def exact(self, a, b, what="value"):
        a, b = np.asarray(a), np.asarray(b)
        self.examples += 1
        self.elements += a.size
        if a.dtype.kind == "f":
            w = a.dtype.itemsize
            ut = {2: np.uint16, 4: np.uint32, 8: np.uint64}[w]
            bad = (np.ascontiguousarray(a).view(ut) != np.ascontiguousarray(b).view(ut)) & ~(
                np.isnan(a) & np.isnan(b))
        else:
            bad = a != b
        n = int(np.count_nonzero(bad))
        self.mismatches += n
        if n and self.first is None:
            i = int(np.flatnonzero(bad.reshape(-1))[0])
            self.first = (f"first {what} mismatch at flat index {i}: framework "
                          f"{a.reshape(-1)[i]!r}, refcomp {b.reshape(-1)[i]!r}")

    def result(self, suite, case, *, known=None):
        note = []
        if self.boundary:
            note.append(f"{self.boundary} boundary cases (within one rounding of a cell edge)")
        if self.ties:
            rules = ", ".join(sorted(self.rules or [])) or "no single named rule"
            note.append(f"{self.ties} exact ties decided differently: framework ties "
                        f"consistent with {rules}")
        if self.nan:
            note.append(f"{self.nan} NaNs encoded with other bits (sign/payload)")
        if self.mismatches:
            verdict = "FAIL"
            note.insert(0, self.first or "")
        elif self.nan or (self.ties and known):
            verdict = "known difference"
        else:
            verdict = "pass"
        if known and verdict != "pass":
            note.append(known)
        note += self.notes
        return CaseResult(suite, case, examples=self.examples, elements=self.elements,
                          mismatches=self.mismatches, verdict=verdict, note="; ".join(note))
