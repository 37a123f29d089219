"""Group-sparsity neuron removal, "Less is more" (Zhou, Alvarez & Porikli 2016),
as implemented and varied in seed 003 (Marelli 2018, eq. (1), §4.3, appendix A)."""

import math
import numbers

import numpy as np

from .._errors import ParameterError
from .._validate import as_float_array, check_choice, check_finite, check_ndim
from ..model import Model, materialize
from . import _graph
from ._common import fsum_rows
from .dead import remove_dead_neurons

__all__ = ["group_prox", "group_norms", "less_is_more"]

GROUPINGS = ("outputs", "inputs")


def _rows(W, groups):
    W64 = W.astype(np.float64)
    if groups == "outputs":
        return W64.reshape(W.shape[0], -1)
    return np.moveaxis(W64, 1, 0).reshape(W.shape[1], -1)


def group_norms(W, *, groups="outputs"):
    """L2 norm of every neuron of ``W`` (float64, 1-D).

    ``groups="outputs"``: dense rows / conv 3-D filters ``W[o]`` (Frobenius
    norm), seed 003 §4.1; ``"inputs"``: dense columns / ``W[:, i]`` (the
    "reversed" variant, §4.3).  ``sqrt(fsum(w*w))``: squares in float64
    (exact for float32 input), exactly rounded sum (as ``math.fsum``),
    correctly rounded sqrt.
    """
    as_float_array("W", W)
    check_ndim("W", W, (2, 4))
    check_choice("groups", groups, GROUPINGS)
    check_finite("W", W)
    r = _rows(W, groups)
    return np.sqrt(fsum_rows(r * r))


def _check_tau(tau, relative):
    if isinstance(tau, bool) or not isinstance(tau, numbers.Real) or math.isnan(tau):
        raise ParameterError(f"tau must be a real number, got {tau!r}")
    tau = float(tau)
    if relative and not 0.0 <= tau < 1.0:
        raise ParameterError(f"with relative=True tau is a ratio of the largest norm and must "
                             f"be in [0, 1) so that the largest neuron survives, got {tau}")
    if not relative and not 0.0 <= tau < math.inf:
        raise ParameterError(f"tau must be finite and >= 0, got {tau}")
    return tau


def group_prox(W, tau, *, groups="outputs", relative=False):
    """Group soft-thresholding, seed 003 eq. (1): ``w_j <- max(||w_j|| - tau, 0) * w_j / ||w_j||``.

    Parameters
    ----------
    W : ndarray float32/float64, dense (out, in) or conv (O, C, kh, kw); finite
    tau : float
        Absolute threshold (>= 0), or with ``relative=True`` a ratio in
        [0, 1): the threshold is ``tau * max_j ||w_j||`` of this layer (the
        "relatif" variant retained by seed 003 §4.3; the largest neuron
        always survives), the product rounded to float64.
    groups : {"outputs", "inputs"}
        Neurons = rows / 3-D filters (default, LIMutils) or columns /
        input-channel slices (the "renversé" variant).
    relative : bool, default False

    Returns
    -------
    ndarray, dtype and shape of ``W``

    Arithmetic
    ----------
    Per group, in float64: ``n = ||w_j||`` (see :func:`group_norms`),
    ``t = max(n - tau, 0)`` (one rounding), ``s = t / n`` (one rounding),
    then every entry ``float64(w) * s`` rounded once (half-even) to W's
    dtype.  Groups with ``n <= tau`` become exactly +0.0 (all entries);
    a zero group (n = 0) stays +0.0; ``tau = 0`` returns W bit-exactly
    (s = 1).  Kept groups (n > tau) are exactly LIMutils' ``keep_output``
    (``absolute_reduce``: n > threshold; ``relative_reduce``: n > ratio * max n).
    """
    check_choice("groups", groups, GROUPINGS)
    norms = group_norms(W, groups=groups)
    tau = _check_tau(tau, relative)
    thr = tau * float(norms.max()) if (relative and norms.size) else tau
    t = np.maximum(norms - thr, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        s = np.where(norms > 0, t / np.where(norms > 0, norms, 1.0), 0.0)
    shape = [1] * W.ndim
    ax = 0 if groups == "outputs" else 1
    shape[ax] = s.size
    out = (W.astype(np.float64) * s.reshape(shape)).astype(W.dtype)
    # max(.,0)*w/n with n <= tau is +0.0 for every entry (not -0.0 for w < 0)
    dead = (t == 0).reshape(shape)
    return np.where(dead, W.dtype.type(0.0), out)


def _default_layers(model, groups):
    out = []
    for path, layer in model.named_layers():
        if layer.kind not in _graph.PRODUCERS or (layer.kind == "conv2d"
                                                   and layer.attrs["groups"] != 1):
            continue
        if groups == "outputs":
            seq, i, parent = _graph.locate(model, path)
            try:
                _, consumer = _graph.chain(seq, i, path)
            except ParameterError:
                continue
            if consumer is None and parent is None:
                continue
        out.append(path)
    return out


_CONSUMERS = ("dense", "conv2d", "lstm", "gru", "mgu", "simple_rnn", "residual")


def _is_output_layer(model, path):
    """True when ``path`` is a top-level dense/conv2d layer whose outputs are the
    model's outputs (no layer with weights or a residual block after it)."""
    seq, i, parent = _graph.locate(model, path)
    return (parent is None and seq[i].kind in _graph.PRODUCERS
            and not any(l.kind in _CONSUMERS for l in seq[i + 1:]))


def less_is_more(model, ratio, *, groups="outputs", layers=None, relative=True,
                 fold_bias=True, allow_output_layer=False):
    """One "Less is more" reduction step: proximal step, then remove the zeroed neurons.

    Parameters
    ----------
    model : refcomp.Model with ``input_shape``
    ratio : float
        Threshold ratio in [0, 1) of each layer's largest neuron norm
        (``relative=True``, default, seed 003 §4.3 "relatif"), or the absolute
        ``tau`` (``relative=False``, the "basique" variant).
    groups : {"outputs", "inputs"}
        "outputs": neurons = rows/filters (eq. (1)); "inputs": the "renversé"
        variant grouping columns; zeroed columns then make the producing
        neurons unused and they are removed by the backward sweep of
        :func:`refcomp.prune.remove_dead_neurons`.
    layers : list of paths, optional
        Layers to reduce.  Default: every dense/conv2d (groups=1) layer that
        can be shrunk — not the model's output layer, not layers feeding a
        residual shortcut (the block bodies are reduced; their last conv uses
        selective addition).  For "inputs" every dense/conv2d layer.
        (The "découpé" variant = call with one layer at a time.)  With
        ``groups="outputs"``, naming the model's output layer is refused
        unless ``allow_output_layer=True``.
    allow_output_layer : bool, default False
        Opt-in to reduce the output neurons of the model's output layer
        (``groups="outputs"``): that removes model outputs (e.g. classes),
        so the reduced model no longer computes the same kind of function;
        their constant ``act(b)`` cannot be folded and is dropped (listed in
        ``"unfolded"``).  Without it, naming that layer raises
        ParameterError.
    fold_bias : bool, default True
        A neuron whose weights were zeroed still outputs ``act(b)``.  True:
        fold that constant into the next layer's bias where exact folding is
        possible (so the reduced model computes what the thresholded model
        computes, within rounding), else drop it as LIMutils does.  False:
        always drop (LIMutils).

    Returns
    -------
    (Model, dict)
        The reduced model and a report: ``"layers"``: list of
        ``{"path", "name", "tau", "neurons_before", "neurons_after"}``,
        ``"params_before"``, ``"params_after"`` (every stored weight, biases
        and batch-norm vectors included, as in seed 003 §4.2) and
        ``"reduction_pct"`` = 100 * (1 - after / before) (float64),
        ``"unfolded"``: ``{path: [indices]}`` of removed neurons whose
        constant output ``act(b)`` could not be folded and was dropped.

    Notes
    -----
    This is the step applied "at the end of a training epoch" (seed 003
    §3.3); the training between steps is the caller's, in any framework
    (see ``examples/less_is_more_torch.py``).  Seed 003 §4.7 recommends
    stopping the reduction for the last epochs.
    """
    if not isinstance(model, Model):
        raise ParameterError(f"model must be a refcomp.Model, got {type(model).__name__}")
    check_choice("groups", groups, GROUPINGS)
    tau = _check_tau(ratio, relative)
    before = model.n_params()
    chosen = _default_layers(model, groups) if layers is None else [str(p) for p in layers]
    if groups == "outputs" and not allow_output_layer:
        for path in chosen:
            if _is_output_layer(model, path):
                n_out = _graph.n_outputs(model.get_layer(path))
                raise ParameterError(
                    f"layer {path} is the model's output layer ({n_out} outputs): removing "
                    "its neurons would remove model outputs (e.g. classes), so the reduced "
                    "model would no longer compute the same function; pass "
                    "allow_output_layer=True to reduce it anyway")
    cur = model
    rows = []
    updates = {}
    for path in chosen:
        layer = cur.get_layer(path)
        _graph.check_producer(layer, path)
        W = materialize(layer.weights["W"])
        norms = group_norms(W, groups=groups)
        thr = tau * float(norms.max()) if relative else tau
        updates[(path, "W")] = group_prox(W, tau, groups=groups, relative=relative)
        rows.append({"path": path, "name": layer.name, "tau": thr,
                     "neurons_before": int(norms.size)})
    cur = cur.replace_weights(updates)
    unfolded = {}
    if groups == "outputs":
        for row in rows:
            path = row["path"]
            layer = cur.get_layer(path)
            W = materialize(layer.weights["W"])
            alive = np.any(W.reshape(W.shape[0], -1) != 0, axis=1)
            if not alive.any():
                raise ParameterError(f"tau={tau} removes every neuron of layer {path}; lower it "
                                     "or use relative=True")
            if alive.all():
                continue
            keep = np.flatnonzero(alive).astype(np.int64)
            b = layer.weights.get("b")
            preact = None
            if fold_bias:
                preact = np.zeros(W.shape[0]) if b is None else materialize(b).astype(np.float64)
            try:
                cur = _graph.remove_outputs(cur, path, keep, preact)
            except _graph.Unfoldable:
                cur = _graph.remove_outputs(cur, path, keep, None)
                unfolded[path] = np.flatnonzero(~alive).tolist()
    else:
        cur, _ = remove_dead_neurons(cur)
    for row in rows:
        W = materialize(cur.get_layer(row["path"]).weights["W"])
        row["neurons_after"] = int(W.shape[0] if groups == "outputs" else W.shape[1])
    after = cur.n_params()
    return cur, {"layers": rows, "params_before": before, "params_after": after,
                 "reduction_pct": 100.0 * (1.0 - after / before), "unfolded": unfolded}
