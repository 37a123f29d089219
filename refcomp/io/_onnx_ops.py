"""ONNX importer: handlers of the layer, activation and layout operators (private).

One function per operator, ``handler(it, node, attrs) -> value or tuple``,
registered in :data:`HANDLERS`; ``it`` is the interpreter of
:mod:`refcomp.io.onnx` (``get``, ``const``, ``weight``, ``dyn``, ``opset``).
Every refusal is a FormatError naming the node, the operator and the
attribute (or input) with its value.
"""

import numpy as np

from ..model import Layer
from ._onnx_core import (BATCH, Batched, NCHWView, T, TimeMajor, Zeros, append, dec, describe,
                         fail)

__all__ = ["HANDLERS", "maxpool_indices_outputs"]

HANDLERS = {}


def handler(op):
    def deco(fn):
        HANDLERS[op] = fn
        return fn
    return deco


def _pads(node, a, n):
    auto = dec(a.get("auto_pad", "NOTSET"))
    if auto == "VALID":
        return "valid"
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        return auto.lower()
    if auto != "NOTSET":
        fail(node, f"attribute auto_pad={auto!r} is not one of NOTSET, SAME_UPPER, SAME_LOWER, "
                   "VALID")
    p = [int(v) for v in a.get("pads", [0] * 2 * n)]
    if len(p) != 2 * n or any(v < 0 for v in p):
        fail(node, f"attribute pads={p} must hold {2 * n} non-negative values")
    return tuple((p[i], p[i + n]) for i in range(n))


def _ints(node, a, name, n, default):
    v = [int(x) for x in a.get(name, [default] * n)]
    if len(v) != n or any(x < 1 for x in v):
        fail(node, f"attribute {name}={v} must hold {n} values >= 1")
    return tuple(v)


def _f32(v):
    return float(np.float32(v))


@handler("Gemm")
def op_gemm(it, node, a):
    t = it.dyn(node)
    if int(a.get("transA", 0)):
        fail(node, "attribute transA=1 would transpose the batch into the features; refcomp "
                   "models Gemm with the activation as A (transA=0)")
    if len(t.shape) != 1:
        fail(node, f"input A is {describe(t)}; Gemm takes (N, K) activations")
    B = it.weight(node, 1, "B")
    if B.ndim != 2:
        fail(node, f"input B has shape {B.shape}; Gemm takes a 2-D B")
    W = B if int(a.get("transB", 0)) else np.ascontiguousarray(B.T)
    b = None
    if it.get(node, 2) is not None:
        C = it.weight(node, 2, "C")
        n_out = W.shape[0]
        if C.ndim > 2 or (C.ndim == 2 and C.shape[0] != 1) or C.size not in (1, n_out):
            fail(node, f"input C of shape {C.shape} is not broadcast along the batch (shapes (), "
                       f"(1,), ({n_out},), (1, {n_out}) are; (M, 1) and (M, N) depend on the "
                       "batch)")
        b = np.ascontiguousarray(np.broadcast_to(C.reshape(-1), (n_out,)))
    attrs = {}
    alpha, beta = _f32(a.get("alpha", 1.0)), _f32(a.get("beta", 1.0))
    if alpha != 1.0 or beta != 1.0:
        attrs = {"alpha": alpha, "beta": beta}
    return append(node, t, Layer("dense", name=node.name or "gemm", attrs=attrs,
                                 weights={"W": W, "b": b}))


def _image(it, node):
    """(t, wrap, layout): a plain NCHW activation, or the NCHW view of a channels-last one
    (the layer then runs with layout "NHWC" on ``t`` and its output is viewed again)."""
    v = it.get(node, 0)
    if isinstance(v, NCHWView):
        return v.t, NCHWView, "NHWC"
    return it.dyn(node), (lambda t: t), "NCHW"


@handler("Conv")
def op_conv(it, node, a):
    t, view, layout = _image(it, node)
    W = it.weight(node, 1, "W")
    n = W.ndim - 2
    if n not in (1, 2):
        fail(node, f"input W has shape {W.shape}: {n}-D convolution is not supported (1-D, 2-D)")
    if "kernel_shape" in a and tuple(a["kernel_shape"]) != W.shape[2:]:
        fail(node, f"attribute kernel_shape={list(a['kernel_shape'])} does not match W "
                   f"{W.shape}")
    b = it.weight(node, 2, "B") if it.get(node, 2) is not None else None
    pads = _pads(node, a, n)
    attrs = {"stride": _ints(node, a, "strides", n, 1), "dilation": _ints(node, a, "dilations",
                                                                          n, 1),
             "groups": int(a.get("group", 1))}
    if attrs["groups"] < 1:
        fail(node, f"attribute group={attrs['groups']} must be >= 1")
    if n == 1:
        if layout != "NCHW":
            fail(node, f"input is {describe(it.get(node, 0))}: 1-D convolution of it")
        attrs = {k: (v[0] if isinstance(v, tuple) else v) for k, v in attrs.items()}
        attrs["padding"] = pads if isinstance(pads, str) else pads[0]
        return append(node, t, Layer("conv1d", name=node.name or "conv", attrs=attrs,
                                     weights={"W": W, "b": b}))
    attrs["padding"] = pads
    if layout != "NCHW":
        attrs["layout"] = layout
    return view(append(node, t, Layer("conv2d", name=node.name or "conv", attrs=attrs,
                                      weights={"W": W, "b": b})))


def _pool(it, node, a, kind):
    t, view, layout = _image(it, node)
    if "kernel_shape" not in a:
        fail(node, "malformed node: attribute kernel_shape is missing")
    k = tuple(int(v) for v in a["kernel_shape"])
    n = len(k)
    if n not in (1, 2, 3) or any(v < 1 for v in k):
        fail(node, f"attribute kernel_shape={list(k)}: 1 to 3 values >= 1 expected")
    ceil = int(a.get("ceil_mode", 0))
    if ceil not in (0, 1):
        fail(node, f"attribute ceil_mode={ceil} must be 0 or 1")
    if int(a.get("storage_order", 0)) not in (0, 1):
        fail(node, f"attribute storage_order={a['storage_order']} must be 0 or 1")
    attrs = {"size": k, "stride": _ints(node, a, "strides", n, 1), "padding": _pads(node, a, n),
             "dilation": _ints(node, a, "dilations", n, 1), "ceil_mode": bool(ceil)}
    if kind == "avg":
        cip = int(a.get("count_include_pad", 0))
        if cip not in (0, 1):
            fail(node, f"attribute count_include_pad={cip} must be 0 or 1")
        attrs["count_include_pad"] = bool(cip)
    name = f"{kind}_pool2d" if n == 2 else f"{kind}_pool"
    if kind == "max" and len(node.output) > 1 and node.output[1] in it.indices_outputs:
        # Indices is a graph output: the layer computes it (Model.forward_indices)
        if layout != "NCHW":
            fail(node, f"output Indices {node.output[1]!r} is a graph output but the input is "
                       f"{describe(it.get(node, 0))}; refcomp models Indices of NCHW pooling")
        attrs["return_indices"] = True
        attrs["storage_order"] = int(a.get("storage_order", 0))
    elif layout != "NCHW":
        if n != 2:
            fail(node, f"input is {describe(it.get(node, 0))}: {n}-D pooling of it")
    if layout != "NCHW":
        attrs["layout"] = layout
    layer = Layer(name, name=node.name or name, attrs=attrs)
    if attrs.get("return_indices"):
        it.indices_layers[node.output[1]] = layer
    return view(append(node, t, layer))


@handler("MaxPool")
def op_maxpool(it, node, a):
    return _pool(it, node, a, "max")        # Indices itself is an Unused value


def maxpool_indices_outputs(graph):
    """``{Indices name: MaxPool node}`` of the MaxPool ``Indices`` outputs that are graph
    outputs (the Model computes them: layer attribute ``return_indices``).  An Indices
    that is the input of another node is refused, naming the node, its operator and the
    output: a sequential Model passes one tensor from layer to layer, so integer indices
    feeding further arithmetic are not expressible.  Run before the one-input /
    one-output check; a named but unused Indices is ignored."""
    outputs = {o.name for o in graph.output}
    found = {}
    for node in graph.node:
        if node.op_type != "MaxPool" or len(node.output) < 2 or not node.output[1]:
            continue
        idx = node.output[1]
        user = next((n for n in graph.node if idx in n.input), None)
        if user is not None:
            fail(node, f"output Indices {idx!r} is an input of node {user.name!r} (op "
                       f"{user.op_type}); a refcomp Model passes one tensor from layer to "
                       "layer and returns Indices only as a graph output "
                       "(refcomp.layers.max_pool(return_indices=True) computes them, "
                       "storage_order 0 or 1)")
        if idx in outputs:
            found[idx] = node
    return found


@handler("AveragePool")
def op_averagepool(it, node, a):
    return _pool(it, node, a, "avg")


def _act(it, node, function, **attrs):
    return append(node, it.dyn(node), Layer("activation", name=node.name or function,
                                            attrs=dict(function=function, **attrs)))


@handler("Relu")
def op_relu(it, node, a):
    return _act(it, node, "relu")


@handler("Sigmoid")
def op_sigmoid(it, node, a):
    return _act(it, node, "sigmoid")


@handler("Tanh")
def op_tanh(it, node, a):
    return _act(it, node, "tanh")


@handler("HardSigmoid")
def op_hardsigmoid(it, node, a):
    return _act(it, node, "hard_sigmoid", variant="onnx", alpha=_f32(a.get("alpha", 0.2)),
                beta=_f32(a.get("beta", 0.5)))


def _softmax(it, node, a, function):
    t = it.dyn(node)
    rank = len(t.shape) + 1
    axis = int(a.get("axis", -1 if it.opset >= 13 else 1))
    if not -rank <= axis < rank:
        fail(node, f"attribute axis={axis} is out of range for rank {rank}")
    if it.opset < 13 and axis % rank != rank - 1:
        fail(node, f"attribute axis={axis} with opset {it.opset} < 13 (softmax of the input "
                   "flattened to 2-D at the axis) is supported on the last axis only")
    return _act(it, node, function, axis=axis)


@handler("Softmax")
def op_softmax(it, node, a):
    return _softmax(it, node, a, "softmax")


@handler("LogSoftmax")
def op_logsoftmax(it, node, a):
    return _softmax(it, node, a, "log_softmax")


@handler("Flatten")
def op_flatten(it, node, a):
    t = it.dyn(node)
    rank = len(t.shape) + 1
    axis = int(a.get("axis", 1))
    if not -rank <= axis <= rank:
        fail(node, f"attribute axis={axis} is out of range for rank {rank}")
    axis = axis + rank if axis < 0 else axis
    if axis == 0 or int(np.prod(t.shape[:axis - 1])) != 1:
        fail(node, f"attribute axis={a.get('axis', 1)} merges the batch axis with others "
                   f"(input {describe(t)}); refcomp keeps the batch first")
    return append(node, t, Layer("flatten", name=node.name or "flatten"))


@handler("BatchNormalization")
def op_batchnorm(it, node, a):
    t, view, layout = _image(it, node)
    if int(a.get("training_mode", 0)):
        fail(node, f"attribute training_mode={a['training_mode']} (batch statistics) is not "
                   "supported: refcomp runs inference batch normalisation")
    w = {k: it.weight(node, i, k) for i, k in enumerate(("gamma", "beta", "mean", "var"), 1)}
    attrs = {"eps": _f32(a.get("epsilon", 1e-5))}
    if layout != "NCHW":
        attrs["layout"] = layout
    elif len(t.shape) + 1 not in (2, 4):
        attrs["axis"] = 1                  # ONNX: the channel axis is 1 at every rank
    return view(append(node, t, Layer("batch_norm", name=node.name or "batch_norm",
                                      attrs=attrs, weights=w)))


@handler("Shape")
def op_shape(it, node, a):
    v = it.get(node, 0)
    if isinstance(v, T):
        full = np.array((BATCH,) + v.shape, dtype=np.int64)
    elif isinstance(v, TimeMajor):
        full = np.array((v.t.shape[0], BATCH) + v.t.shape[1:], dtype=np.int64)
    elif hasattr(v, "symbolic_shape"):
        full = v.symbolic_shape()
    else:
        full = np.array(it.const(node, 0, "input").shape, dtype=np.int64)
    start, end = a.get("start", 0), a.get("end", None)
    return full[start:end]


@handler("Expand")
def op_expand(it, node, a):
    v, shape = it.const(node, 0, "input"), it.const(node, 1, "shape")
    if np.any(shape == BATCH):
        if not np.any(v != 0):
            return Zeros()
        # a constant repeated along the batch (a learned initial state expanded to N)
        where = np.flatnonzero(shape == BATCH)
        rank = max(v.ndim, shape.size)
        axis = int(where[0]) + rank - shape.size
        vshape = (1,) * (rank - v.ndim) + v.shape
        if where.size != 1 or vshape[axis] != 1:
            fail(node, f"Expand of a constant of shape {list(v.shape)} to a batch-dependent "
                       "shape: only a constant of size 1 on the batch axis is modelled")
        target = np.where(shape == BATCH, 1, shape)
        return Batched(np.array(v * np.ones(tuple(int(s) for s in target), dtype=v.dtype)),
                       axis)
    return np.array(v * np.ones(tuple(int(s) for s in shape), dtype=v.dtype))


def _arith(fn):
    def run(it, node, a):
        x, y = it.get(node, 0), it.get(node, 1)
        if not (isinstance(x, np.ndarray) and isinstance(y, np.ndarray)):
            bad = x if not isinstance(x, np.ndarray) else y
            fail(node, f"operand {describe(bad)}: {node.op_type} is folded on constants only "
                       "(shape arithmetic)")
        if np.any(x == BATCH) or np.any(y == BATCH):
            fail(node, "arithmetic on the symbolic batch size is not supported")
        return fn(x, y)
    return run


class _DecomposedBN:
    """``x - mean`` (then ``* scale``) of Keras's exported BatchNormalization, waiting for
    the rest of ``((x - mean) * scale) + beta``."""

    def __init__(self, t, axis, mean, scale=None):
        self.t, self.axis, self.mean, self.scale = t, axis, mean, scale

    def describe(self):
        return "an incomplete decomposed batch normalisation ((x - mean) {}of {})".format(
            "* scale " if self.scale is not None else "", describe(self.t))


def _channel_const(node, t, c, what):
    """Per-sample axis and (C,) values of a constant broadcast along one axis of ``t``."""
    shape = t.shape
    if not isinstance(c, np.ndarray) or c.dtype.kind != "f" or c.ndim > len(shape) + 1 or \
            (c.ndim == len(shape) + 1 and c.shape[0] != 1):
        fail(node, f"{what} {describe(c) if not isinstance(c, np.ndarray) else c.shape}: "
                   f"only a float constant per channel of {describe(t)} is modelled")
    aligned = (1,) * (len(shape) - c.ndim + (c.ndim == len(shape) + 1)) + \
        c.shape[c.ndim == len(shape) + 1:]
    big = [i for i, n in enumerate(aligned) if n != 1]
    if len(big) > 1 or (big and aligned[big[0]] != shape[big[0]]):
        fail(node, f"{what} of shape {list(c.shape)} is not one value per channel of "
                   f"{describe(t)}")
    axis = big[0] if big else len(shape) - 1
    return axis, np.ascontiguousarray(np.broadcast_to(c.reshape(-1), (shape[axis],)))


def _bn_layer(node, p, beta):
    """The batch_norm layer of ``((x - mean) * scale) + beta``: gamma = scale, var = 1,
    eps = 0, so refcomp's ``(x - mean) * gamma / sqrt(var + eps) + beta`` is that formula
    with the exported (already folded) constants, unchanged."""
    t, ax = p.t, p.axis
    r = len(t.shape)
    attrs = {"eps": 0.0}
    if r == 3 and ax == 2:
        attrs["layout"] = "NHWC"
    elif not ((r == 1 and ax == 0) or (r == 2 and ax == 1) or (r == 3 and ax == 0)):
        attrs["axis"] = ax + 1
    dt = p.mean.dtype
    if not (p.scale.dtype == beta.dtype == dt):
        fail(node, f"decomposed batch normalisation with constants of dtypes {dt}, "
                   f"{p.scale.dtype}, {beta.dtype}")
    w = {"gamma": p.scale, "beta": beta, "mean": p.mean, "var": np.ones_like(p.mean)}
    return append(node, t, Layer("batch_norm", name=node.name or "batch_norm", attrs=attrs,
                                 weights=w))


@handler("Sub")
def op_sub(it, node, a):
    x = it.get(node, 0)
    if isinstance(x, T):
        ax, mean = _channel_const(node, x, it.get(node, 1), "input B")
        return _DecomposedBN(x, ax, mean)
    return _arith(np.subtract)(it, node, a)


@handler("Mul")
def op_mul(it, node, a):
    x, y = it.get(node, 0), it.get(node, 1)
    p, c = (x, y) if isinstance(x, _DecomposedBN) else (y, x)
    if isinstance(p, _DecomposedBN) and p.scale is None:
        ax, scale = _channel_const(node, p.t, c, "the scale")
        if ax != p.axis:
            fail(node, f"the scale is per axis {ax + 1} but the mean per axis {p.axis + 1}")
        return _DecomposedBN(p.t, p.axis, p.mean, scale)
    return _arith(np.multiply)(it, node, a)


@handler("Greater")
def op_greater(it, node, a):
    return np.asarray(_arith(np.greater)(it, node, a))


@handler("Less")
def op_less(it, node, a):
    return np.asarray(_arith(np.less)(it, node, a))


@handler("Equal")
def op_equal(it, node, a):
    x, y = np.broadcast_arrays(it.const(node, 0, "A"), it.const(node, 1, "B"))
    # the symbolic batch size equals itself and differs from a negative value (TorchScript's
    # expand(-1, N, -1) compares its shape with -1); any other comparison is unknown
    sym = (x == BATCH) != (y == BATCH)
    if np.any(sym & ~((x < 0) & (y < 0))):
        fail(node, "Equal of the symbolic batch size and a possible size is not modelled")
    return np.asarray(np.equal(x, y))


@handler("Where")
def op_where(it, node, a):
    c, x, y = (it.const(node, i, n) for i, n in enumerate(("condition", "X", "Y")))
    return np.where(c, x, y)


HANDLERS["Div"] = _arith(lambda x, y: x // y if x.dtype.kind in "iu" else x / y)


@handler("Reshape")
def op_reshape(it, node, a):
    v = it.get(node, 0)
    shape = it.const(node, 1, "shape").astype(np.int64)
    if hasattr(v, "reshape_to"):
        return v.reshape_to(node, shape)
    if isinstance(v, np.ndarray):               # shape arithmetic on constants
        if v.ndim == 1 and shape.tolist() in ([-1], [v.size]):
            return v                           # a shape vector kept as it is
        if np.any(shape == BATCH) or np.any(v == BATCH) and v.size != 1:
            fail(node, f"Reshape of a batch-dependent shape vector to {shape.tolist()}")
        return v.reshape([int(d) if d != 0 or int(a.get("allowzero", 0)) else v.shape[i]
                          for i, d in enumerate(shape)])
    t = it.dyn(node)
    if int(a.get("allowzero", 0)) and np.any(shape == 0):
        fail(node, f"attribute allowzero=1 with a 0 in the target {shape.tolist()} (an empty "
                   "dimension) is not supported")
    batch_ok = (BATCH, 0, -1) + ((it.static_batch,) if it.static_batch else ())
    if shape.size == 0 or shape[0] not in batch_ok:
        fail(node, f"Reshape must keep the batch axis first, got shape {shape.tolist()}")
    rest = [int(s) for s in shape[1:]]
    if -1 in shape[1:] and shape[0] == -1:
        fail(node, f"Reshape target {shape.tolist()} has two -1 dimensions")
    rest = [t.shape[i] if (s == 0 and i < len(t.shape)) else s for i, s in enumerate(rest)]
    if BATCH in rest or 0 in rest:
        fail(node, f"Reshape target {shape.tolist()} is not supported")
    n = int(np.prod(t.shape))
    if -1 in rest:
        known = int(np.prod([s for s in rest if s != -1]))
        rest[rest.index(-1)] = n // known if known else 0
    if tuple(rest) == t.shape:
        return t
    if len(rest) == 1 and rest[0] == n:
        return append(node, t, Layer("flatten", name=node.name or "flatten"))
    return append(node, t, Layer("reshape", name=node.name or "reshape",
                                 attrs={"shape": tuple(rest)}))


def _layout_reshape(node, t, new_shape):
    if tuple(new_shape) == t.shape:
        return t
    return append(node, t, Layer("reshape", name=node.name or "reshape",
                                 attrs={"shape": tuple(int(s) for s in new_shape)}))


@handler("Unsqueeze")
def op_unsqueeze(it, node, a):
    v = it.get(node, 0)
    axes = it.axes(node, a, 1)
    if isinstance(v, T):
        rank = len(v.shape) + 1 + len(axes)
        axes = sorted(x % rank for x in axes)
        if 0 in axes:
            fail(node, f"Unsqueeze axes={axes} would move the batch axis")
        shape = list(v.shape)
        for ax in axes:
            shape.insert(ax - 1, 1)
        return _layout_reshape(node, v, shape)
    v = it.const(node, 0, "data")
    for ax in sorted(axes):
        v = np.expand_dims(v, ax)
    return v


@handler("Squeeze")
def op_squeeze(it, node, a):
    v = it.get(node, 0)
    axes = it.axes(node, a, 1)
    if hasattr(v, "squeeze"):
        return v.squeeze(node, axes)
    if isinstance(v, T):
        rank = len(v.shape) + 1
        axes = [x % rank for x in axes] if axes is not None else \
            [i + 1 for i, s in enumerate(v.shape) if s == 1]
        if 0 in axes or any(v.shape[x - 1] != 1 for x in axes):
            fail(node, f"Squeeze axes={axes} of {describe(v)}: only size-1 feature axes")
        return _layout_reshape(node, v, [s for i, s in enumerate(v.shape) if i + 1 not in axes])
    return np.squeeze(it.const(node, 0, "data"), axis=None if axes is None else tuple(axes))


@handler("Transpose")
def op_transpose(it, node, a):
    v = it.get(node, 0)
    perm = [int(p) for p in a.get("perm", [])]
    if hasattr(v, "transpose"):
        return v.transpose(node, perm)
    if isinstance(v, NCHWView) and perm == [0, 2, 3, 1]:
        return v.t
    if isinstance(v, (T, TimeMajor)):
        rank = (len(v.shape) if isinstance(v, T) else len(v.t.shape)) + 1
        if perm == list(range(rank)):
            return v
        if rank == 3 and perm == [1, 0, 2]:
            return TimeMajor(v) if isinstance(v, T) else v.t
        if rank == 4 and perm == [0, 3, 1, 2] and isinstance(v, T):
            return NCHWView(v)
    elif isinstance(v, np.ndarray):
        return np.transpose(v, perm or None)
    fail(node, f"attribute perm={perm} on {describe(v)}: only the swap of the batch and time "
               "axes of a sequence (perm 1,0,2) is modelled")


@handler("Cast")
def op_cast(it, node, a):
    v = it.get(node, 0)
    if isinstance(v, (T, TimeMajor, NCHWView, Zeros, Batched)):
        from onnx import TensorProto
        if int(a.get("to", 0)) != TensorProto.FLOAT:
            fail(node, f"attribute to={a.get('to')} casts an activation to another type than "
                       "float32; refcomp models run in one dtype")
        return v                               # float32 -> float32: the identity
    return it.op_Cast(node, a)


@handler("Add")
def op_add(it, node, a):
    x, y = it.get(node, 0), it.get(node, 1)
    if isinstance(x, np.ndarray) and isinstance(y, np.ndarray):
        return _arith(np.add)(it, node, a)              # shape arithmetic
    p, c = (x, y) if isinstance(x, _DecomposedBN) else (y, x)
    if isinstance(p, _DecomposedBN) and p.scale is not None:
        ax, beta = _channel_const(node, p.t, c, "the offset")
        if ax != p.axis:
            fail(node, f"the offset is per axis {ax + 1} but the mean per axis {p.axis + 1}")
        return _bn_layer(node, p, beta)
    t, c = (x, y) if isinstance(x, T) else (y, x)
    if isinstance(t, T) and isinstance(c, np.ndarray) and t.chain and \
            t.chain[-1].kind == "conv2d" and "b" not in t.chain[-1].weights:
        conv = t.chain[-1]
        W = conv.weights["W"]
        o = W.shape[0]
        nhwc = conv.attrs["layout"] == "NHWC"
        ok_shape = c.shape in (((o,), (1, o), (1, 1, o), (1, 1, 1, o)) if nhwc else
                               ((o, 1, 1), (1, o, 1, 1)))
        if ok_shape and c.dtype == getattr(W, "dtype", None):
            layer = Layer("conv2d", name=conv.name, attrs=dict(conv.attrs),
                          weights={"W": W, "b": np.ascontiguousarray(c.reshape(-1))})
            return T(t.chain[:-1] + (layer,), t.shape)
    return it.op_Add(node, a)
