"""LiteRT (ai-edge-litert 2.3.0): int8 TFLite flatbuffers built by refcomp.integer.to_tflite
(schema module of the wheel, no TensorFlow) run with three kernel sets, each matched bit for
bit by the refcomp mode(s) it follows (docs/integer.md):

* OpResolverType.BUILTIN_REF (reference kernels): CONV_2D / DEPTHWISE_CONV_2D "tflite_double",
  FULLY_CONNECTED "tflite_float64", ADD and QUANTIZE as "tflite_double";
* BUILTIN_WITHOUT_DEFAULT_DELEGATES (TFLite's optimized kernels, ruy on x86-64):
  "tflite_ruy";
* BUILTIN (the default: XNNPACK delegate): "xnnpack".

Tie-stressed single layers show that the modes are distinguished (other modes differ).
Skipped when ai-edge-litert is absent."""

import warnings

import numpy as np
import pytest

litert = pytest.importorskip("ai_edge_litert.interpreter")
schema = pytest.importorskip("ai_edge_litert.schema_py_generated")
flatbuffers = pytest.importorskip("flatbuffers")

import refcomp  # noqa: E402
from refcomp import Layer, Model  # noqa: E402
from refcomp.data import load_split  # noqa: E402
from refcomp.integer import (IntegerLinear, add_q, dequantize, quantize, quantize_model,  # noqa: E402
                             run, run_codes, set_modes)
from refcomp.integer.requantize import MODES  # noqa: E402
from refcomp.integer.tflite_export import _B, to_tflite  # noqa: E402
from refcomp.testing import assert_bits_equal  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

#: kernel set -> (model-level mode, dense mode, conv2d mode)
KERNEL_SETS = {"BUILTIN_REF": ("tflite_double", "tflite_float64", "tflite_double"),
               "BUILTIN_WITHOUT_DEFAULT_DELEGATES": ("tflite_ruy",) * 3,
               "BUILTIN": ("xnnpack",) * 3}


def _interp(buf, res):
    return litert.Interpreter(model_content=buf, num_threads=1,
                              experimental_op_resolver_type=getattr(litert.OpResolverType, res))


def _invoke(buf, res, *feeds):
    it = _interp(buf, res)
    it.allocate_tensors()
    for d, v in zip(it.get_input_details(), feeds):
        it.set_tensor(d["index"], v)
    it.invoke()
    return it.get_tensor(it.get_output_details()[0]["index"])


@pytest.fixture(scope="module")
def splits():
    return load_split("calib")[0], load_split("test")[0]


@pytest.mark.parametrize("res", list(KERNEL_SETS))
@pytest.mark.parametrize("name", ["mlp", "cnn", "resnet"])
def test_shipped_models(splits, name, res):
    """Float input, float output: identical bits to refcomp in the kernel set's modes."""
    xc, xt = splits
    qm = quantize_model(refcomp.load(f"data/digits_{name}.h5"), xc, mode="tflite_double")
    mode, dense, conv = KERNEL_SETS[res]
    ours = set_modes(qm, mode, dense=dense, conv2d=conv)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        y = _invoke(to_tflite(qm, batch=xt.shape[0]), res, xt)
    assert_bits_equal(run(ours, xt), y)


def _meta(mode, sx, zx, so, zo):
    return {"integer": {"mode": mode, "act_dtype": "int8", "input": {"scale": sx, "zero_point": zx},
                        "output": {"scale": so, "zero_point": zo}, "add": {}}}


def _layer_model(kind, codes, ws, bias, sx, zx, so, zo, mode):
    w = IntegerLinear(codes, ws, in_scale=sx, in_zero_point=zx, out_scale=so,
                      out_zero_point=zo, mode=mode, bias=bias)
    if kind == "dense":
        layers, shape = [Layer("dense", weights={"W": w})], (codes.shape[1],)
    else:
        g = codes.shape[0] if kind == "depthwise" else 1
        c = codes.shape[1] * g
        layers = [Layer("conv2d", attrs={"groups": g, "padding": 1}, weights={"W": w}),
                  Layer("flatten")]
        shape = (c, 6, 6)
    return Model(layers, input_shape=shape, metadata=_meta(mode, sx, zx, so, zo))


F = np.float32
TIES = {  # (s_x, s_w, s_out, z_x, z_out): multipliers that make many exact ties
    "pow2": (2.0 ** -4, 2.0 ** -5, 2.0 ** -3, 0, 0),
    "pow2_zp": (2.0 ** -4, 2.0 ** -5, 3 * 2.0 ** -4, -3, 5),
    "odd": (2.0 ** -4, 3 * 2.0 ** -9, 2.0 ** -2, 0, 0),
    "five": (2.0 ** -3, 5 * 2.0 ** -11, 2.0 ** -3, 1, -2),
    "random": (float(F(0.0213)), float(F(0.0131)), float(F(0.0731)), 7, -11),
}


@pytest.mark.parametrize("kind", ["dense", "conv", "depthwise"])
@pytest.mark.parametrize("case", list(TIES))
def test_tie_stressed_layers(kind, case):
    """int8 in, int8 out (no QUANTIZE/DEQUANTIZE): each kernel set equals its mode on every
    code; across the cases every other mode disagrees with some kernel set."""
    rng = np.random.default_rng(list(TIES).index(case) * 3 + ["dense", "conv",
                                                              "depthwise"].index(kind))
    sx, sw, so, zx, zo = TIES[case]
    if kind == "dense":
        codes = rng.integers(-127, 128, (16, 64)).astype(np.int8)
        q = rng.integers(-128, 128, (300, 64)).astype(np.int8)
        q[:, 32:] = zx                                # smaller sums: more ties in range
    else:
        o, cg = (16, 8) if kind == "conv" else (16, 1)
        codes = rng.integers(-127, 128, (o, cg, 3, 3)).astype(np.int8)
        q = rng.integers(-128, 128, (40, cg if kind == "conv" else o, 6, 6)).astype(np.int8)
    ws = np.array([sw], np.float32)
    bias = rng.integers(-30, 30, codes.shape[0]).astype(np.int32)
    buf = to_tflite(_layer_model(kind, codes, ws, bias, sx, zx, so, zo, "tflite_double"),
                    batch=q.shape[0], float_io=False)
    x = dequantize(q, sx, zx)
    for res, (_, dense, conv) in KERNEL_SETS.items():
        y = _invoke(buf, res, q)
        mode = dense if kind == "dense" else conv
        got = run_codes(_layer_model(kind, codes, ws, bias, sx, zx, so, zo, mode), x)[0]
        assert_bits_equal(got.reshape(y.shape), y, f"{res} vs {mode}")


def test_modes_are_distinguished_by_the_kernel_sets():
    """The pow2 dense case: each kernel set disagrees with the other fixed-point modes."""
    rng = np.random.default_rng(5)
    sx, sw, so, zx, zo = TIES["pow2"]
    codes = rng.integers(-127, 128, (16, 64)).astype(np.int8)
    q = rng.integers(-128, 128, (400, 64)).astype(np.int8)
    q[:, 32:] = 0
    bias = rng.integers(-30, 30, 16).astype(np.int32)
    ws = np.array([sw], np.float32)
    buf = to_tflite(_layer_model("dense", codes, ws, bias, sx, zx, so, zo, "tflite_double"),
                    batch=400, float_io=False)
    x = dequantize(q, sx, zx)
    for res, (_, dense, _) in KERNEL_SETS.items():
        y = _invoke(buf, res, q)
        wrong = [m for m in MODES if m != dense and np.array_equal(
            run_codes(_layer_model("dense", codes, ws, bias, sx, zx, so, zo, m), x)[0], y)]
        assert dense not in wrong
        # tflite_double / single / ruy / float64 each differ from this kernel set's output
        assert not set(wrong) & {"tflite_double", "tflite_single", "tflite_ruy",
                                 "tflite_float64"} - {dense}


def _build(fn):
    S = schema
    B = _B(S)
    ins, outs = fn(B)
    sg = S.SubGraphT()
    sg.tensors, sg.inputs, sg.outputs, sg.operators = B.tensors, ins, outs, B.ops
    m = S.ModelT()
    m.version = 3
    m.operatorCodes = [oc for _, oc in sorted(B.codes.values(), key=lambda v: v[0])]
    m.subgraphs, m.buffers = [sg], B.buffers
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


ADD_CASES = [(0.0312, -3, 0.0191, 11, 0.0457, -20, False),
             (2.0 ** -4, 0, 2.0 ** -5, 1, 3 * 2.0 ** -4, 0, False),
             (0.0312, 5, 0.0312, -7, 0.0624, 1, False),
             (0.05, -128, 0.05, -128, 0.1, -128, True)]


@pytest.mark.parametrize("case", ADD_CASES)
def test_add(case):
    """ADD int8: reference and optimized kernels follow TFLite's gemmlowp double-rounding
    ADD; XNNPACK its own fixed-point addition (mode "xnnpack")."""
    S = schema
    s1, z1, s2, z2, so, zo, relu = case
    s1, s2, so = (float(F(v)) for v in (s1, s2, so))
    rng = np.random.default_rng(7)
    n = 4096
    a = rng.integers(-128, 128, n).astype(np.int8)
    b = rng.integers(-128, 128, n).astype(np.int8)

    def fn(B):
        ta = B.tensor([n], S.TensorType.INT8, "a", scale=s1, zp=z1)
        tb = B.tensor([n], S.TensorType.INT8, "b", scale=s2, zp=z2)
        tc = B.tensor([n], S.TensorType.INT8, "c", scale=so, zp=zo)
        opt = S.AddOptionsT()
        opt.fusedActivationFunction = S.ActivationFunctionType.RELU if relu else 0
        B.op(S.BuiltinOperator.ADD, 2, [ta, tb], [tc], S.BuiltinOptions.AddOptions, opt)
        return [ta, tb], [tc]
    buf = _build(fn)
    for res, (mode, _, _) in KERNEL_SETS.items():
        want = _invoke(buf, res, a, b)
        got = add_q(a, s1, z1, b, s2, z2, so, zo, mode=mode, act_min=zo if relu else None)
        assert_bits_equal(got, want, res)


@pytest.mark.parametrize("scale,zp", [(float(F(0.0237)), -7), (0.0625, 3)])
def test_quantize_dequantize(scale, zp):
    """QUANTIZE: reference = float32 division, ties away (TfLiteRound); optimized and XNNPACK
    = multiplication by the float32 reciprocal, ties to even.  DEQUANTIZE: reference and
    XNNPACK fl32((q - z) * s); optimized fl32(fl32(q * s) - fl32(z * s))."""
    S = schema
    rng = np.random.default_rng(9)
    ks = np.arange(-140, 140)
    x = np.concatenate([(rng.standard_normal(20000) * 3).astype(np.float32),
                        ((ks + 0.5) * np.float64(scale)).astype(np.float32)])

    def fq(B):
        tx = B.tensor([x.size], S.TensorType.FLOAT32, "x")
        tq = B.tensor([x.size], S.TensorType.INT8, "q", scale=scale, zp=zp)
        B.op(S.BuiltinOperator.QUANTIZE, 2, [tx], [tq])
        return [tx], [tq]
    q = np.arange(-128, 128).astype(np.int8)

    def fd(B):
        tq = B.tensor([256], S.TensorType.INT8, "q", scale=scale, zp=zp)
        ty = B.tensor([256], S.TensorType.FLOAT32, "y")
        B.op(S.BuiltinOperator.DEQUANTIZE, 2, [tq], [ty])
        return [tq], [ty]
    bq, bd = _build(fq), _build(fd)
    for res, (mode, _, _) in KERNEL_SETS.items():
        assert_bits_equal(quantize(x, scale, zp, mode=mode), _invoke(bq, res, x), res)
        assert_bits_equal(dequantize(q, scale, zp, mode=mode), _invoke(bd, res, q), res)
