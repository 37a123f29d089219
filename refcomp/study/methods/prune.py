"""Magnitude pruning registered as a study method (``refcomp study --methods magnitude``).

The swept parameter is ``keep``, the percentage of theta_k's entries kept
(higher = more faithful, like a bit width, so the adaptive greedy search
starts from the densest setting).  Imported by
:mod:`refcomp.study.registry` on first use.
"""

import numpy as np

from ...prune.magnitude import magnitude
from ..registry import Compressed, register_method

#: Percentages of entries kept, swept by default.
KEEP_VALUES = (5, 10, 20, 30, 50, 70)


def _magnitude(theta, keep):
    # sparsity (100 - keep) / 100 as a float; magnitude() removes exactly
    # round_half_even(sparsity * n) entries on that float's exact value, ties
    # by ascending flat index (refcomp.prune.magnitude).
    mask = magnitude(theta, sparsity=(100 - keep) / 100)
    decoded = np.where(mask, theta, theta.dtype.type(0))
    n_kept = int(np.count_nonzero(mask))
    # Kept values at the weight precision + a 1-bit-per-entry occupancy bitmap.
    bits = n_kept * theta.dtype.itemsize * 8 + theta.size
    return Compressed(decoded, bits, mask)


register_method(
    "magnitude", _magnitude, label="MP", param="keep", values=KEEP_VALUES,
    min_value=0, max_value=100,
    description="unstructured magnitude pruning of theta_k (no retraining); keep = % of "
                "entries kept",
    accounting="kept values at the weight precision + |theta| bits of occupancy bitmap")
