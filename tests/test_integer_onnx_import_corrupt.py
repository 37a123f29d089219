"""Corrupt quantized ONNX graphs (QDQ and QLinear forms) given to ``load_qdq``: every
mutation class the fuzz harness found raising KeyError / IndexError / ValueError is
refused with a one-line FormatError that names the user's file (never the temporary
file of the stripped float graph) and the node or tensor (issue 22)."""

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import numpy_helper  # noqa: E402

import refcomp  # noqa: E402
from refcomp import FormatError  # noqa: E402
from refcomp.data import load_split  # noqa: E402
from refcomp.integer import load_qdq, quantize_model, run  # noqa: E402
from refcomp.integer.onnx_export import to_onnx  # noqa: E402


@pytest.fixture(scope="module")
def graphs():
    xc = load_split("calib")[0][:64]
    out = {}
    for name, dt, form in (("mlp", "uint8", "qdq"), ("cnn", "int8", "qlinear")):
        qm = quantize_model(refcomp.load(f"data/digits_{name}.h5"), xc, mode="onnx",
                            act_dtype=dt)
        out[form] = to_onnx(qm, form=form)
    return out


def _copy(proto):
    m = onnx.ModelProto()
    m.CopyFrom(proto)
    return m


def _first(g, op):
    return next(n for n in g.node if n.op_type == op)


def _refused(tmp_path, proto, *names):
    p = tmp_path / "user model.onnx"
    p.write_bytes(proto.SerializeToString())
    with pytest.raises(FormatError) as ei:
        load_qdq(p)
    msg = str(ei.value)
    assert msg.startswith(str(p)) and "\n" not in msg, msg
    assert "stripped" not in msg, msg
    for name in names:
        assert name in msg, (name, msg)
    return msg


def test_valid_graphs_still_load(graphs, tmp_path):
    x = load_split("test")[0][:4]
    for form, proto in graphs.items():
        p = tmp_path / f"{form}.onnx"
        p.write_bytes(proto.SerializeToString())
        assert np.array_equal(run(load_qdq(p), x), run(load_qdq(proto), x))


def test_rewired_dequantize_input(graphs, tmp_path):
    m = _copy(graphs["qdq"])
    dq = next(n for n in m.graph.node if n.op_type == "DequantizeLinear"
              and n.input[0] not in {i.name for i in m.graph.initializer})
    dq.input[0] = "nowhere"
    _refused(tmp_path, m, dq.name, "no QuantizeLinear produces")


def test_quantize_scale_rewired_to_an_activation(graphs, tmp_path):
    """(was KeyError) the scale of an activation's QuantizeLinear is not a constant."""
    m = _copy(graphs["qdq"])
    q = _first(m.graph, "QuantizeLinear")
    q.input[1] = m.graph.node[-1].output[0]
    _refused(tmp_path, m, q.name, "not a constant")


@pytest.mark.parametrize("form", ["qdq", "qlinear"])
@pytest.mark.parametrize("data_type", [1, 6, 7, 10, 16, 99, "other-8-bit"])
def test_zero_point_dtype_changed(graphs, tmp_path, form, data_type):
    """(was ValueError "buffer size must be a multiple of element size" from onnx, or a
    KeyError) the zero point of an activation retyped: float, wider, unknown, or the
    other 8-bit type (activations of mixed types)."""
    m = _copy(graphs[form])
    q = _first(m.graph, "QuantizeLinear")
    t = next(i for i in m.graph.initializer if i.name == q.input[2])
    if data_type == "other-8-bit":
        data_type = 3 if t.data_type == 2 else 2
    t.data_type = data_type
    _refused(tmp_path, m)


@pytest.mark.parametrize("form", ["qdq", "qlinear"])
def test_absurd_initializer_dims(graphs, tmp_path, form):
    """(was ValueError from numpy's reshape) 2^31 x 3 elements declared by a tiny tensor."""
    m = _copy(graphs[form])
    t = m.graph.initializer[len(m.graph.initializer) // 2]
    del t.dims[:]
    t.dims.extend([1 << 31, 3])
    _refused(tmp_path, m, t.name)


@pytest.mark.parametrize("form", ["qdq", "qlinear"])
def test_dropped_zero_point(graphs, tmp_path, form):
    """(was KeyError) a QuantizeLinear's zero point initializer removed."""
    m = _copy(graphs[form])
    q = _first(m.graph, "QuantizeLinear")
    names = [i.name for i in m.graph.initializer]
    del m.graph.initializer[names.index(q.input[2])]
    _refused(tmp_path, m, q.input[2])


@pytest.mark.parametrize("form,op", [("qdq", "QuantizeLinear"), ("qdq", "Flatten"),
                                     ("qlinear", "QuantizeLinear"), ("qlinear", "Flatten"),
                                     ("qlinear", "QLinearConv")])
def test_dropped_node_input(graphs, tmp_path, form, op):
    """(was IndexError / KeyError / ValueError on unpacking) a node's input removed."""
    m = _copy(graphs[form])
    n = _first(m.graph, op)
    del n.input[{"QuantizeLinear": 2, "Flatten": 0, "QLinearConv": 5}[op]:]
    _refused(tmp_path, m)


def test_empty_attribute_list_of_qlinear_conv(graphs, tmp_path):
    """(was ValueError "Could not infer attribute type from empty iterator" in onnx.helper)"""
    m = _copy(graphs["qlinear"])
    n = _first(m.graph, "QLinearConv")
    a = next(a for a in n.attribute if a.name == "kernel_shape")
    del a.ints[:]
    _refused(tmp_path, m)


def test_per_channel_activation_scale(graphs, tmp_path):
    """(was ValueError / a ShapeError naming no file) an activation scale of 64 values."""
    m = _copy(graphs["qdq"])
    q = _first(m.graph, "QuantizeLinear")
    i = [t.name for t in m.graph.initializer].index(q.input[1])
    m.graph.initializer[i].CopyFrom(numpy_helper.from_array(np.ones(64, np.float32),
                                                            q.input[1]))
    _refused(tmp_path, m, q.input[1], "one value")


def test_nan_output_scale_names_node(graphs, tmp_path):
    m = _copy(graphs["qdq"])
    qs = [n for n in m.graph.node if n.op_type == "QuantizeLinear"]
    i = [t.name for t in m.graph.initializer].index(qs[1].input[1])
    m.graph.initializer[i].CopyFrom(numpy_helper.from_array(np.float32(np.nan),
                                                            qs[1].input[1]))
    _refused(tmp_path, m, "node")


def test_errors_of_the_float_import_name_the_user_file(graphs, tmp_path):
    """(was '/tmp/tmp.../stripped.onnx: ...') an attribute the float import refuses."""
    m = _copy(graphs["qdq"])
    n = _first(m.graph, "Gemm")
    n.input[0] = "undefined_tensor"
    _refused(tmp_path, m, "undefined_tensor")


def test_model_proto_errors_say_onnx_model(graphs):
    m = _copy(graphs["qdq"])
    del m.graph.node[0].input[1:]
    with pytest.raises(FormatError, match="^ONNX model: "):
        load_qdq(m)


def test_truncated_file(graphs, tmp_path):
    p = tmp_path / "cut.onnx"
    data = graphs["qlinear"].SerializeToString()
    p.write_bytes(data[:len(data) // 2])
    with pytest.raises(FormatError, match="cut.onnx"):
        load_qdq(p)
