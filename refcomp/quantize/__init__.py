"""Quantizers: every one returns a :class:`Quantized`."""

from ._quantized import Quantized, narrowest_code_dtype, register_decoder

__all__ = ["Quantized", "narrowest_code_dtype", "register_decoder"]
