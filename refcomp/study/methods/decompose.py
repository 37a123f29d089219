"""Low-rank decompositions as layer-level study methods.

- ``pca`` (PCA): seed 004 (Fernandez Brillet et al. §3), PCA of a layer's
  filters (conv) or rows (dense) keeping the smallest number of components
  that carry ``energy`` % of the eigenvalue sum
  (:func:`refcomp.decompose.pca_filters`); swept over 100, 90, ..., 50 %.
  The stored weight is a :class:`refcomp.decompose.PCAWeight`, so the
  study's forward pass runs its hook (``--param forward=factorized`` for
  the basis pass).  When ``pca`` is among the study's methods the study
  also writes seed 004's Tables 1 and 3 (:mod:`refcomp.study.seed004`),
  which need the model and the calibration split (for the coordinate
  refit), hence ``needs``.

- ``svd`` (SVD): truncated SVD of dense layers (Denton et al. 2014) at
  ``energy`` % of the squared singular values; conv layers stay in float.
- ``tucker2`` (TK2): Tucker-2 of conv kernels (Kim et al. 2016), HOSVD plus
  ``n_iter`` HOOI sweeps (default 2), ranks ``ceil(keep/100 T)`` and
  ``ceil(keep/100 S)``; dense layers stay in float.
- ``cp`` (CP): CP by ALS of conv kernels (Lebedev et al. 2015), rank
  ``ceil(keep/100 T)``, ``n_iter_max`` sweeps (default 25), generator
  seeded with ``seed`` (default 0) for the columns the SVD init lacks;
  dense layers stay in float.

A layer a method does not decompose keeps its weights and counts them at
their precision.

Sizes: the stored factors at the weight precision (PCA: N Q + Q d + d
values) plus the biases at the weight precision (not decomposed).
"""

from fractions import Fraction

from ..._errors import ParameterError
import numpy as np

from ...decompose import cp, pca_filters, svd_compress, tucker2
from ..registry import CompressedLayer, register_method

#: Energy thresholds (%) of seed 004's Tables 1 and 3.
ENERGY_VALUES = (50, 60, 70, 80, 90, 100)
_KINDS = ("dense", "conv2d")


def _check_kind(method, layer):
    if layer.kind not in _KINDS:
        raise ParameterError(f"method {method!r} decomposes dense and conv2d weights; layer "
                             f"{layer.path} ({layer.label}) is a {layer.kind}")


def _with_biases(layer, w):
    out, bits = {"W": w}, w.stored_bits()
    for name in layer.names:
        if name != "W":                    # biases are not decomposed
            out[name] = layer.weights[name].copy()
            bits += out[name].size * out[name].dtype.itemsize * 8
    return CompressedLayer(out, bits, w)


def _pca(layer, energy, *, forward, model=None, calibration=None):
    _check_kind("pca", layer)
    # energy % as an exact fraction (90 -> 9/10), the rule of energy_rank
    w = pca_filters(layer.weights["W"], energy=Fraction(int(energy), 100), forward=forward)
    return _with_biases(layer, w)


register_method(
    "pca", _pca, label="PCA", param="energy", values=ENERGY_VALUES, min_value=1,
    max_value=100, level="layer", needs=("model", "calibration"),
    extra_params={"forward": "reconstruct"},
    description="PCA of the filters / rows with an energy threshold (seed 004 §3; "
                "refcomp.decompose.pca_filters), no retraining; energy = % of the eigenvalue "
                "sum kept; also writes seed 004's Tables 1 and 3 (with the least-squares "
                "coordinate refit on the calibration split)",
    accounting="basis, coordinates and mean at the weight precision (N Q + Q d + d values) "
               "+ biases at the weight precision")


#: Percentages of the full ranks kept by tucker2 and cp.
KEEP_VALUES = (10, 25, 50, 75, 100)


def _unchanged(layer):
    out = {n: layer.weights[n].copy() for n in layer.names}
    return CompressedLayer(out, sum(a.size * a.dtype.itemsize * 8 for a in out.values()), None)


def _svd(layer, energy, *, forward):
    _check_kind("svd", layer)
    if layer.kind != "dense":
        return _unchanged(layer)
    w = svd_compress(layer.weights["W"], energy=Fraction(int(energy), 100), forward=forward)
    return _with_biases(layer, w)


def _ranks(keep, *sizes):
    # ceil(keep/100 * size) computed exactly on integers, at least 1
    return [max(1, -(-int(keep) * s // 100)) for s in sizes]


def _tucker2(layer, keep, *, n_iter, forward):
    _check_kind("tucker2", layer)
    if layer.kind != "conv2d":
        return _unchanged(layer)
    W = layer.weights["W"]
    t, s, kh, kw = W.shape
    r4, r3 = _ranks(keep, t, s)
    w = tucker2(W, (min(r4, s * kh * kw), min(r3, t * kh * kw)), n_iter=n_iter,
                forward=forward)
    return _with_biases(layer, w)


def _cp(layer, keep, *, n_iter_max, seed, forward):
    _check_kind("cp", layer)
    if layer.kind != "conv2d":
        return _unchanged(layer)
    W = layer.weights["W"]
    (r,) = _ranks(keep, W.shape[0])
    w = cp(W, r, rng=np.random.default_rng(seed), n_iter_max=n_iter_max, forward=forward)
    return _with_biases(layer, w)


register_method(
    "svd", _svd, label="SVD", param="energy", values=ENERGY_VALUES, min_value=1,
    max_value=100, level="layer", extra_params={"forward": "reconstruct"},
    description="truncated SVD of dense W (Denton et al. 2014; refcomp.decompose."
                "svd_compress) at energy % of the squared singular values; conv layers "
                "unchanged",
    accounting="r (out + in) factor values at the weight precision + biases; untouched "
               "layers at their precision")
register_method(
    "tucker2", _tucker2, label="TK2", param="keep", values=KEEP_VALUES, min_value=1,
    max_value=100, level="layer", extra_params={"n_iter": 2, "forward": "reconstruct"},
    description="Tucker-2 of conv kernels (Kim et al. 2016; refcomp.decompose.tucker2), "
                "ranks ceil(keep % of T and S); dense layers unchanged",
    accounting="T R4 + S R3 + R4 R3 kh kw values at the weight precision + biases; "
               "untouched layers at their precision")
register_method(
    "cp", _cp, label="CP", param="keep", values=KEEP_VALUES, min_value=1, max_value=100,
    level="layer", extra_params={"n_iter_max": 25, "seed": 0, "forward": "reconstruct"},
    description="CP by ALS of conv kernels (Lebedev et al. 2015; refcomp.decompose.cp), "
                "rank ceil(keep % of T); dense layers unchanged",
    accounting="R (T + S + kh + kw) values at the weight precision + biases; untouched "
               "layers at their precision")
