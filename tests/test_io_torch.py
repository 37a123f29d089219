"""PyTorch import: state dict + spec (works without torch on ndarray dicts) and
nn.Sequential (needs torch)."""

import json

import numpy as np
import pytest

import refcomp
from refcomp._errors import FormatError
from refcomp.data import default_data_dir, load_split
from refcomp.io.torch import from_sequential, from_state_dict, to_state_dict
from refcomp.testing import assert_bits_equal

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


def test_misshaped_tensor():
    sd = _lstm_sd()
    sd["fc.weight"] = np.ascontiguousarray(sd["fc.weight"].T)     # (in, out): Keras layout
    with pytest.raises(FormatError, match="does not fit"):
        from_state_dict(sd, SPECS["digits_lstm"], input_shape=(8, 8))
    sd = _lstm_sd()
    sd["rnn.weight_ih_l0"] = sd["rnn.weight_ih_l0"][:-1]
    with pytest.raises(FormatError):
        from_state_dict(sd, SPECS["digits_lstm"], input_shape=(8, 8))


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
    np.testing.assert_allclose(m(x), ref, rtol=1e-5, atol=1e-6)
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
