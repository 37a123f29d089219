"""AutoSlim-style one-shot greedy channel search (Yu & Huang, "AutoSlim: Towards
One-Shot Architecture Search for Channel Numbers", arXiv:1903.11728, 2019; seed 001).

**What this is and is not.**  The original AutoSlim first *trains a
slimmable network* (one set of weights that runs at any width), then
greedily slims it layer by layer, keeping at each step the slimming that
loses the least validation accuracy, and finally retrains the chosen
architecture.  refcomp trains nothing: :func:`autoslim` applies AutoSlim's
*search* to an already trained network, removing channels physically with
:func:`refcomp.prune.shrink` (the least important ones by the norm of their
weights), without any retraining.  Its curve therefore measures what
one-shot slimming of a trained network costs, not what AutoSlim reaches.

Greedy step: for every prunable layer (a dense or conv2d layer whose output
neurons :func:`refcomp.prune.shrink` can remove: every such layer but the
last, whose outputs are the classes), remove its ``k = ceil(step * original
width)`` least important outputs (importance: the ``"l1"`` or ``"l2"`` norm
of each output's weights, exactly rounded sums; ties remove the lower index
first); evaluate the validation accuracy of each candidate; keep the
candidate with the highest accuracy (ties: fewer MACs, then the earlier
layer).  Repeat until the MACs of :func:`refcomp.search.count_flops` are at
most ``target_flops_ratio`` times the original, or no layer can lose k more
outputs and keep ``min_width``.

Candidate evaluations are independent tasks run by ``map_tasks(func,
state, items)`` (default: in order, in this process).  The command line
injects :func:`refcomp.study.executors.run_tasks` (``--workers`` /
``--scheduler``): the search stays an algorithm that imports no study code,
and every executor returns the same results in the same order, so the
search takes the same path.
"""

import dataclasses
import math
import numbers
from fractions import Fraction

import numpy as np

from .._errors import ParameterError, ShapeError
from .._progress import Progress
from .._validate import as_float_array, check_choice, check_finite, check_int, describe
from ..metrics import accuracy
from ..model import Model
from ..prune._common import fsum_rows
from ..prune.shrink import shrink
from ..weights import materialize
from .flops import count_flops, count_params, total

__all__ = ["autoslim", "SlimResult", "channel_importance", "evaluate_candidate", "IMPORTANCES"]

IMPORTANCES = ("l1", "l2")


@dataclasses.dataclass(frozen=True)
class SlimResult:
    """Result of :func:`autoslim`.

    widths : dict ``{path: int}``, the output width of every prunable layer.
    model : the slimmed Model.
    curve : list of dicts, one per accepted step (step 0 = the original):
        ``step``, ``layer`` (path slimmed, None at step 0), ``flops`` (MACs),
        ``params``, ``accuracy``, ``flops_ratio``, ``widths``.
    original_flops, target_flops : MACs (ints; target = ceil(ratio * original)).
    reached : bool, whether the target was reached.
    """
    widths: dict
    model: Model
    curve: list
    original_flops: int
    target_flops: int
    reached: bool


def channel_importance(W, importance="l1"):
    """Importance of each output of a dense (out, in) or conv (O, C, kh, kw) weight.

    ``"l1"``: ``sum |w|`` over the output's weights; ``"l2"``: ``sqrt(sum w^2)``
    (squares exact in float64 for float32 weights); the sums exactly rounded
    (float64, ``math.fsum`` semantics, order-independent).  Returns float64 (out,).
    """
    check_choice("importance", importance, IMPORTANCES)
    w = np.asarray(materialize(W), dtype=np.float64).reshape(W.shape[0] if hasattr(W, "shape")
                                                             else len(W), -1)
    if importance == "l1":
        return fsum_rows(np.abs(w))
    return np.sqrt(fsum_rows(w * w))


def evaluate_candidate(state, model):
    """Validation accuracy of one candidate: ``state = (x, y, precision)``.
    A module-level function, so process and Dask executors can ship it."""
    x, y, precision = state
    return accuracy(model(x, precision=precision), y)


def _serial(func, state, items):
    return [func(state, it) for it in items]


def _prunable(model):
    # the last dense/conv layer produces the classes: never slimmed
    producers = [(p, l) for p, l in model.named_layers() if l.kind in ("dense", "conv2d")]
    paths = []
    for path, layer in producers[:-1]:
        n = _width(layer)
        try:
            shrink(model, path, np.arange(n))
        except ParameterError:
            continue
        paths.append(path)
    return paths


def _width(layer):
    W = layer.weights["W"]
    return int(getattr(W, "weight_shape", W.shape)[0])


def _check_ratio(name, v, *, lo_open=True):
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(float(v)) \
            or not (0 < float(v) <= 1):
        raise ParameterError(f"{name} must be in (0, 1], got {v!r}")
    return float(v)


def autoslim(model, x_val, y_val, *, target_flops_ratio, step=0.1, importance="l1",
             precision="reference", min_width=1, map_tasks=None, progress=None):
    """One-shot greedy channel slimming of a trained model (module docstring).

    Parameters
    ----------
    model : refcomp.Model with an ``input_shape`` (float weights)
    x_val, y_val : validation inputs (N, *input_shape) and integer labels (N,)
    target_flops_ratio : float in (0, 1]
        Stop once MACs <= ceil(ratio * original MACs).
    step : float in (0, 1)
        Fraction of a layer's *original* width removed per step
        (``k = ceil(step * width)``, exact on the float's binary value).
    importance : {"l1", "l2"}
    precision : {"reference", "fast"}, forward pass of the evaluations.
    min_width : int >= 1, narrowest width a layer may reach.
    map_tasks : callable, optional
        ``map_tasks(func, state, items) -> list`` of ``func(state, item)`` in
        order (e.g. ``functools.partial(refcomp.study.executors.run_tasks,
        workers=2)``); default serial.
    progress : bool, optional
        A bar (or lines off a terminal) per evaluated step; default as
        :class:`refcomp._progress.Progress`.

    Returns
    -------
    SlimResult

    Raises
    ------
    ParameterError
        target or step outside their range, unknown importance, no prunable
        layer, labels out of range, NaN or Inf in ``x_val`` (``y_val`` must be
        integer labels, so it cannot hold them: float labels are a ShapeError).
    ShapeError
        validation data that does not fit the model.
    """
    if not isinstance(model, Model):
        raise ParameterError(f"model must be a refcomp.Model, got {type(model).__name__}")
    ratio = _check_ratio("target_flops_ratio", target_flops_ratio)
    if isinstance(step, bool) or not isinstance(step, numbers.Real) \
            or not 0 < float(step) < 1:
        raise ParameterError(f"step must be in (0, 1), got {step!r}")
    check_choice("importance", importance, IMPORTANCES)
    check_choice("precision", precision, ("reference", "fast"))
    min_width = check_int("min_width", min_width, lo=1)
    as_float_array("x_val", x_val)
    # a NaN input would turn every candidate's accuracy into a comparison of NaN
    # logits (argmax picks index 0): the search would rank on noise, silently
    check_finite("x_val", x_val)
    y_val = np.asarray(y_val)
    if y_val.ndim != 1 or y_val.dtype.kind not in "iu" or y_val.shape[0] != x_val.shape[0] \
            or x_val.shape[0] == 0:
        raise ShapeError(f"y_val must be non-empty integer labels of shape ({x_val.shape[0]},),"
                         f" got {describe(y_val)}")
    if model.input_shape is not None and tuple(x_val.shape[1:]) != model.input_shape:
        raise ShapeError(f"x_val {describe(x_val)} does not fit model {model.name!r} "
                         f"(input_shape {model.input_shape})")
    run = map_tasks or _serial
    state = (x_val, y_val, precision)
    prunable = _prunable(model)
    if not prunable:
        raise ParameterError(f"model {model.name!r} has no layer whose channels can be slimmed")
    base = total(count_flops(model))
    target = math.ceil(Fraction(ratio) * base)
    orig = {p: _width(model.get_layer(p)) for p in prunable}
    k = {p: max(1, math.ceil(Fraction(step) * orig[p])) for p in prunable}

    def widths_of(m):
        return {p: _width(m.get_layer(p)) for p in prunable}

    def record(m, s, layer, acc, flops):
        return {"step": s, "layer": layer, "flops": flops, "params": total(count_params(m)),
                "accuracy": acc, "flops_ratio": flops / base, "widths": widths_of(m)}

    current, flops = model, base
    curve = [record(model, 0, None, run(evaluate_candidate, state, [model])[0], base)]
    most = sum(max(0, (orig[p] - min_width) // k[p]) for p in prunable)
    bar = Progress(max(1, most), "autoslim", enabled=progress)
    s = 0
    while flops > target:
        cands = []
        for p in prunable:
            layer = current.get_layer(p)
            w = _width(layer)
            if w - k[p] < min_width:
                continue
            order = np.argsort(channel_importance(layer.weights["W"], importance),
                               kind="stable")
            keep = np.sort(order[k[p]:])
            cand = shrink(current, p, keep)
            cands.append((p, cand, total(count_flops(cand))))
        if not cands:
            break
        accs = run(evaluate_candidate, state, [c for _, c, _ in cands])
        best = max(range(len(cands)), key=lambda i: (accs[i], -cands[i][2], -i))
        p, current, flops = cands[best]
        s += 1
        curve.append(record(current, s, p, accs[best], flops))
        bar.update()
    if bar.done < bar.total:
        bar.update(bar.total - bar.done)
    return SlimResult(widths_of(current), current, curve, base, target, flops <= target)
