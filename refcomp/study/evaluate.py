"""Evaluation of one compressed configuration of a model (worker side).

A *unit* is a layer whose float weights are compressed as one vector
theta_k (seed 002 §5.1: theta_k groups W_k and b_k).  A *configuration*
maps some units to the decoded theta_k of a compressed run.  The evaluator
reuses the unchanged layers' activations: the activation after top-level
layer t depends only on the units at or before t, so it is cached under the
key of those units' replacements, and a run recomputes only from the first
layer whose inputs changed.
"""

import collections

import numpy as np

from ..metrics import accuracy, mean_kl, parameter_mse
from ..model import LAYER_KINDS
from ..weights import materialize
from .registry import LayerView

__all__ = ["Unit", "find_units", "Evaluator", "theta_of", "split_theta", "layer_view"]

#: Layer kinds whose weights form compressible units.
UNIT_KINDS = {"conv2d": "CONV", "dense": "FC", "lstm": "LSTM", "gru": "GRU", "mgu": "MGU",
              "simple_rnn": "RNN"}
BIAS_NAMES = ("b", "b_ih", "b_hh")


class Unit:
    """One compressible layer: its path, label, top-level index and weight names."""

    __slots__ = ("index", "path", "label", "top", "names", "shapes", "dtype", "n_params",
                 "n_total")

    def __init__(self, index, path, label, layer, biases):
        self.index = index
        self.path = path
        self.label = label
        self.top = int(path.split("/")[0])
        required, optional, _ = LAYER_KINDS[layer.kind]
        order = [n for n in required + optional if n in layer.weights]
        self.names = [n for n in order if biases == "joint" or n not in BIAS_NAMES]
        self.shapes = [tuple(layer.weights[n].shape) for n in self.names]
        self.dtype = np.dtype(layer.weights[self.names[0]].dtype)
        self.n_params = int(sum(np.prod(s) for s in self.shapes))
        self.n_total = int(sum(np.prod(layer.weights[n].shape) for n in order))

    def as_dict(self):
        return {"index": self.index, "path": self.path, "label": self.label,
                "weights": self.names, "params": self.n_params}


def find_units(model, *, biases="joint"):
    """Units of ``model`` in execution order, labelled like seed 002 (CONV 1, FC 1...)."""
    counts = collections.Counter()
    units = []
    for path, layer in model.named_layers():
        if layer.kind in UNIT_KINDS and all(isinstance(v, np.ndarray) for v in layer.weights.values()):
            prefix = UNIT_KINDS[layer.kind]
            counts[prefix] += 1
            units.append(Unit(len(units), path, f"{prefix} {counts[prefix]}", layer, biases))
    return units


def theta_of(model, unit):
    """theta_k: the unit's weights flattened (C order) and concatenated in name order."""
    layer = model.get_layer(unit.path)
    return np.concatenate([layer.weights[n].reshape(-1) for n in unit.names])


def layer_view(model, unit):
    """The :class:`~refcomp.study.registry.LayerView` a method sees of ``unit``.

    Its weight arrays are read-only views of the model's (no copy): a method
    cannot modify the model it is given.
    """
    layer = model.get_layer(unit.path)
    weights = {}
    for n, w in layer.weights.items():
        v = w.view()
        v.flags.writeable = False
        weights[n] = v
    return LayerView(unit.path, layer.kind, layer.name, unit.label, dict(layer.attrs), weights,
                     tuple(unit.names))


def split_theta(theta, unit):
    """Inverse of :func:`theta_of`: ``{name: array}``."""
    out, pos = {}, 0
    for n, s in zip(unit.names, unit.shapes):
        size = int(np.prod(s))
        out[n] = theta[pos:pos + size].reshape(s)
        pos += size
    return out


class Evaluator:
    """Runs configurations of one model on one test set.

    Parameters
    ----------
    model : Model (float weights).
    x, y : test inputs and integer labels.
    units : list of Unit.
    table : {(unit_index, method, value): (weights, bits)} with ``weights``
        ``{name: ndarray or CompressedWeight}`` for the unit's weight names.
    precision : forward-pass precision.
    reuse : cache activations of unchanged prefixes.
    """

    def __init__(self, model, x, y, units, table, *, precision="reference", reuse=True,
                 cache_size=256):
        self.model = model
        self.x, self.y = x, y
        self.units = units
        self.table = table
        self.precision = precision
        self.reuse = reuse
        self.cache = collections.OrderedDict()
        self.cache_size = cache_size
        last = model.layers[-1]
        # Metrics use logits: a trailing softmax is dropped (argmax unchanged,
        # KL from log-softmax, see metrics.mean_kl).
        self.n_layers = len(model.layers) - (1 if last.kind == "activation"
                                             and last.attrs["function"] == "softmax" else 0)
        self.base_logits = self._forward({})
        self.base_accuracy = accuracy(self.base_logits, y)
        self.original_bits = sum(u.n_params * u.dtype.itemsize * 8 for u in units)
        self.other_bits = self._other_bits()

    def _other_bits(self):
        # Parameters outside the compressed vectors stay at full precision.
        total = 0
        for _, layer in self.model.named_layers():
            for name, v in layer.weights.items():
                if name != "index_map":
                    total += int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize * 8
        return total - self.original_bits

    def _key(self, config, top):
        return tuple(sorted((u, mv) for u, mv in config.items() if self.units[u].top <= top))

    def _forward(self, config):
        mapping = {}
        for u, (method, value) in config.items():
            unit = self.units[u]
            weights, _ = self.table[(u, method, value)]
            for n, w in weights.items():
                mapping[(unit.path, n)] = w
        model = self.model.replace_weights(mapping) if mapping else self.model
        start, act = 0, self.x
        if self.reuse:
            for t in range(self.n_layers - 1, -1, -1):
                hit = self.cache.get((t, self._key(config, t)))
                if hit is not None:
                    self.cache.move_to_end((t, self._key(config, t)))
                    start, act = t + 1, hit
                    break
        for t in range(start, self.n_layers):
            act = _one(model, t, act, self.precision)
            if self.reuse:
                self.cache[(t, self._key(config, t))] = act
                if len(self.cache) > self.cache_size:
                    self.cache.popitem(last=False)
        return act

    def run(self, config):
        """Metrics of one configuration ``{unit_index: (method, value)}``."""
        logits = self._forward(config)
        orig, dec = [], []
        comp_bits = 0
        for u, (method, value) in sorted(config.items()):
            weights, bits = self.table[(u, method, value)]
            unit = self.units[u]
            orig.append(theta_of(self.model, unit))
            # decoded theta_k: the same concatenation as theta_of (for a flat
            # method, exactly the vector it returned)
            dec.append(np.concatenate([materialize(weights[n]).reshape(-1) for n in unit.names]))
            comp_bits += bits
        untouched = sum(self.units[u].n_params * self.units[u].dtype.itemsize * 8
                        for u in range(len(self.units)) if u not in config)
        total_after = comp_bits + untouched + self.other_bits
        total_before = self.original_bits + self.other_bits
        out = {"accuracy": accuracy(logits, self.y),
               "mse": parameter_mse(orig, dec) if orig else 0.0,
               "kl": mean_kl(self.base_logits, logits),
               "size_bits": int(comp_bits),
               "tau": total_before / total_after}
        if len(config) == 1:
            (u,) = config
            unit = self.units[u]
            out["tau_i"] = unit.n_params * unit.dtype.itemsize * 8 / comp_bits
        return out


def _one(model, t, act, precision):
    from ..model import _run_layer
    return _run_layer(model.layers[t], act, precision, str(t))
