"""Write the language-neutral conformance vectors of data/conformance (docs/CONFORMANCE.md).

Usage, from the repository root::

    python data/conformance/generate.py            # rewrite data/conformance/*.h5
    python data/conformance/generate.py --out DIR  # write them elsewhere
    python data/conformance/generate.py --check    # regenerate into a temporary
                                                   # directory, list differing files

Every random value comes from ``numpy.random.default_rng(SEED + case)``;
the files record the seed and the versions of refcomp, NumPy, h5py and the
HDF5 library.  The same versions (and the same libm, for tanh / exp) give
byte-identical files: datasets are contiguous, no timestamps are stored,
strings are fixed-length ASCII.
"""

import argparse
import filecmp
import json
import os
import sys
import tempfile
from pathlib import Path

import h5py
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

import refcomp  # noqa: E402
from refcomp import Layer, Model  # noqa: E402
from refcomp import quantize as Q  # noqa: E402
from refcomp.layers._common import pair, resolve_padding  # noqa: E402
from refcomp.testing import reference_and_bound  # noqa: E402
from refcomp.validate._common import nd_geometry  # noqa: E402

SEED = 20260921
SCHEMA_VERSION = 1
f32 = np.float32


# -- writing -------------------------------------------------------------------------------
def _ascii(s):
    return np.bytes_(str(s).encode("ascii"))


def _attr(obj, name, value):
    if value is None:
        return
    if isinstance(value, str):
        obj.attrs[name] = _ascii(value)
    elif isinstance(value, (bool, np.bool_)):
        obj.attrs[name] = np.int32(value)
    elif isinstance(value, (int, np.integer)):
        obj.attrs[name] = np.int64(value)
    elif isinstance(value, (float, np.floating)):
        obj.attrs[name] = np.float64(value)
    else:
        arr = np.asarray(value)
        obj.attrs[name] = arr.astype(np.int32) if arr.dtype.kind in "iub" else arr


def _data(group, name, a):
    group.create_dataset(name, data=np.ascontiguousarray(a), track_times=False)


def _root(f, kind, n_cases, extra=None):
    _attr(f, "schema", "refcomp-conformance")
    f.attrs["schema_version"] = np.int32(SCHEMA_VERSION)
    _attr(f, "kind", kind)
    _attr(f, "generator", "data/conformance/generate.py")
    f.attrs["seed"] = np.int64(SEED)
    f.attrs["n_cases"] = np.int32(n_cases)
    _attr(f, "refcomp_version", refcomp.__version__)
    _attr(f, "numpy_version", np.__version__)
    _attr(f, "h5py_version", h5py.version.version)
    _attr(f, "hdf5_version", h5py.version.hdf5_version)
    for k, v in (extra or {}).items():
        _attr(f, k, v)


def _open(path):
    return h5py.File(path, "w", libver=("v110", "v110"), track_order=False)


# -- layers --------------------------------------------------------------------------------
def _pads(layer, x_shape):
    a = layer.attrs
    hw = x_shape[1:3] if a.get("layout") == "NHWC" else x_shape[2:4]
    if layer.kind == "conv2d":
        k = layer.weights["W"].shape[2:]
        s, d = pair("stride", a["stride"]), pair("dilation", a["dilation"])
    else:
        k = pair("size", a["size"])
        s = k if a["stride"] is None else pair("stride", a["stride"])
        d = (1, 1)
    (t, b), (le, r) = resolve_padding(a["padding"], hw, k, s, d)
    return [t, b, le, r], list(k), list(s), list(d)


def _write_layer(g, layer, x_shape):
    """Attributes and weights of one layer (schema: docs/CONFORMANCE.md)."""
    a = layer.attrs
    _attr(g, "kind", layer.kind)
    for name, w in layer.weights.items():
        _data(g, name, np.asarray(w))
    k = layer.kind
    if k in ("conv2d", "max_pool2d", "avg_pool2d"):
        pads, ksz, s, d = _pads(layer, x_shape)
        _attr(g, "pads", pads)
        _attr(g, "stride", s)
        _attr(g, "layout", a["layout"])
        _attr(g, "padding", json.dumps(a["padding"]))
        if k == "conv2d":
            _attr(g, "dilation", d)
            _attr(g, "groups", a["groups"])
        else:
            _attr(g, "size", ksz)
            if k == "avg_pool2d":
                _attr(g, "count_include_pad", a["count_include_pad"])
    elif k in ("conv1d", "max_pool", "avg_pool"):
        ksz, st, dil, pads = nd_geometry(layer, x_shape[2:])
        _attr(g, "pads", [p for lo_hi in pads for p in lo_hi])
        _attr(g, "stride", list(st))
        _attr(g, "dilation", list(dil))
        _attr(g, "padding", json.dumps(a["padding"]))
        if k == "conv1d":
            _attr(g, "groups", a["groups"])
        else:
            _attr(g, "size", list(ksz))
            _attr(g, "ceil_mode", a["ceil_mode"])
            if k == "avg_pool":
                _attr(g, "count_include_pad", a["count_include_pad"])
    elif k == "batch_norm":
        _attr(g, "eps", float(a["eps"]))
        _attr(g, "layout", a["layout"])
    elif k == "activation":
        _attr(g, "function", a["function"])
        _attr(g, "variant", a["variant"])
        _attr(g, "axis", int(a["axis"]))
    elif k in ("lstm", "gru", "mgu", "simple_rnn"):
        _attr(g, "return_sequences", a["return_sequences"])
        _attr(g, "hidden_size", layer.weights["W_hh"].shape[1])
        _attr(g, "gate_order", {"lstm": "i,f,g,o", "gru": "r,z,n", "mgu": "f,h",
                                "simple_rnn": "h"}[k])
        if k == "gru":
            _attr(g, "reset_after", a["reset_after"])
        if k == "simple_rnn":
            _attr(g, "activation", a["activation"])
    elif k == "reshape":
        _attr(g, "shape", list(a["shape"]))
    elif k == "flatten":
        _attr(g, "layout", a["layout"])
    elif k == "residual":
        _attr(g, "layout", a["layout"])
        shape = x_shape
        for i, sub in enumerate(layer.layers):
            _write_layer(g.create_group(f"layers/{i:04d}"), sub, shape)
            shape = Model(layer.layers[:i + 1])(np.zeros(x_shape, f32)).shape


def _layer_file(path, kind, cases):
    with _open(path) as f:
        _root(f, kind, len(cases), {"criterion": "abs(y - y_reference) <= bound, elementwise"})
        for i, (desc, model, x) in enumerate(cases):
            g = f.create_group(f"case{i:04d}")
            _attr(g, "description", desc)
            _attr(g, "n_layers", len(model.layers))
            _data(g, "x", x)
            shape = x.shape
            for j, layer in enumerate(model.layers):
                _write_layer(g.create_group(f"layers/{j:04d}"), layer, shape)
                shape = Model(model.layers[:j + 1])(x).shape
            v, bound = reference_and_bound(model, x)
            _data(g, "y_reference", v)
            _data(g, "bound", bound)
            _data(g, "y_float32", model(x))


def _rng(i):
    return np.random.default_rng(SEED + i)


def _r(rng, *shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(f32)


def _dense_cases():
    out = []
    for i, (n, fin, fout, bias, desc) in enumerate([
            (4, 7, 5, True, "dense 7 -> 5 with bias"),
            (3, 1, 3, False, "dense 1 -> 3, no bias"),
            (2, 33, 4, True, "dense 33 -> 4, ties and zeros in W"),
            (5, 16, 16, True, "dense 16 -> 16, inputs of mixed magnitudes")]):
        rng = _rng(i)
        W = _r(rng, fout, fin, scale=1 / np.sqrt(fin))
        if i == 2:
            W = (np.round(W * 8) / 8).astype(f32)
        x = _r(rng, n, fin)
        if i == 3:
            x *= (10.0 ** rng.integers(-6, 4, x.shape)).astype(f32)
        w = {"W": W, "b": _r(rng, fout)} if bias else {"W": W}
        out.append((desc, Model([Layer("dense", weights=w)]), x))
    return out


def _conv_cases():
    specs = [
        ("3x3, padding 1, bias", 2, 3, (3, 3), dict(padding=1), (2, 2, 5, 6)),
        ("3x3, groups 2, stride 2, asymmetric pads ((0,1),(1,0))", 4, 4, (3, 3),
         dict(groups=2, stride=2, padding=[[0, 1], [1, 0]]), (1, 4, 7, 6)),
        ("2x2, dilation 2, 'same' (odd pixel after)", 3, 2, (2, 2),
         dict(dilation=2, padding="same"), (2, 3, 5, 5)),
        ("3x2, 'valid', stride (2, 1)", 2, 2, (3, 2), dict(padding="valid", stride=[2, 1]),
         (1, 2, 7, 5)),
        ("depthwise 3x3, NHWC, padding 1", 3, 3, (3, 3), dict(groups=3, padding=1,
                                                            layout="NHWC"), (2, 4, 5, 3)),
        ("1x1, 5 -> 2", 5, 2, (1, 1), {}, (2, 5, 3, 3)),
    ]
    out = []
    for i, (desc, c, o, k, attrs, xs) in enumerate(specs):
        rng = _rng(100 + i)
        g = attrs.get("groups", 1)
        W = _r(rng, o, c // g, *k, scale=1 / np.sqrt(c // g * k[0] * k[1]))
        out.append((desc, Model([Layer("conv2d", attrs=attrs,
                                       weights={"W": W, "b": _r(rng, o)})]), _r(rng, *xs)))
    return out


def _pool_cases(kind):
    specs = [("2x2, stride 2", dict(size=2), (2, 2, 4, 5)),
             ("3x3, stride 1, padding 1", dict(size=3, stride=1, padding=1), (1, 2, 4, 4)),
             ("2x3, stride (1, 2), 'same'", dict(size=[2, 3], stride=[1, 2], padding="same"),
              (1, 3, 5, 5)),
             ("3x3, stride 2, NHWC, padding 1", dict(size=3, stride=2, padding=1,
                                                     layout="NHWC"), (2, 5, 5, 2))]
    return _pool_models(kind, specs, 200)


def _pool_models(kind, specs, seed0):
    """One-layer pooling cases; average pooling alternates count_include_pad."""
    out = []
    for i, (desc, attrs, xs) in enumerate(specs):
        rng = _rng(seed0 + i)
        a = dict(attrs)
        if kind.startswith("avg_pool"):
            a["count_include_pad"] = bool(i % 2)
            desc += f", count_include_pad={a['count_include_pad']}"
        out.append((desc, Model([Layer(kind, attrs=a)]), _r(rng, *xs)))
    return out


def _conv1d_cases():
    specs = [
        ("k=3, padding 1, bias", 2, 3, 3, dict(padding=1), (2, 2, 8)),
        ("k=3, groups 2, stride 2, asymmetric pads (0, 2)", 4, 4, 3,
         dict(groups=2, stride=2, padding=[0, 2]), (1, 4, 9)),
        ("k=2, dilation 3, 'same_lower' (odd pixel before)", 3, 2, 2,
         dict(dilation=3, padding="same_lower"), (2, 3, 7)),
        ("k=5, 'valid', stride 3, no bias", 2, 1, 5, dict(padding="valid", stride=3),
         (1, 2, 11)),
    ]
    out = []
    for i, (desc, c, o, k, attrs, xs) in enumerate(specs):
        rng = _rng(1000 + i)
        g = attrs.get("groups", 1)
        W = _r(rng, o, c // g, k, scale=1 / np.sqrt(c // g * k))
        w = {"W": W} if "no bias" in desc else {"W": W, "b": _r(rng, o)}
        out.append((desc, Model([Layer("conv1d", attrs=attrs, weights=w)]), _r(rng, *xs)))
    return out


def _pool_nd_cases(kind):
    specs = [("1-D, size 3, stride 2, dilation 2, pads (1, 0), ceil_mode",
              dict(size=3, stride=2, dilation=2, padding=[[1, 0]], ceil_mode=True), (2, 2, 9)),
             ("2-D, size (2, 3), stride (2, 1), dilation (1, 2), pads ((0, 1), (1, 1))",
              dict(size=[2, 3], stride=[2, 1], dilation=[1, 2], padding=[[0, 1], [1, 1]]),
              (1, 2, 5, 7)),
             ("3-D, size 2, stride 2, ceil_mode (windows overhang the end)",
              dict(size=2, stride=2, ceil_mode=True), (1, 2, 5, 4, 3)),
             ("2-D, size 3, stride 2, 'same_lower'",
              dict(size=3, stride=2, padding="same_lower"), (1, 1, 6, 5))]
    return _pool_models(kind, specs, 1100 if kind == "max_pool" else 1200)


def _bn_cases():
    out = []
    for i, (desc, xs, layout, eps) in enumerate([("NCHW, eps 1e-5", (2, 3, 2, 2), "NCHW", 1e-5),
                                                 ("(N, C), eps 1e-3", (4, 5), "NCHW", 1e-3),
                                                 ("NHWC, eps 1e-3", (2, 2, 2, 3), "NHWC", 1e-3)]):
        rng = _rng(300 + i)
        c = xs[-1] if layout == "NHWC" else xs[1]
        w = {"gamma": _r(rng, c), "beta": _r(rng, c), "mean": _r(rng, c),
             "var": rng.uniform(0.1, 2, c).astype(f32)}
        out.append((desc, Model([Layer("batch_norm", attrs={"eps": eps, "layout": layout},
                                       weights=w)]), _r(rng, *xs, scale=2)))
    return out


def _act_cases():
    out = []
    fns = [("relu", {}), ("linear", {}), ("tanh", {}), ("sigmoid", {}),
           ("hard_sigmoid", {"variant": "keras3"}), ("hard_sigmoid", {"variant": "keras2"}),
           ("softmax", {"axis": -1})]
    for i, (fn, extra) in enumerate(fns):
        rng = _rng(400 + i)
        x = _r(rng, 3, 6, scale=3)
        x[0, :2] = [0.0, -0.0]
        out.append((f"{fn} {extra}".strip(" {}"), Model([Layer(
            "activation", attrs=dict(extra, function=fn))]), x))
    return out


def _shape_cases():
    rng = _rng(500)
    x = _r(rng, 2, 3, 2, 2)
    return [("flatten NCHW", Model([Layer("flatten")]), x),
            ("reshape (12,) -> (3, 4)", Model([Layer("reshape", attrs={"shape": [3, 4]})]),
             x.reshape(2, 12)),
            ("dropout (identity at inference)", Model([Layer("dropout",
                                                              attrs={"rate": 0.5})]), x)]


def _residual_cases():
    rng = _rng(600)
    c = 3
    body = [Layer("conv2d", attrs={"padding": 1},
                  weights={"W": _r(rng, c, c, 3, 3, scale=0.2), "b": _r(rng, c)}),
            Layer("activation", attrs={"function": "relu"}),
            Layer("conv2d", attrs={"padding": 1}, weights={"W": _r(rng, c, c, 3, 3, scale=0.2)})]
    return [("x + conv(relu(conv(x)))", Model([Layer("residual", layers=body)]),
             _r(rng, 2, c, 4, 4))]


def _rnn_cases(kind):
    G = {"lstm": 4, "gru": 3, "mgu": 2, "simple_rnn": 1}[kind]
    variants = [dict(return_sequences=True), dict(return_sequences=False)]
    if kind == "gru":
        variants = [dict(return_sequences=True, reset_after=True),
                    dict(return_sequences=True, reset_after=False)]
    if kind == "simple_rnn":
        variants = [dict(return_sequences=True, activation="tanh"),
                    dict(return_sequences=False, activation="relu")]
    out = []
    for i, attrs in enumerate(variants):
        rng = _rng(700 + 10 * G + i)
        F, H = 3, 4
        w = {"W_ih": _r(rng, G * H, F, scale=0.5), "W_hh": _r(rng, G * H, H, scale=0.5),
             "b_ih": _r(rng, G * H, scale=0.5), "b_hh": _r(rng, G * H, scale=0.5)}
        desc = f"{kind} F={F} H={H} " + ", ".join(f"{k}={v}" for k, v in attrs.items())
        out.append((desc, Model([Layer(kind, attrs=attrs, weights=w)]), _r(rng, 2, 5, F)))
    return out


LAYER_FILES = {
    "dense": _dense_cases, "conv2d": _conv_cases,
    "conv1d": _conv1d_cases,
    "max_pool2d": lambda: _pool_cases("max_pool2d"),
    "avg_pool2d": lambda: _pool_cases("avg_pool2d"),
    "max_pool": lambda: _pool_nd_cases("max_pool"),
    "avg_pool": lambda: _pool_nd_cases("avg_pool"),
    "batch_norm": _bn_cases, "activation": _act_cases, "shape": _shape_cases,
    "residual": _residual_cases, "lstm": lambda: _rnn_cases("lstm"),
    "gru": lambda: _rnn_cases("gru"), "mgu": lambda: _rnn_cases("mgu"),
    "simple_rnn": lambda: _rnn_cases("simple_rnn"),
}


# -- quantizers ----------------------------------------------------------------------------
def _near_boundary(q, w):
    """1 where w is within one rounding of a cell boundary (see docs/CONFORMANCE.md)."""
    from refcomp.testing.quantized import _grid
    g = _grid(q, w)
    u = 2.0 ** -24 if w.dtype == f32 else 2.0 ** -53
    if g is None:
        return None
    t, zp, _, floor, _ = g
    zp = np.asarray(zp, np.float64)
    d = np.abs(t - np.round(t)) if floor else np.abs(t - (np.floor(t) + 0.5))
    return (d <= 4 * u * (np.abs(t) + np.abs(zp) + 1)).astype(np.uint8)


def _quant_inputs(i, shape=(4, 9)):
    """A (4, 9) float32 input: Gaussian rows, exact zeros, and a last row of exact
    ties (m + 1/2) * 2**-5 of the affine grid with scale 2**-5."""
    rng = _rng(900 + i)
    w = _r(rng, *shape, scale=0.5)
    w.reshape(-1)[:3] = [0.0, -0.0, 0.25]
    w[-1] = ((np.arange(shape[1]) - shape[1] // 2 + 0.5) * 2.0 ** -5).astype(f32)
    return w


QUANT_CASES = {
    "uniform": [("uniform(w, 3)", lambda w: Q.uniform(w, 3)),
                ("uniform(w, 2, grid='zero')", lambda w: Q.uniform(w, 2, grid="zero"))],
    "affine": [
        ("affine(w, 8, symmetric=True, narrow_range=True)  # int8 TFLite weights",
         lambda w: Q.affine(w, 8, symmetric=True, narrow_range=True)),
        ("affine(w, 8)  # uint8 asymmetric", lambda w: Q.affine(w, 8)),
        ("affine(w, 8, symmetric=True, axis=0)  # int8 per channel",
         lambda w: Q.affine(w, 8, symmetric=True, axis=0)),
        ("affine(w, 8, scale=2**-5, zero_point=3, signed=True)  # exact ties",
         lambda w: Q.affine(w, 8, scale=2.0 ** -5, zero_point=3, signed=True)),
        ("affine(w, 4, rounding='half_away')  # TFLite rounding",
         lambda w: Q.affine(w, 4, rounding="half_away")),
        ("affine(w, 8, scale_op='torch')  # torch.quantize_per_tensor",
         lambda w: Q.affine(w, 8, scale_op="torch"))],
    "fixed_point": [("fixed_point(w, 8, 5)", lambda w: Q.fixed_point(w, 8, 5)),
                    ("dynamic_fixed_point(w, 6)", lambda w: Q.dynamic_fixed_point(w, 6))],
    "minifloat": [("to_bfloat16(w)", lambda w: Q.to_bfloat16(w)),
                  ("to_float16(w)", lambda w: Q.to_float16(w)),
                  ("to_float8_e4m3fn(w, saturate=True)",
                   lambda w: Q.to_float8_e4m3fn(w, saturate=True)),
                  ("to_float8_e5m2(w)", lambda w: Q.to_float8_e5m2(w)),
                  ("minifloat(w, 3, 2, subnormals=False)",
                   lambda w: Q.minifloat(w, 3, 2, subnormals=False)),
                  ("to_float8_e4m3fnuz(w)", lambda w: Q.to_float8_e4m3fnuz(w)),
                  ("to_float8_e5m2fnuz(w, saturate=True)",
                   lambda w: Q.to_float8_e5m2fnuz(w, saturate=True)),
                  ("to_float4_e2m1(w)", lambda w: Q.to_float4_e2m1(w))],
    "posit": [("posit(w, 8, 0)", lambda w: Q.posit(w, 8, 0)),
              ("posit(w, 16, 1)", lambda w: Q.posit(w, 16, 1))],
    "power_of_two": [("power_of_two(w, 4)", lambda w: Q.power_of_two(w, 4))],
    "binary": [("binary(w)", lambda w: Q.binary(w)), ("xnor(w, axis=0)", lambda w: Q.xnor(w)),
               ("ternary(w)", lambda w: Q.ternary(w)),
               ("ternary_ttq(w, 0.5, 0.4)", lambda w: Q.ternary_ttq(w, 0.5, 0.4))],
    "kmeans": [("kmeans(w, bits=2)", lambda w: Q.kmeans(w, bits=2)),
               ("kmeans_optimal(w, bits=2)", lambda w: Q.kmeans_optimal(w, bits=2))],
    "product": [("product_quantize(w, n_subspaces=3, k=4, rng=default_rng(SEED))",
                 lambda w: Q.product_quantize(w, n_subspaces=3, k=4,
                                              rng=np.random.default_rng(SEED))),
                ("residual_quantize(w, n_stages=2, k=4, rng=default_rng(SEED))",
                 lambda w: Q.residual_quantize(w, n_stages=2, k=4,
                                               rng=np.random.default_rng(SEED)))],
    # Deep Compression weight sharing of a dense layer's W (a model-level call): the
    # input's exact zeros are pruned weights and get the zero code; the third case
    # replaces them by 1/8 (its own ``w``), so every code is a k-means centroid.
    "share_weights": [
        ("share_weights(Model([Layer('dense', weights={'W': w})]), 2)",
         lambda w: _shared_W(w, 2)),
        ("share_weights(Model([Layer('dense', weights={'W': w})]), 3, init='density')",
         lambda w: _shared_W(w, 3, init="density")),
        ("share_weights(Model([Layer('dense', weights={'W': w})]), 2)  # no zeros",
         lambda w: _shared_W(w, 2), lambda w: np.where(w == 0, f32(0.125), w))],
}


def _shared_W(w, bits, **kw):
    """The shared ``W`` of a one-dense-layer model (:func:`refcomp.quantize.share_weights`)."""
    model = Model([Layer("dense", weights={"W": w})])
    return Q.share_weights(model, bits, **kw).layers[0].weights["W"]


def _quant_file(path, name, cases):
    with _open(path) as f:
        _root(f, f"quantizer:{name}", len(cases),
              {"criterion": "codes and dequantized identical; where near_boundary is 1 a "
                            "correct implementation may pick the neighbouring code"})
        for i, (call, fn, *make_w) in enumerate(cases):
            w = _quant_inputs(i)
            if make_w:                                  # a case with its own input
                w = make_w[0](w)
            q = fn(w)
            g = f.create_group(f"case{i:04d}")
            _attr(g, "call", call)
            _data(g, "w", w)
            _data(g, "dequantized", q.dequantize())
            enc = g.create_group("encoded")                 # refcomp's format (FORMAT.md)
            q.to_hdf5(enc)
            for ds in list(enc):
                _retrack(enc, ds)
            if isinstance(q, Q.Quantized):
                _attr(g, "decoder", q.decoder)
                _attr(g, "method", q.method)
                _attr(g, "bits", q.bits)
                _data(g, "codes", q.codes)
                pg = g.create_group("params")
                for k, v in sorted(q.params.items()):
                    if isinstance(v, np.ndarray):
                        _data(pg, k, v)
                    else:
                        _attr(pg, k, v)
                nb = _near_boundary(q, w)
                if nb is not None:
                    _data(g, "near_boundary", nb)


def _retrack(group, name):
    """Rewrite a dataset written by a refcomp writer without chunks / filters / times."""
    obj = group[name]
    if isinstance(obj, h5py.Group):
        for sub in list(obj):
            _retrack(obj, sub)
        return
    data, attrs = obj[()], dict(obj.attrs)
    del group[name]
    group.create_dataset(name, data=data, track_times=False)
    for k, v in attrs.items():
        group[name].attrs[k] = v


# -- NNC (ISO/IEC 15938-17) levels and ONNX QuantizeLinear codes ----------------------------
# qp -20 at qp_density 2 is step 2**-5: the last input row holds exact ties of its grid.
NNC_CASES = [
    ("nnc_quantize(w, qp=-20, dq=False)  # uniform, step 2**-5 (exact ties)",
     dict(qp=-20, dq=False)),
    ("nnc_quantize(w, qp=-18, dq=False)  # uniform, step 0.046875", dict(qp=-18, dq=False)),
    ("nnc_quantize(w, qp=-20, qp_density=3, dq=False)", dict(qp=-20, qp_density=3, dq=False)),
    ("nnc_quantize(w, qp=-20)  # dependent quantization, 8 states", dict(qp=-20)),
    ("nnc_quantize(w, qp=-26)  # dependent quantization, 8 states", dict(qp=-26)),
    ("nnc_quantize(w, qp=-20, dq_states=4)  # VVC's 4-state trellis (not NNCodec)",
     dict(qp=-20, dq_states=4)),
]


def _nnc_file(path):
    with _open(path) as f:
        _root(f, "quantizer:nnc", len(NNC_CASES),
              {"criterion": "levels and dequantized identical"})
        for i, (call, kw) in enumerate(NNC_CASES):
            w = _quant_inputs(i)
            q = Q.nnc_quantize(w, **kw)
            g = f.create_group(f"case{i:04d}")
            _attr(g, "call", call)
            _attr(g, "method", "nnc")
            _attr(g, "qp", q.qp)
            _attr(g, "qp_density", q.qp_density)
            _attr(g, "dq", bool(q.dq))
            _attr(g, "dq_states", kw.get("dq_states", 8))
            _attr(g, "scan_order", q.scan_order)
            _data(g, "w", w)
            g.create_dataset("step", data=np.float32(q.step), track_times=False)  # 0-d
            _data(g, "levels", Q.nnc_levels(w, **kw))
            _data(g, "dequantized", q.dequantize())
            enc = g.create_group("encoded")                 # refcomp's format (FORMAT.md)
            q.to_hdf5(enc)
            for ds in list(enc):
                _retrack(enc, ds)


def _qdq_case(call, w, scale, zp, out, axis=1, block_size=0):
    return call, w, np.asarray(scale, f32), zp, out, axis, block_size


def _qdq_cases():
    import ml_dtypes
    w = [_quant_inputs(i) for i in range(7)]
    z = lambda v, t: np.asarray(v, getattr(ml_dtypes, t))  # noqa: E731
    return [
        _qdq_case("quantize_linear(w, 0.0625, int4(1))  # per tensor", w[0], 0.0625,
                  z(1, "int4"), "int4"),
        _qdq_case("quantize_linear(w, scale[4], uint4 zp[4], axis=0)  # per axis", w[1],
                  [0.05, 0.1, 0.03125, 0.2], z([8, 7, 0, 15], "uint4"), "uint4", axis=0),
        _qdq_case("quantize_linear(w, 0.25, output_dtype='int2')", w[2], 0.25, None, "int2"),
        _qdq_case("quantize_linear(w, 0.2, uint2(2))", w[3], 0.2, z(2, "uint2"), "uint2"),
        _qdq_case("quantize_linear(w, scale[4, 3], int8 zp[4, 3], axis=1, block_size=3)",
                  w[4], np.abs(_r(_rng(950), 4, 3, scale=0.01)) + f32(0.004),
                  _r(_rng(951), 4, 3, scale=3).round().astype(np.int8), "int8", axis=1,
                  block_size=3),
        _qdq_case("quantize_linear(w, scale[2, 9], int4 zp[2, 9], axis=0, block_size=2)",
                  w[5], np.full((2, 9), 0.0625, f32) * (1 + np.arange(18, dtype=f32)
                                                       .reshape(2, 9) % 3),
                  z(np.arange(18).reshape(2, 9) % 5 - 2, "int4"), "int4", axis=0,
                  block_size=2),
        _qdq_case("quantize_linear(w, scale[4, 2], uint4 zp[4, 2], axis=1, block_size=5)",
                  w[6], [[0.0625, 0.125], [0.03125, 0.1], [0.3, 0.0625], [0.02, 0.04]],
                  z([[8, 7], [0, 15], [3, 8], [8, 8]], "uint4"), "uint4", axis=1,
                  block_size=5),
    ]


def _qdq_file(path):
    from refcomp.quantize.qdq import dequantize_linear, quantize_linear
    cases = _qdq_cases()
    with _open(path) as f:
        _root(f, "quantizer:qdq", len(cases),
              {"criterion": "codes and dequantized identical (ONNX QuantizeLinear / "
                            "DequantizeLinear, opset 21)"})
        for i, (call, w, scale, zp, out, axis, bs) in enumerate(cases):
            codes = quantize_linear(w, scale, zp, axis=axis, block_size=bs,
                                    output_dtype=None if zp is not None else out)
            deq = dequantize_linear(codes, scale, zp, axis=axis, block_size=bs, x_type=out)
            g = f.create_group(f"case{i:04d}")
            _attr(g, "call", call)
            _attr(g, "method", "quantize_linear")
            _attr(g, "output_type", out)
            _attr(g, "axis", axis)
            _attr(g, "block_size", bs)
            _data(g, "w", w)
            _data(g, "scale", scale)
            if zp is not None:
                _data(g, "zero_point", zp.astype(codes.dtype))
            _data(g, "codes", codes)
            _data(g, "dequantized", deq)


EXTRA_QUANT_FILES = {"nnc": _nnc_file, "qdq": _qdq_file}


# -- driver --------------------------------------------------------------------------------
def generate(out):
    """Write every file into directory ``out``; return the sorted file names."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    names = []
    for kind, fn in LAYER_FILES.items():
        _layer_file(out / f"{kind}.h5", kind, fn())
        names.append(f"{kind}.h5")
    for name, cases in QUANT_CASES.items():
        _quant_file(out / f"quant_{name}.h5", name, cases)
        names.append(f"quant_{name}.h5")
    for name, write in EXTRA_QUANT_FILES.items():
        write(out / f"quant_{name}.h5")
        names.append(f"quant_{name}.h5")
    return sorted(names)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default=str(HERE))
    p.add_argument("--check", action="store_true")
    args = p.parse_args(argv)
    if args.check:
        with tempfile.TemporaryDirectory() as tmp:
            names = generate(tmp)
            bad = [n for n in names if not (HERE / n).exists()
                   or not filecmp.cmp(HERE / n, os.path.join(tmp, n), shallow=False)]
        print("identical" if not bad else "differ: " + ", ".join(bad))
        return 1 if bad else 0
    names = generate(args.out)
    print(f"wrote {len(names)} files to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
