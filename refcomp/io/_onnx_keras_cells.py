"""Keras 3 recurrent cells as hash-consed expressions, and the templates they are
matched against (private; used by :mod:`refcomp.io._onnx_keras_rnn`).

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
    GRU reset_after=False (generic loop): xz, xr, xh = split(x_t K + b, 3);
          hz, hr = chunks(h U_zr, 2);  n = tanh(xh + (sig(xr + hr) * h) U_h)
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
backwards run (refcomp has no time-flip layer), SimpleRNN ``go_backwards`` (its loop
reduces a mask), masks, activations other than Keras's defaults in LSTM / GRU.  Anything
else stays an expression and is a FormatError naming the node where refcomp needs a tensor
it can model.
"""

import numpy as np

from .. import convert
from ..model import Layer
from ._onnx_core import BATCH, T, TimeMajor, Zeros, describe, fail
from .keras import out_shape

__all__ = ["E", "TimeFlipped", "as_e", "add_const", "bshape", "finish", "is_time_flip",
           "leaf", "matmul_e", "mk", "resolve", "table", "xstep"]


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


def table(it):
    if not hasattr(it, "keras_e"):
        it.keras_e = {"ids": {}, "proj": {}, "U": {}, "b": {}, "seqs": {}, "tried": set()}
    return it.keras_e


def mk(it, op, args, shape):
    tab = table(it)["ids"]
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


def leaf(it, key, shape):
    return mk(it, "leaf", (key,), shape)


def _zeros(it, H):
    return leaf(it, ("zeros", int(H)), (BATCH, H))


def as_e(it, v, like=None):
    """An operand as an expression: E, zeros (shaped as ``like``), or a constant."""
    from ._onnx_unrolled import _HR
    if isinstance(v, E):
        return v
    if isinstance(v, Zeros):
        return _zeros(it, like.shape[-1] if isinstance(like, E) else 0)
    if isinstance(v, _HR) and v.step is None and isinstance(v.prev, Zeros):
        prod = matmul_e(it, _zeros(it, v.R.shape[0]), v.R)
        return prod if v.b is None else add_const(it, prod, v.b)
    if isinstance(v, np.ndarray) and v.dtype.kind == "f":
        return leaf(it, _const_key(v), np.shape(v))
    return None


def matmul_e(it, h, U):
    table(it)["U"][_const_key(U)] = U
    return mk(it, "MatMul", (h, leaf(it, _const_key(U), U.shape)), h.shape[:-1] + (U.shape[1],))


def add_const(it, e, b):
    table(it)["b"][_const_key(b)] = b
    return mk(it, "Add", (e, leaf(it, _const_key(b), np.shape(b))), e.shape)


def bshape(a, b):
    a, b = list(a), list(b)
    n = max(len(a), len(b))
    a, b = [1] * (n - len(a)) + a, [1] * (n - len(b)) + b
    return tuple(x if y == 1 else y for x, y in zip(a, b))


def _chunk(it, e, k, n):
    H = e.shape[-1] // n
    return mk(it, "Slice", (e, k * H, (k + 1) * H), e.shape[:-1] + (H,))


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
    sig = lambda v: mk(it, "Sigmoid", (v,), v.shape)   # noqa: E731
    tanh = lambda v: mk(it, "Tanh", (v,), v.shape)     # noqa: E731
    mul = lambda a, b: mk(it, "Mul", (a, b), bshape(a.shape, b.shape))   # noqa: E731
    add = lambda a, b: mk(it, "Add", (a, b), bshape(a.shape, b.shape))   # noqa: E731
    one = leaf(it, ("scalar", 1.0), ())
    hs = []
    for t in range(steps):
        xt = leaf(it, ("xstep", id(proj), t), (BATCH, GH))
        if G == 4:
            z = add(xt, matmul_e(it, h, U))
            i, f, g, o = (_chunk(it, z, k, 4) for k in range(4))
            c = add(mul(sig(f), c), mul(sig(i), tanh(g)))
            h = mul(sig(o), tanh(c))
        else:
            hp = matmul_e(it, h, U)
            if b_rec is not None:
                hp = add_const(it, hp, b_rec)
            xz, xr, xh = (_chunk(it, xt, k, 3) for k in range(3))
            hz, hr, hh = (_chunk(it, hp, k, 3) for k in range(3))
            z, r = sig(add(xz, hz)), sig(add(xr, hr))
            n = tanh(add(xh, mul(r, hh)))
            h = add(mul(z, h), mul(mk(it, "Sub", (one, z), z.shape), n))
        hs.append(h)
    return hs, ("lstm" if G == 4 else "gru")


def _input_term(it, seq, t, W, b):
    """x_t W (+ b) of Keras's generic loop, x_t the t-th step of ``seq``."""
    a = matmul_e(it, leaf(it, ("xt", id(seq), t), (BATCH, seq.shape[1])), W)
    return a if b is None else add_const(it, a, b)


def _simple_templates(it, seq, W, U, b, act):
    """Keras SimpleRNN (its generic loop): h = act((x_t W + b) + h U) from h = 0."""
    H = U.shape[0]
    if U.shape != (H, H) or W.shape != (seq.shape[1], H) or \
            (b is not None and b.shape != (H,)):
        return None
    h = _zeros(it, H)
    hs = []
    for t in range(seq.shape[0]):
        a = _input_term(it, seq, t, W, b)
        z = mk(it, "Add", (a, matmul_e(it, h, U)), a.shape)
        h = mk(it, act, (z,), z.shape)
        hs.append(h)
    return hs


def _gru_before_templates(it, seq, K, Uzr, Uh, b):
    """Keras GRU reset_after=False (its generic loop): x_z, x_r, x_h = split(x_t K + b);
    h_z, h_r = chunks(h U_zr); z = sig(x_z + h_z); r = sig(x_r + h_r);
    n = tanh(x_h + (r * h) U_h); h = z * h + (1 - z) * n."""
    H = Uh.shape[0]
    if Uh.shape != (H, H) or Uzr.shape != (H, 2 * H) or K.shape != (seq.shape[1], 3 * H) \
            or (b is not None and b.shape != (3 * H,)):
        return None
    sig = lambda v: mk(it, "Sigmoid", (v,), v.shape)   # noqa: E731
    add = lambda u, v: mk(it, "Add", (u, v), u.shape)   # noqa: E731
    mul = lambda u, v: mk(it, "Mul", (u, v), u.shape)   # noqa: E731
    one = leaf(it, ("scalar", 1.0), ())
    h = _zeros(it, H)
    hs = []
    for t in range(seq.shape[0]):
        a = _input_term(it, seq, t, K, b)
        xz, xr, xh = (_chunk(it, a, k, 3) for k in range(3))
        hzr = matmul_e(it, h, Uzr)
        hz, hr = _chunk(it, hzr, 0, 2), _chunk(it, hzr, 1, 2)
        z, r = sig(add(xz, hz)), sig(add(xr, hr))
        n = mk(it, "Tanh", (add(xh, matmul_e(it, mul(r, h), Uh)),), xh.shape)
        h = add(mul(z, h), mul(mk(it, "Sub", (one, z), z.shape), n))
        hs.append(h)
    return hs


def _gru_before_layer(node, rs, K, Uzr, Uh, b):
    W_ih, W_hh, b_ih, b_hh = convert.gru_from_keras(
        np.ascontiguousarray(K), np.ascontiguousarray(np.concatenate([Uzr, Uh], axis=1)), b,
        reset_after=False)
    return Layer("gru", name=node.name or "gru",
                 attrs={"reset_after": False, "return_sequences": rs},
                 weights={"W_ih": W_ih, "W_hh": W_hh, "b_ih": b_ih, "b_hh": b_hh})


def _candidates(it):
    """(seq, hs, make_layer) for every Keras recurrence the registered constants allow."""
    tab = table(it)
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
        for K in consts:
            for Uzr in consts:
                for Uh in consts:
                    for b in [None] + list(tab["b"].values()):
                        hs = _gru_before_templates(it, seq, K, Uzr, Uh, b)
                        if hs is not None:
                            yield seq, hs, (lambda node, rs, K=K, Uzr=Uzr, Uh=Uh, b=b:
                                            _gru_before_layer(node, rs, K, Uzr, Uh, b))


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


def resolve(it, node, e, stacked=False):
    """The refcomp tensor ``e`` is, if it is the last state (or, ``stacked``, the states
    stacked along time) of a Keras LSTM / GRU / SimpleRNN; else None."""
    tab = table(it)
    if e.op == "leaf" or (e.id, stacked) in tab["tried"]:
        return None
    tab["tried"].add((e.id, stacked))
    for seq, hs, make in _candidates(it):
        if not hs:
            continue
        flipped = isinstance(seq, TimeFlipped)
        if stacked:
            parts = [mk(it, "Unsqueeze0", (h,), (1,) + h.shape) for h in hs]
            want = mk(it, "Concat0", tuple(parts), (len(hs),) + hs[0].shape)
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


def is_time_flip(it, node, n, axes_ok):
    """Slice starts=-1, ends<=-n-1, steps=-1 on the time axis: the whole axis reversed."""
    starts, ends = it.const(node, 1, "starts"), it.const(node, 2, "ends")
    axes, steps = it.get(node, 3), it.get(node, 4)
    return starts.size == 1 and isinstance(axes, np.ndarray) and \
        isinstance(steps, np.ndarray) and int(np.ravel(axes)[0]) in axes_ok and \
        int(np.ravel(steps)[0]) == -1 and int(starts[0]) in (-1, n - 1) and \
        int(ends[0]) <= -n - 1


def xstep(it, seq, t):
    table(it)["seqs"][id(seq)] = seq
    return leaf(it, ("xt", id(seq), t), (BATCH, seq.shape[1]))


def finish(it, node, v):
    """A value leaving the expression world: the layer it is, or a FormatError."""
    if isinstance(v, E):
        r = resolve(it, node, v)
        if r is None:
            fail(node, f"input is {describe(v)} that is not the last state of a Keras LSTM / "
                       "GRU (Keras's cell formula from zero states; refcomp/io/"
                       "_onnx_keras_rnn.py)")
        return r
    return v
