"""The decomposition methods in the study, and seed 004's tables."""

import numpy as np
import pytest

import refcomp
from refcomp.data import load_split
from refcomp.decompose import param_count, pca_model
from refcomp.study import get_method, run_study, write_report


@pytest.fixture(scope="module")
def cnn_pca_study():
    m = refcomp.load(refcomp.data.default_data_dir() / "digits_cnn.h5")
    x, y = load_split("test")
    cal = load_split("calib")
    res = run_study(m, x[:120], y[:120], methods=("pca",), experiments=("whole",),
                    calibration=(cal[0][:100], cal[1][:100]), progress=False)
    return m, x[:120], y[:120], res


def test_pca_method_registered():
    m = get_method("pca")
    assert m.level == "layer" and m.param == "energy" and m.label == "PCA"
    assert set(m.values) == {50, 60, 70, 80, 90, 100}


def test_seed004_tables_match_whole_runs(cnn_pca_study, tmp_path):
    m, x, y, res = cnn_pca_study
    s = res["seed004"]
    whole = {r["value"]: r for r in res["runs"] if r["experiment"] == "whole"}
    assert [r["energy"] for r in s["rows"]] == [100, 90, 80, 70, 60, 50]
    assert s["orig"]["P"] == param_count(m) == 53002
    for r in s["rows"]:
        # the study's whole-network run is the same compressed network
        assert r["A"] == whole[r["energy"]]["accuracy"]
        assert r["G"] == pytest.approx(whole[r["energy"]]["tau"], rel=1e-12)
        assert r["P"] == param_count(pca_model(m, r["energy"] / 100, layers="all"))
        assert r["A_R"] is not None
    files = write_report(res, tmp_path, plots=True)
    text = (tmp_path / "tables.md").read_text()
    assert "seed 004 Table 1" in text and "seed 004 Table 3" in text and "A-R (%)" in text
    assert "fig_seed004_accuracy_vs_gain.png" in files or not _has_mpl()


def _has_mpl():
    try:
        import matplotlib  # noqa: F401
        return True
    except ImportError:
        return False


def test_pca_method_needs_calibration():
    m = refcomp.load(refcomp.data.default_data_dir() / "digits_cnn.h5")
    x, y = load_split("test")
    with pytest.raises(refcomp.ParameterError, match="calibration"):
        run_study(m, x[:10], y[:10], methods=("pca",), experiments=("whole",))


def test_pca_method_refuses_recurrent_layers():
    m = refcomp.load(refcomp.data.default_data_dir() / "digits_lstm.h5")
    x, y = load_split("test")
    with pytest.raises(refcomp.ParameterError, match="decomposes dense and conv2d"):
        run_study(m, x[:10], y[:10], methods=("pca",), experiments=("per_layer",),
                  calibration=load_split("calib"), progress=False)


def test_low_rank_methods_in_the_study():
    from refcomp.decompose import CPWeight, SVDWeight, TuckerWeight
    m = refcomp.load(refcomp.data.default_data_dir() / "digits_cnn.h5")
    x, y = load_split("test")
    res = run_study(m, x[:60], y[:60], methods=("svd", "tucker2", "cp"),
                    experiments=("whole",), progress=False,
                    method_params={"cp": {"n_iter_max": 3}})
    whole = {(r["method"], r["value"]): r for r in res["runs"]}
    assert whole[("tucker2", 100)]["accuracy"] == res["baseline"]["accuracy"]
    assert whole[("svd", 100)]["accuracy"] == res["baseline"]["accuracy"]
    assert whole[("cp", 10)]["tau"] > 1 and whole[("svd", 50)]["tau"] > 1
    from refcomp.study.registry import get_method
    from refcomp.study.evaluate import find_units, layer_view
    units = find_units(m)
    view = layer_view(m, units[1])
    assert isinstance(get_method("tucker2").compress_layer(view, 50).weights["W"],
                      TuckerWeight)
    assert isinstance(get_method("cp").compress_layer(view, 50).weights["W"], CPWeight)
    fc = layer_view(m, units[2])
    assert isinstance(get_method("svd").compress_layer(fc, 90).weights["W"], SVDWeight)
    assert isinstance(get_method("tucker2").compress_layer(fc, 90).weights["W"], np.ndarray)
