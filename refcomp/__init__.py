"""refcomp: a bit-exact NumPy reference implementation of neural-network compression."""

__version__ = "0.1.0"

from ._errors import (DecodeError, DTypeError, FormatError, ParameterError,  # noqa: E402
                      RefcompError, ShapeError)

__all__ = ["__version__", "RefcompError", "ShapeError", "DTypeError", "FormatError",
           "DecodeError", "ParameterError"]
