"""Results of a conformance run: one :class:`CaseResult` per case, a :class:`ValidationReport`."""

__all__ = ["CaseResult", "ValidationReport", "VERDICTS"]

#: "pass": every example within the derived bound (float cases) or bit-exact / only
#: boundary cases (integer codes); "FAIL": at least one example out of bound or a
#: code mismatch; "known difference": the framework documents another semantics
#: (reported, not failed); "skipped": not runnable here (a missing optional package).
VERDICTS = ("pass", "FAIL", "known difference", "skipped")


class CaseResult:
    """One case of a suite.

    Attributes
    ----------
    suite, case : str
        E.g. ("layers", "conv2d"), ("quantizers", "QuantizeLinear int8").
    examples : int
        Examples run (hypothesis-drawn or shipped).
    elements : int
        Output elements (or codes) compared.
    worst_ratio : float or None
        Largest |framework - reference| / bound over every element (float
        cases); None for exact (code) cases.
    mismatches : int
        Elements whose bits differ from refcomp's float32 reference output
        (float cases: informational, a float framework need not be
        bit-exact) or codes that differ outside boundary cases (code cases).
    verdict : str
        One of :data:`VERDICTS`.
    note : str
        The known difference, the diagnosis of a failure, the boundary
        cases and tie rule, or why it was skipped.
    """

    __slots__ = ("suite", "case", "examples", "elements", "worst_ratio", "mismatches",
                 "verdict", "note")

    def __init__(self, suite, case, *, examples=0, elements=0, worst_ratio=None, mismatches=0,
                 verdict="pass", note=""):
        self.suite, self.case, self.examples, self.elements = suite, case, examples, elements
        self.worst_ratio, self.mismatches, self.verdict, self.note = (worst_ratio, mismatches,
                                                                      verdict, note)

    def row(self):
        ratio = "-" if self.worst_ratio is None else f"{self.worst_ratio:.3g}"
        return [self.suite, self.case, str(self.examples), str(self.elements), ratio,
                str(self.mismatches), self.verdict, self.note]

    def __repr__(self):
        return f"CaseResult({self.suite!r}, {self.case!r}, verdict={self.verdict!r})"


_HEAD = ["suite", "case", "examples", "elements", "worst err/bound", "bit mismatches",
         "verdict", "note"]


class ValidationReport:
    """All results of :func:`refcomp.validate.run`.

    Attributes
    ----------
    framework : str
    versions : dict
        Package versions (the framework, refcomp, numpy).
    seed, examples : int
        The run's seed and examples per drawn case.
    results : list of CaseResult
    """

    def __init__(self, framework, results, *, versions, seed, examples):
        self.framework, self.results = framework, list(results)
        self.versions, self.seed, self.examples = dict(versions), seed, examples

    @property
    def failed(self):
        """The results whose verdict is "FAIL"."""
        return [r for r in self.results if r.verdict == "FAIL"]

    @property
    def ok(self):
        return not self.failed

    def counts(self):
        """{verdict: number of cases}."""
        out = {v: 0 for v in VERDICTS}
        for r in self.results:
            out[r.verdict] += 1
        return out

    def table(self, *, note_width=70):
        """The fixed-width text table printed by ``refcomp validate``."""
        rows = [_HEAD] + [r.row() for r in self.results]
        for r in rows[1:]:
            if len(r[-1]) > note_width:
                r[-1] = r[-1][:note_width - 3] + "..."
        widths = [max(len(r[i]) for r in rows) for i in range(len(_HEAD) - 1)]
        lines = []
        for j, r in enumerate(rows):
            cells = [c.ljust(w) if i < 2 or i == 6 else c.rjust(w)
                     for i, (c, w) in enumerate(zip(r[:-1], widths))]
            lines.append("  ".join(cells + [r[-1]]).rstrip())
            if j == 0:
                lines.append("  ".join("-" * w for w in widths) + "  " + "-" * 4)
        return "\n".join(lines)

    def summary(self):
        c = self.counts()
        return (f"{self.framework}: {len(self.results)} cases: {c['pass']} pass, {c['FAIL']} "
                f"FAIL, {c['known difference']} known differences, {c['skipped']} skipped")

    def markdown(self):
        """A Markdown report: versions, seed, the table with full notes, the summary."""
        out = [f"# refcomp validate: {self.framework}", "",
               "Versions: " + ", ".join(f"{k} {v}" for k, v in self.versions.items()),
               f"Seed {self.seed}, {self.examples} drawn examples per case.", "",
               "| " + " | ".join(_HEAD) + " |", "|" + "---|" * len(_HEAD)]
        for r in self.results:
            cells = [c.replace("|", "\\|") for c in r.row()]
            out.append("| " + " | ".join(cells) + " |")
        out += ["", self.summary(), ""]
        return "\n".join(out)
