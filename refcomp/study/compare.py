"""The comparative study of seed 001's first phase (Baktash, Natale & Viennot 2019,
"A Comparative Study of Neural Network Compression"): every method refcomp
has, on simple architectures, without retraining, on the plane of accuracy
against the compression ratio tau (seed 002 eq. (19)): ``refcomp study --compare``.

Each method compresses *every* compressible layer of the model with one
value of its own parameter (the "whole network" experiment), swept so that
the ratios span about 2x to 64x where the method can reach them:

===== ================= ==================================================
label method            sweep (parameter)
===== ================= ==================================================
QU    uniform           bits 1, 2, 3, 4, 5, 6, 8
KM    kmeans            bits 1, 2, 3, 4, 5, 6, 8
MP    magnitude         keep 50, 30, 20, 10, 5, 2, 1 (% of theta_k)
OB    obd               keep 50, 30, 20, 10, 5, 2, 1 (% of W)
SP    structured        keep 70, 50, 30, 20, 10, 5 (% of filters)
LM    less_is_more      ratio 0.2, 0.4, 0.6, 0.7, 0.8, 0.9 (relative threshold)
HN    hashed            keep 50, 25, 12.5, 6.25, 3.125, 1.5625 (% of |W|
                        as buckets: compression 1/2 ... 1/64)
SS    spectral          samples 160, 80, 40, 20, 10, 5 (% of |W|)
DC    deep              keep 70, 50, 30, 20, 10, 5, 2 (% of theta_k; 5-bit
                        k-means, 5-bit relative indices, Huffman)
PCA   pca               energy 99, 95, 90, 80, 70, 50, 30, 10 (% of the
                        eigenvalue sum kept; seed 004, rows / filters)
SVD   svd               energy 99, 95, 90, 80, 70, 50, 30, 10 (% of the
                        squared singular values; dense layers only)
TK2   tucker2           keep 75, 50, 25, 10, 5 (% of the ranks; conv only)
CP    cp                keep 75, 50, 25, 10, 5 (% of T as the CP rank;
                        conv only)
NNC   nnc               neg_qp 68, 52, 38, 32, 26, 20, 16, 12, 10, 8, 6, 4
                        (qp = -neg_qp; 8-state dependent quantization +
                        DeepCABAC, NNCodec 2.1.3's defaults otherwise;
                        38 is NNCodec's default qp)
===== ================= ==================================================

The decompositions run with their default ``forward="reconstruct"`` (the
stored factors are counted; the forward pass uses the reconstructed
weight) and no refit.  A layer a decomposition does not treat (conv for
SVD, dense for Tucker-2 and CP) keeps its float32 weights and counts them,
so those methods cannot reach high ratios on models whose parameters sit
in the other kind of layer; that is the measurement, not a defect.  NNC
codes each layer's theta_k (weights and bias, flattened) as one tensor
(:mod:`refcomp.study.methods.nnc`): its size is the CABAC payload bytes plus
32 bits of qp per layer, exact.
Accounting is each method's own (``runs.json`` of the ordinary study states
it; here in :data:`ACCOUNTING`); less-is-more (seed 003) removes neurons from
the whole model, so its size is the float32 parameters of the reduced model.
Every run is an independent task for :func:`refcomp.study.executors.run_tasks`;
results are identical whatever the executor.
"""

import dataclasses
import uuid

import numpy as np

from .._errors import ParameterError
from ..compress.deep import compress_weight
from ..metrics import accuracy, compression_ratio, mean_kl
from ..prune.group_sparsity import less_is_more
from .evaluate import Evaluator, find_units, layer_view
from .executors import run_tasks
from .registry import Compressed, Method, get_method
from .run import pareto_front

__all__ = ["COMPARE_METHODS", "SWEEPS", "ACCOUNTING", "run_compare", "winners",
           "THRESHOLDS"]

#: Methods of the comparison in table order, with their sweeps.
SWEEPS = {
    "uniform": (1, 2, 3, 4, 5, 6, 8),
    "kmeans": (1, 2, 3, 4, 5, 6, 8),
    "magnitude": (50, 30, 20, 10, 5, 2, 1),
    "obd": (50, 30, 20, 10, 5, 2, 1),
    "structured": (70, 50, 30, 20, 10, 5),
    "less_is_more": (0.2, 0.4, 0.6, 0.7, 0.8, 0.9),
    "hashed": (50, 25, 12.5, 6.25, 3.125, 1.5625),
    "spectral": (160, 80, 40, 20, 10, 5),
    "deep": (70, 50, 30, 20, 10, 5, 2),
    "pca": (99, 95, 90, 80, 70, 50, 30, 10),
    "svd": (99, 95, 90, 80, 70, 50, 30, 10),
    "tucker2": (75, 50, 25, 10, 5),
    "cp": (75, 50, 25, 10, 5),
    # Measured on the shipped models (360 test images): neg_qp 68 gives tau 2.1 (MLP) / 2.2
    # (CNN), 38 tau 4.1 / 4.9, 8 tau 32 / 112, 4 tau 76 / 1039; the CNN collapses below 12.
    "nnc": (68, 52, 38, 32, 26, 20, 16, 12, 10, 8, 6, 4),
}
COMPARE_METHODS = tuple(SWEEPS)
LABELS = {"less_is_more": "LM", "deep": "DC"}
ACCOUNTING = {
    "less_is_more": "float32 parameters of the reduced model (neurons removed)",
    "deep": "Deep Compression streams: Huffman value and 5-bit relative-index streams "
            "(headers included) + codebook at the weight precision",
}
#: Ratios at which the winner is reported.
THRESHOLDS = (2, 4, 8, 16, 32, 64)


def _deep_keep(theta, keep):
    # Han et al. 2016 without retraining: magnitude pruning to keep %, 5-bit
    # k-means on the kept values (linear init), 5-bit relative indices, Huffman.
    dc = compress_weight(theta, sparsity=(100 - keep) / 100, bits=5, index_bits=5,
                         huffman=True)
    return Compressed(dc.dequantize(), dc.stored_bits(), dc)


def _method(name):
    """The Method the comparison runs for ``name`` (None for less-is-more)."""
    if name == "less_is_more":
        return None
    if name == "deep":
        return Method("deep", "DC", "keep", SWEEPS["deep"], _deep_keep,
                      "Deep Compression, prune to keep %, 5-bit sharing", ACCOUNTING["deep"],
                      0, 100)
    return dataclasses.replace(get_method(name), values=SWEEPS[name])


_EVAL = {}


def _task(state, item):
    model_key, name, value = item
    model = state["models"][model_key]
    x, y = state["x"], state["y"]
    if name == "less_is_more":
        base = model(x)
        try:
            reduced, _ = less_is_more(model, value)
        except ParameterError:
            return None                     # the threshold removes a whole layer
        logits = reduced(x)
        before = model.n_params() * 32
        after = reduced.n_params() * 32
        return {"accuracy": accuracy(logits, y), "tau": compression_ratio(before, after),
                "kl": mean_kl(base, logits), "size_bits": int(after)}
    meth, extra = state["methods"][name]
    key = (state["token"], model_key)
    if key not in _EVAL:
        _EVAL.clear()
        units = find_units(model)
        _EVAL[key] = (Evaluator(model, x, y, units, {}, reuse=False), units,
                      [layer_view(model, u) for u in units])
    ev, units, views = _EVAL[key]
    table = {}
    for u, view in zip(units, views):
        res = meth.compress_layer(view, value, model=model, calibration=state["calibration"],
                                  **extra)
        table[(u.index, name, value)] = (res.weights, res.bits)
    ev.table = table
    m = ev.run({u.index: (name, value) for u in units})
    return {k: m[k] for k in ("accuracy", "tau", "kl", "size_bits")}


def run_compare(models, x, y, *, methods=COMPARE_METHODS, calibration, workers=1,
                scheduler=None, progress=None):
    """Run the comparison; return ``{"models": {key: baseline}, "runs": [...]}``.

    Parameters
    ----------
    models : dict ``{key: Model}`` (e.g. ``{"digits_mlp": ..., "digits_cnn": ...}``)
    x, y : test inputs and integer labels
    methods : names among :data:`COMPARE_METHODS`
    calibration : (x_cal, y_cal), the split OBD's Hessian uses
    workers, scheduler, progress : as :func:`refcomp.study.run_study`

    Returns
    -------
    dict
        ``models``: ``{key: {"accuracy": float, "bits": int}}`` (float baseline);
        ``runs``: one dict per (model, method, value) in that order with
        ``model, method, label, value, accuracy, tau, kl, size_bits``; runs a
        method cannot make (a less-is-more threshold that empties a layer) are
        left out.
    """
    for m in methods:
        if m not in SWEEPS:
            raise ParameterError(f"unknown comparison method {m!r}; known: "
                                 f"{', '.join(COMPARE_METHODS)}")
    shipped = {}
    for m in methods:
        meth = _method(m)
        if meth is not None:
            shipped[m] = (meth, meth.resolve() if meth.extra_params else {})
    items = [(k, m, v) for k in models for m in methods for v in SWEEPS[m]]
    state = {"models": models, "x": x, "y": y, "calibration": calibration,
             "methods": shipped, "token": uuid.uuid4().hex}
    results = run_tasks(_task, state, items, workers=workers, scheduler=scheduler,
                        label="compare", progress=progress)
    runs = []
    for (k, m, v), res in zip(items, results):
        if res is None:
            continue
        label = LABELS.get(m) or shipped[m][0].label
        runs.append({"model": k, "method": m, "label": label, "value": v, **res})
    base = {k: {"accuracy": accuracy(mod(x), y),
                "bits": int(sum(int(np.prod(getattr(w, "shape"))) * 32
                                for _, l in mod.named_layers() for w in l.weights.values()))}
            for k, mod in models.items()}
    return {"models": base, "runs": runs, "methods": list(methods),
            "sweeps": {m: list(SWEEPS[m]) for m in methods}}


def winners(result, *, thresholds=THRESHOLDS):
    """``{model: {r: run or None}}``: the most accurate run with tau >= r (ties:
    higher tau, then the earlier run)."""
    out = {}
    for k in result["models"]:
        rows = [r for r in result["runs"] if r["model"] == k]
        out[k] = {}
        for t in thresholds:
            ok = [(i, r) for i, r in enumerate(rows) if r["tau"] >= t]
            out[k][t] = max(ok, key=lambda p: (p[1]["accuracy"], p[1]["tau"], -p[0]))[1] \
                if ok else None
    return out


def fronts(result):
    """``{(model, method): Pareto-front runs}`` (accuracy and tau maximised)."""
    out = {}
    for k in result["models"]:
        for m in result["methods"]:
            rows = [r for r in result["runs"] if r["model"] == k and r["method"] == m]
            if rows:
                out[(k, m)] = pareto_front(rows)
    return out
