"""Compressed weights: the protocol every stored weight type follows, and the
registry from encoding name to type.

This package sits below :mod:`refcomp.layers`, :mod:`refcomp.model`,
:mod:`refcomp.io` and every algorithm package (see ``docs/ARCHITECTURE.md``):
the forward pass and the file format use compressed weights only through
:class:`CompressedWeight`, and the concrete types (``Quantized``,
``Masked``, ``CSR``/``CSC``, ``ProductQuantized``, ``ResidualQuantized``,
``DeepCompressed``...) subclass it in their own modules and register their
encoding with :func:`register_encoding`.
"""

from ._protocol import CompressedWeight, is_weight, materialize
from ._registry import (encoding_class, encoding_reader, register_encoding,
                        registered_encodings, unregister_encoding)

__all__ = ["CompressedWeight", "materialize", "is_weight", "register_encoding",
           "unregister_encoding", "encoding_class", "encoding_reader", "registered_encodings"]
