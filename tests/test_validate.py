"""refcomp validate: end to end for PyTorch and ONNX Runtime, the Python API, the CLI.

The runs are small (3 drawn examples per case) to keep CI fast; the table
must show no FAIL, the known differences named, and the exit status must
follow the verdicts.
"""

import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")      # before any keras import (no TensorFlow)

import numpy as np
import pytest

from refcomp import MissingDependencyError, ParameterError
from refcomp.cli import main
from refcomp.validate import SUITES, plan, run

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.frameworks


@pytest.mark.parametrize("framework", ["torch", "onnxruntime"])
def test_run_end_to_end(framework):
    pytest.importorskip("torch" if framework == "torch" else "onnxruntime")
    report = run(framework, "all", examples=3, seed=1)
    assert report.ok, report.table()
    names = [r.case for r in report.results]
    assert "dense" in names and "shipped digits_lstm" in names
    known = {r.case: r.note for r in report.results if r.verdict == "known difference"}
    assert "mgu" in known
    if framework == "torch":
        assert "torch.nn.GRU computes only the reset_after=True formula" in known[
            "gru reset_after=False"]
    table = report.table()
    assert "worst err/bound" in table and "verdict" in table
    for r in report.results:
        if r.suite == "layers" and r.verdict == "pass":
            assert 0 <= r.worst_ratio <= 1
    md = report.markdown()
    assert md.startswith(f"# refcomp validate: {framework}") and "| suite |" in md


@pytest.mark.parametrize("framework, module", [("keras", "keras"),
                                               ("litert", "ai_edge_litert")])
def test_keras_and_litert_layers(framework, module):
    pytest.importorskip(module)
    report = run(framework, "all", examples=2, seed=2)
    assert report.ok, report.table()
    by = {r.case: r for r in report.results}
    assert by["dense"].verdict == "pass" and by["shipped digits_cnn"].verdict == "pass"
    assert by["mgu"].verdict == "known difference"
    conv1d, maxp, avgp = (by[c] for c in ("conv1d (padding modes, groups, dilation)",
                                          "max_pool N-D (dilations, ceil_mode)",
                                          "avg_pool N-D (ceil_mode)"))
    if framework == "litert":
        assert by["QUANTIZE int8"].verdict == "pass"         # TfLiteRound: half away
        assert by["lstm"].verdict == "skipped"               # not built, not a difference
        assert "sequence RNN kernels" in by["lstm"].note
        for r in (conv1d, maxp, avgp):                       # each kind named for itself
            assert r.verdict == "skipped" and "RNN" not in r.note
        assert "1-D convolution" in conv1d.note
        assert "pooling builtins are 2-D only" in maxp.note and avgp.note.startswith("avg_pool")
    else:                                   # Conv1D, MaxPooling1D/3D, AveragePooling1D/3D
        for r in (conv1d, maxp, avgp):
            assert "layer kind" not in r.note
            assert r.verdict in ("pass", "known difference"), r
        assert conv1d.verdict == "pass" and conv1d.examples >= 1


def test_code_suites_also_run_the_shipped_weights(monkeypatch):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("torch")
    from refcomp.validate import _shipped
    arrays = _shipped.shipped_weights()
    assert [a for a, _ in arrays][:2] == ["digits_mlp 1/W", "digits_mlp 5/W"]
    assert len(arrays) == len(_shipped.SHIPPED_WEIGHTS) == 10
    assert all(w.dtype == np.float32 and w.ndim == 2 for _, w in arrays)
    assert arrays[2][1].shape == (32, 9)                    # cnn conv2d OIHW (32, 1, 3, 3)
    for fw, suite in (("onnxruntime", "quantizers"), ("torch", "quantizers"),
                      ("torch", "pruning")):
        for r in run(fw, suite, examples=1, seed=3).results:
            if r.verdict == "skipped":
                continue
            assert r.examples == 1 + 10 and "weight arrays of the shipped models" in r.note, r
            assert r.verdict in ("pass", "known difference"), r
    monkeypatch.setattr(_shipped, "_load", lambda: ())       # a wheel: no data/ directory
    r = run("onnxruntime", "quantizers", examples=1, seed=3).results[0]
    assert r.examples == 1 and "drawn examples only" in r.note


def test_same_seed_same_table():
    pytest.importorskip("onnxruntime")
    a = run("onnxruntime", "quantizers", examples=2, seed=5).table()
    b = run("onnxruntime", "quantizers", examples=2, seed=5).table()
    assert a == b


def test_plan_and_bad_arguments():
    cases = plan("onnxruntime", "integer")
    assert cases[:3] == [("integer", "MatMulInteger"), ("integer", "ConvInteger"),
                         ("integer", "QLinearConv vs IntegerLinear mode onnx")]
    assert len(cases) == 7
    assert set(SUITES) == {"layers", "quantizers", "pruning", "integer"}
    with pytest.raises(ParameterError, match="framework must be one of"):
        run("tensorflow")
    with pytest.raises(ParameterError, match="suite must be one of"):
        run("torch", "everything")
    with pytest.raises(ParameterError, match="examples"):
        run("torch", "layers", examples=0)


def test_cli_table_report_and_exit_status(tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    out = tmp_path / "ort.md"
    rc = main(["validate", "--framework", "onnxruntime", "--suite", "integer",
               "--examples", "2", "--report", str(out), "--quiet"])
    text = capsys.readouterr().out
    assert rc == 0
    assert "MatMulInteger" in text and "QLinearMatMul" in text
    assert "onnxruntime: 7 cases: " in text and " 0 FAIL" in text
    assert out.read_text().startswith("# refcomp validate: onnxruntime")
    rc = main(["validate", "--framework", "onnxruntime", "--suite", "integer",
               "--report", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and "exists" in err and err.count("\n") == 1    # a usage error


def test_cli_exit_status_is_one_when_a_case_fails(monkeypatch, capsys):
    from refcomp.validate import _report
    import refcomp.validate as v

    def fake_run(framework, suite, **kw):
        return _report.ValidationReport(framework, [
            _report.CaseResult("layers", "dense", examples=1, elements=4, worst_ratio=3.0,
                               verdict="FAIL", note="out of bound")],
            versions={}, seed=0, examples=1)
    monkeypatch.setattr(v, "run", fake_run)
    assert main(["validate", "--framework", "torch", "--quiet"]) == 1
    assert "1 FAIL" in capsys.readouterr().out


def test_missing_framework_is_one_line_naming_the_extra():
    code = ("import sys; sys.modules['onnxruntime'] = None; "
            "from refcomp.cli import main; "
            "sys.exit(main(['validate', '--framework', 'onnxruntime', '--quiet']))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert res.returncode == 1
    assert res.stderr.strip() == ('refcomp: error: onnxruntime is not installed: '
                                  'pip install "refcomp[frameworks]"')
    with pytest.raises(MissingDependencyError):
        import refcomp.validate._common as c
        c.require("a_framework_that_does_not_exist_anywhere")


@pytest.mark.frameworks
@pytest.mark.parametrize("framework,module", [("onnxruntime", "onnxruntime"),
                                              ("litert", "ai_edge_litert")])
def test_integer_suite_runs_refcomp_integer_modes(framework, module):
    """The integer suite runs refcomp.integer's modes against the framework's integer
    kernels (QLinearConv / QLinearMatMul / QLinear and QDQ graphs; LiteRT's three kernel
    sets): nothing fails, and the known differences are the documented ones."""
    pytest.importorskip(module)
    from refcomp.validate import run
    report = run(framework, "integer", examples=2, seed=1)
    assert report.ok, report.table()
    cases = {r.case: r for r in report.results}
    if framework == "onnxruntime":
        assert cases["QLinearConv vs IntegerLinear mode onnx"].verdict == "pass"
        assert cases["QLinearMatMul vs qlinear_matmul mode onnx"].verdict == "pass"
        assert cases["shipped models, qlinear graphs vs run mode onnx"].verdict == "pass"
        assert cases["shipped models, qdq graphs vs run mode onnx (uint8 activations)"
                     ].verdict == "pass"
    else:
        assert len(cases) == 3 and all(r.elements > 0 for r in cases.values())
        ref = [r for c, r in cases.items() if "BUILTIN_REF" in c][0]
        assert ref.verdict == "pass" and ref.mismatches == 0


def test_tfmot_cases_skip_with_the_install_line_or_match_bit_for_bit(monkeypatch):
    """tfmot (TensorFlow) is not in the test environment: the keras pruning suite says how
    to get it; with REFCOMP_TFMOT_PYTHON naming an interpreter that has it (e.g. a separate
    venv with tensorflow-cpu 2.21, tensorflow-model-optimization 0.8.1, tf-keras), the
    schedule and the masks match bit for bit."""
    pytest.importorskip("hypothesis")
    from refcomp.validate._tfmot import TFMOT_CASES, tfmot_python
    exe = os.environ.get("REFCOMP_TFMOT_PYTHON")
    if tfmot_python() is None:
        for _, fn in TFMOT_CASES:
            r = fn(2, 0)
            assert r.verdict == "skipped" and "pip install tensorflow-cpu" in r.note
        if not exe:
            return
    for _, fn in TFMOT_CASES:
        r = fn(5, 3)
        assert r.verdict == "pass" and r.elements > 0 and r.mismatches == 0, r.note
