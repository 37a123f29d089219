"""Import PyTorch weights: a state dict plus a small architecture spec, or an
``nn.Sequential`` directly.

A state dict holds tensors only, so the architecture comes from a *spec*: a
list whose entries are

* a string: an activation (``"relu"``, ``"sigmoid"``, ``"tanh"``,
  ``"softmax"``, ``"hard_sigmoid"``) or a weightless kind (``"flatten"``,
  ``"dropout"``);
* a dict ``{"kind": <refcomp layer kind>, "key": <state-dict prefix>,
  **attrs}``; ``"name"`` optional.  Weighted kinds read PyTorch's names:

  ========== =====================================================================
  dense      ``key.weight`` (out, in), ``key.bias``                (nn.Linear)
  conv2d     ``key.weight`` OIHW, ``key.bias``                     (nn.Conv2d)
  batch_norm ``key.weight``, ``key.bias``, ``key.running_mean``,
             ``key.running_var``                             (nn.BatchNorm2d/1d)
  lstm, gru  ``key.weight_ih_l0``, ``key.weight_hh_l0``, ``key.bias_ih_l0``,
             ``key.bias_hh_l0``      (nn.LSTM / nn.GRU, one layer, batch_first)
  simple_rnn the same names                                        (nn.RNN)
  ========== =====================================================================

  ``{"kind": "residual", "key": "3", "layers": [...]}`` nests a block
  ``x + f(x)``; the keys of its layers are relative to the block's key
  (``{"kind": "conv2d", "key": "body.0"}`` reads ``3.body.0.weight``), as
  in PyTorch's nested modules and as :func:`to_state_dict` writes.

PyTorch's layouts are refcomp's canonical ones, so weights are copied
unchanged (bit-exact); a GRU is ``reset_after=True`` (PyTorch's formula).
Every tensor of the state dict must be used (``num_batches_tracked``
excepted) and every needed one present with the right shape: otherwise
:class:`FormatError`, as ``load_state_dict(strict=True)`` would.
"""

import math

import numpy as np

from .._errors import FormatError, RefcompError
from . import _format
from ..model import LAYER_KINDS, Layer, Model, check_shapes, weight_shape_problem

__all__ = ["from_state_dict", "from_sequential", "to_state_dict"]

_ACTS = ("relu", "sigmoid", "tanh", "softmax", "hard_sigmoid", "linear")
_RNN_NAMES = ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")
_NAMES = {
    "dense": {"W": "weight", "b": "bias"},
    "conv2d": {"W": "weight", "b": "bias"},
    "batch_norm": {"gamma": "weight", "beta": "bias", "mean": "running_mean",
                   "var": "running_var"},
    **{k: dict(zip(("W_ih", "W_hh", "b_ih", "b_hh"), _RNN_NAMES))
       for k in ("lstm", "gru", "simple_rnn", "mgu")},
}
_IGNORED_SUFFIXES = ("num_batches_tracked",)


def _check_declared(key, v):
    """Refuse, before any copy, a tensor declaring more elements than the limits or
    than its storage holds (an ``expand``-ed or broadcast view of a tiny storage
    would be materialised by the copy)."""
    shape = tuple(int(s) for s in getattr(v, "shape", ()))
    n = math.prod(shape)
    itemsize = int(getattr(getattr(v, "dtype", None), "itemsize", 0) or 0)
    if n > _format.MAX_ELEMENTS or n * itemsize > _format.MAX_TOTAL_BYTES:
        raise FormatError(f"state dict entry {key!r} declares shape {shape} ({n} elements), "
                          f"more than the limits (refcomp.io.limits)")
    if hasattr(v, "untyped_storage"):
        stored = int(v.untyped_storage().nbytes())
        itemsize = int(v.element_size())
    elif isinstance(v, np.ndarray):
        stored = v.nbytes if all(v.strides) or v.size <= 1 else 0
    else:
        return
    if n > 1 and n * itemsize > stored:
        raise FormatError(f"state dict entry {key!r} declares shape {shape} but its storage "
                          f"holds only {stored} bytes (an expanded or broadcast view); pass "
                          "contiguous tensors")


def _to_numpy(key, v):
    _check_declared(key, v)
    if hasattr(v, "detach"):                       # a torch tensor; never imports torch
        try:
            v = v.detach().cpu().numpy()
        except (TypeError, RuntimeError) as exc:   # e.g. bfloat16 has no NumPy dtype
            raise FormatError(f"state dict entry {key!r} ({getattr(v, 'dtype', '?')}) cannot "
                              f"be read as a float32/float64 array ({exc})") from None
    if not isinstance(v, np.ndarray):
        raise FormatError(f"state dict entry {key!r} is a {type(v).__name__}, not a tensor "
                          "or ndarray")
    if v.dtype not in (np.float32, np.float64):
        raise FormatError(f"state dict entry {key!r} has dtype {v.dtype}; float32/float64 only")
    return np.array(v, copy=True)


def _layer(entry, sd, used, where, tnames, prefix=""):
    """One spec entry -> Layer; ``tnames[id(layer)]`` records {weight: tensor name}."""
    try:
        return _layer_of(entry, sd, used, where, tnames, prefix)
    except RefcompError:
        raise
    except (TypeError, ValueError, KeyError, AttributeError, IndexError, ArithmeticError,
            RecursionError) as exc:           # an entry of the wrong shape or types
        raise FormatError(f"spec[{where}]: malformed entry ({type(exc).__name__}: "
                          f"{' '.join(str(exc).split())[:200]})") from None


def _layer_of(entry, sd, used, where, tnames, prefix):
    if isinstance(entry, str):
        if entry in _ACTS:
            return Layer("activation", name=entry, attrs={"function": entry})
        entry = {"kind": entry}
    if not isinstance(entry, dict) or "kind" not in entry:
        raise FormatError(f"spec[{where}]: expected a string or a dict with 'kind', got {entry!r}")
    e = dict(entry)
    kind = e.pop("kind")
    if not isinstance(kind, str) or kind not in LAYER_KINDS:
        raise FormatError(f"spec[{where}]: unknown layer kind {kind!r}")
    key, name, sub = e.pop("key", None), e.pop("name", None), e.pop("layers", None)
    if kind == "gru":
        e.setdefault("reset_after", True)
    bad = [o for o, v in e.items() if isinstance(LAYER_KINDS[kind][2].get(o), bool)
           and not isinstance(v, (bool, np.bool_))]     # "zzz" or 1 would pass as true
    if bad:
        raise FormatError(f"spec[{where}] ({kind} {key!r}): option {bad[0]!r} must be true or "
                          f"false, got {e[bad[0]]!r}")
    weights, full_names = {}, {}
    if kind in _NAMES:
        if key is None:
            raise FormatError(f"spec[{where}]: a {kind} layer needs 'key' (the state-dict prefix)")
        required = LAYER_KINDS[kind][0]
        for wname, tname in _NAMES[kind].items():
            full = f"{prefix}{key}.{tname}" if key != "" else prefix + tname
            full_names[wname] = full
            if full in sd:
                weights[wname] = _to_numpy(full, sd[full])
                used.add(full)
            elif wname in required:
                raise FormatError(f"spec[{where}] ({kind} {key!r}): state dict has no tensor "
                                  f"{full!r}")
    layers = None
    if kind == "residual":
        inner = prefix + (f"{key}." if key else "")
        layers = [_layer(s, sd, used, f"{where}/{i}", tnames, inner)
                  for i, s in enumerate(sub or [])]
    # shapes within the layer, with PyTorch's tensor names (needs no input shape)
    problem = weight_shape_problem(kind, weights, e, name=lambda w: repr(full_names[w]))
    if problem:
        raise FormatError(f"spec[{where}] ({kind} {key!r}): {problem}")
    try:
        layer = Layer(kind, name=name or key or kind, attrs=e, weights=weights, layers=layers)
    except RefcompError as exc:
        raise FormatError(f"spec[{where}]: {exc}") from None
    tnames[id(layer)] = full_names
    return layer


def from_state_dict(state_dict, spec, *, input_shape=None, name="torch_model", metadata=None):
    """Build a :class:`refcomp.Model` from a PyTorch state dict and a spec.

    Parameters
    ----------
    state_dict : mapping str -> torch.Tensor or ndarray
        float32/float64 tensors (copied; torch need not be installed when
        the values are ndarrays).
    spec : list
        Layer entries, see the module docstring.
    input_shape : tuple of int, optional
        Per-sample input shape; when given, every tensor shape is checked
        against the layer chain by a zero-batch forward pass.  Without it
        the shapes are still checked within each layer (bias length, gate
        blocks of recurrent weights, batch-norm parameters) and between
        layers as far as decidable (:func:`refcomp.model.check_shapes`).
    name : str
    metadata : dict, optional

    Returns
    -------
    Model
        Weights bit-identical to the state dict's tensors.

    Raises
    ------
    FormatError
        a missing tensor, an unused tensor, a non-float tensor, or shapes
        that do not fit (naming the spec entry or layer, the tensor, its
        shape and the expected shape).
    """
    if not hasattr(state_dict, "keys"):
        raise FormatError(f"state_dict must be a mapping, got {type(state_dict).__name__}")
    if not isinstance(spec, (list, tuple)):
        raise FormatError(f"spec must be a list of layer entries, got {type(spec).__name__}")
    used, tnames = set(), {}
    layers = [_layer(e, state_dict, used, str(i), tnames) for i, e in enumerate(spec)]
    extra = sorted(k for k in state_dict.keys()
                   if k not in used and not k.endswith(_IGNORED_SUFFIXES))
    if extra:
        raise FormatError(f"state dict tensors not used by the spec: {extra}")
    # between layers, as far as decidable without an input shape (dense after dense
    # or LSTM, conv after conv, batch_norm length...), naming the tensors; with an
    # input_shape, Model then checks everything else by a zero-batch forward pass
    try:
        check_shapes(layers, name=lambda path, layer, w: repr(tnames[id(layer)].get(w, w)))
    except RefcompError as exc:
        raise FormatError(f"state dict does not fit the spec: {exc}") from None
    try:
        return Model(layers, name=name, input_shape=input_shape,
                     metadata=dict(metadata or {}, source="torch"))
    except RefcompError as exc:
        raise FormatError(f"state dict does not fit the spec: {exc}") from None


def _spec_of(module, prefix, where):
    """(spec entries) of an nn module inside a Sequential (by class, no torch import)."""
    cls = type(module).__name__
    k = prefix
    if cls == "Sequential":
        out = []
        for i, (n, m) in enumerate(module.named_children()):
            out.extend(_spec_of(m, f"{prefix}.{n}" if prefix else n, f"{where}/{n}"))
        return out
    if cls == "Linear":
        return [{"kind": "dense", "key": k}]
    if cls == "Conv2d":
        if module.padding_mode != "zeros":
            raise FormatError(f"module {where} (Conv2d): padding_mode={module.padding_mode!r} "
                              "is not supported")
        pad = module.padding
        return [{"kind": "conv2d", "key": k, "stride": tuple(module.stride),
                 "padding": pad if isinstance(pad, str) else tuple(pad),
                 "dilation": tuple(module.dilation), "groups": int(module.groups)}]
    if cls in ("BatchNorm1d", "BatchNorm2d"):
        if not module.track_running_stats:
            raise FormatError(f"module {where} ({cls}): track_running_stats=False")
        return [{"kind": "batch_norm", "key": k, "eps": float(module.eps)}]
    if cls in ("MaxPool2d", "AvgPool2d"):
        if module.ceil_mode or (cls == "MaxPool2d" and module.dilation not in (1, (1, 1))) \
                or (cls == "AvgPool2d" and module.divisor_override):
            raise FormatError(f"module {where} ({cls}): ceil_mode/dilation/divisor_override "
                              "are not supported")
        e = {"kind": "max_pool2d" if cls == "MaxPool2d" else "avg_pool2d",
             "size": module.kernel_size, "stride": module.stride, "padding": module.padding}
        if cls == "AvgPool2d":
            e["count_include_pad"] = bool(module.count_include_pad)
        return [e]
    if cls == "Flatten":
        if module.start_dim != 1 or module.end_dim != -1:
            raise FormatError(f"module {where} (Flatten): only start_dim=1, end_dim=-1")
        return ["flatten"]
    if cls == "Unflatten":
        if module.dim != 1:
            raise FormatError(f"module {where} (Unflatten): only dim=1")
        return [{"kind": "reshape", "shape": tuple(module.unflattened_size)}]
    if cls in ("Dropout", "Identity"):
        return ["dropout"]
    if cls in ("ReLU", "Sigmoid", "Tanh"):
        return [cls.lower()]
    if cls == "Softmax":
        return [{"kind": "activation", "function": "softmax", "axis": int(module.dim)}]
    raise FormatError(f"module {where} of class {cls} is not supported by from_sequential "
                      "(use from_state_dict with a spec)")


def from_sequential(module, *, input_shape=None, name=None):
    """Read a ``torch.nn.Sequential`` (nested Sequentials allowed) of Linear,
    Conv2d, BatchNorm1d/2d, MaxPool2d, AvgPool2d, Flatten, Unflatten(dim=1),
    Dropout, Identity, ReLU, Sigmoid, Tanh, Softmax.  Weights are copied
    exactly; other modules raise FormatError naming the module path and class.
    Recurrent layers return tuples in PyTorch and so cannot sit in a
    Sequential: use :func:`from_state_dict`.
    """
    if type(module).__name__ != "Sequential":
        raise FormatError(f"expected a torch.nn.Sequential, got {type(module).__name__}")
    spec = _spec_of(module, "", "")
    return from_state_dict(module.state_dict(), spec, input_shape=input_shape,
                           name=name or "sequential")


def to_state_dict(model):
    """The inverse of :func:`from_state_dict` for weights: ``{name: ndarray}``
    with PyTorch names under each layer's ``name`` as prefix (copies, exact);
    inside residual blocks the prefix is ``<block name>.<sub name>``."""
    out = {}

    def walk(layers, prefix):
        for layer in layers:
            p = prefix + layer.name
            for wname, tname in _NAMES.get(layer.kind, {}).items():
                if layer.weights.get(wname) is not None:
                    out[f"{p}.{tname}"] = np.array(layer.w(wname), copy=True)
            if layer.layers is not None:
                walk(layer.layers, p + ".")
    walk(model.layers, "")
    return out
