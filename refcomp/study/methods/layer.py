"""Layer-level study methods: compression that needs a layer's structure,
the model or data (``register_method(level="layer")``).

- ``structured`` (SP): structured pruning of a dense/conv weight
  (:func:`refcomp.prune.structured`; seed 002 §II, Mao et al. / Cheng et
  al. granularities), swept over ``keep``, the percentage of groups kept.
- ``obd`` (OB): Optimal Brain Damage (LeCun, Denker & Solla 1990; seed 001)
  within one layer, ranked by the saliency ``h_kk w_k^2 / 2`` whose
  Gauss-Newton Hessian diagonal is computed on the study's calibration
  split; it needs the model and the calibration split.

Both keep the surviving weights at full precision (no retraining) and
count ``accounting`` bits exactly.
"""

import numpy as np

from ..._errors import ParameterError
from ...prune.obd import hessian_diagonal, obd
from ...prune.structured import structured
from ..registry import CompressedLayer, register_method

#: Percentages of groups / weights kept, swept by default.
KEEP_VALUES = (5, 10, 20, 30, 50, 70, 90)
_KINDS = ("dense", "conv2d")


def _check_kind(method, layer):
    if layer.kind not in _KINDS:
        raise ParameterError(f"method {method!r} prunes dense and conv2d weights; layer "
                             f"{layer.path} ({layer.label}) is a {layer.kind}")


def _width(a):
    return a.dtype.itemsize * 8


def _n_groups(shape, level, groups):
    # Group counts of refcomp.prune.structured's table (conv OIHW; dense (out, in)).
    counts = {"fine": int(np.prod(shape)), "filter": shape[0], "channel": shape[1],
              "group": groups}
    if len(shape) == 4:
        counts.update(vector=shape[0] * shape[1] * shape[2], kernel=shape[0] * shape[1])
    return int(counts[level])


def _structured(layer, keep, *, level, norm):
    _check_kind("structured", layer)
    W = layer.weights["W"]
    groups = layer.attrs.get("groups", 1)
    # Exactly round_half_even((1 - keep/100) * G) groups removed, smallest
    # norm first, ties to the lower group index (refcomp.prune.structured).
    mask = structured(W, level=level, norm=norm, sparsity=(100 - keep) / 100, groups=groups)
    zero = W.dtype.type(0)
    out = {"W": np.where(mask, W, zero)}
    # One occupancy bit per group plus the kept values at the weight precision.
    bits = int(np.count_nonzero(mask)) * _width(W) + _n_groups(W.shape, level, groups)
    if "b" in layer.names:
        b = layer.weights["b"]
        if level == "filter":
            # A removed filter (output neuron) takes its bias with it.
            kept = mask.reshape(mask.shape[0], -1).any(axis=1)
            out["b"] = np.where(kept, b, zero)
            bits += int(np.count_nonzero(kept)) * _width(b)
        else:
            out["b"] = b.copy()
            bits += b.size * _width(b)
    return CompressedLayer(out, bits, mask)


#: (model, x, y, Hessian diagonal) of the last call, kept while the same
#: objects are used (the study's tasks share one model and one split per
#: process); holding the objects keeps their ids from being reused.
_HESSIAN = []


def _hessian(model, calibration):
    x, y = calibration
    for m, xx, yy, h in _HESSIAN:
        if m is model and xx is x and yy is y:
            return h
    h = hessian_diagonal(model, x, y)
    _HESSIAN[:] = [(model, x, y, h)]
    return h


def _obd(layer, keep, *, model, calibration):
    _check_kind("obd", layer)
    W = layer.weights["W"]
    # scope="layer": exactly round_half_even((1 - keep/100) * |W|) entries of
    # this layer's W removed, lowest saliency first, ties to the lower flat
    # index (refcomp.prune.obd); the Hessian is computed once per process.
    _, masks = obd(model, *calibration, sparsity=(100 - keep) / 100,
                   hessian=_hessian(model, calibration), scope="layer", masked=False)
    mask = masks[(layer.path, "W")]
    out = {"W": np.where(mask, W, W.dtype.type(0))}
    bits = int(np.count_nonzero(mask)) * _width(W) + W.size
    for name in layer.names:
        if name != "W":                   # OBD does not prune biases
            out[name] = layer.weights[name].copy()
            bits += out[name].size * _width(out[name])
    return CompressedLayer(out, bits, mask)


register_method(
    "structured", _structured, label="SP", param="keep", values=KEEP_VALUES,
    min_value=0, max_value=100, level="layer", extra_params={"level": "filter", "norm": "l1"},
    description="structured pruning of dense/conv W (refcomp.prune.structured), no "
                "retraining; keep = % of groups kept; a removed filter removes its bias",
    accounting="kept values at the weight precision + one occupancy bit per group (+ kept "
               "biases at the weight precision)")
register_method(
    "obd", _obd, label="OB", param="keep", values=KEEP_VALUES, min_value=0, max_value=100,
    level="layer", needs=("model", "calibration"),
    description="Optimal Brain Damage within the layer (LeCun et al. 1990), Gauss-Newton "
                "Hessian diagonal on the calibration split, no retraining; keep = % of W kept",
    accounting="kept W values at the weight precision + |W| bits of occupancy bitmap + "
               "biases at the weight precision")
