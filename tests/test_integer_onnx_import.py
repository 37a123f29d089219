"""QDQ models made by ONNX Runtime's quantization tool (quantize_static) from the shipped
ONNX exports import as integer models that match ONNX Runtime bit for bit in mode "onnx"."""

import pytest

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")
quant = pytest.importorskip("onnxruntime.quantization")

import refcomp  # noqa: E402
from refcomp import FormatError  # noqa: E402
from refcomp.data import load_split  # noqa: E402
from refcomp.integer import IntegerLinear, load_qdq, quantize_model, run  # noqa: E402
from refcomp.integer.onnx_export import to_onnx  # noqa: E402
from refcomp.testing import assert_bits_equal  # noqa: E402


class _Reader(quant.CalibrationDataReader):
    def __init__(self, x):
        self.it = iter([{"x": x[i:i + 50]} for i in range(0, x.shape[0], 50)])

    def get_next(self):
        return next(self.it, None)


def _session(path_or_bytes):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(path_or_bytes, so, providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def splits():
    return load_split("calib")[0], load_split("test")[0]


@pytest.mark.parametrize("name,per_channel", [("mlp", True), ("cnn", True), ("cnn", False),
                                              ("resnet", True)])
def test_ort_quantize_static_qdq(tmp_path, splits, name, per_channel):
    xc, xt = splits
    out = tmp_path / f"{name}_qdq.onnx"
    quant.quantize_static(f"data/golden/digits_{name}.onnx", str(out), _Reader(xc),
                          quant_format=quant.QuantFormat.QDQ,
                          activation_type=quant.QuantType.QUInt8,
                          weight_type=quant.QuantType.QInt8, per_channel=per_channel)
    model = load_qdq(out)
    assert all(isinstance(l.weights["W"], IntegerLinear) for _, l in model.named_layers()
               if l.kind in ("dense", "conv2d"))
    want = _session(str(out)).run(None, {"x": xt})[0]
    assert_bits_equal(run(model, xt), want)


@pytest.mark.parametrize("dt", ["int8", "uint8"])
def test_round_trip_of_refcomp_qdq_export(splits, dt):
    xc, xt = splits
    qm = quantize_model(refcomp.load("data/digits_resnet.h5"), xc, mode="onnx", act_dtype=dt)
    back = load_qdq(to_onnx(qm, form="qdq"))
    assert_bits_equal(run(back, xt), run(qm, xt))


def test_refusals(tmp_path):
    with pytest.raises(FormatError):
        load_qdq(tmp_path / "missing.onnx")
    with pytest.raises(FormatError, match="Conv/Gemm|QDQ"):
        load_qdq("data/golden/digits_cnn.onnx")        # a float model: nothing quantized


@pytest.mark.parametrize("name", ["mlp", "cnn", "resnet"])
@pytest.mark.parametrize("dt", ["int8", "uint8"])
def test_qlinear_graphs_import(splits, name, dt):
    """refcomp's QLinear export, imported back: the rewrite to the QDQ form keeps every
    parameter, so the imported model equals the exported one and ONNX Runtime bit for bit."""
    xc, xt = splits
    qm = quantize_model(refcomp.load(f"data/digits_{name}.h5"), xc, mode="onnx", act_dtype=dt)
    proto = to_onnx(qm, form="qlinear")
    assert any(n.op_type.startswith("QLinear") for n in proto.graph.node)
    back = load_qdq(proto)
    assert_bits_equal(run(back, xt), run(qm, xt))
    want = _session(proto.SerializeToString()).run(None, {"x": xt})[0]
    assert_bits_equal(run(back, xt), want)


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_ort_quantize_static_qoperator(tmp_path, splits, name):
    """ONNX Runtime's own QLinear (QOperator) output imports and matches it bit for bit."""
    from refcomp.integer import load_quantized
    xc, xt = splits
    out = tmp_path / f"{name}_qop.onnx"
    quant.quantize_static(f"data/golden/digits_{name}.onnx", str(out), _Reader(xc),
                          quant_format=quant.QuantFormat.QOperator,
                          activation_type=quant.QuantType.QUInt8,
                          weight_type=quant.QuantType.QInt8, per_channel=True)
    ops = {n.op_type for n in onnx.load(str(out)).graph.node}
    model = load_quantized(out)
    want = _session(str(out)).run(None, {"x": xt})[0]
    assert_bits_equal(run(model, xt), want), ops
