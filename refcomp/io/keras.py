"""Import Keras models (HDF5 / ``.keras``) as :class:`refcomp.Model`, without Keras.

Reads, with h5py and json only (FACTS.md §4):

* the legacy full-model HDF5 (``model.save("m.h5")``): root attribute
  ``model_config`` plus group ``model_weights``; tf.keras 2 weight names
  (``dense/kernel:0``) and Keras 3 ones (``dense/kernel``) alike, because
  weights are taken in the order of each layer's ``weight_names`` attribute
  (trainable then non-trainable), never by name;
* the legacy weights-only HDF5 (``layer_names`` on the root) and the Keras 3
  ``.weights.h5`` (``layers/<snake_case>/vars/0..``), both with a separate
  config (``config=`` a dict or JSON file; by default ``<stem>.config.json``
  or ``config.json`` next to the weights);
* the Keras 3 ``.keras`` zip (``config.json`` + ``model.weights.h5``).

Supported layers: InputLayer, Dense, Conv2D, MaxPooling2D,
AveragePooling2D, Flatten, Reshape, Activation, ReLU, Softmax, Dropout,
BatchNormalization, LSTM, GRU (both ``reset_after``), SimpleRNN, Add (a
two-input Add whose one input is an ancestor of the other becomes a
``residual`` layer).  Everything else raises :class:`FormatError` naming
the layer and its class; so do unsupported options (e.g. ``return_state``,
``go_backwards``, LSTM activations other than tanh/sigmoid).

Layout.  ``layout="NCHW"`` (default) gives refcomp's canonical model:
kernels HWIO -> OIHW, image tensors NCHW, and the Dense kernel after a
Flatten of an image permuted from Keras's (h, w, c) to (c, h, w) order
(:func:`refcomp.convert.dense_from_keras_after_flatten`), so the model
matches one built from PyTorch.  A model whose *input* is an image then
takes NCHW input (transpose your NHWC data once); ``Reshape`` to an image is
supported when it has one channel.  ``layout="NHWC"`` keeps Keras's
channels_last tensors everywhere (no permutation at all).  Either way every
conversion only moves values: the imported weights equal the file's bits.
"""

import io
import json
import os
import re
import zipfile

import numpy as np

from .._errors import FormatError, RefcompError
from .._validate import check_choice
from .. import convert
from ..model import Layer, Model
from . import _format
from ._format import _CORRUPT, _one_line
from ._h5check import _Reader, _check_global_heaps, _check_heaps_in

__all__ = ["load", "SUPPORTED_LAYERS"]

SUPPORTED_LAYERS = ("InputLayer", "Dense", "Conv2D", "MaxPooling2D", "AveragePooling2D",
                    "Flatten", "Reshape", "Activation", "ReLU", "Softmax", "Dropout",
                    "BatchNormalization", "LSTM", "GRU", "SimpleRNN", "Add")
_ACTIVATIONS = ("relu", "sigmoid", "hard_sigmoid", "tanh", "softmax", "linear")


# -- residual graphs (shared with refcomp.io.onnx) --------------------------------------
def add_chains(a, b, where):
    """Merge two layer chains meeting in an elementwise Add into one chain.

    ``a`` and ``b`` are tuples of :class:`Layer` objects applied to the
    model input.  When one is a prefix of the other (compared by identity),
    the Add is ``x + f(x)`` with ``x`` the shorter chain and ``f`` the rest:
    the result is ``shorter + (residual(f),)``.  Anything else (two branches
    that both transform x, e.g. a projection shortcut) raises FormatError.
    """
    for short, long_ in ((a, b), (b, a)):
        n = len(short)
        if len(long_) > n and all(p is q for p, q in zip(short, long_[:n])):
            return short + (Layer("residual", name=where, layers=list(long_[n:])),)
    raise FormatError(f"{where}: Add of two branches that are not 'x + f(x)' (identity "
                      "shortcut) is not supported")


def out_shape(layer, shape, dtype=np.float32):
    """Per-sample output shape of ``layer`` on per-sample input ``shape``."""
    try:
        return Model([layer], input_shape=shape).output_shapes(dtype)[-1]
    except RefcompError as exc:
        raise FormatError(f"layer {layer.name!r}: {exc}") from None


# -- reading config and weights ---------------------------------------------------------
def _h5py():
    import h5py
    return h5py


def _text(v):
    return v.decode("utf-8") if isinstance(v, bytes) else v


def _attr_list(obj, name):
    """A list-of-strings attribute, joining Keras's chunked ``name0, name1...``."""
    try:
        if name in obj.attrs:
            vals = list(obj.attrs[name])
        else:
            vals, i = [], 0
            while f"{name}{i}" in obj.attrs:
                vals.extend(obj.attrs[f"{name}{i}"])
                i += 1
        out = [_text(v) for v in vals]
        if not all(isinstance(v, str) and v.encode("utf-8") for v in out):
            out = None
    except (TypeError, UnicodeError):   # a scalar where Keras writes a list; bad bytes
        out = None
    if out is None:
        raise FormatError(f"{obj.name}: attribute {name!r} is not a list of names")
    return out


def _snake(name):
    # Keras's to_snake_case (keras.src.utils.naming), used for .weights.h5 paths.
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _array(ds, where, reader):
    h5py = _h5py()
    if not isinstance(ds, h5py.Dataset):
        raise FormatError(f"{where}: expected a dataset")
    # size checked from the header (against the file and the limits) before reading
    reader.dataset(ds, where)
    if ds.dtype not in (np.float32, np.float64):
        raise FormatError(f"{where}: unsupported weight dtype {ds.dtype} (float32/float64)")
    return ds[()]


class _LegacyWeights:
    def __init__(self, f, reader):
        self.reader = reader
        self.root = f if "layer_names" in f.attrs or "model_weights" not in f \
            else f["model_weights"]
        self.names = _attr_list(self.root, "layer_names")
        if not self.names and not any(a.startswith("layer_names") for a in self.root.attrs):
            raise FormatError("no 'model_weights' group with a 'layer_names' attribute")

    def get(self, name, cls):
        if name not in self.root:
            raise FormatError(f"layer {name!r} ({cls}): no weight group in the file")
        g = self.root[name]
        out = []
        for wn in _attr_list(g, "weight_names"):
            if wn not in g:
                raise FormatError(f"layer {name!r} ({cls}): weight {wn!r} is listed in "
                                  "weight_names but missing")
            out.append(_array(g[wn], f"{g.name}/{wn}", self.reader))
        return out


class _V3Weights:
    def __init__(self, f, order, reader):
        h5py = _h5py()
        self.reader = reader
        self.groups = {}
        if "layers" not in f:
            raise FormatError("Keras weights file has no 'layers' group")
        by_attr, counts = {}, {}
        for key in f["layers"]:
            v = f["layers"][key].get("vars")
            if isinstance(v, h5py.Group) and "name" in v.attrs:
                lname = _text(v.attrs["name"])
                if not isinstance(lname, str):
                    raise FormatError(f"{v.name}: attribute 'name' is not a layer name")
                by_attr[lname] = f["layers"][key]
        for name, cls in order:      # Keras's unique snake_case naming (saving_lib)
            base = _snake(cls)
            k = counts.get(base, 0)
            counts[base] = k + 1
            key = base if k == 0 else f"{base}_{k}"
            self.groups[name] = by_attr.get(name, f["layers"].get(key))

    def get(self, name, cls):
        g = self.groups.get(name)
        if g is None:
            raise FormatError(f"layer {name!r} ({cls}): no weight group in the file")
        out = []
        for sub in ("vars", "cell/vars"):
            if sub in g:
                v = g[sub]
                keys = sorted(v.keys(), key=int)
                out.extend(_array(v[k], f"{v.name}/{k}", self.reader) for k in keys)
        return out


def _read_config(config, path):
    if isinstance(config, dict):
        return config
    if config is None:
        base = os.fspath(path)
        stem = base[:-len(".weights.h5")] if base.endswith(".weights.h5") else \
            os.path.splitext(base)[0]
        for cand in (stem + ".config.json", os.path.join(os.path.dirname(base), "config.json")):
            if os.path.isfile(cand):
                config = cand
                break
        else:
            raise FormatError(f"{path}: a weights-only Keras file (no 'model_config' "
                              "attribute) needs its model config (pass config=<dict or JSON "
                              "file>)")
    try:
        with open(config, encoding="utf-8") as fh:
            value = json.load(fh)
    except (OSError, ValueError, RecursionError) as exc:
        raise FormatError(f"{config}: cannot read Keras config ({_one_line(exc)})") from None
    if not isinstance(value, dict):
        raise FormatError(f"{config}: a Keras config must be a JSON object, got "
                          f"{type(value).__name__}")
    return value


# -- graph -------------------------------------------------------------------------------
def _history(obj, out):
    """Collect (layer_name) of every keras tensor in a Keras 3 inbound-node arg tree."""
    if isinstance(obj, dict):
        if obj.get("class_name") == "__keras_tensor__":
            out.append(obj["config"]["keras_history"][0])
        else:
            for v in obj.values():
                _history(v, out)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            _history(v, out)


def _inbound(lc):
    nodes = lc.get("inbound_nodes") or []
    if len(nodes) > 1:
        raise FormatError(f"layer {lc['config'].get('name')!r} ({lc['class_name']}) is called "
                          "more than once (shared layers are not supported)")
    if not nodes:
        return []
    node = nodes[0]
    names = []
    if isinstance(node, dict):                       # Keras 3
        _history(node.get("args", []), names)
    else:                                            # tf.keras 2: [[name, node, tensor, kw]]
        names = [item[0] for item in node]
    return names


def _graph(cfg):
    """(input_shape, [(name, class, config, inbound names)], output name)."""
    cls = cfg.get("class_name")
    c = cfg.get("config", {})
    if not isinstance(c, dict):
        raise FormatError(f"Keras config: 'config' is a {type(c).__name__}, not an object")
    layers = c.get("layers")
    if not isinstance(layers, list):
        raise FormatError(f"Keras config of class {cls!r} has no 'layers' list")
    out, shape, prev = [], None, None
    functional = cls in ("Functional", "Model")
    if cls not in ("Sequential", "Functional", "Model"):
        raise FormatError(f"Keras model class_name {cls!r} is not supported (Sequential, "
                          "Functional)")
    for i, lc in enumerate(layers):
        if not isinstance(lc, dict) or not isinstance(lc.get("config", {}), dict):
            raise FormatError(f"Keras config layers[{i}] is not a layer entry (an object "
                              "with a 'config' object)")
        lcls, lcfg = lc.get("class_name"), lc.get("config", {})
        if not isinstance(lcls, str):
            raise FormatError(f"Keras config layers[{i}]: class_name {lcls!r} is not a string")
        name = lcfg.get("name") or lc.get("name")
        if isinstance(name, (list, dict)):
            raise FormatError(f"Keras config layers[{i}]: name {name!r} is not a string")
        bshape = lcfg.get("batch_shape") or lcfg.get("batch_input_shape")
        if lcls == "InputLayer":
            shape = bshape
            if functional:
                out.append((name, lcls, lcfg, []))
            continue
        if shape is None and bshape is not None:
            shape = bshape
        try:
            ins = _inbound(lc) if functional else ([prev] if prev is not None else
                                                   ["__input__"])
            if not all(isinstance(x, str) for x in ins):
                raise TypeError(f"inbound layer names {ins!r} are not all strings")
        except (LookupError, TypeError, AttributeError) as exc:
            raise FormatError(f"Keras config layers[{i}] ({name!r}): malformed inbound_nodes "
                              f"({type(exc).__name__}: {exc})") from None
        out.append((name, lcls, lcfg, ins))
        prev = name
    if shape is None:
        shape = c.get("build_input_shape")
    if shape is None:
        raise FormatError("Keras config does not state the input shape (batch_shape)")
    if functional:
        ol = c.get("output_layers")
        while isinstance(ol, list) and ol and isinstance(ol[0], list):
            if len(ol) > 1:
                raise FormatError("Keras models with several outputs are not supported")
            ol = ol[0]
        output = ol[0] if ol else out[-1][0]
    else:
        output = out[-1][0] if out else None
    return tuple(shape[1:]), out, output, functional


# -- per-layer conversion -----------------------------------------------------------------
class _T:
    """A symbolic tensor: the layer chain from the input, its per-sample shape, and
    the (H, W, C) of a pending image flatten (for the next Dense in NCHW mode)."""

    def __init__(self, chain, shape, hwc=None):
        self.chain, self.shape, self.hwc = chain, tuple(shape), hwc


def _need(cond, name, cls, msg):
    if not cond:
        raise FormatError(f"layer {name!r} ({cls}): {msg}")


def _activation(spec, name, cls, version, channel_axis=-1):
    if isinstance(spec, dict):
        spec = spec.get("config", {}).get("name", spec.get("class_name"))
    _need(spec in _ACTIVATIONS, name, cls, f"activation {spec!r} is not supported "
          f"(supported: {list(_ACTIVATIONS)})")
    if spec == "linear":
        return None
    attrs = {"function": spec}
    if spec == "hard_sigmoid":
        attrs["variant"] = "keras2" if str(version).startswith("2") else "keras3"
    if spec == "softmax":
        attrs["axis"] = channel_axis
    return Layer("activation", name=f"{name}_{spec}", attrs=attrs)


def _bias_or_none(ws, cfg, i):
    return ws[i] if cfg.get("use_bias", True) else None


def _padding(p, name, cls):
    _need(p in ("valid", "same"), name, cls, f"padding {p!r} not supported")
    return 0 if p == "valid" else "same"


def _convert(name, cls, cfg, t, ws, layout, version):
    """Layers (list) and output tensor meta for one Keras layer applied to ``t``."""
    image = len(t.shape) == 3 and cls not in ("LSTM", "GRU", "SimpleRNN") and t.hwc is None
    if cfg.get("data_format", "channels_last") != "channels_last":
        raise FormatError(f"layer {name!r} ({cls}): data_format "
                          f"{cfg.get('data_format')!r} is not supported (channels_last only)")
    nchw = layout == "NCHW"
    caxis = 1 if (nchw and len(t.shape) == 3) else -1
    hwc = None
    if cls == "Dense":
        _need(len(t.shape) == 1, name, cls, f"Dense on a {len(t.shape) + 1}-D input is not "
              "supported")
        kernel = ws[0]
        if t.hwc is not None:
            W = convert.dense_from_keras_after_flatten(kernel, t.hwc)
        else:
            W, _ = convert.dense_from_keras(kernel)
        out = [Layer("dense", name=name, weights={"W": W, "b": _bias_or_none(ws, cfg, 1)})]
        act = _activation(cfg.get("activation", "linear"), name, cls, version)
        out += [act] if act else []
    elif cls == "Conv2D":
        _need(len(t.shape) == 3, name, cls, "Conv2D needs an image input")
        W = convert.conv2d_from_keras(ws[0])
        attrs = {"stride": tuple(cfg.get("strides", (1, 1))),
                 "padding": _padding(cfg.get("padding", "valid"), name, cls),
                 "dilation": tuple(cfg.get("dilation_rate", (1, 1))),
                 "groups": int(cfg.get("groups", 1)), "layout": layout}
        out = [Layer("conv2d", name=name, attrs=attrs,
                     weights={"W": W, "b": _bias_or_none(ws, cfg, 1)})]
        act = _activation(cfg.get("activation", "linear"), name, cls, version, caxis)
        out += [act] if act else []
    elif cls in ("MaxPooling2D", "AveragePooling2D"):
        _need(len(t.shape) == 3, name, cls, "pooling needs an image input")
        pad = _padding(cfg.get("padding", "valid"), name, cls)
        attrs = {"size": tuple(cfg["pool_size"]),
                 "stride": None if cfg.get("strides") is None else tuple(cfg["strides"]),
                 "padding": pad, "layout": layout}
        if cls == "AveragePooling2D":
            attrs["count_include_pad"] = False     # TF/Keras: padded values not counted
        out = [Layer("max_pool2d" if cls == "MaxPooling2D" else "avg_pool2d", name=name,
                     attrs=attrs)]
    elif cls == "Flatten":
        if image and nchw:
            c, h, w = t.shape
            hwc = (h, w, c)
        out = [Layer("flatten", name=name, attrs={"layout": layout if image else "NCHW"})]
    elif cls == "Reshape":
        target = tuple(int(s) for s in cfg["target_shape"])
        _need(-1 not in target, name, cls, "target_shape with -1 is not supported")
        _need(not image or not nchw, name, cls, "Reshape of an image needs layout='NHWC'")
        if len(target) == 3 and nchw:
            _need(target[2] == 1, name, cls, "Reshape to an image with more than one channel "
                  "needs layout='NHWC' (NCHW would need a transpose)")
            target = (1, target[0], target[1])
        out = [Layer("reshape", name=name, attrs={"shape": target})]
    elif cls in ("Activation", "ReLU", "Softmax"):
        if cls == "ReLU":
            _need(cfg.get("max_value") is None and not cfg.get("negative_slope")
                  and not cfg.get("threshold"), name, cls, "only the plain ReLU is supported")
            spec = "relu"
        elif cls == "Softmax":
            _need(cfg.get("axis", -1) in (-1, len(t.shape)), name, cls,
                  "softmax over the last axis only")
            spec = "softmax"
        else:
            spec = cfg.get("activation")
        act = _activation(spec, name, cls, version, caxis)
        out = [act if act else Layer("dropout", name=name)]
        hwc = t.hwc
    elif cls == "Dropout":
        out, hwc = [Layer("dropout", name=name, attrs={"rate": float(cfg.get("rate", 0.0))})], t.hwc
    elif cls == "BatchNormalization":
        axis = cfg.get("axis", -1)
        axis = axis[0] if isinstance(axis, list) and len(axis) == 1 else axis
        _need(axis in (-1, len(t.shape)), name, cls, f"axis {axis} not supported (last axis)")
        ws = list(ws)
        c = t.shape[caxis]
        gamma = ws.pop(0) if cfg.get("scale", True) else np.ones(c, np.float32)
        beta = ws.pop(0) if cfg.get("center", True) else np.zeros(c, gamma.dtype)
        _need(len(ws) == 2, name, cls, "expected moving_mean and moving_variance")
        out = [Layer("batch_norm", name=name,
                     attrs={"eps": float(cfg.get("epsilon", 1e-3)),
                            "layout": layout if len(t.shape) == 3 else "NCHW"},
                     weights={"gamma": gamma, "beta": beta, "mean": ws[0], "var": ws[1]})]
    elif cls in ("LSTM", "GRU", "SimpleRNN"):
        _need(len(t.shape) == 2, name, cls, "recurrent layers need (N, T, F) input")
        for opt in ("return_state", "go_backwards", "stateful", "time_major"):
            _need(not cfg.get(opt, False), name, cls, f"{opt}=True is not supported")
        act = cfg.get("activation", "tanh")
        attrs = {"return_sequences": bool(cfg.get("return_sequences", False))}
        bias = ws[2] if cfg.get("use_bias", True) else None
        if cls == "SimpleRNN":
            _need(act in ("tanh", "relu"), name, cls, f"activation {act!r} not supported")
            attrs["activation"] = act
            W_ih, W_hh = np.ascontiguousarray(ws[0].T), np.ascontiguousarray(ws[1].T)
            b_ih, b_hh = (None, None) if bias is None else (bias.copy(), np.zeros_like(bias))
            kind = "simple_rnn"
        else:
            rec = cfg.get("recurrent_activation", "sigmoid")
            _need(act == "tanh" and rec == "sigmoid", name, cls,
                  f"activation={act!r}, recurrent_activation={rec!r}: only tanh/sigmoid "
                  "are supported")
            if cls == "LSTM":
                W_ih, W_hh, b_ih, b_hh = convert.lstm_from_keras(ws[0], ws[1], bias)
                kind = "lstm"
            else:
                ra = bool(cfg.get("reset_after", True))
                W_ih, W_hh, b_ih, b_hh = convert.gru_from_keras(ws[0], ws[1], bias, reset_after=ra)
                attrs["reset_after"] = ra
                kind = "gru"
        out = [Layer(kind, name=name, attrs=attrs,
                     weights={"W_ih": W_ih, "W_hh": W_hh, "b_ih": b_ih, "b_hh": b_hh})]
    else:
        raise FormatError(f"layer {name!r} of class {cls!r} is not supported (supported: "
                          f"{', '.join(SUPPORTED_LAYERS)})")
    shape = t.shape
    for layer in out:
        shape = out_shape(layer, shape)
    return out, _T(t.chain + tuple(out), shape, hwc)


_N_WEIGHTS = {"Dense": (1, 2), "Conv2D": (1, 2), "LSTM": (2, 3), "GRU": (2, 3),
              "SimpleRNN": (2, 3)}


def _build(cfg, weights, layout, version, name):
    input_shape, nodes, output, functional = _graph(cfg)
    if layout == "NCHW" and len(input_shape) == 3:
        h, w, c = input_shape
        input_shape = (c, h, w)
    if weights is not None and hasattr(weights, "names") and weights.names:
        known = {n for n, _, _, _ in nodes}
        for n in weights.names:
            if n not in known:
                raise FormatError(f"weights for layer {n!r} (layer_names) have no layer in the "
                                  "config")
    tensors = {"__input__": _T((), input_shape)}
    for lname, cls, lcfg, ins in nodes:
        if cls == "InputLayer":
            tensors[lname] = tensors["__input__"]
            continue
        for i in ins:
            if i not in tensors:
                raise FormatError(f"layer {lname!r} ({cls}): input {i!r} is not defined before it")
        if cls == "Add":
            _need(len(ins) == 2, lname, cls, "only two-input Add is supported")
            a, b = tensors[ins[0]], tensors[ins[1]]
            _need(a.shape == b.shape, lname, cls, f"inputs of shapes {a.shape} and {b.shape}")
            tensors[lname] = _T(add_chains(a.chain, b.chain, lname), a.shape)
            continue
        _need(len(ins) == 1, lname, cls, f"{len(ins)} inputs; only single-input layers and Add "
              "are supported")
        ws = []
        if cls in _N_WEIGHTS or cls == "BatchNormalization":
            ws = weights.get(lname, cls)
            lo, hi = _N_WEIGHTS.get(cls, (2, 4))
            if not lo <= len(ws) <= hi:
                raise FormatError(f"layer {lname!r} ({cls}): {len(ws)} weight arrays in the file")
        try:
            _, tensors[lname] = _convert(lname, cls, lcfg, tensors[ins[0]], ws, layout, version)
        except FormatError:
            raise
        except (RefcompError, KeyError, IndexError, TypeError, ValueError) as exc:
            raise FormatError(f"layer {lname!r} ({cls}): cannot convert ({exc})") from None
    if output not in tensors:
        raise FormatError(f"Keras config: output_layers names {output!r}, not a layer")
    final = tensors[output]
    model_name = name or cfg.get("config", {}).get("name") or "keras_model"
    try:
        return Model(list(final.chain), name=model_name, input_shape=input_shape,
                     metadata={"source": "keras", "keras_version": str(version),
                               "layout": layout})
    except RefcompError as exc:
        raise FormatError(f"inconsistent Keras model: {exc}") from None


def load(path, *, config=None, layout="NCHW", name=None):
    """Load a Keras model file as a :class:`refcomp.Model` (h5py + json only).

    Parameters
    ----------
    path : str or path-like
        ``.h5`` legacy full model, legacy weights-only ``.h5``, Keras 3
        ``.weights.h5`` or ``.keras`` zip (detected from the content).
    config : dict or path, optional
        Model config (``{"class_name": ..., "config": {...}}``, as in a
        ``.keras`` file's ``config.json``) for weights-only files; default:
        ``<stem>.config.json`` or ``config.json`` beside ``path``.
    layout : {"NCHW", "NHWC"}
        See the module docstring.
    name : str, optional
        Model name (default: the Keras model's name).

    Returns
    -------
    Model
        Weights are exact copies of the file's arrays, transposed/permuted
        only; metadata records the source and Keras version.

    Raises
    ------
    FormatError
        unreadable or truncated file, missing config or weights, or an
        unsupported layer, option or topology (the message names the layer
        and its Keras class).
    """
    check_choice("layout", layout, ("NCHW", "NHWC"))
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FormatError(f"{path}: no such file")
    try:
        return _load(path, config, layout, name)
    except RefcompError as exc:
        msg = _one_line(exc)
        raise type(exc)(msg if msg.startswith(path) else f"{path}: {msg}") from None
    except (_CORRUPT + (zipfile.BadZipFile, RecursionError, EOFError)) as exc:
        raise FormatError(f"{path}: not a readable Keras file ({type(exc).__name__}: "
                          f"{_one_line(exc)})") from None


def _zip_member(z, name, limit, path):
    """Bytes of member ``name``, refused before reading if it declares more than ``limit``."""
    info = z.getinfo(name)
    if info.file_size > limit:
        raise FormatError(f"{path}: archive member {name!r} declares {info.file_size} bytes, "
                          f"more than the limit {limit} (refcomp.io.limits)")
    return z.read(name)


def _load(path, config, layout, name):
    h5py = _h5py()
    size = os.path.getsize(path)
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
            if "config.json" not in names or "model.weights.h5" not in names:
                raise FormatError(f"{path}: .keras archive without config.json and "
                                  "model.weights.h5")
            # JSON text at most the archive's size times the budget's expansion;
            # the weights at most what a refcomp file of this size could declare
            limit = min(_format.MAX_TOTAL_BYTES, _format.MAX_EXPANSION * size)
            cfg = _json_object(_zip_member(z, "config.json", limit, path), "config.json")
            meta = (_json_object(_zip_member(z, "metadata.json", limit, path), "metadata.json")
                    if "metadata.json" in names else {})
            blob = _zip_member(z, "model.weights.h5", limit, path)
        _check_heaps_in(blob)
        with h5py.File(io.BytesIO(blob), "r") as f:
            reader = _Reader(f, len(blob))
            order = [(n, c) for n, c, _, _ in _graph(cfg)[1] if c != "InputLayer"
                     or cfg.get("class_name") != "Sequential"]
            return _build(cfg, _V3Weights(f, order, reader), layout,
                          str(meta.get("keras_version", "3")), name)
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise FormatError(f"not a readable Keras file ({type(exc).__name__}: "
                          f"{_one_line(exc)})") from None
    with f:
        _check_global_heaps(path)
        reader = _Reader(f, size)
        if "model_config" in f.attrs:
            reader.check_attrs(f, "/")
            cfg = _json_object(reader.text(f, "model_config", "/"), "model_config")
            version = _text(f.attrs.get("keras_version", "unknown"))
            return _build(cfg, _LegacyWeights(f, reader), layout, version, name)
        cfg = _read_config(config, path)
        if "layer_names" in f.attrs:
            return _build(cfg, _LegacyWeights(f, reader), layout,
                          _text(f.attrs.get("keras_version", "unknown")), name)
        seq = cfg.get("class_name") == "Sequential"
        order = [(n, c) for n, c, _, _ in _graph(cfg)[1] if not (seq and c == "InputLayer")]
        return _build(cfg, _V3Weights(f, order, reader), layout, "3", name)


def _json_object(text, what):
    """A JSON object from text or bytes (FormatError naming ``what`` otherwise)."""
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise FormatError(f"{what} is not valid JSON ({_one_line(exc)})") from None
    if not isinstance(value, dict):
        raise FormatError(f"{what} must be a JSON object, got {type(value).__name__}")
    return value
