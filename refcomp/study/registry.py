"""Registry of compression methods that join the study by name.

A method compresses one unit of the study (a compressible layer) for one
value of its swept parameter (e.g. a bit width) and returns the decoded
result and the exact number of bits its compressed form occupies.  It works
at one of two levels:

- ``level="vector"`` (default): ``func(theta, value, **extra) -> Compressed``
  on the flat vector theta_k (1-D float32/float64, the layer's weights and,
  by default, biases concatenated in C order, seed 002 §5.1);
- ``level="layer"``: ``func(layer, value, **extra) -> CompressedLayer`` on a
  :class:`LayerView` (the layer's kind, attributes and named weight arrays
  with their shapes), for methods that need the layer's structure (filters,
  factors, channels).  A layer method may also declare ``needs=("model",)``
  and/or ``("calibration",)``: it then receives ``model=`` (the float model,
  not to be modified) and ``calibration=(x, y)`` (the study's calibration
  split) as keyword arguments.

Flat-vector methods run through the same layer interface by a small adapter
(:meth:`Method.compress_layer`), with results identical bit for bit to
calling them on theta_k.  The built-in methods are defined in
:mod:`refcomp.study.methods` (imported on first lookup); no algorithm
package knows about the study.  Registering a method once makes it
available to ``refcomp study --methods`` and ``refcomp apply`` without any
change to the study code.  A method may also declare extra parameters
(``extra_params={"name": default}``), held fixed during a study and set
with ``--param NAME=VALUE``.

The study ships each chosen :class:`Method` (its function pickled by
reference) with the compression tasks, so methods registered by the user
work in worker processes (``--workers``) and on Dask workers
(``--scheduler``) as well as in the serial run.
"""

import dataclasses
import importlib

import numpy as np

from .._errors import DTypeError, ParameterError, ShapeError
from .._validate import describe
from ..weights import CompressedWeight

__all__ = ["Method", "Compressed", "CompressedLayer", "LayerView", "register_method",
           "get_method", "method_names", "LEVELS", "NEEDS"]

#: Levels a method works at.
LEVELS = ("vector", "layer")
#: What a layer-level method may ask for besides the layer.
NEEDS = ("model", "calibration")


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
class CompressedLayer:
    """Result of a method on one layer (unit).

    weights : dict
        ``{name: value}`` for exactly the unit's weight names
        (:attr:`LayerView.names`); each value an ndarray of that weight's
        shape and dtype, or a :class:`refcomp.weights.CompressedWeight`
        whose ``weight_shape`` and ``dtype`` are those (the study's forward
        pass then runs it as a model would: its compute hook, or its
        ``dequantize()``; parameter MSE uses the decoded values).
    bits : int
        Exact size of the compressed layer in bits, counted as the method's
        ``accounting`` says.
    obj : the compressed object(s), or None.
    """
    weights: dict
    bits: int
    obj: object = None


@dataclasses.dataclass(frozen=True, eq=False)
class LayerView:
    """What a layer-level method sees of one compressible layer.

    path : str
        Model path (``"3"``, ``"2/0"`` inside a residual block).
    kind, name, label : str
        Layer kind (``"conv2d"``...), layer name, study label (``"CONV 2"``).
    attrs : dict
        The layer's attributes (a copy).
    weights : dict
        ``{name: ndarray}`` of every weight of the layer (read-only arrays).
    names : tuple of str
        The weights to compress, in theta_k order (the biases are included
        unless the study keeps them in float).
    """
    path: str
    kind: str
    name: str
    label: str
    attrs: dict
    weights: dict
    names: tuple

    @property
    def shapes(self):
        """``{name: shape}`` of the weights to compress."""
        return {n: self.weights[n].shape for n in self.names}

    @property
    def dtype(self):
        """The dtype of the weights to compress."""
        return self.weights[self.names[0]].dtype

    def theta(self):
        """theta_k: the weights to compress, flattened (C order) and concatenated."""
        return np.concatenate([self.weights[n].reshape(-1) for n in self.names])

    def split(self, theta):
        """Inverse of :meth:`theta`: ``{name: array}`` (views into ``theta``)."""
        out, pos = {}, 0
        for n in self.names:
            shape = self.weights[n].shape
            size = int(np.prod(shape))
            out[n] = theta[pos:pos + size].reshape(shape)
            pos += size
        return out


@dataclasses.dataclass(frozen=True)
class Method:
    """A registered compression method.

    name : registry key used on the command line.
    label : short label for tables and plots (QU, KM...).
    param : name of the swept parameter ("bits").
    values : default values swept by the study.
    func : ``func(theta, value, **extra) -> Compressed``.
    accounting : how ``Compressed.bits`` is counted (shown in reports).
    extra_params : ``((name, default), ...)``, further parameters held fixed
        during a study (settable with ``--param NAME=VALUE``); empty for
        methods with only the swept parameter.
    level : "vector" (``func(theta, value)``) or "layer" (``func(layer, value)``).
    needs : subset of ("model", "calibration"), passed to a layer method as
        keyword arguments.
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
    extra_params: tuple = ()
    level: str = "vector"
    needs: tuple = ()

    def resolve(self, overrides=None):
        """The extra parameters' values: declared defaults updated by ``overrides``.

        Parameters
        ----------
        overrides : mapping, optional
            ``{name: value}``; each value is converted to its default's type
            (an int is accepted for a float parameter, "true"/"false" or 0/1
            for a bool one).

        Returns
        -------
        dict
            ``{name: value}`` for every declared extra parameter, in
            declaration order.

        Raises
        ------
        ParameterError
            a name the method does not declare, the swept parameter's name,
            or a value of the wrong type.
        """
        out = dict(self.extra_params)
        for k, v in (overrides or {}).items():
            if k not in out:
                if k == self.param:
                    raise ParameterError(f"{k!r} is the swept parameter of method "
                                         f"{self.name!r}, not a fixed one")
                declared = ", ".join(out) or "none"
                raise ParameterError(f"unknown parameter {k!r} for method {self.name!r} "
                                     f"(its fixed parameters: {declared})")
            out[k] = _coerce(self.name, k, out[k], v)
        return out

    def apply(self, theta, value, **extra):
        """Compress ``theta`` with the swept ``value`` and the extra parameters.

        Parameters
        ----------
        theta : ndarray
            1-D float32/float64 vector, never modified.
        value : the swept parameter's value (e.g. a bit width).
        **extra : overrides of the extra parameters (see :meth:`resolve`).

        Returns
        -------
        Compressed
            ``func(theta, value)`` for a method without extra parameters,
            else ``func(theta, value, **resolved)``.
        """
        if self.level != "vector":
            raise ParameterError(f"method {self.name!r} works on whole layers "
                                 "(level='layer'); it cannot compress a flat vector")
        kw = self.resolve(extra)
        return self.func(theta, value, **kw) if kw else self.func(theta, value)

    def compress_layer(self, layer, value, *, model=None, calibration=None, **extra):
        """Compress one layer: the interface the study uses for every method.

        Parameters
        ----------
        layer : LayerView
        value : the swept parameter's value.
        model, calibration : optional
            Passed to a layer method that declares it ``needs`` them.
        **extra : overrides of the extra parameters (see :meth:`resolve`).

        Returns
        -------
        CompressedLayer
            For a vector method, ``func(layer.theta(), value)`` with its
            decoded vector split back into the layer's weights (views, same
            bits): the adapter that keeps flat-vector methods working
            unchanged.

        Raises
        ------
        ShapeError, DTypeError
            The method returned other weights, shapes or dtypes than the
            layer's, or a size that is not a non-negative integer.
        ParameterError
            A needed model or calibration split is missing.
        """
        if self.level == "vector":
            theta = layer.theta()
            res = self.apply(theta, value, **extra)
            dec = getattr(res, "decoded", None)
            if not isinstance(dec, np.ndarray) or dec.shape != theta.shape \
                    or dec.dtype != theta.dtype:
                raise ShapeError(f"method {self.name!r} returned {describe(dec)} for theta "
                                 f"{describe(theta)}")
            return CompressedLayer(layer.split(dec), _check_bits(self.name, res.bits), res.obj)
        kw = self.resolve(extra)
        context = {"model": model, "calibration": calibration}
        for need in self.needs:
            if context[need] is None:
                raise ParameterError(f"method {self.name!r} needs the {need}; none was given")
            kw[need] = context[need]
        res = self.func(layer, value, **kw)
        if not isinstance(res, CompressedLayer):
            raise ParameterError(f"layer method {self.name!r} must return a CompressedLayer, "
                                 f"got {type(res).__name__}")
        _check_layer_weights(self.name, layer, res.weights)
        return CompressedLayer(dict(res.weights), _check_bits(self.name, res.bits), res.obj)


def _check_bits(method, bits):
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or bits < 0:
        raise ParameterError(f"method {method!r} returned a size of {bits!r} bits; expected a "
                             "non-negative integer")
    return int(bits)


def _check_layer_weights(method, layer, weights):
    if not isinstance(weights, dict) or set(weights) != set(layer.names):
        got = sorted(weights) if isinstance(weights, dict) else type(weights).__name__
        raise ShapeError(f"method {method!r} returned weights {got} for layer {layer.path} "
                         f"({layer.kind}); expected exactly {list(layer.names)}")
    for n in layer.names:
        w, ref = weights[n], layer.weights[n]
        if isinstance(w, np.ndarray):
            shape, dtype = w.shape, w.dtype
        elif isinstance(w, CompressedWeight):
            shape, dtype = tuple(w.weight_shape), np.dtype(w.dtype)
        else:
            raise DTypeError(f"method {method!r} returned a {type(w).__name__} for weight "
                             f"{n!r}; expected an ndarray or a refcomp.weights.CompressedWeight")
        if tuple(shape) != ref.shape or dtype != ref.dtype:
            raise ShapeError(f"method {method!r} returned weight {n!r} of shape {tuple(shape)} "
                             f"{dtype} for layer {layer.path}; expected {ref.shape} {ref.dtype}")


def _coerce(method, name, default, v):
    what = f"parameter {name!r} of method {method!r}"
    if isinstance(default, bool):
        if isinstance(v, str) and v.strip().lower() in ("true", "yes", "1", "false", "no", "0"):
            return v.strip().lower() in ("true", "yes", "1")
        if isinstance(v, (bool, int, np.integer)) and v in (0, 1):
            return bool(v)
        raise ParameterError(f"{what} must be true or false, got {v!r}")
    if isinstance(default, (int, np.integer)):
        if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
            return int(v)
        raise ParameterError(f"{what} must be an integer, got {v!r}")
    if isinstance(default, (float, np.floating)):
        if isinstance(v, str):
            try:
                v = float(v)
            except ValueError:
                pass
        if isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool):
            return float(v)
        raise ParameterError(f"{what} must be a number, got {v!r}")
    if isinstance(default, str):
        return str(v)
    return v


_METHODS = {}


def register_method(name, func, *, label=None, param="bits", values=tuple(range(1, 9)),
                    description="", accounting="", min_value=1, max_value=16,
                    extra_params=None, level="vector", needs=()):
    """Register a compression method under ``name`` (replacing any previous one).

    Parameters
    ----------
    name : str
        Registry key (``--methods NAME``).
    func : callable
        ``level="vector"``: receives theta_k, a 1-D float32/float64 array
        (one layer's weights, and its bias unless the study runs with
        ``biases="float"``), never modified, and one parameter value (and,
        if ``extra_params`` is given, every extra parameter as a keyword
        argument); returns :class:`Compressed` whose ``decoded`` has theta's
        shape and dtype and whose ``bits`` is the exact compressed size,
        counted as ``accounting`` says.  ``level="layer"``: receives a
        :class:`LayerView` instead of theta (and ``model=`` /
        ``calibration=`` keywords as declared in ``needs``) and returns a
        :class:`CompressedLayer`.  The study ships the method with its tasks:
        with ``--workers`` the function must be picklable by reference
        (defined with ``def`` at module level in a module the workers can
        import, not a lambda or a nested function; a clear ParameterError
        says so otherwise); with ``--scheduler`` Dask's serialisation also
        ships lambdas and ``__main__`` functions by value, while functions
        of other modules need those modules on the Dask workers.
    label : str, optional
        Short name for tables and plots (default ``name``).
    param, values : str, sequence
        The swept parameter's name and default values.  Methods with
        ``param="bits"`` sweep the study's ``--bits`` / ``--adaptive-bits``;
        others always sweep ``values`` (higher must mean more faithful: the
        greedy adaptive search starts from the largest value).
    description, accounting : str
        Shown in reports.
    min_value, max_value : int
        Accepted range of the swept parameter.
    extra_params : mapping, optional
        ``{name: default}`` of further parameters, held fixed during a study
        and set with ``--param NAME=VALUE`` (``refcomp study`` and
        ``refcomp apply``) or ``run_study(method_params=...)``; values are
        converted to the default's type (int, float, bool or str).
    level : {"vector", "layer"}
        What ``func`` receives (see above).
    needs : sequence of {"model", "calibration"}
        Layer methods only: extra inputs passed as keyword arguments.  The
        study passes the float model and its calibration split
        (``run_study(calibration=(x, y))``, ``refcomp study --calib``).

    Returns
    -------
    Method
        The registered method.

    Raises
    ------
    ParameterError
        an empty name, a non-callable ``func``, no or out-of-range
        ``values``, an extra parameter named like the swept one (or
        ``model`` / ``calibration``), an unknown ``level`` or ``needs``
        entry, or ``needs`` on a vector method.
    """
    _load_plugins()       # built-ins first, so that a user's registration replaces them
    if not isinstance(name, str) or not name or "," in name:
        raise ParameterError(f"method name must be a non-empty string without commas, got "
                             f"{name!r}")
    if not callable(func):
        raise ParameterError(f"method {name!r}: func must be callable, got {func!r}")
    values = tuple(values)
    if not values:
        raise ParameterError(f"method {name!r}: values must not be empty")
    for v in values:
        if isinstance(v, (int, float, np.integer, np.floating)) and not min_value <= v <= max_value:
            raise ParameterError(f"method {name!r}: value {param}={v} out of range "
                                 f"[{min_value}, {max_value}]")
    extra = tuple((str(k), v) for k, v in dict(extra_params or {}).items())
    for k, _ in extra:
        if k == param or not k.isidentifier() or k in NEEDS:
            raise ParameterError(f"method {name!r}: bad extra parameter name {k!r}")
    if level not in LEVELS:
        raise ParameterError(f"method {name!r}: level must be one of {LEVELS}, got {level!r}")
    needs = tuple(needs)
    for n in needs:
        if n not in NEEDS:
            raise ParameterError(f"method {name!r}: unknown need {n!r} (known: {NEEDS})")
    if needs and level != "layer":
        raise ParameterError(f"method {name!r}: only level='layer' methods can need "
                             f"{', '.join(needs)}")
    _METHODS[name] = Method(name, label or name, param, values, func, description,
                            accounting, min_value, max_value, extra, level, needs)
    return _METHODS[name]


def get_method(name):
    """The registered :class:`Method` called ``name``.

    Parameters
    ----------
    name : str

    Returns
    -------
    Method

    Raises
    ------
    ParameterError
        if no method of that name is registered (plug-in modules imported first).
    """
    _load_plugins()
    if name not in _METHODS:
        raise ParameterError(f"unknown method {name!r}; registered: {', '.join(method_names())}")
    return _METHODS[name]


def method_names():
    """Sorted names of every registered method (plug-in modules imported first).

    Returns
    -------
    list of str
    """
    _load_plugins()
    return sorted(_METHODS)


#: Modules that register the built-in methods when first needed.
PLUGIN_MODULES = ("refcomp.study.methods.quantize", "refcomp.study.methods.prune",
                  "refcomp.study.methods.compress", "refcomp.study.methods.layer",
                  "refcomp.study.methods.decompose", "refcomp.study.methods.integer",
                  "refcomp.study.methods.hashing", "refcomp.study.methods.spectral",
                  "refcomp.study.methods.nnc")
_loaded = []


def _load_plugins():
    if _loaded:
        return
    _loaded.append(True)
    for mod in PLUGIN_MODULES:
        importlib.import_module(mod)
