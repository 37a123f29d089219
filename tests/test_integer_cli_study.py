"""``refcomp quantize`` and the ``int8`` study method."""

import numpy as np
import pytest

import refcomp
from refcomp.cli import main
from refcomp.data import load_split
from refcomp.integer import IntegerLinear, quantize_layer, quantize_model, run
from refcomp.metrics import accuracy, mean_kl
from refcomp.study.run import run_study


def test_cli_quantize(tmp_path, capsys):
    out = tmp_path / "cnn_int8.h5"
    onnx_out = tmp_path / "cnn.onnx"
    args = ["quantize", "data/digits_cnn.h5", "--int8", "--calib", "data/digits_calib.h5",
            "--mode", "tflite_single", "-o", str(out)]
    import importlib.util
    if importlib.util.find_spec("onnx") is not None:      # the --onnx option needs it
        args += ["--onnx", str(onnx_out)]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "float 0.9861, int8 0.9861" in text and "identical predictions" in text
    qm = refcomp.load(out)
    assert qm.metadata["integer"]["mode"] == "tflite_single"
    assert isinstance(qm.get_layer("3").weights["W"], IntegerLinear)


def test_cli_quantize_refusals(tmp_path, capsys):
    assert main(["quantize", "data/digits_lstm.h5", "--int8", "-o", str(tmp_path / "a.h5")]) == 1
    err = capsys.readouterr().err
    assert "layer 0 (lstm 'rnn') is a recurrent layer" in err and err.count("\n") == 1
    assert main(["quantize", "data/digits_cnn.h5", "-o", str(tmp_path / "b.h5")]) == 2
    assert "--int8" in capsys.readouterr().err
    assert main(["quantize", "data/digits_cnn.h5", "--int8", "--mode", "fp16",
                 "-o", str(tmp_path / "c.h5")]) == 2


def test_study_int8_whole_network_is_the_integer_model():
    """The study's whole-network int8 run is the integer model of quantize_model, whose hook
    path equals the pure integer pipeline (digits_cnn): same accuracy and KL."""
    model = refcomp.load("data/digits_cnn.h5")
    x, y = load_split("test")
    calib = load_split("calib")
    res = run_study(model, x, y, methods=("int8",), experiments=("whole",),
                    calibration=calib, method_params={"int8": {"mode": "onnx"}})
    (row,) = [r for r in res["runs"] if r["experiment"] == "whole"]
    qm = quantize_model(model, calib[0], mode="onnx")
    yq = run(qm, x)
    assert row["accuracy"] == accuracy(yq, y)
    assert row["kl"] == mean_kl(model(x), yq)
    assert row["size_bits"] == sum(l.weights["W"].stored_bits() for _, l in qm.named_layers()
                                   if l.kind in ("dense", "conv2d"))


def test_study_int8_on_a_recurrent_model():
    """For a model quantize_model refuses as a whole, the dense layer alone is quantized in
    context (quantize_layer); the recurrent unit is refused by the method."""
    model = refcomp.load("data/digits_lstm.h5")
    x, _ = load_split("calib")
    w = quantize_layer(model, "1", x, mode="tflite_double")
    assert isinstance(w, IntegerLinear) and w.codes.shape == (10, 64)
    y = model.replace_weights({("1", "W"): w, ("1", "b"): w.bias_dequantized()})(x)
    assert np.mean(np.argmax(y, 1) == np.argmax(model(x), 1)) > 0.95
    with pytest.raises(refcomp.ParameterError, match="not a dense or conv2d"):
        quantize_layer(model, "0", x)


def test_cli_quantize_onnx_is_written_atomically(tmp_path, monkeypatch, capsys):
    # README "Reliability": every CLI output goes to a temporary file renamed into place,
    # and writers refuse to replace an existing file unless --force is given
    import refcomp.integer.onnx_export as onnx_export
    out, onnx_out = tmp_path / "q.h5", tmp_path / "q.onnx"
    base = ["quantize", "data/digits_mlp.h5", "--int8", "--no-eval", "-o", str(out),
            "--onnx", str(onnx_out)]
    onnx_out.write_bytes(b"previous")
    assert main(base) == 2 and "ONNX output" in capsys.readouterr().err
    assert not out.exists()
    assert main(base[:-1] + [str(out), "--force"]) == 2             # --onnx is -o

    class Graph:
        def SerializeToString(self):
            return b"complete graph"

    class Failing:
        def SerializeToString(self):
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(onnx_export, "to_onnx", lambda qm, form: Failing())
    assert main(base + ["--force"]) == 1 and "No space left" in capsys.readouterr().err
    assert onnx_out.read_bytes() == b"previous"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".refcomp-")]
    monkeypatch.setattr(onnx_export, "to_onnx", lambda qm, form: Graph())
    assert main(base + ["--force"]) == 0
    assert onnx_out.read_bytes() == b"complete graph"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".refcomp-")]
    assert main(base) == 2                                          # -o now exists
