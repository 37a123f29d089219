"""Evaluate a refcomp model with ONNX Runtime (the candidate of the onnxruntime runs).

The model is written as an ONNX graph (opset :data:`OPSET`) of the standard
operators, built node by node with ``onnx.helper`` (no exporter in
between), and run by an ``onnxruntime.InferenceSession`` on the CPU:

=============  ==================================================================
dense          ``Gemm`` (transB=1, alpha, beta)
conv1d         ``Conv`` (1-D pads, strides, dilations, group)
max_pool,      ``MaxPool`` / ``AveragePool`` with N-D pads, strides, dilations,
avg_pool       ceil_mode (and ``count_include_pad``)
conv2d         ``Conv`` (pads [t, l, b, r], strides, dilations, group); NHWC by
               ``Transpose``
max_pool2d     ``MaxPool`` (pads; padded values never win)
avg_pool2d     ``AveragePool`` (pads, ``count_include_pad``)
batch_norm     ``BatchNormalization`` (inference)
activations    ``Relu``, ``Tanh``, ``Sigmoid``, ``Softmax`` (axis),
               ``HardSigmoid`` (alpha 1/6 keras3, 0.2 keras2; beta 0.5)
flatten        ``Flatten``; reshape ``Reshape``; dropout ``Identity``
residual       ``Add`` (``ScatterElements``-free: an index map is not expressible)
lstm           ``LSTM`` (gates i,o,f,c, :func:`refcomp.convert.lstm_to_onnx`)
gru            ``GRU`` (z,r,h; ``linear_before_reset`` = reset_after)
simple_rnn     ``RNN`` (Tanh or Relu)
mgu            not expressible (ONNX has no MGU)
=============  ==================================================================
"""

import numpy as np

from ..convert import gru_to_onnx, lstm_to_onnx
from ..model import materialize
from ._common import NotBuilt, NotExpressible, layer_pads, nd_geometry, require

__all__ = ["onnx_graph", "onnxruntime_forward", "OPSET"]

OPSET = 17


class _G:
    def __init__(self, onnx):
        self.onnx, self.h = onnx, onnx.helper
        self.nodes, self.inits, self.n = [], [], 0

    def name(self, p="t"):
        self.n += 1
        return f"{p}{self.n}"

    def const(self, a, dtype=np.float32):
        nm = self.name("c")
        self.inits.append(self.onnx.numpy_helper.from_array(np.asarray(a, dtype), nm))
        return nm

    def node(self, op, inputs, n_out=1, **attrs):
        outs = [self.name() for _ in range(n_out)]
        self.nodes.append(self.h.make_node(op, list(inputs), outs, **attrs))
        return outs[0] if n_out == 1 else outs


def _to_nchw(g, x, layout):
    return g.node("Transpose", [x], perm=[0, 3, 1, 2]) if layout == "NHWC" else x


def _from_nchw(g, y, layout):
    return g.node("Transpose", [y], perm=[0, 2, 3, 1]) if layout == "NHWC" else y


_ONNX_ACT = {n.lower(): n for n in ("Relu", "Tanh", "Sigmoid", "Affine", "LeakyRelu",
                                    "ThresholdedRelu", "ScaledTanh", "HardSigmoid", "Elu",
                                    "Softsign", "Softplus")}


def _rnn_dir(k, a, w, H):
    """ONNX (W, R, B[, P]) of one direction from refcomp weights ``w``."""
    W_ih, W_hh = materialize(w["W_ih"]), materialize(w["W_hh"])
    b_ih, b_hh = (None if w.get(n) is None else materialize(w[n]) for n in ("b_ih", "b_hh"))
    if k == "lstm":
        W, R, B = lstm_to_onnx(W_ih, W_hh, b_ih, b_hh)
        P = w.get("P")
        if P is not None:                 # refcomp i, f, o -> ONNX i, o, f
            P = materialize(P)
            P = np.concatenate([P[:H], P[2 * H:], P[H:2 * H]])[None].astype(np.float32)
        return W, R, B, P
    if k == "gru":
        return gru_to_onnx(W_ih, W_hh, b_ih, b_hh) + (None,)
    zero = np.zeros(H, np.float32)
    B = np.concatenate([zero if b_ih is None else b_ih, zero if b_hh is None else b_hh])
    return W_ih[None], W_hh[None], B[None], None


def _rnn(g, layer, x, shape):
    k, a = layer.kind, layer.attrs
    if k == "mgu":
        raise NotExpressible("ONNX has no MGU operator")
    if a.get("update", "standard") != "standard":
        raise NotExpressible("ONNX GRU has no seed-000 update (1 - z) h + z n")
    # the graph below reads x batch-first from zero states over every step: refuse what it
    # would silently drop rather than compare ORT with another computation
    given = [n for n in ("h0", "c0", "h0_reverse", "c0_reverse") if n in layer.weights]
    if given or a.get("sequence_lens") is not None or \
            a.get("layout", "batch_first") != "batch_first":
        raise NotBuilt(f"{k}: initial states, sequence_lens and the time-major layout are not "
                       f"built here (got states {given}, sequence_lens "
                       f"{a.get('sequence_lens')!r}, layout {a.get('layout')!r})")
    H = materialize(layer.weights["W_hh"]).shape[1]
    direction = a.get("direction", "forward")
    names = ("W_ih", "W_hh", "b_ih", "b_hh", "P")
    dirs = [{n: layer.weights[n] for n in names if n in layer.weights}]
    if direction == "bidirectional":
        dirs.append({n: layer.weights[n + "_reverse"] for n in names
                     if n + "_reverse" in layer.weights})
    parts = [_rnn_dir(k, a, w, H) for w in dirs]
    W, R, B = (np.concatenate([p[i] for p in parts]) for i in range(3))
    attrs = {"hidden_size": H, "direction": direction}
    if a.get("clip") is not None:
        attrs["clip"] = float(a["clip"])
    acts = a.get("activations")
    if k == "simple_rnn" and acts is None:
        acts = ["Tanh" if a["activation"] == "tanh" else "Relu"] * len(dirs)
    if acts is not None:
        per = {"lstm": 3, "gru": 2, "simple_rnn": 1}[k]
        acts = list(acts) * (2 if len(acts) == per and len(dirs) == 2 else 1)
        attrs["activations"] = [_ONNX_ACT[n.lower()] for n in acts]
    for opt in ("activation_alpha", "activation_beta"):
        if a.get(opt) is not None:
            attrs[opt] = [float(v) for v in a[opt]]
    if k == "lstm" and a.get("input_forget"):
        attrs["input_forget"] = 1
    if k == "gru":
        attrs["linear_before_reset"] = int(bool(a["reset_after"]))
    xt = g.node("Transpose", [x], perm=[1, 0, 2])               # (T, N, F)
    ins = [xt, g.const(W), g.const(R), g.const(B)]
    if k == "lstm" and parts[0][3] is not None:
        ins += ["", "", "", g.const(np.concatenate([p[3] for p in parts]))]
    op = {"lstm": "LSTM", "gru": "GRU", "simple_rnn": "RNN"}[k]
    y, y_h = g.node(op, ins, n_out=2, **attrs)
    T, D = shape[1], len(dirs)
    if a["return_sequences"]:
        # Y: (T, D, N, H) -> (N, T, D*H) (directions' features concatenated, refcomp's order)
        y = g.node("Transpose", [y], perm=[2, 0, 1, 3])
        return g.node("Reshape", [y, g.const([shape[0], T, D * H], np.int64)]), \
            (shape[0], T, D * H)
    # Y_h: (D, N, H), each direction's final state (the reverse one after step 0)
    y_h = g.node("Transpose", [y_h], perm=[1, 0, 2])
    return g.node("Reshape", [y_h, g.const([shape[0], D * H], np.int64)]), (shape[0], D * H)


def _layer(g, layer, x, shape):
    """Append the nodes of ``layer`` on tensor ``x`` of ``shape``; return (output, shape)."""
    k, a = layer.kind, layer.attrs
    if k == "dense":
        W = materialize(layer.weights["W"])
        ins = [x, g.const(W)]
        if layer.weights.get("b") is not None:
            ins.append(g.const(materialize(layer.weights["b"])))
        extra = {} if a["alpha"] == 1.0 and a["beta"] == 1.0 else \
            {"alpha": float(a["alpha"]), "beta": float(a["beta"])}
        return g.node("Gemm", ins, transB=1, **extra), (shape[0], W.shape[0])
    if k in ("conv1d", "max_pool", "avg_pool"):
        from ..model import _forward_layer
        kk, s, d, pads = nd_geometry(layer, shape[2:])
        onnx_pads = [lo for lo, _ in pads] + [hi for _, hi in pads]
        geo = dict(kernel_shape=list(kk), strides=list(s), dilations=list(d), pads=onnx_pads)
        if k == "conv1d":
            W = materialize(layer.weights["W"])
            ins = [x, g.const(W)]
            if layer.weights.get("b") is not None:
                ins.append(g.const(materialize(layer.weights["b"])))
            y = g.node("Conv", ins, group=int(a["groups"]), **geo)
        elif a["ceil_mode"] and any(
                -(-(shape[2 + i] + lo + hi - (kk[i] - 1) * d[i] - 1) // s[i]) * s[i]
                >= shape[2 + i] + lo for i, (lo, hi) in enumerate(pads)):
            # measured (onnx 1.23, onnxruntime 1.32): ONNX shape inference keeps a last
            # ceil_mode window that starts in the right padding, ORT's kernel drops it
            # (as refcomp and PyTorch do); the graph that follows fails to load
            raise NotExpressible("ceil_mode with a last window starting in the right "
                                 "padding: ONNX shape inference and ONNX Runtime's kernel "
                                 "disagree on the output size")
        elif any(p >= kk[i] for i, pr in enumerate(pads) for p in pr):
            raise NotExpressible(f"ONNX Runtime's pooling wants pads smaller than the "
                                 f"undilated kernel {kk}, got {pads}")
        elif k == "max_pool":
            y = g.node("MaxPool", [x], ceil_mode=int(bool(a["ceil_mode"])), **geo)
        else:
            if any(v != 1 for v in d):
                raise NotExpressible(f"AveragePool takes dilations from opset 19 (this graph "
                                     f"is opset {OPSET})")
            del geo["dilations"]
            y = g.node("AveragePool", [x], ceil_mode=int(bool(a["ceil_mode"])),
                       count_include_pad=int(bool(a["count_include_pad"])), **geo)
        out = _forward_layer(layer, np.zeros(shape, np.float32), "reference").shape
        return y, out
    if k in ("conv2d", "max_pool2d", "avg_pool2d"):
        nhwc = a["layout"] == "NHWC"
        hw = shape[1:3] if nhwc else shape[2:4]
        pads, kk, s, d = layer_pads(layer, hw)
        (t, b), (le, r) = pads
        xc = _to_nchw(g, x, a["layout"])
        if k == "conv2d":
            W = materialize(layer.weights["W"])
            ins = [xc, g.const(W)]
            if layer.weights.get("b") is not None:
                ins.append(g.const(materialize(layer.weights["b"])))
            y = g.node("Conv", ins, kernel_shape=list(kk), strides=list(s), dilations=list(d),
                       pads=[t, le, b, r], group=int(a["groups"]))
            c = W.shape[0]
        elif k == "max_pool2d":
            y = g.node("MaxPool", [xc], kernel_shape=list(kk), strides=list(s),
                       pads=[t, le, b, r])
            c = shape[3] if nhwc else shape[1]
        else:
            y = g.node("AveragePool", [xc], kernel_shape=list(kk), strides=list(s),
                       pads=[t, le, b, r], count_include_pad=int(bool(a["count_include_pad"])))
            c = shape[3] if nhwc else shape[1]
        oh = (hw[0] + t + b - d[0] * (kk[0] - 1) - 1) // s[0] + 1
        ow = (hw[1] + le + r - d[1] * (kk[1] - 1) - 1) // s[1] + 1
        out = (shape[0], oh, ow, c) if nhwc else (shape[0], c, oh, ow)
        return _from_nchw(g, y, a["layout"]), out
    if k == "batch_norm":
        w = {n: g.const(materialize(v)) for n, v in layer.weights.items()}
        ins = [w["gamma"], w["beta"], w["mean"], w["var"]]
        if a.get("axis") is not None:      # BatchNormalization's channel axis is 1
            ax = int(a["axis"]) % len(shape)
            perm = [i for i in range(len(shape)) if i != ax]
            perm.insert(1, ax)                  # the channel axis moved to position 1
            perm = None if ax == 1 else perm
            inv = None if perm is None else [perm.index(i) for i in range(len(shape))]
        elif len(shape) == 4 and a["layout"] == "NHWC":
            perm, inv = [0, 3, 1, 2], [0, 2, 3, 1]
        elif len(shape) == 3:
            perm, inv = [0, 2, 1], [0, 2, 1]
        else:
            perm = inv = None
        xc = x if perm is None else g.node("Transpose", [x], perm=perm)
        y = g.node("BatchNormalization", [xc] + ins, epsilon=float(a["eps"]))
        return (y if inv is None else g.node("Transpose", [y], perm=inv)), shape
    if k == "activation":
        f = a["function"]
        if f == "linear":
            return g.node("Identity", [x]), shape
        if f == "softmax":
            return g.node("Softmax", [x], axis=int(a["axis"])), shape
        if f == "hard_sigmoid":
            if a["variant"] == "onnx":
                return g.node("HardSigmoid", [x], alpha=float(a["alpha"]),
                              beta=float(a["beta"])), shape
            alpha = 1.0 / 6.0 if a["variant"] == "keras3" else 0.2
            return g.node("HardSigmoid", [x], alpha=alpha, beta=0.5), shape
        ops = {"relu": "Relu", "tanh": "Tanh", "sigmoid": "Sigmoid"}
        if f not in ops:
            raise NotExpressible(f"activation {f!r}")
        return g.node(ops[f], [x]), shape
    if k == "flatten":
        return g.node("Flatten", [x], axis=1), (shape[0], int(np.prod(shape[1:])))
    if k == "reshape":
        tgt = [shape[0]] + [int(s) for s in a["shape"]]
        return g.node("Reshape", [x, g.const(tgt, np.int64)]), tuple(tgt)
    if k == "dropout":
        return g.node("Identity", [x]), shape
    if k == "residual":
        if layer.weights.get("index_map") is not None:
            raise NotBuilt("a residual index map (selective addition) is not built for "
                           "ONNX here")
        fx, fs = x, shape
        for sub in layer.layers:
            fx, fs = _layer(g, sub, fx, fs)
        return g.node("Add", [x, fx]), shape
    if k in ("lstm", "gru", "mgu", "simple_rnn"):
        return _rnn(g, layer, x, shape)
    raise NotExpressible(f"layer kind {k!r}")


def onnx_graph(model, input_shape):
    """The ONNX ``ModelProto`` of ``model`` for float32 inputs of ``input_shape`` (batch first)."""
    onnx = require("onnx")
    g = _G(onnx)
    x, shape = "x", tuple(int(s) for s in input_shape)
    y = x
    for layer in model.layers:
        y, shape = _layer(g, layer, y, shape)
    h, TP = onnx.helper, onnx.TensorProto
    graph = h.make_graph(g.nodes, "refcomp_validate",
                         [h.make_tensor_value_info("x", TP.FLOAT, list(input_shape))],
                         [h.make_tensor_value_info(y, TP.FLOAT, None)], g.inits)
    return h.make_model(graph, opset_imports=[h.make_opsetid("", OPSET)],
                        producer_name="refcomp.validate")


def onnxruntime_forward(model, x):
    """``model`` run by ONNX Runtime (CPU, default graph optimisations) on float32 ``x``.

    Raises
    ------
    NotExpressible
        A layer ONNX has no operator for (MGU, a residual index map).
    MissingDependencyError
        onnx or onnxruntime is not installed.
    """
    ort = require("onnxruntime")
    x = np.ascontiguousarray(np.asarray(x, np.float32))
    proto = onnx_graph(model, x.shape)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 3
    sess = ort.InferenceSession(proto.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])
    return np.asarray(sess.run(None, {"x": x})[0], np.float32)
