"""Deep Compression registered as a study method (``refcomp study --methods deep``).

The swept parameter is the k-means ``bits`` (k = 2**bits shared values);
pruning is fixed at :data:`refcomp.compress.deep.DEFAULT_SPARSITY` (0.9)
and the relative index at 5 bits (theta_k is a flat vector: the paper's
fully-connected width).  Both streams are Huffman coded.
Imported by :mod:`refcomp.study.registry` on first use.
"""

from ...compress.deep import DEFAULT_SPARSITY, compress_weight
from ..registry import Compressed, register_method


def _deep(theta, bits):
    # compress_weight: magnitude pruning (exact count, ties to the lower index),
    # k-means (linear init) on the kept values, relative indices, coding.
    dc = compress_weight(theta, sparsity=DEFAULT_SPARSITY, bits=bits, index_bits=5,
                         huffman=True)
    return Compressed(dc.dequantize(), dc.stored_bits(), dc)


register_method(
    "deep", _deep, label="DC", values=tuple(range(1, 9)),
    description="Deep Compression (Han et al. 2016) without retraining: prune 90% by "
                "magnitude, k-means on the kept values, 5-bit relative indices, Huffman",
    accounting="value + index stream bytes (Huffman headers and padding included) + "
               "codebook (k values at the weight precision)")
