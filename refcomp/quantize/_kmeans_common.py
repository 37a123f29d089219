"""What the 1-D k-means quantizers share: prepared data and the result.

:func:`refcomp.quantize.kmeans` and :func:`refcomp.quantize.kmeans_optimal`
both sort the data once into distinct values with counts (:class:`_Data`),
take (k, bits) by :func:`resolve_k` and build their :class:`Quantized` from
centroids and contiguous cells by :func:`codebook_result`.  Both import
this module, neither the other.  ``MAX_BITS`` and :func:`check_rng` are
also used by product, residual quantization and weight sharing (through
:mod:`refcomp.quantize.kmeans`, which re-exports them).
"""

import os
import threading

import numpy as np

from .._errors import ParameterError
from .._validate import check_int
from ..kernels import kmeans as K
from ._quantized import Quantized, narrowest_code_dtype
from ._scalar_common import finite_range, float_input

MAX_BITS = 16


class _Data:
    """Sorted distinct values of a float array with their multiplicities."""

    __slots__ = ("u", "cnt", "ccum", "flat", "n", "to32", "dtype", "shape", "_layout")

    def __init__(self, name, w):
        float_input(name, w)
        n = w.size
        if n >= 1 << 32:
            raise ParameterError(f"{name} has {n} elements; at most 2**32 - 1 are supported")
        self.flat = np.ascontiguousarray(w).reshape(-1)
        a, b = _sorted_halves(self.flat)
        # NaN sorts last and ±inf at the ends: finite extremes mean finite data.
        ends = (a[0], a[-1]) + ((b[0], b[-1]) if b.size else ())
        if not np.all(np.isfinite(ends)):
            finite_range(name, w)             # raises with the count of NaN/Inf
        if w.dtype == np.float64 and max(abs(float(e)) for e in ends) * n >= 2.0 ** 1020:
            raise ParameterError(f"{name}: max|w|·size reaches 2**1020; cell sums would overflow")
        # Distinct values (float64, -0.0 mapped to +0.0: -0.0 == 0.0 is one value)
        # with their counts, merged from the two sorted halves.
        self.u, self.cnt, self.ccum = K.merge_distinct(a, b)
        self.n, self.to32 = n, w.dtype == np.float32
        self.dtype, self.shape = w.dtype, w.shape
        self._layout = None

    def layout(self):
        """(emin, n_limbs, block prefix sums) for exact cell sums, computed once."""
        if self._layout is None:
            emin, n_limbs = K.exact_layout(self.u)
            self._layout = (emin, n_limbs, K.block_prefix(self.u, self.cnt, emin, n_limbs))
        return self._layout

    def to_dtype_values(self, c):
        """float64 values rounded (RNE) to the data dtype, back in float64."""
        return np.asarray(c, dtype=np.float64).astype(self.dtype).astype(np.float64)


_SPLIT_MIN = 1 << 17          # below this one sort is cheaper than two threads


def _sorted_halves(flat):
    """The two halves of ``flat`` each sorted by ``np.sort`` (in the input dtype:
    exact, faster for float32), the second in a helper thread (NumPy releases
    the GIL while sorting); small arrays give ``(np.sort(flat), empty)``.
    Only the multiset of values matters downstream, so the split changes no bit.
    """
    if flat.size < _SPLIT_MIN or (os.cpu_count() or 1) < 2:
        return np.sort(flat), flat[:0]
    h = flat.size // 2
    out = []
    t = threading.Thread(target=lambda: out.append(np.sort(flat[h:])))
    t.start()
    a = np.sort(flat[:h])
    t.join()
    return a, out[0]


def resolve_k(k, bits):
    """(k, bits) from either or both; bits defaults to ceil(log2 k) (at least 1)."""
    if k is None and bits is None:
        raise ParameterError("give k (number of centroids) or bits (k = 2**bits)")
    if bits is not None:
        bits = check_int("bits", bits, lo=1, hi=MAX_BITS)
    if k is None:
        return 1 << bits, bits
    k = check_int("k", k, lo=1, hi=1 << MAX_BITS)
    if bits is None:
        return k, max(1, (k - 1).bit_length())
    if k > 1 << bits:
        raise ParameterError(f"k={k} needs more than bits={bits} (at most {1 << bits} codes)")
    return k, bits


def check_rng(rng, why):
    if not isinstance(rng, np.random.Generator):
        raise ParameterError(f"{why} needs rng=numpy.random.Generator, got {type(rng).__name__}")
    return rng


def codebook_result(d, c, bnd, *, bits, method, params, info):
    """Quantized from centroids ``c`` (float64) and contiguous cells ``bnd``."""
    k = c.size
    info = dict(info)
    info["sse"] = float(K.sse(d.u, d.cnt, c, bnd))
    info["n_empty"] = int(np.count_nonzero(np.diff(d.ccum[bnd]) == 0))
    # first value of each cell (+inf for an empty cell at the top), without
    # copying u (np.append would copy all distinct values: ~1 ms at 1M)
    first = bnd[:-1]
    starts = np.full(first.size, np.inf)
    inside = first < d.u.size
    starts[inside] = d.u[first[inside]]
    code_dtype = narrowest_code_dtype(0, max(k - 1, 0))
    codes = K.cell_codes(d.flat, starts, code_dtype)
    if np.any(np.diff(c) < 0):
        # Only Hartigan can leave an empty cell's old centroid out of order.
        order = np.argsort(c, kind="stable")
        rank = np.empty(k, np.int64)
        rank[order] = np.arange(k)
        c, codes = c[order], rank[codes].astype(code_dtype)
    codes = codes.reshape(d.shape)
    params = dict(params, codebook=c.astype(d.dtype))
    return Quantized(codes, bits=bits, method=method, decoder="codebook", params=params,
                     dtype=d.dtype, info=info)
