"""Optimal Brain Damage (LeCun, Denker & Solla 1990; seed 001 "Dommage cérébral optimal";
FACTS.md §7.7): saliency ``s_k = h_kk u_k^2 / 2`` from the Hessian diagonal."""

import numpy as np

from .._errors import DTypeError, ParameterError, ShapeError
from .._validate import as_float_array, check_choice, check_finite, describe
from .. import layers as L
from ..kernels.linear import matmul_acc64
from ..layers.conv import conv2d_setup
from ..model import Model, _forward_layer, materialize
from ._common import check_sparsity, count_to_prune, rank_prune
from .masked import apply_masks

__all__ = ["obd_saliency", "hessian_diagonal", "obd"]

_RNN = ("lstm", "gru", "mgu", "simple_rnn")


def obd_saliency(w, hessian_diag):
    """OBD saliency ``s_k = h_kk * w_k**2 / 2`` (LeCun et al. 1990, FACTS.md §7.7).

    Parameters
    ----------
    w : ndarray float32/float64
    hessian_diag : ndarray float32/float64, same shape

    Returns
    -------
    ndarray float64, shape of w: ``(float64(h) * (float64(w) * float64(w))) / 2``
    (w*w exact for float32 w, the product rounded half-even, /2 exact barring
    underflow).  A negative h (possible for the exact Hessian) gives a
    negative saliency; NaN propagates.
    """
    as_float_array("w", w)
    as_float_array("hessian_diag", hessian_diag)
    if hessian_diag.shape != w.shape:
        raise ShapeError(f"hessian_diag must have the shape of w {w.shape}, got "
                         f"{describe(hessian_diag)}")
    w64 = w.astype(np.float64)
    return hessian_diag.astype(np.float64) * (w64 * w64) / 2.0


# -- forward with cache / backward ---------------------------------------------------
def _to64(model):
    upd = {}
    for path, layer in model.named_layers():
        for k, v in layer.weights.items():
            if k != "index_map":
                upd[(path, k)] = materialize(v).astype(np.float64)
    return model.replace_weights(upd)


def _act_deriv(layer, u):
    f = layer.attrs["function"]
    if f == "relu":
        return (u > 0).astype(np.float64)
    if f == "linear":
        return np.ones_like(u)
    if f == "sigmoid":
        s = L.sigmoid(u)
        return s * (1.0 - s)
    if f == "tanh":
        t = L.tanh(u)
        return 1.0 - t * t
    if f == "hard_sigmoid":
        if layer.attrs["variant"] == "keras3":
            return np.where((u > -3) & (u < 3), 1.0 / 6.0, 0.0)
        return np.where((u >= -2.5) & (u <= 2.5), 0.2, 0.0)
    raise ParameterError(f"activation {f!r} is only supported as the model's last layer")


def _im2col(x, layer):
    a = layer.attrs
    W = materialize(layer.weights["W"])
    xc, stride, dil, groups, pads = conv2d_setup(x, W, None, a["stride"], a["padding"],
                                                 a["dilation"], a["groups"], a["layout"])
    if groups != 1:
        raise ParameterError("hessian_diagonal supports conv2d with groups=1 only")
    (t, bo), (le, r) = pads
    xp = np.pad(xc, ((0, 0), (0, 0), (t, bo), (le, r)))
    o, c, kh, kw = W.shape
    oh = (xp.shape[2] - (kh - 1) * dil[0] - 1) // stride[0] + 1
    ow = (xp.shape[3] - (kw - 1) * dil[1] - 1) // stride[1] + 1
    n = x.shape[0]
    cols = np.empty((n, oh, ow, c, kh, kw), dtype=np.float64)
    for i in range(kh):
        for j in range(kw):
            hs, ws = i * dil[0], j * dil[1]
            patch = xp[:, :, hs:hs + stride[0] * (oh - 1) + 1:stride[0],
                       ws:ws + stride[1] * (ow - 1) + 1:stride[1]]
            cols[:, :, :, :, i, j] = patch.transpose(0, 2, 3, 1)
    geo = (xc.shape, pads, stride, dil, oh, ow)
    return cols.reshape(n * oh * ow, c * kh * kw), geo


def _col2im(gcols, geo, W_shape, layout):
    (n, c, h, w), ((t, bo), (le, r)), stride, dil, oh, ow = geo
    _, _, kh, kw = W_shape
    g = gcols.reshape(n, oh, ow, c, kh, kw)
    gp = np.zeros((n, c, h + t + bo, w + le + r), dtype=np.float64)
    # fixed order: kernel positions i, j ascending; each is one vectorised add
    for i in range(kh):
        for j in range(kw):
            hs, ws = i * dil[0], j * dil[1]
            gp[:, :, hs:hs + stride[0] * (oh - 1) + 1:stride[0],
               ws:ws + stride[1] * (ow - 1) + 1:stride[1]] += g[:, :, :, :, i, j].transpose(0, 3, 1, 2)
    gx = gp[:, :, t:t + h, le:le + w]
    return gx if layout == "NCHW" else gx.transpose(0, 2, 3, 1)


def _pool_back(layer, x, g, square):
    a = layer.attrs
    lay = a["layout"]
    xc = x if lay == "NCHW" else x.transpose(0, 3, 1, 2)
    gc = g if lay == "NCHW" else g.transpose(0, 3, 1, 2)
    from ..layers._common import pair, resolve_padding
    k = pair("size", a["size"])
    s = k if a["stride"] is None else pair("stride", a["stride"])
    (t, bo), (le, r) = resolve_padding(a["padding"], xc.shape[2:], k, s, (1, 1))
    n, c, h, w = xc.shape
    oh, ow = gc.shape[2], gc.shape[3]
    gp = np.zeros((n, c, h + t + bo, w + le + r), dtype=np.float64)
    if layer.kind == "max_pool2d":
        xp = np.pad(xc, ((0, 0), (0, 0), (t, bo), (le, r)), constant_values=-np.inf)
        win = np.lib.stride_tricks.sliding_window_view(xp, k, axis=(2, 3))[:, :, ::s[0], ::s[1]]
        arg = np.argmax(win.reshape(n, c, oh, ow, -1), axis=-1)   # first maximum, as forward
        ii, jj = np.divmod(arg, k[1])
        rows = np.arange(oh)[None, None, :, None] * s[0] + ii
        cols = np.arange(ow)[None, None, None, :] * s[1] + jj
        nn = np.arange(n)[:, None, None, None]
        cc = np.arange(c)[None, :, None, None]
        np.add.at(gp, (np.broadcast_to(nn, arg.shape), np.broadcast_to(cc, arg.shape),
                       rows, cols), gc)
    else:
        if a["count_include_pad"]:
            cnt = np.full((oh, ow), float(k[0] * k[1]))
        else:
            ones = np.pad(np.ones((h, w)), ((t, bo), (le, r)))
            cnt = np.lib.stride_tricks.sliding_window_view(ones, k)[::s[0], ::s[1]].sum((-2, -1))
        f = 1.0 / cnt
        gs = gc * (f * f if square else f)
        for i in range(k[0]):
            for j in range(k[1]):
                gp[:, :, i:i + s[0] * (oh - 1) + 1:s[0], j:j + s[1] * (ow - 1) + 1:s[1]] += gs
    gx = gp[:, :, t:t + h, le:le + w]
    return gx if lay == "NCHW" else gx.transpose(0, 2, 3, 1)


def _forward(seq, x, cache, prefix):
    for k, layer in enumerate(seq):
        path = f"{prefix}{k}"
        cache[path] = x
        if layer.kind == "residual":
            fx = _forward(layer.layers, x, cache, path + "/")
            y = x.copy()
            idx = layer.weights.get("index_map")
            ax = 3 if (x.ndim == 4 and layer.attrs["layout"] == "NHWC") else 1
            sl = [slice(None)] * x.ndim
            sl[ax] = slice(None) if idx is None else np.asarray(idx)
            y[tuple(sl)] = x[tuple(sl)] + fx
            x = y
        else:
            x = _forward_layer(layer, x, "reference")
    return x


def _backward(seq, g, cache, prefix, square, out, stop):
    """Propagate ``g`` (gradient, or GN second derivative when ``square``) from the
    output of ``seq`` to its input; weight results into ``out``."""
    for k in range(len(seq) - 1, -1, -1):
        layer = seq[k]
        path = f"{prefix}{k}"
        if prefix == "" and k < stop:
            return None
        x = cache[path]
        kind = layer.kind
        if kind == "dense":
            W = layer.weights["W"]
            a = x * x if square else x
            out[(path, "W")] = matmul_acc64(np.ascontiguousarray(g.T), np.ascontiguousarray(a))
            if "b" in layer.weights:
                out[(path, "b")] = matmul_acc64(np.ascontiguousarray(g.T),
                                                np.ones((g.shape[0], 1)))[:, 0]
            g = matmul_acc64(np.ascontiguousarray(g), np.ascontiguousarray(W * W if square else W))
        elif kind == "conv2d":
            W = layer.weights["W"]
            cols, geo = _im2col(x, layer)
            lay = layer.attrs["layout"]
            gc = g if lay == "NCHW" else g.transpose(0, 3, 1, 2)
            g2 = np.ascontiguousarray(gc.transpose(0, 2, 3, 1).reshape(-1, W.shape[0]))
            a = cols * cols if square else cols
            out[(path, "W")] = matmul_acc64(np.ascontiguousarray(g2.T), a).reshape(W.shape)
            if "b" in layer.weights:
                out[(path, "b")] = matmul_acc64(np.ascontiguousarray(g2.T),
                                                np.ones((g2.shape[0], 1)))[:, 0]
            W2 = W.reshape(W.shape[0], -1)
            gcols = matmul_acc64(g2, np.ascontiguousarray(W2 * W2 if square else W2))
            g = _col2im(gcols, geo, W.shape, lay)
        elif kind == "activation":
            d = _act_deriv(layer, x)
            g = g * (d * d if square else d)
        elif kind in ("max_pool2d", "avg_pool2d"):
            g = _pool_back(layer, x, g, square)
        elif kind in ("flatten", "reshape"):
            g = g.reshape(x.shape)
        elif kind == "dropout":
            pass
        elif kind == "batch_norm":
            sc = layer.weights["gamma"] / np.sqrt(layer.weights["var"] + layer.attrs["eps"])
            shape = [1] * x.ndim
            shape[3 if (x.ndim == 4 and layer.attrs["layout"] == "NHWC") else 1] = sc.size
            sc = sc.reshape(shape)
            g = g * (sc * sc if square else sc)
        elif kind == "residual":
            idx = layer.weights.get("index_map")
            ax = 3 if (x.ndim == 4 and layer.attrs["layout"] == "NHWC") else 1
            gf = g if idx is None else np.take(g, np.asarray(idx), axis=ax)
            gb = _backward(layer.layers, gf, cache, path + "/", square, out, 0)
            # the body reads every input channel; with square=True the cross
            # term between the shortcut and the body is dropped
            g = g + gb
        else:
            raise ParameterError(f"hessian_diagonal: layer {path} ({kind}) is not supported")
    return g


def _prepare(model, x, y):
    if not isinstance(model, Model):
        raise ParameterError(f"model must be a refcomp.Model, got {type(model).__name__}")
    as_float_array("x", x)
    check_finite("x", x)
    if not isinstance(y, np.ndarray) or y.dtype.kind not in "iu":
        raise DTypeError(f"y must be an integer ndarray of class labels, got {describe(y)}")
    if y.shape != (x.shape[0],):
        raise ShapeError(f"y must have shape ({x.shape[0]},) (one label per sample), got "
                         f"{describe(y)}")
    m64 = _to64(model)
    seq = list(m64.layers)
    if seq and seq[-1].kind == "activation" and seq[-1].attrs["function"] == "softmax":
        seq = seq[:-1]                       # the loss takes the logits before it
    stop = 0
    for k, layer in enumerate(seq):
        if layer.kind in _RNN:
            stop = k + 1
    for k in range(stop):
        if any(l.kind in ("dense", "conv2d") for _, l in _walk([seq[k]])):
            raise ParameterError(f"hessian_diagonal: dense/conv layers before the recurrent "
                                 f"layer {k} are not supported")
    return seq, x.astype(np.float64), stop


def _walk(seq):
    for layer in seq:
        yield None, layer
        if layer.layers:
            yield from _walk(layer.layers)


def _grad_or_gn(seq, x, y, stop, square):
    cache = {}
    z = _forward(seq, x, cache, "")
    if z.ndim != 2:
        raise ShapeError(f"the model must output logits (N, classes), got shape {z.shape}")
    if y.size and (y.min() < 0 or y.max() >= z.shape[1]):
        raise ParameterError(f"labels must be in [0, {z.shape[1]})")
    p = L.softmax(z, -1)
    n = z.shape[0]
    if square:
        g = p * (1.0 - p) / n     # diagonal of the softmax-CE Hessian wrt logits
    else:
        g = p.copy()
        g[np.arange(n), y] -= 1.0
        g /= n
    out = {}
    _backward(seq, g, cache, "", square, out, stop)
    return out


def hessian_diagonal(model, x, y, *, exact=False, eps=1e-4):
    """Diagonal of the Hessian of the mean cross-entropy loss wrt dense/conv weights.

    Parameters
    ----------
    model : refcomp.Model whose output is the logits (N, classes); a final
        softmax activation is skipped (the loss takes the logits before it).
        Supported: dense, conv2d (groups=1), relu/sigmoid/tanh/linear/
        hard_sigmoid, max/avg pooling, flatten, reshape, dropout, batch norm,
        residual blocks (with index maps); recurrent layers only before every
        dense/conv layer (their own weights are not included).
    x : ndarray float32/float64 (N, ...), finite
    y : integer ndarray (N,), labels in [0, classes)
    exact : bool, default False
        False: the Gauss-Newton diagonal back-propagation (LeCun et al.
        1990, Becker & LeCun 1988).  True: the exact diagonal, by central
        finite differences of exact (analytic, float64) gradients, one
        weight at a time: ``(g_k(w + e) - g_k(w - e)) / (2e)`` with ``e =
        eps * max(1, |w_k|)``; 2 forward+backward passes per weight, for
        small models and for checking.  Wrong where a ReLU/max-pool kink
        lies within e of a sample's pre-activation.
    eps : float, relative step of ``exact=True``

    Returns
    -------
    dict ``{(path, "W"): ndarray float64, (path, "b"): ndarray float64}``
    for every dense and conv2d layer (shapes of the weights).

    Approximation (``exact=False``)
    -------------------------------
    Loss ``E = (1/N) sum_n CE(softmax(z_n), y_n)``.  Boundary condition: the
    diagonal of the logit Hessian, ``d2E/dz_k^2 = p_k (1 - p_k) / N``
    (off-diagonal ``-p_k p_l`` dropped).  Backward, every Jacobian entry is
    squared and off-diagonal terms dropped: through ``z = W a + b``,
    ``h_W[i,j] = sum_n h_z[n,i] a[n,j]^2``, ``h_b[i] = sum_n h_z[n,i]``,
    ``h_a[n,j] = sum_i W[i,j]^2 h_z[n,i]``; through an activation
    ``h_u = f'(u)^2 h_a`` (the ``f''(u) dE/da`` term of the exact Hessian
    is dropped: Levenberg-Marquardt / Gauss-Newton); max pooling routes to
    the first maximum of the window; average pooling multiplies by
    ``1/count^2``; batch norm by ``(gamma/sqrt(var+eps))^2``; a residual
    block sums the shortcut and the body contributions (cross term dropped).
    The diagonal is exact for the last dense layer.  FACTS.md §7.7 marks
    the paper's exact boundary condition as unverified; this is the
    standard Gauss-Newton choice.

    Arithmetic: everything in float64 (weights and x converted exactly);
    forward layers in refcomp reference precision; every sum over samples,
    outputs or positions by the reference kernel ``matmul_acc64``
    (sequential, fixed order), col2im/pool scatter in fixed kernel order:
    deterministic to the bit.
    """
    seq, x64, stop = _prepare(model, x, y)
    if not exact:
        return _grad_or_gn(seq, x64, y, stop, True)
    base = _grad_or_gn(seq, x64, y, stop, False)
    res = {}
    for path_w in base:
        path, wname = path_w
        layer = _get(seq, path)
        w0 = layer.weights[wname]
        h = np.empty(w0.shape, dtype=np.float64)
        for idx in np.ndindex(w0.shape):
            e = eps * max(1.0, abs(float(w0[idx])))
            gs = []
            for sign in (1.0, -1.0):
                w = w0.copy()
                w[idx] = w0[idx] + sign * e
                layer.weights[wname] = w
                gs.append(_grad_or_gn(seq, x64, y, stop, False)[path_w][idx])
            layer.weights[wname] = w0
            h[idx] = (gs[0] - gs[1]) / (2.0 * e)
        res[path_w] = h
    return res


def _get(seq, path):
    parts = path.split("/")
    layer = seq[int(parts[0])]
    for p in parts[1:]:
        layer = layer.layers[int(p)]
    return layer


def obd(model, x, y, *, sparsity, hessian=None, scope="global", masked=True):
    """Optimal Brain Damage: prune the dense/conv weights of lowest saliency.

    Parameters
    ----------
    model, x, y : as :func:`hessian_diagonal` (x, y: the data the loss is
        measured on, typically the training set)
    sparsity : float in [0, 1]
        Fraction of the dense/conv ``W`` entries removed, ranked together
        across layers: exactly ``round_half_even(sparsity * total)``.
    hessian : dict, optional
        A precomputed :func:`hessian_diagonal` result (Gauss-Newton by default).
    scope : {"global", "layer"}
        "global" (default, as in LeCun et al.: one ranking of all
        parameters); "layer": the same fraction removed in every layer,
        ranked within the layer.
    masked : bool
        Return Masked weights (True) or zeroed arrays.

    Returns
    -------
    (Model, dict)
        The pruned model and the masks ``{(path, "W"): bool}``.

    Notes
    -----
    Saliency ``h_kk w_k^2 / 2`` (:func:`obd_saliency`, float64), ranked
    ascending, ties broken by layer order then flat index (lower first).
    One pruning pass, no retraining (the paper iterates train/prune; the
    loop is the caller's).  Biases are not pruned.
    """
    s = check_sparsity(sparsity)
    if hessian is None:
        hessian = hessian_diagonal(model, x, y)
    keys = [k for k in hessian if k[1] == "W"]
    if not keys:
        raise ParameterError("the model has no dense/conv weights to prune")
    sal = []
    for k in keys:
        w = materialize(model.get_layer(k[0]).weights["W"])
        sal.append(obd_saliency(w, hessian[k].astype(np.float64)).reshape(-1))
    flat = np.concatenate(sal)
    if np.isnan(flat).any():
        raise ParameterError("saliencies contain NaN")
    check_choice("scope", scope, ("global", "layer"))
    if scope == "global":
        keep = rank_prune(flat, count_to_prune(s, flat.size))
    else:
        keep = np.concatenate([rank_prune(v, count_to_prune(s, v.size)) for v in sal])
    masks, start = {}, 0
    for k in keys:
        shp = model.get_layer(k[0]).weights["W"].shape
        size = int(np.prod(shp))
        masks[k] = keep[start:start + size].reshape(shp)
        start += size
    return apply_masks(model, masks, masked=masked), masks
