"""File input/output: the refcomp HDF5 model format and plain-array files.

:func:`read_any` loads a model from a file of any supported format
(:mod:`refcomp.io.auto`).

The framework importers are submodules loaded on first access, so that
``import refcomp`` imports neither torch nor onnx:

- :mod:`refcomp.io.keras`: Keras legacy ``.h5``, ``.keras`` and ``.weights.h5``
  (h5py and json only);
- :mod:`refcomp.io.torch`: PyTorch state dicts and ``nn.Sequential``;
- :mod:`refcomp.io.onnx`: ONNX graphs (needs the ``onnx`` package).

Resource limits of every reader (and of ``refcomp run``): :mod:`refcomp.io.limits`.

``refcomp.io.keras`` works after a plain ``import refcomp`` (module
``__getattr__``), as does ``from refcomp.io import keras``.
"""

import importlib

from . import limits
from .auto import file_kind, read_any
from .hdf5 import load, read_arrays, register_encoding, save, write_arrays

__all__ = ["load", "save", "register_encoding", "read_arrays", "write_arrays", "read_any",
           "file_kind", "limits"]

_LAZY_SUBMODULES = ("keras", "torch", "onnx")


def __getattr__(name):
    """Import the framework importer ``refcomp.io.<name>`` on first access.

    Parameters
    ----------
    name : str
        Attribute looked up on :mod:`refcomp.io` and not found.

    Returns
    -------
    module
        The submodule (then cached as an attribute of this package).

    Raises
    ------
    AttributeError
        ``name`` is not a submodule of refcomp.io.
    """
    if name in _LAZY_SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY_SUBMODULES))
