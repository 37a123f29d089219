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


def _fork_safe_threading_layer():
    """Make Numba pick a threading layer that survives ``fork()``.

    Numba's default order prefers GNU OpenMP over the workqueue layer, and a
    process that forks after an OpenMP launch (a plain ``multiprocessing.Pool``
    on Linux) has children that die with "fork() called from a process already
    using GNU OpenMP, this is unsafe" while ``Pool.map`` waits forever.
    Numba's ``forksafe`` selection takes TBB when it is installed (thread-
    and fork-safe), else OpenMP unless it is GNU's, else the workqueue layer
    (fork-safe; not for concurrent launches from several Python threads; see
    the README, "Reliability").  Results do not depend on the layer: every
    refcomp kernel computes independent elements or reduces in a fixed order.
    A layer the user chose (NUMBA_THREADING_LAYER or numba.config) is kept;
    nothing changes once Numba's threads are running.
    """
    import sys
    if "numba" not in sys.modules:
        _os.environ.setdefault("NUMBA_THREADING_LAYER", "forksafe")
        return
    from numba.core import config
    from numba.np.ufunc import parallel
    if (config.THREADING_LAYER == "default" and "NUMBA_THREADING_LAYER" not in _os.environ
            and not getattr(parallel, "_is_initialized", False)):
        config.THREADING_LAYER = "forksafe"


_fork_safe_threading_layer()

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
