"""AutoSlim-style search: MAC and parameter counts against hand formulas, the greedy
search's choices, determinism, injected executors, the ``refcomp slim`` command."""

import functools

import numpy as np
import pytest

import refcomp
from refcomp import Layer, Model, ParameterError, ShapeError
from refcomp.data import load_split
from refcomp.search import autoslim, channel_importance, count_flops, count_params, total
from refcomp.study.executors import run_tasks


def test_counts_match_hand_formulas():
    rng = np.random.default_rng(0)
    f32 = np.float32
    model = Model([
        Layer("conv2d", weights={"W": rng.standard_normal((4, 2, 3, 3)).astype(f32),
                                 "b": np.zeros(4, f32)},
              attrs={"stride": 2, "padding": 1}),
        Layer("activation", attrs={"function": "relu"}),
        Layer("conv2d", weights={"W": rng.standard_normal((6, 2, 2, 2)).astype(f32)},
              attrs={"groups": 2}),
        Layer("flatten"),
        Layer("dense", weights={"W": rng.standard_normal((5, 6 * 3 * 3)).astype(f32),
                                "b": np.zeros(5, f32)}),
    ], input_shape=(2, 7, 8))
    fl = count_flops(model)
    # conv 1: out 4 x 4 (ceil-free: (7+2-3)//2+1 = 4, (8+2-3)//2+1 = 4), 4 x 2 x 3 x 3 MACs each
    assert fl["0"] == 4 * 4 * 4 * 2 * 9
    # conv 2 (groups 2, 2 -> 1 channel per group): out 3 x 3, 6 filters of 2 x 2 x 2
    assert fl["2"] == 3 * 3 * 6 * 2 * 4
    assert fl["4"] == 5 * 54 and fl["1"] == fl["3"] == 0
    assert count_params(model) == {"0": 4 * 18 + 4, "1": 0, "2": 6 * 8, "3": 0,
                                   "4": 5 * 54 + 5}
    assert total(fl) == sum(fl.values())


def test_recurrent_macs():
    f32 = np.float32
    H, F, T = 3, 2, 5
    model = Model([Layer("lstm", weights={"W_ih": np.zeros((4 * H, F), f32),
                                          "W_hh": np.zeros((4 * H, H), f32)})],
                  input_shape=(T, F))
    assert count_flops(model)["0"] == T * 4 * H * (F + H)


def test_channel_importance():
    W = np.array([[1, -2, 0], [0.5, 0.5, 0.5], [-3, 0, 0]], np.float32)
    assert np.array_equal(channel_importance(W, "l1"), [3.0, 1.5, 3.0])
    assert np.allclose(channel_importance(W, "l2"), [5 ** 0.5, 0.75 ** 0.5, 3.0])


@pytest.fixture(scope="module")
def mlp_data():
    x, y = load_split("calib")
    return refcomp.load("data/digits_mlp.h5"), x[:120], y[:120]


def test_autoslim_greedy_choices(mlp_data):
    model, x, y = mlp_data
    seen = []

    def recording(func, state, items):
        out = [func(state, it) for it in items]
        seen.append((items, out))
        return out

    res = autoslim(model, x, y, target_flops_ratio=0.5, step=0.2, map_tasks=recording,
                   progress=False)
    assert res.reached and res.curve[-1]["flops"] <= res.target_flops
    assert res.curve[0]["accuracy"] == refcomp.metrics.accuracy(model(x), y)
    flops = [c["flops"] for c in res.curve]
    assert flops == sorted(flops, reverse=True) and len(set(flops)) == len(flops)
    assert set(res.widths) == {"1", "3"}                 # the class layer is never slimmed
    assert total(count_flops(res.model)) == res.curve[-1]["flops"]
    for (items, accs), c in zip(seen[1:], res.curve[1:]):
        assert c["accuracy"] == max(accs)                 # the least harmful slimming
    # every step removes ceil(0.2 * original width) channels of one layer
    for a, b in zip(res.curve, res.curve[1:]):
        diff = {p: a["widths"][p] - b["widths"][p] for p in a["widths"]}
        assert sorted(diff.values()) == [0, {"1": 26, "3": 13}[b["layer"]]]


def test_autoslim_deterministic_and_executor_independent(mlp_data):
    model, x, y = mlp_data
    a = autoslim(model, x, y, target_flops_ratio=0.6, progress=False)
    b = autoslim(model, x, y, target_flops_ratio=0.6, progress=False,
                 map_tasks=functools.partial(run_tasks, workers=1, progress=False))
    assert a.curve == b.curve
    xx = np.random.default_rng(1).random((4, 8, 8)).astype(np.float32)
    assert np.array_equal(a.model(xx), b.model(xx))


def test_autoslim_bad_input(mlp_data):
    model, x, y = mlp_data
    for t in (0, -0.5, 1.5, float("nan"), True):
        with pytest.raises(ParameterError, match="target_flops_ratio"):
            autoslim(model, x, y, target_flops_ratio=t)
    for s in (0, 1, 1.5):
        with pytest.raises(ParameterError, match="step"):
            autoslim(model, x, y, target_flops_ratio=0.5, step=s)
    with pytest.raises(ParameterError, match="importance"):
        autoslim(model, x, y, target_flops_ratio=0.5, importance="l0")
    with pytest.raises(ShapeError):
        autoslim(model, x[:, :4], y, target_flops_ratio=0.5)
    with pytest.raises(ShapeError):
        autoslim(model, x, y[:3], target_flops_ratio=0.5)
    for v in (np.nan, np.inf, -np.inf):
        bad = x.copy()
        bad.flat[17] = v
        with pytest.raises(ParameterError, match="x_val contains 1 non-finite"):
            autoslim(model, bad, y, target_flops_ratio=0.5)
    with pytest.raises(ShapeError, match="y_val"):                 # float labels, NaN or not
        autoslim(model, x, np.full(y.shape, np.nan), target_flops_ratio=0.5)


def test_slim_command(tmp_path, capsys):
    from refcomp.cli import main
    out = tmp_path / "slim.h5"
    curve = tmp_path / "curve.csv"
    rc = main(["slim", "data/digits_mlp.h5", "-o", str(out), "--target", "0.7", "--quiet",
               "--curve", str(curve), "--precision", "fast"])
    assert rc == 0 and out.exists() and curve.read_text().startswith("step,layer,flops")
    assert "wrote" in capsys.readouterr().out
    assert main(["slim", "data/digits_mlp.h5", "-o", str(out), "--target", "0.7"]) == 2
    assert main(["slim", "data/digits_mlp.h5", "-o", str(tmp_path / "x.h5"),
                 "--target", "2"]) == 1


def _temps(directory):
    return sorted(p.name for p in directory.iterdir() if p.name.startswith(".refcomp-"))


def test_slim_curve_is_written_atomically(tmp_path, monkeypatch, capsys):
    # README "Reliability": every CLI output goes to a temporary file renamed into place
    import csv

    from refcomp.cli import _search, main
    out, curve = tmp_path / "slim.h5", tmp_path / "curve.csv"
    base = ["slim", "data/digits_mlp.h5", "--target", "0.9", "--quiet", "--precision",
            "fast", "--curve", str(curve)]
    curve.write_text("previous\n")
    assert main(base + ["-o", str(out)]) == 2                       # exists, no --force
    assert "curve" in capsys.readouterr().err and not out.exists()
    assert main(base + ["-o", str(curve), "--force"]) == 2          # curve is the output
    assert curve.read_text() == "previous\n"

    real = csv.writer

    class Failing:                                   # dies after the header and one row
        def __init__(self, fh):
            self.w, self.n = real(fh), 0

        def writerow(self, row):
            self.n += 1
            if self.n == 3:
                raise OSError(28, "No space left on device")
            self.w.writerow(row)

    monkeypatch.setattr(_search.csv, "writer", Failing)
    assert main(base + ["-o", str(out), "--force"]) == 1
    assert "No space left" in capsys.readouterr().err
    assert curve.read_text() == "previous\n" and _temps(tmp_path) == []
    curve.unlink()
    assert main(base + ["-o", str(out), "--force"]) == 1
    assert not curve.exists() and _temps(tmp_path) == []
    monkeypatch.undo()
    assert main(base + ["-o", str(out), "--force"]) == 0
    rows = curve.read_text().splitlines()
    assert rows[0].startswith("step,layer,flops") and len(rows) >= 2
    assert _temps(tmp_path) == []
