"""ONNX importer: LSTM / GRU / RNN and the layout operators around them (private).

A recurrent node's outputs are symbolic: ``Y`` ([T, D, N, H] for layout 0,
[N, T, D, H] for layout 1) and ``Y_h`` ([D, N, H] / [N, D, H]) carry axis
labels that Transpose, Squeeze, Reshape (merging D and H, PyTorch's
bidirectional concatenation) and Shape act on; once ``Y`` is a sequence
(T, N, F) or (N, T, F) it becomes the refcomp layer with
``return_sequences=True`` (time-major: :class:`TimeMajor`), ``Y_h`` reduced
to (N, F) the layer with ``return_sequences=False``.  Weights come from the
ONNX tensors through :mod:`refcomp.convert` (exact).
"""

import numpy as np

from .. import convert
from ..model import Layer
from ._onnx_core import (BATCH, Batched, T, TimeMajor, Unused, Zeros, append, dec, describe,
                         fail)
from .keras import out_shape

__all__ = ["HANDLERS"]

HANDLERS = {}

_KIND = {"LSTM": "lstm", "GRU": "gru", "RNN": "simple_rnn"}
_DEFAULT_ACTS = {"LSTM": ["Sigmoid", "Tanh", "Tanh"], "GRU": ["Sigmoid", "Tanh"],
                 "RNN": ["Tanh"]}


class _Rec:
    """The recurrent layer of one node (built once both outputs are known)."""

    def __init__(self, node, kind, attrs, weights, seq, ndir, hidden):
        self.node, self.kind, self.attrs, self.weights = node, kind, attrs, weights
        self.seq, self.ndir, self.hidden = seq, ndir, hidden

    def finish(self, return_sequences):
        layer = Layer(self.kind, name=self.node.name or self.kind,
                      attrs=dict(self.attrs, return_sequences=return_sequences),
                      weights=self.weights)
        return T(self.seq.chain + (layer,), out_shape(layer, self.seq.shape))


class _Out:
    """Y or Y_h of a recurrent node, with the labels of its physical axes."""

    def __init__(self, rec, which, labels):
        self.rec, self.which, self.labels = rec, which, tuple(labels)

    def describe(self):
        return f"the {self.which} output of recurrent node {self.rec.node.name!r} " \
               f"(axes {''.join(self.labels)})"

    def _size(self, lab):
        r = self.rec
        return {"T": r.seq.shape[0], "N": BATCH, "D": r.ndir, "H": r.hidden,
                "F": r.ndir * r.hidden}[lab]

    def symbolic_shape(self):
        return np.array([self._size(x) for x in self.labels], dtype=np.int64)

    def _settle(self):
        labs = self.labels
        if self.which == "Y" and len(labs) == 3 and labs[2] in ("F", "H") and \
                (labs[2] == "F" or self.rec.ndir == 1):
            if labs[:2] == ("T", "N"):
                return TimeMajor(self.rec.finish(True))
            if labs[:2] == ("N", "T"):
                return self.rec.finish(True)
        if self.which == "Y_h" and len(labs) == 2 and labs[0] == "N" and \
                (labs[1] == "F" or self.rec.ndir == 1):
            return self.rec.finish(False)
        return self

    def transpose(self, node, perm):
        if sorted(perm) != list(range(len(self.labels))):
            fail(node, f"attribute perm={perm} does not fit {self.describe()}")
        return _Out(self.rec, self.which, [self.labels[p] for p in perm])._settle()

    def squeeze(self, node, axes):
        axes = [a % len(self.labels) for a in (axes or [])]
        if len(axes) != 1 or self.labels[axes[0]] != "D" or self.rec.ndir != 1:
            fail(node, f"Squeeze axes={axes} of {self.describe()}: only the direction axis of "
                       "a one-direction node")
        labs = [x for i, x in enumerate(self.labels) if i != axes[0]]
        return _Out(self.rec, self.which, labs)._settle()

    def gather(self, node, idx, axis):
        axis %= len(self.labels)
        if self.labels[axis] == "D" and self.rec.ndir == 1 and idx.ndim == 0 and \
                int(idx) in (0, -1):
            return self.squeeze(node, [axis])
        fail(node, f"Gather axis={axis} indices={np.asarray(idx).tolist()} of "
                   f"{self.describe()} is not modelled")

    def reshape_to(self, node, shape):
        labs = list(self.labels)
        if "D" in labs and "H" in labs and labs.index("H") == labs.index("D") + 1:
            merged = labs[:labs.index("D")] + ["F"] + labs[labs.index("H") + 1:]
            sizes = [self._size(x) for x in merged]
            ok = len(shape) == len(merged) and all(
                int(s) in (sz, -1) or (int(s) == 0 and i < len(labs)
                                        and labs[i] == merged[i])
                for i, (s, sz) in enumerate(zip(shape, sizes)))
            if ok and list(shape).count(-1) <= 1:
                return _Out(self.rec, self.which, merged)._settle()
        fail(node, f"Reshape of {self.describe()} to {shape.tolist()} is not modelled (only "
                   "the merge of the direction and hidden axes)")


def _initial(it, node, i, what, ndir, layout, hidden, static_batch):
    """Constant initial state ``initial_h`` / ``initial_c`` as one (B, H) array per
    direction (None: zeros).  B = 1 for a constant repeated along the batch, else the
    constant's own batch size, which the graph then fixes."""
    s = it.get(node, i)
    if s is None or isinstance(s, Zeros) or (isinstance(s, np.ndarray) and not np.any(s)):
        return [None] * ndir
    b_axis = 1 if layout == 0 else 0
    if isinstance(s, Batched) and s.axis == b_axis:
        v = s.value
    elif isinstance(s, np.ndarray):
        v = s                     # its batch size is then fixed (the Model checks it)
    else:
        fail(node, f"input {what} ({node.input[i]!r}) is {describe(s)}; refcomp imports "
                   "constant initial states (initializers, Constant nodes or a constant "
                   "expanded along the batch)")
    want = "[D, N, H]" if layout == 0 else "[N, D, H]"
    if v.ndim != 3 or v.shape[1 - b_axis] != ndir or v.shape[2] != hidden or \
            v.dtype not in (np.float32, np.float64) or \
            (static_batch is not None and v.shape[b_axis] not in (1, static_batch)):
        fail(node, f"input {what} ({node.input[i]!r}) has shape {list(v.shape)} and dtype "
                   f"{v.dtype}; {want} = {want.replace('D', str(ndir)).replace('H', str(hidden))}"
                   " float expected")
    per = [np.ascontiguousarray(np.take(v, d, axis=1 - b_axis)) for d in range(ndir)]
    return per


def _recurrent(it, node, a, op):
    kind = _KIND[op]
    layout = int(a.get("layout", 0))
    if layout not in (0, 1):
        fail(node, f"attribute layout={layout} must be 0 or 1")
    x = it.get(node, 0)
    if layout == 0 and not isinstance(x, TimeMajor):
        fail(node, f"input X is {describe(x)}; with layout=0 it must be time-major "
                   "[T, N, F] (a graph input with the batch on axis 1, or Transpose perm 1,0,2)")
    if layout == 1 and not isinstance(x, T):
        fail(node, f"input X is {describe(x)}; with layout=1 it must be batch-first [N, T, F]")
    seq = x.t if layout == 0 else x
    if len(seq.shape) != 2:
        fail(node, f"input X is {describe(x)}; a sequence (T, F) per sample is expected")
    direction = dec(a.get("direction", "forward"))
    if direction not in ("forward", "reverse", "bidirectional"):
        fail(node, f"attribute direction={direction!r} must be forward, reverse or "
                   "bidirectional")
    ndir = 2 if direction == "bidirectional" else 1
    W, R = it.weight(node, 1, "W"), it.weight(node, 2, "R")
    B = it.weight(node, 3, "B") if it.get(node, 3) is not None else None
    if W.ndim != 3 or W.shape[0] != ndir:
        fail(node, f"input W has shape {W.shape}; [{ndir}, G*H, F] expected for "
                   f"direction={direction!r}")
    if "hidden_size" in a and int(a["hidden_size"]) != R.shape[-1]:
        fail(node, f"attribute hidden_size={a['hidden_size']} does not match R {R.shape}")
    lens = it.get(node, 4)
    if isinstance(lens, Batched) and lens.value.dtype.kind in "iu" and \
            np.all(lens.value == seq.shape[0]):
        lens = None                            # the full length, repeated along the batch
    if lens is not None:
        if not isinstance(lens, np.ndarray) or lens.dtype.kind not in "iu" or lens.ndim != 1:
            fail(node, f"input sequence_lens ({node.input[4]!r}) is "
                       f"{describe(lens) if not isinstance(lens, np.ndarray) else lens}; "
                       "refcomp imports a constant int32 [N] (a fixed batch size)")
        if np.any(lens < 1) or np.any(lens > seq.shape[0]):
            fail(node, f"input sequence_lens ({node.input[4]!r}) = {lens.tolist()} holds "
                       f"lengths outside [1, {seq.shape[0]}] (the time steps of X)")
        if it.static_batch is not None and lens.size != it.static_batch:
            fail(node, f"input sequence_lens ({node.input[4]!r}) = {lens.tolist()} has "
                       f"{lens.size} entries for a batch of {it.static_batch}")
        lens = None if np.all(lens == seq.shape[0]) else [int(v) for v in lens]
    H = R.shape[-1]
    states = {"h0": _initial(it, node, 5, "initial_h", ndir, layout, H, it.static_batch)}
    if op == "LSTM":
        states["c0"] = _initial(it, node, 6, "initial_c", ndir, layout, H, it.static_batch)
    conv = {"LSTM": convert.lstm_from_onnx, "GRU": convert.gru_from_onnx,
            "RNN": convert.rnn_from_onnx}[op]
    extra = {"linear_before_reset": 0} if op == "GRU" else {}
    names = ("W_ih", "W_hh", "b_ih", "b_hh")
    weights = dict(zip(names, conv(W, R, B, direction=0, **extra)))
    if ndir == 2:
        rev = conv(W, R, B, direction=1, **extra)
        weights.update({n + "_reverse": v for n, v in zip(names, rev)})
    attrs = {"direction": direction}
    if lens is not None:
        attrs["sequence_lens"] = lens
    for k, per in states.items():
        for d, v in enumerate(per):
            if v is not None:
                if v.dtype != W.dtype:
                    fail(node, f"input initial_{k[0]} has dtype {v.dtype}, W {W.dtype}")
                weights[k + ("_reverse" if d else "")] = v
    if op == "LSTM" and it.get(node, 7) is not None:
        P = it.weight(node, 7, "P")
        weights["P"] = convert.peepholes_from_onnx(P, direction=0)
        if ndir == 2:
            weights["P_reverse"] = convert.peepholes_from_onnx(P, direction=1)
    if op == "LSTM":
        f = int(a.get("input_forget", 0))
        if f not in (0, 1):
            fail(node, f"attribute input_forget={f} must be 0 or 1")
        attrs["input_forget"] = bool(f)
    if op == "GRU":
        lbr = int(a.get("linear_before_reset", 0))
        if lbr not in (0, 1):
            fail(node, f"attribute linear_before_reset={lbr} must be 0 or 1")
        attrs["reset_after"] = bool(lbr)
    acts = [dec(s) for s in a.get("activations", [])]
    if acts and [s.lower() for s in acts] != [s.lower() for s in _DEFAULT_ACTS[op] * ndir]:
        attrs["activations"] = acts
    for k in ("activation_alpha", "activation_beta"):
        if k in a:
            attrs[k] = [float(np.float32(v)) for v in a[k]]
    if "clip" in a:
        clip = float(np.float32(a["clip"]))
        if not clip > 0:
            fail(node, f"attribute clip={a['clip']} must be > 0")
        attrs["clip"] = clip
    if kind == "simple_rnn" and "activations" in attrs and ndir == 1 and \
            attrs["activations"][0].lower() in ("tanh", "relu"):
        attrs["activation"] = attrs.pop("activations")[0].lower()
    rec = _Rec(node, kind, attrs, weights, seq, ndir, R.shape[-1])
    try:
        rec.finish(True)                       # validates the layer once, with its shapes
    except Exception as exc:                   # noqa: BLE001 - reported with the node
        fail(node, str(exc))
    y_labels = ("T", "D", "N", "H") if layout == 0 else ("N", "T", "D", "H")
    h_labels = ("D", "N", "H") if layout == 0 else ("N", "D", "H")
    outs = [_Out(rec, "Y", y_labels), _Out(rec, "Y_h", h_labels)]
    if op == "LSTM":
        outs.append(Unused(node, "Y_c"))
    return tuple(outs)


for _op in _KIND:
    HANDLERS[_op] = (lambda op: lambda it, node, a: _recurrent(it, node, a, op))(_op)


def _last_step(node, t, idx, axis):
    last = t.chain[-1] if t.chain else None
    steps = t.shape[0] if t.shape else None
    ok = last is not None and last.kind in ("lstm", "gru", "simple_rnn") and \
        last.attrs["return_sequences"] and last.attrs.get("direction") != "bidirectional" \
        and len(t.shape) == 2 and idx.ndim == 0 and int(idx) in (-1, steps - 1)
    if not ok:
        _gather_refused(node, t, idx, axis)
    if last.attrs.get("sequence_lens") is not None:
        fail(node, f"Gather of the last time step of {last.kind} layer {last.name!r}, whose "
                   f"sequence_lens {last.attrs['sequence_lens']} end some sequences earlier: "
                   "their last output is zeros, not the final state (use Y_h); not modelled")
    layer = Layer(last.kind, name=last.name, attrs=dict(last.attrs, return_sequences=False),
                  weights=last.weights)
    features = int(last.weights["W_ih"].shape[1])
    return append(node, T(t.chain[:-1], (steps, features)), layer)


def _gather_refused(node, t, idx, axis):
    fail(node, f"Gather of {describe(t)} (axis {axis}, indices {np.asarray(idx).tolist()}) is "
               "not supported: on an activation, only the last time step of a one-direction "
               "recurrent layer's output sequence is modelled (y[:, -1], Gather axis=1 index -1 "
               "right after the LSTM/GRU/RNN; y[-1] of a time-major one)")


def op_gather(it, node, a):
    data, idx = it.get(node, 0), it.const(node, 1, "indices")
    axis = int(a.get("axis", 0))
    if isinstance(data, _Out):
        return data.gather(node, idx, axis)
    if isinstance(data, T) and axis in (1, -2):
        return _last_step(node, data, idx, axis)
    if isinstance(data, TimeMajor) and axis in (0, -3):
        return _last_step(node, data.t, idx, axis)
    if isinstance(data, (T, TimeMajor)):
        _gather_refused(node, data, idx, axis)
    return np.asarray(np.take(it.const(node, 0, "data"), idx, axis=axis))


HANDLERS["Gather"] = op_gather


def op_slice(it, node, a):
    v = it.get(node, 0)
    if isinstance(v, Zeros):
        return Zeros()       # one layer's initial state sliced from zero states: still zeros
    if isinstance(v, Batched):
        return _slice_batched(it, node, v)
    if not isinstance(v, np.ndarray):
        fail(node, f"Slice of {describe(v)} is not supported: refcomp slices only constants "
                   "(shape arithmetic)")
    starts, ends = it.const(node, 1, "starts"), it.const(node, 2, "ends")
    axes = it.get(node, 3)
    axes = range(len(starts)) if axes is None else axes
    steps = it.get(node, 4)
    steps = [1] * len(starts) if steps is None else steps
    sl = [slice(None)] * v.ndim
    for s, e, ax, st in zip(starts, ends, axes, steps):
        sl[int(ax)] = slice(int(s), int(e), int(st))
    return v[tuple(sl)]


HANDLERS["Slice"] = op_slice


def _slice_batched(it, node, v):
    """Slice of a constant repeated along the batch, on its other axes (one layer's state)."""
    starts, ends = it.const(node, 1, "starts"), it.const(node, 2, "ends")
    axes = it.get(node, 3)
    axes = range(len(starts)) if axes is None else [int(x) % v.ndim for x in axes]
    steps = it.get(node, 4)
    steps = [1] * len(starts) if steps is None else steps
    sl = [slice(None)] * v.ndim
    for s, e, ax, st in zip(starts, ends, axes, steps):
        if ax == v.axis:
            fail(node, f"Slice of {describe(v)} along its batch axis is not modelled")
        sl[int(ax)] = slice(int(s), int(e), int(st))
    return Batched(v.value[tuple(sl)], v.axis)
