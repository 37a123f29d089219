"""Evaluate a refcomp model with Keras 3 layers (the candidate of the keras runs).

Keras runs on its torch backend unless ``KERAS_BACKEND`` was set before
(refcomp needs no TensorFlow).  Weights go through :mod:`refcomp.convert`
(exact transposes and gate permutations; a merged recurrent bias is one
float32 rounding, within the bound):

=============  ==================================================================
dense          ``Dense`` (kernel ``W.T``)
conv2d         ``Conv2D`` (HWIO kernel, strides, dilation, groups,
               ``data_format``); "same" as Keras' own, explicit pads by
               ``ZeroPadding2D`` then "valid"
max/avg pool   ``MaxPooling2D`` / ``AveragePooling2D`` with "valid" or "same"
               (Keras' "same" average excludes the padding: count_include_pad
               must be False; an asymmetric "same" average is not expressible,
               see ``_REPLICATE``); explicit pads are not expressible
conv1d         ``Conv1D`` (channels_first, kernel (k, C/groups, O), strides,
               dilation, groups); every padding, "same_lower" included, applied
               first by ``keras.ops.pad`` (zeros), then "valid"
max_pool,      ``MaxPooling1D/2D/3D`` / ``AveragePooling1D/2D/3D``
avg_pool       (channels_first) when the resolved geometry is Keras' "valid" or
(N-D)          "same" (TensorFlow's: the odd pixel at the end); Keras pooling
               has no dilation, no ceil_mode and no explicit pads (not
               expressible), nor an asymmetric "same" average (``_REPLICATE``)
batch_norm     ``BatchNormalization`` (inference: moving statistics) on the
               layer's ``axis`` when set, else the layout rule
activations    ``keras.activations``: relu, tanh, sigmoid, softmax, linear,
               hard_sigmoid (Keras 3 = refcomp's "keras3" variant; "keras2"
               and "onnx" are not expressible)
lstm, gru,     ``LSTM`` / ``GRU`` (both ``reset_after``) / ``SimpleRNN``
simple_rnn
mgu            not expressible (Keras has no MGU)
=============  ==================================================================

The quantizer suite compares ``keras.quantizers.abs_max_quantize`` (int8,
per output channel) with refcomp's symmetric affine quantizer, and the casts
and fake quantization of :mod:`refcomp.validate._keras_cases`.
"""

import os
import warnings

import numpy as np

from ..convert import conv2d_to_keras, gru_to_keras, lstm_to_keras
from ..layers.normalization import channel_axis
from ..model import materialize
from ._codes import CodeTally
from ._common import NotBuilt, NotExpressible, layer_pads, nd_geometry, require, rnn_options
from ._draw import case_seed, draw_examples
from ._keras_cases import KERAS_QUANTIZER_CASES
from ._shipped import shipped_note, with_shipped
from ._tfmot import TFMOT_CASES

__all__ = ["keras_forward", "KERAS_CASES"]


def _keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    return require("keras")


def _np(keras, y):
    return np.asarray(keras.ops.convert_to_numpy(y), np.float32)


def _w(layer, name):
    v = layer.weights.get(name)
    return None if v is None else np.asarray(materialize(v), np.float32)


#: Keras 3.15's torch backend pads an asymmetric "same" average pool with
#: ``mode="replicate"``: AveragePooling1D(4, 1, "same") of [1, 2, 3, 4] gives
#: [1.75, 2.5, 3.25, 3.75], TensorFlow's "same" (padding excluded) [2, 2.5, 3, 3.5].
_REPLICATE = ("Keras' torch backend pads an asymmetric 'same' average pool {pads} by "
              "replicating the edge (the divisor counts the copies)")


def _spatial(keras, layer, x):
    a, k = layer.attrs, layer.kind
    fmt = "channels_last" if a["layout"] == "NHWC" else "channels_first"
    hw = x.shape[1:3] if a["layout"] == "NHWC" else x.shape[2:4]
    pads, ksz, s, d = layer_pads(layer, hw)
    same = isinstance(a["padding"], str) and a["padding"].lower() == "same"
    mode = "same" if same else "valid"
    if k == "conv2d":
        W = _w(layer, "W")
        b = _w(layer, "b")
        if not same and any(pads[0] + pads[1]):
            x = keras.layers.ZeroPadding2D(pads, data_format=fmt)(x)
        try:
            conv = keras.layers.Conv2D(W.shape[0], tuple(ksz), strides=tuple(s), padding=mode,
                                       dilation_rate=tuple(d), groups=int(a["groups"]),
                                       use_bias=b is not None, data_format=fmt)
        except ValueError as exc:                # e.g. strides > 1 with dilation > 1
            raise NotExpressible(f"keras.layers.Conv2D refuses it: {exc}") from None
        conv.build(tuple(x.shape))
        conv.set_weights([conv2d_to_keras(W)] + ([b] if b is not None else []))
        return conv(x)
    if not same and any(pads[0] + pads[1]):
        raise NotExpressible(f"Keras pooling takes 'valid' or 'same', not explicit pads {pads}")
    if k == "max_pool2d":
        return keras.layers.MaxPooling2D(tuple(ksz), tuple(s), padding=mode,
                                         data_format=fmt)(x)
    if same and a["count_include_pad"] and any(pads[0] + pads[1]):
        raise NotExpressible("Keras' 'same' average pooling excludes the padding from the "
                             "divisor (count_include_pad=False)")
    if same and any(lo != hi for lo, hi in pads):
        raise NotExpressible(_REPLICATE.format(pads=pads))
    return keras.layers.AveragePooling2D(tuple(ksz), tuple(s), padding=mode,
                                         data_format=fmt)(x)


def _conv1d(keras, layer, x):
    a = layer.attrs
    W, b = _w(layer, "W"), _w(layer, "b")
    _, s, d, ((lo, hi),) = nd_geometry(layer, tuple(x.shape[2:]))
    if lo or hi:
        x = keras.ops.pad(x, ((0, 0), (0, 0), (lo, hi)))
    try:
        conv = keras.layers.Conv1D(W.shape[0], W.shape[2], strides=s[0], padding="valid",
                                   dilation_rate=d[0], groups=int(a["groups"]),
                                   use_bias=b is not None, data_format="channels_first")
    except ValueError as exc:                    # e.g. strides > 1 with dilation > 1
        raise NotExpressible(f"keras.layers.Conv1D refuses it: {exc}") from None
    conv.build(tuple(x.shape))
    kernel = np.ascontiguousarray(W.transpose(2, 1, 0))        # (k, C/groups, O)
    conv.set_weights([kernel] + ([b] if b is not None else []))
    return conv(x)


def _pool_nd(keras, layer, x):
    from ..layers._pool_nd import pool_geometry, resolve_padding_nd
    a, nd = layer.attrs, len(x.shape) - 2
    sizes = tuple(int(v) for v in x.shape[2:])
    k, s, d, pads = nd_geometry(layer, sizes)
    if any(v != 1 for v in d):
        raise NotExpressible(f"Keras pooling has no dilation (dilations {d})")
    outs = pool_geometry(sizes, k, s, d, pads, bool(a["ceil_mode"]), x)
    floor_outs = pool_geometry(sizes, k, s, d, pads, False, x)
    if not any(lo or hi for lo, hi in pads) and outs == floor_outs:
        mode = "valid"
    elif pads == resolve_padding_nd("same", sizes, k, s, d) and outs == tuple(
            -(-n // st) for n, st in zip(sizes, s)):
        mode = "same"
        avg = layer.kind == "avg_pool"
        if avg and a["count_include_pad"]:
            raise NotExpressible("Keras' 'same' average pooling excludes the padding from the "
                                 "divisor (count_include_pad=False)")
        if avg and any(lo != hi for lo, hi in pads):
            raise NotExpressible(_REPLICATE.format(pads=pads))
    else:
        raise NotExpressible(f"Keras pooling takes 'valid' or 'same' (no ceil_mode, no "
                             f"explicit pads), not pads {pads} with ceil_mode="
                             f"{bool(a['ceil_mode'])}")
    cls = {"max_pool": "MaxPooling", "avg_pool": "AveragePooling"}[layer.kind]
    return getattr(keras.layers, f"{cls}{nd}D")(k, s, padding=mode,
                                                data_format="channels_first")(x)


def _rnn(keras, layer, x):
    a, k = layer.attrs, layer.kind
    extra = rnn_options(layer)
    if extra:
        raise NotExpressible(f"keras.layers recurrent layers have no ONNX option {extra} (a "
                             "reverse direction is not built here)")
    W_ih, W_hh, b_ih, b_hh = (_w(layer, n) for n in ("W_ih", "W_hh", "b_ih", "b_hh"))
    H = W_hh.shape[1]
    seq = bool(a["return_sequences"])
    if k == "lstm":
        kern, rec, bias = lstm_to_keras(W_ih, W_hh, b_ih, b_hh)
        lay = keras.layers.LSTM(H, return_sequences=seq, use_bias=bias is not None)
    elif k == "gru":
        kern, rec, bias = gru_to_keras(W_ih, W_hh, b_ih, b_hh, reset_after=a["reset_after"])
        lay = keras.layers.GRU(H, return_sequences=seq, use_bias=bias is not None,
                               reset_after=bool(a["reset_after"]))
    elif k == "simple_rnn":
        kern, rec = np.ascontiguousarray(W_ih.T), np.ascontiguousarray(W_hh.T)
        bias = None if b_ih is None and b_hh is None else (
            (b_ih if b_ih is not None else 0) + (b_hh if b_hh is not None else 0))
        lay = keras.layers.SimpleRNN(H, activation=a["activation"], return_sequences=seq,
                                     use_bias=bias is not None)
    else:
        raise NotExpressible("Keras has no MGU layer")
    lay.build(tuple(x.shape))
    lay.set_weights([kern, rec] + ([np.asarray(bias, np.float32)] if bias is not None else []))
    return lay(x)


def _layer(keras, layer, x):
    k, a = layer.kind, layer.attrs
    if k == "dense" and (a.get("alpha", 1.0) != 1.0 or a.get("beta", 1.0) != 1.0):
        raise NotExpressible("keras.layers.Dense has no ONNX Gemm alpha / beta")
    if k == "dense":
        W, b = _w(layer, "W"), _w(layer, "b")
        d = keras.layers.Dense(W.shape[0], use_bias=b is not None)
        d.build(tuple(x.shape))
        d.set_weights([np.ascontiguousarray(W.T)] + ([b] if b is not None else []))
        return d(x)
    if k in ("conv2d", "max_pool2d", "avg_pool2d"):
        return _spatial(keras, layer, x)
    if k == "conv1d":
        return _conv1d(keras, layer, x)
    if k in ("max_pool", "avg_pool"):
        return _pool_nd(keras, layer, x)
    if k == "batch_norm":
        axis = channel_axis(len(x.shape), a["layout"], a.get("axis"))
        bn = keras.layers.BatchNormalization(axis=axis, epsilon=float(a["eps"]))
        bn.build(tuple(x.shape))
        bn.set_weights([_w(layer, n) for n in ("gamma", "beta", "mean", "var")])
        return bn(x, training=False)
    if k == "activation":
        f = a["function"]
        if f == "hard_sigmoid" and a["variant"] != "keras3":
            raise NotExpressible("Keras 3's hard_sigmoid is x/6 + 1/2 (the 'keras3' variant)")
        if f == "softmax":
            return keras.activations.softmax(x, axis=int(a["axis"]))
        if f not in ("relu", "tanh", "sigmoid", "linear", "hard_sigmoid"):
            raise NotExpressible(f"activation {f!r}")
        return getattr(keras.activations, f)(x)
    if k == "flatten":
        return keras.layers.Flatten()(x)
    if k == "reshape":
        return keras.layers.Reshape(tuple(a["shape"]))(x)
    if k == "dropout":
        return x
    if k == "residual":
        if layer.weights.get("index_map") is not None:
            raise NotBuilt("a residual index map (selective addition) is not built here")
        fx = x
        for sub in layer.layers:
            fx = _layer(keras, sub, fx)
        return keras.layers.Add()([x, fx])
    if k in ("lstm", "gru", "mgu", "simple_rnn"):
        return _rnn(keras, layer, x)
    raise NotBuilt(f"layer kind {k!r} is not built by the Keras runner")


def keras_forward(model, x):
    """``model`` evaluated by Keras layers on float32 ``x``; a float32 ndarray."""
    keras = _keras()
    with warnings.catch_warnings():       # Keras' own NumPy-2 __array__ deprecation notice
        warnings.simplefilter("ignore", DeprecationWarning)
        y = keras.ops.convert_to_tensor(np.ascontiguousarray(np.asarray(x, np.float32)))
        for layer in model.layers:
            y = _layer(keras, layer, y)
        return _np(keras, y)


def _abs_max(n, seed):
    keras = _keras()
    from hypothesis import strategies as st

    from ..quantize import affine
    from ..testing.strategies import weight_arrays
    name = "abs_max_quantize int8 per channel"
    tally = CodeTally()
    strat = weight_arrays(st.tuples(st.integers(1, 6), st.integers(2, 40)))
    drawn = [(w, None) for w in draw_examples(strat, n, case_seed(seed, name))]
    for w, _ in with_shipped(drawn):
        if not np.all(np.any(w != 0, axis=1)):
            continue                                   # an all-zero row: epsilon decides
        codes, scale = keras.quantizers.abs_max_quantize(w, axis=-1, to_numpy=True)
        codes = np.asarray(codes).reshape(w.shape)
        # Keras: scale = 127 / max|w| (a multiplier), codes = round(w * scale), half even
        s = (1.0 / np.asarray(scale, np.float32).reshape(-1)).astype(np.float32)
        q = affine(w, 8, symmetric=True, narrow_range=True, axis=0, scale=s, zero_point=0,
                   scale_op="reciprocal")
        tally.add(codes, w, q)
    tally.notes.append(shipped_note())
    tally.notes.append("Keras multiplies by 127/max|w|; refcomp given scale = 1/that, "
                       "scale_op='reciprocal' (its float32 reciprocal may round differently: "
                       "boundary cases)")
    return tally.result("quantizers", name)


KERAS_CASES = {
    "quantizers": [("abs_max_quantize int8 per channel", _abs_max)] + KERAS_QUANTIZER_CASES,
    "pruning": TFMOT_CASES,
    "integer": [],
}
