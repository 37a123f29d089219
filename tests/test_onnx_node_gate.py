"""Conformance gate: ONNX's own backend node cases through refcomp's layer API.

Counts per operator family: exact / within ONNX's tolerance (and then equal
to the float64 formula rounded once) / refused; zero wrong (a wrong result
is never silent: it fails here).  The counts measured are stored in
``_onnx_gate.RESULTS`` and reported in pytest's terminal summary (tests/conftest.py, visible
with ``-q``: CI's log shows them), printed in full with ``-s``, and recorded in docs/onnx.md.
"""

import os

import pytest

pytest.importorskip("onnx")
pytest.importorskip("ml_dtypes")

import _onnx_gate as G  # noqa: E402

FAMILIES = {
    "conv_pool": ("Conv", "MaxPool", "AveragePool"),
    "gemm": ("Gemm", "MatMul"),
    "activations": ("Relu", "Sigmoid", "Tanh", "HardSigmoid", "Softmax", "LogSoftmax"),
    "shape_norm": ("Flatten", "Reshape", "BatchNormalization"),
    "recurrent": ("LSTM", "GRU", "RNN"),
    "quantize_cast": ("QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "Cast"),
}

#: minimum exact + tolerance counts per operator (regressions fail; see docs/onnx.md)
EXPECTED_PASS = {"Relu": 1, "Sigmoid": 2, "Tanh": 2, "HardSigmoid": 3, "Softmax": 7,
                 "LogSoftmax": 7, "Conv": 6, "MaxPool": 18, "AveragePool": 20, "Gemm": 11,
                 "MatMul": 7, "QuantizeLinear": 13, "DequantizeLinear": 14,
                 "DynamicQuantizeLinear": 3, "Cast": 36, "LSTM": 6, "GRU": 6, "RNN": 6,
                 "Flatten": 9, "Reshape": 6, "BatchNormalization": 2}


def _run(ops):
    table = {}
    for op in ops:
        counts = {"exact": 0, "tolerance": 0, "refused": 0, "wrong": 0}
        notes = []
        for case in G.cases()[op]:
            cat, detail = G.classify(case)
            counts[cat] += 1
            if cat in ("refused", "wrong"):
                notes.append(f"{cat}: {case.name}: {detail}")
        table[op] = (counts, notes)
        G.RESULTS[op] = dict(counts)
    return table


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_node_gate(family):
    table = _run(FAMILIES[family])
    lines = []
    wrong = []
    for op, (c, notes) in table.items():
        lines.append(f"{op:22s} exact {c['exact']:3d}  tolerance {c['tolerance']:3d}  "
                     f"refused {c['refused']:3d}  wrong {c['wrong']:3d}")
        lines.extend("    " + n for n in notes)
        wrong += [n for n in notes if n.startswith("wrong")]
        assert c["exact"] + c["tolerance"] >= EXPECTED_PASS.get(op, 0), (op, c)
    print("\n" + "\n".join(lines))
    assert not wrong, "\n".join(wrong)


class _Reporter:
    def __init__(self):
        self.out = []

    def write_sep(self, sep, title, **kw):
        self.out.append(title)

    def write_line(self, line, **kw):
        self.out.append(line)


def test_gate_summary_lines_and_terminal_hook(pytestconfig):
    """The summary conftest prints with -q: totals, then every operator's four counts."""
    # The loaded tests/conftest.py, from pytest's plugins ("import conftest" may find
    # tests/fuzz/conftest.py first when the whole suite runs).
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "conftest.py")
    conftest = next(p for p in pytestconfig.pluginmanager.get_plugins()
                    if os.path.abspath(getattr(p, "__file__", "") or "") == here)
    fake = {"Conv": {"exact": 6, "tolerance": 0, "refused": 0, "wrong": 0},
            "Cast": {"exact": 34, "tolerance": 0, "refused": 26, "wrong": 0},
            "Gemm": {"exact": 1, "tolerance": 10, "refused": 0, "wrong": 1}}
    lines = G.summary_lines(fake, width=30)
    assert lines[:2] == ["78 cases of 3 operators: exact 41, tolerance 10, refused 26, wrong 1",
                         "per operator (exact/tolerance/refused/wrong):"]
    assert " ".join(lines[2:]).split() == ["Conv", "6/0/0/0;", "Gemm", "1/10/0/1;",
                                           "Cast", "34/0/26/0;"]       # MODULES order
    assert len(lines) > 3 and all(len(s) <= 30 for s in lines[2:])
    saved = dict(G.RESULTS)
    try:
        G.RESULTS.clear()
        rep = _Reporter()
        conftest.pytest_terminal_summary(rep)
        assert not any("ONNX" in s for s in rep.out)      # no gate case run: nothing said
        G.RESULTS.update(fake)
        rep = _Reporter()
        conftest.pytest_terminal_summary(rep)
        i = rep.out.index("ONNX node-case gate (tests/test_onnx_node_gate.py)")
        assert rep.out[i + 1:i + 1 + len(G.summary_lines(fake))] == G.summary_lines(fake)
    finally:
        G.RESULTS.clear()
        G.RESULTS.update(saved)
