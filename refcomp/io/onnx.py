"""Import ONNX graphs as :class:`refcomp.Model` (needs the ``onnx`` package).

The graph is interpreted symbolically, node by node in file order (ONNX
requires topological order): every dynamic tensor is the chain of refcomp
layers applied to the single graph input; small integer tensors (shapes,
indices) are folded to constants, the batch dimension of ``Shape`` being a
marker, so the shape arithmetic that ``torch.onnx.export`` writes (Shape,
Gather, Unsqueeze, Concat, Slice, Cast, ConstantOfShape) is understood.

Supported operators (one handler per operator: layers and layout in
:mod:`refcomp.io._onnx_ops`, recurrent layers in :mod:`refcomp.io._onnx_rnn`,
constants and shape arithmetic here): Gemm (every attribute; a bias of
shape (), (1,), (N,) or (1, N)), MatMul with a constant right operand (+ a
following Add of a constant bias), Conv (1-D and 2-D, every attribute),
MaxPool and AveragePool (1-D to 3-D, every attribute; MaxPool's Indices
may be a graph output, computed by the pooling layer (``return_indices``,
``storage_order``; :func:`graph_outputs` returns every graph output), but
Indices feeding another node is refused naming the node and the output),
Relu, Sigmoid, Tanh, HardSigmoid,
Softmax, LogSoftmax, Flatten (any axis that keeps the batch first),
Reshape, Squeeze and Unsqueeze of feature axes, BatchNormalization
(inference), Identity, Dropout, Add of two tensors (``x + f(x)``: a
``residual`` layer), Transpose between batch-first and time-major
sequences, and LSTM / GRU / RNN with every attribute (direction, layout,
peepholes, clip, input_forget, activations, linear_before_reset), constant
initial states (the layer weights ``h0`` / ``c0``, (B, H), B = 1 for a
constant expanded along the batch) and partial ``sequence_lens`` (the layer
attribute; a fixed batch size), their Y / Y_h outputs reshaped as PyTorch's
exporters do (Squeeze of the direction axis, Transpose + Reshape merging
directions, ``y[:, -1]`` / ``y[-1]``), the ``nn.RNN`` that the dynamo
exporter unrolls into per-step nodes, bidirectional too
(:mod:`refcomp.io._onnx_unrolled`), Keras 3's unrolled LSTM / GRU /
SimpleRNN (:mod:`refcomp.io._onnx_keras_rnn`) and its decomposed
BatchNormalization (Sub / Mul / Add of per-channel constants: a batch_norm
layer with var = 1, eps = 0).  A graph input may
be time-major, [T, N, F] with the dynamic batch on axis 1: the Model is
then batch-first (metadata ``input_layout: "time_major"``: transpose the
input with ``x.transpose(1, 0, 2)``).  Weights may be initializers, graph
inputs with initializers, or Constant nodes.  Any other op, attribute
value or topology raises :class:`FormatError` naming the node, its op and
the attribute or input.
Weights are exact copies (permuted only) of the initializers.
"""

import math
import os

import numpy as np

from .._errors import FormatError, RefcompError
from ..model import Layer, Model
from . import _format, _onnx_keras_rnn, _onnx_ops, _onnx_rnn, _onnx_unrolled
from ._format import _CORRUPT, _one_line
from ._onnx_core import (BATCH as _BATCH, T as _T, TimeMajor as _TimeMajor, Unused as _Unused,
                         Zeros as _Zeros, append as _append,
                         describe as _describe, fail as _fail, onnx_attrs as _attrs)
from .keras import add_chains

__all__ = ["load", "load_proto", "graph_outputs", "SUPPORTED_OPS"]

_HANDLERS = dict(_onnx_ops.HANDLERS)
_HANDLERS.update(_onnx_rnn.HANDLERS)
SUPPORTED_OPS = tuple(sorted(set(_HANDLERS) | {
    "MatMul", "Add", "Identity", "Dropout", "Constant", "ConstantOfShape", "Concat", "Cast"}))


#: ONNX TensorProto data types stored packed: elements per byte (UINT4, INT4, FLOAT4E2M1,
#: UINT2, INT2)
_PER_BYTE = {21: 2, 22: 2, 23: 2, 25: 4, 26: 4}


def _check_initializer(t, path):
    """Refuse an initializer whose declared size its stored bytes cannot back, before
    :func:`onnx.numpy_helper.to_array` allocates it: every element takes at least one
    byte of the serialized tensor in every encoding refcomp reads (raw bytes, packed
    varints, floats), except the packed 4-bit (INT4, UINT4, FLOAT4E2M1: two per byte) and
    2-bit types (INT2, UINT2: four per byte), so more elements than that is a lie; also
    external data and negative or absurd dimensions."""
    dims = [int(d) for d in t.dims]
    if any(d < 0 for d in dims):
        raise FormatError(f"{path}: initializer {t.name!r} has negative dimensions {dims}")
    n = math.prod(dims)
    if n > _format.MAX_ELEMENTS:
        raise FormatError(f"{path}: initializer {t.name!r} declares {n} elements, more than "
                          f"the limit {_format.MAX_ELEMENTS} (refcomp.io.limits)")
    if t.data_location == 1 or len(t.external_data):
        raise FormatError(f"{path}: initializer {t.name!r} keeps its data outside the file "
                          "(external data is not read)")
    per_byte = _PER_BYTE.get(int(t.data_type), 1)
    if n > t.ByteSize() * per_byte:
        raise FormatError(f"{path}: initializer {t.name!r} declares shape {tuple(dims)} "
                          f"({n} elements) but stores only {t.ByteSize()} bytes")


class _Interp:
    def __init__(self, graph):
        from onnx import numpy_helper
        self.v = {}
        for init in graph.initializer:
            try:
                self.v[init.name] = numpy_helper.to_array(init)
            except _CORRUPT as exc:       # a retyped or mis-sized initializer, named
                raise FormatError(f"initializer {init.name!r} is not a readable tensor (data "
                                  f"type {init.data_type}, dims {list(init.dims)}: "
                                  f"{type(exc).__name__}: {_one_line(exc)[:120]})") from None
        self.np_helper = numpy_helper
        # MaxPool Indices that are graph outputs: {name: node}, and {name: Layer computing it}
        self.indices_outputs = {}
        self.indices_layers = {}

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
        if op in _HANDLERS:
            handler = _HANDLERS[op]

            def fn(node, a, handler=handler):
                return handler(self, node, a)
        else:
            fn = getattr(self, "op_" + op, None)
        if fn is None:
            _fail(node, f"operator {op} is not supported (supported: {', '.join(SUPPORTED_OPS)})")
        try:
            outs = fn(node, a)
        except RefcompError as exc:
            if str(exc).startswith("node "):
                raise
            _fail(node, str(exc))
        except (KeyError, IndexError, ValueError, TypeError, AttributeError,
                OverflowError) as exc:
            # malformed attributes/inputs (a missing kernel_shape, a bad axis, an attribute
            # of the wrong type...)
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

    def _axes(self, node, a, i):
        ax = a.get("axes")
        if ax is None and len(node.input) > i and node.input[i]:
            ax = self.const(node, i, "axes")
        return None if ax is None else [int(x) for x in np.ravel(ax)]

    axes = _axes

    def op_Concat(self, node, a):
        parts = [self.const(node, i, "input") for i in range(len(node.input))]
        return np.concatenate(parts, axis=int(a["axis"]))

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


# the dynamo exporter's unrolled nn.RNN and Keras's unrolled LSTM / GRU, recognised before
# the plain handlers
_HANDLERS = _onnx_keras_rnn.wrap(_onnx_unrolled.wrap(_HANDLERS))


def load(path, *, name=None, batch_axis=None):
    """Load an ONNX model file as a :class:`refcomp.Model`.

    Parameters
    ----------
    path : str or path-like
    name : str, optional
        Model name (default: the graph name).
    batch_axis : {None, 0, 1}
        The batch axis of the graph input.  None: the one dynamic dimension
        (axis 0, or axis 1 of a rank-3 input: a time-major sequence
        [T, N, F] as ``torch.onnx.export`` writes for ``batch_first=False``),
        axis 0 when every dimension is fixed.  1: a time-major input with a
        fixed batch size.

    Returns
    -------
    Model
        Batch-first: ``input_shape`` is the graph input's shape without the
        batch axis (T, F) for a time-major input, whose Model is called on
        ``x.transpose(1, 0, 2)``; the metadata records ``input_layout``
        ("batch_first" / "time_major") and ``output_layout`` (the graph
        output is time-major when it is [T, N, ...]: transpose the Model's
        output the same way to compare).

    Raises
    ------
    FormatError
        unreadable/truncated file, several graph inputs or outputs, more
        than one dynamic dimension or a dynamic dimension that cannot be the
        batch, or an unsupported operator, attribute or topology (naming the
        node, the op and the attribute).
    """
    try:
        import onnx
    except ImportError:
        raise FormatError("reading ONNX files needs the 'onnx' package "
                          "(pip install 'refcomp[onnx]')") from None
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FormatError(f"{path}: no such file")
    if batch_axis not in (None, 0, 1):
        raise FormatError(f"batch_axis must be None, 0 or 1, got {batch_axis!r}")
    try:
        # external data would be read from any path the file names: refused instead
        proto = onnx.load(path, load_external_data=False)
    except Exception as exc:  # protobuf raises its own DecodeError classes
        raise FormatError(f"{path}: not a readable ONNX file ({type(exc).__name__}: "
                          f"{_one_line(exc)})") from None
    return load_proto(proto, source=path, name=name, batch_axis=batch_axis)


def load_proto(proto, *, source, name=None, batch_axis=None):
    """:func:`load` of a graph already in memory (an ``onnx.ModelProto``, not modified).

    ``source`` (str) is what error messages name: the user's file when the graph was
    read from one and rewritten in memory (:func:`refcomp.integer.load_qdq`).  Same
    result, options and errors as :func:`load`.
    """
    if batch_axis not in (None, 0, 1):
        raise FormatError(f"batch_axis must be None, 0 or 1, got {batch_axis!r}")
    path = source
    try:
        return _from_proto(proto, path, name, batch_axis)
    except RefcompError:
        raise
    except (_CORRUPT + (RecursionError,)) as exc:
        raise FormatError(f"{path}: malformed ONNX graph ({type(exc).__name__}: "
                          f"{_one_line(exc)})") from None


def _from_proto(proto, path, name, batch_axis):
    g = proto.graph
    for init in g.initializer:
        _check_initializer(init, path)
    inits = {i.name for i in g.initializer}
    inputs = [i for i in g.input if i.name not in inits]
    try:
        indices = _onnx_ops.maxpool_indices_outputs(g)
    except RefcompError as exc:
        raise FormatError(f"{path}: {exc}") from None
    main = [o.name for o in g.output if o.name not in indices]
    if len(inputs) != 1 or len(main) > 1 or not g.output:
        extra = f" besides {len(indices)} MaxPool Indices" if indices else ""
        raise FormatError(f"{path}: graphs with {len(inputs)} inputs and {len(main)} outputs"
                          f"{extra} are not supported (exactly one of each, plus any MaxPool "
                          "Indices)")
    dims = list(inputs[0].type.tensor_type.shape.dim)
    dynamic = [i for i, d in enumerate(dims) if not d.HasField("dim_value")]
    if batch_axis is None:
        batch_axis = dynamic[0] if dynamic else 0
    if batch_axis == 1 and len(dims) != 3:
        raise FormatError(f"{path}: input {inputs[0].name!r} has its batch on axis 1 but rank "
                          f"{len(dims)}; a time-major input is a sequence [T, N, F]")
    for i in dynamic:
        if i != batch_axis:
            raise FormatError(f"{path}: input {inputs[0].name!r} has a dynamic non-batch "
                              f"dimension {dims[i].dim_param!r} (axis {i}; the batch is axis "
                              f"{batch_axis})")
    shape = [int(d.dim_value) for i, d in enumerate(dims) if i != batch_axis]
    try:
        it = _Interp(g)
    except RefcompError as exc:
        raise FormatError(f"{path}: {exc}") from None
    it.indices_outputs = indices
    # An export with a fixed batch size writes it into Reshape targets; accept it there.
    db = dims[batch_axis] if dims else None
    it.static_batch = int(db.dim_value) if db is not None and db.HasField("dim_value") else None
    it.opset = max((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")),
                   default=13)
    x = _T((), shape)
    it.v[inputs[0].name] = _TimeMajor(x) if batch_axis == 1 else x
    try:
        for node in g.node:
            if node.domain not in ("", "ai.onnx"):
                _fail(node, f"operator domain {node.domain!r} is not supported")
            it.run(node)
    except RefcompError as exc:
        raise FormatError(f"{path}: {_one_line(exc)}") from None
    # the Model's output: the one graph output that is not an Indices, or (a graph returning
    # only Indices) the pooled values of that MaxPool
    out_name = main[0] if main else indices[g.output[0].name].output[0]
    out = it.v.get(out_name)
    if isinstance(out, _onnx_keras_rnn.E):
        producer = next((n for n in g.node if out_name in n.output), None)
        try:
            out = _onnx_keras_rnn.finish(it, producer, out)
        except RefcompError as exc:
            raise FormatError(f"{path}: {exc}") from None
    out_layout = "batch_first"
    if isinstance(out, _TimeMajor):
        out, out_layout = out.t, "time_major"
    if not isinstance(out, _T):
        raise FormatError(f"{path}: graph output {out_name!r} is {_describe(out)}, not "
                          "a tensor refcomp can model")
    meta = {"source": "onnx", "producer": proto.producer_name,
            "producer_version": proto.producer_version, "opset": int(it.opset),
            "input_layout": "time_major" if batch_axis == 1 else "batch_first",
            "output_layout": out_layout}
    try:
        model = Model(list(out.chain), name=name or g.name or "onnx_model", input_shape=shape,
                      metadata=meta)
    except RefcompError as exc:
        raise FormatError(f"{path}: inconsistent model: {exc}") from None
    if indices:
        paths = {id(layer): p for p, layer in model.named_layers()}
        where = {}
        for idx, node in indices.items():
            layer = it.indices_layers.get(idx)
            if layer is None or id(layer) not in paths:
                raise FormatError(f"{path}: node {node.name!r} (op MaxPool): output Indices "
                                  f"{idx!r} is a graph output but the node is not on the path "
                                  f"of the graph output {out_name!r}; a refcomp Model is that "
                                  "one path")
            where[idx] = paths[id(layer)]
        # graph output order: "" is the Model's output, a path the Indices of that layer
        model.metadata["outputs"] = [[o.name, where.get(o.name, "")] for o in g.output]
    return model


def graph_outputs(model, x, *, precision="reference"):
    """The outputs of an imported graph, in the graph's order (a list of arrays).

    For a graph without MaxPool ``Indices`` outputs this is ``[model(x)]``.
    A graph that also returns MaxPool Indices is imported with those pooling
    layers' ``return_indices`` set and ``model.metadata["outputs"]`` listing
    ``[graph output name, layer path or ""]`` in the graph's order;
    :meth:`refcomp.Model.forward_indices` computes them (int64, ONNX's flat
    indices, ``storage_order`` as the node says) together with the output.

    Parameters
    ----------
    model : Model, as :func:`load` returns it (or loaded back from a refcomp file).
    x : ndarray, the Model's input (batch-first, see :func:`load`).
    precision : {"reference", "fast"}
    """
    spec = model.metadata.get("outputs")
    if not spec:
        return [model(x, precision=precision)]
    y, found = model.forward_indices(x, precision=precision)
    return [y if p == "" else found[p] for _, p in spec]
