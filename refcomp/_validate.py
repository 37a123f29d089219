"""Boundary validation shared by every public function.

Public functions call these helpers once on entry; private kernels assume
clean input.  Nothing here ever casts: a wrong dtype is an error.
"""

import numbers

import numpy as np

from ._errors import DTypeError, ParameterError, ShapeError

__all__ = ["describe", "as_float_array", "check_ndim", "check_shape",
           "check_int", "check_choice", "check_finite", "check_same_dtype",
           "FLOAT_DTYPES"]

#: dtypes accepted by the float layers and quantizers.
FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def describe(x):
    """Short ``shape=(..) dtype=..`` text used in error messages."""
    if isinstance(x, np.ndarray):
        return f"shape={x.shape} dtype={x.dtype}"
    return f"type={type(x).__name__}"


def as_float_array(name, x, *, ndim=None, dtypes=FLOAT_DTYPES, allow_empty=True):
    """Return ``x`` as an ndarray after checking it is float32/float64.

    Lists and scalars are rejected unless they are already ndarrays: a
    silent ``np.asarray`` would pick float64 and hide a dtype mismatch.
    """
    if not isinstance(x, np.ndarray):
        raise DTypeError(f"{name} must be a numpy.ndarray, got {type(x).__name__}")
    if x.dtype not in dtypes:
        allowed = ", ".join(str(d) for d in dtypes)
        raise DTypeError(f"{name} must have dtype in ({allowed}), got {describe(x)}")
    if ndim is not None:
        check_ndim(name, x, ndim)
    if not allow_empty and x.size == 0:
        raise ShapeError(f"{name} must not be empty, got {describe(x)}")
    return x


def check_ndim(name, x, ndim):
    """Raise ShapeError unless ``x.ndim`` is ``ndim`` (an int or a tuple of ints)."""
    allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
    if x.ndim not in allowed:
        want = " or ".join(str(a) for a in allowed)
        raise ShapeError(f"{name} must have {want} dimensions, got {describe(x)}")


def check_shape(name, x, shape, *, what=""):
    """Raise ShapeError unless ``x.shape`` equals ``shape`` (None entries match anything)."""
    ok = x.ndim == len(shape) and all(s is None or s == d for s, d in zip(shape, x.shape))
    if not ok:
        want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
        extra = f" ({what})" if what else ""
        raise ShapeError(f"{name} must have shape {want}{extra}, got {describe(x)}")


def check_same_dtype(names_arrays):
    """Raise DTypeError unless every non-None array has the same dtype.

    Callers validate each array first (:func:`as_float_array`); a non-array
    that slips through still gives a DTypeError naming it, never an
    AttributeError.
    """
    items = [(n, a) for n, a in names_arrays if a is not None]
    for n, a in items:
        if not isinstance(a, np.ndarray):
            raise DTypeError(f"{n} must be a numpy.ndarray, got {type(a).__name__}")
    if not items:
        return
    ref_name, ref = items[0]
    for n, a in items[1:]:
        if a.dtype != ref.dtype:
            raise DTypeError(f"{n} has dtype {a.dtype} but {ref_name} has dtype {ref.dtype} "
                             f"({n} {describe(a)}, {ref_name} {describe(ref)}); "
                             "refcomp never mixes dtypes silently")


def check_int(name, value, *, lo=None, hi=None):
    """Return ``value`` as int after checking it is an integer in [lo, hi]."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, np.integer)):
        raise ParameterError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ParameterError(f"{name} must be in [{lo}, {hi}], got {value}")
    return value


def check_choice(name, value, choices):
    """Raise ParameterError unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ParameterError(f"{name} must be one of {sorted(choices)}, got {value!r}")
    return value


def check_finite(name, x):
    """Raise ParameterError counting the NaN/Inf elements of ``x`` if there are any."""
    bad = x.size - int(np.count_nonzero(np.isfinite(x)))
    if bad:
        raise ParameterError(f"{name} contains {bad} non-finite element(s) (NaN or Inf) "
                             f"out of {x.size}; {describe(x)}")
