"""ONNX import of every attribute of the supported operators, against ONNX Runtime, and
the refusals (FormatError naming the node, the operator and the attribute with its value).

Tolerances: refcomp's derived bound (refcomp.testing.framework_bound), which covers
every layer here including the recurrent options (direction, clip, peepholes,
input_forget, activation lists with alpha / beta, linear_before_reset).  The recurrent
attributes are also compared with a float32 tolerance (rtol 1e-5, atol 1e-6: a few float32
ulps of ORT's own float32 arithmetic), tighter than the bound and enough to tell every
semantic alternative apart (e.g. clipping the cell before h, f = 1 - i, which activation
takes which alpha).  A few single-layer checks use a fixed tolerance of about 1e-6.
"""

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from refcomp import FormatError  # noqa: E402
from refcomp.io import onnx as ro  # noqa: E402
from refcomp.testing.framework_bound import framework_error_bound  # noqa: E402


def _graph(nodes, inits, in_shape, *, opset=17, inputs_with_inits=False, batch_dim=0):
    shape = list(in_shape)
    shape.insert(batch_dim, "N")
    ins = [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)]
    if inputs_with_inits:          # weights listed as graph inputs too (older exporters)
        ins += [helper.make_tensor_value_info(k, helper.np_dtype_to_tensor_dtype(v.dtype),
                                              list(v.shape)) for k, v in inits.items()]
    g = helper.make_graph(nodes, "g", ins,
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                          [numpy_helper.from_array(v, k) for k, v in inits.items()])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


def _save(tmp_path, model, name="m.onnx"):
    p = tmp_path / name
    onnx.save(model, str(p))
    return p


def _ort(path, x):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    s = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return s.run(None, {"x": x})[0]


def _f(rng, *s):
    return rng.standard_normal(s).astype(np.float32)


# -- recurrent attributes ------------------------------------------------------------------
RECURRENT = [
    ("LSTM", {"direction": "reverse"}),
    ("LSTM", {"direction": "bidirectional"}),
    ("LSTM", {"clip": 0.7}),
    ("LSTM", {"input_forget": 1}),
    ("LSTM", {"peepholes": True}),
    ("LSTM", {"activations": ["HardSigmoid", "LeakyRelu", "ScaledTanh"],
              "activation_alpha": [0.3, 0.05, 1.5], "activation_beta": [0.45, 0.8]}),
    ("LSTM", {"direction": "bidirectional", "peepholes": True, "clip": 2.0}),
    ("GRU", {"linear_before_reset": 1, "direction": "reverse"}),
    ("GRU", {"linear_before_reset": 0, "direction": "bidirectional", "clip": 1.0}),
    ("GRU", {"activations": ["Sigmoid", "Softsign"]}),
    ("RNN", {"activations": ["Relu"]}),
    ("RNN", {"direction": "bidirectional", "activations": ["Tanh", "Affine"],
             "activation_alpha": [0.5], "activation_beta": [0.1]}),
    ("RNN", {"activations": ["Elu"], "activation_alpha": [0.7]}),
]


@pytest.mark.parametrize("op,attrs", RECURRENT, ids=lambda v: str(v) if isinstance(v, str)
                         else "-".join(f"{k}" for k in v))
def test_recurrent_attributes_against_onnxruntime(tmp_path, op, attrs):
    # layout=0 only: ONNX Runtime refuses layout=1 ("Batchwise recurrent operations are not
    # supported"); layout=1 is checked by the node-case gate (test_onnx_node_gate.py)
    layout = 0
    rng = np.random.default_rng(len(str(attrs)) + layout)
    H, F, T = 3, 4, 5
    attrs = dict(attrs)
    peep = attrs.pop("peepholes", False)
    d = 2 if attrs.get("direction") == "bidirectional" else 1
    G = {"LSTM": 4, "GRU": 3, "RNN": 1}[op]
    inits = {"W": _f(rng, d, G * H, F), "R": _f(rng, d, G * H, H), "B": _f(rng, d, 2 * G * H)}
    ins = ["xs" if layout == 0 else "x", "W", "R", "B"]
    if peep:
        inits["P"] = _f(rng, d, 3 * H)
        ins += ["", "", "", "P"]
    nodes = []
    if layout == 0:                # x is batch-first here; the graph makes it time-major
        nodes.append(helper.make_node("Transpose", ["x"], ["xs"], perm=[1, 0, 2]))
    nodes.append(helper.make_node(op, ins, ["Y"], hidden_size=H, layout=layout, name="rnn",
                                  **attrs))
    # Y -> (N, T, D*H) batch-first as PyTorch's exporters reshape it
    perm = [2, 0, 1, 3] if layout == 0 else [0, 1, 2, 3]
    nodes += [helper.make_node("Transpose", ["Y"], ["Yt"], perm=perm),
              helper.make_node("Reshape", ["Yt", "shape"], ["y"])]
    inits["shape"] = np.array([0, 0, -1], np.int64)
    p = _save(tmp_path, _graph(nodes, inits, [T, F]))
    m = ro.load(p)
    x = _f(rng, 2, T, F)
    got, want = m(x), _ort(p, x)
    assert got.shape == want.shape == (2, T, d * H)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert np.all(np.abs(got - want) <= framework_error_bound(m, x))


def test_time_major_graph_input_with_weights_as_graph_inputs(tmp_path):
    rng = np.random.default_rng(3)
    H, F, T = 4, 3, 6
    inits = {"W": _f(rng, 1, 4 * H, F), "R": _f(rng, 1, 4 * H, H), "B": _f(rng, 1, 8 * H),
             "ax": np.array([1], np.int64)}
    nodes = [helper.make_node("LSTM", ["x", "W", "R", "B"], ["Y"], hidden_size=H),
             helper.make_node("Squeeze", ["Y", "ax"], ["y"])]
    p = _save(tmp_path, _graph(nodes, inits, [T, F], batch_dim=1, inputs_with_inits=True))
    m = ro.load(p)
    assert m.metadata["input_layout"] == "time_major" == m.metadata["output_layout"]
    x = _f(rng, 5, T, F)                                  # batch-first for the Model
    want = _ort(p, np.ascontiguousarray(x.transpose(1, 0, 2)))
    got = m(x).transpose(1, 0, 2)
    assert np.all(np.abs(got - want) <= framework_error_bound(m, x).transpose(1, 0, 2))


# -- layer attributes, opsets, constants -------------------------------------------------------
@pytest.mark.parametrize("opset", range(13, onnx.defs.onnx_opset_version() + 1))
def test_conv_pool_gemm_softmax_every_opset(tmp_path, opset):
    rng = np.random.default_rng(opset)
    c_w = numpy_helper.from_array(_f(rng, 4, 2, 3, 3), "cw")
    nodes = [
        helper.make_node("Constant", [], ["cw"], value=c_w),          # weight as a Constant
        helper.make_node("Conv", ["x", "cw"], ["c"], auto_pad="SAME_LOWER", strides=[2, 2]),
        helper.make_node("MaxPool", ["c"], ["p", "idx"], kernel_shape=[2, 2], ceil_mode=1,
                         strides=[2, 2]),
        helper.make_node("AveragePool", ["p"], ["a"], kernel_shape=[2, 2], pads=[1, 1, 0, 0],
                         count_include_pad=1, ceil_mode=1, strides=[2, 2]),
        helper.make_node("Flatten", ["a"], ["f"], axis=-3),
        helper.make_node("Gemm", ["f", "gw", "gb"], ["g"], transB=1),
        helper.make_node("Softmax", ["g"], ["y"], axis=-1),
    ]
    inits = {"gw": _f(rng, 5, 24), "gb": np.array(0.25, np.float32)}
    model = _graph(nodes, inits, [2, 13, 11], opset=opset)
    try:
        p = _save(tmp_path, model)
        want = _ort(p, _f(np.random.default_rng(0), 3, 2, 13, 11))
    except Exception as exc:              # noqa: BLE001 - ORT without this opset
        pytest.skip(f"onnxruntime cannot run opset {opset}: {type(exc).__name__}")
    m = ro.load(p)
    assert m.metadata["opset"] == opset
    x = _f(np.random.default_rng(0), 3, 2, 13, 11)
    assert np.all(np.abs(m(x) - want) <= framework_error_bound(m, x))


def test_gemm_alpha_beta_and_scalar_bias(tmp_path):
    rng = np.random.default_rng(5)
    for bias in (np.array([0.5], np.float32), np.array(-1.5, np.float32), _f(rng, 1, 6)):
        nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["y"], alpha=0.75, beta=1.25)]
        p = _save(tmp_path, _graph(nodes, {"w": _f(rng, 4, 6), "b": bias}, [4]))
        m = ro.load(p)
        x = _f(rng, 3, 4)
        np.testing.assert_allclose(m(x), _ort(p, x), rtol=1e-6, atol=1e-6)


def test_softmax_axis_0_and_hardsigmoid_logsoftmax(tmp_path):
    rng = np.random.default_rng(6)
    nodes = [helper.make_node("HardSigmoid", ["x"], ["h"], alpha=0.3, beta=0.4),
             helper.make_node("LogSoftmax", ["h"], ["l"], axis=1),
             helper.make_node("Softmax", ["l"], ["y"], axis=0)]
    p = _save(tmp_path, _graph(nodes, {}, [5]))
    m = ro.load(p)
    x = _f(rng, 4, 5)
    np.testing.assert_allclose(m(x), _ort(p, x), rtol=1e-6, atol=1e-7)
    assert m.output_shapes() == [(5,), (5,), (5,)]        # the zero-batch pass works


def test_one_and_three_dim_pooling_and_conv1d(tmp_path):
    rng = np.random.default_rng(7)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 2], dilations=[2]),
             helper.make_node("MaxPool", ["c"], ["y"], kernel_shape=[3], dilations=[2],
                              ceil_mode=1, strides=[2])]
    p = _save(tmp_path, _graph(nodes, {"w": _f(rng, 3, 2, 3)}, [2, 17]))
    m = ro.load(p)
    x = _f(rng, 2, 2, 17)
    np.testing.assert_allclose(m(x), _ort(p, x), rtol=1e-6, atol=1e-6)
    nodes = [helper.make_node("AveragePool", ["x"], ["y"], kernel_shape=[2, 3, 2],
                              pads=[1, 0, 1, 0, 1, 1], strides=[2, 2, 1], ceil_mode=1)]
    p = _save(tmp_path, _graph(nodes, {}, [2, 5, 6, 4]))
    m = ro.load(p)
    x = _f(rng, 2, 2, 5, 6, 4)
    np.testing.assert_allclose(m(x), _ort(p, x), rtol=1e-6, atol=1e-7)


# -- refusals ------------------------------------------------------------------------------
BAD = [
    (lambda: helper.make_node("MaxPool", ["x"], ["y"], name="n", kernel_shape=[2, 2],
                              ceil_mode=2), "ceil_mode=2"),
    (lambda: helper.make_node("MaxPool", ["x"], ["y"], name="n", kernel_shape=[2, 2],
                              dilations=[-1, 1]), r"dilations=\[-1, 1\]"),
    (lambda: helper.make_node("AveragePool", ["x"], ["y"], name="n", kernel_shape=[2, 2],
                              auto_pad="SAME_MIDDLE"), "auto_pad='SAME_MIDDLE'"),
    (lambda: helper.make_node("Flatten", ["x"], ["y"], name="n", axis=0), "axis=0"),
    (lambda: helper.make_node("BatchNormalization", ["x", "s", "s", "s", "s"], ["y"], name="n",
                              training_mode=1), "training_mode=1"),
    (lambda: helper.make_node("Softmax", ["x"], ["y"], name="n", axis=7), "axis=7"),
    (lambda: helper.make_node("Conv", ["x", "w3"], ["y"], name="n"), r"3-D convolution"),
]


@pytest.mark.parametrize("make,word", BAD, ids=[w for _, w in BAD])
def test_bad_attributes_name_node_op_and_value(tmp_path, make, word):
    node = make()
    inits = {"s": np.ones(2, np.float32), "w3": np.ones((1, 2, 1, 1, 1), np.float32)}
    p = _save(tmp_path, _graph([node], inits, [2, 4, 4]))
    with pytest.raises(FormatError, match=rf"node 'n' \(op {node.op_type}\): .*{word}"):
        ro.load(p)


def test_recurrent_refusals_and_cli_writes_nothing(tmp_path):
    from refcomp.cli import main
    rng = np.random.default_rng(8)
    H, F = 2, 3
    inits = {"W": _f(rng, 1, 4 * H, F), "R": _f(rng, 1, 4 * H, H),
             "h0": np.ones((1, 1, H + 1), np.float32), "ax": np.array([1], np.int64),
             "lens": np.array([5], np.int32)}     # a state of the wrong size, lens > T
    cases = [(["x", "W", "R"], {"direction": "sideways"}, "direction='sideways'"),
             (["x", "W", "R", "", "", "h0"], {}, "initial_h"),
             (["x", "W", "R", "", "lens"], {}, "sequence_lens"),
             (["x", "W", "R"], {"input_forget": 3}, "input_forget=3")]
    for ins, attrs, word in cases:
        nodes = [helper.make_node("LSTM", ins, ["Y"], hidden_size=H, name="n", **attrs),
                 helper.make_node("Squeeze", ["Y", "ax"], ["y"])]
        p = _save(tmp_path, _graph(nodes, inits, [4, F], batch_dim=1))
        with pytest.raises(FormatError, match=rf"node 'n' \(op LSTM\): .*{word}"):
            ro.load(p)
        out = tmp_path / "out.h5"
        assert main(["convert", str(p), str(out)]) == 1
        assert not out.exists()
    nodes = [helper.make_node("Gemm", ["x", "w", "c"], ["y"], name="n")]
    p = _save(tmp_path, _graph(nodes, {"w": _f(rng, 3, 2), "c": _f(rng, 4, 2)}, [3]))
    with pytest.raises(FormatError, match=r"node 'n' \(op Gemm\): input C of shape \(4, 2\)"):
        ro.load(p)


def test_maxpool_indices_used_is_refused_naming_the_node(tmp_path):
    """Indices feeding another node is not expressible in a sequential Model: refused,
    naming the node, the operator and the output; a named but unused Indices is ignored."""
    from refcomp.cli import main
    pool = helper.make_node("MaxPool", ["x"], ["p", "idx"], name="mp", kernel_shape=[2, 2])
    cast = helper.make_node("Cast", ["idx"], ["c"], name="to_float", to=TensorProto.FLOAT)
    add = helper.make_node("Add", ["p", "c"], ["y"], name="add")
    p = _save(tmp_path, _graph([pool, cast, add], {}, [2, 4, 4]))
    with pytest.raises(FormatError, match=r"node 'mp' \(op MaxPool\): output Indices 'idx' "
                                          r"is an input of node 'to_float' \(op Cast\).*"
                                          r"max_pool\(return_indices=True\)"):
        ro.load(p)
    out = tmp_path / "out.h5"
    assert main(["convert", str(p), str(out)]) == 1
    assert not out.exists()
    unused = _graph([helper.make_node("MaxPool", ["x"], ["y", "idx"], name="mp",
                                      kernel_shape=[2, 2])], {}, [2, 4, 4])
    m = ro.load(_save(tmp_path, unused))
    assert [la.kind for la in m.layers] == ["max_pool2d"]
    assert m.layers[0].attrs["return_indices"] is False and "outputs" not in m.metadata


def _ort_all(path, x):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    s = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return s.run(None, {"x": x})


def _with_outputs(model, names):
    del model.graph.output[:]
    for n in names:
        t = TensorProto.INT64 if n.startswith("idx") else TensorProto.FLOAT
        model.graph.output.append(helper.make_tensor_value_info(n, t, None))
    return model


POOL_INDICES = [
    ({"kernel_shape": [2, 2]}, [3, 6, 6]),
    ({"kernel_shape": [3, 2], "strides": [2, 1], "pads": [1, 0, 1, 1], "storage_order": 1},
     [2, 5, 7]),
    ({"kernel_shape": [2, 2], "strides": [2, 2], "ceil_mode": 1, "storage_order": 1}, [2, 5, 5]),
    ({"kernel_shape": [2, 2], "dilations": [2, 1]}, [1, 6, 5]),
    ({"kernel_shape": [3], "strides": [2], "pads": [1, 1]}, [3, 9]),
    ({"kernel_shape": [2, 2, 2], "storage_order": 1}, [2, 4, 4, 3]),
]


@pytest.mark.parametrize("attrs,shape", POOL_INDICES)
@pytest.mark.parametrize("order", ["y_first", "idx_first", "idx_only"])
def test_maxpool_indices_graph_output_against_onnxruntime(tmp_path, attrs, shape, order):
    """A MaxPool whose Indices is a graph output: the Model's pooling layer computes it
    (return_indices, storage_order) and graph_outputs returns the graph's outputs in its
    order: the int64 indices equal ONNX Runtime's exactly, the pooled values too."""
    rng = np.random.default_rng(len(shape) * 7 + len(attrs))
    pool = helper.make_node("MaxPool", ["x"], ["y", "idx"], name="mp", **attrs)
    names = {"y_first": ["y", "idx"], "idx_first": ["idx", "y"], "idx_only": ["idx"]}[order]
    p = _save(tmp_path, _with_outputs(_graph([pool], {}, shape, opset=12), names))
    x = _f(rng, 3, *shape)
    x[0, 0].flat[:4] = 1.0                     # ties: the first position in window order wins
    want = _ort_all(p, x)
    m = ro.load(p)
    assert m.layers[0].attrs["return_indices"] is True
    assert m.layers[0].attrs["storage_order"] == attrs.get("storage_order", 0)
    got = ro.graph_outputs(m, x)
    assert len(got) == len(want) == len(names)
    for name, g, w in zip(names, got, want):
        assert g.dtype == w.dtype and g.shape == w.shape, name
        assert np.array_equal(g, w), name
    y, found = m.forward_indices(x)
    assert np.array_equal(m(x), y) and list(found) == ["0"]
    if "y" in names:
        assert np.array_equal(y, got[names.index("y")])
    # saved and loaded back: the same outputs
    import refcomp
    refcomp.save(m, tmp_path / "m.h5")
    back = refcomp.load(tmp_path / "m.h5")
    for g, b in zip(got, ro.graph_outputs(back, x)):
        assert np.array_equal(g, b)


def test_maxpool_indices_inside_a_network_against_onnxruntime(tmp_path):
    """Conv -> Relu -> MaxPool (Indices out) -> Flatten -> Gemm, outputs [Indices, y]: the
    indices exactly, y within a float32 tolerance (the Gemm's sums differ in order)."""
    rng = np.random.default_rng(11)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("MaxPool", ["r"], ["p", "idx"], name="mp", kernel_shape=[2, 2],
                              strides=[2, 2], storage_order=1),
             helper.make_node("Flatten", ["p"], ["f"], name="flat"),
             helper.make_node("Gemm", ["f", "g", "b"], ["y"], name="fc", transB=1)]
    inits = {"w": _f(rng, 4, 2, 3, 3), "g": _f(rng, 5, 4 * 3 * 3), "b": _f(rng, 5)}
    p = _save(tmp_path, _with_outputs(_graph(nodes, inits, [2, 6, 6]), ["idx", "y"]))
    x = _f(rng, 4, 2, 6, 6)
    want = _ort_all(p, x)
    m = ro.load(p)
    assert m.metadata["outputs"] == [["idx", "2"], ["y", ""]]
    idx, y = ro.graph_outputs(m, x)
    assert idx.dtype == np.int64 and np.array_equal(idx, want[0])
    np.testing.assert_allclose(y, want[1], rtol=1e-5, atol=1e-5)
    y2, found = m.forward_indices(x)
    assert np.array_equal(y2, m(x)) and list(found) == ["2"] and np.array_equal(found["2"], idx)


def test_maxpool_indices_graph_output_refusals(tmp_path):
    """Not expressible as one sequential Model: an Indices output whose MaxPool is off the
    path of the main output, and two non-Indices outputs."""
    off = [helper.make_node("MaxPool", ["x"], ["p", "idx"], name="mp", kernel_shape=[2, 2]),
           helper.make_node("Relu", ["x"], ["y"], name="relu")]
    p = _save(tmp_path, _with_outputs(_graph(off, {}, [2, 4, 4]), ["y", "idx"]))
    with pytest.raises(FormatError, match=r"node 'mp' \(op MaxPool\): output Indices 'idx' is a "
                                          r"graph output but the node is not on the path of the "
                                          r"graph output 'y'"):
        ro.load(p)
    two = [helper.make_node("MaxPool", ["x"], ["p", "idx"], name="mp", kernel_shape=[2, 2]),
           helper.make_node("Relu", ["p"], ["y"], name="relu")]
    p = _save(tmp_path, _with_outputs(_graph(two, {}, [2, 4, 4]), ["y", "p", "idx"]))
    with pytest.raises(FormatError, match="2 outputs besides 1 MaxPool Indices"):
        ro.load(p)


def test_model_max_pool_indices_attributes():
    """The Model layer kinds carry return_indices / storage_order, validated by the layer."""
    from refcomp import Layer, Model, ParameterError
    x = np.arange(2 * 1 * 4 * 4, dtype=np.float32).reshape(2, 1, 4, 4)
    m = Model([Layer("max_pool2d", attrs={"return_indices": True, "storage_order": 1})])
    y, found = m.forward_indices(x)
    # 2x2 windows of an increasing ramp: the bottom-right element; storage_order 1 counts
    # the spatial axes column-major (index = n*C*H*W + c*H*W + w*H + h)
    assert y[0, 0].tolist() == [[5.0, 7.0], [13.0, 15.0]]
    assert found["0"][0, 0].tolist() == [[1 * 4 + 1, 3 * 4 + 1], [1 * 4 + 3, 3 * 4 + 3]]
    assert found["0"][1, 0, 0, 0] == 16 + 5
    assert np.array_equal(m(x), y)
    for bad, word in (({"storage_order": 2}, "storage_order"),
                      ({"return_indices": "yes"}, "return_indices")):
        mm = Model([Layer("max_pool", attrs=dict(bad, size=(2, 2)))])
        with pytest.raises(ParameterError, match=word):
            mm.forward_indices(x)
