"""Lossless removal of dead neurons after unstructured pruning (graph reachability)."""

import numpy as np

from .._errors import ParameterError
from ..model import Model, materialize
from . import _graph

__all__ = ["remove_dead_neurons"]


def _producers(model):
    return [p for p, l in model.named_layers() if l.kind in _graph.PRODUCERS
            and not (l.kind == "conv2d" and l.attrs["groups"] != 1)]


def _rows_nonzero(layer):
    W = materialize(layer.weights["W"])
    return np.any(W.reshape(W.shape[0], -1) != 0, axis=1)


def _used_outputs(model, path, shp):
    """Bool per output of ``path``: some non-zero weight of the consumer reads it
    (all True when there is no consumer: model or block output)."""
    seq, i, _ = _graph.locate(model, path)
    n = _graph.n_outputs(seq[i])
    passthrough, consumer = _graph.chain(seq, i, path)
    if consumer is None:
        return np.ones(n, dtype=bool)
    prefix = str(path).rsplit("/", 1)[0] + "/" if "/" in str(path) else ""
    c = seq[consumer]
    W = materialize(c.weights["W"])
    if c.kind == "conv2d":
        return np.any(np.moveaxis(W, 1, 0).reshape(W.shape[1], -1) != 0, axis=1)
    col = np.any(W != 0, axis=0)                           # per input feature
    for j in passthrough:
        if seq[j].kind == "flatten":
            in_shape, lay = shp[f"{prefix}{j}"][0], seq[j].attrs["layout"]
            used = np.zeros(n, dtype=bool)
            for ch in range(n):
                feats = _graph.flatten_features(np.array([ch], np.int64), in_shape, lay)
                used[ch] = bool(col[feats].any())
            return used
    return col


def remove_dead_neurons(model):
    """Remove neurons that no input reaches or that reach no output, losslessly.

    Parameters
    ----------
    model : refcomp.Model with ``input_shape`` (typically after unstructured pruning)

    Returns
    -------
    (Model, dict)
        The smaller model and a report ``{"removed": {path: [indices]},
        "folded": {path: [indices]}, "kept_unfoldable": {path: [indices]},
        "params_before", "params_after"}``.

    Algorithm
    ---------
    Neurons are the outputs of dense and conv2d (groups=1) layers; a conv
    output channel is one neuron.

    1. Forward sweep, layers in depth-first path order: a neuron whose
       weight row (filter) is entirely zero has no remaining input; its
       output is the constant ``act(b)`` (after the following pass-through
       layers).  It is removed and that constant's contribution folded
       into the next layer's bias (see :func:`refcomp.prune.shrink` for
       the float64 arithmetic).  A dead filter that ends a residual body
       adds its constant to the trunk channel it feeds (selective addition,
       the block's ``index_map``); the constant is then folded into the
       bias of the next dense/conv2d layer after the block when only
       affine layers lie between (linear activation, dropout, flatten,
       reshape, batch norm as its per-channel scale, average pooling, max
       pooling of a per-channel constant) and the contribution is the same
       at every position.  The neuron is kept (listed in
       ``kept_unfoldable``) when no exact fold exists: before a zero-padded
       convolution or padded average pooling (the constant contributes a
       position-dependent term at the borders, which no bias can hold), or
       when the trunk meets a non-affine layer (e.g. the ReLU after each
       block of the shipped resnet), another residual block or the model
       output before any bias (exact removal there would need a per-channel
       constant in the residual layer, which the model format does not
       have).  When the dead neurons of a layer cannot all be folded
       together, they are tried one by one in ascending index order and
       those that can be folded (with the ones already taken) are removed.
       Rows are inspected after upstream removals, so constants propagate
       layer to layer.
    2. Backward sweep, reverse order: a neuron all of whose outgoing weights
       into the next dense/conv layer are zero (for conv→flatten→dense: all
       H*W feature columns of the channel) reaches no output and is removed
       exactly (no folding needed).
    A layer keeps at least one neuron (the lowest index) even if all are
    dead.  Neurons feeding a residual shortcut, a reshape, a recurrent layer
    or a softmax are never removed (the trunk width is kept).

    Lossless: the outputs equal the input model's within the float
    rounding of the folded biases (bit-identical when nothing was folded,
    reference precision; the tests check the derived bound of
    :func:`refcomp.testing.model_error_bound`).
    """
    if not isinstance(model, Model):
        raise ParameterError(f"model must be a refcomp.Model, got {type(model).__name__}")
    before = model.n_params()
    report = {"removed": {}, "folded": {}, "kept_unfoldable": {}}
    cur = model
    for path in _producers(cur):
        seq, i, _ = _graph.locate(cur, path)
        try:
            _, consumer = _graph.chain(seq, i, path)
        except ParameterError:
            continue
        if consumer is None and "/" not in path:
            continue                      # model outputs are never removed
        layer = seq[i]
        alive = _rows_nonzero(layer)
        if alive.all():
            continue
        if not alive.any():
            alive[0] = True
        b = layer.weights.get("b")
        n = alive.size
        preact = np.zeros(n) if b is None else materialize(b).astype(np.float64)
        keep = np.flatnonzero(alive).astype(np.int64)
        dead = np.flatnonzero(~alive).tolist()
        try:
            cur = _graph.remove_outputs(cur, path, keep, preact)
        except _graph.Unfoldable:
            # Not all at once: take the dead neurons one by one (ascending
            # index), keeping each whose constant can be folded together
            # with those already taken.
            taken = []
            for d in dead:
                trial = np.setdiff1d(np.arange(n, dtype=np.int64), taken + [d])
                try:
                    _graph.remove_outputs(cur, path, trial, preact)
                except _graph.Unfoldable:
                    continue
                taken.append(d)
            report["kept_unfoldable"][path] = [d for d in dead if d not in taken]
            if not taken:
                continue
            cur = _graph.remove_outputs(cur, path, np.setdiff1d(np.arange(n, dtype=np.int64),
                                                                taken), preact)
            dead = taken
        report["removed"].setdefault(path, []).extend(dead)
        if any(preact[d] != 0 for d in dead):
            report["folded"][path] = [d for d in dead if preact[d] != 0]
    shp = _graph.shapes(cur)
    for path in reversed(_producers(cur)):
        seq, i, _ = _graph.locate(cur, path)
        try:
            used = _used_outputs(cur, path, shp)
        except ParameterError:
            continue
        if used.all():
            continue
        if not used.any():
            used[0] = True
        orig = _original_indices(report, path, used.size)
        cur = _graph.remove_outputs(cur, path, np.flatnonzero(used).astype(np.int64), None,
                                    shp=shp)
        shp = _graph.shapes(cur)
        report["removed"].setdefault(path, []).extend(orig[~used].tolist())
    for k in report["removed"]:
        report["removed"][k] = sorted(report["removed"][k])
    report["params_before"] = before
    report["params_after"] = cur.n_params()
    return cur, report


def _original_indices(report, path, n_now):
    """Original indices of the current outputs of ``path`` (after forward removals)."""
    gone = set(report["removed"].get(path, []))
    orig = [k for k in range(n_now + len(gone)) if k not in gone]
    return np.asarray(orig, dtype=np.int64)
