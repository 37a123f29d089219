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

Every value past ``P[t]`` is kept as a hash-consed expression (:class:`E`: one id per
distinct operation on distinct operands; Add and Mul commutative, float32 Cast the
identity).  Where such a value meets a consumer refcomp models (the graph output, a
MatMul of a layer, or the Concat of the stacked states), the importer builds, with the
same constructors, the expression Keras's cell formula gives for every step from zero
states (keras/src/backend/torch/rnn.py, ``_fallback_lstm`` / ``_fallback_gru``)::

    LSTM  z = P[t] + h U;  i, f, c~, o = chunks(z, 4)
          c = sig(f) * c + sig(i) * tanh(c~);  h = sig(o) * tanh(c)
    GRU   xz, xr, xh = chunks(P[t], 3);  hz, hr, hh = chunks(h U + b_rec, 3)
          z = sig(xz + hz);  r = sig(xr + hr);  n = tanh(xh + r * hh)
          h = z * h + (1 - z) * n
    SimpleRNN  h = act((x_t W + b) + h U),  act = tanh or relu

and accepts the layer only if the two expressions are the same (same id): the
graph then computes exactly that recurrence, imported as one ``lstm`` / ``gru`` /
``simple_rnn`` layer (weights through :func:`refcomp.convert.lstm_from_keras` /
``gru_from_keras``, or transposed: exact permutations).  ``go_backwards`` (a Slice
flipping the input in time, :class:`TimeFlipped`) makes the last state a
``direction="reverse"`` layer's, its state sequence (Keras's processing order) that
layer's output flipped in time, and ``Bidirectional`` (merge_mode "concat": the Concat of
the forward states and the re-flipped backward ones) one ``direction="bidirectional"``
layer.  Not modelled (FormatError naming the node): the state sequence of a lone
backwards run (refcomp has no time-flip layer), GRU ``reset_after=False``, SimpleRNN
``go_backwards`` (its loop reduces a mask), masks, activations other than Keras's
defaults in LSTM / GRU.  Anything else stays an expression and is a
FormatError naming the node where refcomp needs a tensor it can model.
"""

import numpy as np

from .. import convert
from ..model import Layer
from ._onnx_core import BATCH, T, TimeMajor, Zeros, describe, fail
from .keras import out_shape

__all__ = ["wrap"]


class TimeFlipped:
    """The batch-first sequence ``t`` reversed in time (Keras's ``go_backwards`` flip, a
    Slice starts=-1 steps=-1 on axis 1): usable only as the input of a recurrence whose last
    state is then a ``direction="reverse"`` layer's."""

    def __init__(self, t):
        self.t, self.shape, self.chain = t, t.shape, t.chain

    def describe(self):
        return f"a time-reversed sequence of per-sample shape {self.shape}"


class E:
    """A hash-consed expression of an unrolled Keras recurrence."""

    __slots__ = ("op", "args", "id", "shape", "node")

    def describe(self):
        return f"an intermediate value ({self.op}) of an unrolled Keras recurrent layer"

    def symbolic_shape(self):
        return np.array(self.shape, dtype=np.int64)


def _table(it):
    if not hasattr(it, "keras_e"):
        it.keras_e = {"ids": {}, "proj": {}, "U": {}, "b": {}, "seqs": {}, "tried": set()}
    return it.keras_e


def _mk(it, op, args, shape):
    tab = _table(it)["ids"]
    ids = [a.id if isinstance(a, E) else a for a in args]
    if op in ("Add", "Mul"):
        ids.sort(key=repr)
    key = (op,) + tuple(ids)
    e = tab.get(key)
    if e is None:
        e = E()
        e.op, e.args, e.id, e.shape = op, tuple(args), len(tab), tuple(int(s) for s in shape)
        tab[key] = e
    return e


def _const_key(c):
    c = np.asarray(c)
    if c.size == 1:
        return ("scalar", float(c.reshape(())))
    return ("const", c.dtype.str, c.shape, c.tobytes())


def _leaf(it, key, shape):
    return _mk(it, "leaf", (key,), shape)


def _zeros(it, H):
    return _leaf(it, ("zeros",), (BATCH, H))


def _as_e(it, v, like=None):
    """An operand as an expression: E, zeros (shaped as ``like``), or a constant."""
    from ._onnx_unrolled import _HR
    if isinstance(v, E):
        return v
    if isinstance(v, Zeros):
        return _zeros(it, like.shape[-1] if isinstance(like, E) else 0)
    if isinstance(v, _HR) and v.step is None and isinstance(v.prev, Zeros):
        prod = _matmul_e(it, _zeros(it, v.R.shape[0]), v.R)
        return prod if v.b is None else _add_const(it, prod, v.b)
    if isinstance(v, np.ndarray) and v.dtype.kind == "f":
        return _leaf(it, _const_key(v), np.shape(v))
    return None


def _matmul_e(it, h, U):
    _table(it)["U"][_const_key(U)] = U
    return _mk(it, "MatMul", (h, _leaf(it, _const_key(U), U.shape)), h.shape[:-1] + (U.shape[1],))


def _add_const(it, e, b):
    _table(it)["b"][_const_key(b)] = b
    return _mk(it, "Add", (e, _leaf(it, _const_key(b), np.shape(b))), e.shape)


def _bshape(a, b):
    a, b = list(a), list(b)
    n = max(len(a), len(b))
    a, b = [1] * (n - len(a)) + a, [1] * (n - len(b)) + b
    return tuple(x if y == 1 else y for x, y in zip(a, b))


def _chunk(it, e, k, n):
    H = e.shape[-1] // n
    return _mk(it, "Slice", (e, k * H, (k + 1) * H), e.shape[:-1] + (H,))


# -- the templates -------------------------------------------------------------------------
def _templates(it, proj, U, b_rec):
    """Keras's cell formula for every step from zero states: the list of h_t expressions
    and the layer kind, or None when the shapes do not fit a Keras LSTM / GRU."""
    H, GH = U.shape
    G = GH // H if H and GH % H == 0 else 0
    if proj.W.shape[1] != GH or G not in (3, 4) or (G == 4 and b_rec is not None):
        return None
    steps = proj.seq.shape[0]
    h = c = _zeros(it, H)
    sig = lambda v: _mk(it, "Sigmoid", (v,), v.shape)   # noqa: E731
    tanh = lambda v: _mk(it, "Tanh", (v,), v.shape)     # noqa: E731
    mul = lambda a, b: _mk(it, "Mul", (a, b), _bshape(a.shape, b.shape))   # noqa: E731
    add = lambda a, b: _mk(it, "Add", (a, b), _bshape(a.shape, b.shape))   # noqa: E731
    one = _leaf(it, ("scalar", 1.0), ())
    hs = []
    for t in range(steps):
        xt = _leaf(it, ("xstep", id(proj), t), (BATCH, GH))
        if G == 4:
            z = add(xt, _matmul_e(it, h, U))
            i, f, g, o = (_chunk(it, z, k, 4) for k in range(4))
            c = add(mul(sig(f), c), mul(sig(i), tanh(g)))
            h = mul(sig(o), tanh(c))
        else:
            hp = _matmul_e(it, h, U)
            if b_rec is not None:
                hp = _add_const(it, hp, b_rec)
            xz, xr, xh = (_chunk(it, xt, k, 3) for k in range(3))
            hz, hr, hh = (_chunk(it, hp, k, 3) for k in range(3))
            z, r = sig(add(xz, hz)), sig(add(xr, hr))
            n = tanh(add(xh, mul(r, hh)))
            h = add(mul(z, h), mul(_mk(it, "Sub", (one, z), z.shape), n))
        hs.append(h)
    return hs, ("lstm" if G == 4 else "gru")


def _simple_templates(it, seq, W, U, b, act):
    """Keras SimpleRNN (its generic loop): h = act((x_t W + b) + h U) from h = 0."""
    H = U.shape[0]
    if U.shape != (H, H) or W.shape != (seq.shape[1], H) or \
            (b is not None and b.shape != (H,)):
        return None
    h = _zeros(it, H)
    hs = []
    for t in range(seq.shape[0]):
        a = _matmul_e(it, _leaf(it, ("xt", id(seq), t), (BATCH, seq.shape[1])), W)
        if b is not None:
            a = _add_const(it, a, b)
        z = _mk(it, "Add", (a, _matmul_e(it, h, U)), a.shape)
        h = _mk(it, act, (z,), z.shape)
        hs.append(h)
    return hs


def _candidates(it):
    """(seq, hs, make_layer) for every Keras recurrence the registered constants allow."""
    tab = _table(it)
    for proj in list(tab["proj"].values()):
        for U in list(tab["U"].values()):
            for b_rec in [None] + list(tab["b"].values()):
                if b_rec is not None and b_rec.shape != (U.shape[1],):
                    continue
                found = _templates(it, proj, U, b_rec)
                if found is not None:
                    hs, kind = found
                    yield proj.seq, hs, (lambda node, rs, proj=proj, U=U, b_rec=b_rec,
                                         kind=kind: _layer(node, proj, U, b_rec, kind, rs))
    consts = list(tab["U"].values())
    for seq in list(tab["seqs"].values()):
        for W in consts:
            for U in consts:
                for b in [None] + list(tab["b"].values()):
                    for act in ("Tanh", "Relu"):
                        hs = _simple_templates(it, seq, W, U, b, act)
                        if hs is not None:
                            yield seq, hs, (lambda node, rs, W=W, U=U, b=b, act=act: Layer(
                                "simple_rnn", name=node.name or "simple_rnn",
                                attrs={"activation": act.lower(), "return_sequences": rs},
                                weights={"W_ih": np.ascontiguousarray(W.T),
                                         "W_hh": np.ascontiguousarray(U.T), "b_ih": b}))


def _layer(node, proj, U, b_rec, kind, return_sequences):
    kernel = np.ascontiguousarray(proj.W)
    if kind == "lstm":
        W_ih, W_hh, b_ih, b_hh = convert.lstm_from_keras(kernel, U, proj.b)
        attrs = {}
    else:
        bias = None
        if proj.b is not None or b_rec is not None:
            zero = np.zeros(U.shape[1], dtype=U.dtype)
            bias = np.stack([proj.b if proj.b is not None else zero,
                             b_rec if b_rec is not None else zero])
        W_ih, W_hh, b_ih, b_hh = convert.gru_from_keras(kernel, U, bias, reset_after=True)
        attrs = {"reset_after": True}
    attrs["return_sequences"] = return_sequences
    return Layer(kind, name=node.name or kind, attrs=attrs,
                 weights={"W_ih": W_ih, "W_hh": W_hh, "b_ih": b_ih, "b_hh": b_hh})


def _resolve(it, node, e, stacked=False):
    """The refcomp tensor ``e`` is, if it is the last state (or, ``stacked``, the states
    stacked along time) of a Keras LSTM / GRU / SimpleRNN; else None."""
    tab = _table(it)
    if e.op == "leaf" or (e.id, stacked) in tab["tried"]:
        return None
    tab["tried"].add((e.id, stacked))
    for seq, hs, make in _candidates(it):
        if not hs:
            continue
        flipped = isinstance(seq, TimeFlipped)
        if stacked:
            parts = [_mk(it, "Unsqueeze0", (h,), (1,) + h.shape) for h in hs]
            want = _mk(it, "Concat0", tuple(parts), (len(hs),) + hs[0].shape)
            if want.id == e.id:
                layer = make(node, True)
                if flipped:
                    # Keras returns a backwards run's states in processing order: the
                    # reverse-direction layer's output (in time order) flipped in time
                    layer.attrs["direction"] = "reverse"
                    out = T(seq.t.chain + (layer,), out_shape(layer, seq.shape))
                    return TimeMajor(TimeFlipped(out))
                return TimeMajor(T(seq.chain + (layer,), out_shape(layer, seq.shape)))
        elif hs[-1].id == e.id:
            layer = make(node, False)
            if flipped:           # run over the reversed input: the reverse direction
                layer.attrs["direction"] = "reverse"
                seq = seq.t
            out = T(seq.chain + (layer,), out_shape(layer, seq.shape))
            out.keras_seq_shape = seq.shape        # for a Bidirectional merge
            return out
    return None


# -- handler wrappers ----------------------------------------------------------------------
def _is_time_flip(it, node, n, axes_ok):
    """Slice starts=-1, ends<=-n-1, steps=-1 on the time axis: the whole axis reversed."""
    starts, ends = it.const(node, 1, "starts"), it.const(node, 2, "ends")
    axes, steps = it.get(node, 3), it.get(node, 4)
    return starts.size == 1 and isinstance(axes, np.ndarray) and \
        isinstance(steps, np.ndarray) and int(np.ravel(axes)[0]) in axes_ok and \
        int(np.ravel(steps)[0]) == -1 and int(starts[0]) in (-1, n - 1) and \
        int(ends[0]) <= -n - 1


def _xstep(it, seq, t):
    _table(it)["seqs"][id(seq)] = seq
    return _leaf(it, ("xt", id(seq), t), (BATCH, seq.shape[1]))


def _any_e(vals):
    return any(isinstance(v, E) for v in vals)


def _finish(it, node, v):
    """A value leaving the expression world: the layer it is, or a FormatError."""
    if isinstance(v, E):
        r = _resolve(it, node, v)
        if r is None:
            fail(node, f"input is {describe(v)} that is not the last state of a Keras LSTM / "
                       "GRU (Keras's cell formula from zero states; refcomp/io/"
                       "_onnx_keras_rnn.py)")
        return r
    return v


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
        if len(vals) == 2 and int(a.get("axis", 0)) in (-1, 1, 2) and \
                all(type(v) is T or (isinstance(v, E) and len(v.shape) == 2) for v in vals):
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
        if seq_shape is None or (not rs and seq_shape != getattr(bw, "keras_seq_shape",
                                                                    None)):
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
