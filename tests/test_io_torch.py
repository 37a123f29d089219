"""PyTorch import: state dict + spec (works without torch on ndarray dicts) and
nn.Sequential (needs torch)."""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import refcomp
from refcomp._errors import FormatError
from refcomp.data import default_data_dir, load_split
from refcomp.io.torch import from_sequential, from_state_dict, to_state_dict
from refcomp.testing import assert_bits_equal
from refcomp.testing.framework_bound import framework_error_bound

from _io_helpers import assert_same_model

DATA = default_data_dir()

SPECS = {
    "digits_mlp": ["flatten", {"kind": "dense", "key": "1"}, "relu",
                   {"kind": "dense", "key": "3"}, "relu", {"kind": "dense", "key": "5"}],
    "digits_cnn": [{"kind": "reshape", "shape": [1, 8, 8]}, {"kind": "conv2d", "key": "1"},
                   "relu", {"kind": "conv2d", "key": "3"}, "relu",
                   {"kind": "max_pool2d", "size": 2}, "flatten",
                   {"kind": "dense", "key": "7"}, "relu", {"kind": "dense", "key": "9"}],
    "digits_lstm": [{"kind": "lstm", "key": "rnn", "return_sequences": False},
                    {"kind": "dense", "key": "fc"}],
    "digits_gru": [{"kind": "gru", "key": "rnn", "return_sequences": False},
                   {"kind": "dense", "key": "fc"}],
}


@pytest.mark.parametrize("model", sorted(SPECS))
def test_state_dict_round_trip_shipped(model):
    shipped = refcomp.load(DATA / f"{model}.h5")
    sd = to_state_dict(shipped)
    m = from_state_dict(sd, SPECS[model], input_shape=(8, 8), name=model)
    assert_same_model(m, shipped)
    x = load_split("test")[0][:40]
    assert_bits_equal(m(x), shipped(x))


def test_residual_spec_and_to_state_dict_names():
    shipped = refcomp.load(DATA / "digits_resnet.h5")
    sd = to_state_dict(shipped)
    # shipped layer names mirror the PyTorch module paths of data/build.py
    assert sorted(sd) == sorted(["1.weight", "1.bias", "9.weight", "9.bias"] + [
        f"{b}.body.{c}.{w}" for b in (3, 5) for c in (0, 2) for w in ("weight", "bias")])
    spec = [{"kind": "reshape", "shape": [1, 8, 8]}, {"kind": "conv2d", "key": "1", "padding": 1},
            "relu"]
    for key in ("3", "5"):
        spec += [{"kind": "residual", "key": key, "layers": [
            {"kind": "conv2d", "key": "body.0", "padding": 1}, "relu",
            {"kind": "conv2d", "key": "body.2", "padding": 1}]}, "relu"]
    spec += [{"kind": "max_pool2d", "size": 2}, "flatten", {"kind": "dense", "key": "9"}]
    assert_same_model(from_state_dict(sd, spec, input_shape=(8, 8)), shipped)


def _lstm_sd():
    return to_state_dict(refcomp.load(DATA / "digits_lstm.h5"))


def test_missing_tensor():
    sd = _lstm_sd()
    del sd["rnn.weight_hh_l0"]
    with pytest.raises(FormatError, match="no tensor 'rnn.weight_hh_l0'"):
        from_state_dict(sd, SPECS["digits_lstm"], input_shape=(8, 8))


def _mlp_sd():
    return to_state_dict(refcomp.load(DATA / "digits_mlp.h5"))


def _cnn_sd():
    return to_state_dict(refcomp.load(DATA / "digits_cnn.h5"))


def _cut(a, sl):
    return np.ascontiguousarray(a[sl])


# Mis-shaped tensors: (model, tensor, edit, message pattern).  Each is rejected with
# and without an input shape: the checks within a layer (bias vs weight rows, gate
# blocks of W_ih / W_hh / biases) and between layers (dense after dense or LSTM, conv
# after conv) need no input shape.  The message names the tensor, its shape and the
# expected shape.
MISSHAPED = [
    ("digits_mlp", "1.bias", lambda a: a[:5],
     r"'1\.bias' has shape \(5,\), expected \(128,\)"),
    ("digits_mlp", "3.weight", lambda a: _cut(a, np.s_[:, :100]),
     r"'3\.weight' has shape \(64, 100\), expected \(64, 128\).*layer 1 \(dense '1'\)"),
    ("digits_lstm", "rnn.weight_ih_l0", lambda a: a[:-1],
     r"'rnn\.weight_ih_l0' has shape \(255, 8\), expected \(256, 8\)"),
    ("digits_lstm", "rnn.weight_hh_l0", lambda a: a[:-1],
     r"'rnn\.weight_hh_l0' has shape \(255, 64\), expected \(256, 64\)"),
    ("digits_lstm", "fc.weight", lambda a: np.ascontiguousarray(a.T),    # Keras (in, out)
     r"'fc\.bias' has shape \(10,\), expected \(64,\).*'fc\.weight' \(64, 10\).*transposed"),
    ("digits_lstm", "rnn.bias_hh_l0", lambda a: a[:3],
     r"'rnn\.bias_hh_l0' has shape \(3,\), expected \(256,\)"),
    ("digits_lstm", "fc.weight", lambda a: _cut(a, np.s_[:, :32]),
     r"'fc\.weight' has shape \(10, 32\), expected \(10, 64\).*lstm 'rnn'"),
    ("digits_gru", "rnn.bias_ih_l0", lambda a: a[:128],
     r"'rnn\.bias_ih_l0' has shape \(128,\), expected \(192,\)"),
    ("digits_cnn", "3.weight", lambda a: _cut(a, np.s_[:, :16]),
     r"'3\.weight' has shape \(64, 16, 3, 3\), expected \(64, 32, 3, 3\)"),
    ("digits_cnn", "1.bias", lambda a: a[:31],
     r"'1\.bias' has shape \(31,\), expected \(32,\)"),
    ("digits_cnn", "9.weight", lambda a: _cut(a, np.s_[:, :100]),
     r"'9\.weight' has shape \(10, 100\), expected \(10, 128\)"),
]


def _bad_sd(model, tensor, edit):
    sd = to_state_dict(refcomp.load(DATA / f"{model}.h5"))
    sd[tensor] = edit(sd[tensor])
    return sd


@pytest.mark.parametrize("input_shape", [None, (8, 8)])
@pytest.mark.parametrize("model,tensor,edit,match", MISSHAPED,
                         ids=[f"{m}-{t}-{i}" for i, (m, t, _, _) in enumerate(MISSHAPED)])
def test_misshaped_tensor(model, tensor, edit, match, input_shape):
    sd = _bad_sd(model, tensor, edit)
    before = {k: v.copy() for k, v in sd.items()}
    with pytest.raises(FormatError, match=match):
        from_state_dict(sd, SPECS[model], input_shape=input_shape)
    for k, v in before.items():                       # the reader never modifies its input
        assert_bits_equal(sd[k], v)


def test_misshaped_batch_norm_and_residual():
    rng = np.random.default_rng(0)
    f = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    spec = [{"kind": "conv2d", "key": "c"}, {"kind": "batch_norm", "key": "bn"}, "relu",
            {"kind": "residual", "key": "r", "layers": [{"kind": "conv2d", "key": "body"}]}]
    good = {"c.weight": f(4, 2, 3, 3), "c.bias": f(4), "bn.weight": f(4), "bn.bias": f(4),
            "bn.running_mean": f(4), "bn.running_var": np.ones(4, np.float32),
            "r.body.weight": f(4, 4, 1, 1), "r.body.bias": f(4)}
    from_state_dict(good, spec)
    sd = dict(good, **{"bn.running_var": np.ones(3, np.float32)})
    with pytest.raises(FormatError, match=r"'bn\.running_var' has shape \(3,\), expected "
                                          r"\(4,\).*'bn\.weight' \(4,\)"):
        from_state_dict(sd, spec)
    sd = dict(good, **{"bn.weight": f(5), "bn.bias": f(5), "bn.running_mean": f(5),
                       "bn.running_var": f(5)})
    with pytest.raises(FormatError, match=r"'bn\.weight' has shape \(5,\), expected \(4,\)"):
        from_state_dict(sd, spec)
    sd = dict(good, **{"r.body.weight": f(3, 4, 1, 1), "r.body.bias": f(3)})
    with pytest.raises(FormatError, match="block ends with 3 channels.*shortcut carries 4"):
        from_state_dict(sd, spec)


def test_misshaped_hdf5_model_rejected_on_load(tmp_path):
    """refcomp.load checks the same shapes (no input_shape stored)."""
    import h5py
    m = refcomp.load(DATA / "digits_mlp.h5")
    p = tmp_path / "m.h5"
    refcomp.save(refcomp.Model(m.layers, name="m"), p)
    with h5py.File(p, "r+") as f:
        b = f["layers/0001/weights/b"][()]
        del f["layers/0001/weights/b"]
        f["layers/0001/weights"].create_dataset("b", data=b[:5]).attrs["encoding"] = "raw"
    with pytest.raises(FormatError, match=r"weight 'b' has shape \(5,\), expected \(128,\)"):
        refcomp.load(p)


def test_unused_and_non_float_tensors_and_bad_spec():
    sd = _lstm_sd()
    sd["extra.weight"] = np.zeros(3, np.float32)
    sd["bn.num_batches_tracked"] = np.zeros((), np.int64)     # ignored, as in PyTorch
    with pytest.raises(FormatError, match=r"not used by the spec: \['extra.weight'\]"):
        from_state_dict(sd, SPECS["digits_lstm"])
    sd = _lstm_sd()
    sd["fc.bias"] = sd["fc.bias"].astype(np.float16)
    with pytest.raises(FormatError, match="float16"):
        from_state_dict(sd, SPECS["digits_lstm"])
    with pytest.raises(FormatError, match="unknown layer kind"):
        from_state_dict(_lstm_sd(), [{"kind": "transformer", "key": "rnn"}])
    with pytest.raises(FormatError, match="needs 'key'"):
        from_state_dict(_lstm_sd(), [{"kind": "lstm"}])
    with pytest.raises(FormatError, match="mapping"):
        from_state_dict([1, 2], [])


# -- with torch -------------------------------------------------------------------------
def test_from_sequential_matches_torch():
    torch = pytest.importorskip("torch")
    nn = torch.nn
    torch.manual_seed(0)
    net = nn.Sequential(nn.Unflatten(1, (2, 6, 6)), nn.Conv2d(2, 4, 3, padding=1, stride=2),
                        nn.BatchNorm2d(4), nn.Tanh(),
                        nn.Sequential(nn.MaxPool2d(2, stride=1), nn.AvgPool2d(2, padding=1)),
                        nn.Flatten(), nn.Dropout(0.2), nn.Linear(16, 5), nn.Sigmoid(),
                        nn.Identity(), nn.Softmax(dim=1)).eval()
    with torch.no_grad():
        net[2].running_mean.uniform_(-1, 1)
        net[2].running_var.uniform_(0.5, 2)
    m = from_sequential(net, input_shape=(72,))
    x = np.random.default_rng(0).standard_normal((9, 72)).astype(np.float32)
    with torch.no_grad():
        ref = net(torch.from_numpy(x)).numpy()
    # Tolerance: framework_error_bound derives, per output, twice the first-order
    # float32 error bound (gamma_{n+1} sum|w x| per dot product, one rounding per
    # elementwise op, exp/tanh/sigmoid within 4 ulps) propagated through the layers:
    # torch and refcomp each lie within half of it from the exact result.
    assert np.all(np.abs(m(x) - ref) <= framework_error_bound(m, x))
    assert_bits_equal(m.layers[1].w("W"), net[1].weight.detach().numpy())


def test_from_sequential_rejects_unsupported_module():
    torch = pytest.importorskip("torch")
    net = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.GELU())
    with pytest.raises(FormatError, match="class GELU"):
        from_sequential(net)
    with pytest.raises(FormatError, match="Sequential"):
        from_sequential(torch.nn.Linear(4, 4))


def test_bfloat16_tensor_rejected():
    torch = pytest.importorskip("torch")
    sd = {"a.weight": torch.zeros(3, 3, dtype=torch.bfloat16)}
    with pytest.raises(FormatError, match="bfloat16"):
        from_state_dict(sd, [{"kind": "dense", "key": "a"}])


def test_cli_convert_state_dict(tmp_path):
    torch = pytest.importorskip("torch")
    from refcomp.cli import main
    sd = {k: torch.from_numpy(v) for k, v in _lstm_sd().items()}
    torch.save(sd, tmp_path / "m.pt")
    (tmp_path / "spec.json").write_text(json.dumps(SPECS["digits_lstm"]))
    out = tmp_path / "out.h5"
    assert main(["convert", str(tmp_path / "m.pt"), str(out), "--spec",
                 str(tmp_path / "spec.json"), "--input-shape", "8,8"]) == 0
    assert_same_model(refcomp.load(out), refcomp.load(DATA / "digits_lstm.h5"))
    del sd["fc.bias"]
    sd["fc.weight"] = sd["fc.weight"][:, :3]
    torch.save(sd, tmp_path / "bad.pt")
    out2 = tmp_path / "out2.h5"
    assert main(["convert", str(tmp_path / "bad.pt"), str(out2), "--spec",
                 str(tmp_path / "spec.json"), "--input-shape", "8,8"]) == 1
    assert not out2.exists()


@pytest.mark.parametrize("model,tensor,edit,match", MISSHAPED,
                         ids=[f"{m}-{t}-{i}" for i, (m, t, _, _) in enumerate(MISSHAPED)])
def test_cli_convert_misshaped_state_dict_without_input_shape(model, tensor, edit, match,
                                                              tmp_path, capsys):
    torch = pytest.importorskip("torch")
    from refcomp.cli import main
    sd = {k: torch.from_numpy(v) for k, v in _bad_sd(model, tensor, edit).items()}
    torch.save(sd, tmp_path / "bad.pt")
    (tmp_path / "spec.json").write_text(json.dumps(SPECS[model]))
    out = tmp_path / "out.h5"
    capsys.readouterr()
    rc = main(["convert", str(tmp_path / "bad.pt"), str(out),
               "--spec", str(tmp_path / "spec.json")])
    err = capsys.readouterr().err
    assert rc == 1
    assert len(err.splitlines()) == 1 and err.startswith("refcomp: error: ")
    assert re.search(match, err), err
    assert not out.exists()
    assert sorted(os.listdir(tmp_path)) == ["bad.pt", "spec.json"]      # no temporary left


def test_cli_console_script_misshaped_state_dict(tmp_path):
    """The real process: exit status 1, one line on stderr, no output file."""
    torch = pytest.importorskip("torch")
    sd = {k: torch.from_numpy(v) for k, v in
          _bad_sd("digits_mlp", "1.bias", lambda a: a[:5]).items()}
    torch.save(sd, tmp_path / "bad.pt")
    (tmp_path / "spec.json").write_text(json.dumps(SPECS["digits_mlp"]))
    out = tmp_path / "out.h5"
    r = subprocess.run([sys.executable, "-m", "refcomp", "convert", str(tmp_path / "bad.pt"),
                        str(out), "--spec", str(tmp_path / "spec.json")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 1
    assert r.stderr.splitlines() == [r.stderr.strip()] and "'1.bias' has shape (5,)" in r.stderr
    assert "expected (128,)" in r.stderr
    assert not out.exists()
