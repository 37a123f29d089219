"""The main job: metrics, accounting, search, executors, CLI, bad input."""

import csv
import json
import math
import os

import h5py
import numpy as np
import pytest

import refcomp
from refcomp import Layer, Model, ParameterError, RefcompError, ShapeError
from refcomp.cli import main
from refcomp.study import (Compressed, accuracy, compression_ratio, mean_kl, parameter_mse,
                           pareto_front, register_method, run_study)
from refcomp.study import executors
from refcomp.study.evaluate import find_units
from refcomp.study.run import check_study

import _study_methods

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
    # Methods registered here, in the main process only (module-level functions
    # of a helper module, one with an extra parameter): worker processes and
    # Dask workers know them only through the shipped Method objects.
    register_method("test_sign", _study_methods.sign_mean, label="SG", values=(1,))
    register_method("test_clip", _study_methods.clipped_uniform, label="CU",
                    extra_params={"clip": 1.0})
    m = small_model()
    x, y = small_data()
    kw = dict(methods=("uniform", "test_sign", "test_clip"), bits=(1, 3), adaptive_bits=(1, 2),
              method_params={"test_clip": {"clip": 0.5}}, progress=False)
    serial = run_study(m, x, y, **kw)
    assert serial["settings"]["method_params"] == {"test_clip": {"clip": 0.5}}
    serial = serial["runs"]
    assert {r["method"] for r in serial} == {"uniform", "test_sign", "test_clip"}
    procs = run_study(m, x, y, workers=2, **kw)["runs"]
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        dask = run_study(m, x, y, scheduler=client, **kw)["runs"]
    assert json.dumps(serial) == json.dumps(procs) == json.dumps(dask)


def test_unpicklable_method_clear_error():
    m = small_model()
    x, y = small_data()
    register_method("test_lambda", lambda theta, bits: _study_methods.sign_mean(theta, bits),
                    values=(1,))
    kw = dict(methods=("test_lambda",), bits=(1,), experiments=("whole",), progress=False)
    assert run_study(m, x, y, **kw)["runs"]            # serial: no pickling needed
    with pytest.raises(ParameterError, match="test_lambda.*cannot be pickled.*module level"):
        run_study(m, x, y, workers=2, **kw)

    def nested(theta, bits):
        return _study_methods.sign_mean(theta, bits)
    register_method("test_nested", nested, values=(1,))
    with pytest.raises(ParameterError, match="test_nested.*cannot be pickled"):
        check_study(m, x, y, methods=("test_nested",), workers=2)


def test_serial_progress_advances_per_run(monkeypatch, capsys):
    seen = []

    class Recorder(executors.Progress):
        def __init__(self, total, label, **kw):
            super().__init__(total, label, **kw)
            seen.append(self)
    monkeypatch.setattr(executors, "Progress", Recorder)
    m = small_model()
    x, y = small_data()
    res = run_study(m, x, y, methods=("uniform",), bits=(1, 2, 3), adaptive_bits=(1, 2),
                    progress=None)
    # stderr is not a terminal under pytest: quiet by default
    assert capsys.readouterr().err == ""
    by_label = {p.label: p for p in seen}
    n = {"per-layer sweep": 3 * 3, "whole network": 3, "adaptive QU": 2 ** 3}
    for label, count in n.items():
        assert by_label[label].total == by_label[label].done == count
    assert len(res["runs"]) == sum(n.values())


def test_progress_bar_redraws_are_throttled(capsys):
    bar = executors.Progress(1000, "test", enabled=True, backend="plain")
    for _ in range(1000):
        bar.update()
    err = capsys.readouterr().err
    assert err.endswith("1000/1000 " + err.rsplit("1000/1000 ", 1)[1]) and err.endswith("s\n")
    assert 1 <= err.count("\r") < 100          # first and last always drawn, not 1000 times
    executors.Progress(5, "quiet", enabled=False).update(5)
    assert capsys.readouterr().err == ""


def test_progress_bar_uses_tqdm_when_installed(capsys):
    pytest.importorskip("tqdm")
    bar = executors.Progress(7, "with tqdm", enabled=True)
    assert bar._bar is not None
    for _ in range(7):
        bar.update()
    err = capsys.readouterr().err
    assert "with tqdm" in err and "7/7" in err
    executors.Progress(3, "quiet", enabled=False, backend="tqdm").update(3)
    assert capsys.readouterr().err == ""


def test_method_extra_params():
    register_method("test_clip", _study_methods.clipped_uniform, label="CU",
                    extra_params={"clip": 1.0})
    m = small_model()
    x, y = small_data()
    kw = dict(methods=("test_clip",), bits=(2,), experiments=("per_layer",), progress=False)
    default = run_study(m, x, y, **kw)
    assert default["settings"]["method_params"] == {"test_clip": {"clip": 1.0}}
    half = run_study(m, x, y, method_params={"test_clip": {"clip": 0.5}}, **kw)
    assert [r["mse"] for r in half["runs"]] != [r["mse"] for r in default["runs"]]
    # an int is accepted for a float parameter, and a string from the command line
    one = run_study(m, x, y, method_params={"test_clip": {"clip": 1}}, **kw)
    assert one["settings"]["method_params"] == {"test_clip": {"clip": 1.0}}
    assert one["runs"] == default["runs"]
    # methods without extra parameters: no new key in the settings (outputs unchanged)
    assert "method_params" not in run_study(m, x, y, methods=("uniform",), bits=(2,),
                                            experiments=("whole",), progress=False)["settings"]
    for bad, msg in [({"test_clip": {"clipp": 1.0}}, "unknown parameter 'clipp'"),
                     ({"test_clip": {"bits": 3}}, "swept parameter"),
                     ({"test_clip": {"clip": "wide"}}, "must be a number"),
                     ({"uniform": {"clip": 1.0}}, "not among the study's methods")]:
        with pytest.raises(ParameterError, match=msg):
            run_study(m, x, y, method_params=bad, **kw)
    for kwargs, msg in [(dict(values=()), "values must not be empty"),
                        (dict(values=(0, 3)), "out of range"),
                        (dict(extra_params={"bits": 1}), "bad extra parameter name")]:
        with pytest.raises(ParameterError, match=msg):
            register_method("test_bad", _study_methods.sign_mean, **kwargs)


def test_cli_method_extra_params(tmp_path, capsys):
    register_method("test_clip", _study_methods.clipped_uniform, label="CU",
                    extra_params={"clip": 1.0})
    out = tmp_path / "o"
    assert main(["study", "--methods", "uniform,test_clip", "--param", "clip=0.5",
                 "--experiments", "whole", "--bits", "2,3", "--no-plots", "--quiet",
                 "--out", str(out)]) == 0
    capsys.readouterr()
    data = json.load(open(out / "runs.json"))
    assert data["settings"]["method_params"] == {"test_clip": {"clip": 0.5}}
    assert "Fixed method parameters: test_clip: clip=0.5" in (out / "tables.md").read_text()
    for extra, msg in [(["--param", "clip=0.5"], "no chosen method has a fixed parameter"),
                       (["--param", "kmeans.clip=0.5"], "not among the study's methods"),
                       (["--param", "uniform.clip=0.5"], "unknown parameter 'clip'")]:
        o = tmp_path / "bad"
        assert main(["study", "--methods", "uniform", "--quiet", "--out", str(o)] + extra) == 1
        assert msg in capsys.readouterr().err
        assert not o.exists()
    src = tmp_path / "w.h5"
    with h5py.File(src, "w") as f:
        f["w"] = np.random.default_rng(0).standard_normal(50).astype(f32)
    assert main(["apply", "test_clip", str(src), "-o", str(tmp_path / "c.h5"), "--param",
                 "bits=3", "--param", "clip=0.25", "--dequantize"]) == 0
    with h5py.File(tmp_path / "c.h5") as f:
        assert f.attrs["refcomp_clip"] == 0.25
        w = f["w"][()]
    with h5py.File(src) as f:
        lim = 0.25 * np.max(np.abs(f["w"][()]))
    assert np.max(np.abs(w)) <= lim * (1 + 1e-6)
    assert main(["apply", "test_clip", str(src), "-o", str(tmp_path / "d.h5"), "--param",
                 "bits=3", "--param", "clop=1"]) == 1
    assert "unknown parameter(s) ['clop']" in capsys.readouterr().err


def test_labels_out_of_class_range():
    m = small_model()               # 3 classes
    x, y = small_data()
    y = y.copy()
    y[[2, 5]] = [3, -1]
    with pytest.raises(ParameterError, match=r"must lie in \[0, 2\].*2 of 40 lie outside, "
                                             r"in \[-1, 3\]"):
        run_study(m, x, y, methods=("uniform",), progress=False)
    with pytest.raises(ParameterError, match=r"labels in my.h5 must lie"):
        check_study(m, x, y, source="my.h5")
    with pytest.raises(ShapeError, match="empty"):
        check_study(m, x[:0], y[:0])


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
    with pytest.raises(ParameterError, match="unknown experiment"):
        run_study(m, x, y, experiments=("all",))
    with pytest.raises(ParameterError, match="workers"):
        run_study(m, x, y, workers=0)
    assert issubclass(ParameterError, RefcompError) and issubclass(ShapeError, RefcompError)


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
    err = capsys.readouterr().err
    assert "does not fit" in err and str(bad) in err
    assert not (tmp_path / "o2").exists()
    # labels outside the model's 10 classes: the file and the offending range are named
    labels = tmp_path / "labels.h5"
    with h5py.File(labels, "w") as f:
        f["x"] = np.zeros((4, 8, 8), f32)
        f["y"] = np.array([0, 12, 9, -1], np.int64)
    assert main(["study", "--data", str(labels), "--out", str(tmp_path / "o4"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert str(labels) in err and "[0, 9]" in err and "in [-1, 12]" in err
    assert not (tmp_path / "o4").exists()
    # a study failing after the checks leaves no folder it created behind
    register_method("test_fail", _study_methods.failing, values=(1,))
    nested = tmp_path / "a" / "b"
    assert main(["study", "--methods", "test_fail", "--out", str(nested), "--quiet"]) == 1
    assert "always fails" in capsys.readouterr().err
    assert not (tmp_path / "a").exists()
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
