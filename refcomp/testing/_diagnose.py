"""Diagnosis of a non-conforming output: which usual mistake reproduces it.

:func:`diagnose` re-runs refcomp's bound (:func:`refcomp.testing.reference_and_bound`)
on copies of the model in which one usual porting mistake was made, and
reports the mistakes whose reference, within its own derived bound, explains
every element of the candidate's output.  The mistakes (FACTS.md §1-3, §9):

==================== ===========================================================
``lstm gate order``  LSTM gate blocks read in another order (any of the 23
                     permutations of i, f, g, o; named: ONNX i,o,f,c and
                     TensorFlow LSTMBlockCell i,c,f,o)
``gru gate order``   GRU blocks permuted (Keras/ONNX z,r,h read as r,z,n ...)
``mgu gate order``   MGU blocks f, h swapped
``gru reset_after``  GRU candidate formula of the other convention (PyTorch /
                     Keras reset_after=True / ONNX linear_before_reset=1 vs
                     Cho et al. / Keras reset_after=False / ONNX default)
``transposed``       a weight buffer read in the transposed layout: dense
                     (in, out) read as (out, in); conv HWIO read as OIHW, or
                     kh and kw exchanged; recurrent (F, G*H) read as (G*H, F)
``kernel flipped``   true convolution instead of cross-correlation
``input layout``     an NCHW input read as NHWC or the reverse
``flatten order``    (h, w, c) flatten feeding a dense layer trained on
                     (c, h, w), or the reverse (FACTS.md §3.2)
``padding``          conv / pooling padding off by one: the window shifted
                     by one pixel, or one pixel more / less on both sides
``same padding side`` the odd "same" pixel before instead of after (ONNX
                     SAME_LOWER vs TensorFlow / SAME_UPPER, FACTS.md §3.3)
``bias twice``       a bias added twice (or b_ih + b_hh merged and b_hh
                     still added)
``bias missing``     a bias (or one of the two recurrent biases) dropped
``count_include_pad`` average pooling divisor with/without the padding
``batch norm eps``   eps of the other framework (1e-3 Keras, 1e-5 PyTorch, 0)
``hard_sigmoid``     the other variant (x/6 + 1/2 vs 0.2 x + 1/2)
==================== ===========================================================

A mistake is tried on every layer it applies to at once (a systematic
error of an importer) and, when several layers qualify, on each of them
alone (at most :data:`MAX_SINGLE` layers).  Deterministic: the order of
the trials is fixed, no randomness.
"""

import itertools

import numpy as np

from .._errors import RefcompError
from ..layers._common import resolve_padding
from ..model import Layer, Model, _forward_layer

__all__ = ["diagnose", "Finding", "MISTAKES", "MAX_SINGLE"]

#: Layers tried one at a time per mistake (beyond the all-layers trial).
MAX_SINGLE = 8

MISTAKES = ("lstm gate order", "gru gate order", "mgu gate order", "gru reset_after",
            "transposed", "kernel flipped", "input layout", "flatten order",
            "same padding side", "padding", "bias twice", "bias missing", "count_include_pad",
            "batch norm eps", "hard_sigmoid")

_LSTM_NAMES = {"i,o,f,g": "ONNX order i,o,f,c", "i,g,f,o": "TensorFlow LSTMBlockCell order "
               "i,c,f,o", "f,i,g,o": "order f,i,g,o"}
_GRU_NAMES = {"z,r,n": "Keras/ONNX order z,r,h"}


class Finding:
    """One mistake tried: ``mistake`` (a name of :data:`MISTAKES`), ``detail``
    (what was changed, in which layers), ``n_out`` (elements still out of
    the mistaken model's bound), ``worst`` (largest error / bound) and
    ``matches`` (``n_out == 0``)."""

    __slots__ = ("mistake", "detail", "n_out", "worst", "size")

    def __init__(self, mistake, detail, n_out, worst, size):
        self.mistake, self.detail, self.n_out, self.worst, self.size = (
            mistake, detail, n_out, worst, size)

    @property
    def matches(self):
        return self.n_out == 0

    def __repr__(self):
        return (f"Finding({self.mistake!r}, {self.detail!r}, n_out={self.n_out}, "
                f"worst={self.worst:.3g})")


# -- model surgery -------------------------------------------------------------------
def _walk(layers, prefix=""):
    for i, layer in enumerate(layers):
        path = f"{prefix}{i}"
        yield path, layer
        if layer.layers is not None:
            yield from _walk(layer.layers, path + "/")


def _replace(layers, path, new):
    parts = path.split("/")
    out = list(layers)
    i = int(parts[0])
    if len(parts) == 1:
        out[i] = new
    else:
        old = out[i]
        out[i] = Layer(old.kind, name=old.name, attrs=dict(old.attrs),
                       weights=dict(old.weights), layers=_replace(old.layers, "/".join(parts[1:]),
                                                                  new))
    return out


def _with(layer, *, weights=None, attrs=None, drop=()):
    w = {k: v for k, v in layer.weights.items() if k not in drop}
    w.update(weights or {})
    a = dict(layer.attrs)
    a.update(attrs or {})
    return Layer(layer.kind, name=layer.name, attrs=a, weights=w,
                 layers=None if layer.layers is None else list(layer.layers))


def _input_shapes(model, x1):
    """{path: input shape (with batch)} of every layer, from one sample."""
    shapes = {}

    def run(layers, a, prefix):
        for i, layer in enumerate(layers):
            path = f"{prefix}{i}"
            shapes[path] = a.shape
            if layer.kind == "residual":
                run(layer.layers, a, path + "/")
            a = _forward_layer(layer, a, "reference")
        return a
    run(model.layers, x1, "")
    return shapes


# -- the mistakes ----------------------------------------------------------------------
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
        w = {k: _blocks(np.asarray(v), perm) for k, v in layer.weights.items()}
        out.append((f"gate blocks in {what} read as {','.join(letters)}", _with(layer, weights=w)))
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
             _with(layer, attrs={"reset_after": not ra}))]


def _m_transposed(layer, shape):
    out = []
    if layer.kind == "dense":
        W = np.asarray(layer.weights["W"])
        out.append(("W (out, in) read from an (in, out) buffer",
                    _with(layer, weights={"W": np.ascontiguousarray(W.T).reshape(W.shape)})))
    elif layer.kind == "conv2d":
        W = np.asarray(layer.weights["W"])
        out.append(("W OIHW read from an HWIO buffer",
                    _with(layer, weights={"W": np.ascontiguousarray(
                        W.transpose(2, 3, 1, 0)).reshape(W.shape)})))
        if W.shape[2] == W.shape[3] and W.shape[2] > 1:
            out.append(("kernel rows and columns exchanged (OIWH)",
                        _with(layer, weights={"W": np.ascontiguousarray(
                            W.transpose(0, 1, 3, 2))})))
    elif layer.kind in ("lstm", "gru", "mgu", "simple_rnn"):
        w = {k: np.ascontiguousarray(np.asarray(layer.weights[k]).T).reshape(
            layer.weights[k].shape) for k in ("W_ih", "W_hh")}
        out.append(("W_ih, W_hh (G*H, .) read from (., G*H) kernels", _with(layer, weights=w)))
    return out


def _m_flip(layer, shape):
    if layer.kind != "conv2d":
        return []
    W = np.asarray(layer.weights["W"])
    if W.shape[2] * W.shape[3] == 1:
        return []
    return [("kernel flipped (convolution instead of cross-correlation)",
             _with(layer, weights={"W": np.ascontiguousarray(W[:, :, ::-1, ::-1])}))]


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
             _with(layer, attrs={"padding": [list(pv[0][0]), list(pv[0][1])]}))
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
             _with(layer, attrs={"padding": [list(p[0]), list(p[1])]}))]


def _m_bias_twice(layer, shape):
    w = layer.weights
    if layer.kind in ("dense", "conv2d") and "b" in w:
        b = np.asarray(w["b"])
        return [("bias added twice", _with(layer, weights={"b": b + b}))]
    if layer.kind in ("lstm", "gru", "mgu", "simple_rnn"):
        out = []
        for k in ("b_ih", "b_hh"):
            if k in w:
                b = np.asarray(w[k])
                out.append((f"{k} added twice", _with(layer, weights={k: b + b})))
        if "b_ih" in w and "b_hh" in w:
            out.append(("b_ih + b_hh merged into one bias and b_hh still added",
                        _with(layer, weights={"b_ih": np.asarray(w["b_ih"]) +
                                              np.asarray(w["b_hh"])})))
        return out
    return []


def _m_bias_missing(layer, shape):
    w = layer.weights
    if layer.kind in ("dense", "conv2d") and "b" in w:
        return [("bias missing", _with(layer, drop=("b",)))]
    if layer.kind in ("lstm", "gru", "mgu", "simple_rnn"):
        return [(f"{k} missing", _with(layer, drop=(k,))) for k in ("b_ih", "b_hh") if k in w]
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
             _with(layer, attrs={"count_include_pad": not c}))]


def _m_eps(layer, shape):
    if layer.kind != "batch_norm":
        return []
    eps = layer.attrs["eps"]
    return [(f"eps={e:g} instead of {eps:g}", _with(layer, attrs={"eps": e}))
            for e in (1e-3, 1e-5, 0.0) if e != eps]


def _m_hsig(layer, shape):
    if layer.kind != "activation" or layer.attrs["function"] != "hard_sigmoid":
        return []
    v = layer.attrs["variant"]
    o = "keras2" if v == "keras3" else "keras3"
    return [(f"hard_sigmoid variant {o!r} instead of {v!r}",
             _with(layer, attrs={"variant": o}))]


_LAYER_MISTAKES = {
    "lstm gate order": _m_lstm, "gru gate order": _m_gru, "mgu gate order": _m_mgu,
    "gru reset_after": _m_reset, "transposed": _m_transposed, "kernel flipped": _m_flip,
    "padding": _m_padding, "same padding side": _m_same_side, "bias twice": _m_bias_twice,
    "bias missing": _m_bias_missing, "count_include_pad": _m_cip, "batch norm eps": _m_eps,
    "hard_sigmoid": _m_hsig,
}


def _layer_trials(model, shapes):
    """Yield (mistake, detail, layers) for every single-layer mistake (see module doc)."""
    paths = list(_walk(model.layers))
    for mistake, fn in _LAYER_MISTAKES.items():
        per_layer = []
        for path, layer in paths:
            try:
                variants = fn(layer, shapes.get(path))
            except RefcompError:
                variants = []
            if any(v is not None for v in variants):
                per_layer.append((path, layer, variants))
        if not per_layer:
            continue
        n_var = max(len(v) for _, _, v in per_layer)
        for j in range(n_var):                       # variant j in every layer at once
            layers, what, used = model.layers, None, []
            for path, layer, variants in per_layer:
                if j < len(variants) and variants[j] is not None:
                    what = what or variants[j][0]
                    layers = _replace(layers, path, variants[j][1])
                    used.append(path)
            if not used:
                continue
            where = "layer " + used[0] if len(used) == 1 else "layers " + ", ".join(used)
            yield mistake, f"{what} ({where})", layers
        if len(per_layer) > 1:
            for path, layer, variants in per_layer[:MAX_SINGLE]:
                for what, new in filter(None, variants):
                    yield (mistake, f"{what} (layer {path} only)",
                           _replace(model.layers, path, new))


def _flatten_trials(model, shapes):
    """The dense layer after a top-level flatten, with its columns permuted."""
    for i, layer in enumerate(model.layers[:-1]):
        if layer.kind != "flatten":
            continue
        shape = shapes.get(str(i))
        nxt = model.layers[i + 1]
        if shape is None or len(shape) != 4 or nxt.kind != "dense":
            continue
        _, a, b_, c = shape                     # (C, H, W) of an NCHW flatten
        W = np.asarray(nxt.weights["W"])
        u = W.shape[0]
        if layer.attrs["layout"] == "NHWC":
            a, b_, c = c, a, b_
        hwc_read = W.reshape(u, b_, c, a).transpose(0, 3, 1, 2).reshape(W.shape)
        chw_read = W.reshape(u, a, b_, c).transpose(0, 2, 3, 1).reshape(W.shape)
        for what, Wm in (("flattened in (h, w, c) order, dense trained on (c, h, w)", hwc_read),
                         ("flattened in (c, h, w) order, dense trained on (h, w, c)", chw_read)):
            yield ("flatten order", f"{what} (layers {i}, {i + 1})",
                   _replace(model.layers, str(i + 1),
                            _with(nxt, weights={"W": np.ascontiguousarray(Wm)})))


def _layout_trials(model, x):
    """The first 4-D activation (after shape-only layers) read in the other layout."""
    a, i = x, 0
    while a.ndim != 4 and i < len(model.layers) and model.layers[i].kind in (
            "reshape", "flatten", "dropout"):
        a = _forward_layer(model.layers[i], a, "reference")
        i += 1
    if a.ndim != 4:
        return
    n, c, h, w = a.shape
    yield ("input layout", f"the (N, C, H, W) = {a.shape} input read as NHWC (layer {i} on)",
           model.layers[i:], np.ascontiguousarray(a).reshape(n, h, w, c).transpose(0, 3, 1, 2))
    yield ("input layout", f"the {a.shape} input transposed as if it were NHWC (layer {i} on)",
           model.layers[i:], np.ascontiguousarray(a.transpose(0, 2, 3, 1)).reshape(a.shape))


def diagnose(y, model, x, *, bound_fn, max_samples=8, sample_rows=None):
    """Try every mistake of the module docstring; return the list of :class:`Finding`s.

    Parameters
    ----------
    y : ndarray
        The candidate's output (any float dtype; compared in float64).
    model : refcomp.Model
    x : ndarray
        The input batch.
    bound_fn : callable
        ``bound_fn(model, x) -> (v, e)``: the reference and bound of the
        caller's evaluation model (dtype, function accuracy).
    max_samples : int
        At most this many samples are re-run: ``sample_rows`` (those with
        out-of-bound elements) first, then the first ones.
    sample_rows : sequence of int, optional

    Returns
    -------
    list of Finding
        Sorted: the mistakes that explain every re-run element first, the
        tightest fit (smallest ``worst``) first, then the others by
        increasing ``worst``; ties in the order of :data:`MISTAKES`.  Trials whose model cannot run on ``x`` (shapes) are
        skipped.
    """
    y = np.asarray(y)
    n = x.shape[0]
    rows = [int(r) for r in (sample_rows or [])][:max_samples]
    rows += [r for r in range(n) if r not in rows][:max(0, max_samples - len(rows))]
    rows = sorted(rows)
    xs = x[rows]
    ys = y[rows].astype(np.float64) if y.ndim and y.shape[0] == n else None
    if ys is None:
        return []
    try:
        shapes = _input_shapes(model, np.asarray(x[:1]))
    except RefcompError:
        shapes = {}
    trials = [(m, d, layers, xs) for m, d, layers in _layer_trials(model, shapes)]
    trials += [(m, d, layers, xs) for m, d, layers in _flatten_trials(model, shapes)]
    trials += list(_layout_trials(model, xs))
    order = {m: k for k, m in enumerate(MISTAKES)}
    found = []
    for mistake, detail, layers, xin in trials:
        try:
            v, e = bound_fn(Model(layers, name=model.name), xin)
        except (RefcompError, ValueError, IndexError):
            continue
        if v.shape != ys.shape:
            continue
        err = np.abs(ys - v)
        same = (np.isnan(ys) & np.isnan(v)) | (ys == v)
        ok = (err <= e) | same
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(same, 0.0, err / e)
        ratio = np.where(np.isnan(ratio), np.inf, ratio)
        found.append(Finding(mistake, detail, int((~ok).sum()), float(ratio.max(initial=0.0)),
                             ys.size))
    found.sort(key=lambda f: (not f.matches, f.worst, order[f.mistake]))
    return found
