"""Registry of compression methods that join the study by name.

A method maps a flat parameter vector theta_k (1-D float32/float64, the
layer's weights and, by default, biases concatenated) and one parameter
value (e.g. a bit width) to its decoded approximation and the exact number
of bits its compressed form occupies.  Registering a method once makes it
available to ``refcomp study --methods`` and ``refcomp apply`` without any
change to the study code.
"""

import dataclasses
import importlib

import numpy as np

from .._errors import ParameterError

__all__ = ["Method", "Compressed", "register_method", "get_method", "method_names"]


@dataclasses.dataclass(frozen=True)
class Compressed:
    """Result of a method on one vector.

    decoded : ndarray, same shape and dtype as the input.
    bits : int, exact size of the compressed representation in bits
        (payload + decoding rule, as documented by the method).
    obj : the compressed object (e.g. a Quantized), or None.
    """
    decoded: np.ndarray
    bits: int
    obj: object = None


@dataclasses.dataclass(frozen=True)
class Method:
    """A registered compression method.

    name : registry key used on the command line.
    label : short label for tables and plots (QU, KM...).
    param : name of the swept parameter ("bits").
    values : default values swept by the study.
    func : ``func(theta, value) -> Compressed``.
    accounting : how ``Compressed.bits`` is counted (shown in reports).
    """
    name: str
    label: str
    param: str
    values: tuple
    func: object
    description: str
    accounting: str
    min_value: int = 1
    max_value: int = 16


_METHODS = {}


def register_method(name, func, *, label=None, param="bits", values=tuple(range(1, 9)),
                    description="", accounting="", min_value=1, max_value=16):
    """Register ``func(theta, value) -> Compressed`` under ``name`` (replacing any previous one).

    func : receives theta_k, a 1-D float32/float64 array (one layer's weights,
        and its bias unless the study runs with ``biases="float"``), never
        modified, and one parameter value; returns :class:`Compressed` whose
        ``decoded`` has theta's shape and dtype and whose ``bits`` is the
        exact compressed size, counted as ``accounting`` says.
    label : short name for tables and plots (default ``name``).
    param, values : the swept parameter's name and default values.  Methods
        with ``param="bits"`` sweep the study's ``--bits`` / ``--adaptive-bits``;
        others always sweep ``values`` (higher must mean more faithful: the
        greedy adaptive search starts from the largest value).
    min_value, max_value : accepted range of a bit-width parameter.
    """
    _METHODS[name] = Method(name, label or name, param, tuple(values), func, description,
                            accounting, min_value, max_value)
    return _METHODS[name]


def get_method(name):
    """The registered :class:`Method` called ``name`` (ParameterError if unknown)."""
    _load_plugins()
    if name not in _METHODS:
        raise ParameterError(f"unknown method {name!r}; registered: {', '.join(method_names())}")
    return _METHODS[name]


def method_names():
    """Sorted names of every registered method (plug-in modules imported first)."""
    _load_plugins()
    return sorted(_METHODS)


#: Modules that register further methods when imported (optional, later issues).
PLUGIN_MODULES = ("refcomp.quantize.study_methods", "refcomp.prune.study_methods",
                  "refcomp.compress.study_methods")
_loaded = []


def _load_plugins():
    if _loaded:
        return
    _loaded.append(True)
    for mod in PLUGIN_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if not (exc.name and mod.startswith(exc.name)):
                raise


# -- built-in methods ------------------------------------------------------------------
def _value_bits(dtype):
    return np.dtype(dtype).itemsize * 8


def _uniform(theta, bits):
    from ..quantize.uniform import uniform
    q = uniform(theta, bits)
    # payload: |theta| codes of q.bits bits; rule: theta_min and Delta, each
    # counted at the weights' precision (32 bits for float32).
    return Compressed(q.dequantize(), theta.size * q.bits + 2 * _value_bits(theta.dtype), q)


def _kmeans(theta, bits):
    from ..quantize.kmeans import kmeans
    q = kmeans(theta, bits=bits)
    k = int(np.asarray(q.codebook).size)
    return Compressed(q.dequantize(), theta.size * q.bits + k * _value_bits(theta.dtype), q)


register_method(
    "uniform", _uniform, label="QU",
    description="uniform quantizer, Resmerita et al. eq. (15)-(16), grid='range'",
    accounting="|theta|*b bits of codes + theta_min and Delta at the weight precision")
register_method(
    "kmeans", _kmeans, label="KM",
    description="Lloyd k-means quantizer, Resmerita et al. eq. (17)-(18), linear init",
    accounting="|theta|*b bits of codes + codebook (k values at the weight precision)")
