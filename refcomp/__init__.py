"""refcomp: a bit-exact NumPy reference implementation of neural-network compression."""

__version__ = "0.1.0"

from ._errors import (DecodeError, DTypeError, FormatError, ParameterError,  # noqa: E402
                      RefcompError, ShapeError)
from . import convert, layers  # noqa: E402
from .model import Layer, Model  # noqa: E402
from .io.hdf5 import load, save  # noqa: E402

__all__ = ["__version__", "RefcompError", "ShapeError", "DTypeError", "FormatError",
           "DecodeError", "ParameterError", "convert", "layers", "Layer", "Model", "load", "save"]
