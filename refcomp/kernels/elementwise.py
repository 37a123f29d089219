"""Transcendental element-wise functions in float64 through the C library.

NumPy's ``np.exp``/``np.tanh`` dispatch to CPU-specific SIMD code whose
last-ulp results differ between machines, which an oracle cannot accept.
These kernels call the platform libm (``exp``, ``tanh``, ``log1p``) once per
element from Numba; the twins call the same libm functions through
Python's ``math`` module, so kernel and twin agree bit for bit.  glibc's
``exp`` and ``tanh`` are accurate to < 1 ulp in float64; after the single
rounding to float32 the result is the correctly rounded float32 value
except when the float64 result lies within 1 ulp of a float32 rounding
boundary (probability about 2**-28 per element).

From ``_PAR_MIN`` elements the kernels run in parallel blocks (elements are
independent: same bits for any thread count; reference LSTM, N=1000, T=8,
H=64, two threads: sigmoid+tanh 19.5 -> 13 ms, the layer 60 -> 52 ms).

Private: inputs are float64 arrays (any shape); outputs are new float64 arrays
(except ``relu_inplace``, an exact selection in the array dtype).
"""

import math

import numba
import numpy as np

__all__ = ["exp64", "tanh64", "sigmoid64", "exp64_twin", "tanh64_twin", "sigmoid64_twin",
           "relu_inplace", "relu_inplace_twin"]


@numba.njit(cache=True)
def _sigmoid_scalar(v):
    # Two-branch form: never evaluates exp of a large positive argument, so
    # there is no overflow to inf/inf; sigmoid(-0.0) = 0.5.
    if v >= 0.0:
        return 1.0 / (1.0 + math.exp(-v))
    e = math.exp(v)
    return e / (1.0 + e)


#: Largest double whose exp is finite (0x1.62e42fefa39efp+9); libm's exp
#: overflows to +inf above it.  The explicit branch gives the same result
#: compiled and interpreted (NUMBA_DISABLE_JIT=1, where CPython's math.exp
#: raises OverflowError instead of returning inf); NaN fails the test and
#: goes through exp.
_EXP_MAX_ARG = 709.782712893384


@numba.njit(cache=True, inline="always")
def _exp_scalar(v):
    return math.inf if v > _EXP_MAX_ARG else math.exp(v)


#: Elements per parallel task, and the size from which the parallel kernel
#: runs (below it a parallel launch costs more than the libm calls it shares).
_BLOCK = 8192
_PAR_MIN = 1 << 15
_EXP, _TANH, _SIGMOID = 0, 1, 2


@numba.njit(cache=True, inline="always")
def _scalar(kind, v):
    # ``kind`` is the same for a whole call: a perfectly predicted branch
    # next to a libm call.
    if kind == _EXP:
        return _exp_scalar(v)
    if kind == _TANH:
        return math.tanh(v)
    return _sigmoid_scalar(v)


@numba.njit(cache=True)
def _map_serial(kind, x, out):
    for i in range(x.size):
        out[i] = _scalar(kind, x[i])


@numba.njit(cache=True, parallel=True)
def _map_parallel(kind, x, out):
    # Elements are independent and each is one libm call: the same bits for
    # any thread count.
    n = x.size
    for t in numba.prange((n + _BLOCK - 1) // _BLOCK):
        for i in range(t * _BLOCK, min(n, (t + 1) * _BLOCK)):
            out[i] = _scalar(kind, x[i])


def _apply(kind, x):
    flat = np.ascontiguousarray(x, dtype=np.float64).reshape(-1)
    out = np.empty_like(flat)
    (_map_parallel if flat.size >= _PAR_MIN else _map_serial)(kind, flat, out)
    return out.reshape(np.shape(x))


def exp64(x):
    """exp(x) per element, float64 in and out (libm)."""
    return _apply(_EXP, x)


def tanh64(x):
    """tanh(x) per element, float64 in and out (libm)."""
    return _apply(_TANH, x)


def sigmoid64(x):
    """Logistic 1/(1+exp(-x)) per element, float64; for x < 0 computed as e/(1+e), e=exp(x)."""
    return _apply(_SIGMOID, x)


def _py_sigmoid(v):
    if v >= 0.0:
        return 1.0 / (1.0 + math.exp(-v))
    e = math.exp(v)
    return e / (1.0 + e)


def _py_map(func, x):
    flat = np.ascontiguousarray(x, dtype=np.float64).reshape(-1)
    out = np.array([func(float(v)) for v in flat], dtype=np.float64)
    return out.reshape(np.shape(x))


def _safe(func):
    def wrapped(v):
        if v != v:
            return v
        try:
            return func(v)
        except OverflowError:
            return math.inf
    return wrapped


def exp64_twin(x):
    """Python-``math`` twin of :func:`exp64`."""
    return _py_map(_safe(math.exp), x)


def tanh64_twin(x):
    """Python-``math`` twin of :func:`tanh64`."""
    return _py_map(_safe(math.tanh), x)


def sigmoid64_twin(x):
    """Python-``math`` twin of :func:`sigmoid64`."""
    return _py_map(_safe(_py_sigmoid), x)


# -- ReLU in place (precision="fast" fusion after dense / conv2d) ----------------------
@numba.njit(cache=True, parallel=True)
def _relu_inplace_kernel(flat):
    n = flat.size
    zero = flat.dtype.type(0)
    for t in numba.prange((n + 65535) // 65536):
        for i in range(t * 65536, min(n, (t + 1) * 65536)):
            v = flat[i]
            # v > 0 keeps v; NaN keeps its bits (np.maximum returns the NaN
            # operand); everything else, -0.0 included, becomes +0.0.
            flat[i] = v if (v > zero) | (v != v) else zero


def relu_inplace(y):
    """``y[...] = relu(y)`` in place, the bits of :func:`refcomp.layers.relu`.

    ``y``: float32/float64 array that the caller owns (a fresh layer output).
    C-contiguous arrays run in parallel chunks (elements are independent);
    others fall back to the twin.  Returns ``y``.
    """
    if y.flags.c_contiguous:
        _relu_inplace_kernel(y.reshape(-1))
    else:
        relu_inplace_twin(y)
    return y


def relu_inplace_twin(y):
    """NumPy twin of :func:`relu_inplace` (the two operations of ``layers.relu``)."""
    np.maximum(y, y.dtype.type(0), out=y)
    y += y.dtype.type(0)
    return y
