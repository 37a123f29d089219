"""Evaluate a refcomp model with PyTorch's own operators (the candidate of the torch runs).

Each layer maps to the PyTorch operator a user would call, on float32
tensors, with the weights copied unchanged (refcomp's layouts are
PyTorch's, FACTS.md §1.2, §2.1, §3.1):

=============  ==================================================================
dense          ``torch.nn.functional.linear`` (Gemm alpha / beta: ``alpha * linear(x,
               W) + beta * b``)
conv1d         ``F.conv1d`` (padding by ``F.pad`` first)
max_pool,      ``F.max_pool1d/2d/3d`` (dilation, ceil_mode; symmetric padding <=
avg_pool       half the window) / ``F.avg_pool1d/2d/3d`` (no dilation); otherwise
               not expressible
conv2d         ``F.conv2d`` (stride, dilation, groups; symmetric padding passed to
               it, asymmetric or "same" padding by an explicit ``F.pad`` first,
               as ATen's own ``_convolution_same`` does); NHWC by ``permute``
max_pool2d     ``F.max_pool2d`` (symmetric padding <= half the window; otherwise
               ``F.pad`` with -inf)
avg_pool2d     ``F.avg_pool2d`` with ``count_include_pad`` (symmetric padding
               <= half the window; otherwise not expressible)
batch_norm     ``F.batch_norm`` (inference, running statistics)
activations    ``torch.relu``, ``tanh``, ``sigmoid``, ``softmax``,
               ``F.hardsigmoid`` (keras3 variant); keras2 as
               ``clamp(0.2 x + 0.5, 0, 1)`` in torch
residual       ``x + body(x)`` (``index_add`` for an index map)
lstm, gru,     ``torch.nn.LSTM`` / ``GRU`` / ``RNN`` (batch_first); GRU
simple_rnn     reset_after=False is not expressible (PyTorch has one formula)
mgu            not expressible (PyTorch has no MGU)
=============  ==================================================================
"""

import numpy as np

from ..model import materialize
from ._common import NotExpressible, layer_pads, nd_geometry, require, rnn_options

__all__ = ["torch_forward", "torch_layer"]


def _t(torch, a):
    return torch.from_numpy(np.ascontiguousarray(np.asarray(a, np.float32)))


def _nchw(x, layout):
    return x.permute(0, 3, 1, 2) if layout == "NHWC" else x


def _back(y, layout):
    return y.permute(0, 2, 3, 1).contiguous() if layout == "NHWC" else y


def _conv(torch, F, layer, x):
    a = layer.attrs
    xc = _nchw(x, a["layout"])
    (pads, k, s, d) = layer_pads(layer, xc.shape[2:])
    (t, b), (le, r) = pads
    W = _t(torch, materialize(layer.weights["W"]))
    bias = layer.weights.get("b")
    bias = None if bias is None else _t(torch, materialize(bias))
    if t == b and le == r:
        y = F.conv2d(xc, W, bias, stride=s, padding=(t, le), dilation=d, groups=a["groups"])
    else:
        y = F.conv2d(F.pad(xc, (le, r, t, b)), W, bias, stride=s, dilation=d,
                     groups=a["groups"])
    return _back(y, a["layout"])


def _pool(torch, F, layer, x):
    a = layer.attrs
    xc = _nchw(x, a["layout"])
    (pads, k, s, _) = layer_pads(layer, xc.shape[2:])
    (t, b), (le, r) = pads
    sym = t == b and le == r and 2 * t <= k[0] and 2 * le <= k[1]
    if layer.kind == "max_pool2d":
        if sym:
            y = F.max_pool2d(xc, k, s, padding=(t, le))
        else:
            y = F.max_pool2d(F.pad(xc, (le, r, t, b), value=float("-inf")), k, s)
    else:
        if not sym:
            raise NotExpressible(f"F.avg_pool2d takes symmetric padding of at most half the "
                                 f"window; got {pads} for window {k}")
        y = F.avg_pool2d(xc, k, s, padding=(t, le),
                         count_include_pad=bool(a["count_include_pad"]))
    return _back(y, a["layout"])


def _pool_nd(torch, F, layer, x):
    a, nd = layer.attrs, x.ndim - 2
    k, s, d, pads = nd_geometry(layer, x.shape[2:])
    if any(lo != hi or 2 * lo > kk for (lo, hi), kk in zip(pads, k)):
        raise NotExpressible("PyTorch pooling takes symmetric padding of at most half the "
                             f"window, got {pads}")
    p = tuple(lo for lo, _ in pads)
    if layer.kind == "max_pool":
        fn = getattr(F, f"max_pool{nd}d")
        return fn(x, k, s, padding=p, dilation=d, ceil_mode=bool(a["ceil_mode"]))
    if any(v != 1 for v in d):
        raise NotExpressible("PyTorch average pooling has no dilation")
    fn = getattr(F, f"avg_pool{nd}d")
    return fn(x, k, s, padding=p, ceil_mode=bool(a["ceil_mode"]),
              count_include_pad=bool(a["count_include_pad"]))


def _bn(torch, F, layer, x):
    a = layer.attrs
    w = {n: _t(torch, materialize(v)) for n, v in layer.weights.items()}
    if a.get("axis") is not None:          # ONNX's explicit channel axis, any rank
        ax = int(a["axis"]) % x.ndim
        y = F.batch_norm(x.movedim(ax, 1), w["mean"], w["var"], w["gamma"], w["beta"],
                         training=False, eps=float(a["eps"]))
        return y.movedim(1, ax).contiguous()
    if x.ndim == 4 and a["layout"] == "NHWC":
        xc = x.permute(0, 3, 1, 2)
    elif x.ndim == 3:
        xc = x.permute(0, 2, 1)
    else:
        xc = x
    y = F.batch_norm(xc, w["mean"], w["var"], w["gamma"], w["beta"], training=False,
                     eps=float(a["eps"]))
    if x.ndim == 4 and a["layout"] == "NHWC":
        return y.permute(0, 2, 3, 1).contiguous()
    return y.permute(0, 2, 1).contiguous() if x.ndim == 3 else y


def _rnn(torch, layer, x):
    a, k = layer.attrs, layer.kind
    if k == "mgu":
        raise NotExpressible("PyTorch has no MGU layer")
    if k == "gru" and not a["reset_after"]:
        raise NotExpressible("torch.nn.GRU computes only the reset_after=True formula "
                             "(FACTS.md §2.1)")
    extra = rnn_options(layer)
    if extra:
        raise NotExpressible(f"torch.nn recurrent modules have no ONNX option {extra} (not "
                             "built here: the reverse direction either)")
    W_ih = materialize(layer.weights["W_ih"])
    W_hh = materialize(layer.weights["W_hh"])
    H, F_ = W_hh.shape[1], W_ih.shape[1]
    if k == "lstm":
        mod = torch.nn.LSTM(F_, H, batch_first=True)
    elif k == "gru":
        mod = torch.nn.GRU(F_, H, batch_first=True)
    else:
        mod = torch.nn.RNN(F_, H, batch_first=True, nonlinearity=a["activation"])
    zero = np.zeros(W_ih.shape[0], np.float32)
    b_ih, b_hh = layer.weights.get("b_ih"), layer.weights.get("b_hh")
    with torch.no_grad():
        mod.weight_ih_l0.copy_(_t(torch, W_ih))
        mod.weight_hh_l0.copy_(_t(torch, W_hh))
        mod.bias_ih_l0.copy_(_t(torch, zero if b_ih is None else materialize(b_ih)))
        mod.bias_hh_l0.copy_(_t(torch, zero if b_hh is None else materialize(b_hh)))
        out, _ = mod(x)
    return out if a["return_sequences"] else out[:, -1]


def _act(torch, F, layer, x):
    a = layer.attrs
    f = a["function"]
    if f == "relu":
        return torch.relu(x)
    if f == "linear":
        return x
    if f == "tanh":
        return torch.tanh(x)
    if f == "sigmoid":
        return torch.sigmoid(x)
    if f == "softmax":
        return torch.softmax(x, dim=a["axis"])
    if f == "hard_sigmoid":
        if a["variant"] == "keras3":
            return F.hardsigmoid(x)
        if a["variant"] == "onnx":
            return torch.clamp(float(np.float32(a["alpha"])) * x + float(np.float32(a["beta"])),
                               0.0, 1.0)
        return torch.clamp(0.2 * x + 0.5, 0.0, 1.0)
    raise NotExpressible(f"activation {f!r}")


def torch_layer(layer, x):
    """One layer on a float32 tensor ``x`` (see the module docstring)."""
    torch = require("torch")
    F = torch.nn.functional
    k = layer.kind
    if k == "dense":
        b = layer.weights.get("b")
        al, be = np.float32(layer.attrs["alpha"]), np.float32(layer.attrs["beta"])
        if al == 1 and be == 1:
            return F.linear(x, _t(torch, materialize(layer.weights["W"])),
                            None if b is None else _t(torch, materialize(b)))
        y = float(al) * F.linear(x, _t(torch, materialize(layer.weights["W"])))
        return y if b is None else y + float(be) * _t(torch, materialize(b))
    if k == "conv1d":
        kk, s, d, pads = nd_geometry(layer, x.shape[2:])
        b = layer.weights.get("b")
        xp = F.pad(x, (pads[0][0], pads[0][1]))
        return F.conv1d(xp, _t(torch, materialize(layer.weights["W"])),
                        None if b is None else _t(torch, materialize(b)), stride=s,
                        dilation=d, groups=int(layer.attrs["groups"]))
    if k in ("max_pool", "avg_pool"):
        return _pool_nd(torch, F, layer, x)
    if k == "conv2d":
        return _conv(torch, F, layer, x)
    if k in ("max_pool2d", "avg_pool2d"):
        return _pool(torch, F, layer, x)
    if k == "batch_norm":
        return _bn(torch, F, layer, x)
    if k == "activation":
        return _act(torch, F, layer, x)
    if k == "flatten":
        return torch.flatten(x, 1)
    if k == "reshape":
        return x.reshape((x.shape[0],) + tuple(layer.attrs["shape"]))
    if k == "dropout":
        return x
    if k == "residual":
        fx = x
        for sub in layer.layers:
            fx = torch_layer(sub, fx)
        idx = layer.weights.get("index_map")
        if idx is None:
            return x + fx
        ch = x.ndim - 1 if (x.ndim == 4 and layer.attrs["layout"] == "NHWC") else 1
        return x.index_add(ch, torch.from_numpy(np.asarray(idx, np.int64)), fx)
    if k in ("lstm", "gru", "mgu", "simple_rnn"):
        return _rnn(torch, layer, x)
    raise NotExpressible(f"layer kind {k!r}")


def torch_forward(model, x):
    """``model`` evaluated by PyTorch operators on float32 ``x``; a float32 ndarray.

    Raises
    ------
    NotExpressible
        A layer PyTorch has no operator for (MGU, GRU reset_after=False,
        asymmetric average-pooling padding).
    MissingDependencyError
        torch is not installed.
    """
    torch = require("torch")
    with torch.no_grad():
        y = torch.from_numpy(np.ascontiguousarray(np.asarray(x, np.float32)))
        for layer in model.layers:
            y = torch_layer(layer, y)
        return y.numpy().astype(np.float32)
