"""Sparse weight storage and kernels (Deep Compression storage stage).

* :class:`CSR` / :class:`CSC` (:mod:`refcomp.sparse.csr`): compressed sparse
  row/column weights, usable as Model weights and saved by ``refcomp.save``
  under the HDF5 encodings "csr" / "csc";
* :func:`encode_relative` / :func:`decode_relative`
  (:mod:`refcomp.sparse.relative`): Han et al. 2016 relative indices with
  filler zeros, variants "reserved" (default) and "fig2";
* :func:`spmv`, :func:`spmm`, :func:`linear`, :func:`conv2d`
  (:mod:`refcomp.sparse.ops`): deterministic float64-accumulated products
  (Numba kernels in :mod:`refcomp.kernels.sparse`, with NumPy twins).
"""

from .csr import CSC, CSR, from_masked
from .ops import conv2d, linear, spmm, spmv
from .relative import (DEFAULT_VARIANT, VARIANTS, RelativeIndex, decode_relative,
                       default_index_bits, encode_relative)

__all__ = ["CSR", "CSC", "from_masked", "spmv", "spmm", "linear", "conv2d",
           "RelativeIndex", "encode_relative", "decode_relative", "default_index_bits",
           "VARIANTS", "DEFAULT_VARIANT"]
