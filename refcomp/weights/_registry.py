"""Registry from encoding name (the HDF5 ``encoding`` attribute) to weight class.

A compressed weight type registers itself, in its own module, with one line::

    register_encoding("masked", Masked)

The HDF5 reader (:mod:`refcomp.io`) looks the class up by the name a file
declares and calls its ``from_hdf5``; it imports no algorithm package.  The
types refcomp ships are listed in :data:`BUILTIN_MODULES` (name -> defining
module): the module is imported on first lookup, so ``refcomp.load`` reads
every built-in encoding without the caller importing, say,
``refcomp.compress`` first, and ``import refcomp`` stays light.
"""

import importlib

from .._errors import ParameterError
from ._protocol import CompressedWeight, protocol_problems

__all__ = ["register_encoding", "unregister_encoding", "encoding_class", "encoding_reader",
           "registered_encodings", "BUILTIN_MODULES"]

#: Encodings of refcomp's own types -> the module that defines and registers them.
BUILTIN_MODULES = {
    "quantized": "refcomp.quantize._quantized",
    "masked": "refcomp.prune.masked",
    "csr": "refcomp.sparse.csr",
    "csc": "refcomp.sparse.csr",
    "product_quantized": "refcomp.quantize.product",
    "residual_quantized": "refcomp.quantize.residual",
    "deep_compressed": "refcomp.compress.container",
    "pca": "refcomp.decompose.pca",
    "svd": "refcomp.decompose.svd",
    "tucker2": "refcomp.decompose.tucker",
    "cp": "refcomp.decompose.cp",
    "integer_linear": "refcomp.integer.weight",
    "xnor_packed": "refcomp.integer.xnor",
    "hashed": "refcomp.hashing.weight",
    "nnc": "refcomp.quantize.nnc_weight",
}

#: name -> registered class (or legacy reader function)
_REGISTRY = {}
#: names reserved by "raw" datasets and the container format itself
_RESERVED = ("raw",)


def _same(a, b):
    """Two registrations of the same definition (e.g. a module imported twice)."""
    return a is b or (getattr(a, "__module__", None) == getattr(b, "__module__", 0)
                      and getattr(a, "__qualname__", None) == getattr(b, "__qualname__", 0))


def register_encoding(name, cls, *, replace=False):
    """Register the weight class stored under ``encoding == name``.

    Parameters
    ----------
    name : str
        Value of the ``encoding`` attribute its ``to_hdf5`` writes
        (non-empty, no "/"; "raw" is reserved for plain datasets).
    cls : type or callable
        A class implementing the protocol of
        :class:`refcomp.weights.CompressedWeight`: ``dequantize``,
        ``stored_bits``, ``to_hdf5`` and the classmethod ``from_hdf5``
        (attributes ``shape``, ``dtype``; optional hooks ``linear``,
        ``conv2d``).  A class that implements the methods without
        subclassing is registered as a virtual subclass, so the layers
        recognise it.  For compatibility with refcomp 0.1, a plain reader
        function ``reader(h5py.Group) -> weight`` is also accepted (it
        gets no protocol check).
    replace : bool
        Allow replacing an existing registration of ``name`` (including a
        built-in one).  Re-registering the same definition (same module
        and qualified name, e.g. a reloaded module) is always allowed.

    Returns
    -------
    cls
        Unchanged, so the function also serves as a decorator helper.

    Raises
    ------
    ParameterError
        ``name`` is not a valid encoding name, is already registered to
        another class (or is a built-in encoding of refcomp) and
        ``replace`` is false, or ``cls`` lacks a protocol method (the
        message lists which).
    """
    if not isinstance(name, str) or not name or "/" in name or name != name.strip():
        raise ParameterError(f"encoding name must be a non-empty string without '/' or "
                             f"surrounding spaces, got {name!r}")
    if name in _RESERVED:
        raise ParameterError(f"encoding name {name!r} is reserved for plain datasets")
    if isinstance(cls, type):
        missing = protocol_problems(cls)
        if missing:
            raise ParameterError(
                f"cannot register {cls.__module__}.{cls.__qualname__} as encoding {name!r}: "
                f"it lacks the protocol method(s) {', '.join(missing)} of "
                f"refcomp.weights.CompressedWeight")
        if not issubclass(cls, CompressedWeight):
            CompressedWeight.register(cls)
    elif not callable(cls):
        raise ParameterError(f"encoding {name!r}: expected a CompressedWeight class (or a "
                             f"reader function), got {type(cls).__name__}")
    old = _REGISTRY.get(name)
    home = BUILTIN_MODULES.get(name)
    if (old is not None and not _same(old, cls) and home is not None
            and getattr(cls, "__module__", None) == home):
        return cls      # a built-in module imported after the user replaced its encoding
    if not replace:
        if old is not None and not _same(old, cls) and home is not None \
                and getattr(old, "__module__", None) == home:
            raise ParameterError(f"encoding {name!r} is a built-in encoding of refcomp "
                                 f"(defined in {home}); pass replace=True to replace it")
        if old is not None and not _same(old, cls):
            raise ParameterError(
                f"encoding {name!r} is already registered to "
                f"{getattr(old, '__module__', '?')}.{getattr(old, '__qualname__', old)!s}; "
                "pass replace=True to replace it")
        if old is None and home is not None and getattr(cls, "__module__", None) != home:
            raise ParameterError(f"encoding {name!r} is a built-in encoding of refcomp "
                                 f"(defined in {home}); pass replace=True to replace it")
    _REGISTRY[name] = cls
    return cls


def unregister_encoding(name):
    """Remove a registration made with :func:`register_encoding` (no error if absent).

    A built-in encoding comes back on its next lookup (its module registers
    it again only when first imported, so an unregistered built-in stays
    unregistered for the rest of the process).
    """
    _REGISTRY.pop(name, None)


def encoding_class(name):
    """The class (or legacy reader) registered for ``name``, or None.

    Imports the defining module of a built-in encoding on first use.
    """
    if name not in _REGISTRY and name in BUILTIN_MODULES:
        importlib.import_module(BUILTIN_MODULES[name])
    return _REGISTRY.get(name)


def encoding_reader(name):
    """``reader(group) -> weight`` for ``name`` (the class's ``from_hdf5``), or None."""
    cls = encoding_class(name)
    if cls is None:
        return None
    return cls.from_hdf5 if isinstance(cls, type) else cls


def registered_encodings():
    """Sorted names of every registered encoding, built-in ones included."""
    return sorted(set(_REGISTRY) | set(BUILTIN_MODULES))
