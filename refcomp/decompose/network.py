"""Whole-network application of the decompositions and the metrics of seed
004's Tables 1-3 (Fernandez Brillet et al. §3.1.2): P, G, A and ER."""

import numbers

import numpy as np

from .._errors import ParameterError
from .._validate import as_float_array, check_choice
from ..metrics import accuracy
from ..model import Model
from ..weights import CompressedWeight
from ._factorized import FORWARDS
from .pca import pca_filters

__all__ = ["pca_model", "param_count", "network_metrics", "decomposable_layers"]

_KINDS = ("conv2d", "dense")


def decomposable_layers(model, layers=None):
    """Paths of the layers :func:`pca_model` decomposes.

    ``layers=None``: every conv2d layer with a plain ndarray weight (the
    paper's setting); ``"all"``: every conv2d and dense layer; ``"conv2d"``
    or ``"dense"``: every layer of that kind; a sequence of model paths
    (``"3"``, ``"3/0"`` inside a residual block): exactly those, each a
    conv2d or dense layer.  Paths in model order (depth first).
    """
    if not isinstance(model, Model):
        raise ParameterError(f"model must be a refcomp.Model, got {type(model).__name__}")
    named = list(model.named_layers())
    plain = [(p, l) for p, l in named
             if l.kind in _KINDS and isinstance(l.weights["W"], np.ndarray)]
    if layers is None or (isinstance(layers, str) and layers == "conv2d"):
        return [p for p, l in plain if l.kind == "conv2d"]
    if isinstance(layers, str):
        check_choice("layers", layers, ("all", "conv2d", "dense"))
        return [p for p, l in plain if layers == "all" or l.kind == layers]
    try:
        wanted = [str(p) for p in layers]
    except TypeError:
        raise ParameterError(f"layers must be None, 'all', 'conv2d', 'dense' or a sequence "
                             f"of model paths, got {layers!r}") from None
    kinds = dict((p, l.kind) for p, l in named)
    for p in wanted:
        if p not in kinds:
            raise ParameterError(f"layers: no layer at path {p!r} in model {model.name!r}")
        if kinds[p] not in _KINDS:
            raise ParameterError(f"layers: layer {p!r} is a {kinds[p]}, not conv2d or dense")
    return [p for p, _ in named if p in set(wanted)]


def pca_model(model, energy, *, layers=None, forward="reconstruct"):
    """Apply :func:`~refcomp.decompose.pca_filters` to layers of a model (seed 004 §3.1).

    Parameters
    ----------
    model : refcomp.Model (not modified)
    energy : float in (0, 1]
        The energy threshold of every decomposed layer (read exactly as
        :func:`~refcomp.decompose.energy_rank` says).
    layers : None, "all", "conv2d", "dense" or sequence of paths
        Which layers (:func:`decomposable_layers`; default every conv2d
        layer, as in the paper; "all" adds the dense layers, whose rows are
        treated as filters).
    forward : {"reconstruct", "factorized"}
        The pass the new weights' hooks run.

    Returns
    -------
    refcomp.Model
        A copy whose chosen layers' ``W`` is a :class:`PCAWeight`; biases
        and every other weight are shared, unchanged.
    """
    check_choice("forward", forward, FORWARDS)
    paths = decomposable_layers(model, layers)
    mapping = {}
    for p in paths:
        W = model.get_layer(p).weights["W"]
        mapping[(p, "W")] = pca_filters(W, energy=energy, forward=forward)
    return model.replace_weights(mapping)


def _weight_params(v):
    if isinstance(v, np.ndarray):
        return int(v.size)
    stored = getattr(v, "stored_params", None)
    if callable(stored):
        return int(stored())
    if isinstance(v, CompressedWeight):
        return int(np.prod(v.weight_shape))
    raise ParameterError(f"cannot count the parameters of a {type(v).__name__}")


def param_count(model):
    """P of seed 004's tables: the parameters the network stores.

    Every weight of every layer (biases, batch-norm parameters, untouched
    layers included; a residual ``index_map`` is structure, not a
    parameter): an ndarray counts its size, a factorized weight its
    ``stored_params()`` (PCA: N Q + Q d + d), any other compressed weight
    its decoded size.

    Returns
    -------
    int
    """
    if not isinstance(model, Model):
        raise ParameterError(f"model must be a refcomp.Model, got {type(model).__name__}")
    return sum(_weight_params(v) for _, layer in model.named_layers()
               for k, v in layer.weights.items() if k != "index_map")


def network_metrics(original, compressed, x, y, *, precision="reference", baseline=None):
    """The columns of seed 004's Tables 1-2 for one compressed network.

    Parameters
    ----------
    original, compressed : refcomp.Model
    x : ndarray (N, *input_shape) float; y : ndarray (N,) integer labels
    precision : forward precision of both models
    baseline : float, optional
        A_orig when already known (saves one forward pass of ``original``).

    Returns
    -------
    dict
        ``P`` (:func:`param_count` of ``compressed``), ``P_orig``,
        ``G = P_orig / P`` (Python true division), ``A`` and ``A_orig``
        (:func:`refcomp.metrics.accuracy`, eq. (9) of seed 002: argmax ties
        to the lowest class) and ``ER = 100 (A_orig - A) / A_orig`` in %
        (signed: a compressed network more accurate than the original gives
        a negative ER, which the paper prints as 0.0).
    """
    as_float_array("x", x)
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != x.shape[0] or y.dtype.kind not in "iu":
        raise ParameterError(f"labels must be integers of shape ({x.shape[0]},), got "
                             f"shape {y.shape} dtype {y.dtype}")
    a_orig = accuracy(original(x, precision=precision), y) if baseline is None else baseline
    if not isinstance(a_orig, numbers.Real):
        raise ParameterError(f"baseline must be a number, got {baseline!r}")
    a = accuracy(compressed(x, precision=precision), y)
    p_orig, p = param_count(original), param_count(compressed)
    er = 100.0 * (a_orig - a) / a_orig if a_orig else 0.0
    return {"P": p, "P_orig": p_orig, "G": p_orig / p, "A": a, "A_orig": a_orig, "ER": er}
