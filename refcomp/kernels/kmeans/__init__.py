"""Numba kernels of the k-means family, each with a twin of identical bits.

One module per concern, each kernel next to its plain-Python/NumPy twin:

- :mod:`._exact`: exact superaccumulator sums (fixed-point int64 limbs):
  ``exact_layout``, ``block_prefix``, cell sums and their rounding to
  float64, and ``merge_distinct`` (the sorted distinct values with their
  counts on which every sum is taken).  A centroid is
  ``fl64(exact_sum / count)``, the exact sum rounded once to float64.
- :mod:`._lloyd`: the Lloyd and Hartigan iterations on those values, with
  ``boundaries``, ``cell_means``, ``cell_codes``, ``kmeanspp`` and ``sse``.
- :mod:`._optimal` (:mod:`._optimal_cost`, :mod:`._optimal_rows`,
  :mod:`._jit`): globally optimal 1-D k-means by dynamic programming,
  rows by divide and conquer and SMAWK.
- :mod:`._vq`: vector quantization of product quantization
  (``vq_assign``, ``vq_means``).

Imports flow one way: ``_lloyd`` and ``_vq`` import ``_exact``;
``_optimal`` imports ``_optimal_rows``, which imports ``_optimal_cost``,
all three ``_jit``; nothing imports back, and this package only
re-exports.  ``from refcomp.kernels import kmeans as K`` then ``K.lloyd``,
``K.optimal_dp``, ``K.vq_assign``, ``K.exact_layout``... as before the
split; the few private names below the public ones are used by the tests.

Private package: inputs are validated, finite, contiguous float64/int64.
"""

from ._exact import (BLOCK, block_prefix, block_prefix_twin, exact_layout, exact_layout_twin,
                     merge_distinct, merge_distinct_twin)
from ._lloyd import (boundaries, cell_codes, cell_codes_twin, cell_means, hartigan, hartigan_twin,
                     kmeanspp, kmeanspp_twin, lloyd, lloyd_twin, sse, sse_twin)
from ._optimal import optimal_dp, optimal_dp_twin
from ._vq import vq_assign, vq_assign_twin, vq_means, vq_means_twin

# Private kernels checked directly by tests/test_kmeans_optimal.py.
from ._optimal_cost import _dp_cost, _dp_prefix_nb  # noqa: F401
from ._optimal_rows import _dc_row_nb, _smawk_rows, _smawk_rows_nb  # noqa: F401
from ._optimal import (_pack_row, _pack_row_nb, _packed_arg, _packed_arg_nb,  # noqa: F401
                       _popcount, _popcount_nb)

__all__ = ["exact_layout", "exact_layout_twin", "block_prefix", "block_prefix_twin",
           "merge_distinct", "merge_distinct_twin", "boundaries", "lloyd", "lloyd_twin",
           "sse", "sse_twin", "hartigan", "hartigan_twin", "optimal_dp", "optimal_dp_twin",
           "cell_means", "cell_codes", "cell_codes_twin", "kmeanspp", "kmeanspp_twin",
           "vq_assign", "vq_assign_twin", "vq_means", "vq_means_twin",
           "BLOCK"]
