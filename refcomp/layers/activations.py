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

__all__ = ["relu", "sigmoid", "hard_sigmoid", "tanh", "softmax", "linear", "ACTIVATIONS",
           "apply_activation"]


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


def hard_sigmoid(x, *, variant="keras3", precision="reference"):
    """Piecewise-linear sigmoid; two published definitions (FACTS.md §1.3).

    variant="keras3" (default): 0 if x <= -3, 1 if x >= 3, else x/6 + 1/2.
        This is Keras 3's ``hard_sigmoid`` and PyTorch's ``Hardsigmoid``;
        it is the default because both current frameworks use it.
    variant="keras2": 0 if x < -2.5, 1 if x > 2.5, else 0.2*x + 0.5
        (Keras 2.x TF backend; ONNX ``HardSigmoid`` default alpha=0.2, beta=0.5).

    Reference: the linear piece in float64 (x/6 is a correctly rounded
    division, 0.2*x uses the float64 constant 0.2), then clipped, then one
    rounding to the input dtype.  NaN -> NaN.
    """
    check_precision(precision)
    as_float_array("x", x)
    check_choice("variant", variant, ("keras3", "keras2"))
    dt = np.float64 if precision == "reference" else x.dtype.type
    v = x.astype(dt)
    if variant == "keras3":
        y = v / dt(6) + dt(0.5)
        y = np.where(v <= -3, dt(0), np.where(v >= 3, dt(1), y))
    else:
        y = dt(0.2) * v + dt(0.5)
        y = np.where(v < -2.5, dt(0), np.where(v > 2.5, dt(1), y))
    return y.astype(x.dtype)


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
               "softmax": softmax, "linear": linear}


def apply_activation(name, x, *, precision="reference", **options):
    """Apply the activation called ``name`` (a key of :data:`ACTIVATIONS`)."""
    check_choice("activation", name, ACTIVATIONS)
    return ACTIVATIONS[name](x, precision=precision, **options)
