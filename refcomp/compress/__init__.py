"""Deep Compression (Han, Mao & Dally, ICLR 2016) and exact size accounting.

* :func:`deep_compress` / :func:`compress_weight` (:mod:`refcomp.compress.deep`):
  magnitude pruning -> per-layer k-means sharing -> relative indices ->
  Huffman on both streams (no retraining; the index stream may use the
  cheapest universal code per layer instead, ``index_coding="universal"``);
* :class:`DeepCompressed` (:mod:`refcomp.compress.container`): the
  compressed weight, storing only the coded streams and the codebook, saved
  by :func:`refcomp.save` under the HDF5 encoding ``"deep_compressed"``;
* :func:`size_report` (:mod:`refcomp.compress.size`): per-layer bits split
  into values / index / codebook / headers, entropy bounds, and the
  compression ratio tau of seed 002 eq. (19);
* :func:`index_costs` (:mod:`refcomp.compress.index_cost`): the index bits of
  a keep-mask as a bitmap, relative indices + Huffman, universal gap codes
  and the WebGraph coding (bits per non-zero).
"""

from .container import CODINGS, INDEX_CODINGS, DeepCompressed
from .deep import DEFAULT_BITS, DEFAULT_SPARSITY, compress_weight, deep_compress
from .index_cost import index_costs
from .size import (LayerSize, SizeReport, WeightSize, entropy_bits, size_report,
                   weight_size)

__all__ = ["DeepCompressed", "CODINGS", "INDEX_CODINGS", "deep_compress", "compress_weight",
           "DEFAULT_BITS", "DEFAULT_SPARSITY", "size_report", "weight_size", "entropy_bits",
           "SizeReport", "LayerSize", "WeightSize", "index_costs"]
