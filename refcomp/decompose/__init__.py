"""Low-rank decompositions of layer weights, each a compressed weight type
with a factorized forward pass (docs/decompose.md).

- :func:`pca_filters` / :class:`PCAWeight`: PCA of the filters with an energy
  threshold (seed 004, Fernandez Brillet et al. §3); :func:`pca_model`,
  :func:`param_count`, :func:`network_metrics` (P, G, A, ER of its Tables
  1-3) and :func:`refit_coordinates` (the least-squares counterpart of its
  coordinate retraining, §3.2);
- :func:`svd_compress` / :class:`SVDWeight`: truncated SVD of a dense layer
  (Denton et al. 2014), two dense products;
- :func:`tucker2` / :class:`TuckerWeight`: Tucker-2 of a conv kernel (Kim et
  al. 2016), 1x1 -> kxk -> 1x1;
- :func:`cp` / :class:`CPWeight`: CP by ALS (Lebedev et al. 2015), 1x1 ->
  kx1 depthwise -> 1xk depthwise -> 1x1.

Every type stores its factors at the weight precision, reports
``stored_params()``, registers an HDF5 encoding and offers the
"reconstruct" and "factorized" forward passes with a derived
:meth:`~FactorizedWeight.error_bound`.
"""

from ._common import energy_rank
from ._factorized import FORWARDS, FactorizedWeight
from .network import decomposable_layers, network_metrics, param_count, pca_model
from .pca import PCAWeight, pca_filters
from .refit import refit_coordinates
from .svd import SVDWeight, svd_compress
from .tucker import TuckerWeight, tucker2
from .cp import CPWeight, cp

__all__ = ["energy_rank", "FORWARDS", "FactorizedWeight", "PCAWeight", "pca_filters",
           "pca_model", "param_count", "network_metrics", "decomposable_layers",
           "refit_coordinates", "SVDWeight", "svd_compress", "TuckerWeight", "tucker2",
           "CPWeight", "cp"]
