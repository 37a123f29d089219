"""Low-rank decompositions of layer weights, each a compressed weight type
with a factorized forward pass (docs/decompose.md).

- :func:`pca_filters` / :class:`PCAWeight`: PCA of the filters with an energy
  threshold (seed 004, Fernandez Brillet et al. §3); :func:`pca_model`,
  :func:`param_count`, :func:`network_metrics` (P, G, A, ER of its Tables
  1-3) and :func:`refit_coordinates` (the least-squares counterpart of its
  coordinate retraining, §3.2);
"""

from ._common import energy_rank
from ._factorized import FORWARDS, FactorizedWeight
from .network import decomposable_layers, network_metrics, param_count, pca_model
from .pca import PCAWeight, pca_filters
from .refit import refit_coordinates

__all__ = ["energy_rank", "FORWARDS", "FactorizedWeight", "PCAWeight", "pca_filters",
           "pca_model", "param_count", "network_metrics", "decomposable_layers",
           "refit_coordinates"]
