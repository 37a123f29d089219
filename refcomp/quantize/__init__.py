"""Quantizers: every one returns a :class:`Quantized`."""

from ._quantized import Quantized, narrowest_code_dtype, register_decoder
from .kmeans import kmeans
from .kmeans_optimal import kmeans_optimal

__all__ = ["Quantized", "narrowest_code_dtype", "register_decoder"]
__all__ += ["kmeans", "kmeans_optimal"]
