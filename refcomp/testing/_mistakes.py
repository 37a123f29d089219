"""The single-layer porting mistakes tried by :mod:`refcomp.testing._diagnose`.

Each ``_m_<mistake>(layer, input_shape)`` returns a list of ``(what, layer')``
variants (``None`` for a variant that does not apply to this layer): the
layer as a port that made that mistake would compute it, in refcomp's
canonical layouts.  Exact rearrangements only (block permutations,
transposes, flips, attribute changes, a doubled or dropped bias).
"""

import itertools

import numpy as np

from .._errors import RefcompError
from ..layers._common import resolve_padding
from ..model import Layer

__all__ = ["LAYER_MISTAKES", "with_changes"]

_LSTM_NAMES = {"i,o,f,g": "ONNX order i,o,f,c", "i,g,f,o": "TensorFlow LSTMBlockCell order "
               "i,c,f,o", "f,i,g,o": "order f,i,g,o"}
_GRU_NAMES = {"z,r,n": "Keras/ONNX order z,r,h"}


def with_changes(layer, *, weights=None, attrs=None, drop=()):
    """A copy of ``layer`` with weights replaced / added / dropped and attributes changed."""
    w = {k: v for k, v in layer.weights.items() if k not in drop}
    w.update(weights or {})
    a = dict(layer.attrs)
    a.update(attrs or {})
    return Layer(layer.kind, name=layer.name, attrs=a, weights=w,
                 layers=None if layer.layers is None else list(layer.layers))


def _blocks(a, perm):
    parts = np.split(a, len(perm), axis=0)
    return np.ascontiguousarray(np.concatenate([parts[k] for k in perm], axis=0))


def _gate_orders(layer, gates, letters, names):
    out = []
    for perm in itertools.permutations(range(gates)):
        if perm == tuple(range(gates)):
            continue
        key = ",".join(letters[k] for k in perm)
        what = names.get(key, f"order {key}")
        # peepholes (3 vectors for 4 gates) and initial states (N, H) stay as they are
        w = {k: (_blocks(np.asarray(v), perm) if k[:2] in ("W_", "b_") else np.asarray(v))
             for k, v in layer.weights.items()}
        out.append((f"gate blocks in {what} read as {','.join(letters)}",
                    with_changes(layer, weights=w)))
    return out


def _m_lstm(layer, shape):
    return _gate_orders(layer, 4, ("i", "f", "g", "o"), _LSTM_NAMES) if layer.kind == "lstm" \
        else []


def _m_gru(layer, shape):
    return _gate_orders(layer, 3, ("r", "z", "n"), _GRU_NAMES) if layer.kind == "gru" else []


def _m_mgu(layer, shape):
    return _gate_orders(layer, 2, ("f", "h"), {}) if layer.kind == "mgu" else []


def _m_reset(layer, shape):
    if layer.kind != "gru":
        return []
    ra = layer.attrs["reset_after"]
    return [(f"reset_after={not ra} instead of {ra}",
             with_changes(layer, attrs={"reset_after": not ra}))]


def _m_transposed(layer, shape):
    out = []
    if layer.kind == "dense":
        W = np.asarray(layer.weights["W"])
        out.append(("W (out, in) read from an (in, out) buffer",
                    with_changes(layer, weights={"W": np.ascontiguousarray(W.T).reshape(W.shape)})))
    elif layer.kind == "conv2d":
        W = np.asarray(layer.weights["W"])
        out.append(("W OIHW read from an HWIO buffer",
                    with_changes(layer, weights={"W": np.ascontiguousarray(
                        W.transpose(2, 3, 1, 0)).reshape(W.shape)})))
        if W.shape[2] == W.shape[3] and W.shape[2] > 1:
            out.append(("kernel rows and columns exchanged (OIWH)",
                        with_changes(layer, weights={"W": np.ascontiguousarray(
                            W.transpose(0, 1, 3, 2))})))
    elif layer.kind in ("lstm", "gru", "mgu", "simple_rnn"):
        w = {k: np.ascontiguousarray(np.asarray(layer.weights[k]).T).reshape(
            layer.weights[k].shape) for k in ("W_ih", "W_hh")}
        out.append(("W_ih, W_hh (G*H, .) read from (., G*H) kernels",
                    with_changes(layer, weights=w)))
    return out


def _m_flip(layer, shape):
    if layer.kind != "conv2d":
        return []
    W = np.asarray(layer.weights["W"])
    if W.shape[2] * W.shape[3] == 1:
        return []
    return [("kernel flipped (convolution instead of cross-correlation)",
             with_changes(layer, weights={"W": np.ascontiguousarray(W[:, :, ::-1, ::-1])}))]


def _pads_of(layer, shape):
    a = layer.attrs
    nhwc = a["layout"] == "NHWC"
    hw = shape[1:3] if nhwc else shape[2:4]
    if layer.kind == "conv2d":
        k = np.asarray(layer.weights["W"]).shape[2:]
        st = a["stride"] if isinstance(a["stride"], (list, tuple)) else (a["stride"],) * 2
        dl = a["dilation"] if isinstance(a["dilation"], (list, tuple)) else (a["dilation"],) * 2
    else:
        k = a["size"] if isinstance(a["size"], (list, tuple)) else (a["size"],) * 2
        st = a["stride"] if a["stride"] is not None else k
        st = st if isinstance(st, (list, tuple)) else (st,) * 2
        dl = (1, 1)
    return resolve_padding(a["padding"], hw, tuple(k), tuple(st), tuple(dl))


def _pad_variants(pads):
    (t, b), (le, r) = pads
    out = []
    for dt, dl in ((1, 1), (-1, -1), (1, 0), (-1, 0), (0, 1), (0, -1)):
        np_ = ((t + dt, b - dt), (le + dl, r - dl))
        out.append((np_, "window shifted by one pixel") if min(np_[0] + np_[1]) >= 0 else None)
    for d in (1, -1):
        np_ = ((t + d, b + d), (le + d, r + d))
        out.append((np_, f"one pixel {'more' if d > 0 else 'less'} on every side")
                   if min(np_[0] + np_[1]) >= 0 else None)
    return out


def _m_padding(layer, shape):
    if layer.kind not in ("conv2d", "max_pool2d", "avg_pool2d") or shape is None:
        return []
    try:
        pads = _pads_of(layer, shape)
    except RefcompError:
        return []
    swapped = ((pads[0][1], pads[0][0]), (pads[1][1], pads[1][0]))
    return [None if pv is None or (pv[0] == swapped and swapped != pads) else
            (f"padding {pv[0]} instead of {pads} ({pv[1]})",
             with_changes(layer, attrs={"padding": [list(pv[0][0]), list(pv[0][1])]}))
            for pv in _pad_variants(pads)]


def _m_same_side(layer, shape):
    if layer.kind not in ("conv2d", "max_pool2d", "avg_pool2d") or shape is None:
        return []
    try:
        (t, b), (le, r) = _pads_of(layer, shape)
    except RefcompError:
        return []
    if t == b and le == r:
        return []
    p = ((b, t), (r, le))
    return [(f"padding {p} instead of {((t, b), (le, r))}: the odd pixel on the other side",
             with_changes(layer, attrs={"padding": [list(p[0]), list(p[1])]}))]


def _m_bias_twice(layer, shape):
    w = layer.weights
    if layer.kind in ("dense", "conv2d") and "b" in w:
        b = np.asarray(w["b"])
        return [("bias added twice", with_changes(layer, weights={"b": b + b}))]
    if layer.kind in ("lstm", "gru", "mgu", "simple_rnn"):
        out = []
        for k in ("b_ih", "b_hh"):
            if k in w:
                b = np.asarray(w[k])
                out.append((f"{k} added twice", with_changes(layer, weights={k: b + b})))
        if "b_ih" in w and "b_hh" in w:
            out.append(("b_ih + b_hh merged into one bias and b_hh still added",
                        with_changes(layer, weights={"b_ih": np.asarray(w["b_ih"]) +
                                              np.asarray(w["b_hh"])})))
        return out
    return []


def _m_bias_missing(layer, shape):
    w = layer.weights
    if layer.kind in ("dense", "conv2d") and "b" in w:
        return [("bias missing", with_changes(layer, drop=("b",)))]
    if layer.kind in ("lstm", "gru", "mgu", "simple_rnn"):
        return [(f"{k} missing", with_changes(layer, drop=(k,)))
                for k in ("b_ih", "b_hh") if k in w]
    return []


def _m_cip(layer, shape):
    if layer.kind != "avg_pool2d" or shape is None:
        return []
    try:
        pads = _pads_of(layer, shape)
    except RefcompError:
        return []
    if not any(pads[0] + pads[1]):
        return []
    c = layer.attrs["count_include_pad"]
    return [(f"count_include_pad={not c} instead of {c}",
             with_changes(layer, attrs={"count_include_pad": not c}))]


def _m_eps(layer, shape):
    if layer.kind != "batch_norm":
        return []
    eps = layer.attrs["eps"]
    return [(f"eps={e:g} instead of {eps:g}", with_changes(layer, attrs={"eps": e}))
            for e in (1e-3, 1e-5, 0.0) if e != eps]


def _m_hsig(layer, shape):
    if layer.kind != "activation" or layer.attrs["function"] != "hard_sigmoid":
        return []
    v = layer.attrs["variant"]
    o = "keras2" if v == "keras3" else "keras3"
    return [(f"hard_sigmoid variant {o!r} instead of {v!r}",
             with_changes(layer, attrs={"variant": o}))]


LAYER_MISTAKES = {
    "lstm gate order": _m_lstm, "gru gate order": _m_gru, "mgu gate order": _m_mgu,
    "gru reset_after": _m_reset, "transposed": _m_transposed, "kernel flipped": _m_flip,
    "padding": _m_padding, "same padding side": _m_same_side, "bias twice": _m_bias_twice,
    "bias missing": _m_bias_missing, "count_include_pad": _m_cip, "batch norm eps": _m_eps,
    "hard_sigmoid": _m_hsig,
}
