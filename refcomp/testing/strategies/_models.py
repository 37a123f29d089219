"""Strategies of single layers and small models of every layer kind, with inputs."""

import numpy as np
from hypothesis import strategies as st

from ..._errors import ParameterError
from ...model import LAYER_KINDS, Layer, Model
from ._arrays import weight_arrays
from ._configs import (conv1d_configs, conv2d_configs, dense_configs, pool2d_configs,
                       pool_nd_configs, recurrent_configs)

__all__ = ["layers", "models", "LAYER_KINDS_DRAWN", "MODEL_FAMILIES", "ACTIVATIONS_DRAWN"]

#: Every layer kind of :data:`refcomp.model.LAYER_KINDS` is drawn by :func:`layers`
#: (none is left out: the derived bound covers them all).
LAYER_KINDS_NOT_DRAWN = ()
LAYER_KINDS_DRAWN = tuple(k for k in LAYER_KINDS if k not in LAYER_KINDS_NOT_DRAWN)
#: Activation functions drawn (all that :func:`refcomp.testing.reference_and_bound` bounds).
ACTIVATIONS_DRAWN = ("relu", "linear", "tanh", "sigmoid", "hard_sigmoid", "softmax")
#: Model families of :func:`models`.
MODEL_FAMILIES = ("mlp", "cnn", "cnn1d", "rnn")

f32 = np.float32


def _w(draw, shape, fan_in, corner):
    """Weights of standard deviation ~ 1/sqrt(fan_in) (Glorot-like), float32."""
    scale = float(1.0 / np.sqrt(max(1, fan_in)))
    flag = True if corner else False
    return draw(weight_arrays(tuple(shape), scale=scale, ties=flag, zeros=flag))


def _x(draw, shape, corner):
    return draw(weight_arrays(tuple(shape), scale=1.0, ties=corner, zeros=corner))


def _bn(draw, c, layout, corner, axis=None):
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    return Layer("batch_norm", attrs={"eps": draw(st.sampled_from((1e-5, 1e-3))),
                                      "layout": layout, "axis": axis},
                 weights={"gamma": rng.normal(1.0, 0.2, c).astype(f32),
                          "beta": rng.normal(0.0, 0.2, c).astype(f32),
                          "mean": rng.normal(0.0, 0.5, c).astype(f32),
                          "var": rng.uniform(0.2, 2.0, c).astype(f32)})


def _act(draw, functions=ACTIVATIONS_DRAWN):
    f = draw(st.sampled_from(tuple(functions)))
    attrs = {"function": f}
    if f == "hard_sigmoid":
        attrs["variant"] = draw(st.sampled_from(("keras3", "keras2", "onnx")))
        if attrs["variant"] == "onnx":       # ONNX HardSigmoid's float32 alpha, beta
            attrs["alpha"] = float(f32(draw(st.sampled_from((0.2, 1.0 / 6.0, 4.0, -0.5)) |
                                            st.floats(-8.0, 8.0, width=32))))
            attrs["beta"] = float(f32(draw(st.sampled_from((0.5, 0.0, 1.0)) |
                                           st.floats(-4.0, 4.0, width=32))))
    return Layer("activation", attrs=attrs)


def _conv_layer(draw, cfg, corner):
    k = cfg["kernel"]
    fan = cfg["C"] // cfg["groups"] * k[0] * k[1]
    w = {"W": _w(draw, (cfg["O"], cfg["C"] // cfg["groups"]) + tuple(k), fan, corner)}
    if cfg["bias"]:
        w["b"] = _w(draw, (cfg["O"],), fan, corner)
    return Layer("conv2d", attrs=cfg["attrs"], weights=w)


def _rnn_layer(draw, cfg, corner):
    G, H, F = cfg["gates"], cfg["H"], cfg["F"]
    w = {}
    for suffix in ("", "_reverse")[:cfg.get("directions", 1)]:
        w["W_ih" + suffix] = _w(draw, (G * H, F), F + H, corner)
        w["W_hh" + suffix] = _w(draw, (G * H, H), F + H, corner)
        for name in ("b_ih", "b_hh"):
            if cfg["bias_" + name[2:]]:
                w[name + suffix] = _w(draw, (G * H,), F + H, corner)
        if cfg.get("peepholes"):
            w[("P" + suffix)] = _w(draw, (3 * H,), H, corner)
    return Layer(cfg["kind"], attrs=cfg["attrs"], weights=w)


def _image_shape(cfg):
    n, c, h, w = cfg["N"], cfg["C"], cfg["H"], cfg["W"]
    return (n, h, w, c) if cfg["layout"] == "NHWC" else (n, c, h, w)


@st.composite
def _layer(draw, kinds, corner, onnx_options=False):
    kind = draw(st.sampled_from(tuple(kinds)))
    if kind == "dense":
        cfg = draw(dense_configs(gemm=onnx_options and draw(st.booleans())))
        w = {"W": _w(draw, (cfg["out"], cfg["in"]), cfg["in"], corner)}
        if cfg["bias"]:
            w["b"] = _w(draw, (cfg["out"],), cfg["in"], corner)
        return (Layer("dense", weights=w, attrs=cfg["attrs"]),
                _x(draw, (cfg["N"], cfg["in"]), corner))
    if kind == "conv1d":
        cfg = draw(conv1d_configs())
        fan = cfg["C"] // cfg["groups"] * cfg["kernel"][0]
        w = {"W": _w(draw, (cfg["O"], cfg["C"] // cfg["groups"], cfg["kernel"][0]), fan,
                     corner)}
        if cfg["bias"]:
            w["b"] = _w(draw, (cfg["O"],), fan, corner)
        return (Layer("conv1d", attrs=cfg["attrs"], weights=w),
                _x(draw, (cfg["N"], cfg["C"], cfg["L"]), corner))
    if kind in ("max_pool", "avg_pool"):
        cfg = draw(pool_nd_configs(kinds=(kind,)))
        return Layer(kind, attrs=cfg["attrs"]), _x(draw, cfg["shape"], corner)
    if kind == "conv2d":
        cfg = draw(conv2d_configs())
        return _conv_layer(draw, cfg, corner), _x(draw, _image_shape(cfg), corner)
    if kind in ("max_pool2d", "avg_pool2d"):
        cfg = draw(pool2d_configs(kinds=(kind,)))
        return Layer(kind, attrs=cfg["attrs"]), _x(draw, _image_shape(cfg), corner)
    if kind in ("lstm", "gru", "mgu", "simple_rnn"):
        cfg = draw(recurrent_configs(kinds=(kind,),
                                     onnx_options=onnx_options and draw(st.booleans())))
        return _rnn_layer(draw, cfg, corner), _x(draw, (cfg["N"], cfg["T"], cfg["F"]), corner)
    n = draw(st.integers(1, 3))
    if kind == "batch_norm":
        layout = draw(st.sampled_from(("NCHW", "NHWC")))
        c = draw(st.integers(1, 4))
        if draw(st.booleans()):
            shape = draw(st.sampled_from(((n, c), (n, c, 3, 2) if layout == "NCHW" else
                                          (n, 3, 2, c))))
            return _bn(draw, c, layout, corner), _x(draw, shape, corner)
        # an explicit axis (ONNX BatchNormalization: axis 1 of any rank, e.g. after conv1d)
        nd = draw(st.sampled_from((3, 5, 2, 4)))
        axis = draw(st.sampled_from((1, 1, -1, -2)) | st.integers(-nd, nd - 1))
        shape = list((n, 3, 2, 2, 3)[:nd])
        shape[axis % nd] = c
        return _bn(draw, c, layout, corner, axis=axis), _x(draw, tuple(shape), corner)
    if kind == "activation":
        return _act(draw), _x(draw, (n, draw(st.integers(1, 6))), corner)
    if kind in ("flatten", "dropout"):
        attrs = {"rate": 0.5} if kind == "dropout" else {}
        return Layer(kind, attrs=attrs), _x(draw, (n, 2, 3, 2), corner)
    if kind == "reshape":
        return Layer("reshape", attrs={"shape": [3, 4]}), _x(draw, (n, 12), corner)
    if kind == "residual":
        c = draw(st.integers(1, 4))
        cfg = {"kernel": (3, 3), "groups": 1, "C": c, "O": c, "bias": draw(st.booleans()),
               "attrs": {"padding": 1}}
        body = [_conv_layer(draw, cfg, corner), Layer("activation", attrs={"function": "relu"})]
        return Layer("residual", layers=body), _x(draw, (n, c, 4, 4), corner)
    raise ParameterError(f"unknown layer kind {kind!r}")


def layers(kinds=LAYER_KINDS_DRAWN, *, corner_cases=False, onnx_options=False):
    """One layer of a drawn kind with a fitting input batch: ``(Layer, x)``.

    Parameters
    ----------
    kinds : sequence of str
        Layer kinds to draw from (default every kind of
        :data:`refcomp.model.LAYER_KINDS`).
    corner_cases : bool, keyword-only
        Let the weights and the input carry ties and exact (signed) zeros
        (:func:`weight_arrays`).  Off by default: with ties, a "same"
        maximum or a ReLU at exactly 0 is legitimate yet makes outputs
        compare less tightly.
    onnx_options : bool, keyword-only
        Also draw, in about half the examples, the options that only ONNX
        expresses: Gemm ``alpha`` / ``beta`` on dense layers, and on LSTM,
        GRU and simple RNN layers the direction, ``clip``, peepholes,
        ``input_forget`` and activation lists
        (:func:`recurrent_configs` with ``onnx_options=True``).  Off by
        default, so a port of PyTorch's layers is tested on the layers it
        implements.

    Returns
    -------
    SearchStrategy of (refcomp.Layer, numpy.ndarray)
        float32 weights of scale ~ 1/sqrt(fan-in) (dense, conv2d by their
        configuration strategies, recurrent layers of every formula), a
        float32 input of unit scale.

    Examples
    --------
    Your own LSTM against refcomp's derived bound::

        @given(layers(kinds=("lstm",)))
        def test_my_lstm(case):
            layer, x = case
            assert_conforms(lambda x: my_lstm(x, layer.weights, **layer.attrs),
                            refcomp.Model([layer]), x)
    """
    for k in kinds:
        if k not in LAYER_KINDS_DRAWN:
            raise ParameterError(f"unknown layer kind {k!r}; known: {LAYER_KINDS_DRAWN}")
    return _layer(tuple(kinds), bool(corner_cases), bool(onnx_options))


@st.composite
def _model(draw, families, corner):
    fam = draw(st.sampled_from(tuple(families)))
    n = draw(st.integers(1, 4))
    seq = []
    if fam == "mlp":
        sizes = [draw(st.integers(1, 12)) for _ in range(draw(st.integers(2, 4)))]
        x = _x(draw, (n, sizes[0]), corner)
        for a, b in zip(sizes[:-1], sizes[1:]):
            w = {"W": _w(draw, (b, a), a, corner)}
            if draw(st.booleans()):
                w["b"] = _w(draw, (b,), a, corner)
            seq.append(Layer("dense", weights=w))
            if draw(st.booleans()):
                seq.append(_bn(draw, b, "NCHW", corner))
            if draw(st.booleans()):
                seq.append(Layer("dropout", attrs={"rate": 0.1}))
            seq.append(_act(draw, ("relu", "tanh", "sigmoid", "linear", "hard_sigmoid")))
    elif fam == "cnn":
        cfg = draw(conv2d_configs(max_size=8, layouts=("NCHW",)))
        if draw(st.booleans()):
            seq.append(Layer("reshape", attrs={"shape": [cfg["C"], cfg["H"], cfg["W"]]}))
            x = _x(draw, (n, cfg["C"] * cfg["H"] * cfg["W"]), corner)
        else:
            x = _x(draw, (n, cfg["C"], cfg["H"], cfg["W"]), corner)
        seq.append(_conv_layer(draw, cfg, corner))
        seq.append(_act(draw, ("relu", "tanh", "sigmoid", "linear")))
        y = Model(list(seq))(x)
        c = y.shape[1]
        if draw(st.booleans()):
            seq.append(_bn(draw, c, "NCHW", corner))
        if draw(st.booleans()):
            rcfg = {"kernel": (3, 3), "groups": 1, "C": c, "O": c, "bias": draw(st.booleans()),
                    "attrs": {"padding": 1}}
            seq.append(Layer("residual", layers=[_conv_layer(draw, rcfg, corner),
                                                 Layer("activation",
                                                       attrs={"function": "relu"})]))
        if draw(st.booleans()):
            kind = draw(st.sampled_from(("max_pool2d", "avg_pool2d", "max_pool", "avg_pool")))
            size = [draw(st.integers(1, min(2, y.shape[2]))),
                    draw(st.integers(1, min(2, y.shape[3])))]
            attrs = {"size": size, "stride": None,
                     "padding": draw(st.integers(0, min(size) - 1))}
            if kind in ("avg_pool2d", "avg_pool"):
                attrs["count_include_pad"] = draw(st.booleans())
            if kind in ("max_pool", "avg_pool"):
                attrs["ceil_mode"] = draw(st.booleans())
            seq.append(Layer(kind, attrs=attrs))
        seq.append(Layer("flatten"))
        feats = int(np.prod(Model(list(seq))(x).shape[1:]))
        out = draw(st.integers(1, 6))
        seq.append(Layer("dense", weights={"W": _w(draw, (out, feats), feats, corner),
                                           "b": _w(draw, (out,), feats, corner)}))
    elif fam == "cnn1d":
        cfg = draw(conv1d_configs(max_length=10))
        x = _x(draw, (n, cfg["C"], cfg["L"]), corner)
        fan = cfg["C"] // cfg["groups"] * cfg["kernel"][0]
        w = {"W": _w(draw, (cfg["O"], cfg["C"] // cfg["groups"], cfg["kernel"][0]), fan,
                     corner)}
        if cfg["bias"]:
            w["b"] = _w(draw, (cfg["O"],), fan, corner)
        seq.append(Layer("conv1d", attrs=cfg["attrs"], weights=w))
        seq.append(_act(draw, ("relu", "tanh", "sigmoid", "linear")))
        if draw(st.booleans()):     # ONNX's BatchNormalization after Conv: axis 1 of rank 3
            seq.append(_bn(draw, cfg["O"], "NCHW", corner, axis=1))
        length = Model(list(seq))(x).shape[2]
        if draw(st.booleans()):
            kind = draw(st.sampled_from(("max_pool", "avg_pool")))
            size = draw(st.integers(1, min(3, length)))
            attrs = {"size": size, "stride": draw(st.integers(1, 2)),
                     "padding": draw(st.integers(0, size - 1)),
                     "ceil_mode": draw(st.booleans())}
            if kind == "avg_pool":
                attrs["count_include_pad"] = draw(st.booleans())
            seq.append(Layer(kind, attrs=attrs))
        seq.append(Layer("flatten"))
        feats = int(np.prod(Model(list(seq))(x).shape[1:]))
        cfg = draw(dense_configs(gemm=True))
        out = draw(st.integers(1, 6))
        seq.append(Layer("dense", attrs=cfg["attrs"],
                         weights={"W": _w(draw, (out, feats), feats, corner),
                                  "b": _w(draw, (out,), feats, corner)}))
    else:
        cfg = draw(recurrent_configs(max_batch=1))
        x = _x(draw, (n, cfg["T"], cfg["F"]), corner)
        seq.append(_rnn_layer(draw, cfg, corner))
        h = cfg["H"]
        if cfg["return_sequences"]:
            cfg2 = draw(recurrent_configs(max_batch=1))
            cfg2 = dict(cfg2, F=h)
            cfg2["attrs"] = dict(cfg2["attrs"], return_sequences=False)
            seq.append(_rnn_layer(draw, cfg2, corner))
            h = cfg2["H"]
        out = draw(st.integers(1, 5))
        seq.append(Layer("dense", weights={"W": _w(draw, (out, h), h, corner)}))
    if draw(st.booleans()):
        seq.append(_act(draw, ("softmax", "sigmoid", "linear")))
    return Model(seq, name=f"drawn_{fam}", input_shape=x.shape[1:]), x


def models(families=MODEL_FAMILIES, *, corner_cases=False):
    """Small models with an input batch: ``(Model, x)``.

    Parameters
    ----------
    families : sequence of {"mlp", "cnn", "cnn1d", "rnn"}
        "mlp": dense layers with optional bias, batch norm, dropout and an
        activation each; "cnn": optional reshape, a conv2d of
        :func:`conv2d_configs` (any stride, padding, dilation, groups), an
        activation, optional batch norm, residual block and max/avg
        pooling (2-D or N-D with ceil_mode), flatten, dense; "cnn1d": a
        conv1d of :func:`conv1d_configs`, an activation, optional batch
        norm on axis 1 (ONNX's BatchNormalization after Conv), optional 1-D max /
        average pooling (ceil_mode), flatten, a dense layer with ONNX Gemm
        alpha / beta; "rnn": one or two recurrent layers of any
        kind (lstm, gru with either formula, mgu, simple_rnn), dense.  Each
        may end with softmax, sigmoid or linear.  Over many examples every
        layer kind of :data:`refcomp.model.LAYER_KINDS` appears.
    corner_cases : bool, keyword-only
        As in :func:`layers`.

    Returns
    -------
    SearchStrategy of (refcomp.Model, numpy.ndarray)
        float32 models (``input_shape`` set) and inputs that run.

    Examples
    --------
    Your own inference engine against refcomp's derived bound::

        @given(models())
        def test_my_engine(case):
            model, x = case
            assert_conforms(my_engine.run(export(model), x), model, x)
    """
    for f in families:
        if f not in MODEL_FAMILIES:
            raise ParameterError(f"unknown model family {f!r}; known: {MODEL_FAMILIES}")
    return _model(tuple(families), bool(corner_cases))
