"""Evaluate a refcomp model with the LiteRT (TFLite) interpreter.

No converter is involved: the ``.tflite`` flatbuffer is written operator by
operator with the schema bindings that ship with ``ai-edge-litert``
(``schema_py_generated`` object API), then run by
``ai_edge_litert.interpreter.Interpreter`` (CPU, built-in kernels):

=============  ==================================================================
dense          ``FULLY_CONNECTED`` (weights (out, in), as refcomp's)
conv2d         ``CONV_2D`` on NHWC (OHWI filter; NCHW by ``TRANSPOSE``); SAME or
               VALID, explicit pads by ``PAD``; groups > 1 not expressible
max/avg pool   ``MAX_POOL_2D`` / ``AVERAGE_POOL_2D``, SAME or VALID (TF's "same"
               average excludes the padding); explicit pads not expressible
activations    ``RELU``, ``TANH``, ``LOGISTIC``, ``SOFTMAX`` (last axis);
               hard_sigmoid not expressible
flatten,       ``RESHAPE``; dropout and linear: ``RESHAPE`` to the same shape
reshape
residual       the body, then ``ADD``
batch_norm     ``MUL`` then ``ADD`` (TF's converter folding, constants in float32;
               :mod:`._litert_rnn`)
lstm,          ``UNIDIRECTIONAL_SEQUENCE_LSTM`` / ``UNIDIRECTIONAL_SEQUENCE_RNN``
simple_rnn     (batch-major, variable state tensors); reverse and bidirectional
               by ``REVERSE_V2`` / ``CONCATENATION`` (:mod:`._litert_rnn`)
gru            no float GRU builtin: unrolled over time from FULLY_CONNECTED,
               LOGISTIC, TANH, MUL, ADD, SUB (both formulas; :mod:`._litert_rnn`)
conv1d,        not built here (no 1-D convolution builtin: converters reshape to
N-D pooling    CONV_2D; the pooling builtins are 2-D, without dilation or
               ceil_mode)
=============  ==================================================================

Quantizers (drawn arrays and the shipped models' weights, :mod:`._shipped`):
``QUANTIZE`` float32 -> int8 and ``DEQUANTIZE`` with per-tensor
scale and zero point, against ``affine(rounding="half_away")`` (TFLite's
``TfLiteRound``, FACTS.md §5.5).
"""

import numpy as np

from ..model import materialize
from ._codes import CodeTally
from ._common import NotBuilt, NotExpressible, layer_pads, require
from ._draw import case_seed, draw_examples
from ._integer_cases import LITERT_INTEGER_CASES
from ._litert_rnn import batch_norm_ops, recurrent_ops
from ._shipped import shipped_note, with_shipped

__all__ = ["litert_forward", "LITERT_CASES"]


def _schema():
    require("litert")
    from ai_edge_litert import schema_py_generated as S
    return S


class _Graph:
    """A one-subgraph TFLite model under construction."""

    def __init__(self, S):
        self.S = S
        self.buffers = [S.BufferT()]
        self.tensors, self.ops, self.codes = [], [], []
        self.states = []            # (variable tensor, initial value) set before invoke

    def tensor(self, shape, data=None, ttype=None, quant=None):
        S = self.S
        t = S.TensorT()
        t.shape = [int(s) for s in shape]
        t.type = S.TensorType.FLOAT32 if ttype is None else ttype
        t.name = f"t{len(self.tensors)}".encode()
        t.buffer = 0
        if data is not None:
            b = S.BufferT()
            b.data = np.frombuffer(np.ascontiguousarray(data).tobytes(), np.uint8)
            self.buffers.append(b)
            t.buffer = len(self.buffers) - 1
        if quant is not None:
            q = S.QuantizationParametersT()
            q.scale, q.zeroPoint = [float(quant[0])], [int(quant[1])]
            t.quantization = q
        self.tensors.append(t)
        return len(self.tensors) - 1

    def variable(self, shape, init=None):
        """A float32 state tensor the kernel updates: ``is_variable`` and the empty buffer 0
        (LiteRT 2.3.0 refuses a variable tensor with a buffer); the interpreter zeroes it
        when it allocates, then :func:`_interpret` writes ``init`` (if given) into it."""
        i = self.tensor(shape)
        self.tensors[i].isVariable = True
        if init is not None:
            self.states.append((i, np.ascontiguousarray(init, np.float32)))
        return i

    def const(self, a):
        a = np.asarray(a)
        tt = self.S.TensorType.INT32 if a.dtype.kind in "iu" else self.S.TensorType.FLOAT32
        return self.tensor(a.shape, a.astype(np.int32 if a.dtype.kind in "iu" else np.float32),
                           tt)

    def op(self, name, inputs, out_shape, opt_name=None, **opts):
        S = self.S
        code = getattr(S.BuiltinOperator, name)
        if code not in self.codes:
            self.codes.append(code)
        o = S.OperatorT()
        o.opcodeIndex = self.codes.index(code)
        o.inputs = list(inputs)
        multi = len(out_shape) > 0 and isinstance(out_shape[0], (list, tuple))
        tt, qq = opts.pop("_ttype", None), opts.pop("_quant", None)
        outs = [self.tensor(s, ttype=tt, quant=qq) for s in (out_shape if multi else [out_shape])]
        o.outputs = outs
        if opt_name is not None:
            opt = getattr(S, opt_name + "T")()
            for k, v in opts.items():
                setattr(opt, k, v)
            o.builtinOptionsType = getattr(S.BuiltinOptions, opt_name)
            o.builtinOptions = opt
        self.ops.append(o)
        return outs if multi else outs[0]

    def finish(self, inp, out):
        S = self.S
        import flatbuffers
        g = S.SubGraphT()
        g.tensors, g.inputs, g.outputs, g.operators = self.tensors, [inp], [out], self.ops
        m = S.ModelT()
        m.version = 3
        m.subgraphs = [g]
        m.buffers = self.buffers
        m.operatorCodes = []
        for c in self.codes:
            oc = S.OperatorCodeT()
            oc.builtinCode = c
            oc.deprecatedBuiltinCode = min(c, 127)
            oc.version = 1
            m.operatorCodes.append(oc)
        b = flatbuffers.Builder(1024)
        b.Finish(m.Pack(b), file_identifier=b"TFL3")
        return bytes(b.Output())


def _transpose(g, t, shape, perm):
    return g.op("TRANSPOSE", [t, g.const(np.array(perm))], [shape[p] for p in perm]), \
        tuple(shape[p] for p in perm)


def _reshape(g, t, shape):
    return g.op("RESHAPE", [t, g.const(np.array(shape))], shape, "ReshapeOptions",
                newShape=list(shape)), tuple(shape)


def _spatial(g, layer, t, shape):
    S = g.S
    a, k = layer.attrs, layer.kind
    nchw = a["layout"] == "NCHW"
    if nchw:
        t, shape = _transpose(g, t, shape, (0, 2, 3, 1))
    n, h, w, c = shape
    pads, ksz, s, d = layer_pads(layer, (h, w))
    same = isinstance(a["padding"], str) and a["padding"].lower() == "same"
    padded = any(pads[0] + pads[1])
    mode = S.Padding.SAME if same else S.Padding.VALID
    if k == "conv2d":
        if a["groups"] != 1:
            raise NotBuilt("CONV_2D with groups > 1 is not built here")
        W = np.asarray(materialize(layer.weights["W"]), np.float32)
        b = layer.weights.get("b")
        if padded and not same:
            t = g.op("PAD", [t, g.const(np.array([[0, 0], list(pads[0]), list(pads[1]),
                                                  [0, 0]]))],
                     [n, h + sum(pads[0]), w + sum(pads[1]), c])
            h, w = h + sum(pads[0]), w + sum(pads[1])
            pads = ((0, 0), (0, 0))
        o = W.shape[0]
        oh = (h + sum(pads[0]) - d[0] * (ksz[0] - 1) - 1) // s[0] + 1
        ow = (w + sum(pads[1]) - d[1] * (ksz[1] - 1) - 1) // s[1] + 1
        bias = g.const(np.zeros(o, np.float32) if b is None else
                       np.asarray(materialize(b), np.float32))
        y = g.op("CONV_2D", [t, g.const(W.transpose(0, 2, 3, 1)), bias], [n, oh, ow, o],
                 "Conv2DOptions", padding=mode, strideH=s[0], strideW=s[1],
                 dilationHFactor=d[0], dilationWFactor=d[1])
        out = (n, oh, ow, o)
    else:
        if padded and not same:
            raise NotExpressible(f"TFLite pooling takes SAME or VALID, not explicit pads {pads}")
        if k == "avg_pool2d" and padded and a["count_include_pad"]:
            raise NotExpressible("TFLite's SAME average pooling excludes the padding "
                                 "(count_include_pad=False)")
        oh = (h + sum(pads[0]) - ksz[0]) // s[0] + 1
        ow = (w + sum(pads[1]) - ksz[1]) // s[1] + 1
        y = g.op("MAX_POOL_2D" if k == "max_pool2d" else "AVERAGE_POOL_2D", [t],
                 [n, oh, ow, c], "Pool2DOptions", padding=mode, strideH=s[0], strideW=s[1],
                 filterHeight=ksz[0], filterWidth=ksz[1])
        out = (n, oh, ow, c)
    if nchw:
        return _transpose(g, y, out, (0, 3, 1, 2))
    return y, out


def _layer(g, layer, t, shape):
    k, a = layer.kind, layer.attrs
    if k == "dense" and (a.get("alpha", 1.0) != 1.0 or a.get("beta", 1.0) != 1.0):
        raise NotExpressible("TFLite FULLY_CONNECTED has no ONNX Gemm alpha / beta")
    if k == "dense":
        W = np.asarray(materialize(layer.weights["W"]), np.float32)
        b = layer.weights.get("b")
        ins = [t, g.const(W), g.const(np.asarray(materialize(b), np.float32)) if b is not None
               else -1]
        return g.op("FULLY_CONNECTED", ins, [shape[0], W.shape[0]], "FullyConnectedOptions"), \
            (shape[0], W.shape[0])
    if k in ("conv2d", "max_pool2d", "avg_pool2d"):
        return _spatial(g, layer, t, shape)
    if k == "activation":
        f = a["function"]
        ops = {"relu": "RELU", "tanh": "TANH", "sigmoid": "LOGISTIC"}
        if f in ops:
            return g.op(ops[f], [t], shape), shape
        if f == "softmax":
            if a["axis"] not in (-1, len(shape) - 1):
                raise NotExpressible("TFLite SOFTMAX works on the last axis")
            return g.op("SOFTMAX", [t], shape, "SoftmaxOptions", beta=1.0), shape
        if f == "linear":
            return _reshape(g, t, shape)
        raise NotExpressible(f"activation {f!r} has no TFLite builtin")
    if k in ("flatten", "reshape", "dropout"):
        new = (shape[0], int(np.prod(shape[1:]))) if k == "flatten" else \
            (shape[0],) + tuple(a["shape"]) if k == "reshape" else shape
        return _reshape(g, t, list(new))
    if k == "residual":
        if layer.weights.get("index_map") is not None:
            raise NotExpressible("a residual index map (selective addition)")
        ft, fs = t, shape
        for sub in layer.layers:
            ft, fs = _layer(g, sub, ft, fs)
        return g.op("ADD", [t, ft], shape, "AddOptions"), shape
    if k == "mgu":
        raise NotExpressible("TFLite has no MGU operator")
    if k == "batch_norm":
        return batch_norm_ops(g, layer, t, shape)
    if k == "conv1d":
        raise NotBuilt("conv1d: TFLite has no 1-D convolution builtin (converters lower it to "
                       "CONV_2D on a (N, 1, L, C) reshape); not built here")
    if k in ("max_pool", "avg_pool"):
        raise NotBuilt(f"{k} (N-D): TFLite's pooling builtins are 2-D only (MAX_POOL_2D / "
                       "AVERAGE_POOL_2D: SAME or VALID, no dilation, no ceil_mode); the "
                       "N-D pooling layer is not built here")
    if k in ("lstm", "gru", "simple_rnn"):
        return recurrent_ops(g, layer, t, shape)
    raise NotBuilt(f"layer kind {k!r} is not built by the LiteRT runner")


def _interpret(blob, inputs, states=()):
    require("litert")
    from ai_edge_litert.interpreter import Interpreter
    it = Interpreter(model_content=blob, num_threads=1)
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], inputs)
    for index, value in states:              # the subgraph's tensor indices are the file's
        it.set_tensor(index, value)
    it.invoke()
    return it.get_tensor(it.get_output_details()[0]["index"]).copy()


def litert_forward(model, x):
    """``model`` run by the LiteRT interpreter on float32 ``x``; a float32 ndarray."""
    S = _schema()
    x = np.ascontiguousarray(np.asarray(x, np.float32))
    g = _Graph(S)
    inp = g.tensor(x.shape)
    t, shape = inp, tuple(x.shape)
    for layer in model.layers:
        t, shape = _layer(g, layer, t, shape)
    if t == inp:
        t, shape = _reshape(g, t, list(shape))
    return np.asarray(_interpret(g.finish(inp, t), x, g.states), np.float32)


def _quantize(n, seed, *, dequant):
    S = _schema()
    from hypothesis import strategies as st

    from ..quantize import affine
    from ..testing.strategies import weight_arrays
    name = "DEQUANTIZE int8" if dequant else "QUANTIZE int8"
    tally = CodeTally()
    strat = weight_arrays(st.tuples(st.integers(1, 6), st.integers(1, 40)))
    drawn = [(w, None) for w in draw_examples(strat, n, case_seed(seed, name))]
    for w, _ in with_shipped(drawn):
        q0 = affine(w, 8, signed=True)
        s, zp = float(q0.params["scale"][0]), int(q0.params["zero_point"][0])
        q = affine(w, 8, signed=True, scale=s, zero_point=zp, rounding="half_away")
        g = _Graph(S)
        if dequant:
            inp = g.tensor(w.shape, ttype=S.TensorType.INT8, quant=(s, zp))
            out = g.op("DEQUANTIZE", [inp], w.shape)
            got = _interpret(g.finish(inp, out), q.codes.astype(np.int8))
            tally.exact(np.asarray(got, np.float32), q.dequantize(), "dequantized value")
        else:
            inp = g.tensor(w.shape)
            out = g.op("QUANTIZE", [inp], w.shape, _ttype=S.TensorType.INT8, _quant=(s, zp))
            tally.add(_interpret(g.finish(inp, out), w), w, q)
    tally.notes.append(shipped_note())
    return tally.result("quantizers", name)


LITERT_CASES = {
    "quantizers": [("QUANTIZE int8", lambda n, s: _quantize(n, s, dequant=False)),
                   ("DEQUANTIZE int8", lambda n, s: _quantize(n, s, dequant=True))],
    "pruning": [],
    "integer": LITERT_INTEGER_CASES,
}
