"""Export an integer model as an int8 TFLite flatbuffer, with the schema module that ships in
the ``ai-edge-litert`` wheel (``ai_edge_litert.schema_py_generated``; no TensorFlow).

The graph is TFLite's NHWC rendering of the refcomp NCHW network: QUANTIZE, RESHAPE /
TRANSPOSE into NHWC, CONV_2D (filters OHWI, per-channel scales on axis 0) or
DEPTHWISE_CONV_2D (filters 1HWO, scales on axis 3), MAX_POOL_2D / AVERAGE_POOL_2D, TRANSPOSE
back to NCHW before a flatten (refcomp flattens in NCHW order), FULLY_CONNECTED (weights (O, I),
per-channel or per-tensor), ADD for residual blocks, fused RELU / RELU6 from the layers'
clamps, DEQUANTIZE.  Every tensor carries exactly the scales and zero points of the refcomp
integer model; biases are int32 with scale s_in * s_w[c], so LiteRT computes its multipliers
from the same numbers (``double(s_in) * double(s_w[c]) / double(s_out)``).

Padding must be what TFLite can express (VALID, or SAME with TensorFlow's rule); grouped
convolutions other than depthwise are refused.
"""

import numpy as np

from .._errors import FormatError, ParameterError
from .pooling import relu_bounds
from .requantize import LITERT_MODES
from .run import integer_meta

__all__ = ["to_tflite"]


class _B:
    def __init__(self, S):
        self.S = S
        self.tensors, self.buffers, self.ops, self.codes = [], [S.BufferT()], [], {}

    def tensor(self, shape, ttype, name, data=None, scale=None, zp=None, axis=0):
        S = self.S
        t = S.TensorT()
        t.shape = [int(s) for s in shape]
        t.type = ttype
        t.name = name
        if data is not None:
            b = S.BufferT()
            b.data = np.frombuffer(np.ascontiguousarray(data).tobytes(), np.uint8).tolist()
            self.buffers.append(b)
            t.buffer = len(self.buffers) - 1
        else:
            t.buffer = 0
        if scale is not None:
            q = S.QuantizationParametersT()
            q.scale = [float(v) for v in np.atleast_1d(scale)]
            q.zeroPoint = [int(v) for v in np.atleast_1d(zp)]
            q.quantizedDimension = axis
            t.quantization = q
        self.tensors.append(t)
        return len(self.tensors) - 1

    def op(self, code, version, inputs, outputs, opt_type=0, opt=None):
        S = self.S
        if code not in self.codes:
            oc = S.OperatorCodeT()
            oc.builtinCode = code
            oc.deprecatedBuiltinCode = min(code, 127)
            oc.version = version
            self.codes[code] = (len(self.codes), oc)
        o = S.OperatorT()
        o.opcodeIndex = self.codes[code][0]
        o.inputs, o.outputs = list(inputs), list(outputs)
        o.builtinOptionsType, o.builtinOptions = opt_type, opt
        self.ops.append(o)


def _same_or_valid(pads, in_hw, k_hw, stride):
    from ..layers._common import same_padding_1d
    if all(p == 0 for pr in pads for p in pr):
        return 1                                            # VALID
    same = tuple(same_padding_1d(in_hw[a], k_hw[a], stride[a], 1) for a in (0, 1))
    if tuple(tuple(p) for p in pads) == same:
        return 0                                            # SAME
    raise ParameterError(f"to_tflite: padding {pads} is neither VALID nor SAME for input "
                         f"{in_hw}, kernel {k_hw}, stride {stride}")


def _act(S, lo, hi, s, z, dt, mode):
    full = np.iinfo(dt)
    if (lo, hi) == (int(full.min), int(full.max)):
        return S.ActivationFunctionType.NONE
    if (lo, hi) == relu_bounds("relu", s, z, np.dtype(dt), mode):
        return S.ActivationFunctionType.RELU
    if (lo, hi) == relu_bounds("relu6", s, z, np.dtype(dt), mode):
        return S.ActivationFunctionType.RELU6
    raise ParameterError(f"to_tflite: clamp [{lo}, {hi}] is not a TFLite fused activation")


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def to_tflite(model, *, batch=1, float_io=True):
    """The int8 TFLite flatbuffer (bytes) of an integer model (module docstring).

    Parameters
    ----------
    model : integer refcomp.Model of a TFLite / LiteRT mode (:data:`LITERT_MODES`), int8
        activations, NCHW; the file holds the numbers only, so the mode is the one a caller
        compares LiteRT against
    batch : int, the static batch size of the graph (LiteRT can resize it)
    float_io : bool
        True (default): float32 input and output through QUANTIZE / DEQUANTIZE.  False: the
        graph takes and returns the int8 codes (to compare the integer kernels alone).

    Returns
    -------
    bytes, a TFLite model (file identifier "TFL3") with one input and one output.
    """
    import flatbuffers
    from ai_edge_litert import schema_py_generated as S
    meta = integer_meta(model)
    if meta["mode"] not in LITERT_MODES or meta["act_dtype"] != "int8":
        raise ParameterError("to_tflite exports int8 models of the TFLite / LiteRT modes")
    if model.input_shape is None:
        raise ParameterError("to_tflite needs a model with input_shape")
    Op = S.BuiltinOperator
    B = _B(S)
    I8, I32, F32 = S.TensorType.INT8, S.TensorType.INT32, S.TensorType.FLOAT32
    mode = meta["mode"]
    s, z = meta["input"]["scale"], meta["input"]["zero_point"]
    shape = [batch] + list(model.input_shape)
    if float_io:
        x_in = B.tensor(shape, F32, "x")
        t = B.tensor(shape, I8, "x_q", scale=s, zp=z)
        B.op(Op.QUANTIZE, 2, [x_in], [t])
    else:
        x_in = t = B.tensor(shape, I8, "x_q", scale=s, zp=z)
    state = {"t": t, "shape": shape, "nhwc": False, "s": s, "z": z, "clamp": None}

    def reshape(new_shape, name):
        out = B.tensor(new_shape, I8, name, scale=state["s"], zp=state["z"])
        sh = B.tensor([len(new_shape)], I32, name + "_shape", data=np.array(new_shape, np.int32))
        B.op(Op.RESHAPE, 1, [state["t"], sh], [out])
        state.update(t=out, shape=list(new_shape))

    def transpose(perm, name):
        new_shape = [state["shape"][p] for p in perm]
        out = B.tensor(new_shape, I8, name, scale=state["s"], zp=state["z"])
        pm = B.tensor([len(perm)], I32, name + "_perm", data=np.array(perm, np.int32))
        B.op(Op.TRANSPOSE, 2, [state["t"], pm], [out])
        state.update(t=out, shape=new_shape)

    def to_nhwc(name):
        if not state["nhwc"]:
            if len(state["shape"]) != 4:
                raise ParameterError("to_tflite: a 4-D NCHW tensor is needed here")
            transpose([0, 2, 3, 1], name)
            state["nhwc"] = True

    def walk(layers, prefix):
        for i, layer in enumerate(layers):
            path = f"{prefix}{i}"
            k, a = layer.kind, layer.attrs
            name = f"{path}_{k}"
            if k == "reshape":
                if state["nhwc"]:
                    transpose([0, 3, 1, 2], name + "_nchw")
                    state["nhwc"] = False
                reshape([batch] + list(a["shape"]), name)
            elif k == "flatten":
                if state["nhwc"]:
                    transpose([0, 3, 1, 2], name + "_nchw")
                    state["nhwc"] = False
                reshape([batch, int(np.prod(state["shape"][1:]))], name)
            elif k == "dropout":
                continue
            elif k == "activation":
                f = a["function"]
                if f == "linear":
                    continue
                lo, hi = relu_bounds(f, state["s"], state["z"], np.dtype(np.int8), mode)
                if state["clamp"] is not None and state["clamp"][0] >= lo and \
                        state["clamp"][1] <= hi:
                    continue                    # fused into the producer: an identity here
                out = B.tensor(state["shape"], I8, name, scale=state["s"], zp=state["z"])
                B.op(Op.RELU if f == "relu" else Op.RELU6, 2, [state["t"]], [out])
                state.update(t=out, clamp=(lo, hi))
                continue
            elif k in ("max_pool2d", "avg_pool2d"):
                to_nhwc(name + "_nhwc")
                ks = _pair(a["size"])
                st = ks if a["stride"] is None else _pair(a["stride"])
                from ..layers._common import resolve_padding
                pads = resolve_padding(a["padding"], state["shape"][1:3], ks, st, (1, 1))
                if k == "avg_pool2d" and any(p for pr in pads for p in pr) \
                        and a["count_include_pad"]:
                    raise ParameterError("to_tflite: TFLite averages real elements only; use "
                                         "count_include_pad=False with padding")
                pad = _same_or_valid(pads, state["shape"][1:3], ks, st)
                oh = (state["shape"][1] + sum(pads[0]) - ks[0]) // st[0] + 1
                ow = (state["shape"][2] + sum(pads[1]) - ks[1]) // st[1] + 1
                shp = [batch, oh, ow, state["shape"][3]]
                out = B.tensor(shp, I8, name, scale=state["s"], zp=state["z"])
                opt = S.Pool2DOptionsT()
                opt.padding, opt.strideH, opt.strideW = pad, st[0], st[1]
                opt.filterHeight, opt.filterWidth = ks
                opt.fusedActivationFunction = S.ActivationFunctionType.NONE
                B.op(Op.MAX_POOL_2D if k == "max_pool2d" else Op.AVERAGE_POOL_2D, 2,
                     [state["t"]], [out], S.BuiltinOptions.Pool2DOptions, opt)
                state.update(t=out, shape=shp)
            elif k in ("dense", "conv2d"):
                w = layer.weights["W"]
                if (w.in_scale, w.in_zero_point) != (state["s"], state["z"]):
                    raise FormatError(f"to_tflite: layer {path} does not take the parameters "
                                      "of its input tensor")
                o = w.codes.shape[0]
                ws = np.broadcast_to(w.w_scale, (o,)).astype(np.float32)
                per_channel = w.w_scale.size > 1
                bias = w.bias if w.bias is not None else np.zeros(o, np.int32)
                bsc = w.acc_scales().astype(np.float32)
                fa = _act(S, w.act_min, w.act_max, w.out_scale, w.out_zero_point, np.int8, mode)
                if k == "dense":
                    if len(state["shape"]) != 2:
                        raise ParameterError(f"to_tflite: layer {path}: 2-D input expected")
                    wt = B.tensor(w.codes.shape, I8, name + "_w", data=w.codes,
                                  scale=ws if per_channel else ws[:1],
                                  zp=[0] * (o if per_channel else 1))
                    bt = B.tensor([o], I32, name + "_b", data=bias,
                                  scale=bsc if per_channel else bsc[:1],
                                  zp=[0] * (o if per_channel else 1))
                    shp = [batch, o]
                    out = B.tensor(shp, I8, name, scale=w.out_scale, zp=w.out_zero_point)
                    opt = S.FullyConnectedOptionsT()
                    opt.fusedActivationFunction = fa
                    B.op(Op.FULLY_CONNECTED, 5, [state["t"], wt, bt], [out],
                         S.BuiltinOptions.FullyConnectedOptions, opt)
                else:
                    to_nhwc(name + "_nhwc")
                    c = state["shape"][3]
                    g = a["groups"]
                    st, dil = _pair(a["stride"]), _pair(a["dilation"])
                    from ..layers._common import resolve_padding
                    pads = resolve_padding(a["padding"], state["shape"][1:3], w.codes.shape[2:],
                                           st, dil)
                    if dil != (1, 1) and any(p for pr in pads for p in pr):
                        raise ParameterError("to_tflite: dilated SAME convolutions not exported")
                    pad = _same_or_valid(pads, state["shape"][1:3], w.codes.shape[2:], st)
                    kh, kw = w.codes.shape[2:]
                    oh = (state["shape"][1] + sum(pads[0]) - dil[0] * (kh - 1) - 1) // st[0] + 1
                    ow = (state["shape"][2] + sum(pads[1]) - dil[1] * (kw - 1) - 1) // st[1] + 1
                    shp = [batch, oh, ow, o]
                    out = B.tensor(shp, I8, name, scale=w.out_scale, zp=w.out_zero_point)
                    bt = B.tensor([o], I32, name + "_b", data=bias,
                                  scale=bsc if per_channel else bsc[:1],
                                  zp=[0] * (o if per_channel else 1))
                    if g == 1:
                        filt = np.ascontiguousarray(w.codes.transpose(0, 2, 3, 1))   # OHWI
                        wt = B.tensor(filt.shape, I8, name + "_w", data=filt,
                                      scale=ws if per_channel else ws[:1],
                                      zp=[0] * (o if per_channel else 1), axis=0)
                        opt = S.Conv2DOptionsT()
                        code, ver, otype = Op.CONV_2D, 3, S.BuiltinOptions.Conv2DOptions
                    elif g == c:
                        filt = np.ascontiguousarray(w.codes.transpose(1, 2, 3, 0))   # 1HWO
                        wt = B.tensor(filt.shape, I8, name + "_w", data=filt,
                                      scale=ws if per_channel else ws[:1],
                                      zp=[0] * (o if per_channel else 1), axis=3)
                        opt = S.DepthwiseConv2DOptionsT()
                        opt.depthMultiplier = o // c
                        code, ver = Op.DEPTHWISE_CONV_2D, 3
                        otype = S.BuiltinOptions.DepthwiseConv2DOptions
                    else:
                        raise ParameterError(f"to_tflite: layer {path}: grouped convolution "
                                             f"(groups={g}) is not exported")
                    opt.padding, opt.strideH, opt.strideW = pad, st[0], st[1]
                    opt.dilationHFactor, opt.dilationWFactor = dil
                    opt.fusedActivationFunction = fa
                    B.op(code, ver, [state["t"], wt, bt], [out], otype, opt)
                state.update(t=out, shape=shp, s=w.out_scale, z=w.out_zero_point,
                             clamp=(w.act_min, w.act_max))
            elif k == "residual":
                saved = dict(state)
                walk(layer.layers, path + "/")
                body = dict(state)
                if body["nhwc"] != saved["nhwc"]:
                    state.update(saved)
                    raise ParameterError("to_tflite: residual block changes the layout")
                p = meta["add"][path]
                fa = _act(S, p["act_min"], p["act_max"], p["scale"], p["zero_point"], np.int8,
                          mode)
                out = B.tensor(body["shape"], I8, name, scale=p["scale"], zp=p["zero_point"])
                opt = S.AddOptionsT()
                opt.fusedActivationFunction = fa
                B.op(Op.ADD, 2, [saved["t"], body["t"]], [out], S.BuiltinOptions.AddOptions, opt)
                state.update(t=out, shape=body["shape"], s=p["scale"], z=p["zero_point"],
                             clamp=(p["act_min"], p["act_max"]))
            else:
                raise FormatError(f"to_tflite: layer {path} ({k}) is not exported")
            # state["clamp"]: the code range the current tensor is known to lie in (set by
            # a fused activation, kept by pooling / reshape / flatten), so that a following
            # ReLU already enforced by it is exported as nothing.

    walk(model.layers, "")
    if state["nhwc"]:
        transpose([0, 3, 1, 2], "out_nchw")
    if float_io:
        y = B.tensor(state["shape"], F32, "y")
        B.op(Op.DEQUANTIZE, 2, [state["t"]], [y])
    else:
        y = state["t"]
    sg = S.SubGraphT()
    sg.tensors, sg.inputs, sg.outputs, sg.operators = B.tensors, [x_in], [y], B.ops
    sg.name = "main"
    m = S.ModelT()
    m.version = 3
    m.operatorCodes = [oc for _, oc in sorted(B.codes.values(), key=lambda v: v[0])]
    m.subgraphs = [sg]
    m.buffers = B.buffers
    m.description = f"refcomp integer model {model.name} ({mode})"
    b = flatbuffers.Builder(1 << 16)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())
