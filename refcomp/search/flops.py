"""Per-layer cost of a model: :func:`count_flops` (multiply-accumulates) and
:func:`count_params`.

Convention (stated once, used by :func:`refcomp.search.autoslim`): the cost
of one sample, counted as **multiply-accumulates (MACs)** of the weight
products only; biases, activations, pooling, batch norm, flatten and the
residual additions count 0 (they are linear in the activations, not in the
weights).  Per layer kind, with shapes of one sample:

============ ===========================================================
dense        ``in * out``
conv2d       ``OH * OW * O * (C / groups) * kh * kw``
recurrent    ``T * G * H * (F + H)`` (G gates: 4 LSTM, 3 GRU, 2 MGU, 1 RNN;
             input and recurrent products of every step)
============ ===========================================================

"FLOPs" in the AutoSlim sense is this MAC count (1 MAC = 2 floating-point
operations for those who count both).  Exact Python ints.
"""

import numpy as np

from .._errors import ParameterError
from ..model import RNN_GATES, Model

__all__ = ["count_flops", "count_params", "total"]


def _input_shapes(model):
    """``{path: input shape of one sample}`` of every layer (zero-batch forward)."""
    if model.input_shape is None:
        raise ParameterError(f"model {model.name!r} has no input_shape; FLOPs need one")
    out = {}

    def walk(layers, shape, prefix, dtype):
        x = np.zeros((0,) + tuple(shape), dtype=dtype)
        sub = Model(layers, name="sub", input_shape=tuple(shape))
        outs = sub.forward_all(x, precision="fast")
        prev = tuple(shape)
        for i, (layer, o) in enumerate(zip(layers, outs)):
            path = f"{prefix}{i}"
            out[path] = prev
            if layer.kind == "residual":
                walk(layer.layers, prev, path + "/", dtype)
            prev = tuple(o.shape[1:])

    walk(model.layers, model.input_shape, "", model._dtype() or np.float32)
    return out


def _macs(layer, shape):
    k = layer.kind
    if k == "dense":
        o, i = _wshape(layer, "W")
        return o * i
    if k == "conv2d":
        from ..layers.conv import conv2d_setup
        W = np.broadcast_to(np.zeros((), np.float32), _wshape(layer, "W"))
        a = layer.attrs
        x = np.zeros((1,) + tuple(shape), np.float32)
        xc, st, dil, groups, pads = conv2d_setup(x, W, None, a["stride"], a["padding"],
                                                 a["dilation"], a["groups"], a["layout"])
        o, cg, kh, kw = W.shape
        oh = (xc.shape[2] + sum(pads[0]) - dil[0] * (kh - 1) - 1) // st[0] + 1
        ow = (xc.shape[3] + sum(pads[1]) - dil[1] * (kw - 1) - 1) // st[1] + 1
        return oh * ow * o * cg * kh * kw
    if k in RNN_GATES:
        gh, f = _wshape(layer, "W_ih")
        h = _wshape(layer, "W_hh")[1]
        return shape[0] * gh * (f + h)
    return 0


def _wshape(layer, name):
    v = layer.weights[name]
    return tuple(int(s) for s in getattr(v, "weight_shape", v.shape))


def count_flops(model):
    """Multiply-accumulates per sample of every layer (module docstring).

    Parameters
    ----------
    model : refcomp.Model with an ``input_shape``

    Returns
    -------
    dict ``{path: int}`` in ``model.named_layers()`` order (paths such as
    ``"3"`` or ``"2/0"`` inside residual block 2); :func:`total` sums it.
    """
    if not isinstance(model, Model):
        raise ParameterError(f"model must be a refcomp.Model, got {type(model).__name__}")
    shapes = _input_shapes(model)
    return {path: int(_macs(layer, shapes[path])) for path, layer in model.named_layers()}


def count_params(model):
    """Weight elements of every layer, ``{path: int}`` (decoded shapes; a residual
    block's ``index_map`` excluded, its body's layers listed under their own paths)."""
    if not isinstance(model, Model):
        raise ParameterError(f"model must be a refcomp.Model, got {type(model).__name__}")
    return {path: int(sum(int(np.prod(_wshape(layer, k))) for k in layer.weights
                          if k != "index_map"))
            for path, layer in model.named_layers()}


def total(counts):
    """Sum of a :func:`count_flops` / :func:`count_params` dict (Python int)."""
    return int(sum(counts.values()))
