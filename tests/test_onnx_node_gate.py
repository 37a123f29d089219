"""Conformance gate: ONNX's own backend node cases through refcomp's layer API.

Counts per operator family: exact / within ONNX's tolerance (and then equal
to the float64 formula rounded once) / refused; zero wrong (a wrong result
is never silent: it fails here).  The counts measured are printed (``-s``)
and recorded in docs/onnx.md.
"""

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
                 "DynamicQuantizeLinear": 3, "Cast": 34, "LSTM": 6, "GRU": 6, "RNN": 6,
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
