"""Model save/load round trips, summary and the CLI happy path."""

import h5py
import numpy as np
import pytest

import refcomp
from refcomp import Layer, Model
from refcomp.cli import main
from refcomp.quantize import Quantized
from refcomp.testing import assert_bits_equal


def _rich_model(dtype=np.float32):
    rng = np.random.default_rng(3)
    r = lambda *s: rng.standard_normal(s).astype(dtype)
    H = 4
    return Model([
        Layer("reshape", attrs={"shape": (1, 6, 6)}),
        Layer("conv2d", name="c1", attrs={"padding": "same"}, weights={"W": r(4, 1, 3, 3), "b": r(4)}),
        Layer("batch_norm", weights={"gamma": r(4), "beta": r(4), "mean": r(4),
                                     "var": np.abs(r(4)) + 1}, attrs={"eps": 1e-3}),
        Layer("activation", attrs={"function": "relu"}),
        Layer("residual", layers=[Layer("conv2d", attrs={"padding": 1}, weights={"W": r(2, 4, 3, 3)})],
              weights={"index_map": np.array([0, 2], np.int64)}),
        Layer("avg_pool2d", attrs={"size": 2, "count_include_pad": False}),
        Layer("reshape", attrs={"shape": (4, 9)}),
        Layer("lstm", weights={"W_ih": r(4 * H, 9), "W_hh": r(4 * H, H), "b_ih": r(4 * H),
                               "b_hh": r(4 * H)}),
        Layer("gru", attrs={"reset_after": False, "return_sequences": False},
              weights={"W_ih": r(3 * H, H), "W_hh": r(3 * H, H)}),
        Layer("dropout"),
        Layer("dense", weights={"W": r(3, H), "b": r(3)}),
        Layer("activation", attrs={"function": "softmax"}),
    ], name="rich", input_shape=(6, 6), metadata={"seed": 1, "note": "é"})


def test_save_load_bit_exact(tmp_path):
    for dt in (np.float32, np.float64):
        m = _rich_model(dt)
        p = tmp_path / "m.h5"
        refcomp.save(m, p)
        m2 = refcomp.load(p)
        assert m2.metadata == m.metadata and m2.input_shape == (6, 6) and m2.name == "rich"
        for (pa, la), (pb, lb) in zip(m.named_layers(), m2.named_layers()):
            assert pa == pb and la.kind == lb.kind and la.attrs == lb.attrs
            for k in la.weights:
                assert_bits_equal(la.weights[k], lb.weights[k])
        x = np.random.default_rng(0).standard_normal((3, 6, 6)).astype(dt)
        assert_bits_equal(m(x), m2(x))


def test_quantized_weight_round_trip(tmp_path):
    m = _rich_model()
    W = m.get_layer("10").weights["W"]
    codebook = np.unique(W)
    codes = np.searchsorted(codebook, W).astype(np.uint8)
    q = Quantized(codes, bits=4, method="test", decoder="codebook",
                  params={"codebook": codebook, "note": None, "flag": True}, dtype=W.dtype)
    mq = m.replace_weights({("10", "W"): q})
    assert m.get_layer("10").weights["W"] is W                      # original untouched
    p = tmp_path / "q.h5"
    refcomp.save(mq, p)
    with h5py.File(p) as f:
        assert f["layers/0010/weights/W"].attrs["encoding"] == "quantized"
        assert f["layers/0010/weights/W/codes"].size == (12 * 4 + 7) // 8
    mq2 = refcomp.load(p)
    assert mq2.get_layer("10").weights["W"] == q
    x = np.random.default_rng(1).standard_normal((2, 6, 6)).astype(np.float32)
    assert_bits_equal(mq2(x), m(x))                                 # codebook exact here


def test_summary_and_cli(tmp_path, capsys):
    m = _rich_model()
    s = m.summary()
    assert "lstm" in s and "total params" in s
    rows = m.layer_table()
    assert rows[1]["params"] == 4 * 9 + 4 and rows[1]["bytes"] == 160
    p = tmp_path / "m.h5"
    refcomp.save(m, p)
    assert main(["info", str(p)]) == 0
    assert "residual" in capsys.readouterr().out
    inp = tmp_path / "x.h5"
    x = np.random.default_rng(2).standard_normal((5, 6, 6)).astype(np.float32)
    with h5py.File(inp, "w") as f:
        f["x"] = x
    out = tmp_path / "y.h5"
    assert main(["run", str(p), str(inp), "-o", str(out), "--precision", "reference"]) == 0
    with h5py.File(out) as f:
        assert_bits_equal(f["y"][()], m(x))


def test_plain_arrays_round_trip(tmp_path):
    from refcomp.io import read_arrays, write_arrays
    arrays = {"a/b/kernel": np.arange(6, dtype=np.float32).reshape(2, 3), "c": np.ones(2)}
    write_arrays(tmp_path / "w.h5", arrays)
    back = read_arrays(tmp_path / "w.h5")
    assert list(back) == ["a/b/kernel", "c"]
    for k in arrays:
        assert_bits_equal(back[k], arrays[k])
    assert list(read_arrays(tmp_path / "w.h5", pattern="a/*")) == ["a/b/kernel"]


# -- shape checks that need no input shape ------------------------------------------------
def test_layer_rejects_inconsistent_weights():
    f = np.float32
    bad = [
        ("dense", {"W": np.zeros((3, 4), f), "b": np.zeros(2, f)}, {},
         r"weight 'b' has shape \(2,\), expected \(3,\)"),
        ("dense", {"W": np.zeros((3, 4, 1), f)}, {}, r"'W' has shape \(3, 4, 1\), expected 2"),
        ("conv2d", {"W": np.zeros((4, 2, 3, 3), f), "b": np.zeros(5, f)}, {},
         r"'b' has shape \(5,\), expected \(4,\)"),
        ("conv2d", {"W": np.zeros((4, 2, 3, 3), f)}, {"groups": 3}, "multiple of groups=3"),
        ("batch_norm", {"gamma": np.ones(4, f), "beta": np.ones(4, f), "mean": np.ones(3, f),
                        "var": np.ones(4, f)}, {}, r"'mean' has shape \(3,\), expected \(4,\)"),
        ("lstm", {"W_ih": np.zeros((16, 3), f), "W_hh": np.zeros((15, 4), f)}, {},
         r"'W_hh' has shape \(15, 4\), expected \(16, 4\)"),
        ("gru", {"W_ih": np.zeros((11, 3), f), "W_hh": np.zeros((12, 4), f)}, {},
         r"'W_ih' has shape \(11, 3\), expected \(12, 3\)"),
        ("mgu", {"W_ih": np.zeros((8, 3), f), "W_hh": np.zeros((8, 4), f),
                 "b_hh": np.zeros(4, f)}, {}, r"'b_hh' has shape \(4,\), expected \(8,\)"),
        ("simple_rnn", {"W_ih": np.zeros((4, 3), f), "W_hh": np.zeros((4, 4), f),
                        "b_ih": np.zeros(3, f)}, {}, r"'b_ih' has shape \(3,\), expected \(4,\)"),
    ]
    for kind, weights, attrs, match in bad:
        with pytest.raises(refcomp.FormatError, match=match):
            Layer(kind, weights=weights, attrs=attrs)


def test_model_checks_consecutive_layers_without_input_shape():
    f = np.float32
    dense = lambda o, i: Layer("dense", name=f"d{o}", weights={"W": np.zeros((o, i), f)})  # noqa
    conv = lambda o, i, **a: Layer("conv2d", name=f"c{o}", attrs=a,  # noqa: E731
                                   weights={"W": np.zeros((o, i, 3, 3), f)})
    Model([dense(5, 4), Layer("activation", attrs={"function": "relu"}), dense(3, 5)])
    with pytest.raises(refcomp.ShapeError, match=r"layer 2 \(dense 'd3'\): weight 'W' has shape "
                                                 r"\(3, 6\), expected \(3, 5\).*layer 0"):
        Model([dense(5, 4), Layer("dropout"), dense(3, 6)])
    with pytest.raises(refcomp.ShapeError, match=r"'W' has shape \(8, 3, 3, 3\), expected "
                                                 r"\(8, 4, 3, 3\)"):
        Model([conv(4, 1), Layer("max_pool2d"), conv(8, 3)])
    Model([conv(4, 1), conv(8, 2, groups=2)])                            # 2 per group x 2
    Model([conv(4, 1), Layer("flatten"), dense(3, 77)])                  # undecidable: accepted
    lstm = Layer("lstm", weights={"W_ih": np.zeros((8, 3), f), "W_hh": np.zeros((8, 2), f)})
    with pytest.raises(refcomp.ShapeError, match=r"'W' has shape \(4, 3\), expected \(4, 2\)"):
        Model([lstm, dense(4, 3)])
    m = Model([dense(5, 4), dense(3, 5)])
    with pytest.raises(refcomp.ShapeError, match="expected"):
        m.replace_weights({("1", "W"): np.zeros((3, 4), f)})
    with pytest.raises(refcomp.FormatError, match=r"'b' has shape \(4,\), expected \(3,\)"):
        m.replace_weights({("1", "b"): np.zeros(4, f)})
    # a valid model passes the static checks too (residual block with an index_map)
    rich = _rich_model()
    Model(rich.layers, input_shape=None)
    with pytest.raises(refcomp.ShapeError, match="index_map has 2 entries"):
        Model([rich.layers[1], Layer("residual", layers=[conv(3, 4)],
                                     weights={"index_map": np.array([0, 2], np.int64)})])


def test_io_submodules_lazy_after_plain_import():
    """``import refcomp`` imports no framework; refcomp.io.keras/.torch/.onnx load on access."""
    import subprocess
    import sys
    code = ("import sys, refcomp\n"
            "heavy = ('torch', 'onnx', 'onnxruntime', 'keras')\n"
            "assert not [m for m in heavy if m in sys.modules], 'framework imported'\n"
            "assert callable(refcomp.io.keras.load)\n"
            "assert callable(refcomp.io.torch.from_state_dict)\n"
            "assert not [m for m in heavy if m in sys.modules], 'framework imported'\n"
            "assert refcomp.io.onnx.__name__ == 'refcomp.io.onnx'\n"
            "assert 'keras' in dir(refcomp.io)\n"
            "try:\n"
            "    refcomp.io.no_such_module\n"
            "except AttributeError as exc:\n"
            "    assert 'no_such_module' in str(exc)\n"
            "else:\n"
            "    raise SystemExit('no AttributeError')\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
