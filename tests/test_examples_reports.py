"""The report examples reproduce the tables the README and docs/prune.md quote.

Each script runs as a user would (a subprocess from the repository root) on the
shipped MLP only (``--models``; the CNN rows, the other models and the 4096 x 4096
layer take minutes and are the same code path), and every row it prints must be a
row of the documented table: a changed number anywhere in the computation shows up
here as a row that the documentation no longer contains.
"""

import pytest

from _examples import ROOT, run_example


def _rows(script, *args):
    proc = run_example(script, *args, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [line for line in proc.stdout.splitlines() if line.startswith("|")]
    assert len(rows) >= 3, proc.stdout
    return rows


def _doc_lines(name):
    return set((ROOT / name).read_text(encoding="utf-8").splitlines())


@pytest.mark.parametrize("script, args, doc, spelling", [
    ("hashednets_report.py", ("--models", "digits_mlp"), "README.md", {}),
    ("webgraph_report.py", ("--models", "digits_mlp", "--no-large"), "README.md",
     {"zeta_k": "ζ_k"}),
    ("obd_vs_magnitude.py", ("--models", "mlp"), "docs/prune.md", {}),
])
def test_report_example_rows_are_the_documented_rows(script, args, doc, spelling):
    lines = _doc_lines(doc)
    for row in _rows(script, *args):
        for plain, typeset in spelling.items():        # the docs typeset a few ASCII names
            row = row.replace(plain, typeset)
        assert row in lines, f"{script} printed a row that {doc} does not contain: {row}"


def test_report_examples_reject_unknown_models():
    for script in ("hashednets_report.py", "webgraph_report.py", "obd_vs_magnitude.py"):
        proc = run_example(script, "--models", "nope", timeout=120)
        assert proc.returncode == 2 and "invalid choice" in proc.stderr
