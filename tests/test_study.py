"""The main job: metrics, accounting, search, executors, CLI, bad input."""

import csv
import json
import math
import os

import h5py
import numpy as np
import pytest

import refcomp
from refcomp import Layer, Model, ParameterError, ShapeError
from refcomp.cli import main
from refcomp.study import (Compressed, accuracy, compression_ratio, mean_kl, parameter_mse,
                           pareto_front, register_method, run_study)
from refcomp.study.evaluate import find_units

f32 = np.float32


# -- metrics against hand-computed values ---------------------------------------------
def test_accuracy_hand_values_and_ties():
    out = np.array([[0.1, 0.9], [0.5, 0.5], [0.7, 0.3], [0.2, 0.8]], f32)
    assert accuracy(out, np.array([1, 0, 1, 1])) == 0.75        # tie -> class 0
    with pytest.raises(ShapeError):
        accuracy(out, np.array([1, 0]))


def test_kl_hand_value():
    p = np.array([[0.0, 0.0]])                 # softmax -> (1/2, 1/2)
    q = np.array([[math.log(3.0), 0.0]])       # softmax -> (3/4, 1/4)
    assert mean_kl(p, q) == pytest.approx(0.5 * math.log(4 / 3), rel=1e-15)
    assert mean_kl(p, p) == 0.0
    # p_c = 0 by underflow contributes 0; q far from p stays finite (no clamping)
    big = np.array([[0.0, -2000.0]])
    assert mean_kl(big, np.array([[-2000.0, 0.0]])) == pytest.approx(2000.0)
    # mean over samples
    assert mean_kl(np.vstack([p, p]), np.vstack([q, p])) == pytest.approx(0.25 * math.log(4 / 3))


def test_mse_and_tau_hand_values():
    w = [np.array([1.0, 2.0, 3.0], f32), np.array([[0.5]], f32)]
    q = [np.array([1.0, 2.5, 2.0], f32), np.array([[0.0]], f32)]
    assert parameter_mse(w, q) == (0 + 0.25 + 1 + 0.25) / 4
    assert compression_ratio(32 * 320, 132 * 8) == pytest.approx(9.69, abs=0.01)   # Table 4 CONV 1


# -- a small model ---------------------------------------------------------------------
def small_model(seed=0):
    rng = np.random.default_rng(seed)
    r = lambda *s: (rng.standard_normal(s) * 0.5).astype(f32)
    return Model([Layer("reshape", attrs={"shape": (1, 4, 4)}),
                  Layer("conv2d", weights={"W": r(3, 1, 3, 3), "b": r(3)}),
                  Layer("activation", attrs={"function": "relu"}),
                  Layer("flatten"),
                  Layer("dense", weights={"W": r(5, 12), "b": r(5)}),
                  Layer("activation", attrs={"function": "tanh"}),
                  Layer("dense", weights={"W": r(3, 5), "b": r(3)}),
                  Layer("activation", attrs={"function": "softmax"})],
                 name="small", input_shape=(4, 4))


def small_data(n=40, seed=1):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 4, 4)).astype(f32), rng.integers(0, 3, n)


def test_units_and_tau_accounting_by_hand():
    m = small_model()
    units = find_units(m)
    assert [u.label for u in units] == ["CONV 1", "FC 1", "FC 2"]
    assert [u.n_params for u in units] == [30, 65, 18]
    x, y = small_data()
    res = run_study(m, x, y, methods=("uniform",), bits=(3,), experiments=("per_layer", "whole"),
                    progress=False)
    per = [r for r in res["runs"] if r["experiment"] == "per_layer"]
    # uniform: |theta| * b bits + theta_min and Delta at 32 bits each
    assert [r["size_bits"] for r in per] == [30 * 3 + 64, 65 * 3 + 64, 18 * 3 + 64]
    assert per[0]["tau_i"] == 30 * 32 / (30 * 3 + 64)
    total = 113 * 32
    assert per[1]["tau"] == total / (total - 65 * 32 + 65 * 3 + 64)
    whole = [r for r in res["runs"] if r["experiment"] == "whole"]
    assert whole[0]["tau"] == total / (113 * 3 + 3 * 64)
    res_f = run_study(m, x, y, methods=("uniform",), bits=(3,), experiments=("per_layer",),
                      biases="float", progress=False)
    assert res_f["runs"][0]["size_bits"] == 27 * 3 + 64       # conv W only; bias stays float
    assert res_f["runs"][0]["tau"] == total / (total - 27 * 32 + 27 * 3 + 64)


def test_kmeans_accounting_by_hand():
    pytest.importorskip("refcomp.quantize.kmeans")
    m = small_model()
    x, y = small_data()
    res = run_study(m, x, y, methods=("kmeans",), bits=(2,), experiments=("per_layer",),
                    progress=False)
    # kmeans: |theta| * b bits + codebook of k = 2^b values at 32 bits
    assert [r["size_bits"] for r in res["runs"]] == [30 * 2 + 4 * 32, 65 * 2 + 4 * 32,
                                                     18 * 2 + 4 * 32]


@pytest.mark.parametrize("method, extra", [
    ("kmeans_optimal", 4 * 32),     # codebook of k = 2^2 float32 values
    ("affine", 32 + 32),            # float32 scale + int32 zero point
    ("fixed_point", 8),             # fractional length in one byte
    ("power_of_two", 8),            # e_min in one byte
])
def test_registered_quantizer_accounting_by_hand(method, extra):
    m = small_model()
    x, y = small_data()
    res = run_study(m, x, y, methods=(method,), bits=(2,), experiments=("per_layer",),
                    progress=False)
    assert [r["size_bits"] for r in res["runs"]] == [n * 2 + extra for n in (30, 65, 18)]
    assert res["runs"][0]["tau_i"] == 30 * 32 / (30 * 2 + extra)


def test_pruning_joins_the_study_with_its_own_parameter():
    m = small_model()
    x, y = small_data()
    res = run_study(m, x, y, methods=("magnitude",), bits=(3,), adaptive_bits=(1,),
                    experiments=("per_layer", "whole", "adaptive"), progress=False)
    per = [r for r in res["runs"] if r["experiment"] == "per_layer"]
    assert [r["value"] for r in per[:6]] == [5, 10, 20, 30, 50, 70]
    # keep 50 % of the 30 conv entries: round_half_even(0.5 * 30) = 15 removed,
    # 15 values at 32 bits + a 30-bit occupancy bitmap
    r = next(r for r in per if r["unit"] == "CONV 1" and r["value"] == 50)
    assert r["size_bits"] == 15 * 32 + 30 and r["tau_i"] == 30 * 32 / (15 * 32 + 30)
    adaptive = [r for r in res["runs"] if r["experiment"] == "adaptive"]
    assert len(adaptive) == 6 ** 3 and res["settings"]["params"] == {"magnitude": "keep"}


def test_exhaustive_search_enumerates_all_assignments():
    m = small_model()
    x, y = small_data()
    res = run_study(m, x, y, methods=("uniform",), adaptive_bits=(1, 2, 3, 4),
                    experiments=("adaptive",), progress=False)
    configs = [r["config"] for r in res["runs"]]
    assert len(configs) == 4 ** 3 == len(set(configs))
    assert res["settings"]["adaptive_mode"] == "exhaustive"
    front = pareto_front(res["runs"])
    for r in res["runs"]:
        assert not any((f["tau"] >= r["tau"] and f["accuracy"] > r["accuracy"]) or
                       (f["tau"] > r["tau"] and f["accuracy"] >= r["accuracy"])
                       for f in front if f is not r) or r not in front


def test_greedy_search_above_the_limit():
    m = small_model()
    x, y = small_data()
    res = run_study(m, x, y, methods=("uniform",), adaptive_bits=(1, 2, 3, 4),
                    experiments=("adaptive",), max_combinations=10, progress=False)
    assert res["settings"]["adaptive_mode"] == "greedy"
    # Start at 4-4-4; each round lowers one unit by one level (9 rounds to 1-1-1)
    # and evaluates one candidate per unit still above 1 bit (between 1 and 3).
    configs = [r["config"] for r in res["runs"]]
    assert configs[0] == "4-4-4" and configs[-1] == "1-1-1"
    assert 1 + 9 <= len(configs) <= 1 + 9 * 3
    totals = [sum(int(b) for b in c.split("-")) for c in configs]
    assert totals[0] == 12 and sorted(set(totals)) == list(range(3, 13))


def test_reuse_gives_identical_results():
    m = small_model()
    x, y = small_data()
    kw = dict(methods=("uniform",), bits=(1, 2), adaptive_bits=(1, 2, 3), progress=False)
    a = run_study(m, x, y, reuse=True, **kw)["runs"]
    b = run_study(m, x, y, reuse=False, **kw)["runs"]
    assert a == b


def _custom(theta, bits):
    # sign * mean|theta| (binary) regardless of bits, for registry tests
    alpha = np.float32(np.mean(np.abs(theta.astype(np.float64))))
    dec = np.where(theta >= 0, alpha, -alpha).astype(theta.dtype)
    return Compressed(dec, theta.size + 32)


def test_registry_plugs_new_method_by_name():
    register_method("test_binary", _custom, label="BIN", values=(1,))
    m = small_model()
    x, y = small_data()
    res = run_study(m, x, y, methods=("test_binary",), bits=(1,), experiments=("whole",),
                    progress=False)
    assert res["runs"][0]["label"] == "BIN" and res["runs"][0]["size_bits"] == 113 + 3 * 32


def test_executors_identical():
    pytest.importorskip("distributed")
    from distributed import Client, LocalCluster
    m = small_model()
    x, y = small_data()
    kw = dict(methods=("uniform",), bits=(1, 3), adaptive_bits=(1, 2), progress=False)
    serial = run_study(m, x, y, **kw)["runs"]
    procs = run_study(m, x, y, workers=2, **kw)["runs"]
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        dask = run_study(m, x, y, scheduler=client, **kw)["runs"]
    assert json.dumps(serial) == json.dumps(procs) == json.dumps(dask)


def test_bad_input():
    m = small_model()
    x, y = small_data()
    with pytest.raises(ParameterError, match="unknown method"):
        run_study(m, x, y, methods=("nope",))
    with pytest.raises(ParameterError, match="out of range"):
        run_study(m, x, y, methods=("uniform",), bits=(0, 3))
    with pytest.raises(ShapeError, match="does not fit"):
        run_study(m, np.zeros((3, 5, 5), f32), np.zeros(3, int))
    with pytest.raises(ShapeError, match="labels"):
        run_study(m, x, y[:3])


# -- CLI end to end -----------------------------------------------------------------------
PNG = b"\x89PNG\r\n\x1a\n"


def test_cli_study_default_end_to_end(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "out"
    assert main(["study", "--out", str(out), "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "digits_cnn" in text and "float accuracy" in text
    names = set(os.listdir(out))
    assert {"runs.csv", "runs.json", "tables.md", "fig2_accuracy_per_layer.png",
            "fig3_mse_per_layer.png", "fig4_kl_per_layer.png", "fig5_whole_network.png",
            "pareto.png"} <= names
    rows = list(csv.DictReader(open(out / "runs.csv")))
    data = json.load(open(out / "runs.json"))
    assert len(rows) == len(data["runs"]) == 2 * (4 * 8 + 8 + 4 ** 4)
    for n in names:
        if n.endswith(".png"):
            assert (out / n).read_bytes()[:8] == PNG
    assert "Table 5" in (out / "tables.md").read_text()


def test_cli_study_bad_input(tmp_path, capsys):
    cases = [(["--methods", "uniform,bogus"], "unknown method"),
             (["--bits", "0-3"], "--bits"), (["--adaptive-bits", "1-20"], "--adaptive-bits"),
             (["--bits", "x"], "--bits"), (["--experiments", "all"], "unknown experiment")]
    for extra, msg in cases:
        out = tmp_path / "o"
        assert main(["study", "--out", str(out), "--quiet"] + extra) != 0
        err = capsys.readouterr().err
        assert msg in err and err.count("\n") == 1
        assert not out.exists()
    bad = tmp_path / "bad.h5"
    with h5py.File(bad, "w") as f:
        f["x"] = np.zeros((4, 3, 3), f32)
        f["y"] = np.zeros(4, np.int64)
    assert main(["study", "--data", str(bad), "--out", str(tmp_path / "o2"), "--quiet"]) == 1
    assert "does not fit" in capsys.readouterr().err
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["study", "--out", str(blocker / "sub"), "--quiet", "--methods", "uniform"]) == 1
    assert "error" in capsys.readouterr().err


def test_cli_apply(tmp_path, capsys):
    src = tmp_path / "w.h5"
    rng = np.random.default_rng(0)
    with h5py.File(src, "w") as f:
        f["enc/kernel"] = rng.standard_normal((20, 10)).astype(f32)
        f["enc/bias"] = rng.standard_normal(10).astype(f32)
        f["step"] = np.array([3], np.int64)
    out = tmp_path / "o.h5"
    assert main(["apply", "uniform", str(src), "-o", str(out), "--param", "bits=4",
                 "--datasets", "enc/*", "--dequantize"]) == 0
    assert "enc/kernel" in capsys.readouterr().out
    with h5py.File(out) as f:
        k = f["enc/kernel"][()]
        assert k.shape == (20, 10) and len(np.unique(k)) <= 16
        assert f["enc/kernel"].attrs["tau"] == pytest.approx(200 * 32 / (200 * 4 + 64))
        assert f["step"][()] == 3
    out2 = tmp_path / "o2.h5"
    assert main(["apply", "uniform", str(src), "-o", str(out2), "--param", "bits=4"]) == 0
    with h5py.File(out2) as f:
        assert f["enc/kernel"].attrs["encoding"] == "quantized"
    assert main(["apply", "uniform", str(src), "-o", str(tmp_path / "o3.h5")]) != 0
    assert "bits=VALUE" in capsys.readouterr().err
    assert main(["apply", "uniform", str(src), "-o", str(tmp_path / "o3.h5"), "--param",
                 "bits=4", "--datasets", "zzz*"]) != 0
    assert not (tmp_path / "o3.h5").exists()
