"""ONNX integer operators (refcomp.integer.onnx_ops): the onnx package's node test cases pass
bit for bit; mode "onnx_reference" equals onnx.reference on random inputs; bad input."""

import importlib
import sys

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import numpy_helper  # noqa: E402
from onnx.helper import get_attribute_value  # noqa: E402

from refcomp import DTypeError, ParameterError, ShapeError  # noqa: E402
from refcomp.integer import onnx_ops as O  # noqa: E402
from refcomp.testing import assert_bits_equal  # noqa: E402

#: node-test cases refused on purpose: float8 / float4 quantized types (out of scope of the
#: integer operators; refcomp.quantize.minifloat covers those number formats).
FLOAT_TYPES = ("e4m3fn", "e5m2", "float4e2m1")


def _cases(op, module):
    """The onnx package's node test cases of ``op`` (its case module re-run with the
    collector set to that operator)."""
    import onnx.backend.test.case.node as N
    N._TargetOpType = op
    N._NodeTestCases.clear()
    N._existing_names.clear()
    name = f"onnx.backend.test.case.node.{module}"
    try:
        if name in sys.modules:
            importlib.reload(sys.modules[name])
        else:
            importlib.import_module(name)
        return list(N._NodeTestCases)
    finally:
        N._NodeTestCases.clear()
        N._existing_names.clear()
        N._TargetOpType = None


def _arr(v):
    a = numpy_helper.to_array(v) if isinstance(v, onnx.TensorProto) else np.asarray(v)
    if a.dtype.name in ("int4", "int2"):
        return a.astype(np.int8)
    if a.dtype.name in ("uint4", "uint2"):
        return a.astype(np.uint8)
    return a


_QT = {onnx.TensorProto.INT4: "int4", onnx.TensorProto.UINT4: "uint4",
       onnx.TensorProto.INT2: "int2", onnx.TensorProto.UINT2: "uint2",
       onnx.TensorProto.UINT8: "uint8", onnx.TensorProto.INT8: "int8",
       onnx.TensorProto.INT16: "int16", onnx.TensorProto.UINT16: "uint16"}


def _elem_type(model, name):
    for vi in list(model.graph.input) + list(model.graph.output):
        if vi.name == name:
            return vi.type.tensor_type.elem_type
    return None


def _run(case):
    node = case.model.graph.node[0]
    ins, outs = case.data_sets[0]
    named = dict(zip([n for n in node.input if n], [_arr(v) for v in ins]))
    args = [named.get(n) if n else None for n in node.input]
    attrs = {a.name: get_attribute_value(a) for a in node.attribute}
    op = node.op_type
    if op == "QuantizeLinear":
        od = attrs.pop("output_dtype", None)
        zp_name = node.input[2] if len(node.input) > 2 else ""
        qt = _QT.get(_elem_type(case.model, zp_name) or _elem_type(case.model, node.output[0]))
        got = O.quantize_linear(*args, output_dtype=qt if (od or zp_name) else None, **attrs)
    elif op == "DequantizeLinear":
        got = O.dequantize_linear(*args, **attrs)
    elif op == "MatMulInteger":
        got = O.matmul_integer(*args)
    elif op == "ConvInteger":
        got = O.conv_integer(*args, **attrs)
    elif op == "QLinearMatMul":
        got = O.qlinear_matmul(*args)
    else:
        got = O.qlinear_conv(*args, **attrs)
    want = _arr(outs[0])
    return got, want


OPS = [("QLinearMatMul", "qlinearmatmul"), ("QLinearConv", "qlinearconv"),
       ("MatMulInteger", "matmulinteger"), ("ConvInteger", "convinteger"),
       ("QuantizeLinear", "quantizelinear"), ("DequantizeLinear", "dequantizelinear")]
ALL = [(op, c) for op, mod in OPS for c in _cases(op, mod)]


@pytest.mark.parametrize("op,case", ALL, ids=[c.name for _, c in ALL])
def test_onnx_node_case(op, case):
    if any(t in case.name for t in FLOAT_TYPES):
        with pytest.raises((ParameterError, DTypeError)):
            _run(case)
        return
    got, want = _run(case)
    assert_bits_equal(got, want.astype(got.dtype) if want.dtype != got.dtype else want)
    if want.dtype.kind == "f":
        assert got.dtype == want.dtype


def test_node_cases_were_collected():
    assert len(ALL) >= 30


def test_qlinear_against_onnx_reference_random():
    """mode "onnx_reference" equals onnx.reference.ReferenceEvaluator on random models,
    including per-channel scales and ties from an odd zero point; mode "onnx" differs only
    where the reference's float64 rescale with the zero point inside rint decides a tie."""
    from onnx import TensorProto, helper
    from onnx.reference import ReferenceEvaluator
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (2, 4, 7, 7)).astype(np.uint8)
    w = rng.integers(-127, 128, (6, 4, 3, 3)).astype(np.int8)
    xs, ys = np.float32(0.25), np.float32(0.5)
    ws = np.array([2.0 ** -k for k in range(6)], np.float32)
    inits = [numpy_helper.from_array(v, n) for n, v in
             [("xs", xs), ("xz", np.uint8(131)), ("w", w), ("ws", ws),
              ("wz", np.zeros(6, np.int8)), ("ys", ys), ("yz", np.uint8(129))]]
    node = helper.make_node("QLinearConv", ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz"], ["y"],
                            pads=[1, 1, 1, 1])
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.UINT8,
                                                                      list(x.shape))],
                          [helper.make_tensor_value_info("y", TensorProto.UINT8, None)], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)])
    want = ReferenceEvaluator(m).run(None, {"x": x})[0]
    args = (x, xs, np.uint8(131).reshape(()), w, ws, np.zeros(6, np.int8), ys,
            np.array(129, np.uint8))
    got = O.qlinear_conv(*(np.asarray(a) for a in args), pads=[1, 1, 1, 1])
    assert_bits_equal(got, want)
    ort_like = O.qlinear_conv(*(np.asarray(a) for a in args), pads=[1, 1, 1, 1], mode="onnx")
    assert np.count_nonzero(ort_like != want) > 0          # ties with zero point 129


def test_onnx_ops_bad_input():
    x = np.zeros((2, 3), np.float32)
    with pytest.raises(ParameterError, match="y_scale"):
        O.quantize_linear(x, np.array(0, np.float32))
    with pytest.raises(DTypeError):
        O.quantize_linear(x.astype(np.int32), np.array(1, np.float32))
    with pytest.raises(ShapeError):
        O.quantize_linear(x, np.ones(5, np.float32), axis=1)
    with pytest.raises(ParameterError, match="output_dtype"):
        O.quantize_linear(x, np.array(1, np.float32), output_dtype="int32")
    with pytest.raises(ShapeError):
        O.matmul_integer(np.zeros((2, 3), np.uint8), np.zeros((4, 2), np.int8))
    with pytest.raises(ShapeError, match="group"):
        O.conv_integer(np.zeros((1, 4, 5, 5), np.uint8), np.zeros((4, 3, 3, 3), np.int8),
                       group=2)
    with pytest.raises(DTypeError, match="B"):
        one = np.array(1, np.float32)
        O.qlinear_conv(np.zeros((1, 1, 3, 3), np.uint8), one, np.array(0, np.uint8),
                       np.zeros((1, 1, 1, 1), np.int8), one, np.array(0, np.int8),
                       one, np.array(0, np.uint8), B=np.zeros(1, np.int64))
