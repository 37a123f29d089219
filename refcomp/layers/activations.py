"""Activation functions.

Every function maps float32/float64 to the same dtype and shape.  In
``precision="reference"`` the value is computed in float64 (transcendentals
through the C library, see :mod:`refcomp.kernels.elementwise`) and rounded
once, half-even, to the input dtype.  ``precision="fast"`` uses NumPy in the
input dtype (machine-dependent last bits).
"""

import numpy as np

from .._validate import as_float_array, check_choice, check_int
from ..kernels.elementwise import exp64, sigmoid64, tanh64
from ._common import check_precision

__all__ = ["relu", "sigmoid", "hard_sigmoid", "tanh", "softmax", "log_softmax", "linear",
           "ACTIVATIONS", "apply_activation"]


def relu(x, *, precision="reference"):
    """max(x, 0): exact.  NaN stays NaN; -0.0 and negatives give +0.0."""
    check_precision(precision)
    as_float_array("x", x)
    y = np.maximum(x, x.dtype.type(0))      # NaN propagates; max(-0.0, 0) is -0.0 ...
    y += x.dtype.type(0)                     # ... and -0.0 + 0.0 = +0.0; other values unchanged
    return y


def linear(x, *, precision="reference"):
    """Identity (Keras "linear"); returns ``x`` itself (no copy)."""
    check_precision(precision)
    as_float_array("x", x)
    return x


def sigmoid(x, *, precision="reference"):
    """Logistic sigmoid 1 / (1 + exp(-x)).

    Reference: float64, ``1/(1+exp(-x))`` for x >= 0 and ``e/(1+e)`` with
    ``e = exp(x)`` for x < 0 (no overflow), libm exp, one rounding.
    sigmoid(+-inf) = 1 / 0; NaN -> NaN.
    """
    check_precision(precision)
    as_float_array("x", x)
    if precision == "fast":
        return (1 / (1 + np.exp(-x))).astype(x.dtype)
    return sigmoid64(x).astype(x.dtype)


def tanh(x, *, precision="reference"):
    """Hyperbolic tangent, dtype of x.

    Reference: libm ``tanh`` on the float64 value, one rounding (half-even)
    to x's dtype; tanh(+-0.0) = +-0.0, tanh(+-inf) = +-1, NaN -> NaN.
    Fast: ``np.tanh`` in x's dtype (NumPy's own, possibly SIMD, implementation).
    """
    check_precision(precision)
    as_float_array("x", x)
    if precision == "fast":
        return np.tanh(x)
    return tanh64(x).astype(x.dtype)


def hard_sigmoid(x, *, variant="keras3", alpha=0.2, beta=0.5, precision="reference"):
    """Piecewise-linear sigmoid; three published definitions (FACTS.md §1.3).

    variant="keras3" (default): 0 if x <= -3, 1 if x >= 3, else x/6 + 1/2.
        This is Keras 3's ``hard_sigmoid`` and PyTorch's ``Hardsigmoid``;
        it is the default because both current frameworks use it.
    variant="keras2": 0 if x < -2.5, 1 if x > 2.5, else 0.2*x + 0.5
        (Keras 2.x TF backend), with the float64 constant 0.2.
    variant="onnx": ONNX ``HardSigmoid``: max(0, min(1, alpha*x + beta))
        with ``alpha`` and ``beta`` first rounded (RNE) to float32, as ONNX
        attributes are float32 (defaults alpha=0.2, beta=0.5: the float32
        0.2 is 0.20000000298023224, not Keras 2's 0.2).  ``alpha`` and
        ``beta`` are used by this variant only.

    Reference: the linear piece in float64 (x/6 is a correctly rounded
    division; alpha*x a float64 product, exact for float32 x; + beta one
    float64 rounding), then clipped, then one rounding to the input dtype.
    "fast": the same in x's dtype.  NaN -> NaN.  variant="onnx" returns +0.0
    for every zero result (the sign of max(-0.0, 0) is left open by ONNX).
    """
    check_precision(precision)
    as_float_array("x", x)
    check_choice("variant", variant, ("keras3", "keras2", "onnx"))
    dt = np.float64 if precision == "reference" else x.dtype.type
    v = x.astype(dt)
    if variant == "onnx":
        a, b = _f32_param("alpha", alpha), _f32_param("beta", beta)
        t = np.dtype(dt).type
        y = t(a) * v + t(b)
        # + 0.0: a zero result is +0.0 whatever the signs (max(-0.0, 0) is unspecified)
        return (np.minimum(np.maximum(y, t(0)), t(1)) + t(0)).astype(x.dtype)
    if variant == "keras3":
        y = v / dt(6) + dt(0.5)
        y = np.where(v <= -3, dt(0), np.where(v >= 3, dt(1), y))
    else:
        y = dt(0.2) * v + dt(0.5)
        y = np.where(v < -2.5, dt(0), np.where(v > 2.5, dt(1), y))
    return y.astype(x.dtype)


def _f32_param(name, v):
    """A real attribute rounded (RNE) to float32, as a Python float (ParameterError if not real/finite)."""
    import numbers
    from .._errors import ParameterError
    if isinstance(v, bool) or not isinstance(v, (numbers.Real, np.floating)) or \
            not np.isfinite(float(v)):
        raise ParameterError(f"{name} must be a finite real number, got {v!r}")
    with np.errstate(over="ignore"):
        r = float(np.float32(v))
    if not np.isfinite(r):
        raise ParameterError(f"{name}={v!r} overflows float32")
    return r


def log_softmax(x, axis=-1, *, precision="reference"):
    """``x - max - log(sum(exp(x - max)))`` along ``axis`` (ONNX LogSoftmax, opset >= 13).

    Reference: in float64, m = max along the axis; e_j = exp(x_j - m)
    (libm); s = sequential sum of e_j from +0.0 in index order;
    y_j = (x_j - m) - log(s) (libm log); one rounding to x's dtype.  A row
    with NaN gives NaN, a row with +inf NaN.  "fast": NumPy in x's dtype.
    Any axis in [-ndim, ndim); an empty axis returns an empty copy.
    """
    import math
    check_precision(precision)
    as_float_array("x", x)
    if x.ndim == 0:
        check_int("axis", axis, lo=-1, hi=0)
        return log_softmax(x.reshape(1), precision=precision).reshape(())
    axis = check_int("axis", axis, lo=-x.ndim, hi=x.ndim - 1)
    if x.shape[axis] == 0 or x.size == 0:
        return x.copy()
    if precision == "fast":
        z = x - x.max(axis=axis, keepdims=True)
        return (z - np.log(np.exp(z).sum(axis=axis, keepdims=True))).astype(x.dtype)
    v = np.moveaxis(x.astype(np.float64), axis, -1)
    z = v - v.max(axis=-1, keepdims=True)
    e = exp64(z)
    s = np.zeros(e.shape[:-1], dtype=np.float64)
    for j in range(e.shape[-1]):
        s += e[..., j]
    logs = np.array([math.log(t) if t > 0 else (-math.inf if t == 0 else math.nan)
                     for t in s.reshape(-1).tolist()]).reshape(s.shape)
    return np.moveaxis(z - logs[..., None], -1, axis).astype(x.dtype)


def softmax(x, axis=-1, *, precision="reference"):
    """Numerically stable softmax along ``axis``.

    Reference: in float64, m = max along the axis; e_j = exp(x_j - m) (libm);
    s = sum of e_j sequentially in increasing index order from +0.0;
    y_j = e_j / s; one rounding to the input dtype.  A row containing NaN
    gives NaN; a row with +inf gives NaN (inf - inf), as in the frameworks.
    "fast": the same formula with NumPy in the input dtype (``np.exp``,
    NumPy's summation order).  A 0-d x is one row of one element (axis must
    be 0 or -1): 1.0, or NaN for NaN/inf, returned as a 0-d array.
    """
    check_precision(precision)
    as_float_array("x", x)
    if x.ndim == 0:
        # One element along the only possible axis (as torch.softmax(t0d, -1)):
        # the 1-element computation below, reshaped back to 0-d.
        check_int("axis", axis, lo=-1, hi=0)
        return softmax(x.reshape(1), precision=precision).reshape(())
    axis = check_int("axis", axis, lo=-x.ndim, hi=x.ndim - 1)
    if x.shape[axis] == 0 or x.size == 0:
        return x.copy()          # nothing to normalise (e.g. a zero-batch shape pass)
    if precision == "fast":
        e = np.exp(x - x.max(axis=axis, keepdims=True))
        return (e / e.sum(axis=axis, keepdims=True)).astype(x.dtype)
    v = np.moveaxis(x.astype(np.float64), axis, -1)
    if v.shape[-1] == 0:
        return x.copy()
    m = v.max(axis=-1, keepdims=True)
    e = exp64(v - m)
    s = np.zeros(e.shape[:-1], dtype=np.float64)
    for j in range(e.shape[-1]):
        s += e[..., j]
    y = e / s[..., None]
    return np.moveaxis(y, -1, axis).astype(x.dtype)


ACTIVATIONS = {"relu": relu, "sigmoid": sigmoid, "hard_sigmoid": hard_sigmoid, "tanh": tanh,
               "softmax": softmax, "log_softmax": log_softmax, "linear": linear}


def apply_activation(name, x, *, precision="reference", **options):
    """Apply the activation called ``name`` (a key of :data:`ACTIVATIONS`)."""
    check_choice("activation", name, ACTIVATIONS)
    return ACTIVATIONS[name](x, precision=precision, **options)
