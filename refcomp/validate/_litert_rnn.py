"""Recurrent layers and batch norm as the LiteRT (TFLite) builtins a converter emits.

Written into a ``_Graph`` of :mod:`refcomp.validate._litert_run` (no
converter involved); batch-major (N, T, F) throughout:

=============  ==================================================================
lstm           ``UNIDIRECTIONAL_SEQUENCE_LSTM`` (float32, ``time_major=False``,
               fused activation TANH, ``cell_clip = proj_clip = 0`` (off)), its
               24 inputs in TFLite's order (``lite/kernels/lstm_shared.h``):
               input; input-to-{input, forget, cell, output} weights;
               recurrent-to-{i, f, c, o} weights; cell-to-{i, f, o} peepholes
               (ONNX ``P`` rows i, f, o; else -1); gate biases i, f, c, o;
               projection weights and bias (-1); the variable ``output_state``
               and ``cell_state`` (zeros); four layer-norm coefficients (-1).
               refcomp's gate blocks i, f, g, o of ``W_ih`` / ``W_hh`` are
               TFLite's i, f, c, o tensors; each gate bias is
               ``fl32(b_ih + b_hh)`` (one rounding, as a converter merging
               PyTorch's two biases does)
simple_rnn     ``UNIDIRECTIONAL_SEQUENCE_RNN`` (input, weights (H, F), recurrent
               weights (H, H), bias ``fl32(b_ih + b_hh)``, variable
               hidden_state; fused TANH or RELU)
gru            TFLite has no float GRU builtin (the builtin operators are LSTM /
               RNN / their sequence and bidirectional forms): a converter lowers
               a Keras GRU to per-step builtins (in a WHILE loop); here the
               static T steps are unrolled: ``UNPACK`` of x along time,
               per gate ``FULLY_CONNECTED`` of x_t and of h (one weight tensor per
               gate, biases b_i* / b_h* kept apart), ``ADD``, ``LOGISTIC``,
               ``TANH`` (or ``RELU``), ``MUL``, ``SUB`` (1 - z), ``PACK`` of the
               outputs; both formulas (``reset_after`` True: ``r * (W_hn h +
               b_hn)``; False: ``W_hn (r * h) + b_hn``), the seed-000 update and
               ONNX ``clip`` (``MINIMUM`` / ``MAXIMUM`` of each pre-activation)
direction      "reverse": ``REVERSE_V2`` on the time axis before and after;
               "bidirectional": the two directions as two unidirectional runs,
               then ``CONCATENATION`` on the feature axis (forward first, as
               refcomp); the fused ``BIDIRECTIONAL_SEQUENCE_LSTM`` / ``_RNN``
               builtins are not built
batch_norm     ``MUL`` by ``s`` then ``ADD`` of ``t``, the folding TF's converter
               does (``prepare_patterns.td``: ``x * (rsqrt(v + eps) * gamma) +
               (beta - mean * that)``), constants folded in float32:
               ``s = fl32(gamma * fl32(1 / fl32(sqrt(fl32(var + eps)))))``,
               ``t = fl32(beta - fl32(mean * s))``
=============  ==================================================================

The folded batch norm is another evaluation order of ``(x - mean) s + beta``,
within the derived bound (:mod:`refcomp.testing.framework_bound`:
``(6 + 2 func_ulps) u (|x| s + |mean| s + |beta|)``, 14 u at the default
func_ulps = 4): ``s`` carries at most 4 roundings (eps to float32, the add,
the sqrt (half an ulp through the root), the divide, the multiply by gamma:
< 4 u relative), so ``x s`` and ``t`` are within ``5 u |x| s`` and ``6 u
|mean| s + 2 u |beta|``, and the final ``ADD`` adds ``u (|x s| + |t|)``:
about ``7 u (|x| s + |mean| s + |beta|)`` at first order, even where ``t``
cancels ``x s``.  LiteRT's MUL and ADD round once each: its output equals
the float32 NumPy evaluation of the same expression bit for bit
(tests/test_validate.py).

The recurrent kernels accumulate ``bias + W_x x + W_h h`` in their own
order with float32 accumulators; the merged bias ``fl32(b_ih + b_hh)`` is
one more rounding of a term: both are sums in another order, covered by the
bound's ``gamma_n`` terms.

Not expressible (reported as known differences): ONNX ``clip`` on the LSTM
and RNN kernels (TFLite's ``cell_clip`` clips the LSTM cell state, ONNX the
gate pre-activations; the RNN kernel has none), ONNX LSTM ``input_forget`` (TFLite's CIFG derives
``i = 1 - f``, ONNX / refcomp ``f = 1 - i``), activations other than the
fused TANH / RELU of the sequence kernels (gate sigmoid fixed, the cell
and output activation one and the same).  ``sequence_lens`` is not built.
Constant initial states h0 / c0 ((1, H) broadcast, or (N, H)) are written
into the LSTM and RNN kernels' variable state tensors after allocation
(``Interpreter.set_tensor``; a variable tensor may not have a buffer); the
unrolled GRU takes h0 as a constant.
"""

import numpy as np

from ..layers.normalization import channel_axis
from ..model import materialize
from ._common import NotBuilt, NotExpressible

__all__ = ["batch_norm_ops", "recurrent_ops"]


def _f32(v):
    return None if v is None else np.asarray(materialize(v), np.float32)


def batch_norm_ops(g, layer, t, shape):
    """``layer`` (inference batch norm) as MUL then ADD on tensor ``t`` of ``shape``."""
    a = layer.attrs
    nd = len(shape)
    axis = channel_axis(nd, a["layout"], a.get("axis"))
    gamma, beta, mean, var = (_f32(layer.weights[n]) for n in ("gamma", "beta", "mean", "var"))
    one = np.float32(1)
    s = gamma * (one / np.sqrt(var + np.float32(a["eps"])))
    shift = beta - mean * s
    bshape = (-1,) + (1,) * (nd - 1 - axis)
    y = g.op("MUL", [t, g.const(s.reshape(bshape))], shape, "MulOptions")
    return g.op("ADD", [y, g.const(shift.reshape(bshape))], shape, "AddOptions"), shape


def _act_code(S, name):
    code = {"tanh": S.ActivationFunctionType.TANH, "relu": S.ActivationFunctionType.RELU}
    return code.get(str(name).lower())


def _check_options(layer):
    """The fused activation of each direction; refuse what the kernels cannot express."""
    k, a = layer.kind, layer.attrs
    if a.get("clip") is not None and k != "gru":
        raise NotExpressible(f"{k}: ONNX clip bounds the gate pre-activations; TFLite's "
                             "cell_clip clips the LSTM cell state and the RNN kernel has "
                             "no clip")
    if a.get("input_forget"):
        raise NotExpressible("lstm input_forget: TFLite's CIFG computes i = 1 - f, refcomp / "
                             "ONNX f = 1 - i")
    if a.get("sequence_lens") is not None:
        raise NotBuilt(f"{k}: sequence_lens is not built here")
    ndir = 2 if a.get("direction", "forward") == "bidirectional" else 1
    acts = a.get("activations")
    if acts is None:
        base = a.get("activation", "tanh") if k == "simple_rnn" else "tanh"
        return [(["sigmoid"] if k != "simple_rnn" else []) + [base] * (2 if k == "lstm" else 1)
                ] * ndir
    per = {"lstm": 3, "gru": 2, "simple_rnn": 1}[k]
    out = []
    for d in range(ndir):
        names = [str(n).lower() for n in acts[d * per:(d + 1) * per]]
        out.append(names)
        if k == "lstm" and (names[0] != "sigmoid" or names[1] != names[2]
                            or names[1] not in ("tanh", "relu")):
            raise NotExpressible(f"lstm activations {acts}: TFLite's LSTM has a sigmoid gate "
                                 "and one fused activation (TANH or RELU) for cell input and "
                                 "output")
        if k == "simple_rnn" and names[0] not in ("tanh", "relu"):
            raise NotExpressible(f"simple_rnn activation {acts[d]!r}: the RNN kernel's fused "
                                 "activation is TANH or RELU here")
        other = [n for n in names if n not in ("sigmoid", "tanh", "relu")]
        if k == "gru" and other and all(n in ("leakyrelu", "elu") for n in other):
            raise NotBuilt(f"gru activations {acts}: LEAKY_RELU / ELU (alpha 1 only) are "
                           "builtins, not built here")
        if k == "gru" and other:
            raise NotExpressible(f"gru activations {acts}: TFLite has no builtin for {other}")
    return out


def _gates(v, n):
    return None if v is None else [np.ascontiguousarray(b) for b in np.split(v, n)]


def _bias_sum(b_ih, b_hh, size):
    if b_ih is None and b_hh is None:
        return np.zeros(size, np.float32)
    if b_ih is None or b_hh is None:
        return b_ih if b_hh is None else b_hh
    return (b_ih + b_hh).astype(np.float32)


#: refcomp's LSTM gate block (i, f, g, o) feeding each of TFLite's gate tensors (i, f, c, o).
_LSTM_BLOCKS = (0, 1, 2, 3)


def _lstm(g, w, acts, t, n, T, H, h0, c0):
    S = g.S
    Wi, Wh, b = ([v[j] for j in _LSTM_BLOCKS] for v in (
        _gates(w["W_ih"], 4), _gates(w["W_hh"], 4),
        _gates(_bias_sum(w["b_ih"], w["b_hh"], 4 * H), 4)))
    P = w.get("P")
    peep = [-1, -1, -1] if P is None else [g.const(p) for p in _gates(P, 3)]
    ins = ([t] + [g.const(m) for m in Wi] + [g.const(m) for m in Wh] + peep
           + [g.const(v) for v in b] + [-1, -1]
           + [g.variable((n, H), h0), g.variable((n, H), c0)] + [-1] * 4)
    return g.op("UNIDIRECTIONAL_SEQUENCE_LSTM", ins, [n, T, H],
                "UnidirectionalSequenceLSTMOptions",
                fusedActivationFunction=_act_code(S, acts[1]), cellClip=0.0, projClip=0.0,
                timeMajor=False, asymmetricQuantizeInputs=False)


def _rnn(g, w, acts, t, n, T, H, h0):
    bias = _bias_sum(w["b_ih"], w["b_hh"], H)
    ins = [t, g.const(w["W_ih"]), g.const(w["W_hh"]), g.const(bias), g.variable((n, H), h0)]
    return g.op("UNIDIRECTIONAL_SEQUENCE_RNN", ins, [n, T, H], "SequenceRNNOptions",
                timeMajor=False, fusedActivationFunction=_act_code(g.S, acts[0]),
                asymmetricQuantizeInputs=False)


_ACT_OPS = {"sigmoid": "LOGISTIC", "tanh": "TANH", "relu": "RELU"}


def _gru(g, w, acts, t, n, T, H, *, reset_after, seed000, h0, clip):
    Wi, Wh = _gates(w["W_ih"], 3), _gates(w["W_hh"], 3)
    bi, bh = _gates(w["b_ih"], 3), _gates(w["b_hh"], 3)
    bi = [-1] * 3 if bi is None else [g.const(v) for v in bi]
    bh = [-1] * 3 if bh is None else [g.const(v) for v in bh]
    Wi, Wh = [g.const(m) for m in Wi], [g.const(m) for m in Wh]
    F = w["W_ih"].shape[1]
    xs = g.op("UNPACK", [t], [[n, F]] * T, "UnpackOptions", num=T, axis=1)
    h = g.const(np.zeros((n, H), np.float32) if h0 is None else h0)
    one = g.const(np.ones((1,), np.float32))
    hs = [n, H]

    def fc(x, W, b):
        return g.op("FULLY_CONNECTED", [x, W, b], hs, "FullyConnectedOptions")

    def add(u, v):
        return g.op("ADD", [u, v], hs, "AddOptions")

    def mul(u, v):
        return g.op("MUL", [u, v], hs, "MulOptions")

    if clip is not None:
        hi = g.const(np.full((1,), clip, np.float32))
        lo = g.const(np.full((1,), -clip, np.float32))

    def cl(v):                      # ONNX clip of a pre-activation: exact in float32
        if clip is None:
            return v
        return g.op("MAXIMUM", [g.op("MINIMUM", [v, hi], hs), lo], hs)

    sig, act = _ACT_OPS[acts[0]], _ACT_OPS[acts[1]]
    outs = []
    for x_t in xs:
        r = g.op(sig, [cl(add(fc(x_t, Wi[0], bi[0]), fc(h, Wh[0], bh[0])))], hs)
        z = g.op(sig, [cl(add(fc(x_t, Wi[1], bi[1]), fc(h, Wh[1], bh[1])))], hs)
        hn = mul(r, fc(h, Wh[2], bh[2])) if reset_after else fc(mul(r, h), Wh[2], bh[2])
        nn = g.op(act, [cl(add(fc(x_t, Wi[2], bi[2]), hn))], hs)
        keep = g.op("SUB", [one, z], hs, "SubOptions")
        h = add(mul(keep, h), mul(z, nn)) if seed000 else add(mul(keep, nn), mul(z, h))
        outs.append(h)
    return g.op("PACK", outs, [n, T, H], "PackOptions", valuesCount=T, axis=1)


def _state(layer, name, n, H):
    """A constant initial state (1, H) or (N, H) as (N, H) float32, or None (zeros)."""
    v = _f32(layer.weights.get(name))
    return None if v is None else np.ascontiguousarray(np.broadcast_to(v, (n, H)))


def _reverse_time(g, t, shape):
    return g.op("REVERSE_V2", [t, g.const(np.array([1]))], list(shape))


def recurrent_ops(g, layer, t, shape):
    """An lstm / gru / simple_rnn ``layer`` on the (N, T, F) tensor ``t``; (tensor, shape)."""
    k, a = layer.kind, layer.attrs
    acts = _check_options(layer)
    n, T, _ = shape
    H = layer.weights["W_hh"].shape[1]
    direction = a.get("direction", "forward")
    ndir = 2 if direction == "bidirectional" else 1
    seqs = []
    for d in range(ndir):
        sfx = "_reverse" if d == 1 else ""
        w = {nm: _f32(layer.weights.get(nm + sfx)) for nm in ("W_ih", "W_hh", "b_ih", "b_hh",
                                                              "P")}
        rev = direction == "reverse" or d == 1
        x = _reverse_time(g, t, shape) if rev else t
        h0, c0 = (_state(layer, s + sfx, n, H) for s in ("h0", "c0"))
        if k == "lstm":
            y = _lstm(g, w, acts[d], x, n, T, H, h0, c0)
        elif k == "simple_rnn":
            y = _rnn(g, w, acts[d], x, n, T, H, h0)
        else:
            y = _gru(g, w, acts[d], x, n, T, H, reset_after=bool(a["reset_after"]),
                     seed000=a.get("update", "standard") == "seed000", h0=h0,
                     clip=None if a.get("clip") is None else np.float32(a["clip"]))
        if not a["return_sequences"]:
            # the state after the direction's last step: the last output of the run
            y = g.op("STRIDED_SLICE", [y, g.const(np.array([0, T - 1, 0])),
                                       g.const(np.array([n, T, H])), g.const(np.array([1, 1, 1]))],
                     [n, H], "StridedSliceOptions", shrinkAxisMask=2)
        elif rev:
            y = _reverse_time(g, y, (n, T, H))
        seqs.append(y)
    out = [n, T, H] if a["return_sequences"] else [n, H]
    if ndir == 1:
        return seqs[0], tuple(out)
    out[-1] = 2 * H
    return g.op("CONCATENATION", seqs, out, "ConcatenationOptions",
                axis=len(out) - 1), tuple(out)
