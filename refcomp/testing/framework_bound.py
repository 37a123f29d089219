"""A derived bound on |framework output - refcomp output| for import tests.

A framework (PyTorch, Keras, ONNX Runtime) evaluates a model in its dtype
(float32) with its own summation order and its own elementary functions;
refcomp's reference evaluates the same real function with float64
accumulation and one rounding per stored value.  Neither is exact, so a
comparison needs a tolerance; :func:`framework_error_bound` derives one per
output element from the model, the input and the standard model of
floating-point arithmetic (FACTS.md §8), instead of a fixed ``rtol``/``atol``.

Derivation
----------
Let ``u`` be the unit roundoff of the model dtype (2**-24 for float32) and
``gamma_n = n u / (1 - n u)``.  For each layer we keep the float64 value
``v`` of the exact real computation (evaluated in float64, whose own error,
~1e-16 relative, is far below every float32 term) and an elementwise bound
``e`` on ``|computed - v|`` that holds for *any* evaluation that

* forms every dot product of ``n`` terms plus a bias with rounding to the
  dtype in any order: error ``<= gamma_{n+1} * (sum |w x| + |b|)``
  (Higham, Accuracy and Stability of Numerical Algorithms, Thm 3.1 / §3.1;
  direct or im2col/GEMM convolutions, not Winograd or FFT ones);
* rounds every other elementwise operation (add, multiply, divide, sqrt)
  once (relative error ``<= u``);
* evaluates ``exp``, ``tanh`` and ``sigmoid`` within ``func_ulps`` ulps,
  i.e. relative error ``<= 2 * func_ulps * u``;
* takes maxima exactly.

Propagation (first order in ``u``; the neglected terms are ``O(u**2)``
relative, below 1e-13):

* dense / conv2d, input ``(v, e)``: ``e' = |W| e + gamma_{n+1} (|W| (|v| + e)
  + |b|)`` (``|W| e`` by the same layer function on ``|W|`` and ``e``);
* relu, linear: ``e' = e``; tanh, sigmoid: ``e' = |f'(v)| e + 2 k u |v'|``
  with ``k = func_ulps`` and the derivative at the exact point (the mean
  value theorem; the derivative's change over the interval of width ``e``
  is a second-order term);
* softmax along an axis, ``s = softmax(z)``: ``e'_i = s_i (e_i + sum_j s_j e_j)
  + s_i (r_i + sum_j s_j r_j + gamma_n + 2u)`` with ``r_j = u |z_j - max z|
  + 2 k u`` (the shift, the exponential, the sum of ``n`` positive terms and
  the division);
* max pooling: ``e' = maxpool(e)``; average pooling: ``e' = avgpool(e) +
  (gamma_w + 2u) avgpool(|v| + e)`` with ``w`` the window size;
* batch norm, ``s = gamma / sqrt(var + eps)``: ``e' = |s| e + (6 + 2k) u
  (|v| |s| + |mean| |s| + |beta|)`` (covers ``(x - mean) s + beta`` and the
  folded ``x s + (beta - mean s)``, with a ``rsqrt`` within k ulps);
* flatten, reshape, dropout: ``e`` rearranged like the values;
* residual: the body from ``(v, e)``, then ``e' = e + e_body + u |v'|``;
* recurrent layers, per time step (gate pre-activations as dot products of
  ``F + H`` terms plus two biases, then the cell's formulas with each
  operation's rounding and each input's error, see ``_lstm``, ``_gru``,
  ``_simple_rnn``).

Both the framework and refcomp's reference satisfy these assumptions
(refcomp's roundings are a subset of the float32 evaluation's: float64
accumulations and one rounding per stored value), so each is within ``e``
of the exact value and ``|framework - refcomp| <= 2 e``; the function
returns ``2 e`` plus a subnormal-sized absolute term.
"""

import numpy as np

from .._errors import ParameterError
from ..model import Layer, _forward_layer, materialize

__all__ = ["framework_error_bound"]


def _unit_roundoff(dtype):
    dtype = np.dtype(dtype)
    if dtype == np.float32:
        return 2.0 ** -24
    if dtype == np.float64:
        return 2.0 ** -53
    raise ParameterError(f"framework_error_bound: no unit roundoff for dtype {dtype}")


class _Ctx:
    def __init__(self, u, func_ulps):
        self.u = u
        self.k = float(func_ulps)
        self.f = 2.0 * self.k * u            # relative error of exp / tanh / sigmoid

    def gamma(self, n):
        if not n * self.u < 0.5:
            raise ParameterError(f"framework_error_bound: gamma_{n} undefined for this dtype")
        return n * self.u / (1.0 - n * self.u)


def _f64(layer):
    """The layer with float64 weights (the exact computation, up to float64 rounding)."""
    w = {}
    for k, v in layer.weights.items():
        a = np.asarray(materialize(v))
        w[k] = a if k == "index_map" else a.astype(np.float64)
    return Layer(layer.kind, name=layer.name, attrs=dict(layer.attrs), weights=w,
                 layers=None if layer.layers is None else [_f64(s) for s in layer.layers])


def _abs_layer(layer64):
    """|W| without bias, for propagating bounds through dense / conv2d."""
    return Layer(layer64.kind, name=layer64.name, attrs=dict(layer64.attrs),
                 weights={"W": np.abs(layer64.weights["W"])})


def _channel_shape(layout, ndim):
    """Broadcast shape of a per-channel vector (batch_norm's channel axis rule)."""
    axis = 1 if (ndim == 4 and layout == "NCHW") or ndim == 2 else ndim - 1
    shape = [1] * ndim
    shape[axis] = -1
    return shape


def _step(layer, v, e, c):
    """(v', e') of one float64 layer ``layer`` from input values v and bounds e."""
    k, a = layer.kind, layer.attrs
    if k == "dense" and (a.get("alpha", 1.0) != 1.0 or a.get("beta", 1.0) != 1.0):
        raise ParameterError("framework_error_bound: dense alpha/beta other than 1 are not "
                             "covered by the bound")
    if k in ("dense", "conv2d"):
        y = _forward_layer(layer, v, "reference")
        absl = _abs_layer(layer)
        W = layer.weights["W"]
        n = W.shape[1] if k == "dense" else int(np.prod(W.shape[1:]))
        mag = _forward_layer(absl, np.abs(v) + e, "reference")
        b = layer.weights.get("b")
        if b is not None:
            mag = mag + (np.abs(b) if k == "dense" else
                         np.abs(b).reshape(_channel_shape(a["layout"], y.ndim)))
        return y, _forward_layer(absl, e, "reference") + c.gamma(n + 1) * mag
    if k == "activation":
        f = a["function"]
        y = _forward_layer(layer, v, "reference")
        if f in ("relu", "linear"):
            return y, e.copy()
        if f in ("tanh", "sigmoid"):
            d = _dtanh(y) if f == "tanh" else _dsig(y)
            return y, d * e + c.f * np.abs(y)
        if f == "softmax":
            ax = a["axis"]
            m = np.max(v, axis=ax, keepdims=True)
            r = c.u * np.abs(v - m) + c.f
            n = v.shape[ax]
            se = np.sum(y * e, axis=ax, keepdims=True)
            sr = np.sum(y * r, axis=ax, keepdims=True)
            return y, y * (e + se) + y * (r + sr + c.gamma(max(n, 1)) + 2 * c.u)
        raise ParameterError(f"framework_error_bound: activation {f!r} is not supported")
    if k == "max_pool2d":
        return (_forward_layer(layer, v, "reference"), _forward_layer(layer, e, "reference"))
    if k == "avg_pool2d":
        size = a["size"] if isinstance(a["size"], (list, tuple)) else (a["size"],) * 2
        w = int(np.prod(size))
        y = _forward_layer(layer, v, "reference")
        return y, (_forward_layer(layer, e, "reference")
                   + (c.gamma(w) + 2 * c.u) * _forward_layer(layer, np.abs(v) + e, "reference"))
    if k == "batch_norm":
        y = _forward_layer(layer, v, "reference")
        shape = _channel_shape(a["layout"], v.ndim)
        s = (np.abs(layer.weights["gamma"]) / np.sqrt(layer.weights["var"] + a["eps"]))
        s = s.reshape(shape)
        mu = np.abs(layer.weights["mean"]).reshape(shape)
        beta = np.abs(layer.weights["beta"]).reshape(shape)
        return y, s * e + (6 + 2 * c.k) * c.u * ((np.abs(v) + e) * s + mu * s + beta)
    if k in ("flatten", "reshape", "dropout"):
        return _forward_layer(layer, v, "reference"), _forward_layer(layer, e, "reference")
    if k == "residual":
        fv, fe = v, e
        for sub in layer.layers:
            fv, fe = _step(sub, fv, fe, c)
        y = _forward_layer(layer, v, "reference")
        idx = layer.weights.get("index_map")
        tot = e.copy()
        if idx is None:
            tot += fe
        else:
            ch = v.ndim - 1 if (v.ndim == 4 and a["layout"] == "NHWC") else 1
            sl = [slice(None)] * v.ndim
            sl[ch] = np.asarray(idx)
            tot[tuple(sl)] += fe
        return y, tot + c.u * np.abs(y)
    if k in ("lstm", "gru", "simple_rnn"):
        return _recurrent_bound(layer, v, e, c)
    raise ParameterError(f"framework_error_bound: layer kind {k!r} is not supported")


class _Dir:
    """One direction of a recurrent layer as the per-kind bound functions read it."""

    def __init__(self, weights, attrs):
        self.weights, self.attrs = weights, attrs


def _recurrent_bound(layer, v, e, c):
    """Forward, reverse (time flipped) or both directions (features concatenated)."""
    k, a = layer.kind, layer.attrs
    extra = [o for o in ("clip", "activations", "activation_alpha", "activation_beta")
             if a.get(o) is not None] + (["input_forget"] if a.get("input_forget") else []) \
        + (["peepholes"] if "P" in layer.weights else []) \
        + (["update"] if a.get("update", "standard") != "standard" else [])
    if extra:
        raise ParameterError(f"framework_error_bound: recurrent options {extra} are not "
                             "covered by the bound")
    fn = {"lstm": _lstm, "gru": _gru, "simple_rnn": _simple_rnn}[k]
    direction = a.get("direction", "forward")
    runs = []
    if direction in ("forward", "bidirectional"):
        runs.append((layer, False))
    if direction in ("reverse", "bidirectional"):
        w = layer.weights if direction == "reverse" else \
            {n: layer.weights[n + "_reverse"] for n in ("W_ih", "W_hh", "b_ih", "b_hh")
             if n + "_reverse" in layer.weights}
        runs.append((_Dir(w, a), True))
    seqs, finals = [], []
    for lay, rev in runs:
        vv, ee = (v[:, ::-1], e[:, ::-1]) if rev else (v, e)
        hs, es = fn(lay, vv, ee, c)
        finals.append((hs[-1], es[-1]) if hs else (None, None))
        if rev:
            hs, es = hs[::-1], es[::-1]
        seqs.append((np.stack(hs, axis=1), np.stack(es, axis=1)))
    if a["return_sequences"]:
        return (np.concatenate([s[0] for s in seqs], axis=2),
                np.concatenate([s[1] for s in seqs], axis=2))
    return (np.concatenate([f[0] for f in finals], axis=1),
            np.concatenate([f[1] for f in finals], axis=1))


def _rnn_weights(layer):
    w = layer.weights
    W_ih, W_hh = w["W_ih"], w["W_hh"]
    b_ih = w.get("b_ih", np.zeros(W_ih.shape[0]))
    b_hh = w.get("b_hh", np.zeros(W_hh.shape[0]))
    return W_ih, W_hh, b_ih, b_hh


def _sig(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _dsig(s):
    """sigmoid' from the value s = sigmoid(x) (first order: the derivative at v)."""
    return s * (1.0 - s)


def _dtanh(t):
    """tanh' from the value t = tanh(x)."""
    return 1.0 - t * t


def _pre(W, x, ex, b, c, n_extra):
    """Values and bounds of ``x W^T + b`` (a dot product of len(x) terms + a bias)."""
    val = x @ W.T + b
    aW = np.abs(W)
    err = ex @ aW.T + c.gamma(W.shape[1] + n_extra) * ((np.abs(x) + ex) @ aW.T + np.abs(b))
    return val, err


def _lstm(layer, v, e, c):
    W_ih, W_hh, b_ih, b_hh = _rnn_weights(layer)
    H = W_hh.shape[1]
    N, T = v.shape[:2]
    h, eh = np.zeros((N, H)), np.zeros((N, H))
    cs, ec = np.zeros((N, H)), np.zeros((N, H))
    hs, es = [], []
    for t in range(T):
        # z = (x W_ih^T + b_ih) + (h W_hh^T + b_hh): F + H products, two biases
        z1, ez1 = _pre(W_ih, v[:, t], e[:, t], b_ih, c, H + 2)
        z2, ez2 = _pre(W_hh, h, eh, b_hh, c, W_ih.shape[1] + 2)
        z, ez = z1 + z2, ez1 + ez2
        gi, gf, gg, go = (slice(j * H, (j + 1) * H) for j in range(4))
        i, f, g, o = _sig(z[:, gi]), _sig(z[:, gf]), np.tanh(z[:, gg]), _sig(z[:, go])
        ei = _dsig(i) * ez[:, gi] + c.f * i
        ef = _dsig(f) * ez[:, gf] + c.f * f
        eg = _dtanh(g) * ez[:, gg] + c.f * np.abs(g)
        eo = _dsig(o) * ez[:, go] + c.f * o
        c_new = f * cs + i * g
        ec = (f * ec + np.abs(cs) * ef + i * eg + np.abs(g) * ei
              + c.gamma(2) * (np.abs(f * cs) + np.abs(i * g)))
        tc = np.tanh(c_new)
        h = o * tc
        eh = np.abs(tc) * eo + o * (_dtanh(tc) * ec + c.f * np.abs(tc)) + c.u * np.abs(h)
        cs = c_new
        hs.append(h)
        es.append(eh)
    return hs, es


def _gru(layer, v, e, c):
    W_ih, W_hh, b_ih, b_hh = _rnn_weights(layer)
    H = W_hh.shape[1]
    N, T = v.shape[:2]
    reset_after = layer.attrs["reset_after"]
    h, eh = np.zeros((N, H)), np.zeros((N, H))
    hs, es = [], []
    R, Z, Nn = (slice(j * H, (j + 1) * H) for j in range(3))
    for t in range(T):
        # r, z may be formed as one dot product of F + H terms and two biases: gamma_{F+H+2}
        gi, egi = _pre(W_ih, v[:, t], e[:, t], b_ih, c, H + 2)
        gh, egh = _pre(W_hh[:2 * H], h, eh, b_hh[:2 * H], c, W_ih.shape[1] + 2)
        # r, z: (x W_i + b_i) + (h W_h + b_h), one more addition
        pre = gi[:, :2 * H] + gh
        epre = egi[:, :2 * H] + egh + c.u * np.abs(pre)
        r, z = _sig(pre[:, :H]), _sig(pre[:, H:])
        er = _dsig(r) * epre[:, :H] + c.f * r
        ez = _dsig(z) * epre[:, H:] + c.f * z
        if reset_after:
            hn, ehn = _pre(W_hh[Nn], h, eh, b_hh[Nn], c, 1)
            npre = gi[:, Nn] + r * hn
            enpre = (egi[:, Nn] + r * ehn + np.abs(hn) * er
                     + c.gamma(2) * (np.abs(gi[:, Nn]) + np.abs(r * hn)))
        else:
            rh = r * h
            erh = r * eh + np.abs(h) * er + c.u * np.abs(rh)
            hn, ehn = _pre(W_hh[Nn], rh, erh, b_hh[Nn], c, 1)
            npre = gi[:, Nn] + hn
            enpre = egi[:, Nn] + ehn + c.u * np.abs(npre)
        n = np.tanh(npre)
        en = _dtanh(n) * enpre + c.f * np.abs(n)
        h_new = (1 - z) * n + z * h
        # covers (1 - z) n + z h and n + z (h - n): three roundings on |n|, |h|, |z (h - n)|
        eh = (np.abs(h - n) * ez + (1 - z) * en + z * eh
              + c.gamma(3) * (np.abs(n) + np.abs(h) + np.abs(z * (h - n))))
        h = h_new
        hs.append(h)
        es.append(eh)
    return hs, es


def _simple_rnn(layer, v, e, c):
    W_ih, W_hh, b_ih, b_hh = _rnn_weights(layer)
    H = W_hh.shape[1]
    N, T = v.shape[:2]
    act = layer.attrs["activation"]
    if act not in ("tanh", "relu"):
        raise ParameterError(f"framework_error_bound: simple_rnn activation {act!r}")
    h, eh = np.zeros((N, H)), np.zeros((N, H))
    hs, es = [], []
    for t in range(T):
        z1, ez1 = _pre(W_ih, v[:, t], e[:, t], b_ih, c, H + 2)
        z2, ez2 = _pre(W_hh, h, eh, b_hh, c, W_ih.shape[1] + 2)
        z, ez = z1 + z2, ez1 + ez2
        if act == "tanh":
            h = np.tanh(z)
            eh = _dtanh(h) * ez + c.f * np.abs(h)
        else:
            h, eh = np.maximum(z, 0.0), ez
        hs.append(h)
        es.append(eh)
    return hs, es


def framework_error_bound(model, x, *, func_ulps=4):
    """Elementwise bound on ``|framework(x) - model(x)|`` (see the module docstring).

    Parameters
    ----------
    model : refcomp.Model
        The imported model (its reference forward pass is what is compared).
        Supported kinds: dense, conv2d, max/avg pooling, flatten, reshape,
        dropout, batch_norm, residual, lstm, gru, simple_rnn, and relu,
        linear, tanh, sigmoid, softmax activations.
    x : ndarray
        The input batch given to both.
    func_ulps : float, default 4
        Assumed accuracy, in ulps, of the framework's ``exp``, ``tanh`` and
        ``sigmoid`` (vectorised implementations such as SLEEF's are within
        1 ulp; 4 leaves room for a formula like ``1 / (1 + exp(-x))``).

    Returns
    -------
    ndarray of float64, the shape of ``model(x)``
        ``2 e + 2**-126``: twice the first-order bound ``e`` on the distance
        of any conforming evaluation to the exact value (one ``e`` for the
        framework, one for refcomp), plus the smallest normal float32 for
        results that underflow.

    Raises
    ------
    ParameterError
        a layer kind or activation outside the list above.
    """
    _, e = _propagate(model, x, func_ulps)
    return 2.0 * e + 2.0 ** -126


def _propagate(model, x, func_ulps):
    """(v, e): float64 values of the exact computation and the one-sided bound e."""
    dt = model._dtype() or np.dtype(np.float32)
    c = _Ctx(_unit_roundoff(dt), func_ulps)
    v = np.asarray(x).astype(np.float64)
    e = np.zeros_like(v)
    for layer in model.layers:
        v, e = _step(_f64(layer), v, e, c)
    return v, e
