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

Sizes: the stored factors at the weight precision (PCA: N Q + Q d + d
values) plus the biases at the weight precision (not decomposed).
"""

from fractions import Fraction

from ..._errors import ParameterError
from ...decompose import pca_filters
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
