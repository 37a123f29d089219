"""Shared helpers of refcomp.prune (private)."""

import numbers
from fractions import Fraction

import numpy as np

from .._errors import ParameterError
from ._kernels import fsum_rows as _fsum_rows

__all__ = ["check_sparsity", "count_to_prune", "rank_prune", "fsum_rows"]


def check_sparsity(sparsity, name="sparsity"):
    """A real number in [0, 1] (not bool, not NaN) -> float."""
    if isinstance(sparsity, bool) or not isinstance(sparsity, numbers.Real):
        raise ParameterError(f"{name} must be a real number in [0, 1], got {sparsity!r}")
    s = float(sparsity)
    if not 0.0 <= s <= 1.0:  # also rejects NaN
        raise ParameterError(f"{name} must be in [0, 1], got {sparsity!r}")
    return s


def count_to_prune(sparsity, n):
    """round_half_even(sparsity * n), computed exactly (the float's exact value)."""
    return int(round(Fraction(sparsity) * n))


def rank_prune(scores, n_prune):
    """Keep-mask over a 1-D float64 score array removing the ``n_prune`` lowest.

    Order: ascending score, ties by ascending position (stable sort), so
    among equal scores the lower index is removed first.
    """
    keep = np.ones(scores.shape[0], dtype=bool)
    if n_prune:
        order = np.argsort(scores, kind="stable")
        keep[order[:n_prune]] = False
    return keep


def fsum_rows(a):
    """Exactly rounded float64 sum of each row of a 2-D float64 array (the
    Numba kernel of :mod:`._kernels`, bit-identical to ``math.fsum`` per row)."""
    return _fsum_rows(a)
