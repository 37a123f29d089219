"""ONNX importer: a simple RNN unrolled into per-step nodes (private).

PyTorch's dynamo exporter writes ``nn.RNN`` (each layer and direction;
time-major) without the RNN operator: ``P = MatMul(x, W_ih^T) + b_ih`` on
the whole [T, N, F] input, then per step t ``h_t = act(MatMul(h_{t-1},
W_hh^T) + b_hh + P[t])`` (with Slice / Squeeze of P and of the zero initial
state), and ``Concat(h_0 .. h_{T-1}, axis 0)``.  This module recognises
exactly that recurrence symbolically and turns it into one ``simple_rnn``
layer (the sum ``(h W_hh^T + b_hh) + (x W_ih^T + b_ih)`` is refcomp's
``(x ...) + (h ...)``: one commutative addition, same bits).  The reverse
direction of a bidirectional ``nn.RNN`` is the same recurrence on the
projection flipped in time (``Slice`` starts=-1, steps=-1, whose states are
concatenated last step first): a ``direction="reverse"`` layer; the
``Concat(forward, reverse, axis=2)`` of the two directions over one
sequence becomes one ``direction="bidirectional"`` layer.  Anything that
does not follow the pattern step by step is a FormatError naming the node.
The wrappers leave every other use of these operators to the handlers they
wrap.
"""

import numpy as np

from ..model import Layer
from ._onnx_core import Batched, T, TimeMajor, Zeros, describe, fail
from .keras import out_shape

__all__ = ["wrap"]


class _Proj:
    """x W_ih^T (+ b_ih) of a time-major sequence: one row block per step; ``flipped``:
    its time order reversed (the Slice starts=-1, steps=-1 of a reverse direction)."""

    def __init__(self, seq, W, b=None, flipped=False):
        self.seq, self.W, self.b, self.flipped = seq, W, b, flipped   # W: (F, H) as in graph

    def describe(self):
        return "the {}input projection of an unrolled recurrence".format(
            "time-reversed " if self.flipped else "")


class _StepSlice:
    def __init__(self, proj, t, squeezed):
        self.proj, self.t, self.squeezed = proj, t, squeezed

    def describe(self):
        return f"step {self.t} of an unrolled recurrence's input projection"


class _HR:
    """h_{t-1} W_hh^T (+ b_hh), h_{t-1} being Zeros (t = 0) or a _State."""

    def __init__(self, prev, R, b=None, step=None):
        self.prev, self.R, self.b, self.step = prev, R, b, step

    def describe(self):
        return "a recurrent product of an unrolled recurrence"


class _State:
    def __init__(self, t, proj, R, b_hh, act, prev):
        self.t, self.proj, self.R, self.b_hh, self.act, self.prev = t, proj, R, b_hh, act, prev

    def describe(self):
        return f"the state after step {self.t} of an unrolled recurrence"


_SYMBOLIC = (_Proj, _StepSlice, _HR, _State)


def _is_sym(v):
    return isinstance(v, _SYMBOLIC)


def _prev_ok(h, t):
    return (isinstance(h, (Zeros, Batched)) and t == 0) or \
        (isinstance(h, _State) and h.t == t - 1)


def _initial_state(node, vals):
    """The (1, H) constant initial state of an unrolled recurrence (None: zeros)."""
    first = next(v for v in vals if v.t == 0)
    h = first.prev
    if isinstance(h, Zeros):
        return None
    H = first.R.shape[1]
    if h.value.size != H:
        fail(node, f"the initial state of the unrolled recurrence is {describe(h)}; one state "
                   f"of {H} values repeated along the batch is expected")
    return np.ascontiguousarray(h.value.reshape(1, H))


def _matmul(prev_handler):
    def run(it, node, a):
        x = it.get(node, 0)
        if isinstance(x, TimeMajor):
            W = it.weight(node, 1, "B")
            if W.ndim != 2 or len(x.t.shape) != 2 or W.shape[0] != x.t.shape[1]:
                fail(node, f"MatMul of {describe(x)} by a constant {W.shape}")
            return _Proj(x.t, W)
        if isinstance(x, (Zeros, Batched, _State)):
            R = it.weight(node, 1, "B")
            return _HR(x, R)
        return prev_handler(it, node, a)
    return run


def _add(prev_handler):
    def run(it, node, a):
        u, v = it.get(node, 0), it.get(node, 1)
        if not (_is_sym(u) or _is_sym(v)):
            return prev_handler(it, node, a)
        for p, q in ((u, v), (v, u)):
            if isinstance(p, _Proj) and p.b is None and not p.flipped and \
                    isinstance(q, np.ndarray):
                return _Proj(p.seq, p.W, np.asarray(q).reshape(-1))
            if isinstance(p, _HR) and p.b is None and p.step is None and \
                    isinstance(q, np.ndarray):
                return _HR(p.prev, p.R, np.asarray(q).reshape(-1))
            if isinstance(p, _HR) and isinstance(q, _StepSlice) and q.squeezed:
                return _HR(p.prev, p.R, p.b, step=q)
        fail(node, f"Add of {describe(u)} and {describe(v)} is not an unrolled recurrence step")
    return run


def _act(name, prev_handler):
    def run(it, node, a):
        v = it.get(node, 0)
        if not isinstance(v, _HR):
            if _is_sym(v):
                fail(node, f"{node.op_type} of {describe(v)} is not modelled")
            return prev_handler(it, node, a)
        s = v.step
        if s is None or not _prev_ok(v.prev, s.t):
            fail(node, f"{node.op_type} of a recurrent product whose step order is not "
                       "h_{t-1} -> h_t")
        if isinstance(v.prev, _State):
            p = v.prev
            same = p.proj is s.proj and np.array_equal(p.R, v.R) and p.act == name and \
                np.array_equal(p.b_hh if p.b_hh is not None else 0, v.b if v.b is not None
                               else 0)
            if not same:
                fail(node, "the steps of the unrolled recurrence use different weights")
        return _State(s.t, s.proj, v.R, v.b, name, v.prev)
    return run


def _slice(prev_handler):
    def run(it, node, a):
        v = it.get(node, 0)
        if not isinstance(v, _Proj):
            return prev_handler(it, node, a)
        starts, ends = it.const(node, 1, "starts"), it.const(node, 2, "ends")
        axes = it.get(node, 3)
        steps = it.get(node, 4)
        T_len = v.seq.shape[0]
        if starts.size == 1 and steps is not None and int(np.ravel(steps)[0]) == -1 and \
                (axes is None or int(np.ravel(axes)[0]) == 0) and not v.flipped:
            # torch.flip of the whole time axis (the reverse direction of nn.RNN): ONNX
            # clamps starts to T-1 and ends to -1, so it must cover every step
            if int(starts[0]) in (-1, T_len - 1) or int(starts[0]) >= T_len:
                if int(ends[0]) <= -T_len - 1:
                    return _Proj(v.seq, v.W, v.b, flipped=True)
            fail(node, "only the whole time axis of an unrolled recurrence's input "
                       "projection can be reversed (Slice starts=-1, ends<=-T-1, steps=-1)")
        ok = starts.size == 1 and (axes is None or int(np.ravel(axes)[0]) == 0) and \
            (steps is None or int(np.ravel(steps)[0]) == 1) and \
            int(ends[0]) == int(starts[0]) + 1
        if not ok:
            fail(node, "only one time step of an unrolled recurrence's input projection "
                       "(Slice [t, t+1) on axis 0) is modelled")
        return _StepSlice(v, int(starts[0]), False)
    return run


def _squeeze(prev_handler):
    def run(it, node, a):
        v = it.get(node, 0)
        axes = it.axes(node, a, 1)
        if isinstance(v, _StepSlice) and axes == [0] and not v.squeezed:
            return _StepSlice(v.proj, v.t, True)
        if isinstance(v, Zeros):
            return Zeros()
        if isinstance(v, Batched):
            ones = [i for i, n in enumerate(v.value.shape) if n == 1 and i != v.axis]
            ax = sorted(x % v.ndim for x in (axes if axes is not None else ones))
            if v.axis in ax or any(v.value.shape[x] != 1 for x in ax):
                fail(node, f"Squeeze axes={ax} of {describe(v)}: only size-1 axes besides "
                           "the batch")
            return Batched(np.squeeze(v.value, axis=tuple(ax)),
                           v.axis - sum(x < v.axis for x in ax))
        return prev_handler(it, node, a)
    return run


def _unsqueeze(prev_handler):
    def run(it, node, a):
        v = it.get(node, 0)
        if isinstance(v, Zeros):
            return Zeros()
        if isinstance(v, Batched):
            val, axis = v.value, v.axis
            for ax in sorted(x % (v.ndim + len(it.axes(node, a, 1)))
                             for x in it.axes(node, a, 1)):
                val = np.expand_dims(val, ax)
                axis += ax <= axis
            return Batched(val, axis)
        return prev_handler(it, node, a)
    return run


def _concat(prev_handler):
    def run(it, node, a):
        vals = [it.get(node, i) for i in range(len(node.input))]
        if vals and all(isinstance(v, TimeMajor) for v in vals):
            return _bidirectional(node, a, vals)
        if not any(isinstance(v, _State) for v in vals):
            return prev_handler(it, node, a)
        if int(a.get("axis", 0)) != 0 or not all(isinstance(v, _State) for v in vals):
            fail(node, "only the Concat of an unrolled recurrence's states along time is "
                       "modelled")
        proj = vals[0].proj
        T_len = proj.seq.shape[0]
        # a reversed projection's step s is time T-1-s: its states are concatenated last first
        order = list(range(T_len))[::-1] if proj.flipped else list(range(T_len))
        if [v.t for v in vals] != order or any(v.proj is not proj for v in vals):
            fail(node, "the Concat does not hold every step of one unrolled recurrence in time "
                       "order")
        last = vals[-1]
        act = {"Tanh": "tanh", "Relu": "relu"}[last.act]
        W_ih = np.ascontiguousarray(proj.W.T)
        W_hh = np.ascontiguousarray(last.R.T)
        H = W_hh.shape[0]
        for name, b in (("b_ih", proj.b), ("b_hh", last.b_hh)):
            if b is not None and b.shape != (H,):
                fail(node, f"{name} of the unrolled recurrence has shape {b.shape}")
        attrs = {"activation": act, "return_sequences": True}
        if proj.flipped:
            attrs["direction"] = "reverse"
        layer = Layer("simple_rnn", name=node.name or "rnn", attrs=attrs,
                      weights={"W_ih": W_ih, "W_hh": W_hh, "b_ih": proj.b, "b_hh": last.b_hh,
                               "h0": _initial_state(node, vals)})
        seq = proj.seq
        return TimeMajor(T(seq.chain + (layer,), out_shape(layer, seq.shape)))
    return run


def _bidirectional(node, a, vals):
    """``Concat(forward, reverse, axis=2)`` of two unrolled directions over one sequence
    (nn.RNN(bidirectional=True)): one bidirectional simple_rnn layer, features
    [forward, reverse] as refcomp's layer concatenates them."""
    if len(vals) != 2 or int(a.get("axis", 0)) not in (2, -1):
        fail(node, "only the Concat of two unrolled recurrence directions along features "
                   "(axis 2) is modelled on time-major sequences")
    fw, bw = vals[0].t, vals[1].t
    lf, lb = (fw.chain[-1] if fw.chain else None), (bw.chain[-1] if bw.chain else None)
    ok = lf is not None and lb is not None and lf.kind == lb.kind == "simple_rnn" and \
        lf.attrs.get("direction", "forward") == "forward" and \
        lb.attrs.get("direction") == "reverse" and \
        lf.attrs["activation"] == lb.attrs["activation"] and \
        len(fw.chain) == len(bw.chain) and \
        all(p is q for p, q in zip(fw.chain[:-1], bw.chain[:-1])) and \
        lf.weights["W_ih"].shape == lb.weights["W_ih"].shape
    if not ok:
        fail(node, f"Concat of {describe(vals[0])} and {describe(vals[1])}: only a forward "
                   "then a reverse unrolled RNN direction over the same sequence (a "
                   "bidirectional nn.RNN) is modelled")
    weights = dict(lf.weights)
    for k in ("W_ih", "W_hh", "b_ih", "b_hh", "h0"):
        weights[k + "_reverse"] = lb.weights.get(k)
    layer = Layer("simple_rnn", name=node.name or "rnn",
                  attrs={"activation": lf.attrs["activation"], "return_sequences": True,
                         "direction": "bidirectional"}, weights=weights)
    seq_shape = (fw.shape[0], int(lf.weights["W_ih"].shape[1]))
    return TimeMajor(T(fw.chain[:-1] + (layer,), out_shape(layer, seq_shape)))


def wrap(handlers):
    """Wrap MatMul, Add, Tanh, Relu, Slice, Squeeze, Unsqueeze and Concat handlers (or the
    interpreter's own methods) so that an unrolled recurrence is recognised first."""
    def prev(op):
        if op in handlers:
            return handlers[op]
        return lambda it, node, a: getattr(it, "op_" + op)(node, a)

    out = dict(handlers)
    out["MatMul"] = _matmul(prev("MatMul"))
    out["Add"] = _add(prev("Add"))
    out["Tanh"] = _act("Tanh", prev("Tanh"))
    out["Relu"] = _act("Relu", prev("Relu"))
    out["Slice"] = _slice(prev("Slice"))
    out["Squeeze"] = _squeeze(prev("Squeeze"))
    out["Unsqueeze"] = _unsqueeze(prev("Unsqueeze"))
    out["Concat"] = _concat(prev("Concat"))
    return out
