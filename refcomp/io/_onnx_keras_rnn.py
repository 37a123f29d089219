"""ONNX importer: Keras 3's LSTM, GRU and SimpleRNN as its torch backend exports them
(private).

Keras 3 (torch backend, no cuDNN) runs ``keras.layers.LSTM`` / ``GRU`` as a Python
loop, so ``model.export(format="onnx")`` writes them unrolled: ``P = MatMul(x, kernel)
+ b`` on the time-major input, then per step t ``P[t]`` (Gather), the recurrent
product ``MatMul(h, recurrent_kernel)`` (+ the GRU's recurrent bias), the gate chunks
(Slice of thirds / quarters, bounds from Shape arithmetic) and the cell's elementwise
Sigmoid / Tanh / Mul / Add / Sub nodes.  ``SimpleRNN`` goes through Keras's generic
loop: the time steps of a ``Split``, per step ``(x_t W + b) + h U`` and its activation,
``Where(t < length, new, old)`` whose condition folds to a constant (no mask), and the
outputs stacked by Unsqueeze + Concat (only the last one when return_sequences=False).

The expressions, the cell templates and the matching are in
:mod:`refcomp.io._onnx_keras_cells`; this module wraps the operator handlers.
"""

import numpy as np

from ..model import Layer
from ._onnx_core import BATCH, T, TimeMajor, Zeros, describe, fail
from ._onnx_keras_cells import (E, TimeFlipped, add_const as _add_const, as_e as _as_e,
                                bshape as _bshape, finish as _finish,
                                is_time_flip as _is_time_flip, leaf as _leaf,
                                matmul_e as _matmul_e, mk as _mk, resolve as _resolve,
                                table as _table, xstep as _xstep)
from .keras import out_shape

__all__ = ["E", "wrap", "finish"]


def _any_e(vals):
    return any(isinstance(v, E) for v in vals)


def wrap(handlers):
    """Wrap the handlers (already wrapped by _onnx_unrolled) so that Keras's unrolled
    LSTM / GRU cells are followed first."""
    from ._onnx_unrolled import _HR, _Proj

    def prev(op):
        if op in handlers:
            return handlers[op]

        def run(it, node, a):
            fn = getattr(it, "op_" + op, None)
            if fn is None:
                fail(node, f"operator {op} is not supported here")
            return fn(node, a)
        return run

    out = dict(handlers)

    def gather(it, node, a):
        v = it.get(node, 0)
        if isinstance(v, E) and v.op == "Concat0" and int(a.get("axis", 0)) == 0:
            idx = it.const(node, 1, "indices")
            if idx.ndim == 0 and -len(v.args) <= int(idx) < len(v.args):
                part = v.args[int(idx)]
                return part.args[0] if part.op == "Unsqueeze0" else \
                    fail(node, f"Gather of {describe(v)}")
        if isinstance(v, _Proj) and not v.flipped and int(a.get("axis", 0)) == 0:
            idx = it.const(node, 1, "indices")
            steps = v.seq.shape[0]
            if idx.ndim == 0 and -steps <= int(idx) < steps:
                _table(it)["proj"][id(v)] = v
                return _leaf(it, ("xstep", id(v), int(idx) % steps),
                             (BATCH, v.W.shape[1]))
        if isinstance(v, TimeMajor) and int(a.get("axis", 0)) == 0:
            idx = it.const(node, 1, "indices")
            steps = v.t.shape[0]
            last = v.t.chain[-1] if v.t.chain else None
            last_step = last is not None and last.kind in ("lstm", "gru", "simple_rnn") and \
                idx.ndim == 0 and int(idx) in (-1, steps - 1)
            if idx.ndim == 0 and -steps <= int(idx) < steps and not last_step:
                return _xstep(it, v.t, int(idx) % steps)   # x[t] of Keras's generic loop
        return prev("Gather")(it, node, a)

    def split(it, node, a):
        v = it.get(node, 0)
        if isinstance(v, E):                 # the gate blocks of x_t K + b
            sizes = it.const(node, 1, "split") if it.get(node, 1) is not None else None
            k = len(node.output)
            n = v.shape[-1]
            sizes = [n // k] * k if sizes is None else [int(q) for q in np.ravel(sizes)]
            if int(a.get("axis", 0)) % len(v.shape) != len(v.shape) - 1 or sum(sizes) != n:
                fail(node, f"Split of {describe(v)}: only blocks of the last axis")
            bounds = np.concatenate([[0], np.cumsum(sizes)])
            return tuple(_mk(it, "Slice", (v, int(bounds[i]), int(bounds[i + 1])),
                             v.shape[:-1] + (sizes[i],)) for i in range(len(sizes)))
        if not isinstance(v, TimeMajor):
            return prev("Split")(it, node, a)
        steps = v.t.shape[0]
        sizes = it.get(node, 1)
        sizes = [1] * steps if sizes is None else [int(q) for q in np.ravel(sizes)]
        if int(a.get("axis", 0)) != 0 or sizes != [1] * steps or len(node.output) != steps:
            fail(node, f"Split of {describe(v)}: only one piece per time step (axis 0) is "
                       "modelled")
        _table(it)["seqs"][id(v.t)] = v.t
        return tuple(_leaf(it, ("xsplit", id(v.t), t), (1, BATCH, v.t.shape[1]))
                     for t in range(steps))

    def squeeze(it, node, a):
        v = it.get(node, 0)
        if isinstance(v, E) and v.op == "leaf" and v.args[0][0] == "xsplit" and \
                it.axes(node, a, 1) == [0]:
            return _xstep(it, _table(it)["seqs"][v.args[0][1]], v.args[0][2])
        if isinstance(v, E):
            fail(node, f"Squeeze of {describe(v)} is not modelled")
        return prev("Squeeze")(it, node, a)

    def where(it, node, a):
        c, x, y = it.get(node, 0), it.get(node, 1), it.get(node, 2)
        if isinstance(c, np.bool_):
            c = np.asarray(c)
        if not _any_e((x, y)):
            return prev("Where")(it, node, a)
        # Keras's generic loop keeps finished samples with Where(t < length, new, old); with
        # no mask every condition folds to a constant
        if isinstance(c, np.ndarray) and c.dtype == bool and c.size and c.all():
            return x
        if isinstance(c, np.ndarray) and c.dtype == bool and c.size and not c.any():
            return y
        fail(node, f"Where with condition {describe(c) if not isinstance(c, np.ndarray) else c}"
                   " inside an unrolled Keras recurrent layer: only a constant condition (no "
                   "mask) is modelled")

    def matmul(it, node, a):
        x = it.get(node, 0)
        if isinstance(x, E):
            W = it.weight(node, 1, "B")
            r = _resolve(it, node, x)
            if r is not None:               # a layer after the recurrence (Dense)
                it.v[node.input[0]] = r
                return prev("MatMul")(it, node, a)
            if W.ndim != 2 or W.shape[0] != x.shape[-1]:
                fail(node, f"MatMul of {describe(x)} by a constant {W.shape}")
            return _matmul_e(it, x, W)
        return prev("MatMul")(it, node, a)

    def binary(op):
        def run(it, node, a):
            x, y = it.get(node, 0), it.get(node, 1)
            if not _any_e((x, y)):
                return prev(op)(it, node, a)
            ex, ey = _as_e(it, x, y), _as_e(it, y, x)
            if ex is None or ey is None:
                bad = x if ex is None else y
                fail(node, f"{op} of {describe(bad)} inside an unrolled Keras recurrent layer "
                           "is not modelled")
            if op == "Add" and isinstance(y, np.ndarray) and not isinstance(x, np.ndarray):
                return _add_const(it, ex, y)
            if op == "Add" and isinstance(x, np.ndarray) and not isinstance(y, np.ndarray):
                return _add_const(it, ey, x)
            return _mk(it, op, (ex, ey), _bshape(ex.shape, ey.shape))
        return run

    def unary(op):
        def run(it, node, a):
            v = it.get(node, 0)
            if isinstance(v, E):
                return _mk(it, op, (v,), v.shape)
            return prev(op)(it, node, a)
        return run

    def cast(it, node, a):
        v = it.get(node, 0)
        if isinstance(v, (E, _HR, TimeFlipped)):
            from onnx import TensorProto
            if int(a.get("to", 0)) != TensorProto.FLOAT:
                fail(node, f"attribute to={a.get('to')} inside an unrolled Keras recurrent "
                           "layer")
            return v
        return prev("Cast")(it, node, a)

    def slice_(it, node, a):
        v = it.get(node, 0)
        if isinstance(v, TimeFlipped) and _is_time_flip(it, node, v.shape[0], (1, -2)):
            return v.t                       # flipped twice: the sequence itself
        if isinstance(v, T) and len(v.shape) == 2:
            if _is_time_flip(it, node, v.shape[0], (1, -2)):
                return TimeFlipped(v)        # torch.flip(x, dims=[1]) of a sequence
        if isinstance(v, TimeMajor) and isinstance(v.t, T) and len(v.t.shape) == 2:
            if _is_time_flip(it, node, v.t.shape[0], (0, -3)):
                return TimeMajor(TimeFlipped(v.t))   # the flip of a time-major sequence
        if isinstance(v, _HR) and v.step is None and isinstance(v.prev, Zeros):
            v = _as_e(it, v)
        if not isinstance(v, E):
            return prev("Slice")(it, node, a)
        starts, ends = it.const(node, 1, "starts"), it.const(node, 2, "ends")
        axes = it.get(node, 3)
        axes = [len(v.shape) - 1] if axes is None and len(v.shape) == 1 else \
            ([int(x) % len(v.shape) for x in np.ravel(axes)] if axes is not None else [0])
        steps = it.get(node, 4)
        if starts.size != 1 or axes != [len(v.shape) - 1] or \
                (steps is not None and int(np.ravel(steps)[0]) != 1):
            fail(node, f"Slice of {describe(v)}: only a block of the last axis is modelled")
        n = v.shape[-1]
        s, e = (int(np.clip(int(q) + (n if int(q) < 0 else 0), 0, n)) for q in
                (starts[0], ends[0]))
        return _mk(it, "Slice", (v, s, e), v.shape[:-1] + (max(e - s, 0),))

    def shape(it, node, a):
        v = it.get(node, 0)
        if isinstance(v, _HR) and v.step is None:
            full = np.array((BATCH, v.R.shape[1]), dtype=np.int64)
            start, end = a.get("start", 0), a.get("end", None)
            return full[start:end]
        return prev("Shape")(it, node, a)

    def unsqueeze(it, node, a):
        v = it.get(node, 0)
        if isinstance(v, E):
            axes = it.axes(node, a, 1)
            if axes != [0]:
                fail(node, f"Unsqueeze axes={axes} of {describe(v)}: only axis 0 (the "
                           "stacking of the states along time)")
            return _mk(it, "Unsqueeze0", (v,), (1,) + v.shape)
        return prev("Unsqueeze")(it, node, a)

    def concat(it, node, a):
        vals = [it.get(node, i) for i in range(len(node.input))]

        def recurrent(v):
            return (type(v) is T and v.chain and
                    v.chain[-1].kind in ("lstm", "gru", "simple_rnn")) or \
                (isinstance(v, E) and len(v.shape) == 2)

        if len(vals) == 2 and int(a.get("axis", 0)) in (-1, 1, 2) and \
                all(recurrent(v) for v in vals):
            vals = [_finish(it, node, v) for v in vals]
            return concat_layers(it, node, a, vals)
        if not _any_e(vals):
            return prev("Concat")(it, node, a)
        if int(a.get("axis", 0)) != 0 or not all(isinstance(v, E) for v in vals):
            fail(node, "only the Concat along time of an unrolled Keras recurrence's states is "
                       "modelled")
        e = _mk(it, "Concat0", tuple(vals), (len(vals),) + vals[0].shape[1:])
        r = _resolve(it, node, e, stacked=True)
        if r is None and len(vals) == 1:
            return e                # Keras's generic loop stacks only the last output
        if r is None:
            fail(node, "the Concat of states is not the state sequence of a Keras LSTM / GRU "
                       "(Keras's cell formula from zero states)")
        return r

    def transpose(it, node, a):
        v = it.get(node, 0)
        if isinstance(v, TimeFlipped) and [int(p) for p in a.get("perm", [])] == [1, 0, 2]:
            return TimeMajor(v)
        return prev("Transpose")(it, node, a)

    def concat_layers(it, node, a, vals):
        """Keras Bidirectional (merge_mode "concat") of two last states: [forward, backward]
        of one sequence, one bidirectional layer."""
        fw, bw = vals
        lf, lb = fw.chain[-1] if fw.chain else None, bw.chain[-1] if bw.chain else None
        rs = lf is not None and lf.attrs.get("return_sequences")
        ok = int(a.get("axis", 0)) in ((-1, 2) if rs else (-1, 1)) and lf is not None and \
            lb is not None and \
            lf.kind == lb.kind and lf.kind in ("lstm", "gru", "simple_rnn") and \
            lf.attrs["direction"] == "forward" and lb.attrs["direction"] == "reverse" and \
            len(fw.chain) == len(bw.chain) and \
            all(p is q for p, q in zip(fw.chain[:-1], bw.chain[:-1])) and \
            {k: v for k, v in lf.attrs.items() if k != "direction"} == \
            {k: v for k, v in lb.attrs.items() if k != "direction"} and \
            lf.weights["W_hh"].shape == lb.weights["W_hh"].shape
        if not ok:
            fail(node, "Concat of activations: only the forward and backward last states of "
                       "one Keras recurrence (Bidirectional, merge_mode='concat') is modelled")
        weights = dict(lf.weights)
        for k in ("W_ih", "W_hh", "b_ih", "b_hh"):
            weights[k + "_reverse"] = lb.weights.get(k)
        layer = Layer(lf.kind, name=node.name or lf.kind,
                      attrs=dict(lf.attrs, direction="bidirectional"), weights=weights)
        seq_shape = (fw.shape[0], int(lf.weights["W_ih"].shape[1])) if rs else \
            getattr(fw, "keras_seq_shape", None)
        other = getattr(bw, "keras_seq_shape", None)
        if seq_shape is None or (not rs and seq_shape != other):
            fail(node, "Concat of two recurrent last states whose input sequence is unknown")
        return T(fw.chain[:-1] + (layer,), out_shape(layer, seq_shape))

    out["Gather"] = gather
    out["Transpose"] = transpose
    out["Split"] = split
    out["Squeeze"] = squeeze
    out["Where"] = where
    out["MatMul"] = matmul
    for op in ("Add", "Mul", "Sub"):
        out[op] = binary(op)
    for op in ("Sigmoid", "Tanh", "Relu"):
        out[op] = unary(op)
    out["Cast"] = cast
    out["Slice"] = slice_
    out["Shape"] = shape
    out["Unsqueeze"] = unsqueeze
    out["Concat"] = concat
    return out


def finish(it, node, v):
    """Resolve a graph output that is still an expression (return_sequences=False)."""
    return _finish(it, node, v)
