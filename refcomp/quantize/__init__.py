"""Quantizers: every one returns a :class:`Quantized`."""

from ._quantized import Quantized, narrowest_code_dtype, register_decoder
from .kmeans import kmeans
from .kmeans_optimal import kmeans_optimal
from .product import ProductQuantized, product_quantize
from .sharing import share_weights

__all__ = ["Quantized", "narrowest_code_dtype", "register_decoder"]
__all__ += ["kmeans", "kmeans_optimal", "product_quantize", "ProductQuantized", "share_weights"]
