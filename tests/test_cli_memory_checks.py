"""Memory estimates before allocating (issue 22, "Resource limits"): compress, apply,
quantize, slim and validate refuse, with one line and exit status 1, a model, an input
or a forward pass that would not fit (refcomp.io.limits: the memory available, or the
max_run_bytes ceiling), before doing any work and without writing an output.  run, eval
and study: tests/fuzz/test_fuzz_regressions.py."""

import numpy as np
import pytest

import refcomp
from refcomp.cli import main
from refcomp.data import default_data_dir
from refcomp.io import limits
from refcomp.model import Layer, Model


@pytest.fixture
def padded(tmp_path):
    """A valid model whose forward pass needs terabytes (3x3 conv, padding 100000, on
    4x4 samples), and a two-sample split ``xy.h5`` for it."""
    m = Model([Layer("conv2d", attrs={"padding": 100_000},
                     weights={"W": np.ones((2, 1, 3, 3), np.float32)}), Layer("flatten")],
              input_shape=(1, 4, 4))
    refcomp.save(m, tmp_path / "pad.h5")
    refcomp.io.write_arrays(tmp_path / "xy.h5", {"x": np.zeros((2, 1, 4, 4), np.float32),
                                                 "y": np.zeros(2, np.int64)})
    return tmp_path


@pytest.fixture
def ceiling():
    """Set max_run_bytes (as REFCOMP_MAX_RUN_BYTES would) for one test."""
    old = limits.get_limits()
    yield lambda n: limits.set_limits(max_run_bytes=n)
    limits.set_limits(**old)


def _refused(argv, capsys, *needles):
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 1 and err.count("\n") == 1, err
    assert "not started" in err and "Traceback" not in err, err
    for n in needles:
        assert n in err, err
    return err


@pytest.mark.parametrize("argv", [
    ["compress", "{d}/pad.h5", "-o", "{d}/out.h5", "--no-prune", "--quiet", "--eval",
     "{d}/xy.h5"],
    ["compress", "{d}/pad.h5", "-o", "{d}/out.h5", "--codec", "nnc", "--quiet", "--eval",
     "{d}/xy.h5"],
    ["quantize", "{d}/pad.h5", "--int8", "--calib", "{d}/xy.h5", "--no-eval", "-o",
     "{d}/out.h5"],
    ["quantize", "{d}/pad.h5", "--int8", "--eval", "{d}/xy.h5", "-o", "{d}/out.h5"],
    ["slim", "{d}/pad.h5", "-o", "{d}/out.h5", "--target", "0.5", "--quiet", "--data",
     "{d}/xy.h5"],
], ids=["compress", "compress-nnc", "quantize-calib", "quantize-eval", "slim"])
def test_commands_refuse_a_forward_pass_that_cannot_fit(argv, padded, capsys):
    argv = [a.format(d=padded) for a in argv]
    _refused(argv, capsys, "forward pass of model", "batch of 2 ")
    assert not (padded / "out.h5").exists()


@pytest.mark.parametrize("command", ["compress", "quantize", "slim", "apply"])
def test_commands_refuse_a_model_over_the_ceiling(command, tmp_path, capsys, ceiling):
    src = default_data_dir() / "digits_mlp.h5"
    out = str(tmp_path / "out.h5")
    argv = {"compress": ["compress", str(src), "-o", out, "--no-prune", "--quiet"],
            "quantize": ["quantize", str(src), "--int8", "-o", out],
            "slim": ["slim", str(src), "-o", out, "--target", "0.5", "--quiet"],
            "apply": ["apply", "uniform", str(src), "-o", out, "--param", "bits=4",
                      "--quiet"]}[command]
    ceiling(1000)                         # the model declares 68904 bytes
    _refused(argv, capsys, "max_run_bytes", "digits_mlp.h5",
             "the input" if command == "apply" else "the model")
    assert not (tmp_path / "out.h5").exists()


def test_apply_refuses_a_plain_array_file_over_the_ceiling(tmp_path, capsys, ceiling):
    refcomp.io.write_arrays(tmp_path / "w.h5", {"w": np.ones((64, 64), np.float32)})
    ceiling(1000)
    _refused(["apply", "uniform", str(tmp_path / "w.h5"), "-o", str(tmp_path / "o.h5"),
              "--param", "bits=4", "--quiet"], capsys, "the input", "w.h5")
    assert not (tmp_path / "o.h5").exists()


def test_commands_refuse_a_split_over_the_ceiling(tmp_path, capsys, ceiling):
    """The split file itself (its declared arrays) is checked before it is read."""
    src = default_data_dir() / "digits_mlp.h5"
    refcomp.io.write_arrays(tmp_path / "big.h5", {"x": np.zeros((5000, 8, 8), np.float32),
                                                  "y": np.zeros(5000, np.int64)})
    ceiling(100_000)                      # the model (68904 bytes) fits, the split does not
    for argv in (["quantize", str(src), "--int8", "--calib", str(tmp_path / "big.h5")],
                 ["slim", str(src), "--target", "0.5", "--data", str(tmp_path / "big.h5")],
                 ["compress", str(src), "--no-prune", "--eval", str(tmp_path / "big.h5")]):
        _refused(argv + ["-o", str(tmp_path / "o.h5")], capsys, "the data split", "big.h5")
    assert not (tmp_path / "o.h5").exists()


def test_validate_checks_the_shipped_model_forward_passes(tmp_path, capsys, ceiling):
    from refcomp.io.limits import declared_bytes
    from refcomp.validate import shipped_model_batches
    shipped = shipped_model_batches("onnxruntime", "integer", examples=20)
    assert [p.name for p, _ in shipped] == ["digits_mlp.h5", "digits_cnn.h5",
                                            "digits_resnet.h5"]
    assert shipped_model_batches("onnxruntime", "layers") == []
    argv = ["validate", "--framework", "onnxruntime", "--suite", "integer", "--quiet",
            "--report", str(tmp_path / "r.md")]
    ceiling(1000)
    _refused(argv, capsys, "the model", "digits_mlp.h5")
    ceiling(max(declared_bytes(p) for p, _ in shipped) + 1)   # every model fits, not its pass
    _refused(argv, capsys, "forward pass of model", "batch of 360")
    assert not (tmp_path / "r.md").exists()
