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
        for c in ("lstm", "gru reset_after=True", "gru reset_after=False", "simple_rnn",
                  "batch_norm", "shipped digits_lstm", "shipped digits_gru"):
            assert by[c].verdict == "pass" and by[c].examples >= 1, by[c]
        for r in (conv1d, maxp, avgp):                       # each kind named for itself
            assert r.verdict == "skipped" and "RNN" not in r.note
        assert "1-D convolution" in conv1d.note
        assert "pooling builtins are 2-D only" in maxp.note and avgp.note.startswith("avg_pool")
    else:                                   # Conv1D, MaxPooling1D/3D, AveragePooling1D/3D
        for r in (conv1d, maxp, avgp):
            assert "layer kind" not in r.note
            assert r.verdict in ("pass", "known difference"), r
        assert conv1d.verdict == "pass" and conv1d.examples >= 1


def test_keras_quantizer_suite_casts_and_fake_quant():
    pytest.importorskip("keras")
    report = run("keras", "quantizers", examples=3, seed=1)
    assert report.ok, report.table()
    by = {r.case: r for r in report.results}
    for case in ("bfloat16 cast", "float8_e4m3fn cast", "float8_e5m2 cast"):
        assert by[case].verdict in ("pass", "known difference"), by[case]
        assert by[case].mismatches == 0 and by[case].examples >= 3
    for case in ("fake_quant_with_min_max_vars 8 bits",
                 "fake_quant_with_min_max_vars 8 bits narrow_range"):
        assert by[case].verdict in ("pass", "known difference") and by[case].examples >= 3
    assert "shipped models" in by["bfloat16 cast"].note


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


# --- LiteRT: batch norm, LSTM, simple RNN and GRU built from builtins ----------------------

def _rnn_layer(kind, rng, F=3, H=4, directions=1, peepholes=False, **attrs):
    import numpy as np

    from refcomp.model import Layer
    G = {"lstm": 4, "gru": 3, "simple_rnn": 1}[kind]
    w = {}
    for sfx in ("", "_reverse")[:directions]:
        w["W_ih" + sfx] = rng.normal(0, 0.5, (G * H, F)).astype(np.float32)
        w["W_hh" + sfx] = rng.normal(0, 0.5, (G * H, H)).astype(np.float32)
        w["b_ih" + sfx] = rng.normal(0, 0.5, G * H).astype(np.float32)
        w["b_hh" + sfx] = rng.normal(0, 0.5, G * H).astype(np.float32)
        if peepholes:
            w["P" + sfx] = rng.normal(0, 0.5, 3 * H).astype(np.float32)
    return Layer(kind, attrs=attrs, weights=w)


def test_litert_batch_norm_is_the_converters_folding_bit_for_bit():
    """MUL by s = fl32(gamma * fl32(1 / sqrt(var + eps))), ADD of t = fl32(beta - mean s):
    LiteRT's output equals that float32 evaluation in NumPy bit for bit, and lies within the
    derived bound even where the shift cancels x * s (x = mean - beta / s)."""
    pytest.importorskip("ai_edge_litert")
    import numpy as np

    from refcomp.model import Layer, Model
    from refcomp.testing import check_conforms
    from refcomp.validate._litert_run import litert_forward
    f = np.float32
    rng = np.random.default_rng(3)
    C = 4
    w = {"gamma": rng.normal(1, .2, C).astype(f), "beta": rng.normal(0, .2, C).astype(f),
         "mean": rng.normal(0, .5, C).astype(f), "var": rng.uniform(.2, 2, C).astype(f)}
    s64 = w["gamma"].astype(np.float64) / np.sqrt(w["var"].astype(np.float64) + 1e-3)
    x0 = (w["mean"] - w["beta"] / s64).astype(f)
    x = np.concatenate([np.stack([np.nextafter(x0, f(9)), x0, np.nextafter(x0, f(-9)),
                                  w["mean"]]), rng.normal(0, 1, (5, C)).astype(f)])
    for layout, xx, shape in (("NCHW", x, (C,)), ("NCHW", x.reshape(9, C, 1, 1) * f(1),
                                                  (C, 1, 1)),
                              ("NHWC", x.reshape(9, 1, 1, C), (C,))):
        model = Model([Layer("batch_norm", attrs={"eps": 1e-3, "layout": layout}, weights=w)])
        y = litert_forward(model, xx)
        s = w["gamma"] * (f(1) / np.sqrt(w["var"] + f(1e-3)))
        t = w["beta"] - w["mean"] * s
        want = xx * s.reshape(shape) + t.reshape(shape)
        assert want.dtype == np.float32
        assert np.array_equal(y.view(np.uint32), want.view(np.uint32))
        rep = check_conforms(y, model, xx)
        assert rep.passed and rep.worst_ratio < 0.5, rep.worst_ratio


@pytest.mark.parametrize("kind, attrs", [
    ("lstm", {"return_sequences": True}),
    ("lstm", {"return_sequences": False, "direction": "reverse"}),
    ("lstm", {"return_sequences": True, "direction": "bidirectional"}),
    ("lstm", {"return_sequences": False, "direction": "bidirectional"}),
    ("gru", {"return_sequences": True, "reset_after": True}),
    ("gru", {"return_sequences": False, "reset_after": False}),
    ("gru", {"return_sequences": True, "reset_after": False, "update": "seed000",
             "direction": "bidirectional"}),
    ("simple_rnn", {"return_sequences": True, "activation": "tanh"}),
    ("simple_rnn", {"return_sequences": False, "activation": "relu",
                    "direction": "reverse"}),
])
def test_litert_recurrent_layers_conform(kind, attrs):
    pytest.importorskip("ai_edge_litert")
    import numpy as np

    from refcomp.model import Model
    from refcomp.testing import check_conforms
    from refcomp.validate._litert_run import litert_forward
    rng = np.random.default_rng(len(str(attrs)))
    bidi = attrs.get("direction") == "bidirectional"
    layer = _rnn_layer(kind, rng, directions=2 if bidi else 1,
                       peepholes=kind == "lstm" and "direction" in attrs, **attrs)
    model = Model([layer])
    x = rng.normal(0, 1, (2, 5, 3)).astype(np.float32)
    y = litert_forward(model, x)
    rep = check_conforms(y, model, x)
    assert y.shape == model(x).shape
    assert rep.passed, rep.message("m")


def test_litert_wrong_lstm_gate_order_fails_and_is_diagnosed(monkeypatch):
    """The bound is useful: the LSTM gate blocks fed to TFLite in ONNX's order (i, o, f, c)
    fail the lstm case, and the diagnosis names the gate order."""
    pytest.importorskip("ai_edge_litert")
    from refcomp.validate import _litert_rnn
    from refcomp.validate._layers import run_layer_case
    from refcomp.validate._litert_run import litert_forward
    monkeypatch.setattr(_litert_rnn, "_LSTM_BLOCKS", (0, 3, 1, 2))
    r = run_layer_case("lstm", litert_forward, n=3, seed=0)
    assert r.verdict == "FAIL" and "gate order" in r.note


def test_litert_wrong_gru_formula_fails():
    """The unrolled GRU built with the other reset_after formula is out of bound."""
    pytest.importorskip("ai_edge_litert")
    import numpy as np

    from refcomp.model import Layer, Model
    from refcomp.testing import check_conforms
    from refcomp.validate._litert_run import litert_forward
    rng = np.random.default_rng(7)
    layer = _rnn_layer("gru", rng, return_sequences=True, reset_after=True)
    other = Layer("gru", attrs={"return_sequences": True, "reset_after": False},
                  weights=layer.weights)
    x = rng.normal(0, 1, (2, 5, 3)).astype(np.float32)
    assert not check_conforms(litert_forward(Model([other]), x), Model([layer]), x).passed


def test_litert_recurrent_options_not_expressible_are_named():
    pytest.importorskip("ai_edge_litert")
    import numpy as np

    from refcomp.model import Model
    from refcomp.validate._common import NotBuilt, NotExpressible
    from refcomp.validate._litert_run import litert_forward
    rng = np.random.default_rng(1)
    x = rng.normal(0, 1, (1, 2, 3)).astype(np.float32)
    cases = [({"clip": 1.0}, NotExpressible, "cell_clip"),
             ({"input_forget": True}, NotExpressible, "CIFG"),
             ({"activations": ["Sigmoid", "Tanh", "Relu"]}, NotExpressible, "one fused"),
             ]
    for attrs, exc, text in cases:
        with pytest.raises(exc, match=text):
            litert_forward(Model([_rnn_layer("lstm", rng, **attrs)]), x)
    layer = _rnn_layer("lstm", rng, sequence_lens=[1])
    with pytest.raises(NotBuilt, match="sequence_lens"):
        litert_forward(Model([layer]), x)


@pytest.mark.parametrize("kind, bidi", [("lstm", False), ("lstm", True), ("gru", True),
                                        ("simple_rnn", False)])
def test_litert_constant_initial_states_are_fed(kind, bidi):
    """h0 / c0 written into the kernels' variable state tensors (the GRU: constants) give
    refcomp's outputs (the derived bound refuses initial states, so a fixed 1e-6 here: the
    outputs lie in [-1, 1]) and differ from the zero-state run."""
    pytest.importorskip("ai_edge_litert")
    import numpy as np

    from refcomp.model import Layer, Model
    from refcomp.validate._litert_run import litert_forward
    rng = np.random.default_rng(11)
    attrs = {"return_sequences": True, "direction": "bidirectional" if bidi else "forward"}
    layer = _rnn_layer(kind, rng, directions=2 if bidi else 1, **attrs)
    zero = Model([Layer(kind, attrs=attrs, weights=dict(layer.weights))])
    for st in ("h0", "c0") if kind == "lstm" else ("h0",):
        for sfx in ("", "_reverse")[:2 if bidi else 1]:
            layer.weights[st + sfx] = rng.normal(0, 1, (2 if st == "h0" else 1, 4)).astype(
                np.float32)
    model = Model([layer])
    x = rng.normal(0, 1, (2, 5, 3)).astype(np.float32)
    y = litert_forward(model, x)
    assert np.abs(y - model(x)).max() <= 1e-6
    assert np.abs(litert_forward(zero, x) - model(x)).max() > 1e-3
