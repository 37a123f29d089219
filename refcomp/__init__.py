"""refcomp: a bit-exact NumPy reference implementation of neural-network compression."""

__version__ = "0.1.0"

import os as _os

# Thread spinning, precision="fast" only (timing: no result depends on it).
# A fast forward alternates Numba parallel kernels (im2col, scatter, pooling,
# ReLU; libgomp threads) with BLAS calls (OpenBLAS's own threads).  By
# default both pools busy-wait after each call (libgomp ~300,000 spins,
# OpenBLAS 2**28 cycles), so each steals the cores the other needs next: on
# 2 cores the fast CNN of benchmarks/bench_forward.py took 400-700 ms
# instead of ~270 ms.  Short spins keep back-to-back calls of the same pool
# cheap.  Both variables are read when the library is first loaded: they
# take effect only if refcomp is imported before NumPy (OpenBLAS) and before
# any Numba parallel call; values set by the user are kept.
_os.environ.setdefault("GOMP_SPINCOUNT", "10000")
_os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "14")

from ._errors import (DecodeError, DTypeError, FormatError,  # noqa: E402
                      MissingDependencyError, ParameterError, RefcompError,
                      ResourceLimitError, ShapeError)
from . import convert, layers  # noqa: E402
from .model import Layer, Model  # noqa: E402
from .io.hdf5 import load, save  # noqa: E402

#: Sub-packages imported on first attribute access (``refcomp.quantize.uniform``
#: after a plain ``import refcomp``), so that ``import refcomp`` stays light.
_LAZY_SUBPACKAGES = ("coding", "compress", "data", "decompose", "distill", "hashing", "integer",
                     "io", "kernels", "metrics", "prune", "quantize", "search", "sparse", "study",
                     "testing", "validate", "weights")


def __getattr__(name):
    if name in _LAZY_SUBPACKAGES:
        import importlib
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["__version__", "RefcompError", "ShapeError", "DTypeError", "FormatError",
           "DecodeError", "ParameterError", "MissingDependencyError", "ResourceLimitError",
           "convert", "layers",
           "Layer", "Model", "load", "save"]
