"""Rounding-error bounds of the arithmetic contract (FACTS.md §8) for tests.

``gamma(n, dtype) = n*u / (1 - n*u)`` with ``u`` the unit roundoff of
``dtype`` (2**-24 for float32, 2**-53 for float64).  A dot product of n
terms computed with rounding satisfies ``|fl(x.w) - x.w| <= gamma_n *
sum_i |x_i w_i|``; FACTS.md §8's acceptance rule for comparing an
implementation with a float64 reference is ``(gamma_n(dtype) +
gamma_n(float64)) * sum_i |x_i w_i|``.

:func:`dot_error_bound` is that single-layer bound for a dense or conv2d
layer.  :func:`model_error_bound` is a *derived* bound: it propagates
elementwise bounds through a whole model (see its docstring); it is what a
comparison that crosses several layers needs, since an error made in one
layer is multiplied by the weights of the next ones.
"""

import numpy as np

from .._errors import ParameterError

__all__ = ["unit_roundoff", "gamma", "dot_magnitude", "dot_error_bound", "model_error_bound"]

_U64 = 2.0 ** -53


def unit_roundoff(dtype):
    """Unit roundoff of a float dtype: 2**-(p) with p the significand bits (float64 2**-53)."""
    dtype = np.dtype(dtype)
    if dtype == np.float32:
        return 2.0 ** -24
    if dtype == np.float64:
        return _U64
    if dtype == np.float16:
        return 2.0 ** -11
    raise ParameterError(f"no unit roundoff for dtype {dtype}")


def gamma(n, dtype):
    """``gamma_n = n*u / (1 - n*u)`` (float64) for ``dtype``'s unit roundoff; needs ``n*u < 1``."""
    u = unit_roundoff(dtype)
    if not n * u < 1:
        raise ParameterError(f"gamma_{n} is undefined for {np.dtype(dtype)} (n*u >= 1)")
    return n * u / (1.0 - n * u)


def _conv_abs(x, W, attrs):
    from ..layers.conv import conv2d
    return conv2d(np.abs(x).astype(np.float64), np.abs(W).astype(np.float64), None,
                  stride=attrs["stride"], padding=attrs["padding"], dilation=attrs["dilation"],
                  groups=attrs["groups"], layout=attrs["layout"])


def dot_magnitude(kind, x, W, b=None, attrs=None):
    """``sum_i |x_i w_i| + |b|`` per output of a dense (``kind="dense"``) or conv2d layer.

    Parameters
    ----------
    kind : {"dense", "conv2d"}
    x : ndarray, the layer input (batch first)
    W, b : the layer's weight and optional bias
    attrs : dict, the conv2d attributes (stride, padding, dilation, groups, layout)

    Returns
    -------
    ndarray float64 of the layer output's shape.  Computed in float64 from
    ``|x|`` and ``|W|`` (its own rounding, relative ~n*2**-53, is far below
    the gamma factors it is multiplied by).
    """
    if kind == "dense":
        m = np.abs(np.asarray(x, np.float64)) @ np.abs(np.asarray(W, np.float64)).T
        if b is not None:
            m = m + np.abs(np.asarray(b, np.float64))
        return m
    if kind == "conv2d":
        m = _conv_abs(x, W, attrs)
        if b is not None:
            shape = [1] * m.ndim
            shape[1 if attrs["layout"] == "NCHW" else 3] = -1
            m = m + np.abs(np.asarray(b, np.float64)).reshape(shape)
        return m
    raise ParameterError(f"kind must be 'dense' or 'conv2d', got {kind!r}")


def _fan_in(kind, W, attrs):
    W = np.asarray(W)
    if kind == "dense":
        return W.shape[1]
    return int(np.prod(W.shape[1:]))


def _factor(n, dtype):
    # Two computations of the same real dot product (n products, a bias, and
    # possibly a bias that absorbed folded terms in float64 and was rounded
    # once to dtype) each make at most: one final rounding to dtype, one
    # rounding of a folded bias to dtype, and gamma_{n+2}(float64) in the
    # float64 accumulations.  gamma_{n+2}(dtype) >= 3u covers the dtype
    # roundings of both (n + 2 >= 3); 2 * gamma_{n+2}(float64) the float64
    # accumulations of both.
    return gamma(n + 2, dtype) + 2.0 * gamma(n + 2, np.float64)


def dot_error_bound(kind, x, W, b=None, attrs=None, *, dtype=None):
    """FACTS.md §8 bound on the difference of two evaluations of one dense/conv2d layer.

    ``(gamma_{n+2}(dtype) + 2 gamma_{n+2}(float64)) * (sum_i |x_i w_i| + |b|)``
    with ``n`` the fan-in: it bounds ``|y1 - y2|`` when ``y1`` and ``y2`` are
    the reference outputs (float64 accumulation, one rounding to ``dtype``)
    of two layers computing the same real function on the same input, one of
    which may carry a bias into which terms were folded in float64 and
    rounded once (what :func:`refcomp.prune.shrink` does).  The ``n + 2``
    and the doubled float64 term account for the folded bias' two extra
    roundings and for both computations' accumulations.

    Returns
    -------
    ndarray float64, shape of the layer output
    """
    dtype = np.asarray(x).dtype if dtype is None else np.dtype(dtype)
    n = _fan_in(kind, W, attrs)
    return _factor(n, dtype) * dot_magnitude(kind, x, W, b, attrs)


_LIPSCHITZ = {"relu": 1.0, "linear": 1.0, "tanh": 1.0, "sigmoid": 0.25}


def model_error_bound(model, x):
    """Derived elementwise bound on ``|g(x) - model(x)|`` for any model ``g`` that
    computes the same real function as ``model`` with the same reference
    arithmetic, up to a re-association of sums (biases that absorbed folded
    constants, removed neurons whose contributions were exact zeros or
    constants folded downstream).

    Parameters
    ----------
    model : refcomp.Model (the reference, e.g. the masked model)
    x : ndarray, input batch

    Returns
    -------
    (y, bound) : the reference output ``model(x)`` and a float64 bound of its shape.

    Derivation (every quantity elementwise, in float64; ``u`` = the model
    dtype's unit roundoff): keep a bound ``e`` on the difference between the
    two models' activations (in the reference model's coordinates: a removed
    neuron's value is the constant the other model accounts for exactly in
    real arithmetic) and propagate it layer by layer:

    * dense / conv2d with input ``a``: ``E = |W| e`` (the conv of ``e`` with
      ``|W|``), ``M = |a| |W| + |b|`` (:func:`dot_magnitude`); the exact
      outputs differ by at most ``E`` and each computed output is within its
      rounding of its exact value, so ``e' = E + K (M + E)`` with ``K`` the
      factor of :func:`dot_error_bound`;
    * relu, linear, tanh (Lipschitz 1), sigmoid (1/4): ``e' = L e + 2u (|y| +
      L e) + 4 * 2**-53 (|y| + L e)`` (both results rounded once from float64
      values within a few float64 ulps);
    * batch norm, per channel ``s = |gamma| / sqrt(var + eps)``: ``e' = s e +
      2u (|y| + s e) + 8 * 2**-53 ((|a| + e + |mean|) s + |beta|)``;
    * max pooling (1-Lipschitz in the max norm, exact): ``e' = maxpool(e)``;
    * average pooling (linear): ``e' = avgpool(e) + (2u + 2 gamma_k(float64))
      (avgpool(|a|) + avgpool(e))`` with ``k`` the window size;
    * flatten, reshape, dropout: the same rearrangement of ``e``;
    * residual block: the body propagated recursively from ``(a, e)``, then
      ``e' = e + e_body`` (scattered to the index map's channels) ``+ 2u (|y|
      + e + e_body)`` for the one rounding of each model's addition.  A
      constant moved out of a block (folded into a later bias through
      linear layers) keeps the other model within this bound because the
      reference rounds ``x + c`` once, which the ``2u |y|`` term covers.

    Softmax and recurrent layers are not supported (ParameterError).
    """
    from ..model import _forward_layer, materialize

    dtype = np.dtype(model._dtype() or np.float32)
    u = unit_roundoff(dtype)
    x = np.asarray(x)
    e = np.zeros(x.shape, np.float64)

    def walk(seq, a, e):
        for layer in seq:
            a, e = step(layer, a, e)
        return a, e

    def step(layer, a, e):
        k, at = layer.kind, layer.attrs
        y = _forward_layer(layer, a, "reference")
        ay = np.abs(y.astype(np.float64))
        if k in ("dense", "conv2d"):
            W = materialize(layer.weights["W"])
            b = layer.weights.get("b")
            b = None if b is None else materialize(b)
            if k == "dense":
                E = e @ np.abs(W.astype(np.float64)).T
            else:
                E = _conv_abs(e, W, at)
            M = dot_magnitude(k, a, W, b, at)
            K = _factor(_fan_in(k, W, at), dtype)
            return y, E + K * (M + E)
        if k == "activation":
            f = at["function"]
            if f not in _LIPSCHITZ:
                raise ParameterError(f"model_error_bound: activation {f!r} not supported")
            Le = _LIPSCHITZ[f] * e
            return y, Le + (2 * u + 4 * _U64) * (ay + Le)
        if k == "batch_norm":
            axis = 1 if (y.ndim == 4 and at["layout"] == "NCHW") or y.ndim == 2 else y.ndim - 1
            shape = [1] * y.ndim
            shape[axis] = -1
            g64 = materialize(layer.weights["gamma"]).astype(np.float64)
            v64 = materialize(layer.weights["var"]).astype(np.float64)
            s = (np.abs(g64) / np.sqrt(v64 + at["eps"])).reshape(shape)
            m = np.abs(materialize(layer.weights["mean"]).astype(np.float64)).reshape(shape)
            bt = np.abs(materialize(layer.weights["beta"]).astype(np.float64)).reshape(shape)
            se = s * e
            return y, se + 2 * u * (ay + se) + 8 * _U64 * ((np.abs(a) + e + m) * s + bt)
        if k == "max_pool2d":
            from ..layers.pooling import max_pool2d
            return y, max_pool2d(e, at["size"], stride=at["stride"], padding=at["padding"],
                                 layout=at["layout"])
        if k == "avg_pool2d":
            from ..layers.pooling import avg_pool2d
            kw = dict(stride=at["stride"], padding=at["padding"],
                      count_include_pad=at["count_include_pad"], layout=at["layout"])
            ea = avg_pool2d(e, at["size"], **kw)
            ma = avg_pool2d(np.abs(a).astype(np.float64), at["size"], **kw)
            size = at["size"] if isinstance(at["size"], (list, tuple)) else (at["size"],) * 2
            win = int(np.prod(size))
            return y, ea + (2 * u + 2 * gamma(win, np.float64)) * (ma + ea)
        if k in ("flatten", "reshape", "dropout"):
            return y, _forward_layer(layer, e, "reference")
        if k == "residual":
            fx, eb = walk(layer.layers, a, e)
            idx = layer.weights.get("index_map")
            if idx is None:
                tot = e + eb
            else:
                ch = a.ndim - 1 if (a.ndim == 4 and at["layout"] == "NHWC") else 1
                tot = e.copy()
                sl = [slice(None)] * a.ndim
                sl[ch] = np.asarray(idx)
                tot[tuple(sl)] += eb
            return y, tot + 2 * u * (ay + tot)
        raise ParameterError(f"model_error_bound: layer kind {k!r} not supported")

    y, e = walk(model.layers, x, e)
    return y, e
