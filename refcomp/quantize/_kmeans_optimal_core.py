"""The optimal 1-D k-means codebook, shared by both k-means quantizers.

:func:`refcomp.quantize.kmeans_optimal` returns it as its result and
:func:`refcomp.quantize.kmeans` starts from it (``init="optimal"``); both
import this module, neither the other.  See
:func:`refcomp.quantize.kmeans_optimal` for the DP, its cost and memory.
``MAX_TABLE`` is read here (and re-exported by
:mod:`refcomp.quantize.kmeans_optimal`): set it on this module.
"""

import numpy as np

from .._errors import ParameterError
from ..kernels import kmeans as K

#: Largest k·m (clusters × distinct values) accepted.  The back-pointer table
#: takes 2 bits per entry (monotone argmins, see Notes of
#: :func:`refcomp.quantize.kmeans_optimal`),
#: so the cap is a memory budget of 2**33 bits = 1 GiB for the table.
MAX_TABLE = 1 << 32


def _solve(d, k):
    """(k_eff, bnd, centroids float64 of the data dtype, dp_cost)."""
    m = d.u.size
    k_eff = min(k, m)
    if k_eff * m > MAX_TABLE:
        raise ParameterError(f"kmeans_optimal: k·m = {k_eff}·{m} exceeds {MAX_TABLE} "
                             "(back-pointer table memory, 1 GiB at 2 bits per entry); "
                             "use kmeans() for this size")
    # Centre on a data value (the median distinct value) so that prefix sums
    # of y and y² stay small; for float32 data in float64 the subtraction is
    # exact unless the exponents differ by more than 29.
    y = d.u - d.u[m // 2]
    starts, dp_cost = K.optimal_dp(y, d.cnt, d.ccum, k_eff)
    bnd = np.append(starts, m).astype(np.int64)
    emin, _, P = d.layout()
    c = K.cell_means(d.u, d.cnt, d.ccum, bnd, np.zeros(k_eff), d.to32, emin, P)
    return k_eff, bnd, c, float(dp_cost)


def optimal_codebook(d, k):
    """Centroids (float64) of the optimal clustering of prepared data ``d``."""
    return _solve(d, k)[2]

