"""``Model`` and ``Layer``: an ordered sequence of layers on plain weight arrays.

A model is data: each :class:`Layer` has a ``kind`` (see :data:`LAYER_KINDS`),
JSON-able ``attrs`` and named ``weights``.  A weight is an ndarray or a
compressed weight (:class:`refcomp.weights.CompressedWeight`, e.g.
:class:`refcomp.quantize.Quantized`).  The forward pass hands the ``W`` of
dense and conv2d layers to the layer functions of :mod:`refcomp.layers` as
is (a type's compute hook runs its own product, as documented by that
type; otherwise the layer decodes it) and decodes every other compressed
weight to an array of its original dtype; a model never knows which
algorithm produced its weights.
"""

import copy as _copy
import numbers
from collections.abc import Mapping

import numpy as np

from . import layers as L
from ._errors import FormatError, ParameterError, RefcompError, ShapeError
from ._validate import as_float_array, check_choice, describe
from .kernels.elementwise import relu_inplace
from .weights import CompressedWeight, materialize

__all__ = ["Layer", "Model", "LAYER_KINDS", "materialize", "weight_shape_problem",
           "check_shapes"]

#: kind -> (required weights, optional weights, attribute defaults)
#: recurrent options (``layout``: "batch_first" (N, T, F) or "time_major" (T, N, F), the layer
#: functions' option: a time-major layer takes and gives arrays with the batch on axis 1)
_RNN_OPTS = {"direction": "forward", "clip": None, "activations": None,
             "activation_alpha": None, "activation_beta": None, "sequence_lens": None,
             "layout": "batch_first"}
_RNN_REVERSE = ("W_ih_reverse", "W_hh_reverse", "b_ih_reverse", "b_hh_reverse")
#: constant initial states (B, H): B = 1 is broadcast over the batch, else the batch size
_RNN_STATES = ("h0", "h0_reverse")
_POOL_ND = {"size": 2, "stride": None, "padding": 0, "dilation": 1, "ceil_mode": False}
#: max pooling's ONNX ``Indices`` output: computed when ``return_indices`` is True and handed
#: out by :meth:`Model.forward_indices` (the layer still passes its pooled values on)
_INDICES = {"return_indices": False, "storage_order": 0}

LAYER_KINDS = {
    "dense": (("W",), ("b",), {"alpha": 1.0, "beta": 1.0}),
    "conv2d": (("W",), ("b",), {"stride": 1, "padding": 0, "dilation": 1, "groups": 1,
                                "layout": "NCHW"}),
    "conv1d": (("W",), ("b",), {"stride": 1, "padding": 0, "dilation": 1, "groups": 1}),
    "max_pool2d": ((), (), dict({"size": 2, "stride": None, "padding": 0, "layout": "NCHW",
                                 "dilation": 1, "ceil_mode": False}, **_INDICES)),
    "avg_pool2d": ((), (), {"size": 2, "stride": None, "padding": 0, "layout": "NCHW",
                            "count_include_pad": True, "dilation": 1, "ceil_mode": False}),
    "max_pool": ((), (), dict(_POOL_ND, **_INDICES)),
    "avg_pool": ((), (), dict(_POOL_ND, count_include_pad=True)),
    "flatten": ((), (), {"layout": "NCHW", "axis": 1}),
    "reshape": ((), (), {"shape": None}),
    "dropout": ((), (), {"rate": 0.0}),
    "activation": ((), (), {"function": "linear", "variant": "keras3", "axis": -1,
                            "alpha": 0.2, "beta": 0.5}),
    "batch_norm": (("gamma", "beta", "mean", "var"), (), {"eps": 1e-5, "layout": "NCHW",
                                                          "axis": None}),
    "lstm": (("W_ih", "W_hh"), ("b_ih", "b_hh", "P") + _RNN_REVERSE + ("P_reverse",)
             + _RNN_STATES + ("c0", "c0_reverse"),
             dict(_RNN_OPTS, return_sequences=True, input_forget=False)),
    "gru": (("W_ih", "W_hh"), ("b_ih", "b_hh") + _RNN_REVERSE + _RNN_STATES,
            dict(_RNN_OPTS, reset_after=True, return_sequences=True, update="standard")),
    "mgu": (("W_ih", "W_hh"), ("b_ih", "b_hh"), {"return_sequences": True}),
    "simple_rnn": (("W_ih", "W_hh"), ("b_ih", "b_hh") + _RNN_REVERSE + _RNN_STATES,
                   dict(_RNN_OPTS, activation="tanh", return_sequences=True)),
    "residual": ((), ("index_map",), {"layout": "NCHW"}),
}


#: gates per recurrent kind: W_ih is (G*H, F), W_hh (G*H, H), biases (G*H,)
RNN_GATES = {"lstm": 4, "gru": 3, "mgu": 2, "simple_rnn": 1}


def _wshape(v):
    """Shape of a weight as the layer sees it (a CSR's ``weight_shape``), or None."""
    shape = getattr(v, "weight_shape", None)
    if shape is None:
        shape = getattr(v, "shape", None)
    return None if shape is None else tuple(int(s) for s in shape)


def _fmt(shape):
    inner = ", ".join(str(s) for s in shape)
    return f"({inner},)" if len(shape) == 1 else f"({inner})"


def _quote(wname):
    return repr(wname)


def weight_shape_problem(kind, weights, attrs=None, *, name=_quote):
    """First inconsistency among the weight shapes of one layer, or None.

    The checks need no input shape: they compare the weights of one layer
    with each other.

    ========== ==============================================================
    dense      ``W`` 2-D (out, in); ``b`` (out,)
    conv2d     ``W`` 4-D (O, C/groups, kh, kw) with ``groups`` dividing O;
               ``b`` (O,)
    batch_norm ``gamma`` 1-D (C,); ``beta``, ``mean``, ``var`` (C,)
    recurrent  ``W_hh`` (G*H, H), ``W_ih`` (G*H, F), ``b_ih``, ``b_hh``
               (G*H,) with G = 4 (lstm), 3 (gru), 2 (mgu), 1 (simple_rnn)
    residual   ``index_map`` 1-D
    ========== ==============================================================

    Parameters
    ----------
    kind : str
        A key of :data:`LAYER_KINDS`.
    weights : mapping str -> array-like
        Weights by refcomp name; anything with ``shape`` (ndarrays,
        compressed weights, CSR matrices by their ``weight_shape``).
    attrs : mapping, optional
        Layer attributes (``groups`` of conv2d).
    name : callable, optional
        ``name(weight_name) -> str`` used in the message (default: the
        quoted refcomp name), e.g. to name a PyTorch tensor instead.

    Returns
    -------
    str or None
        ``"weight 'b' has shape (5,), expected (128,) (...)"``, naming the
        offending weight, its shape and the expected shape.
    """
    found = _shape_problem(kind, weights, attrs, name)
    return None if found is None else found[1]


def _shape_problem(kind, weights, attrs, name):
    """:func:`weight_shape_problem` as ``(weight_name, message)`` or None."""
    sh = {k: _wshape(v) for k, v in weights.items() if v is not None}

    def bad(w, expected, why):
        exp = expected if isinstance(expected, str) else _fmt(expected)
        return w, f"weight {name(w)} has shape {_fmt(sh[w])}, expected {exp} ({why})"

    def known(*ws):
        return all(sh.get(w) is not None for w in ws)

    if kind == "dense" and known("W"):
        W = sh["W"]
        if len(W) != 2:
            return bad("W", "2 dimensions (out, in)", "dense weight")
        if known("b") and sh["b"] != (W[0],):
            hint = ("; is the weight transposed? refcomp and PyTorch store (out, in)"
                    if sh["b"] == (W[1],) else "")
            return bad("b", (W[0],), f"one bias per output row of {name('W')} {_fmt(W)}{hint}")
    elif kind == "conv2d" and known("W"):
        W = sh["W"]
        if len(W) != 4:
            return bad("W", "4 dimensions (O, C/groups, kh, kw)", "conv2d weight, OIHW")
        groups = (attrs or {}).get("groups", 1)
        if isinstance(groups, int) and groups > 0 and W[0] % groups:
            return bad("W", f"(O, C/groups, kh, kw) with O a multiple of groups={groups}",
                       "grouped convolution")
        if known("b") and sh["b"] != (W[0],):
            return bad("b", (W[0],), f"one bias per output channel of {name('W')} {_fmt(W)}")
    elif kind == "batch_norm" and known("gamma"):
        g = sh["gamma"]
        if len(g) != 1:
            return bad("gamma", "1 dimension (C,)", "one scale per channel")
        for w in ("beta", "mean", "var"):
            if known(w) and sh[w] != g:
                return bad(w, g, f"one per channel, as {name('gamma')} {_fmt(g)}")
    elif kind in RNN_GATES and known("W_hh"):
        G, R = RNN_GATES[kind], sh["W_hh"]
        gates = f"{G}*H" if G > 1 else "H"
        if len(R) != 2:
            return bad("W_hh", f"2 dimensions ({gates}, H)", f"{kind} recurrent weight")
        H = R[1]
        if R != (G * H, H):
            return bad("W_hh", (G * H, H), f"({gates}, H) with H = {H} from its columns")
        if known("W_ih"):
            Wi = sh["W_ih"]
            if len(Wi) != 2 or Wi[0] != G * H:
                F = Wi[-1] if Wi else "F"
                return bad("W_ih", f"({G * H}, {F})" if len(Wi) == 2 else f"({G * H}, F)",
                           f"({gates}, features) with H = {H} from {name('W_hh')} {_fmt(R)}")
        for w in ("b_ih", "b_hh"):
            if known(w) and sh[w] != (G * H,):
                return bad(w, (G * H,), f"({gates},) with H = {H} from {name('W_hh')} "
                                        f"{_fmt(R)}")
        for w in ("h0", "c0", "h0_reverse", "c0_reverse"):
            if known(w) and (len(sh[w]) != 2 or sh[w][1] != H or sh[w][0] < 1):
                return bad(w, f"(B, {H})", f"a constant initial state: B = 1 (every sample) "
                                           f"or the batch size, H = {H} from {name('W_hh')} "
                                           f"{_fmt(R)}")
    elif kind == "residual" and known("index_map") and len(sh["index_map"]) != 1:
        return bad("index_map", "1 dimension", "kept channel indices")
    return None


def _index_map_problem(idx, channels=None):
    """First problem of a residual ``index_map``, or None.

    An index map lists, for each output channel of the block body, the
    shortcut channel it is added to: a 1-D integer ndarray of distinct
    entries in ``[0, channels)``.

    Parameters
    ----------
    idx : object
        The ``index_map`` weight.
    channels : int, optional
        Channels of the shortcut (when known): the exclusive upper bound.

    Returns
    -------
    str or None
        A message naming the offending entry, or None if ``idx`` is valid.
    """
    if not isinstance(idx, np.ndarray):
        return f"index_map must be a numpy integer array, got {type(idx).__name__}"
    if idx.dtype.kind not in "iu":
        return f"index_map must have an integer dtype, got {idx.dtype}"
    if idx.ndim != 1:
        return f"index_map must be 1-D (kept channel indices), got shape {_fmt(idx.shape)}"
    if idx.size == 0:
        return None
    lo, hi = int(idx.min()), int(idx.max())
    if lo < 0:
        return f"index_map holds the negative channel index {lo}"
    if channels is not None and hi >= channels:
        return (f"index_map holds the channel index {hi}, out of range for a shortcut "
                f"of {channels} channels")
    uniq, counts = np.unique(idx, return_counts=True)
    if uniq.size != idx.size:
        return f"index_map holds the channel index {int(uniq[counts > 1][0])} more than once"
    return None


def _located(exc, path=None, weight=None):
    """Attach the model path (``"3/0"``) and weight name an error refers to.

    :func:`refcomp.load` turns them into the HDF5 path of the offending
    group or dataset (``/layers/0003/layers/0000/weights/W``).
    """
    if path is not None and getattr(exc, "layer_path", None) is None:
        exc.layer_path = path
    if weight is not None and getattr(exc, "weight_name", None) is None:
        exc.weight_name = weight
    return exc


def _jsonable(v):
    if isinstance(v, (list, tuple)):
        return [_jsonable(a) for a in v]
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    if isinstance(v, np.bool_):
        return bool(v)
    return v


class Layer:
    """One layer: ``kind``, ``name``, ``attrs`` (JSON-able), ``weights`` (name -> array)."""

    __slots__ = ("kind", "name", "attrs", "weights", "layers")

    def __init__(self, kind, *, name=None, attrs=None, weights=None, layers=None):
        check_choice("kind", kind, LAYER_KINDS)
        required, optional, defaults = LAYER_KINDS[kind]
        self.kind = kind
        self.name = name or kind
        merged = dict(defaults)
        for k, v in (attrs or {}).items():
            if k not in defaults:
                raise ParameterError(f"layer {self.name!r} ({kind}): unknown attribute {k!r}; "
                                     f"known: {sorted(defaults)}")
            merged[k] = _jsonable(v)
        self.attrs = merged
        weights = dict(weights or {})
        for k in required:
            if weights.get(k) is None:
                raise FormatError(f"layer {self.name!r} ({kind}): missing weight {k!r}")
        for k in list(weights):
            if k not in required + optional:
                raise FormatError(f"layer {self.name!r} ({kind}): unknown weight {k!r}; "
                                  f"expected {list(required + optional)}")
            if weights[k] is None:
                del weights[k]
        found = _shape_problem(kind, weights, merged, _quote)
        if found is None and "index_map" in weights:
            problem = _index_map_problem(weights["index_map"])
            found = None if problem is None else ("index_map", problem)
        if found is not None:
            raise _located(FormatError(f"layer {self.name!r} ({kind}): {found[1]}"),
                           weight=found[0])
        self.weights = weights
        if kind == "residual":
            self.layers = list(layers or [])
        elif layers:
            raise FormatError(f"layer {self.name!r}: only 'residual' layers hold sub-layers")
        else:
            self.layers = None

    def w(self, name):
        """The decoded ndarray of weight ``name`` (None if absent)."""
        v = self.weights.get(name)
        return None if v is None else materialize(v)

    def copy(self):
        """Shallow copy: new dicts and sub-layer list, weight arrays shared."""
        return Layer(self.kind, name=self.name, attrs=_copy.deepcopy(self.attrs),
                     weights=dict(self.weights),
                     layers=[s.copy() for s in self.layers] if self.layers is not None else None)

    def n_params(self):
        """Number of weight elements (decoded shapes)."""
        n = sum(int(np.prod(v.shape)) for k, v in self.weights.items() if k != "index_map")
        return n + sum(s.n_params() for s in (self.layers or []))

    def __repr__(self):
        shapes = {k: tuple(v.shape) for k, v in self.weights.items()}
        return f"Layer({self.kind!r}, name={self.name!r}, attrs={self.attrs}, weights={shapes})"


def _w_operand(layer):
    """Weight W as the dense / conv2d layer takes it: a CompressedWeight is passed
    as is (the layer runs its compute hook or decodes it), anything else decoded."""
    w = layer.weights["W"]
    return w if isinstance(w, CompressedWeight) else layer.w("W")


def _pooled(out, layer, sink, path):
    """The pooled values of a max pooling call; its Indices go to ``sink[path]``."""
    if layer.attrs["return_indices"] is not True:
        return out
    y, idx = out
    if sink is not None:
        sink[path if path is not None else layer.name] = idx
    return y


def _forward_layer(layer, x, precision, path=None, sink=None):
    """Output of one layer on ``x``; ``path`` (model path such as ``"3"``) names
    the sub-layers of a residual block in errors (default: the block's name).
    ``sink``: a dict receiving ``{path: Indices}`` of max pooling layers with
    ``return_indices`` (None: they are computed and dropped)."""
    k, a = layer.kind, layer.attrs
    if k == "dense":
        extra = {} if a["alpha"] == 1.0 and a["beta"] == 1.0 else \
            {"alpha": a["alpha"], "beta": a["beta"]}
        return L.dense(x, _w_operand(layer), layer.w("b"), precision=precision, **extra)
    if k == "conv2d":
        return L.conv2d(x, _w_operand(layer), layer.w("b"), stride=a["stride"],
                        padding=a["padding"], dilation=a["dilation"], groups=a["groups"],
                        layout=a["layout"], precision=precision)
    if k == "conv1d":
        return L.conv1d(x, layer.w("W"), layer.w("b"), stride=a["stride"], padding=a["padding"],
                        dilation=a["dilation"], groups=a["groups"], precision=precision)
    if k == "max_pool2d":
        return _pooled(L.max_pool2d(x, a["size"], stride=a["stride"], padding=a["padding"],
                                    layout=a["layout"], dilation=a["dilation"],
                                    ceil_mode=a["ceil_mode"], return_indices=a["return_indices"],
                                    storage_order=a["storage_order"]),
                       layer, sink, path)
    if k == "avg_pool2d":
        return L.avg_pool2d(x, a["size"], stride=a["stride"], padding=a["padding"],
                            count_include_pad=a["count_include_pad"], layout=a["layout"],
                            precision=precision, dilation=a["dilation"],
                            ceil_mode=a["ceil_mode"])
    if k == "max_pool":
        return _pooled(L.max_pool(x, a["size"], stride=a["stride"], padding=a["padding"],
                                  dilation=a["dilation"], ceil_mode=a["ceil_mode"],
                                  return_indices=a["return_indices"],
                                  storage_order=a["storage_order"]), layer, sink, path)
    if k == "avg_pool":
        return L.avg_pool(x, a["size"], stride=a["stride"], padding=a["padding"],
                          dilation=a["dilation"], ceil_mode=a["ceil_mode"],
                          count_include_pad=a["count_include_pad"], precision=precision)
    if k == "flatten":
        return L.flatten(x, layout=a["layout"], axis=a["axis"])
    if k == "reshape":
        return L.reshape(x, a["shape"])
    if k == "dropout":
        return x
    if k == "activation":
        f = a["function"]
        if f == "hard_sigmoid":
            return L.hard_sigmoid(x, variant=a["variant"], alpha=a["alpha"], beta=a["beta"],
                                  precision=precision)
        if f in ("softmax", "log_softmax"):
            fn = L.softmax if f == "softmax" else L.log_softmax
            return fn(x, a["axis"], precision=precision)
        from .layers.activations import apply_activation
        return apply_activation(f, x, precision=precision)
    if k == "batch_norm":
        return L.batch_norm(x, layer.w("gamma"), layer.w("beta"), layer.w("mean"), layer.w("var"),
                            eps=a["eps"], layout=a["layout"], precision=precision,
                            axis=a["axis"])
    if k in ("lstm", "gru", "mgu", "simple_rnn"):
        return _recurrent(layer, x, precision)
    if k == "residual":
        return _residual(layer, x, precision, path, sink)
    raise FormatError(f"unknown layer kind {k!r}")  # unreachable: kinds checked on construction


def _recurrent(layer, x, precision):
    """Forward pass of a recurrent layer: its attributes as keyword options (the classic
    path when every option has its default)."""
    k, a = layer.kind, layer.attrs
    fn = {"lstm": L.lstm, "gru": L.gru, "mgu": L.mgu, "simple_rnn": L.simple_rnn}[k]
    extra = {}
    if k == "gru":
        extra["reset_after"] = a["reset_after"]
        if a["update"] != "standard":
            extra["update"] = a["update"]
    if k == "simple_rnn":
        extra["activation"] = a["activation"]
    if k != "mgu":
        for opt in ("direction", "clip", "activations", "activation_alpha", "activation_beta",
                    "layout"):
            if a[opt] != LAYER_KINDS[k][2][opt]:
                extra[opt] = a[opt]
        if k == "lstm":
            if a["input_forget"]:
                extra["input_forget"] = True
            if layer.weights.get("P") is not None:
                extra["peepholes"] = layer.w("P")
        if a["direction"] == "bidirectional":
            rev = {w[:-len("_reverse")]: layer.w(w) for w in _RNN_REVERSE}
            if k == "lstm" and layer.weights.get("P_reverse") is not None:
                rev["peepholes"] = layer.w("P_reverse")
            extra["reverse"] = rev
        if a["sequence_lens"] is not None:
            extra["sequence_lens"] = _sequence_lens(layer, x)
        extra.update(_initial_states(layer, x))
    seq, _ = fn(x, layer.w("W_ih"), layer.w("W_hh"), layer.w("b_ih"), layer.w("b_hh"),
                return_sequences=a["return_sequences"], precision=precision, **extra)
    return seq


def _batch_size(layer, x):
    """Samples in a recurrent layer's input: axis 0, or axis 1 when time-major."""
    if x.ndim != 3:
        return 0
    return x.shape[1] if layer.attrs.get("layout") == "time_major" else x.shape[0]


def _sequence_lens(layer, x):
    """The ``sequence_lens`` attribute (one length per sample: a fixed batch size)."""
    lens = np.asarray(layer.attrs["sequence_lens"])
    if lens.ndim != 1 or lens.dtype.kind not in "iu":
        raise ParameterError(f"layer {layer.name!r} ({layer.kind}): attribute sequence_lens "
                             f"must list one integer length per sample, got "
                             f"{layer.attrs['sequence_lens']!r}")
    n = _batch_size(layer, x)
    if x.ndim == 3 and n == 0:
        return lens[:0].astype(np.int64)       # an empty batch (output_shapes' probe)
    if x.ndim == 3 and lens.shape[0] != n:
        raise ShapeError(f"layer {layer.name!r} ({layer.kind}): attribute sequence_lens holds "
                         f"{lens.shape[0]} lengths (a fixed batch size) but x {describe(x)} "
                         f"has {n} samples")
    return lens.astype(np.int64)


def _initial_states(layer, x):
    """The constant initial states as the layer functions take them: ``h0`` / ``c0`` (N, H),
    or (2, N, H) with the reverse direction's; (1, H) is broadcast to every sample, a missing
    direction's state is zeros; an empty batch takes none of the rows."""
    out = {}
    bidi = layer.attrs["direction"] == "bidirectional"
    n = _batch_size(layer, x)
    for s in ("h0", "c0"):
        names = (s, s + "_reverse") if bidi else (s,)
        got = [layer.w(k) for k in names]
        if all(v is None for v in got):
            continue
        H = layer.weights["W_hh"].shape[1]
        full = []
        for k, v in zip(names, got):
            if v is None:
                full.append(np.zeros((n, H), dtype=x.dtype))
                continue
            if v.shape[0] not in (1, n) and n:     # n = 0: an empty batch (shape probe)
                raise ShapeError(f"layer {layer.name!r} ({layer.kind}): initial state {k!r} "
                                 f"{describe(v)} holds {v.shape[0]} samples (a fixed batch "
                                 f"size) but x {describe(x)} has {n}")
            full.append(np.ascontiguousarray(np.broadcast_to(v[:1], (n, H)) if n == 0 or
                                             v.shape[0] == 1 else v))
        out[s] = full[0] if not bidi else np.stack(full)
    return out


def _residual(layer, x, precision, path=None, sink=None):
    fx = x
    prefix = layer.name if path is None else path
    for i, sub in enumerate(layer.layers):
        fx = _run_layer(sub, fx, precision, f"{prefix}/{i}", sink)
    channel_axis = x.ndim - 1 if (x.ndim == 4 and layer.attrs["layout"] == "NHWC") else 1
    idx = layer.weights.get("index_map")
    if idx is None:
        if fx.shape != x.shape:
            raise ShapeError(f"residual block {layer.name!r}: block output {fx.shape} differs "
                             f"from shortcut {x.shape} and there is no index_map")
        # One float addition per element, rounded to the dtype (exact IEEE add).
        return x + fx
    if x.ndim < 2:
        raise ShapeError(f"residual block {layer.name!r}: an index_map needs an input with a "
                         f"channel axis, got {describe(x)}")
    problem = _index_map_problem(idx, x.shape[channel_axis])
    if problem:
        raise _located(ShapeError(f"residual block {layer.name!r}: {problem}"),
                       weight="index_map")
    expect = list(x.shape)
    expect[channel_axis] = idx.size
    if list(fx.shape) != expect:
        # located at the block's last layer (whose output it is); the message also
        # names the index_map, the other side of the comparison
        last = f"{path}/{len(layer.layers) - 1}" if path is not None and layer.layers else None
        raise _located(ShapeError(f"residual block {layer.name!r}: block output {fx.shape} "
                                  f"(of its last layer) does not match the shortcut {x.shape} "
                                  f"restricted to the {idx.size} channels of its index_map"),
                       path=last)
    # Selective addition (seed 003 §4.5): kept channels get the block output.
    y = x.copy()
    sl = [slice(None)] * x.ndim
    sl[channel_axis] = idx
    y[tuple(sl)] = x[tuple(sl)] + fx
    return y


def _is_relu(layer):
    return layer.kind == "activation" and layer.attrs.get("function") == "relu"


def _run_layer(layer, x, precision, path, sink=None):
    try:
        return _forward_layer(layer, x, precision, path, sink)
    except RefcompError as exc:
        msg = str(exc)
        if getattr(exc, "layer_path", None) is not None:
            raise                                   # already located in a sub-layer
        if msg.startswith("layer "):
            raise _located(exc, path)
        new = type(exc)(f"layer {path} ({layer.kind} {layer.name!r}): {msg}")
        raise _located(new, path, getattr(exc, "weight_name", None)
                       or _weight_named_in(layer, msg)) from None
    except Exception as exc:                        # not refcomp's: only record where it arose
        if getattr(exc, "layer_path", None) is None:
            try:
                exc.layer_path = path
            except AttributeError:                  # exception types without a __dict__
                pass
        raise


def _weight_named_in(layer, msg):
    """The weight a layer-function message starts with (``"b has dtype ..."``), or None."""
    first = msg.split(" ", 1)[0].strip("'\":,")
    return first if first in layer.weights else None


def _layer_ref(path, layer):
    return f"layer {path} ({layer.kind} {layer.name!r})"


def check_shapes(layers, *, name=None, prefix=""):
    """Check weight shapes without an input shape: within each layer and between layers.

    Within a layer see :func:`weight_shape_problem`.  Between layers, the
    feature or channel count produced by a dense, conv2d or recurrent layer
    is followed through activations, dropout, batch_norm, pooling (same
    layout) and residual blocks to the next weighted layer, which must
    consume exactly that many:

    * dense or recurrent after dense or recurrent: ``W.shape[1]`` (``W_ih``
      columns) equals the previous output size;
    * conv2d after conv2d (same layout): ``C/groups * groups`` equals the
      previous output channels;
    * batch_norm: its length equals the incoming features or channels;
    * a residual block's output matches its shortcut (or its ``index_map``).

    Flatten and reshape end the chain (the size after them depends on the
    input's spatial size); with an ``input_shape`` a :class:`Model` checks
    everything by a zero-batch forward pass instead.

    Parameters
    ----------
    layers : list of Layer
    name : callable, optional
        ``name(path, layer, weight_name) -> str`` naming a weight in messages
        (default: the quoted refcomp weight name).
    prefix : str
        Path prefix of ``layers`` (``"3/"`` inside residual block 3).

    Raises
    ------
    FormatError
        A layer whose own weights disagree (e.g. a bias of the wrong length).
    ShapeError
        Two layers whose shapes do not fit, naming both layers, the weight,
        its shape and the expected shape.
    """
    _chain(list(layers), None, name or (lambda path, layer, w: repr(w)), prefix)


def _chain(layers, state, name, prefix):
    """Walk ``layers`` from ``state`` = (axis, n, layout, source) or None; return the end state.

    axis is "last" (the features of a dense / recurrent output) or "chan" (the
    channels of an image in ``layout``); source describes the producing layer.
    """
    for i, layer in enumerate(layers):
        path = f"{prefix}{i}"
        k, a = layer.kind, layer.attrs

        def nm(w, path=path, layer=layer):
            return name(path, layer, w)
        found = _shape_problem(k, layer.weights, a, nm)
        if found is None and "index_map" in layer.weights:
            problem = _index_map_problem(layer.weights["index_map"])
            found = None if problem is None else ("index_map", problem)
        if found:
            raise _located(FormatError(f"{_layer_ref(path, layer)}: {found[1]}"), path, found[0])
        sh = {w: _wshape(v) for w, v in layer.weights.items()}

        def need(w, got, expected, n, what):
            raise _located(ShapeError(
                f"{_layer_ref(path, layer)}: weight {nm(w)} has shape {_fmt(got)}, expected "
                f"{expected}: its {what} must equal the {n} "
                f"{'channels' if state[0] == 'chan' else 'features'} produced by {state[3]}"),
                path, w)
        if k == "dense":
            W = sh["W"]
            if W is None:
                state = None
                continue
            if state and state[0] == "last" and W[1] != state[1]:
                need("W", W, _fmt((W[0], state[1])), state[1], "input size (columns)")
            state = ("last", W[0], None, _layer_ref(path, layer))
        elif k == "conv2d":
            W = sh["W"]
            if W is None:
                state = None
                continue
            g = a["groups"] if isinstance(a["groups"], int) else 1
            if state and state[0] == "chan" and state[2] == a["layout"] \
                    and W[1] * g != state[1]:
                exp = _fmt((W[0], state[1] // g) + W[2:]) if state[1] % g == 0 else \
                    f"(O, C/groups, kh, kw) with groups={g} dividing C"
                need("W", W, exp, state[1], f"input channels (axis 1) x groups={g}")
            state = ("chan", W[0], a["layout"], _layer_ref(path, layer))
        elif k == "batch_norm":
            c = sh["gamma"]
            if state and c is not None and (state[0] == "last" or state[2] == a["layout"]) \
                    and c[0] != state[1]:
                need("gamma", c, _fmt((state[1],)), state[1], "length")
        elif k in RNN_GATES:
            Wi, Wh = sh["W_ih"], sh["W_hh"]
            if state and state[0] == "last" and Wi is not None and Wi[1] != state[1]:
                need("W_ih", Wi, _fmt((Wi[0], state[1])), state[1], "input size (columns)")
            ndir = 2 if a.get("direction") == "bidirectional" else 1
            state = None if Wh is None else ("last", Wh[1] * ndir, None, _layer_ref(path, layer))
        elif k in ("max_pool2d", "avg_pool2d"):
            if not (state and state[0] == "chan" and state[2] == a["layout"]):
                state = None
        elif k in ("conv1d", "max_pool", "avg_pool"):
            state = None
        elif k in ("flatten", "reshape"):
            state = None
        elif k == "residual":
            end = _chain(layer.layers or [], state, name, f"{path}/")
            idx = sh.get("index_map")
            if end and idx is not None and end[1] != idx[0]:
                raise _located(ShapeError(
                    f"{_layer_ref(path, layer)}: the block ends with {end[1]} "
                    f"{'channels' if end[0] == 'chan' else 'features'} ({end[3]}) but its "
                    f"index_map has {idx[0]} entries"), path, "index_map")
            if idx is not None and state and state[0] == "chan" and state[2] == a["layout"]:
                problem = _index_map_problem(layer.weights["index_map"], state[1])
                if problem:
                    raise _located(ShapeError(f"{_layer_ref(path, layer)}: {problem} (from "
                                              f"{state[3]})"), path, "index_map")
            if end and idx is None and state and end[0] == state[0] and end[1] != state[1]:
                raise _located(ShapeError(
                    f"{_layer_ref(path, layer)}: the block ends with {end[1]} "
                    f"{'channels' if end[0] == 'chan' else 'features'} ({end[3]}) but the "
                    f"shortcut carries {state[1]} (from {state[3]}) and there is no "
                    "index_map"), path)
            if state is None and idx is None:
                state = end
        # activation, dropout: shapes unchanged
    return state


def _input_shape(shape):
    """``shape`` as a tuple of non-negative ints; ParameterError otherwise."""
    try:
        items = list(shape)
    except TypeError:
        raise ParameterError(f"input_shape must be a sequence of integers, got "
                             f"{shape!r}") from None
    out = []
    for s in items:
        if isinstance(s, (bool, np.bool_)):
            ok = False
        elif isinstance(s, (numbers.Integral, np.integer)):
            ok = True
        else:
            ok = isinstance(s, (float, np.floating)) and float(s).is_integer()
        if not ok or int(s) < 0:
            raise ParameterError(f"input_shape must hold non-negative integers, got "
                                 f"{tuple(items)!r}")
        out.append(int(s))
    return tuple(out)


class Model:
    """An ordered sequence of :class:`Layer` objects.

    Parameters
    ----------
    layers : list of Layer
    name : str
    input_shape : tuple of int, optional
        Shape of one input sample (without the batch axis).  When given,
        shapes are checked between consecutive layers at construction and
        on load by a zero-batch forward pass (:class:`ShapeError`); without
        it, by :func:`check_shapes` as far as decidable without the input
        shape.  Each layer's own weights are always checked
        (:func:`weight_shape_problem`, :class:`FormatError`).
    metadata : dict, optional
        JSON-able provenance (seeds, versions, accuracy...), saved with the model.

    Raises
    ------
    ParameterError
        ``input_shape`` is not a sequence of non-negative integers (integral
        floats are accepted), or ``metadata`` is not a mapping.
    FormatError
        A layer whose own weights disagree, or a malformed residual
        ``index_map``.
    ShapeError
        Shapes that do not fit between layers, or an ``index_map`` entry
        outside the shortcut's channels.
    """

    def __init__(self, layers, *, name="model", input_shape=None, metadata=None):
        self.layers = list(layers)
        for i, layer in enumerate(self.layers):
            if not isinstance(layer, Layer):
                raise ParameterError(f"layers[{i}] must be a refcomp.Layer, got "
                                     f"{type(layer).__name__}")
        self.name = str(name)
        self.input_shape = None if input_shape is None else _input_shape(input_shape)
        if metadata is not None and not isinstance(metadata, Mapping):
            raise ParameterError(f"metadata must be a dict (JSON object), got "
                                 f"{type(metadata).__name__}")
        self.metadata = dict(metadata or {})
        self._check()

    def _check(self):
        if self.input_shape is not None:
            self.output_shapes()
        else:
            check_shapes(self.layers)

    # -- structure --------------------------------------------------------------
    def named_layers(self):
        """Yield ``(path, layer)`` depth first; paths "0", "1", "3/0" (inside residual 3)."""
        def walk(seq, prefix):
            for i, layer in enumerate(seq):
                path = f"{prefix}{i}"
                yield path, layer
                if layer.layers is not None:
                    yield from walk(layer.layers, path + "/")
        yield from walk(self.layers, "")

    def get_layer(self, path):
        """The layer at ``path`` (as given by :meth:`named_layers`)."""
        seq, layer = self.layers, None
        for part in str(path).split("/"):
            try:
                layer = seq[int(part)]
            except (ValueError, IndexError, TypeError):
                raise ParameterError(f"no layer at path {path!r}") from None
            seq = layer.layers or []
        return layer

    def copy(self):
        """Structural copy; weight arrays are shared (they are never mutated in place)."""
        return Model([l.copy() for l in self.layers], name=self.name,
                     input_shape=self.input_shape, metadata=_copy.deepcopy(self.metadata))

    def replace_weights(self, mapping):
        """New model with ``{(path, weight_name): value}`` replaced (None removes an optional weight)."""
        new = self.copy()
        for (path, wname), value in mapping.items():
            layer = new.get_layer(path)
            required, optional, _ = LAYER_KINDS[layer.kind]
            if wname not in required + optional:
                raise ParameterError(f"layer {path} ({layer.kind}) has no weight {wname!r}")
            if value is None:
                if wname in required:
                    raise ParameterError(f"weight {wname!r} of layer {path} is required")
                layer.weights.pop(wname, None)
            else:
                layer.weights[wname] = value
        new._check()
        return new

    def n_params(self):
        return sum(l.n_params() for l in self.layers)

    # -- forward ----------------------------------------------------------------
    def __call__(self, x, *, precision="reference"):
        """Run the forward pass on a batch ``x`` (N, *input_shape); see :mod:`refcomp.layers`."""
        self._check_input(x)
        return self.forward_from(0, x, precision=precision)

    def _check_input(self, x):
        as_float_array("x", x)
        if self.input_shape is not None and tuple(x.shape[1:]) != self.input_shape:
            raise ShapeError(f"x must have shape (N, {', '.join(map(str, self.input_shape))}) "
                             f"for model {self.name!r}, got {describe(x)}")

    def forward_indices(self, x, *, precision="reference"):
        """The forward pass and the ``Indices`` of every max pooling layer that returns them.

        Layers of kind ``max_pool2d`` / ``max_pool`` with the attribute
        ``return_indices=True`` (ONNX MaxPool's second output; attribute
        ``storage_order`` 0 or 1) compute, besides their pooled values, the
        int64 flat index of each selected element as
        :func:`refcomp.layers.max_pool` defines it (over the layer's whole
        input, batch and channels included; among equal values the first in
        row-major window order wins).  The output equals ``self(x, precision=precision)``
        bit for bit; ``self(x)`` computes such indices and drops them.

        Returns
        -------
        y : ndarray
            The model's output.
        indices : dict
            ``{path: int64 ndarray}`` in forward order, one entry per max
            pooling layer with ``return_indices=True``; ``path`` as in
            :meth:`named_layers` (``"3"``, or ``"3/1"`` inside residual
            block 3).  :func:`refcomp.io.onnx.graph_outputs` orders them as
            an imported graph's outputs.
        """
        self._check_input(x)
        sink = {}
        return self.forward_from(0, x, precision=precision, _sink=sink), sink

    def forward_all(self, x, *, precision="reference"):
        """Outputs after every top-level layer: list of arrays (index i = after layer i)."""
        outs = []
        for i, layer in enumerate(self.layers):
            x = _run_layer(layer, x, precision, str(i))
            outs.append(x)
        return outs

    def forward_from(self, start, x, *, precision="reference", _sink=None):
        """Run top-level layers ``start, start+1, ...`` on the activation ``x``.

        A ReLU activation right after a dense or conv2d layer is applied in
        place to that layer's fresh output (same bits as the separate layer,
        whose arithmetic does not depend on ``precision``: one memory pass and
        no allocation fewer).  ``_sink``: see :meth:`forward_indices`.
        """
        i = start
        while i < len(self.layers):
            layer = self.layers[i]
            y = _run_layer(layer, x, precision, str(i), _sink)
            if (layer.kind in ("dense", "conv2d")
                    and i + 1 < len(self.layers) and _is_relu(self.layers[i + 1])
                    and not np.may_share_memory(y, x)):
                relu_inplace(y)
                i += 1
            x = y
            i += 1
        return x

    def output_shapes(self, dtype=np.float32):
        """Per top-level layer output shape (without batch), by a zero-batch forward pass.

        Raises ShapeError naming the first layer whose shapes do not fit.
        """
        if self.input_shape is None:
            raise ParameterError(f"model {self.name!r} has no input_shape")
        dtype = self._dtype() or dtype
        x = np.zeros((0,) + self.input_shape, dtype=dtype)
        return [tuple(o.shape[1:]) for o in self.forward_all(x, precision="fast")]

    def _dtype(self):
        for _, layer in self.named_layers():
            for v in layer.weights.values():
                dt = getattr(v, "dtype", None)
                if dt is not None and np.dtype(dt).kind == "f":
                    return np.dtype(dt)
        return None

    # -- reporting ----------------------------------------------------------------
    def layer_table(self):
        """Per-layer rows: path, kind, name, output shape, params, bytes (as stored)."""
        shapes = None
        if self.input_shape is not None:
            try:
                shapes = self.output_shapes()
            except ShapeError:
                shapes = None
        rows = []
        for path, layer in self.named_layers():
            own = {k: v for k, v in layer.weights.items() if k != "index_map"}
            params = sum(int(np.prod(v.shape)) for v in own.values())
            nbytes = sum(_stored_bytes(v) for v in layer.weights.values())
            top = "/" not in path
            rows.append({"path": path, "kind": layer.kind, "name": layer.name,
                         "output_shape": shapes[int(path)] if (shapes and top) else None,
                         "params": params, "bytes": nbytes,
                         "encodings": {k: _encoding_name(v) for k, v in layer.weights.items()}})
        return rows

    def summary(self):
        """Human-readable table of :meth:`layer_table` with totals (a str)."""
        rows = self.layer_table()
        lines = [f"Model {self.name!r}  input_shape={self.input_shape}",
                 f"{'path':<7}{'kind':<12}{'name':<18}{'output':<18}{'params':>10}{'bytes':>12}"]
        for r in rows:
            out = "" if r["output_shape"] is None else str(r["output_shape"])
            lines.append(f"{r['path']:<7}{r['kind']:<12}{r['name'][:17]:<18}{out:<18}"
                         f"{r['params']:>10}{r['bytes']:>12}")
        lines.append(f"total params {sum(r['params'] for r in rows)}, "
                     f"bytes {sum(r['bytes'] for r in rows)}")
        return "\n".join(lines)

    def __repr__(self):
        return f"Model({self.name!r}, {len(self.layers)} layers, {self.n_params()} params)"


def _stored_bytes(v):
    if isinstance(v, np.ndarray):
        return int(v.nbytes)
    bits = getattr(v, "stored_bits", None)
    if callable(bits):
        return (int(bits()) + 7) // 8
    return int(materialize(v).nbytes)


def _encoding_name(v):
    return "raw" if isinstance(v, np.ndarray) else type(v).__name__
