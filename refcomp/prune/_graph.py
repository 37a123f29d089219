"""Model-graph helpers for physical removal (private): locating layers, the
pass-through chain from a producer to its consumer, slicing weights, folding
the constant output of removed neurons into the consumer's bias."""

import functools

import numpy as np

from .._errors import ParameterError
from ..layers.dense import dense_acc64
from ..model import _forward_layer, materialize
from .masked import Masked

PASS_THROUGH = ("activation", "dropout", "max_pool2d", "avg_pool2d", "batch_norm", "flatten")
PRODUCERS = ("dense", "conv2d")


class Unfoldable(ParameterError):
    """The removed neurons' constant output cannot be folded into a bias."""


def locate(model, path):
    """(sequence list, index, parent residual layer or None) of ``path`` in ``model``."""
    parts = str(path).split("/")
    seq, parent = model.layers, None
    for depth, part in enumerate(parts):
        try:
            idx = int(part)
            layer = seq[idx]
            if idx < 0:
                raise IndexError
        except (ValueError, IndexError):
            raise ParameterError(f"no layer at path {path!r}") from None
        if depth < len(parts) - 1:
            if layer.layers is None:
                raise ParameterError(f"no layer at path {path!r}")
            parent, seq = layer, layer.layers
    return seq, idx, parent


def shapes(model):
    """path -> (input shape, output shape), batch axis excluded, by a zero-batch pass."""
    if model.input_shape is None:
        raise ParameterError(f"model {model.name!r} needs input_shape for pruning/shrinking "
                             "(flatten unfold factors and bias folding use the shapes)")
    out = {}
    dtype = model._dtype() or np.dtype(np.float32)

    def walk(seq, prefix, x):
        for k, layer in enumerate(seq):
            p = f"{prefix}{k}"
            if layer.layers is not None:
                walk(layer.layers, p + "/", x)
            y = _forward_layer(layer, x, "fast")
            out[p] = (tuple(x.shape[1:]), tuple(y.shape[1:]))
            x = y
    walk(model.layers, "", np.zeros((0,) + model.input_shape, dtype=dtype))
    return out


def n_outputs(layer):
    return materialize(layer.weights["W"]).shape[0]


def check_producer(layer, path):
    if layer.kind not in PRODUCERS:
        raise ParameterError(f"layer {path} is a {layer.kind!r} layer; only dense and conv2d "
                             "layers have removable output neurons")
    if layer.kind == "conv2d" and layer.attrs["groups"] != 1:
        raise ParameterError(f"layer {path}: grouped convolutions (groups="
                             f"{layer.attrs['groups']}) cannot be shrunk channel-wise")


def chain(seq, i, path):
    """Indices of the pass-through layers after ``seq[i]`` and the consumer index
    (None at the end of the sequence).  Raises ParameterError on a layer that
    mixes channels or cannot be shrunk."""
    passthrough = []
    j = i + 1
    while j < len(seq):
        layer = seq[j]
        if layer.kind == "activation" and layer.attrs["function"] == "softmax":
            raise ParameterError(f"cannot shrink layer {path}: a softmax follows it (it mixes "
                                 "channels)")
        if layer.kind in PASS_THROUGH:
            passthrough.append(j)
        elif layer.kind == "dense" or (layer.kind == "conv2d" and layer.attrs["groups"] == 1):
            return passthrough, j
        else:
            why = ("its output feeds a residual shortcut (shrink inside the block instead; "
                   "the trunk width is kept, seed 003 §4.5)" if layer.kind == "residual"
                   else f"it feeds a {layer.kind!r} layer that cannot take fewer channels")
            raise ParameterError(f"cannot shrink layer {path}: {why}")
        j += 1
    return passthrough, None


def channel_axis(layer, ndim):
    if ndim == 4 and layer.attrs.get("layout", "NCHW") == "NHWC":
        return 3
    return 1


def take(w, idx, axis):
    """Slice an ndarray or a Masked weight along ``axis``."""
    if isinstance(w, np.ndarray):
        return np.take(w, idx, axis=axis)
    if isinstance(w, Masked):
        return Masked(np.take(w.values, idx, axis=axis), np.take(w.mask, idx, axis=axis))
    raise ParameterError(f"cannot slice a weight of type {type(w).__name__}; shrink before "
                         "quantizing")


def flatten_features(keep, in_shape, layout):
    """Flattened feature indices of the kept channels (the LIMutils unfold factor)."""
    if len(in_shape) == 1:
        return keep
    if layout == "NHWC":
        hw, c = int(np.prod(in_shape[:-1])), in_shape[-1]
        return (np.arange(hw, dtype=np.int64)[:, None] * c + keep[None, :]).reshape(-1)
    c, hw = in_shape[0], int(np.prod(in_shape[1:]))
    return (keep[:, None] * hw + np.arange(hw, dtype=np.int64)[None, :]).reshape(-1)


def _consumer_delta(c, z):
    """float64 contribution ``W z`` (no bias) of the constant map ``z`` (batch of 1)
    to the dense/conv2d layer ``c``, per output neuron; Unfoldable when it is
    not the same at every output position (zero padding of a conv)."""
    W64 = materialize(c.weights["W"]).astype(np.float64)
    if c.kind == "dense":
        return dense_acc64(z.astype(np.float64), W64)[0]
    from ..layers.conv import conv2d
    a = c.attrs
    y = conv2d(z.astype(np.float64), W64, None, stride=a["stride"], padding=a["padding"],
               dilation=a["dilation"], groups=1, layout=a["layout"])
    yc = y if a["layout"] == "NCHW" else y.transpose(0, 3, 1, 2)
    flat = yc[0].reshape(yc.shape[1], -1)
    if not np.all(flat == flat[:, :1]):
        raise Unfoldable("the removed channels' constant output does not give a constant "
                         "contribution to the next convolution (zero padding or padded "
                         "pooling at the borders)")
    return flat[:, 0].copy()


def _channel_uniform(z, layout):
    zc = z if (z.ndim != 4 or layout == "NCHW") else z.transpose(0, 3, 1, 2)
    if zc.ndim != 4:
        return True
    flat = zc.reshape(zc.shape[0], zc.shape[1], -1)
    return bool(np.all(flat == flat[:, :, :1]))


def shift_consumer(seq, start, z):
    """Fold a per-channel shift ``z`` (float64, batch of 1) added to the activation
    entering ``seq[start]`` into the bias of the next dense/conv2d layer.

    ``z`` is *added* to a live activation (the trunk of a residual block), so it
    can only cross layers that are affine with the identity (or a per-channel
    scale) as linear part: linear activation, dropout, flatten, reshape, batch
    norm (``z * gamma / sqrt(var + eps)`` in float64), average pooling
    (linear) and max pooling when ``z`` is the same at every position of a
    channel (``max(x + c) = max(x) + c``).  Returns ``(consumer index, float64
    delta)``; raises Unfoldable on any other layer (ReLU, softmax, a residual
    block, a recurrent layer), at the end of the sequence, or when the
    contribution to a conv consumer varies over positions.
    """
    j = start
    while j < len(seq):
        layer = seq[j]
        k = layer.kind
        if k == "dense" or (k == "conv2d" and layer.attrs["groups"] == 1):
            return j, _consumer_delta(layer, z)
        if k == "activation" and layer.attrs["function"] == "linear" or k == "dropout":
            pass
        elif k in ("flatten", "reshape", "avg_pool2d"):
            z = _forward_layer(layer, z, "reference")
        elif k == "max_pool2d":
            if not _channel_uniform(z, layer.attrs["layout"]):
                raise Unfoldable("a non-uniform shift cannot cross max pooling")
            z = _forward_layer(layer, z, "reference")
        elif k == "batch_norm":
            from ..layers.normalization import _scale64
            ax = channel_axis(layer, z.ndim) if z.ndim == 4 else z.ndim - 1
            shape = [1] * z.ndim
            shape[ax] = -1
            sc = _scale64(materialize(layer.weights["gamma"]), materialize(layer.weights["var"]),
                          layer.attrs["eps"])
            z = z * sc.reshape(shape)
        else:
            what = (f"a {layer.attrs['function']!r} activation" if k == "activation"
                    else f"a {k!r} layer")
            raise Unfoldable(f"the constant that the removed channels add to the residual "
                             f"trunk meets {what} before a dense/conv2d layer whose bias "
                             "could absorb it (only affine layers can be crossed exactly)")
        j += 1
    raise Unfoldable("the constant that the removed channels add to the residual trunk "
                     "reaches the end of the sequence without a layer with a bias")


def fold_delta(seq, i, passthrough, consumer, shp, path_of, removed, preact, outer=None):
    """Where and how much to change a bias to absorb the removed neurons' constant
    pre-activation ``preact`` (per removed neuron): ``(layer, float64 delta)``, or
    None when their contribution is exactly zero.

    The constant map is run through the pass-through layers in reference
    precision (kept channels 0, then discarded), then through the consumer's
    weights in float64 without bias.  At the end of a residual body (no
    consumer) the constant is added to the trunk: ``outer(z)`` (given by the
    caller for a body) moves it downstream of the block (see
    :func:`shift_consumer`).  Raises Unfoldable when a non-zero contribution
    is not the same at every position (zero padding of a conv consumer,
    padded average pooling) or there is no layer with a bias slot to take it.
    """
    producer = seq[i]
    out_shape = shp[path_of(i)][1]
    dtype = materialize(producer.weights["W"]).dtype
    z = np.zeros((1,) + out_shape, dtype=dtype)
    ax = channel_axis(producer, z.ndim)
    sl = [slice(None)] * z.ndim
    sl[ax] = removed
    bshape = [1] * z.ndim
    bshape[ax] = removed.size
    z[tuple(sl)] = preact.astype(dtype).reshape(bshape)
    flat_at = None
    for j in passthrough:
        layer = seq[j]
        if layer.kind == "flatten" and flat_at is None:
            flat_at = (shp[path_of(j)][0], layer.attrs["layout"])
        z = _forward_layer(layer, z, "reference")
    # The chain is channel-wise: discard what the kept channels became.
    keep = np.setdiff1d(np.arange(out_shape[ax - 1], dtype=np.int64), removed)
    if flat_at is not None:
        z[:, flatten_features(keep, flat_at[0], flat_at[1])] = 0
    else:
        sl[ax] = keep
        z[tuple(sl)] = 0
    if not np.any(z != 0):
        return None
    if consumer is None:
        if outer is None:
            raise Unfoldable("the removed neurons have a non-zero constant output and "
                             "nothing downstream has a bias to absorb it")
        return outer(z)
    c = seq[consumer]
    return c, _consumer_delta(c, z)


def _add_to_bias(layer, delta):
    b = layer.weights.get("b")
    dt = materialize(layer.weights["W"]).dtype
    b64 = np.zeros(delta.shape, np.float64) if b is None else materialize(b).astype(np.float64)
    # one float64 addition per entry, one half-even rounding to the dtype
    layer.weights["b"] = (b64 + delta).astype(dt)


def _shift_out_of_block(model, block_path, block, z, *, removed, shp):
    """The constant ``z`` (body-output coordinates, batch of 1) that the body of
    ``block`` adds to its removed output channels becomes a shift of the trunk
    channels they were added to, folded downstream of the block:
    ``(layer, float64 delta)`` (see :func:`shift_consumer`)."""
    gseq, gi, _ = locate(model, block_path)
    ch = z.ndim - 1 if (z.ndim == 4 and block.attrs["layout"] == "NHWC") else 1
    idx = block.weights.get("index_map")
    idx = np.arange(z.shape[ch], dtype=np.int64) if idx is None else np.asarray(idx, np.int64)
    trunk = np.zeros((1,) + tuple(shp[block_path][1]), dtype=np.float64)
    src = [slice(None)] * z.ndim
    dst = [slice(None)] * z.ndim
    src[ch] = removed
    dst[ch] = idx[removed]
    trunk[tuple(dst)] = z[tuple(src)].astype(np.float64)
    j, delta = shift_consumer(gseq, gi + 1, trunk)
    return gseq[j], delta


def remove_outputs(model, path, keep, preact, shp=None):
    """New model without the output neurons of ``path`` not in ``keep`` (sorted int64).

    ``preact``: None (the caller guarantees the removed neurons contribute
    exactly nothing downstream) or an array with the constant pre-activation
    of every output neuron (only the removed entries are used) to fold.
    """
    new = model.copy()
    shp = shapes(model) if shp is None else shp
    seq, i, parent = locate(new, path)
    prefix = str(path).rsplit("/", 1)[0] + "/" if "/" in str(path) else ""

    def path_of(k):
        return f"{prefix}{k}"
    producer = seq[i]
    check_producer(producer, path)
    n = n_outputs(producer)
    removed = np.setdiff1d(np.arange(n, dtype=np.int64), keep)
    passthrough, consumer = chain(seq, i, path)
    if consumer is None and parent is None and removed.size == 0:
        return new
    fold = None
    if preact is not None and removed.size:
        outer = None
        if consumer is None and parent is not None:     # end of a residual body
            outer = functools.partial(_shift_out_of_block, new, prefix[:-1], parent,
                                      removed=removed, shp=shp)
        fold = fold_delta(seq, i, passthrough, consumer, shp, path_of, removed,
                          np.asarray(preact)[removed], outer)
    # producer rows / filters and bias
    for wname in ("W", "b"):
        if wname in producer.weights:
            producer.weights[wname] = take(producer.weights[wname], keep, 0)
    for j in passthrough:
        layer = seq[j]
        if layer.kind == "batch_norm":
            for wname in ("gamma", "beta", "mean", "var"):
                layer.weights[wname] = take(layer.weights[wname], keep, 0)
    feat = keep
    for j in passthrough:
        if seq[j].kind == "flatten":
            feat = flatten_features(keep, shp[path_of(j)][0], seq[j].attrs["layout"])
    if consumer is not None:
        c = seq[consumer]
        c.weights["W"] = take(c.weights["W"], feat if c.kind == "dense" else keep, 1)
    if fold is not None:
        _add_to_bias(*fold)
    if consumer is None and parent is not None:
        old = parent.weights.get("index_map")
        old = np.arange(n, dtype=np.int64) if old is None else np.asarray(old, dtype=np.int64)
        parent.weights["index_map"] = old[keep]
    if new.input_shape is not None:
        new.output_shapes()
    return new
