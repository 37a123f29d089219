"""A new user's first hour: each problem observed on a fresh clone, reproduced,
and the commands chained as a user chains them (every output is accepted by
the next command)."""

import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

import refcomp
from refcomp import DTypeError, FormatError, ParameterError
from refcomp.cli import main
from refcomp.io import read_arrays, write_arrays

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"
f32 = np.float32


def _err(capsys):
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    return err


# -- the commands chained ------------------------------------------------------------------
def test_commands_chain(tmp_path, capsys):
    m, q, c = tmp_path / "m.h5", tmp_path / "q.h5", tmp_path / "c.h5"
    x, logits = tmp_path / "x.h5", tmp_path / "logits.h5"
    assert main(["convert", str(DATA / "golden" / "digits_mlp.onnx"), str(m)]) == 0
    assert main(["info", str(m)]) == 0
    assert main(["eval", str(m)]) == 0
    assert "accuracy 0.9694" in capsys.readouterr().out
    # apply on a model writes a model, compressed weights kept as such
    assert main(["apply", "uniform", str(m), "-o", str(q), "--param", "bits=4", "--quiet"]) == 0
    assert "wrote" in capsys.readouterr().out
    qm = refcomp.load(q)
    assert isinstance(qm.get_layer("1").weights["W"], refcomp.quantize.Quantized)
    assert main(["info", str(q)]) == 0
    assert main(["eval", str(q)]) == 0
    assert main(["compress", str(q), "-o", str(c), "--no-prune", "--quiet"]) == 0
    assert main(["size", str(c)]) == 0
    write_arrays(x, {"x": refcomp.data.load_split("test")[0][:5]})
    assert main(["run", str(c), str(x), "-o", str(logits)]) == 0
    assert main(["info", str(logits)]) == 0
    out = capsys.readouterr().out
    assert "plain-array HDF5 file" in out and "(5, 10)" in out
    # the logits handed to a command that needs a model: what it is and who reads it
    assert main(["eval", str(logits)]) == 1
    err = _err(capsys)
    assert "plain-array HDF5 file" in err and "refcomp info" in err


def test_apply_dequantize_writes_a_readable_model(tmp_path, capsys):
    out = tmp_path / "q.h5"
    assert main(["apply", "uniform", str(DATA / "digits_cnn.h5"), "-o", str(out),
                 "--param", "bits=4", "--dequantize", "--quiet"]) == 0
    model = refcomp.load(out)
    assert all(isinstance(w, np.ndarray) for _, l in model.named_layers()
               for w in l.weights.values())
    assert model.metadata["refcomp_apply"] == {"method": "uniform", "bits": 4,
                                               "dequantize": True}
    assert main(["eval", str(out)]) == 0 and main(["info", str(out)]) == 0
    # only the weights matching --datasets
    out2 = tmp_path / "q2.h5"
    assert main(["apply", "uniform", str(DATA / "digits_cnn.h5"), "-o", str(out2),
                 "--param", "bits=2", "--datasets", "9/*", "--quiet"]) == 0
    m2 = refcomp.load(out2)
    assert isinstance(m2.get_layer("9").weights["W"], refcomp.quantize.Quantized)
    assert isinstance(m2.get_layer("7").weights["W"], np.ndarray)
    capsys.readouterr()


# -- safe defaults and overwrites ------------------------------------------------------------
def test_compress_asks_for_the_pruned_fraction(tmp_path, capsys):
    out = tmp_path / "c.h5"
    assert main(["compress", str(DATA / "digits_mlp.h5"), "-o", str(out)]) == 2
    assert "--prune S" in _err(capsys) and not out.exists()
    with pytest.raises(SystemExit):
        main(["compress", "--help"])
    assert "digits_cnn     98.6 %" in capsys.readouterr().out


def test_writers_refuse_inputs_and_existing_files(tmp_path, capsys):
    m = tmp_path / "m.h5"
    refcomp.save(refcomp.load(DATA / "digits_mlp.h5"), m)
    before = m.read_bytes()
    x = tmp_path / "x.h5"
    write_arrays(x, {"x": np.zeros((2, 8, 8), f32)})
    assert main(["run", str(m), str(x), "-o", str(m)]) == 2
    assert "is the input" in _err(capsys)
    assert main(["run", str(m), str(x), "-o", str(tmp_path / "." / "m.h5")]) == 2
    _err(capsys)
    assert m.read_bytes() == before                   # the model was not replaced
    y = tmp_path / "y.h5"
    assert main(["run", str(m), str(x), "-o", str(y)]) == 0
    assert main(["run", str(m), str(x), "-o", str(y)]) == 2
    assert "exists; pass --force" in _err(capsys)
    assert main(["run", str(m), str(x), "-o", str(y), "--force"]) == 0
    for argv in (["convert", str(m), str(m)],
                 ["apply", "uniform", str(m), "-o", str(m), "--param", "bits=2"],
                 ["compress", str(m), "-o", str(m), "--no-prune"]):
        assert main(argv) == 2, argv
        assert "is the input" in _err(capsys)
    assert m.read_bytes() == before
    out = tmp_path / "study"
    assert main(["study", str(m), "--methods", "uniform", "--bits", "2", "--experiments",
                 "whole", "--no-plots", "--quiet", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["study", str(m), "--methods", "uniform", "--bits", "2", "--experiments",
                 "whole", "--no-plots", "--quiet", "--out", str(out)]) == 2
    assert "runs.csv exists" in _err(capsys)
    assert main(["study", str(m), "--methods", "uniform", "--bits", "2", "--experiments",
                 "whole", "--no-plots", "--quiet", "--out", str(out), "--force"]) == 0
    capsys.readouterr()


# -- progress off a terminal -------------------------------------------------------------------
def test_progress_lines_off_a_terminal(capsys):
    from refcomp._progress import Progress
    bar = Progress(4, "work", line_interval=0.0)      # stderr is not a terminal here
    assert bar.lines
    for _ in range(4):
        bar.update()
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("work: 1/4, 0 s, about") and "s left" in err[0]
    assert err[-1].startswith("work: 4/4")
    quiet = Progress(4, "quiet", enabled=False, line_interval=0.0)
    quiet.update(4)
    assert capsys.readouterr().err == ""
    slow = Progress(4, "default")                     # 15 s between lines: short work is silent
    slow.update(4)
    assert capsys.readouterr().err == ""


# -- bad input caught at the boundary ------------------------------------------------------------
def _split(path, x, y):
    with h5py.File(path, "w") as f:
        f["x"], f["y"] = x, y
    return str(path)


def test_eval_refuses_what_has_no_accuracy(tmp_path, capsys):
    model = str(DATA / "digits_mlp.h5")
    empty = _split(tmp_path / "e.h5", np.zeros((0, 8, 8), f32), np.zeros(0, np.int64))
    assert main(["eval", model, "--data", empty]) == 1
    assert "empty" in _err(capsys)
    labels = _split(tmp_path / "l.h5", np.zeros((3, 8, 8), f32), np.array([0, 99, -1]))
    assert main(["eval", model, "--data", labels]) == 1
    assert "[0, 9]" in _err(capsys)
    nan = _split(tmp_path / "n.h5", np.full((3, 8, 8), np.nan, f32), np.zeros(3, np.int64))
    assert main(["eval", model, "--data", nan]) == 1
    assert "3 of 3 samples hold non-finite inputs" in _err(capsys)
    # run computes them (NaN propagation is part of the oracle) and says so
    x = tmp_path / "x.h5"
    write_arrays(x, {"x": np.full((2, 8, 8), np.nan, f32)})
    assert main(["run", model, str(x), "-o", str(tmp_path / "y.h5")]) == 0
    err = capsys.readouterr().err
    assert "the input holds 128 non-finite values (NaN/Inf) in 2 of 2 samples" in err
    assert np.isnan(read_arrays(tmp_path / "y.h5")["y"]).all()


def test_bad_paths_and_arguments(tmp_path, capsys):
    assert main(["study", "--methods", "", "--out", str(tmp_path / "o")]) == 1
    assert "names no method" in _err(capsys) and not (tmp_path / "o").exists()
    assert main(["info", str(tmp_path)]) == 1
    assert "is a directory" in _err(capsys)
    assert main(["eval", str(tmp_path)]) == 1
    assert "is a directory" in _err(capsys)
    with pytest.raises(ParameterError, match="file name"):
        refcomp.load(None)
    with pytest.raises(FormatError, match="is a directory"):
        refcomp.load(tmp_path)
    model = refcomp.load(DATA / "digits_mlp.h5")
    with pytest.raises(ParameterError, match="does not exist; nothing was written"):
        refcomp.save(model, tmp_path / "missing" / "m.h5")
    assert not (tmp_path / "missing").exists()
    with pytest.raises(DTypeError, match="complex128"):
        write_arrays(tmp_path / "c.h5", {"a": np.zeros(3, complex)})
    assert not (tmp_path / "c.h5").exists()
    write_arrays(tmp_path / "ok.h5", {"b": np.array([True, False]), "i": np.arange(3),
                                      "s": np.array([b"ab"])})
    assert sorted(read_arrays(tmp_path / "ok.h5")) == ["b", "i", "s"]


def test_closed_pipe_ends_quietly(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    proc = subprocess.Popen([sys.executable, "-m", "refcomp", "size", str(DATA / "digits_cnn.h5"),
                             "--per-weight"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env)
    proc.stdout.close()                                 # the reader is gone before any write
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) in (0, 141)
    assert err == ""


def test_small_snags():
    assert ".venv/" in (ROOT / ".gitignore").read_text().splitlines()
    import refcomp.io.onnx as ro
    real = sys.modules.get("onnx")
    sys.modules["onnx"] = None                           # as if not installed
    try:
        with pytest.raises(FormatError, match=r"refcomp\[onnx\]"):
            ro.load(DATA / "golden" / "digits_mlp.onnx")
    finally:
        if real is None:
            del sys.modules["onnx"]
        else:
            sys.modules["onnx"] = real
    from refcomp.cli import build_parser
    helps = {a.dest: a.help for a in build_parser()._subparsers._group_actions[0]
             .choices["study"]._actions}
    assert helps["experiments"] and "per_layer" in helps["experiments"]
    for ex in (ROOT / "examples").glob("*.py"):
        assert "/work/" not in ex.read_text(), ex


def test_tables_count_assignments_per_method(tmp_path):
    from refcomp.study import run_study, write_report
    model = refcomp.load(DATA / "digits_mlp.h5")
    x, y = refcomp.data.load_split("test")
    res = run_study(model, x[:20], y[:20], methods=("uniform", "kmeans"), bits=(2,),
                    adaptive_bits=(1, 2), experiments=("adaptive",), progress=False)
    write_report(res, tmp_path, plots=False)
    text = (tmp_path / "tables.md").read_text()
    assert "8 assignments per method, 16 in all" in text


def test_flat_results_reshape_to_the_weight_bit_exact():
    from refcomp.quantize import affine
    from refcomp.study.registry import get_method
    W = refcomp.load(DATA / "digits_cnn.h5").get_layer("3").weights["W"]   # OIHW
    for name in ("uniform", "kmeans", "kmeans_optimal", "affine", "fixed_point",
                 "power_of_two", "deep"):
        res = get_method(name).func(W.reshape(-1), 3)
        obj = res.obj.reshape(W.shape)
        assert obj.weight_shape == W.shape
        refcomp.testing.assert_bits_equal(obj.dequantize(), res.decoded.reshape(W.shape))
    with pytest.raises(ParameterError, match="per-channel"):
        affine(W, 8, axis=0).reshape((W.size,))
    with pytest.raises(ParameterError, match="cannot reshape"):
        get_method("uniform").func(W.reshape(-1), 2).obj.reshape((3, 3))
