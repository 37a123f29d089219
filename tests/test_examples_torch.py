"""Smoke runs of the PyTorch examples (skipped without torch): each runs as a user would,
in a subprocess from the repository root, with a one-epoch budget; the model it writes
loads with refcomp, has the expected shapes and weight types, and gives the test accuracy
the example printed."""

import math
import re

import numpy as np
import pytest

import refcomp
from refcomp.data import load_split
from refcomp.metrics import accuracy

from _examples import ROOT, run_example

pytest.importorskip("torch")


def _run(script, *args):
    proc = run_example(script, *args)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_hashednets_torch_example_writes_a_hashed_model(tmp_path):
    from refcomp.hashing import HashedWeight
    out = tmp_path / "mlp_hashed.h5"
    text = _run("hashednets_torch.py", "--model", "mlp", "--factor", "8", "--epochs", "1",
                "-o", str(out))
    printed = float(re.findall(r"epoch 1: test accuracy .* (\d\.\d{4})", text)[-1])
    model = refcomp.load(str(out))
    shipped = refcomp.load(str(ROOT / "data" / "digits_mlp.h5"))
    dense = [(a, b) for a, b in zip(model.layers, shipped.layers) if b.kind == "dense"]
    assert len(dense) == 3
    for got, ref in dense:
        W = got.weights["W"]
        assert isinstance(W, HashedWeight) and W.hash == "string" and W.seed == 1691
        assert W.shape == ref.weights["W"].shape
        assert W.n_buckets == math.ceil(ref.weights["W"].size / 8)
        assert got.weights["b"].shape == ref.weights["b"].shape
    x, y = load_split("test")
    assert accuracy(model(x), y) == pytest.approx(printed, abs=5e-5)
    assert "wrote" in text and "max |torch - refcomp|" in text


def test_distill_torch_example_writes_a_student(tmp_path):
    out = tmp_path / "student.h5"
    text = _run("distill_torch.py", "--hidden", "8", "--epochs", "1", "-o", str(out))
    printed = float(re.search(r"distilled .*test accuracy (\d\.\d{4})", text).group(1))
    model = refcomp.load(str(out))
    dense = [lay for lay in model.layers if lay.kind == "dense"]
    assert [lay.weights["W"].shape for lay in dense] == [(8, 64), (10, 8)]
    assert all(lay.weights["W"].dtype == np.float32 for lay in dense)
    assert model.n_params() == 8 * 64 + 8 + 10 * 8 + 10
    x, y = load_split("test")
    assert accuracy(model(x), y) == pytest.approx(printed, abs=5e-5)


def test_less_is_more_torch_example_reduces_and_reports():
    text = _run("less_is_more_torch.py", "--model", "mlp", "--epochs", "2", "--final", "1",
                "--interval", "1")
    start = re.search(r"start: (\d+) parameters, test accuracy (\d\.\d{4})", text)
    end = re.search(r"end: (\d+) parameters \(([\d.]+)% reduction\), test accuracy (\d\.\d{4}) "
                    r"\(start (\d\.\d{4})\)", text)
    assert start and end and end.group(4) == start.group(2)
    shipped = refcomp.load(str(ROOT / "data" / "digits_mlp.h5"))
    x, y = load_split("test")
    assert int(start.group(1)) == shipped.n_params()
    assert float(start.group(2)) == pytest.approx(accuracy(shipped(x), y), abs=5e-5)
    n_end = int(end.group(1))
    assert n_end <= shipped.n_params()
    assert float(end.group(2)) == pytest.approx(100 * (1 - n_end / shipped.n_params()), abs=0.05)
    assert f"total params {n_end}," in text                  # the final model's summary


def test_pca_retrain_torch_example_writes_the_retrained_model(tmp_path):
    out = tmp_path / "pca_mlp.h5"
    text = _run("pca_retrain_torch.py", "--model", "mlp", "--epochs", "1", "--out", str(out))
    printed = float(re.search(r"PCA \+ torch retrain\s+(\d+\.\d\d) %", text).group(1))
    model = refcomp.load(str(out))
    x, y = load_split("test")
    assert 100 * accuracy(model(x), y) == pytest.approx(printed, abs=5e-3)
