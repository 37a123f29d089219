"""Export an integer model to ONNX, as a QLinear (operator-oriented) or a QDQ graph.

:func:`to_onnx` writes the same integer network for ONNX Runtime, so that the "onnx" mode can
be compared with what ONNX Runtime computes (tests/test_integer_onnxruntime.py,
benchmarks/bench_integer.py):

* ``form="qlinear"``: QuantizeLinear -> QLinearConv (a dense layer is a 1x1 QLinearConv on an
  (N, I, 1, 1) view, which keeps its int32 bias in the accumulator; QLinearMatMul has no bias)
  -> Max / Min on codes for a fused clamp -> MaxPool / Flatten / Reshape on codes ->
  com.microsoft QLinearAdd for residual additions -> DequantizeLinear.
* ``form="qdq"``: float operators (Conv, Gemm for dense layers, MaxPool, Flatten, Reshape,
  Add, Relu / Clip) between DequantizeLinear / QuantizeLinear pairs holding the same
  parameters (weights and the int32 bias as DequantizeLinear of constants), which ONNX
  Runtime's graph optimizer fuses into its integer kernels (QLinearConv, QGemm, ...).

Requires the ``onnx`` package (imported on call).  Opset 21, NCHW, batch dimension dynamic.
"""

import numpy as np

from .._errors import FormatError, ParameterError
from .._validate import check_choice
from .run import integer_meta

__all__ = ["to_onnx", "FORMS"]

FORMS = ("qlinear", "qdq")
_ONNX_TYPES = {}


class _G:
    def __init__(self, helper, numpy_helper, dt):
        self.h, self.nh, self.dt = helper, numpy_helper, dt
        self.nodes, self.inits, self.n = [], [], 0
        self.taps = {}          # model path -> name of the code tensor it produces

    def name(self, base):
        self.n += 1
        return f"{base}_{self.n}"

    def const(self, base, arr):
        nm = self.name(base)
        self.inits.append(self.nh.from_array(np.asarray(arr), nm))
        return nm

    def node(self, op, inputs, base, domain=None, **attrs):
        out = self.name(base)
        kw = {"domain": domain} if domain else {}
        self.nodes.append(self.h.make_node(op, inputs, [out], name=out, **attrs, **kw))
        return out

    def qparams(self, s, z):
        return (self.const("scale", np.float32(s)),
                self.const("zp", np.array(z, dtype=self.dt)))


def _pads(padding):
    if isinstance(padding, str):
        if padding.lower() == "valid":
            return [0, 0, 0, 0]
        raise ParameterError("to_onnx: padding 'same' is not exported; use explicit pads")
    if isinstance(padding, int):
        return [padding] * 4
    a, b = padding
    if isinstance(a, (list, tuple)):
        return [a[0], b[0], a[1], b[1]]
    return [a, b, a, b]


def _pair(v):
    return [v, v] if isinstance(v, int) else list(v)


def _clamp(g, q, w_or_p, lo_full, hi_full):
    lo, hi = w_or_p
    if lo > lo_full:
        q = g.node("Max", [q, g.const("lo", np.array(lo, g.dt))], "clamp_lo")
    if hi < hi_full:
        q = g.node("Min", [q, g.const("hi", np.array(hi, g.dt))], "clamp_hi")
    return q


def _float_clamp(g, y, lo, hi, s, z, lo_full, hi_full):
    """Float Relu / Clip before a QuantizeLinear that realises the code clamp [lo, hi]."""
    if lo > lo_full and lo == z and hi == hi_full:
        return g.node("Relu", [y], "relu")
    if lo > lo_full or hi < hi_full:
        lo_f = np.float32((lo - z) * np.float32(s)) if lo > lo_full else np.float32(-np.inf)
        hi_f = np.float32((hi - z) * np.float32(s)) if hi < hi_full else np.float32(np.inf)
        return g.node("Clip", [y, g.const("min", lo_f), g.const("max", hi_f)], "clip")
    return y


def _walk(g, layers, q, s, z, prefix, meta, form, rng):
    lo_full, hi_full = rng
    for i, layer in enumerate(layers):
        path = f"{prefix}{i}"
        k, a = layer.kind, layer.attrs
        if k in ("dense", "conv2d"):
            w = layer.weights["W"]
            if w.mode != meta["mode"]:
                raise FormatError(f"to_onnx: layer {path} has mode {w.mode!r}")
            conv = k == "conv2d"
            codes = w.codes if conv else w.codes.reshape(w.codes.shape + (1, 1))
            attrs = dict(kernel_shape=list(codes.shape[2:]))
            if conv:
                attrs.update(pads=_pads(a["padding"]), strides=_pair(a["stride"]),
                             dilations=_pair(a["dilation"]), group=int(a["groups"]))
            if conv or form == "qdq":
                xin = q
            else:
                xin = g.node("Reshape", [q, g.const("shape", np.array(
                    [-1, codes.shape[1], 1, 1], np.int64))], "to4d")
            ws = np.broadcast_to(w.w_scale, (codes.shape[0],)).astype(np.float32)
            bias = w.bias if w.bias is not None else np.zeros(codes.shape[0], np.int32)
            if form == "qlinear":
                xs, xz = g.qparams(s, z)
                ys, yz = g.qparams(w.out_scale, w.out_zero_point)
                y = g.node("QLinearConv", [xin, xs, xz, g.const("w", codes), g.const("ws", ws),
                                           g.const("wz", np.zeros(codes.shape[0], np.int8)),
                                           ys, yz, g.const("b", bias)], "qconv", **attrs)
                y = _clamp(g, y, (w.act_min, w.act_max), lo_full, hi_full)
            else:
                xs, xz = g.qparams(s, z)
                xf = g.node("DequantizeLinear", [xin, xs, xz], "dq")
                if not conv:            # QDQ dense: a float Gemm (W (O, I), transB=1)
                    codes = w.codes
                wf = g.node("DequantizeLinear", [g.const("w", codes), g.const("ws", ws),
                                                 g.const("wz", np.zeros(codes.shape[0], np.int8))],
                            "dqw", axis=0)
                bs = (np.float32(w.in_scale) * ws).astype(np.float32)
                bf = g.node("DequantizeLinear", [g.const("b", bias), g.const("bs", bs),
                                                 g.const("bz", np.zeros(codes.shape[0], np.int32))],
                            "dqb", axis=0)
                yf = (g.node("Conv", [xf, wf, bf], "conv", **attrs) if conv else
                      g.node("Gemm", [xf, wf, bf], "gemm", transB=1))
                yf = _float_clamp(g, yf, w.act_min, w.act_max, w.out_scale, w.out_zero_point,
                                  lo_full, hi_full)
                ys, yz = g.qparams(w.out_scale, w.out_zero_point)
                y = g.node("QuantizeLinear", [yf, ys, yz], "q")
            if not conv and form == "qlinear":
                y = g.node("Flatten", [y], "to2d", axis=1)
            g.taps[path] = y
            q, s, z = y, w.out_scale, w.out_zero_point
        elif k in ("max_pool2d", "flatten", "reshape"):
            # QLinear form: the operator on codes; QDQ form: DequantizeLinear -> float
            # operator -> QuantizeLinear with the same parameters (the canonical pattern)
            t = q if form == "qlinear" else g.node("DequantizeLinear", [q, *g.qparams(s, z)],
                                                   "dq")
            if k == "max_pool2d":
                size = _pair(a["size"])
                st = size if a["stride"] is None else _pair(a["stride"])
                t = g.node("MaxPool", [t], "maxpool", kernel_shape=size, strides=st,
                           pads=_pads(a["padding"]))
            elif k == "flatten":
                t = g.node("Flatten", [t], "flatten", axis=1)
            else:
                shape = g.const("shape", np.array([-1] + list(a["shape"]), np.int64))
                t = g.node("Reshape", [t, shape], "reshape")
            q = t if form == "qlinear" else g.node("QuantizeLinear", [t, *g.qparams(s, z)], "q")
        elif k == "dropout":
            pass
        elif k == "activation":
            f = a["function"]
            if f in ("relu", "relu6"):
                from .pooling import relu_bounds
                lo, hi = relu_bounds(f, s, z, np.dtype(g.dt), meta["mode"])
                if form == "qlinear":
                    q = _clamp(g, q, (lo, hi), lo_full, hi_full)
                elif lo > lo_full or hi < hi_full:
                    t = g.node("DequantizeLinear", [q, *g.qparams(s, z)], "dq")
                    t = _float_clamp(g, t, lo, hi, s, z, lo_full, hi_full)
                    q = g.node("QuantizeLinear", [t, *g.qparams(s, z)], "q")
            elif f != "linear":
                raise FormatError(f"to_onnx: activation {f!r} is not exported")
        elif k == "residual":
            qb, sb, zb = _walk(g, layer.layers, q, s, z, path + "/", meta, form, rng)
            p = meta["add"][path]
            if form == "qlinear":
                ins = [q, *g.qparams(s, z), qb, *g.qparams(sb, zb),
                       *g.qparams(p["scale"], p["zero_point"])]
                y = g.node("QLinearAdd", ins, "qadd", domain="com.microsoft")
                y = _clamp(g, y, (p["act_min"], p["act_max"]), lo_full, hi_full)
            else:
                fa = g.node("DequantizeLinear", [q, *g.qparams(s, z)], "dq")
                fb = g.node("DequantizeLinear", [qb, *g.qparams(sb, zb)], "dq")
                yf = g.node("Add", [fa, fb], "add")
                yf = _float_clamp(g, yf, p["act_min"], p["act_max"], p["scale"],
                                  p["zero_point"], lo_full, hi_full)
                y = g.node("QuantizeLinear", [yf, *g.qparams(p["scale"], p["zero_point"])], "q")
            g.taps[path] = y
            q, s, z = y, p["scale"], p["zero_point"]
        else:
            raise FormatError(f"to_onnx: layer {path} ({k}) is not exported")
    return q, s, z


def to_onnx(model, *, form="qlinear", opset=21, intermediate=False):
    """The ONNX ModelProto of an integer model (see the module docstring).

    Parameters
    ----------
    model : integer refcomp.Model (:func:`refcomp.integer.quantize_model`)
    form : {"qlinear", "qdq"}
    opset : int, default 21 (plus com.microsoft 1 for QLinearAdd)
    intermediate : bool
        Also output the codes produced by every dense / conv2d layer and residual addition,
        as outputs named ``"codes/<path>"`` (e.g. ``"codes/3/2"``).

    Returns
    -------
    onnx.ModelProto with input "x" float32 (N, *input_shape) and output "y" float32.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    _ONNX_TYPES.update({np.int8: TensorProto.INT8, np.uint8: TensorProto.UINT8})
    check_choice("form", form, FORMS)
    meta = integer_meta(model)
    if model.input_shape is None:
        raise ParameterError("to_onnx needs a model with input_shape")
    dt = np.dtype(meta["act_dtype"]).type
    info = np.iinfo(dt)
    g = _G(helper, numpy_helper, dt)
    inp = meta["input"]
    q = g.node("QuantizeLinear", ["x", *g.qparams(inp["scale"], inp["zero_point"])], "qx")
    q, s, z = _walk(g, model.layers, q, inp["scale"], inp["zero_point"], "", meta, form,
                    (int(info.min), int(info.max)))
    g.nodes.append(helper.make_node("DequantizeLinear", [q, *g.qparams(s, z)], ["y"], name="dqy"))
    x_info = helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                           ["N"] + list(model.input_shape))
    y_info = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", None])
    graph = helper.make_graph(g.nodes, f"{model.name}_{form}", [x_info], [y_info], g.inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset),
                                                helper.make_opsetid("com.microsoft", 1)],
                          producer_name="refcomp")
    m.ir_version = 10
    onnx.checker.check_model(m)
    if intermediate:            # outputs of unknown shape: added after the check
        for path, name in g.taps.items():
            m.graph.node.append(helper.make_node("Identity", [name], [f"codes/{path}"]))
            m.graph.output.append(helper.make_value_info(
                f"codes/{path}", helper.make_tensor_type_proto(_ONNX_TYPES[g.dt], None)))
    return m
