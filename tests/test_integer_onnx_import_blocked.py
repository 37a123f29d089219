"""load_qdq on DequantizeLinear weights with ``block_size`` and with the codes NumPy lacks
(int4 / uint4 / int2 / uint2, int16 / uint16, float8 E4M3FN / E4M3FNUZ / E5M2 / E5M2FNUZ,
float4 E2M1).

A graph quantized on its weights only (no activation QuantizeLinear) imports as a float
model whose weights are the DequantizeLinear outputs.  Ground truth for those weights is
independent of refcomp: the codes decoded by ml_dtypes, ``(x - zp) * scale`` in float64
(exact: at most 16 significand bits times float32's 24), rounded once to float32; where
ONNX Runtime 1.32 runs the operator (int4 / uint4 / int8 / uint8 / int16 / uint16 /
float8, blocked or not) its DequantizeLinear output is compared bit for bit too, and the
model's output against ORT's within refcomp's derived float32 bound.  An integer-only graph
(activation QDQ) cannot hold blocked or non-int8 weights: FormatError naming the node and
``block_size``."""

import numpy as np
import pytest

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")
ml_dtypes = pytest.importorskip("ml_dtypes")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from refcomp import FormatError  # noqa: E402
from refcomp.integer import load_qdq  # noqa: E402
from refcomp.testing import assert_bits_equal  # noqa: E402
from refcomp.testing.framework_bound import framework_error_bound  # noqa: E402

# type name -> (code generator, has a zero point input, ORT 1.32 runs DequantizeLinear)
_INT = {"int4": (-8, 7), "uint4": (0, 15), "int2": (-2, 1), "uint2": (0, 3),
        "int8": (-128, 127), "uint8": (0, 255), "int16": (-32768, 32767),
        "uint16": (0, 65535)}
_FLOAT = ("float8_e4m3fn", "float8_e4m3fnuz", "float8_e5m2", "float8_e5m2fnuz",
          "float4_e2m1fn")
_ORT_RUNS = {"int4", "uint4", "int8", "uint8", "int16", "uint16", "float8_e4m3fn",
             "float8_e4m3fnuz", "float8_e5m2", "float8_e5m2fnuz"}


def _dtype(name):
    return np.dtype(getattr(ml_dtypes, name, None) or name)


def _codes(rng, name, shape):
    if name in _INT:
        lo, hi = _INT[name]
        return rng.integers(lo, hi + 1, shape).astype(_dtype(name))
    v = rng.normal(scale=2.0, size=shape)
    return v.astype(_dtype(name))         # finite values only (|v| is small; saturating types)


def _scale_shape(shape, axis, block):
    if block:
        return tuple(-(-n // block) if i == axis else n for i, n in enumerate(shape))
    return (shape[axis],) if axis is not None else ()


def _truth(codes, scale, zp, axis, block):
    """ml_dtypes decode, float64 (exact) product, one rounding to float32."""
    v = codes.astype(np.float64)
    s = scale.astype(np.float64)
    z = zp.astype(np.float64) if zp is not None else np.zeros_like(s)
    if block:
        s = np.repeat(s, block, axis=axis)[tuple(slice(0, n) for n in codes.shape)]
        z = np.repeat(z, block, axis=axis)[tuple(slice(0, n) for n in codes.shape)]
    elif s.ndim == 1:
        sh = [1] * codes.ndim
        sh[axis] = -1
        s, z = s.reshape(sh), z.reshape(sh)
    return ((v - z) * s).astype(np.float32)


def _opset(name):
    return 25 if name in ("int2", "uint2") else 23 if name == "float4_e2m1fn" else 21


def _graph(codes, scale, zp, axis, block, name, op="MatMul", x_shape=None, out_shape=None,
           extra_attrs=None):
    ins = ["wq", "s"] + (["z"] if zp is not None else [])
    attrs = {} if axis is None else {"axis": axis}
    if block:
        attrs["block_size"] = block
    nodes = [helper.make_node("DequantizeLinear", ins, ["w"], name="dq_w", **attrs),
             helper.make_node(op, ["x", "w"], ["y"], name="layer", **(extra_attrs or {}))]
    inits = [numpy_helper.from_array(codes, "wq"), numpy_helper.from_array(scale, "s")]
    if zp is not None:
        inits.append(numpy_helper.from_array(zp, "z"))
    g = helper.make_graph(nodes, "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)],
                          inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", _opset(name))])
    m.ir_version = 11 if _opset(name) >= 25 else 10
    return m


def _session(model):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    # the graph's own semantics (DequantizeLinear, then the float operator): ORT's default
    # optimizer rewrites DQ -> MatMul into com.microsoft MatMulNBits, which for per-tensor /
    # per-axis int4 / int8 / uint8 weights was measured up to ~1 % away from the float graph
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), so,
                                providers=["CPUExecutionProvider"])


def _ort_dq(m):
    """ORT's own DequantizeLinear output (the DQ node alone, its output made the graph's)."""
    m2 = onnx.ModelProto()
    m2.CopyFrom(m)
    g = m2.graph
    del g.node[1:]
    del g.input[:]
    del g.output[:]
    g.output.append(helper.make_tensor_value_info("w", TensorProto.FLOAT, None))
    return _session(m2).run(None, {})[0]


@pytest.mark.parametrize("name", list(_INT) + list(_FLOAT))
@pytest.mark.parametrize("layout", ["tensor", "axis", "blocked", "blocked_ragged"])
def test_weight_only_matmul_imports_exact_weights(name, layout):
    rng = np.random.default_rng(abs(hash((name, layout))) % 2**32)
    K, N, B = 12, 5, 8
    shape = (K, N)
    axis, block = {"tensor": (None, 0), "axis": (1, 0), "blocked": (0, 4),
                   "blocked_ragged": (0, 5)}[layout]     # 12 = 5 + 5 + 2: a short last block
    codes = _codes(rng, name, shape)
    scale = rng.uniform(2.0 ** -8, 2.0, _scale_shape(shape, axis, block)).astype(np.float32)
    zp = None
    if name in _INT and name.startswith("u"):
        lo, hi = _INT[name]
        zp = rng.integers(lo, hi + 1, scale.shape).astype(_dtype(name))
    m = _graph(codes, scale, zp, axis, block, name, x_shape=["N", K], out_shape=["N", N])
    model = load_qdq(m)
    (layer,) = [l for _, l in model.named_layers()]
    want_w = _truth(codes, scale, zp, 0 if axis is None else axis, block)
    assert_bits_equal(layer.weights["W"], np.ascontiguousarray(want_w.T))
    info = model.metadata["qdq_weights"]["w"]
    assert info == {"node": "dq_w", "x_type": name, "axis": 1 if axis is None else axis,
                    "block_size": block}
    if name in _ORT_RUNS:
        assert_bits_equal(_ort_dq(m), want_w)
        x = rng.normal(size=(B, K)).astype(np.float32)
        got = model(x)
        want = _session(m).run(None, {"x": x})[0]
        # tolerance: refcomp's derived float32 bound of the dot products (see
        # tests/test_io_onnx.py); the weights themselves are bit-identical above
        assert np.all(np.abs(got - want) <= framework_error_bound(model, x))


@pytest.mark.parametrize("name", ["int4", "float8_e4m3fn", "uint8"])
def test_weight_only_conv_blocked_along_input_channels(name):
    rng = np.random.default_rng(7)
    shape = (4, 6, 3, 3)                                  # OIHW, blocks of 2 input channels
    codes = _codes(rng, name, shape)
    scale = rng.uniform(2.0 ** -6, 1.0, _scale_shape(shape, 1, 2)).astype(np.float32)
    zp = None if name != "uint8" else rng.integers(0, 256, scale.shape).astype(np.uint8)
    m = _graph(codes, scale, zp, 1, 2, name, op="Conv", x_shape=["N", 6, 7, 7],
               out_shape=["N", 4, 5, 5])
    model = load_qdq(m)
    (layer,) = [l for _, l in model.named_layers()]
    want_w = _truth(codes, scale, zp, 1, 2)
    assert_bits_equal(layer.weights["W"], want_w)
    assert_bits_equal(_ort_dq(m), want_w)
    x = rng.normal(size=(2, 6, 7, 7)).astype(np.float32)
    want = _session(m).run(None, {"x": x})[0]
    # tolerance: refcomp's derived float32 bound (weights bit-identical above)
    assert np.all(np.abs(model(x) - want) <= framework_error_bound(model, x))


def test_blocked_scale_of_the_wrong_shape_names_block_size():
    codes = np.zeros((8, 3), ml_dtypes.int4)
    m = _graph(codes, np.ones((3, 3), np.float32), None, 0, 4, "int4", x_shape=["N", 8],
               out_shape=["N", 3])
    with pytest.raises(FormatError, match=r"dq_w.*DequantizeLinear.*block_size"):
        load_qdq(m)


def test_negative_block_size_is_refused_by_name():
    codes = np.zeros((8, 3), ml_dtypes.int4)
    m = _graph(codes, np.ones((2, 3), np.float32), None, 0, -4, "int4", x_shape=["N", 8],
               out_shape=["N", 3])
    with pytest.raises(FormatError, match=r"dq_w.*DequantizeLinear.*block_size=-4"):
        load_qdq(m)


def _qdq_graph(w_codes, w_scale, w_block, act_block=0):
    """x -> Q/DQ (uint8) -> MatMul(DQ(w)) -> Q/DQ: the integer-only form."""
    u8 = lambda v: np.array(v, np.uint8)   # noqa: E731
    f32 = lambda v: np.array(v, np.float32)   # noqa: E731
    qa = {"block_size": act_block} if act_block else {}
    wattrs = {"axis": 0, "block_size": w_block} if w_block else {"axis": 1}
    nodes = [helper.make_node("QuantizeLinear", ["x", "sx", "zx"], ["xq"], name="q_x", **qa),
             helper.make_node("DequantizeLinear", ["xq", "sx", "zx"], ["xd"], name="dq_x"),
             helper.make_node("DequantizeLinear", ["wq", "sw"], ["w"], name="dq_w", **wattrs),
             helper.make_node("MatMul", ["xd", "w"], ["y"], name="mm"),
             helper.make_node("QuantizeLinear", ["y", "sy", "zy"], ["yq"], name="q_y"),
             helper.make_node("DequantizeLinear", ["yq", "sy", "zy"], ["out"], name="dq_y")]
    inits = [numpy_helper.from_array(v, k) for k, v in
             {"sx": f32(0.05), "zx": u8(128), "sy": f32(0.1), "zy": u8(128), "sw": w_scale,
              "wq": w_codes}.items()]
    g = helper.make_graph(nodes, "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8])],
                          [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 3])],
                          inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)])
    m.ir_version = 10
    return m


def test_integer_only_graph_with_blocked_weights_names_node_and_block_size():
    m = _qdq_graph(np.ones((8, 3), np.int8), np.ones((2, 3), np.float32), 4)
    with pytest.raises(FormatError, match=r"'mm' \(MatMul\).*'dq_w'.*block_size=4"):
        load_qdq(m)


@pytest.mark.parametrize("name", ["int4", "float8_e4m3fn"])
def test_integer_only_graph_with_non_int8_weights_names_the_type(name):
    m = _qdq_graph(_codes(np.random.default_rng(1), name, (8, 3)),
                   np.ones((3,), np.float32), 0)
    with pytest.raises(FormatError, match=rf"'mm' \(MatMul\).*'dq_w'.*{name}"):
        load_qdq(m)


def test_blocked_activation_quantization_names_node_and_block_size():
    m = _qdq_graph(np.ones((8, 3), np.int8), np.ones((3,), np.float32), 0, act_block=2)
    with pytest.raises(FormatError, match=r"'q_x' \(QuantizeLinear\).*block_size=2"):
        load_qdq(m)
