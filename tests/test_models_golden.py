"""Shipped data and models: refcomp reproduces the frameworks' golden outputs.

Golden files (data/golden/<model>_outputs.h5) hold the float32 logits on the
test split computed by PyTorch 2.13 (CPU), Keras 3 (torch backend) and ONNX
Runtime from the very same weights (data/build.py).  Comparisons need no
framework at test time.
"""

import json

import h5py
import numpy as np
import pytest

import refcomp
from refcomp._errors import FormatError, ParameterError
from refcomp.data import SPLITS, default_data_dir, load_split
from refcomp.testing import assert_bits_equal

from _io_helpers import ulps_tolerance

MODELS = ("digits_mlp", "digits_cnn", "digits_lstm", "digits_gru", "digits_resnet")
FRAMEWORKS = ("torch", "keras", "onnxruntime")
DATA = default_data_dir()


@pytest.fixture(scope="module")
def test_split():
    return load_split("test")


@pytest.fixture(scope="module")
def outputs(test_split):
    x, _ = test_split
    return {m: refcomp.load(DATA / f"{m}.h5")(x) for m in MODELS}


def golden(model):
    with h5py.File(DATA / "golden" / f"{model}_outputs.h5", "r") as f:
        return {k: f[k][()] for k in f}, {k: float(f[k].attrs["accuracy"]) for k in f}


# -- data splits ---------------------------------------------------------------------
def test_splits_shapes_dtypes_and_partition():
    seen = []
    sizes = {}
    for s in SPLITS:
        x, y = load_split(s)
        assert x.dtype == np.float32 and x.ndim == 3 and x.shape[1:] == (8, 8)
        assert y.dtype == np.int64 and y.shape == (x.shape[0],)
        assert x.min() >= 0 and x.max() <= 1 and set(np.unique(y)) <= set(range(10))
        # x = k/16 exactly
        assert np.array_equal(x * 16, np.round(x * 16))
        with h5py.File(DATA / f"digits_{s}.h5", "r") as f:
            seen.append(f["index"][()])
        sizes[s] = x.shape[0]
    allidx = np.concatenate(seen)
    assert sorted(allidx.tolist()) == list(range(1797))
    assert sizes == {"train": 1237, "calib": 200, "test": 360}


def test_splits_equal_sklearn_digits():
    datasets = pytest.importorskip("sklearn.datasets")
    d = datasets.load_digits()
    for s in SPLITS:
        x, y = load_split(s)
        with h5py.File(DATA / f"digits_{s}.h5", "r") as f:
            idx = f["index"][()]
        assert_bits_equal(x, (d.images[idx] / 16.0).astype(np.float32))
        assert np.array_equal(y, d.target[idx])


def test_load_split_names_paths_and_errors(tmp_path, monkeypatch):
    x1, y1 = load_split("test")
    x2, y2 = load_split("digits_test")
    x3, y3 = load_split(DATA / "digits_test.h5")
    assert_bits_equal(x1, x2)
    assert_bits_equal(x1, x3)
    with pytest.raises(ParameterError, match="unknown split"):
        load_split("validation")
    with pytest.raises(FormatError, match="no such data file"):
        load_split(tmp_path / "missing.h5")
    bad = tmp_path / "bad.h5"
    with h5py.File(bad, "w") as f:
        f["x"] = np.zeros((3, 8, 8), np.int32)
        f["y"] = np.zeros(3, np.int64)
    with pytest.raises(FormatError, match="float32/float64"):
        load_split(bad)
    monkeypatch.setenv("REFCOMP_DATA_DIR", str(tmp_path))
    assert default_data_dir() == tmp_path
    with pytest.raises(FormatError):
        load_split("test")
    monkeypatch.setenv("REFCOMP_DATA_DIR", str(tmp_path / "nope"))
    with pytest.raises(FormatError, match="REFCOMP_DATA_DIR"):
        default_data_dir()


# -- golden outputs --------------------------------------------------------------------
@pytest.mark.parametrize("model", MODELS)
def test_reference_matches_every_framework(model, outputs):
    y = outputs[model]
    gold, _ = golden(model)
    # refcomp's own output recorded at build time: same bits on this machine and any other
    assert_bits_equal(y, gold["refcomp"])
    tol = ulps_tolerance(y)
    for fw in FRAMEWORKS:
        g = gold[fw]
        assert g.shape == y.shape and g.dtype == np.float32
        assert np.array_equal(np.argmax(g, 1), np.argmax(y, 1)), f"{model}/{fw}: argmax differs"
        err = float(np.max(np.abs(g - y)))
        assert err <= tol, f"{model}/{fw}: max |diff| {err} > {tol}"


@pytest.mark.parametrize("model", MODELS)
def test_fast_mode_matches_every_framework(model, test_split):
    # precision="fast" (BLAS, and for the recurrent models the fused-GEMM step
    # with NumPy's float32 tanh) is one more float32 implementation: it must
    # agree with the frameworks' golden logits as they agree with each other.
    x, _ = test_split
    y = refcomp.load(DATA / f"{model}.h5")(x, precision="fast")
    gold, _ = golden(model)
    tol = ulps_tolerance(gold["refcomp"])
    for fw in ("refcomp",) + FRAMEWORKS:
        g = gold[fw]
        assert y.shape == g.shape and y.dtype == np.float32
        assert np.array_equal(np.argmax(g, 1), np.argmax(y, 1)), f"{model}/{fw}: argmax differs"
        err = float(np.max(np.abs(g - y)))
        assert err <= tol, f"{model}/{fw}: max |diff| {err} > {tol}"


@pytest.mark.parametrize("model", MODELS)
def test_accuracy_recorded_at_build_time(model, outputs, test_split):
    _, y = test_split
    m = refcomp.load(DATA / f"{model}.h5")
    acc = float(np.mean(np.argmax(outputs[model], 1) == y))
    assert acc == m.metadata["test_accuracy"]
    _, accs = golden(model)
    assert all(a == acc for a in accs.values())
    assert acc >= 0.95
    md = m.metadata
    assert md["split_seed"] and md["train_seed"] and md["versions"]["torch"].startswith("2.13")
    assert m.input_shape == (8, 8)


def test_cnn_above_97_percent():
    assert refcomp.load(DATA / "digits_cnn.h5").metadata["test_accuracy"] > 0.97


def test_summary_json_consistent():
    s = json.loads((DATA / "golden" / "summary.json").read_text())
    for m in MODELS:
        assert s["accuracy"][m]["refcomp"] == refcomp.load(DATA / f"{m}.h5").metadata[
            "test_accuracy"]


def test_resnet_has_identity_residual_blocks():
    m = refcomp.load(DATA / "digits_resnet.h5")
    res = [l for l in m.layers if l.kind == "residual"]
    assert len(res) >= 2 and all("index_map" not in r.weights for r in res)


# -- round trip ------------------------------------------------------------------------
@pytest.mark.parametrize("model", MODELS)
def test_hdf5_round_trip_bit_exact(model, tmp_path, outputs, test_split):
    m = refcomp.load(DATA / f"{model}.h5")
    refcomp.save(m, tmp_path / "m.h5")
    m2 = refcomp.load(tmp_path / "m.h5")
    assert [p for p, _ in m.named_layers()] == [p for p, _ in m2.named_layers()]
    for (_, a), (_, b) in zip(m.named_layers(), m2.named_layers()):
        assert (a.kind, a.name, a.attrs) == (b.kind, b.name, b.attrs)
        assert sorted(a.weights) == sorted(b.weights)
        for k in a.weights:
            assert_bits_equal(a.w(k), b.w(k))
    assert m2.metadata == m.metadata
    assert_bits_equal(m2(test_split[0][:50]), outputs[model][:50])


# -- CLI -------------------------------------------------------------------------------
def test_cli_eval(capsys):
    from refcomp.cli import main
    assert main(["eval", str(DATA / "digits_mlp.h5")]) == 0
    out = capsys.readouterr().out
    acc = refcomp.load(DATA / "digits_mlp.h5").metadata["test_accuracy"]
    assert f"accuracy {acc:.4f}" in out
    assert main(["eval", str(DATA / "digits_mlp.h5"), "--data",
                 str(DATA / "digits_calib.h5"), "--precision", "fast"]) == 0
    assert "/200)" in capsys.readouterr().out
    assert main(["eval", str(DATA / "digits_mlp.h5"), "--data", "nope"]) != 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown split" in err
