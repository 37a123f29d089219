"""Shared pieces of the conformance runs: optional imports, the "not expressible" signal,
padding resolution."""

import importlib

from .._errors import MissingDependencyError, RefcompError
from ..layers._common import pair, resolve_padding

__all__ = ["NotExpressible", "NotBuilt", "require", "layer_pads", "nd_geometry", "FRAMEWORKS",
           "EXTRAS", "rnn_options"]

#: Frameworks ``refcomp validate`` runs against, and the extra that installs each.
FRAMEWORKS = ("torch", "onnxruntime", "keras", "litert")
EXTRAS = {"torch": "frameworks", "onnxruntime": "frameworks", "onnx": "frameworks",
          "keras": "frameworks", "litert": "litert", "hypothesis": "test"}
_MODULES = {"litert": "ai_edge_litert"}


class NotExpressible(RefcompError):
    """The framework has no operation with this layer's semantics (a known difference,
    e.g. ``torch.nn.GRU`` has only the reset_after=True formula); reported, not failed."""


class NotBuilt(NotExpressible):
    """The framework may have the operation, but this runner does not build it (e.g.
    LiteRT's CONV_2D with groups > 1); reported as skipped, not as a known difference."""


def require(name):
    """Import a framework module or raise a one-line MissingDependencyError naming the extra.

    Parameters
    ----------
    name : {"torch", "onnxruntime", "onnx", "keras", "litert", "hypothesis"}

    Returns
    -------
    module
    """
    mod = _MODULES.get(name, name)
    try:
        return importlib.import_module(mod)
    except ImportError:
        raise MissingDependencyError(
            f"{name} is not installed: pip install \"refcomp[{EXTRAS.get(name, 'frameworks')}]\""
        ) from None


def layer_pads(layer, hw):
    """((top, bottom), (left, right)) of a conv2d / pooling layer on an input of spatial size hw.

    The padding rule of refcomp's layers (:func:`refcomp.layers.conv2d`:
    int, pair, pairs, "valid", TensorFlow "same" with the odd pixel at the
    end, FACTS.md §3.3).
    """
    a = layer.attrs
    if layer.kind == "conv2d":
        W = layer.weights["W"]
        k = tuple(W.shape[2:])
        s, d = pair("stride", a["stride"]), pair("dilation", a["dilation"])
    else:
        k = pair("size", a["size"])
        s = k if a["stride"] is None else pair("stride", a["stride"])
        d = (1, 1)
    return resolve_padding(a["padding"], tuple(hw), k, s, d), k, s, d


def nd_geometry(layer, spatial):
    """(kernel, stride, dilation, ((lo, hi), ...)) of a conv1d / max_pool / avg_pool layer on
    spatial sizes ``spatial``, by refcomp's own padding rule (ONNX auto_pad strings
    included, :func:`refcomp.layers._pool_nd.resolve_padding_nd`)."""
    from ..layers._pool_nd import resolve_padding_nd, tuple_n
    a, n = layer.attrs, len(spatial)
    if layer.kind == "conv1d":
        k = tuple(layer.weights["W"].shape[2:])
        s, d = tuple_n("stride", a["stride"], 1), tuple_n("dilation", a["dilation"], 1)
    else:
        k = tuple_n("size", a["size"], n)
        s = k if a["stride"] is None else tuple_n("stride", a["stride"], n)
        d = tuple_n("dilation", a["dilation"], n)
    p = a["padding"]
    if layer.kind == "conv1d" and isinstance(p, (list, tuple)) and len(p) == 2:
        p = [tuple(p)]                                  # conv1d's (begin, end)
    return k, s, d, resolve_padding_nd(p, tuple(spatial), k, s, d)


def rnn_options(layer):
    """The ONNX recurrent options a recurrent layer sets beyond the classic forward pass
    (what torch.nn / keras.layers recurrent modules do not have), by name."""
    a = layer.attrs
    return ([o for o in ("clip", "activations") if a.get(o) is not None]
            + (["input_forget"] if a.get("input_forget") else [])
            + (["peepholes"] if "P" in layer.weights else [])
            + (["update"] if a.get("update", "standard") != "standard" else [])
            + (["direction"] if a.get("direction", "forward") != "forward" else []))
