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

import numpy as np

from .._errors import RefcompError
from ..model import Layer, Model, _forward_layer
from ._mistakes import LAYER_MISTAKES, with_changes

__all__ = ["diagnose", "Finding", "MISTAKES", "MAX_SINGLE"]

#: Layers tried one at a time per mistake (beyond the all-layers trial).
MAX_SINGLE = 8

MISTAKES = ("lstm gate order", "gru gate order", "mgu gate order", "gru reset_after",
            "transposed", "kernel flipped", "input layout", "flatten order",
            "same padding side", "padding", "bias twice", "bias missing", "count_include_pad",
            "batch norm eps", "hard_sigmoid")


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


def _layer_trials(model, shapes):
    """Yield (mistake, detail, layers) for every single-layer mistake (see module doc)."""
    paths = list(_walk(model.layers))
    for mistake, fn in LAYER_MISTAKES.items():
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
                            with_changes(nxt, weights={"W": np.ascontiguousarray(Wm)})))


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
        increasing ``worst``; ties in the order of :data:`MISTAKES`.  Trials
        whose model cannot run on ``x`` (shapes) are
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
