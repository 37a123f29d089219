"""Import ONNX graphs as :class:`refcomp.Model` (needs the ``onnx`` package).

The graph is interpreted symbolically, node by node in file order (ONNX
requires topological order): every dynamic tensor is the chain of refcomp
layers applied to the single graph input; small integer tensors (shapes,
indices) are folded to constants, the batch dimension of ``Shape`` being a
marker, so the shape arithmetic that ``torch.onnx.export`` writes (Shape,
Gather, Unsqueeze, Concat, Slice, Cast, ConstantOfShape) is understood.

Supported operators: Gemm (alpha = beta = 1, transA = 0), MatMul with a
constant right operand (+ a following Add of a constant bias), Conv, MaxPool,
AveragePool (ceil_mode = 0), Relu, Sigmoid, Tanh, Softmax, Flatten (axis 1),
Reshape (batch axis kept), BatchNormalization, Identity, Dropout, Add of two
tensors (``x + f(x)``: a ``residual`` layer), Transpose of a sequence
between batch-first and time-major (perm 1,0,2), and forward LSTM / GRU
(default activations, no clip, no peepholes, zero or absent initial state,
layout 0) followed by Squeeze/Gather of ``Y`` or ``Y_h``, stacked
recurrent layers (``num_layers > 1``: the zero initial states are sliced per
layer) and ``y[:, -1]`` (Gather axis 1, index -1, of the batch-first output
sequence right after the LSTM/GRU: its last state).  Gate orders are
converted by :mod:`refcomp.convert` (ONNX LSTM i,o,f,c; GRU z,r,h); a GRU
with ``linear_before_reset = 1`` becomes ``reset_after=True``.  Any other op,
attribute value or topology raises :class:`FormatError` naming the node, its
op and why it is not supported (e.g. a Slice or Gather of an activation other
than ``y[:, -1]``: refcomp folds those ops only on constants).
Weights are exact copies (permuted only) of the initializers.
"""

import os

import numpy as np

from .._errors import FormatError, RefcompError
from .. import convert
from ..model import Layer, Model
from .keras import add_chains, out_shape

__all__ = ["load", "SUPPORTED_OPS"]

SUPPORTED_OPS = ("Gemm", "MatMul", "Add", "Conv", "MaxPool", "AveragePool", "Relu", "Sigmoid",
                 "Tanh", "Softmax", "Flatten", "Reshape", "BatchNormalization", "Identity",
                 "Dropout", "Transpose", "LSTM", "GRU", "Squeeze", "Unsqueeze", "Gather",
                 "Shape", "Constant", "ConstantOfShape", "Concat", "Slice", "Cast")
_BATCH = np.int64(-(1 << 40))     # marker of the symbolic batch size in folded shapes


class _T:
    """Dynamic batch-first tensor: layer chain from the input and per-sample shape."""

    def __init__(self, chain, shape):
        self.chain, self.shape = chain, tuple(int(s) for s in shape)


class _TimeMajor:
    def __init__(self, t):
        self.t = t


class _RNNOut:
    def __init__(self, which, kind, name, attrs, weights, t):
        self.which, self.kind, self.name, self.attrs, self.weights, self.t = \
            which, kind, name, attrs, weights, t

    def finish(self, return_sequences):
        attrs = dict(self.attrs, return_sequences=return_sequences)
        layer = Layer(self.kind, name=self.name, attrs=attrs, weights=self.weights)
        return _T(self.t.chain + (layer,), out_shape(layer, self.t.shape))


class _Zeros:
    """ConstantOfShape(0) of a batch-dependent shape (an initial RNN state)."""


def _describe(v):
    """What a non-constant value is, for error messages."""
    if isinstance(v, _T):
        return f"an activation tensor of per-sample shape {v.shape}"
    if isinstance(v, _TimeMajor):
        return f"a time-major activation sequence of per-sample shape {v.t.shape}"
    if isinstance(v, _RNNOut):
        return f"the {v.which} output of recurrent node {v.name!r}"
    if isinstance(v, _Zeros):
        return "a batch-dependent zero tensor (an initial recurrent state)"
    if isinstance(v, _Unused):
        return f"output {v.name!r} of node {v.node.name!r}, which refcomp does not model"
    return type(v).__name__


def _fail(node, msg):
    raise FormatError(f"node {node.name!r} (op {node.op_type}): {msg}")


def _attrs(node):
    import onnx
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _dec(v):
    return v.decode() if isinstance(v, bytes) else v


def _append(node, t, layer):
    return _T(t.chain + (layer,), out_shape(layer, t.shape))


def _pads(node, a, nd=2):
    auto = _dec(a.get("auto_pad", "NOTSET"))
    if auto == "VALID":
        return 0
    if auto == "SAME_UPPER":
        return "same"
    if auto != "NOTSET":
        _fail(node, f"auto_pad={auto} is not supported")
    p = list(a.get("pads", [0] * 2 * nd))
    return ((int(p[0]), int(p[2])), (int(p[1]), int(p[3])))


class _Interp:
    def __init__(self, graph):
        from onnx import numpy_helper
        self.v = {}
        for init in graph.initializer:
            self.v[init.name] = numpy_helper.to_array(init)
        self.np_helper = numpy_helper

    def get(self, node, i):
        if i >= len(node.input) or node.input[i] == "":
            return None
        name = node.input[i]
        if name not in self.v:
            _fail(node, f"input {name!r} is not defined before the node")
        return self.v[name]

    def const(self, node, i, what):
        v = self.get(node, i)
        if not isinstance(v, np.ndarray):
            _fail(node, f"{what} ({node.input[i]!r}) must be a constant (initializer, Constant "
                  f"or folded shape arithmetic) but is {_describe(v)}; refcomp models "
                  f"{node.op_type} only on constants, so this use is not supported")
        return v

    def weight(self, node, i, what):
        v = self.const(node, i, what)
        if v.dtype not in (np.float32, np.float64):
            _fail(node, f"{what} has dtype {v.dtype}; float32/float64 weights only")
        return np.array(v, copy=True)

    def dyn(self, node, i=0):
        v = self.get(node, i)
        if not isinstance(v, _T):
            _fail(node, f"input {node.input[i]!r} must be a batch-first activation tensor")
        return v

    # -- one node -------------------------------------------------------------------------
    def run(self, node):
        op, a = node.op_type, _attrs(node)
        fn = getattr(self, "op_" + op, None)
        if fn is None:
            _fail(node, f"operator {op} is not supported (supported: {', '.join(SUPPORTED_OPS)})")
        try:
            outs = fn(node, a)
        except RefcompError as exc:
            if str(exc).startswith("node "):
                raise
            _fail(node, str(exc))
        except (KeyError, IndexError, ValueError, TypeError) as exc:
            # malformed attributes/inputs (a missing kernel_shape, a bad axis...)
            _fail(node, f"malformed node ({type(exc).__name__}: {exc})")
        if not isinstance(outs, tuple):
            outs = (outs,)
        for name, val in zip(node.output, outs):
            if name:
                self.v[name] = val
        for name in node.output[len(outs):]:
            if name:
                self.v[name] = _Unused(node, name)

    # constants and shape arithmetic (folded)
    def op_Constant(self, node, a):
        for k in ("value", "value_float", "value_floats", "value_int", "value_ints"):
            if k in a:
                v = a[k]
                return self.np_helper.to_array(v) if k == "value" else np.array(v)
        _fail(node, "only value/value_float(s)/value_int(s) constants are supported")

    def op_Shape(self, node, a):
        v = self.get(node, 0)
        if isinstance(v, _T):
            return np.array((_BATCH,) + v.shape, dtype=np.int64)
        if isinstance(v, _TimeMajor):
            return np.array((v.t.shape[0], _BATCH) + v.t.shape[1:], dtype=np.int64)
        return np.array(self.const(node, 0, "input").shape, dtype=np.int64)

    def _axes(self, node, a, i):
        ax = a.get("axes")
        if ax is None and len(node.input) > i and node.input[i]:
            ax = self.const(node, i, "axes")
        return None if ax is None else [int(x) for x in np.ravel(ax)]

    def op_Gather(self, node, a):
        data, idx = self.get(node, 0), self.const(node, 1, "indices")
        axis = int(a.get("axis", 0))
        if isinstance(data, _RNNOut):
            if data.which == "Y_h" and axis == 0 and idx.ndim == 0 and int(idx) in (0, -1):
                return data.finish(False)
            _fail(node, "only Gather(Y_h, 0, axis=0) of a recurrent output is supported")
        if isinstance(data, _T):
            return self._last_step(node, data, idx, axis)
        return np.asarray(np.take(self.const(node, 0, "data"), idx, axis=axis))

    def _last_step(self, node, t, idx, axis):
        """``y[:, -1]`` of a recurrent layer's batch-first output sequence: its last state."""
        last = t.chain[-1] if t.chain else None
        is_seq = last is not None and last.kind in ("lstm", "gru") and \
            last.attrs["return_sequences"] and len(t.shape) == 2
        steps = t.shape[0] if t.shape else None
        if not (is_seq and axis in (1, -2) and idx.ndim == 0
                and int(idx) in (-1, steps - 1)):
            _fail(node, f"Gather of {_describe(t)} (axis {axis}, indices "
                  f"{np.asarray(idx).tolist()}) is not supported: on an activation, only the "
                  "last time step of a recurrent layer's output sequence (y[:, -1], Gather "
                  "axis=1 index -1 right after the LSTM/GRU) is modelled")
        layer = Layer(last.kind, name=last.name, attrs=dict(last.attrs, return_sequences=False),
                      weights=last.weights)
        features = int(last.weights["W_ih"].shape[1])      # the layer's input: (T, features)
        return _append(node, _T(t.chain[:-1], (steps, features)), layer)

    def op_Unsqueeze(self, node, a):
        v = self.const(node, 0, "data")
        for ax in sorted(self._axes(node, a, 1)):
            v = np.expand_dims(v, ax)
        return v

    def op_Squeeze(self, node, a):
        data, axes = self.get(node, 0), self._axes(node, a, 1)
        if isinstance(data, _RNNOut):
            if data.which == "Y_h" and axes == [0]:
                return data.finish(False)
            if data.which == "Y" and axes == [1]:
                return _TimeMajor(data.finish(True))
            _fail(node, f"Squeeze of recurrent output {data.which} on axes {axes} is not "
                  "supported")
        return np.squeeze(self.const(node, 0, "data"), axis=None if axes is None else tuple(axes))

    def op_Concat(self, node, a):
        parts = [self.const(node, i, "input") for i in range(len(node.input))]
        return np.concatenate(parts, axis=int(a["axis"]))

    def op_Slice(self, node, a):
        if isinstance(self.get(node, 0), _Zeros):
            # one layer's initial state sliced from the zero states of a stacked
            # (num_layers > 1) recurrent module: still zeros
            return _Zeros()
        v = self.get(node, 0)
        if isinstance(v, (_T, _TimeMajor)):
            _fail(node, f"Slice of {_describe(v)} is not supported: refcomp slices only "
                  "constants (shape arithmetic); for the last time step of a recurrent "
                  "output use y[:, -1] (Gather)")
        v = self.const(node, 0, "data")
        starts, ends = self.const(node, 1, "starts"), self.const(node, 2, "ends")
        axes = self.get(node, 3)
        axes = range(len(starts)) if axes is None else axes
        steps = self.get(node, 4)
        steps = [1] * len(starts) if steps is None else steps
        sl = [slice(None)] * v.ndim
        for s, e, ax, st in zip(starts, ends, axes, steps):
            sl[int(ax)] = slice(int(s), int(e), int(st))
        return v[tuple(sl)]

    def op_Cast(self, node, a):
        from onnx import helper
        return self.const(node, 0, "input").astype(helper.tensor_dtype_to_np_dtype(a["to"]))

    def op_ConstantOfShape(self, node, a):
        shape = self.const(node, 0, "shape")
        val = self.np_helper.to_array(a["value"]) if "value" in a else np.zeros(1, np.float32)
        if np.any(shape == _BATCH):
            if np.any(val != 0):
                _fail(node, "only a zero fill of a batch-dependent shape is supported")
            return _Zeros()
        return np.full(tuple(int(s) for s in shape), val.reshape(()), dtype=val.dtype)

    # activations and layers
    def op_Identity(self, node, a):
        return self.get(node, 0)

    def op_Dropout(self, node, a):
        return self.get(node, 0)

    def _act(self, node, function, **attrs):
        return _append(node, self.dyn(node), Layer("activation", name=node.name or function,
                                                   attrs=dict(function=function, **attrs)))

    def op_Relu(self, node, a):
        return self._act(node, "relu")

    def op_Sigmoid(self, node, a):
        return self._act(node, "sigmoid")

    def op_Tanh(self, node, a):
        return self._act(node, "tanh")

    def op_Softmax(self, node, a):
        t = self.dyn(node)
        axis = int(a.get("axis", -1 if self.opset >= 13 else 1))
        if self.opset < 13 and axis not in (len(t.shape), -1):
            _fail(node, "opset < 13 Softmax (flattening semantics) only on the last axis")
        return self._act(node, "softmax", axis=axis)

    def op_Flatten(self, node, a):
        if int(a.get("axis", 1)) != 1:
            _fail(node, "only Flatten with axis=1 is supported")
        return _append(node, self.dyn(node), Layer("flatten", name=node.name or "flatten"))

    def op_Reshape(self, node, a):
        t, shape = self.dyn(node), self.const(node, 1, "shape").astype(np.int64)
        batch_ok = (_BATCH, 0, -1) + ((self.static_batch,) if self.static_batch else ())
        if int(a.get("allowzero", 0)) or shape.size == 0 or shape[0] not in batch_ok:
            _fail(node, f"Reshape must keep the batch axis first, got shape {shape.tolist()}")
        rest = [int(s) for s in shape[1:]]
        if -1 in shape[1:] and shape[0] == -1:
            _fail(node, "Reshape with two -1 dimensions")
        if _BATCH in rest or 0 in rest:
            _fail(node, f"Reshape target {shape.tolist()} is not supported")
        n = int(np.prod(t.shape))
        if -1 in rest:
            known = int(np.prod([s for s in rest if s != -1]))
            rest[rest.index(-1)] = n // known if known else 0
        if len(rest) == 1 and rest[0] == n:
            return _append(node, t, Layer("flatten", name=node.name or "flatten"))
        return _append(node, t, Layer("reshape", name=node.name or "reshape",
                                      attrs={"shape": tuple(rest)}))

    def op_Gemm(self, node, a):
        t = self.dyn(node)
        if a.get("alpha", 1.0) != 1.0 or a.get("beta", 1.0) != 1.0 or a.get("transA", 0):
            _fail(node, "only Gemm with alpha=1, beta=1, transA=0 is supported")
        B = self.weight(node, 1, "B")
        W = B if a.get("transB", 0) else np.ascontiguousarray(B.T)
        C = self.get(node, 2)
        b = None
        if C is not None:
            C = self.weight(node, 2, "C")
            if C.size != W.shape[0] or (C.ndim == 2 and C.shape[0] != 1):
                _fail(node, f"bias C of shape {C.shape} is not one value per output")
            b = np.ascontiguousarray(C.reshape(-1))
        return _append(node, t, Layer("dense", name=node.name or "gemm", weights={"W": W, "b": b}))

    def op_MatMul(self, node, a):
        t = self.dyn(node)
        B = self.weight(node, 1, "B")
        if B.ndim != 2 or len(t.shape) != 1:
            _fail(node, "only (N, in) @ constant (in, out) is supported")
        return _append(node, t, Layer("dense", name=node.name or "matmul",
                                      weights={"W": np.ascontiguousarray(B.T)}))

    def op_Add(self, node, a):
        x, y = self.get(node, 0), self.get(node, 1)
        if isinstance(x, _T) and isinstance(y, _T):
            if x.shape != y.shape:
                _fail(node, f"Add of shapes {x.shape} and {y.shape}")
            return _T(add_chains(x.chain, y.chain, node.name or "residual"), x.shape)
        t, c = (x, y) if isinstance(x, _T) else (y, x)
        if isinstance(t, _T) and isinstance(c, np.ndarray) and t.chain:
            last = t.chain[-1]
            if last.kind == "dense" and "b" not in last.weights and c.size == last.w("W").shape[0] \
                    and c.dtype == last.w("W").dtype and c.ndim <= 2:
                layer = Layer("dense", name=last.name, weights={"W": last.weights["W"],
                                                                "b": np.array(c.reshape(-1))})
                return _T(t.chain[:-1] + (layer,), t.shape)
        _fail(node, "only Add of two activations (residual) or MatMul + bias is supported")

    def op_Conv(self, node, a):
        t = self.dyn(node)
        W = self.weight(node, 1, "W")
        if W.ndim != 4:
            _fail(node, "only 2-D convolution is supported")
        b = self.weight(node, 2, "B") if self.get(node, 2) is not None else None
        if "kernel_shape" in a and tuple(a["kernel_shape"]) != W.shape[2:]:
            _fail(node, f"kernel_shape {a['kernel_shape']} does not match W {W.shape}")
        attrs = {"stride": tuple(a.get("strides", (1, 1))), "padding": _pads(node, a),
                 "dilation": tuple(a.get("dilations", (1, 1))), "groups": int(a.get("group", 1))}
        return _append(node, t, Layer("conv2d", name=node.name or "conv", attrs=attrs,
                                      weights={"W": W, "b": b}))

    def _pool(self, node, a, kind):
        t = self.dyn(node)
        if a.get("ceil_mode", 0) or any(d != 1 for d in a.get("dilations", (1, 1))):
            _fail(node, "ceil_mode=1 and dilations are not supported")
        if a.get("storage_order", 0) or (len(node.output) > 1 and node.output[1]):
            _fail(node, "the Indices output / storage_order is not supported")
        k = tuple(a["kernel_shape"])
        if len(k) != 2:
            _fail(node, "only 2-D pooling is supported")
        attrs = {"size": k, "stride": tuple(a.get("strides", (1, 1))), "padding": _pads(node, a)}
        if kind == "avg_pool2d":
            attrs["count_include_pad"] = bool(a.get("count_include_pad", 0))
        return _append(node, t, Layer(kind, name=node.name or kind, attrs=attrs))

    def op_MaxPool(self, node, a):
        return self._pool(node, a, "max_pool2d")

    def op_AveragePool(self, node, a):
        return self._pool(node, a, "avg_pool2d")

    def op_BatchNormalization(self, node, a):
        t = self.dyn(node)
        if a.get("training_mode", 0):
            _fail(node, "training_mode=1 is not supported")
        w = {k: self.weight(node, i, k) for i, k in enumerate(("gamma", "beta", "mean", "var"), 1)}
        return _append(node, t, Layer("batch_norm", name=node.name or "batch_norm",
                                      attrs={"eps": float(a.get("epsilon", 1e-5))}, weights=w))

    def op_Transpose(self, node, a):
        v = self.get(node, 0)
        perm = list(a.get("perm", []))
        if perm == [1, 0, 2] and isinstance(v, _T) and len(v.shape) == 2:
            return _TimeMajor(v)
        if perm == [1, 0, 2] and isinstance(v, _TimeMajor):
            return v.t
        _fail(node, f"Transpose with perm {perm} is only supported between batch-first and "
              "time-major sequences")

    def _rnn(self, node, a, kind, defaults):
        x = self.get(node, 0)
        if not isinstance(x, _TimeMajor):
            _fail(node, "input X must be a time-major sequence (Transpose perm 1,0,2 of (N,T,F))")
        if _dec(a.get("direction", "forward")) != "forward":
            _fail(node, f"direction={_dec(a['direction'])} is not supported (forward only)")
        acts = [_dec(s) for s in a.get("activations", defaults)]
        if acts != list(defaults) or "clip" in a or a.get("input_forget", 0) \
                or a.get("layout", 0) or "activation_alpha" in a:
            _fail(node, f"non-default attributes (activations {acts}, clip, input_forget, layout) "
                  "are not supported")
        for i, what in ((4, "sequence_lens"), (7, "P (peepholes)")):
            if self.get(node, i) is not None:
                _fail(node, f"input {what} is not supported")
        for i in (5, 6):
            s = self.get(node, i)
            if s is not None and not isinstance(s, _Zeros) and \
                    not (isinstance(s, np.ndarray) and not np.any(s)):
                _fail(node, "non-zero initial states are not supported")
        W, R = self.weight(node, 1, "W"), self.weight(node, 2, "R")
        B = self.weight(node, 3, "B") if self.get(node, 3) is not None else None
        if kind == "lstm":
            W_ih, W_hh, b_ih, b_hh = convert.lstm_from_onnx(W, R, B)
            attrs = {}
        else:
            lbr = int(a.get("linear_before_reset", 0))
            W_ih, W_hh, b_ih, b_hh = convert.gru_from_onnx(W, R, B, linear_before_reset=lbr)
            attrs = {"reset_after": bool(lbr)}
        w = {"W_ih": W_ih, "W_hh": W_hh, "b_ih": b_ih, "b_hh": b_hh}
        name = node.name or kind
        outs = ("Y", "Y_h", "Y_c") if kind == "lstm" else ("Y", "Y_h")
        return tuple(_RNNOut(o, kind, name, attrs, w, x.t) if o != "Y_c" else _Unused(node, o)
                     for o in outs)

    def op_LSTM(self, node, a):
        return self._rnn(node, a, "lstm", ("Sigmoid", "Tanh", "Tanh"))

    def op_GRU(self, node, a):
        return self._rnn(node, a, "gru", ("Sigmoid", "Tanh"))


class _Unused:
    """An output refcomp does not model; using it is an error."""

    def __init__(self, node, name):
        self.node, self.name = node, name


def load(path, *, name=None):
    """Load an ONNX model file as a :class:`refcomp.Model`.

    Parameters
    ----------
    path : str or path-like
    name : str, optional
        Model name (default: the graph name).

    Returns
    -------
    Model
        ``input_shape`` from the graph input (the first dimension is the
        batch; all other dimensions must be fixed).

    Raises
    ------
    FormatError
        unreadable/truncated file, several graph inputs or outputs, a
        dynamic non-batch dimension, or an unsupported operator, attribute
        or topology (naming the node and the op).
    """
    try:
        import onnx
    except ImportError:
        raise FormatError("reading ONNX files needs the 'onnx' package "
                          "(pip install 'refcomp[onnx]')") from None
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FormatError(f"{path}: no such file")
    try:
        proto = onnx.load(path)
    except Exception as exc:  # protobuf raises its own DecodeError classes
        raise FormatError(f"{path}: not a readable ONNX file ({type(exc).__name__}: {exc})") \
            from None
    g = proto.graph
    inits = {i.name for i in g.initializer}
    inputs = [i for i in g.input if i.name not in inits]
    if len(inputs) != 1 or len(g.output) != 1:
        raise FormatError(f"{path}: graphs with {len(inputs)} inputs and {len(g.output)} outputs "
                          "are not supported (exactly one of each)")
    dims = inputs[0].type.tensor_type.shape.dim
    shape = []
    for d in list(dims)[1:]:
        if not d.HasField("dim_value"):
            raise FormatError(f"{path}: input {inputs[0].name!r} has a dynamic non-batch "
                              f"dimension {d.dim_param!r}")
        shape.append(int(d.dim_value))
    it = _Interp(g)
    # An export with a fixed batch size writes it into Reshape targets; accept it there.
    d0 = list(dims)[:1]
    it.static_batch = int(d0[0].dim_value) if d0 and d0[0].HasField("dim_value") else None
    it.opset = max((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")),
                   default=13)
    it.v[inputs[0].name] = _T((), shape)
    try:
        for node in g.node:
            if node.domain not in ("", "ai.onnx"):
                _fail(node, f"operator domain {node.domain!r} is not supported")
            it.run(node)
    except RefcompError as exc:
        raise FormatError(f"{path}: {exc}") from None
    out = it.v.get(g.output[0].name)
    if not isinstance(out, _T):
        raise FormatError(f"{path}: graph output {g.output[0].name!r} is not a batch-first "
                          "tensor refcomp can model")
    try:
        return Model(list(out.chain), name=name or g.name or "onnx_model", input_shape=shape,
                     metadata={"source": "onnx", "producer": proto.producer_name,
                               "producer_version": proto.producer_version,
                               "opset": int(it.opset)})
    except RefcompError as exc:
        raise FormatError(f"{path}: inconsistent model: {exc}") from None
