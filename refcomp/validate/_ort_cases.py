"""ONNX Runtime cases of the quantizers and integer suites (FACTS.md §5.6-5.7, §6.3).

==============================  ===========================================================
QuantizeLinear uint8 / int8     per tensor and per axis (axis 0) vs ``affine(rounding=
                                "half_even", scale_op="divide")`` codes
DequantizeLinear                ``(q - zp) * scale`` in float32 vs ``dequantize()``, bits
Cast float8e4m3fn / e5m2        ``Cast(saturate=1)`` vs ``to_float8_*(saturate=True)``
                                (the ONNX saturate table: inf -> max)
Cast bfloat16                   ``Cast`` to BFLOAT16 and back vs ``to_bfloat16``
MatMulInteger, ConvInteger      int32 accumulation vs exact int64 products
QLinearConv, QLinearMatMul,     refcomp.integer's mode "onnx", bit for bit
QLinear / QDQ shipped models    (:mod:`refcomp.validate._integer_cases`)
==============================  ===========================================================

Each case is one small ONNX graph built with ``onnx.helper`` and run by an
``InferenceSession`` (CPU).
"""

import numpy as np

from ..quantize import affine, to_bfloat16, to_float8_e4m3fn, to_float8_e5m2
from ._codes import CodeTally
from ._common import require
from ._draw import case_seed, draw_examples
from ._integer_cases import ORT_INTEGER_CASES
from ._shipped import shipped_note, with_shipped

__all__ = ["ORT_CASES"]

OPSET = 21


def _session(nodes, inputs, outputs, inits=()):
    onnx, ort = require("onnx"), require("onnxruntime")
    h = onnx.helper
    g = h.make_graph(nodes, "case", inputs, outputs, list(inits))
    m = h.make_model(g, opset_imports=[h.make_opsetid("", OPSET)])
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(m.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def _vi(name, elem, shape=None):
    onnx = require("onnx")
    return onnx.helper.make_tensor_value_info(name, elem, shape)


def _draws(n, seed, name, **kw):
    from hypothesis import strategies as st

    from ..testing.strategies import affine_params, weight_arrays
    shape = st.tuples(st.integers(1, 6), st.integers(1, 40))
    return with_shipped(draw_examples(st.tuples(weight_arrays(shape, **kw),
                                                affine_params(ndim=2)), n,
                                      case_seed(seed, name)))


def _quantize_linear(n, seed, *, signed, per_axis, dequant=False):
    onnx = require("onnx")
    TP, nh = onnx.TensorProto, onnx.numpy_helper
    kind = "int8" if signed else "uint8"
    name = (f"{'DequantizeLinear' if dequant else 'QuantizeLinear'} {kind} per "
            f"{'axis' if per_axis else 'tensor'}")
    tally = CodeTally()
    tally.notes.append(shipped_note())
    zdt = np.int8 if signed else np.uint8
    for w, p in _draws(n, seed, name):
        axis = 0 if per_axis else None
        q0 = affine(w, 8, symmetric=p["symmetric"], signed=signed, axis=axis)
        s, zp = q0.params["scale"], q0.params["zero_point"]
        q = affine(w, 8, scale=s, zero_point=zp, signed=signed, axis=axis)
        sc = s if per_axis else s.reshape(())
        z = zp.astype(zdt) if per_axis else zp.astype(zdt).reshape(())
        inits = [nh.from_array(sc.astype(np.float32), "s"), nh.from_array(z, "z")]
        attrs = {"axis": 0} if per_axis else {}
        if dequant:
            node = onnx.helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"], **attrs)
            sess = _session([node], [_vi("q", TP.INT8 if signed else TP.UINT8, list(w.shape))],
                            [_vi("y", TP.FLOAT)], inits)
            out = sess.run(None, {"q": q.codes.astype(zdt)})[0]
            tally.exact(out, q.dequantize(), "dequantized value")
        else:
            node = onnx.helper.make_node("QuantizeLinear", ["x", "s", "z"], ["y"], **attrs)
            sess = _session([node], [_vi("x", TP.FLOAT, list(w.shape))],
                            [_vi("y", TP.INT8 if signed else TP.UINT8)], inits)
            tally.add(sess.run(None, {"x": w})[0], w, q)
    return tally.result("quantizers", name)


def _cast(n, seed, *, fmt):
    onnx = require("onnx")
    TP = onnx.TensorProto
    name = f"Cast {fmt}"
    elem = {"float8e4m3fn": TP.FLOAT8E4M3FN, "float8e5m2": TP.FLOAT8E5M2,
            "bfloat16": TP.BFLOAT16}[fmt]
    ref = {"float8e4m3fn": lambda w: to_float8_e4m3fn(w, saturate=True),
           "float8e5m2": lambda w: to_float8_e5m2(w, saturate=True),
           "bfloat16": lambda w: to_bfloat16(w)}[fmt]
    tally = CodeTally()
    tally.notes.append(shipped_note())
    for w, _ in _draws(n, seed, name, subnormals=True, specials=True):
        attrs = {} if fmt == "bfloat16" else {"saturate": 1}
        nodes = [onnx.helper.make_node("Cast", ["x"], ["c"], to=elem, **attrs),
                 onnx.helper.make_node("Cast", ["c"], ["y"], to=TP.FLOAT)]
        sess = _session(nodes, [_vi("x", TP.FLOAT, list(w.shape))], [_vi("y", TP.FLOAT)])
        back = np.asarray(sess.run(None, {"x": w})[0], np.float32)
        q = ref(w)
        # the float32 value of a format value is exact: its pattern is refcomp's encoding
        codes = ref(back).codes
        tally.add(codes, w, q)
    return tally.result("quantizers", name)


def _integer(n, seed, *, conv):
    onnx = require("onnx")
    TP = onnx.TensorProto
    name = "ConvInteger" if conv else "MatMulInteger"
    rng = np.random.default_rng(case_seed(seed, name))
    tally = CodeTally()
    for _ in range(n):
        za, zb = int(rng.integers(0, 256)), int(rng.integers(-128, 128))
        if conv:
            nb, c, hh, ww = rng.integers(1, 4), rng.integers(1, 4), rng.integers(3, 7), \
                rng.integers(3, 7)
            o, k = rng.integers(1, 4), rng.integers(1, 4)
            a = rng.integers(0, 256, (nb, c, hh, ww)).astype(np.uint8)
            b = rng.integers(-128, 128, (o, c, k, k)).astype(np.int8)
            a64, b64 = a.astype(np.int64) - za, b.astype(np.int64) - zb
            oh, ow = hh - k + 1, ww - k + 1
            ref = np.zeros((nb, o, oh, ow), np.int64)
            for i in range(k):
                for j in range(k):
                    ref += np.einsum("nchw,oc->nohw", a64[:, :, i:i + oh, j:j + ow],
                                     b64[:, :, i, j])
            node = onnx.helper.make_node("ConvInteger", ["a", "b", "za", "zb"], ["y"])
        else:
            m, k, o = rng.integers(1, 30, 3)
            a = rng.integers(0, 256, (m, k)).astype(np.uint8)
            b = rng.integers(-128, 128, (k, o)).astype(np.int8)
            ref = (a.astype(np.int64) - za) @ (b.astype(np.int64) - zb)
            node = onnx.helper.make_node("MatMulInteger", ["a", "b", "za", "zb"], ["y"])
        inits = [onnx.numpy_helper.from_array(np.array(za, np.uint8), "za"),
                 onnx.numpy_helper.from_array(np.array(zb, np.int8), "zb")]
        try:
            sess = _session([node], [_vi("a", TP.UINT8, list(a.shape)),
                                     _vi("b", TP.INT8, list(b.shape))],
                            [_vi("y", TP.INT32)], inits)
            got = sess.run(None, {"a": a, "b": b})[0].astype(np.int64)
        except Exception as exc:                 # ORT without this kernel for the types
            from ._report import CaseResult
            return CaseResult("integer", name, verdict="known difference",
                              note=f"ONNX Runtime refused uint8 x int8: "
                                   f"{str(exc).splitlines()[0][:120]}")
        tally.exact(got, ref, "int32 accumulator")
    return tally.result("integer", name)


ORT_CASES = {
    "quantizers": [
        ("QuantizeLinear uint8 per tensor",
         lambda n, s: _quantize_linear(n, s, signed=False, per_axis=False)),
        ("QuantizeLinear int8 per tensor",
         lambda n, s: _quantize_linear(n, s, signed=True, per_axis=False)),
        ("QuantizeLinear int8 per axis",
         lambda n, s: _quantize_linear(n, s, signed=True, per_axis=True)),
        ("DequantizeLinear int8 per axis",
         lambda n, s: _quantize_linear(n, s, signed=True, per_axis=True, dequant=True)),
        ("Cast float8e4m3fn", lambda n, s: _cast(n, s, fmt="float8e4m3fn")),
        ("Cast float8e5m2", lambda n, s: _cast(n, s, fmt="float8e5m2")),
        ("Cast bfloat16", lambda n, s: _cast(n, s, fmt="bfloat16")),
    ],
    "pruning": [],
    "integer": [("MatMulInteger", lambda n, s: _integer(n, s, conv=False)),
                ("ConvInteger", lambda n, s: _integer(n, s, conv=True))] + ORT_INTEGER_CASES,
}
