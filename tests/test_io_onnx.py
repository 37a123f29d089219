"""ONNX import: the committed exports of the shipped models, hand-built graphs
checked against ONNX Runtime, and unsupported graphs."""

import re

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import h5py  # noqa: E402

import refcomp  # noqa: E402
from refcomp import convert  # noqa: E402
from refcomp._errors import FormatError  # noqa: E402
from refcomp.io import onnx as ro  # noqa: E402
from refcomp.testing import assert_bits_equal  # noqa: E402
from refcomp.testing.framework_bound import framework_error_bound  # noqa: E402

from _io_helpers import (DATA, G, MODELS, assert_same_model,  # noqa: E402
                         ulps_tolerance, xte)  # noqa: F401 (fixture)



@pytest.mark.parametrize("model", MODELS)
def test_import_equals_shipped_model_and_matches_onnxruntime(model, xte):
    m = ro.load(G / f"{model}.onnx")
    shipped = refcomp.load(DATA / f"{model}.h5")
    assert_same_model(m, shipped)
    y = m(xte)
    assert_bits_equal(y, shipped(xte))
    with h5py.File(G / f"{model}_outputs.h5", "r") as f:
        g = f["onnxruntime"][()]
    assert np.array_equal(np.argmax(y, 1), np.argmax(g, 1))
    assert np.max(np.abs(y - g)) <= ulps_tolerance(y)


@pytest.mark.parametrize("model,kind", [("digits_lstm", "LSTM"), ("digits_gru", "GRU")])
def test_onnx_layout_round_trip_bit_exact(model, kind):
    proto = onnx.load(str(G / f"{model}.onnx"))
    node = next(n for n in proto.graph.node if n.op_type == kind)
    inits = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
    W, R, B = (inits[node.input[i]] for i in (1, 2, 3))
    layer = ro.load(G / f"{model}.onnx").layers[0]
    ws = [layer.w(k) for k in ("W_ih", "W_hh", "b_ih", "b_hh")]
    back = convert.lstm_to_onnx(*ws) if kind == "LSTM" else convert.gru_to_onnx(*ws)
    for a, b in zip(back, (W, R, B)):
        assert_bits_equal(a, b)


# -- hand-built graphs --------------------------------------------------------------------
def _model(nodes, inits, in_shape, out_name="y", opset=17):
    g = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N"] + in_shape)],
        [helper.make_tensor_value_info(out_name, TensorProto.FLOAT, None)],
        [numpy_helper.from_array(v, k) for k, v in inits.items()])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


def _save(tmp_path, model, name="m.onnx"):
    p = tmp_path / name
    onnx.save(model, str(p))
    return p


def _ort(path, x):
    ort = pytest.importorskip("onnxruntime")
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    s = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return s.run(None, {"x": x})[0]


def test_matmul_add_avgpool_softmax_against_onnxruntime(tmp_path):
    rng = np.random.default_rng(1)
    f = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    inits = {"cw": f(3, 2, 3, 3), "cb": f(3), "mw": f(27, 5), "mb": f(5)}
    nodes = [
        helper.make_node("Conv", ["x", "cw", "cb"], ["c"], strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Tanh", ["c"], ["t"]),
        helper.make_node("AveragePool", ["t"], ["p"], kernel_shape=[2, 2], strides=[1, 1],
                         pads=[0, 0, 1, 1]),
        helper.make_node("Flatten", ["p"], ["fl"], axis=1),
        helper.make_node("MatMul", ["fl", "mw"], ["mm"]),
        helper.make_node("Add", ["mm", "mb"], ["a"]),
        helper.make_node("Sigmoid", ["a"], ["s"]),
        helper.make_node("Softmax", ["s"], ["y"], axis=-1),
    ]
    p = _save(tmp_path, _model(nodes, inits, [2, 6, 6]))
    m = ro.load(p)
    assert [l.kind for l in m.layers] == ["conv2d", "activation", "avg_pool2d", "flatten",
                                          "dense", "activation", "activation"]
    assert m.layers[2].attrs["count_include_pad"] is False      # ONNX default
    x = f(7, 2, 6, 6)
    # Tolerance: framework_error_bound derives, per output, twice the first-order
    # float32 error bound (gamma_{n+1} sum|w x| per dot product, one rounding per
    # elementwise op, exp/tanh/sigmoid within 4 ulps) propagated through the layers:
    # ONNX Runtime and refcomp each lie within half of it from the exact result.
    assert np.all(np.abs(m(x) - _ort(p, x)) <= framework_error_bound(m, x))


def test_gru_reset_before_against_onnxruntime(tmp_path):
    rng = np.random.default_rng(2)
    f = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    H, F = 4, 3
    inits = {"W": f(1, 3 * H, F), "R": f(1, 3 * H, H), "B": f(1, 6 * H),
             "perm_shape": np.array([-1, H], np.int64)}
    nodes = [
        helper.make_node("Transpose", ["x"], ["xt"], perm=[1, 0, 2]),
        helper.make_node("GRU", ["xt", "W", "R", "B"], ["Y", "Yh"], hidden_size=H,
                         linear_before_reset=0),
        helper.make_node("Squeeze", ["Yh", "ax0"], ["h"]),
        helper.make_node("Relu", ["h"], ["y"]),
    ]
    inits["ax0"] = np.array([0], np.int64)
    del inits["perm_shape"]
    p = _save(tmp_path, _model(nodes, inits, [5, F]))
    m = ro.load(p)
    assert m.layers[0].kind == "gru" and m.layers[0].attrs["reset_after"] is False
    x = f(6, 5, F)
    # tolerance: the derived float32 bound, see test_matmul_add_avgpool_softmax_...
    assert np.all(np.abs(m(x) - _ort(p, x)) <= framework_error_bound(m, x))


# -- unsupported graphs ------------------------------------------------------------------
def test_unsupported_op_names_node(tmp_path):
    nodes = [helper.make_node("LeakyRelu", ["x"], ["y"], name="leaky", alpha=0.1)]
    p = _save(tmp_path, _model(nodes, {}, [4]))
    with pytest.raises(FormatError, match=r"node 'leaky' \(op LeakyRelu\).*not supported"):
        ro.load(p)


def test_bidirectional_clip_activations_imported(tmp_path):
    # once refused; now imported with every attribute (checked against ORT in
    # tests/test_io_onnx_attributes.py)
    H, F = 2, 3
    z = np.zeros
    for attrs in ({"direction": "bidirectional"}, {"clip": 1.0},
                  {"activations": ["Sigmoid", "Relu", "Tanh"]}):
        d = 2 if attrs.get("direction") == "bidirectional" else 1
        inits = {"W": z((d, 4 * H, F), np.float32), "R": z((d, 4 * H, H), np.float32)}
        nodes = [helper.make_node("Transpose", ["x"], ["xt"], perm=[1, 0, 2]),
                 helper.make_node("LSTM", ["xt", "W", "R"], ["Y"], hidden_size=H,
                                  name="rnn", **attrs),
                 helper.make_node("Transpose", ["Y"], ["Yt"], perm=[2, 0, 1, 3]),
                 helper.make_node("Reshape", ["Yt", "shape"], ["y"])]
        inits["shape"] = np.array([0, 0, -1], np.int64)
        m = ro.load(_save(tmp_path, _model(nodes, inits, [5, F])))
        assert m.layers[-1].kind == "lstm"
        assert m.output_shapes()[-1] == (5, d * H)


def test_non_identity_add_and_gemm_options_rejected(tmp_path):
    w = np.ones((4, 4), np.float32)
    nodes = [helper.make_node("Gemm", ["x", "w"], ["a"], transB=1),
             helper.make_node("Gemm", ["x", "w"], ["b"], transB=1),
             helper.make_node("Add", ["a", "b"], ["y"], name="join")]
    with pytest.raises(FormatError, match="identity"):
        ro.load(_save(tmp_path, _model(nodes, {"w": w}, [4])))
    nodes = [helper.make_node("Gemm", ["x", "w"], ["y"], transA=1, name="g")]
    with pytest.raises(FormatError, match=r"'g' \(op Gemm\).*transA=1"):
        ro.load(_save(tmp_path, _model(nodes, {"w": w}, [4])))


def test_truncated_file_and_cli_writes_nothing(tmp_path):
    from refcomp.cli import main
    data = (G / "digits_cnn.onnx").read_bytes()
    bad = tmp_path / "t.onnx"
    bad.write_bytes(data[:5000])
    with pytest.raises(FormatError, match="not a readable ONNX file"):
        ro.load(bad)
    out = tmp_path / "out.h5"
    assert main(["convert", str(bad), str(out)]) == 1
    assert not out.exists()
    assert main(["convert", str(G / "digits_resnet.onnx"), str(out)]) == 0
    assert refcomp.load(out).name == "digits_resnet"


def test_fixed_batch_export(tmp_path):
    torch = pytest.importorskip("torch")
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3))

    class Wrap(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, x):
            return torch.relu(self.net(x.reshape(4, 2, 6)))
    p = tmp_path / "fixed.onnx"
    torch.onnx.export(Wrap(), (torch.zeros(4, 12),), str(p), dynamo=False,
                      input_names=["x"], output_names=["y"], opset_version=17)
    m = ro.load(p)
    x = np.random.default_rng(3).standard_normal((4, 12)).astype(np.float32)
    with torch.no_grad():
        ref = Wrap()(torch.from_numpy(x)).numpy()
    # tolerance: the derived float32 bound (torch vs refcomp), see
    # test_matmul_add_avgpool_softmax_against_onnxruntime
    assert np.all(np.abs(m(x) - ref) <= framework_error_bound(m, x))


def test_malformed_node_is_format_error(tmp_path):
    nodes = [helper.make_node("MaxPool", ["x"], ["y"], name="pool")]     # no kernel_shape
    with pytest.raises(FormatError, match=r"'pool' \(op MaxPool\): malformed"):
        ro.load(_save(tmp_path, _model(nodes, {}, [1, 4, 4])))
    w = np.ones((3, 4), np.float32)                                      # (out, in) = (3, 4)
    nodes = [helper.make_node("Gemm", ["x", "w"], ["y"], name="g")]      # transB=0: needs (in, out)
    with pytest.raises(FormatError, match="does not fit|features"):
        ro.load(_save(tmp_path, _model(nodes, {"w": w}, [4])))


# -- torch exports of stacked recurrent layers and y[:, -1] ------------------------------
def _export_rnn(tmp_path, name, cell, layers, head, fc_in=4):
    torch = pytest.importorskip("torch")
    torch.manual_seed(7)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = getattr(torch.nn, cell)(3, 4, num_layers=layers, batch_first=True)
            self.fc = torch.nn.Linear(fc_in, 2)

        def forward(self, x):
            y, _ = self.rnn(x)
            return self.fc(head(y))
    p = tmp_path / f"{name}.onnx"
    torch.onnx.export(Net().eval(), (torch.zeros(2, 5, 3),), str(p), dynamo=False,
                      input_names=["x"], output_names=["y"], opset_version=17,
                      dynamic_axes={"x": {0: "N"}, "y": {0: "N"}})
    return p


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
@pytest.mark.parametrize("layers", [1, 2, 3])
def test_stacked_rnn_and_last_step_against_onnxruntime(tmp_path, cell, layers):
    p = _export_rnn(tmp_path, f"{cell}{layers}", cell, layers, lambda y: y[:, -1])
    m = ro.load(p)
    kind = cell.lower()
    assert [(l.kind, l.attrs.get("return_sequences")) for l in m.layers] == \
        [(kind, True)] * (layers - 1) + [(kind, False), ("dense", None)]
    x = np.random.default_rng(4).standard_normal((6, 5, 3)).astype(np.float32)
    # tolerance: the derived float32 bound through the stacked recurrent layers
    # (see test_matmul_add_avgpool_softmax_against_onnxruntime)
    assert np.all(np.abs(m(x) - _ort(p, x)) <= framework_error_bound(m, x))


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("head,fc_in,op,why", [
    (lambda y: y[:, 2], 4, "Gather", r"axis 1, indices 2\) is not supported.*y\[:, -1\]"),
    (lambda y: y[:, :, 0], 5, "Gather", r"axis 2, indices 0\) is not supported"),
    (lambda y: y[:, -2:].reshape(-1, 8), 8, "Slice", "Slice of an activation tensor of "
                                                     r"per-sample shape \(5, 4\) is not supported"),
    (lambda y: y.relu()[:, -1], 4, "Gather", "only the last time step"),
], ids=["middle-step", "feature", "slice", "not-after-rnn"])
def test_unsupported_sequence_indexing_names_node_and_reason(tmp_path, head, fc_in, op, why):
    p = _export_rnn(tmp_path, "bad", "LSTM", 1, head, fc_in)
    with pytest.raises(FormatError) as e:
        ro.load(p)
    msg = str(e.value)
    assert re.search(rf"node '[^']*' \(op {op}\): ", msg), msg
    assert re.search(why, msg), msg
    assert "data must be a constant" not in msg


def test_dynamic_input_to_constant_op_names_what_it_is(tmp_path):
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="act"),
             helper.make_node("Concat", ["r", "r"], ["y"], name="cat", axis=1)]
    p = _save(tmp_path, _model(nodes, {}, [4]))
    with pytest.raises(FormatError, match=r"node 'cat' \(op Concat\): input \('r'\) must be a "
                                          r"constant .* but is an activation tensor of per-sample "
                                          r"shape \(4,\).*Concat only on constants"):
        ro.load(p)
    # Unsqueeze of a feature axis is a pure layout change (a reshape layer); of the batch
    # axis it is refused with its axes
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="act"),
             helper.make_node("Unsqueeze", ["r", "ax"], ["y"], name="unsq")]
    m = ro.load(_save(tmp_path, _model(nodes, {"ax": np.array([1], np.int64)}, [4])))
    assert m.output_shapes()[-1] == (1, 4)
    p = _save(tmp_path, _model(nodes, {"ax": np.array([0], np.int64)}, [4]))
    with pytest.raises(FormatError, match=r"node 'unsq' \(op Unsqueeze\): Unsqueeze axes=\[0\]"):
        ro.load(p)
