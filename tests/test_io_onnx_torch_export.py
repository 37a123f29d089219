"""Real PyTorch models exported by both torch.onnx exporters, imported, checked against
ONNX Runtime within refcomp's derived bound (refcomp.testing.framework_bound).

TorchScript exporter (``dynamo=False``) and the default dynamo exporter (needs
onnxscript), dynamic batch axis, opset 17 and the dynamo default (18+).
"""

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from refcomp import FormatError  # noqa: E402
from refcomp.io import onnx as ronnx  # noqa: E402
from refcomp.testing.framework_bound import framework_error_bound  # noqa: E402


class _CNN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 4, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(4)
        self.pool = torch.nn.MaxPool2d(2)
        self.fc = torch.nn.Linear(4 * 4 * 4, 10)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(torch.relu(self.bn(self.conv(x)))), 1))


class _Seq(torch.nn.Module):
    def __init__(self, cls, batch_first, layers, bidirectional):
        super().__init__()
        self.rnn = cls(5, 6, num_layers=layers, batch_first=batch_first,
                       bidirectional=bidirectional)

    def forward(self, x):
        return self.rnn(x)[0]


RNNS = [("LSTM", True, 1, False), ("LSTM", False, 1, False), ("LSTM", True, 2, True),
        ("LSTM", False, 2, False), ("LSTM", False, 1, True),
        ("GRU", True, 1, False), ("GRU", False, 1, False), ("GRU", True, 2, True),
        ("GRU", False, 2, False), ("GRU", False, 1, True),
        ("RNN", False, 1, False), ("RNN", True, 2, True), ("RNN", False, 1, True)]


def _model(spec):
    torch.manual_seed(len(str(spec)))
    if spec == "cnn":
        m = _CNN()
        with torch.no_grad():             # non-trivial running statistics
            m.bn.running_mean.uniform_(-0.5, 0.5)
            m.bn.running_var.uniform_(0.5, 2.0)
        return m.eval(), (2, 1, 8, 8), 0
    cls, bf, layers, bi = spec
    m = _Seq(getattr(torch.nn, cls), bf, layers, bi).eval()
    return m, ((2, 7, 5) if bf else (7, 2, 5)), 0 if bf else 1


def _export(m, shape, batch_axis, dynamo, path):
    x = torch.randn(*shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            pytest.importorskip("onnxscript")
            prog = torch.onnx.export(m, (x,), dynamo=True, verbose=False,
                                     dynamic_shapes=({batch_axis: torch.export.Dim("batch")},))
            prog.save(str(path))
        else:
            torch.onnx.export(m, (x,), str(path), dynamo=False, input_names=["x"],
                              output_names=["y"], opset_version=17,
                              dynamic_axes={"x": {batch_axis: "N"}, "y": {batch_axis: "N"}})


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
@pytest.mark.parametrize("spec", ["cnn"] + RNNS, ids=lambda s: s if isinstance(s, str) else
                         f"{s[0]}-bf{int(s[1])}-l{s[2]}-bi{int(s[3])}")
def test_torch_export_round_trip(tmp_path, spec, dynamo):
    m, shape, batch_axis = _model(spec)
    path = tmp_path / "m.onnx"
    _export(m, shape, batch_axis, dynamo, path)
    model = ronnx.load(path)
    time_major = model.metadata["input_layout"] == "time_major"
    assert time_major == (batch_axis == 1)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3,) + model.input_shape).astype(np.float32)   # batch 3 != export
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    xo = x.transpose(1, 0, 2) if time_major else x
    want = sess.run(None, {sess.get_inputs()[0].name: xo})[0]
    got = model(x)
    bound = framework_error_bound(model, x)
    if model.metadata["output_layout"] == "time_major":
        got, bound = got.transpose(1, 0, 2), bound.transpose(1, 0, 2)
    assert got.shape == want.shape
    err = np.abs(got.astype(np.float64) - want)
    assert np.all(err <= bound), (err / bound).max()
    with torch.no_grad():               # and PyTorch itself, same bound
        tx = torch.from_numpy(xo)
        tw = m(tx).numpy()
    assert np.all(np.abs(tw.astype(np.float64) - got) <= bound)


def _match_onnxruntime_and_keras(keras, m, model, path, x):
    """The imported model within the derived bound of ONNX Runtime and of Keras itself."""
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    want = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    got = model(x)
    bound = framework_error_bound(model, x)
    assert np.all(np.abs(got.astype(np.float64) - want) <= bound)
    ref = keras.ops.convert_to_numpy(m.predict(x, verbose=0))
    assert np.all(np.abs(got.astype(np.float64) - ref) <= bound)


def test_keras_cnn_onnx_export_round_trip(tmp_path):
    """Keras 3 (torch backend) ``model.export(format="onnx")``: channels-last convolutions
    wrapped in Transpose pairs, identity Casts, the conv bias as a separate Add."""
    import os
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "torch":
        pytest.skip("keras was imported with another backend")
    keras.utils.set_random_seed(3)
    m = keras.Sequential([keras.Input((8, 8, 2)),
                          keras.layers.Conv2D(4, 3, padding="same", activation="relu"),
                          keras.layers.MaxPooling2D(2),
                          keras.layers.Conv2D(3, 3, strides=2, padding="valid"),
                          keras.layers.Flatten(), keras.layers.Dense(5)])
    x = np.random.default_rng(2).standard_normal((3, 8, 8, 2)).astype(np.float32)
    m(x)
    path = tmp_path / "k.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m.export(str(path), format="onnx", verbose=False)
    model = ronnx.load(path)
    assert [l.attrs.get("layout") for l in model.layers if l.kind == "conv2d"] == ["NHWC"] * 2
    _match_onnxruntime_and_keras(keras, m, model, path, x)


@pytest.mark.parametrize("case", ["conv", "sequence", "image"])
def test_keras_batchnorm_onnx_export_round_trip(tmp_path, case):
    """Keras 3 exports BatchNormalization decomposed, ``((x - mean) * s) + beta`` with
    ``s = gamma * rsqrt(var + eps)`` folded into one constant: imported as one batch_norm
    layer (gamma = s, var = 1, eps = 0), matched against ONNX Runtime and Keras within the
    derived bound, with non-trivial statistics."""
    import os
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "torch":
        pytest.skip("keras was imported with another backend")
    keras.utils.set_random_seed(5)
    BN, L = keras.layers.BatchNormalization, keras.layers
    m, shape = {
        "conv": (keras.Sequential([keras.Input((8, 8, 2)), L.Conv2D(4, 3, padding="same"), BN(),
                                   L.ReLU(), L.MaxPooling2D(2), L.Flatten(), L.Dense(5), BN()]),
                 (3, 8, 8, 2)),
        "sequence": (keras.Sequential([keras.Input((5, 4)), BN()]), (3, 5, 4)),
        "image": (keras.Sequential([keras.Input((6, 6, 3)), BN(epsilon=0.01)]), (3, 6, 6, 3)),
    }[case]
    rng = np.random.default_rng(6)
    x = rng.standard_normal(shape).astype(np.float32)
    m(x)
    for layer in m.layers:
        if isinstance(layer, BN):
            c = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 2, c).astype(np.float32),
                               rng.uniform(-1, 1, c).astype(np.float32),
                               rng.uniform(-.5, .5, c).astype(np.float32),
                               rng.uniform(.5, 2, c).astype(np.float32)])
    path = tmp_path / "k.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m.export(str(path), format="onnx", verbose=False)
    model = ronnx.load(path)
    bns = [layer for layer in model.layers if layer.kind == "batch_norm"]
    assert len(bns) == sum(isinstance(layer, BN) for layer in m.layers)
    assert all(np.array_equal(b.w("var"), np.ones_like(b.w("var"))) and b.attrs["eps"] == 0
               for b in bns)
    if case != "sequence":
        assert bns[0].attrs["layout"] == "NHWC"
    _match_onnxruntime_and_keras(keras, m, model, path, x)


def test_partial_decomposed_batchnorm_refused_by_name(tmp_path):
    from onnx import TensorProto, helper, numpy_helper
    nodes = [helper.make_node("Sub", ["x", "m"], ["d"], name="sub"),
             helper.make_node("Mul", ["d", "s"], ["y"], name="mul")]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                     ["N", 3])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                          [numpy_helper.from_array(np.ones(3, np.float32), "m"),
                           numpy_helper.from_array(np.ones(3, np.float32), "s")])
    import onnx
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    with pytest.raises(FormatError, match=r"incomplete decomposed batch normalisation"):
        ronnx.load(path)
    nodes[1] = helper.make_node("Mul", ["d", "s2"], ["y"], name="mul")
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                     ["N", 3])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                          [numpy_helper.from_array(np.ones(3, np.float32), "m"),
                           numpy_helper.from_array(np.ones(2, np.float32), "s2")])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    with pytest.raises(FormatError, match=r"node 'mul' \(op Mul\): the scale of shape \[2\]"):
        ronnx.load(path)
