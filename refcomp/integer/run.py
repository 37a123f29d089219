"""The pure integer pipeline of an integer model: float only at the input quantize and the
output dequantize.

An integer model is a :class:`refcomp.Model` made by :func:`refcomp.integer.quantize_model`
(or built by hand, or loaded from HDF5): its dense / conv2d layers hold
:class:`refcomp.integer.IntegerLinear` weights and ``model.metadata["integer"]`` records

``mode``
    the requantization mode (one of :data:`refcomp.integer.MODES`);
``act_dtype``
    "int8" or "uint8";
``input`` / ``output``
    ``{"scale": float, "zero_point": int}`` of the model input and output tensors;
``add``
    ``{path: {"scale", "zero_point", "act_min", "act_max"}}`` of the output of every residual
    block's addition (with its fused ReLU clamp).

:func:`run` walks the layers on codes.  Tensor parameters flow along: max pooling, average
pooling, flatten, reshape, dropout and activations keep (scale, zero point) (TFLite requires
it); a dense / conv2d layer must receive exactly its ``in_scale`` / ``in_zero_point``.
"""

import numpy as np

from .._errors import DTypeError, FormatError, ParameterError, ShapeError
from .._validate import describe
from .add import add_q
from .pooling import avg_pool2d_q, max_pool2d_q, relu_bounds
from .requantize import (MODES, act_dtype, check_scale, check_zero_point, dequantize_codes,
                         quantize_codes)
from .weight import IntegerLinear

__all__ = ["run", "run_codes", "integer_meta"]


def integer_meta(model):
    """The validated ``metadata["integer"]`` of an integer model (FormatError otherwise)."""
    meta = getattr(model, "metadata", {}).get("integer")
    if not isinstance(meta, dict):
        raise FormatError(f"model {getattr(model, 'name', '?')!r} is not an integer model "
                          "(no metadata['integer']; make one with refcomp.integer.quantize_model)")
    try:
        mode = meta["mode"]
        if mode not in MODES:
            raise FormatError(f"integer model: unknown mode {mode!r}")
        dt = act_dtype(meta["act_dtype"], "metadata['integer']['act_dtype']")
        for k in ("input", "output"):
            check_scale(f"metadata['integer']['{k}']['scale']", meta[k]["scale"])
            check_zero_point(f"metadata['integer']['{k}']['zero_point']", meta[k]["zero_point"],
                             dt)
    except (KeyError, TypeError) as exc:
        raise FormatError(f"integer model metadata is incomplete: {exc!r}") from None
    except ParameterError as exc:
        raise FormatError(f"integer model metadata: {exc}") from None
    return meta


def run(model, x):
    """Integer-only forward pass of an integer model on float32 input.

    Parameters
    ----------
    model : refcomp.Model with ``metadata["integer"]`` (module docstring)
    x : ndarray float32 (N, *model.input_shape), finite

    Returns
    -------
    ndarray float32: the output codes dequantized with the mode's DEQUANTIZE
    (:func:`refcomp.integer.dequantize`).

    Arithmetic: ``quantize`` of the mode at the input, then every layer on codes
    (:mod:`refcomp.integer.ops`, :class:`refcomp.integer.IntegerLinear`), then one
    dequantization; no float in between.
    """
    q, s, z = run_codes(model, x)
    return dequantize_codes(q, np.float32(s), z, integer_meta(model)["mode"])


def run_codes(model, x):
    """:func:`run` without the final dequantization: (codes, output scale, output zero point)."""
    meta = integer_meta(model)
    if not isinstance(x, np.ndarray) or x.dtype != np.float32:
        raise DTypeError(f"x must be a float32 ndarray, got {describe(x)}")
    if model.input_shape is not None and tuple(x.shape[1:]) != tuple(model.input_shape):
        raise ShapeError(f"x must have shape (N, {', '.join(map(str, model.input_shape))}) for "
                         f"model {model.name!r}, got {describe(x)}")
    bad = x.size - int(np.count_nonzero(np.isfinite(x)))
    if bad:
        raise ParameterError(f"x contains {bad} non-finite element(s) (NaN or Inf)")
    dt = np.dtype(meta["act_dtype"])
    s, z = float(meta["input"]["scale"]), int(meta["input"]["zero_point"])
    q = quantize_codes(x, np.float32(s), z, meta["mode"], dt)
    q, s, z = _walk(model.layers, q, s, z, "", meta)
    out = meta["output"]
    if (s, z) != (float(out["scale"]), int(out["zero_point"])):
        raise FormatError(f"integer model: the last layer produces (scale {s!r}, zero point {z}) "
                          f"but metadata['integer']['output'] says ({out['scale']!r}, "
                          f"{out['zero_point']})")
    return q, s, z


def _where(path, layer):
    return f"layer {path} ({layer.kind} {layer.name!r})"


def _walk(layers, q, s, z, prefix, meta):
    mode = meta["mode"]
    for i, layer in enumerate(layers):
        path = f"{prefix}{i}"
        k, a = layer.kind, layer.attrs
        # (a recurrent layer's layout is its sequence axes: refused below as recurrent)
        if k not in ("lstm", "gru", "mgu", "simple_rnn") and a.get("layout", "NCHW") != "NCHW":
            raise FormatError(f"{_where(path, layer)}: the integer runner supports layout NCHW "
                              f"only, got {a['layout']!r}")
        if k in ("dense", "conv2d"):
            W = layer.weights["W"]
            if not isinstance(W, IntegerLinear):
                raise FormatError(f"{_where(path, layer)} is not quantized (W is "
                                  f"{type(W).__name__}, not IntegerLinear)")
            if layer.weights.get("b") is not None:
                W._check_b(layer.weights["b"] if isinstance(layer.weights["b"], np.ndarray)
                           else np.asarray(layer.w("b")))
            if (W.in_scale, W.in_zero_point) != (s, z) or W.act_dtype != q.dtype:
                raise FormatError(f"{_where(path, layer)} expects input (scale {W.in_scale!r}, "
                                  f"zero point {W.in_zero_point}, {W.act_dtype.name}) but "
                                  f"receives (scale {s!r}, zero point {z}, {q.dtype.name})")
            if k == "dense":
                if q.ndim != 2:
                    raise ShapeError(f"{_where(path, layer)}: input codes must be 2-D, got "
                                     f"{describe(q)}")
                q = W.linear_codes(q)
            else:
                q = W.conv2d_codes(q, stride=a["stride"], padding=a["padding"],
                                   dilation=a["dilation"], groups=a["groups"])
            s, z = W.out_scale, W.out_zero_point
        elif k == "max_pool2d":
            q = max_pool2d_q(q, a["size"], stride=a["stride"], padding=a["padding"])
        elif k == "avg_pool2d":
            q = avg_pool2d_q(q, a["size"], zero_point=z, stride=a["stride"],
                             padding=a["padding"], count_include_pad=a["count_include_pad"],
                             mode=mode)
        elif k == "flatten":
            q = q.reshape(q.shape[0], -1)
        elif k == "reshape":
            q = q.reshape((q.shape[0],) + tuple(a["shape"]))
        elif k == "dropout":
            pass
        elif k == "activation":
            f = a["function"]
            if f in ("relu", "relu6"):
                lo, hi = relu_bounds(f, s, z, q.dtype, mode)
                q = np.clip(q, lo, hi).astype(q.dtype)
            elif f != "linear":
                raise FormatError(f"{_where(path, layer)}: activation {f!r} has no integer "
                                  "implementation here (relu, relu6 and linear do)")
        elif k == "residual":
            if layer.weights.get("index_map") is not None:
                raise FormatError(f"{_where(path, layer)}: selective residual addition "
                                  "(index_map) has no integer implementation")
            qb, sb, zb = _walk(layer.layers, q, s, z, path + "/", meta)
            if qb.shape != q.shape:
                raise ShapeError(f"{_where(path, layer)}: block output {qb.shape} differs from "
                                 f"the shortcut {q.shape}")
            try:
                p = meta["add"][path]
                so, zo = float(p["scale"]), int(p["zero_point"])
                lo, hi = int(p["act_min"]), int(p["act_max"])
            except (KeyError, TypeError):
                raise FormatError(f"{_where(path, layer)}: metadata['integer']['add'] has no "
                                  f"parameters for path {path!r}") from None
            q = add_q(q, s, z, qb, sb, zb, so, zo, mode=mode, act_min=lo, act_max=hi)
            s, z = so, zo
        else:
            what = ("recurrent layers are not supported by integer inference"
                    if k in ("lstm", "gru", "mgu", "simple_rnn") else
                    "fold batch normalization into the convolution first "
                    "(refcomp.layers.fold_batch_norm)" if k == "batch_norm" else
                    "no integer implementation")
            raise FormatError(f"{_where(path, layer)}: {what}")
    return q, s, z
