"""Registry of compression methods that join the study by name.

A method maps a flat parameter vector theta_k (1-D float32/float64, the
layer's weights and, by default, biases concatenated) and one parameter
value (e.g. a bit width) to its decoded approximation and the exact number
of bits its compressed form occupies.  Registering a method once makes it
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
    func : ``func(theta, value, **extra) -> Compressed``.
    accounting : how ``Compressed.bits`` is counted (shown in reports).
    extra_params : ``((name, default), ...)``, further parameters held fixed
        during a study (settable with ``--param NAME=VALUE``); empty for
        methods with only the swept parameter.
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
        kw = self.resolve(extra)
        return self.func(theta, value, **kw) if kw else self.func(theta, value)


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
                    extra_params=None):
    """Register ``func(theta, value) -> Compressed`` under ``name`` (replacing any previous one).

    Parameters
    ----------
    name : str
        Registry key (``--methods NAME``).
    func : callable
        Receives theta_k, a 1-D float32/float64 array (one layer's weights,
        and its bias unless the study runs with ``biases="float"``), never
        modified, and one parameter value (and, if ``extra_params`` is given,
        every extra parameter as a keyword argument); returns
        :class:`Compressed` whose ``decoded`` has theta's shape and dtype and
        whose ``bits`` is the exact compressed size, counted as
        ``accounting`` says.  The study ships the method with its tasks:
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

    Returns
    -------
    Method
        The registered method.

    Raises
    ------
    ParameterError
        an empty name, a non-callable ``func``, no or out-of-range
        ``values``, or an extra parameter named like the swept one.
    """
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
        if k == param or not k.isidentifier():
            raise ParameterError(f"method {name!r}: bad extra parameter name {k!r}")
    _METHODS[name] = Method(name, label or name, param, values, func, description,
                            accounting, min_value, max_value, extra)
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
