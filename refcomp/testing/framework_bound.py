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
* evaluates ``exp``, ``log``, ``tanh`` and ``sigmoid`` within ``func_ulps`` ulps,
  i.e. relative error ``<= 2 * func_ulps * u``;
* takes maxima exactly.

Propagation (first order in ``u``; the neglected terms are ``O(u**2)``
relative, below 1e-13):

* dense / conv2d / conv1d, input ``(v, e)``: ``e' = |W| e + gamma_{n+1} (|W|
  (|v| + e) + |b|)`` (``|W| e`` by the same layer function on ``|W|`` and
  ``e``); dense with ONNX Gemm ``alpha``/``beta`` other than 1: ``e' =
  |alpha| |W| e + gamma_{n+3} (|alpha| |W| (|v| + e) + |beta| |b|)`` (the
  scaling of the sum or of each weight, and the product ``beta b``: two
  more roundings on any path; see ``_dot_layer``);
* relu, linear: ``e' = e``; tanh, sigmoid: ``e' = |f'(v)| e + 2 k u |v'|``
  with ``k = func_ulps`` and the derivative at the exact point (the mean
  value theorem; the derivative's change over the interval of width ``e``
  is a second-order term);
* softmax along an axis, ``s = softmax(z)``: ``e'_i = s_i (e_i + sum_j s_j e_j)
  + s_i (r_i + sum_j s_j r_j + gamma_n + 2u)`` with ``r_j = u |z_j - max z|
  + 2 k u`` (the shift, the exponential, the sum of ``n`` positive terms and
  the division);
* log_softmax along an axis, ``y = z - m - L`` with ``m = max z``, ``L =
  log S``, ``S = sum_j exp(z_j - m)`` (so ``S >= 1``, ``L >= 0``), ``s =
  softmax(z)``: ``e'_i = e_i + sum_j s_j e_j + sum_j s_j r_j + gamma_n + k'
  u L + u (2 |z_i - m| + |m| + 2 L)`` with ``r_j`` as for softmax and ``k' =
  2 k``.  Derivation: ``dy_i/dz_j = delta_ij - s_j`` carries the input
  error; the exponentials (shift and ``exp``, relative ``r_j``) and the sum
  of ``n`` positive terms in any order (``gamma_n``) give ``S (1 + rho)``
  with ``|rho| <= sum_j s_j r_j + gamma_n``, which the logarithm turns into
  the absolute error ``|log(1 + rho)| ~ |rho|``; ``log`` itself within
  ``k`` ulps adds ``2 k u L``; the last term covers both usual orders of
  the final subtraction, ``(z_i - m) - L`` (PyTorch's vectorised kernel
  and TensorFlow: shift rounded, ``u |z_i - m|``, then ``u |y_i|``) and
  ``z_i - (m + L)`` (``u (|m| + L)`` then ``u |y_i|``), with ``|y_i| =
  |z_i - m| + L``.  Not covered: ``log(softmax(z))`` evaluated literally
  (the quotient underflows to 0 and its log to -inf);
* max pooling (2-D or N-D, any padding, dilation, ceil_mode: a maximum
  over the same window positions is 1-Lipschitz in the max norm and
  exact): ``e' = maxpool(e)``; average pooling (2-D or N-D): ``e' =
  avgpool(e) + (gamma_w + 2u) avgpool(|v| + e)`` with ``w`` the window
  size (at most ``w`` real terms summed in any order, then one division or
  a multiplication by a rounded reciprocal; the divisor, which padding,
  ``ceil_mode`` and ``count_include_pad`` fix, is the reference's);
* batch norm on the layer's channel axis (its ``axis`` attribute when
  set, else the layout rule of :func:`refcomp.layers.batch_norm`), ``s =
  gamma / sqrt(var + eps)``: ``e' = |s| e + (6 + 2k) u
  (|v| |s| + |mean| |s| + |beta|)`` (covers ``(x - mean) s + beta`` and the
  folded ``x s + (beta - mean s)``, with a ``rsqrt`` within k ulps);
* flatten, reshape, dropout: ``e`` rearranged like the values;
* residual: the body from ``(v, e)``, then ``e' = e + e_body + u |v'|``;
* hard_sigmoid, linear piece ``L x + b0`` clipped to [0, 1] (``L`` = 1/6,
  ``b0`` = 1/2 "keras3"; 0.2, 0.5 "keras2"; the float32 ``alpha`` and
  ``beta`` attributes "onnx"): ``e' = |L| e + 3u (|L| (|v| + e) + |b0|)``
  (the constant, the product or quotient and the sum; the clip is exact);
* recurrent layers (lstm, gru, mgu, simple_rnn) with every ONNX option
  refcomp runs (direction, clip, peepholes, input_forget, activation lists
  with alpha / beta, GRU reset_after and seed 000's update, constant
  initial states ``h0`` / ``c0`` / ``*_reverse``, per-sample
  ``sequence_lens``, ``layout="time_major"``), per time step:
  gate pre-activations as dot products of ``F + H`` terms plus two biases,
  then the cell's formulas with each operation's rounding, each input's
  error and each activation's Lipschitz constant on the interval; the
  state's error is carried through the *signed* Jacobians of the
  recurrence over a window of steps (cancellations kept), and the smaller
  of that and the elementwise propagation is kept; tanh and sigmoid inside
  a cell are allowed ``func_ulps`` ulps of the value plus as many of 1
  (ONNX Runtime forms tanh as ``2 sigmoid(2x) - 1``).  Given initial
  states are exact (bound 0; ``u |s|`` when rounded to a coarser
  evaluation dtype); with ``sequence_lens`` a sample's state and bound are
  frozen after its last step and its later outputs are +0.0 (bound 0);
  a time-major layer is bounded as the batch-first one on the transposed
  input, its output transposed back.  See
  :mod:`refcomp.testing._rnn_jacobian` and ``_recurrent_bound``.

When the evaluation dtype is coarser than the model's (a float16 or
bfloat16 evaluation of float32 weights), the weights and the input are
first rounded to it: the input starts with ``e = u |x|``, every dot
product's gamma gets one more rounding (``gamma_{n+2}``, the weight's), and
batch norm's factor ``4u`` more (its four parameters).

Refused by name (``ParameterError``), never bounded loosely: convolutions
evaluated by Winograd or FFT algorithms (``conv_algorithm=`` or a layer
attribute ``algorithm``), whose errors are not those of a sum of products
(:func:`refcomp.layers.conv_bounds.conv2d_error_bound` bounds one such
layer); factorized weights run as their chain of products
(``forward="factorized"``); every layer kind or activation not listed above.

Both the framework and refcomp's reference satisfy these assumptions
(refcomp's roundings are a subset of the float32 evaluation's: float64
accumulations and one rounding per stored value), so each is within ``e``
of the exact value and ``|framework - refcomp| <= 2 e``; the function
returns ``2 e`` plus a subnormal-sized absolute term.
"""

import numpy as np

from .._errors import ParameterError
from ..kernels.elementwise import exp64
from ..layers.normalization import channel_axis
from ..model import Layer, _forward_layer, _initial_states, _sequence_lens, materialize
from ._rnn_jacobian import _direction_specs, recurrent_bound

__all__ = ["framework_error_bound", "BOUNDED_KINDS", "BOUNDED_ACTIVATIONS",
           "UNBOUNDED_CONV_ALGORITHMS", "unit_roundoff_of", "smallest_normal_of"]

#: Layer kinds the bound propagates through.
BOUNDED_KINDS = ("dense", "conv2d", "conv1d", "max_pool2d", "avg_pool2d", "max_pool",
                 "avg_pool", "flatten", "reshape", "dropout", "activation", "batch_norm",
                 "residual", "lstm", "gru", "mgu", "simple_rnn")
#: Activation functions the bound propagates through.
BOUNDED_ACTIVATIONS = ("relu", "linear", "tanh", "sigmoid", "softmax", "log_softmax",
                       "hard_sigmoid")
#: Convolution algorithms refused by name (their rounding errors are not a dot product's).
UNBOUNDED_CONV_ALGORITHMS = ("fft", "winograd", "winograd2", "winograd4")
#: Convolution algorithms bounded: sums of products in any order.
BOUNDED_CONV_ALGORITHMS = ("direct", "im2col", "gemm")

# unit roundoff u = 2**-p and smallest normal of the evaluation dtypes (FACTS.md §6.4)
_FORMATS = {"float64": (2.0 ** -53, 2.0 ** -1022), "float32": (2.0 ** -24, 2.0 ** -126),
            "float16": (2.0 ** -11, 2.0 ** -14), "bfloat16": (2.0 ** -8, 2.0 ** -126)}


def _dtype_name(dtype):
    try:
        return np.dtype(dtype).name
    except TypeError:
        return str(dtype)


def unit_roundoff_of(dtype):
    """Unit roundoff ``u = 2**-p`` of an evaluation dtype (FACTS.md §6.4).

    Parameters
    ----------
    dtype : str or dtype
        "float64", "float32", "float16" or "bfloat16" (a NumPy or ml_dtypes
        dtype of that name is accepted).

    Returns
    -------
    float
        2**-53, 2**-24, 2**-11 or 2**-8.

    Raises
    ------
    ParameterError
        Any other dtype.
    """
    name = _dtype_name(dtype)
    if name not in _FORMATS:
        raise ParameterError(f"no unit roundoff for dtype {name!r}; expected one of "
                             f"{sorted(_FORMATS)}")
    return _FORMATS[name][0]


def smallest_normal_of(dtype):
    """Smallest positive normal number of an evaluation dtype (2**-126 for float32)."""
    unit_roundoff_of(dtype)
    return _FORMATS[_dtype_name(dtype)][1]


class _Ctx:
    """Evaluation model: unit roundoff ``u``, function error ``f = 2 k u``,
    ``r`` = 1 when weights are rounded to the evaluation dtype first."""

    def __init__(self, u, func_ulps, r=0):
        self.u = u
        self.k = float(func_ulps)
        self.f = 2.0 * self.k * u            # relative error of exp / tanh / sigmoid
        self.r = int(r)

    def gamma(self, n):
        if not n * self.u < 0.5:
            raise ParameterError(f"framework_error_bound: gamma_{n} is undefined for unit "
                                 f"roundoff {self.u!r} (n u >= 1/2: the sum is too long for "
                                 "this dtype)")
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
    """|W| without bias (and alpha = 1), for propagating bounds through dense / conv."""
    attrs = dict(layer64.attrs)
    if layer64.kind == "dense":
        attrs.update(alpha=1.0, beta=1.0)
    return Layer(layer64.kind, name=layer64.name, attrs=attrs,
                 weights={"W": np.abs(layer64.weights["W"])})


def _channel_shape(layout, ndim, axis=None):
    """Broadcast shape of a per-channel vector (batch_norm's channel axis rule).

    ``axis`` None: axis 1 for 2-D input and 4-D NCHW, the last axis
    otherwise; an int (batch_norm's ``axis`` attribute, e.g. 1 from ONNX's
    BatchNormalization on rank 3 or 5): that axis, negative counted from
    the end, exactly as :func:`refcomp.layers.batch_norm` reads it.
    """
    shape = [1] * ndim
    shape[channel_axis(ndim, layout, axis)] = -1
    return shape


def check_bounded(layer, path, conv_algorithm="direct"):
    """Raise ParameterError naming ``layer`` (at model ``path``) if it cannot be bounded.

    Refused: kinds outside :data:`BOUNDED_KINDS`, activations outside
    :data:`BOUNDED_ACTIVATIONS`, a conv2d evaluated by an algorithm of
    :data:`UNBOUNDED_CONV_ALGORITHMS` (the ``conv_algorithm`` argument or a
    layer attribute ``algorithm``), and a weight whose compute hook runs a
    factorized chain of products (``forward == "factorized"``).
    """
    k, a = layer.kind, layer.attrs
    where = f"layer {path} ({k} {layer.name!r})"
    if k not in BOUNDED_KINDS:
        raise ParameterError(f"framework_error_bound: {where}: layer kind {k!r} is not "
                             f"supported (bounded kinds: {', '.join(BOUNDED_KINDS)})")
    if k == "activation" and a["function"] not in BOUNDED_ACTIVATIONS:
        raise ParameterError(f"framework_error_bound: {where}: activation {a['function']!r} "
                             "is not supported")
    if k == "conv2d":
        alg = a.get("algorithm", conv_algorithm)
        if alg in UNBOUNDED_CONV_ALGORITHMS:
            raise ParameterError(
                f"framework_error_bound: {where} is evaluated by the {alg!r} algorithm, whose "
                "rounding errors are not those of a sum of products: refused rather than "
                "bounded loosely (refcomp.layers.conv_bounds.conv2d_error_bound bounds one "
                "such layer)")
        if alg not in BOUNDED_CONV_ALGORITHMS:
            raise ParameterError(f"conv_algorithm must be one of "
                                 f"{BOUNDED_CONV_ALGORITHMS + UNBOUNDED_CONV_ALGORITHMS}, "
                                 f"got {alg!r}")
    for name, w in layer.weights.items():
        if getattr(w, "forward", None) == "factorized":
            raise ParameterError(
                f"framework_error_bound: {where}: weight {name!r} ({type(w).__name__}) runs "
                "its factorized chain of products, whose error is not one dot product's: "
                "refused (use w.with_forward('reconstruct'))")
    for i, sub in enumerate(layer.layers or []):
        check_bounded(sub, f"{path}/{i}", conv_algorithm)


def _step(layer, v, e, c):
    """(v', e') of one float64 layer ``layer`` from input values v and bounds e."""
    k, a = layer.kind, layer.attrs
    if k in ("dense", "conv2d", "conv1d"):
        return _dot_layer(layer, v, e, c)
    if k == "activation":
        f = a["function"]
        y = _forward_layer(layer, v, "reference")
        if f in ("relu", "linear"):
            return y, e.copy()
        if f in ("tanh", "sigmoid"):
            d = _dtanh(y) if f == "tanh" else _dsig(y)
            return y, d * e + c.f * np.abs(y)
        if f == "hard_sigmoid":
            L, b0 = _hard_sigmoid_line(a)
            return y, L * e + 3 * c.u * (L * (np.abs(v) + e) + b0)
        ax = a["axis"]                                  # softmax, log_softmax
        m = np.max(v, axis=ax, keepdims=True)
        r = c.u * np.abs(v - m) + c.f
        n = v.shape[ax]
        if f == "log_softmax":
            s = exp64(y)                                # softmax(v) (libm: same bits anywhere)
            L = np.maximum(-(y + np.abs(v - m)), 0.0)   # log S = (v - m) - y >= 0
            se = np.sum(s * e, axis=ax, keepdims=True)
            sr = np.sum(s * r, axis=ax, keepdims=True)
            return y, (e + se + sr + c.gamma(max(n, 1)) + c.f * L
                       + c.u * (2 * np.abs(v - m) + np.abs(m) + 2 * L))
        se = np.sum(y * e, axis=ax, keepdims=True)
        sr = np.sum(y * r, axis=ax, keepdims=True)
        return y, y * (e + se) + y * (r + sr + c.gamma(max(n, 1)) + 2 * c.u)
    if k in ("max_pool2d", "max_pool", "flatten", "reshape", "dropout"):
        return (_forward_layer(layer, v, "reference"), _forward_layer(layer, e, "reference"))
    if k in ("avg_pool2d", "avg_pool"):
        size = a["size"] if isinstance(a["size"], (list, tuple)) else (a["size"],) * (v.ndim - 2)
        w = int(np.prod(size))
        y = _forward_layer(layer, v, "reference")
        return y, (_forward_layer(layer, e, "reference")
                   + (c.gamma(w) + 2 * c.u) * _forward_layer(layer, np.abs(v) + e, "reference"))
    if k == "batch_norm":
        y = _forward_layer(layer, v, "reference")
        shape = _channel_shape(a["layout"], v.ndim, a.get("axis"))
        s = (np.abs(layer.weights["gamma"]) / np.sqrt(layer.weights["var"] + a["eps"]))
        s = s.reshape(shape)
        mu = np.abs(layer.weights["mean"]).reshape(shape)
        beta = np.abs(layer.weights["beta"]).reshape(shape)
        return y, s * e + (6 + 2 * c.k + 4 * c.r) * c.u * ((np.abs(v) + e) * s + mu * s + beta)
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
    if k in ("lstm", "gru", "mgu", "simple_rnn"):
        return _recurrent_bound(layer, v, e, c)
    raise ParameterError(f"framework_error_bound: layer kind {k!r} is not supported")


def _hard_sigmoid_line(a):
    """(|slope|, |intercept|) of hard_sigmoid's linear piece, as the variant defines it.

    "keras3": x/6 + 1/2; "keras2": 0.2 x + 0.5; "onnx": ``alpha x + beta``
    with alpha and beta the float32 values of the attributes (ONNX
    attributes are float32; :func:`refcomp.layers.activations.hard_sigmoid`
    rounds them the same way).  The clip to [0, 1] is exact and
    1-Lipschitz, so the slope carries the input error; the three roundings
    (the constant, the product or quotient, the sum) are relative to
    ``|slope| |x| + |intercept|``.
    """
    variant = a.get("variant", "keras3")
    if variant == "keras3":
        return 1.0 / 6.0, 0.5
    if variant == "keras2":
        return 0.2, 0.5
    return (abs(float(np.float32(a.get("alpha", 0.2)))),
            abs(float(np.float32(a.get("beta", 0.5)))))


def _dot_layer(layer, v, e, c):
    """dense (with ONNX Gemm alpha / beta), conv2d, conv1d: sums of products plus a bias.

    ``y = alpha (sum_j w_j x_j) + beta b`` (alpha = beta = 1 but for dense):
    whatever the order of the ``n`` products and sums, the scaling by alpha
    before or after the sum (or folded into the weights first), and beta
    times b, each path from a term to the result crosses at most ``n + 3``
    roundings (product, ``n - 1`` additions, alpha, the bias addition, and
    the one of ``alpha w_j`` or ``beta b``), so the computed value is within
    ``gamma_{n+3} (|alpha| |W| |x| + |beta| |b|)`` of the exact one
    (Higham Thm 3.1, Lemma 3.3); with alpha = beta = 1 no such rounding
    exists and ``gamma_{n+1}`` holds (Higham Thm 3.1 with the bias as one
    more term).  The input error ``e`` adds ``|alpha| |W| e``.  alpha and
    beta are the float32 values the layer uses (ONNX attributes).
    """
    k, a = layer.kind, layer.attrs
    alpha = float(np.float32(a.get("alpha", 1.0))) if k == "dense" else 1.0
    beta = float(np.float32(a.get("beta", 1.0))) if k == "dense" else 1.0
    scaled = alpha != 1.0 or beta != 1.0
    y = _forward_layer(layer, v, "reference")
    absl = _abs_layer(layer)
    W = layer.weights["W"]
    n = int(np.prod(W.shape[1:]))
    mag = abs(alpha) * _forward_layer(absl, np.abs(v) + e, "reference")
    b = layer.weights.get("b")
    if b is not None:
        if k == "conv1d":
            shape = (1, -1, 1)
        elif k == "conv2d":
            shape = _channel_shape(a["layout"], y.ndim)
        else:
            shape = (-1,)
        mag = mag + abs(beta) * np.abs(b).reshape(shape)
    g = c.gamma(n + (3 if scaled else 1) + c.r)
    return y, abs(alpha) * _forward_layer(absl, e, "reference") + g * mag


def _recurrent_bound(layer, v, e, c):
    """Forward, reverse or both directions (features concatenated), from the layer's
    constant initial states, over its per-sample lengths, in its layout.

    The computation bounded is the one :func:`refcomp.model._recurrent` runs:

    * ``layout="time_major"``: the batch-first pass on ``x.transpose(1, 0, 2)``,
      its output sequence transposed back (a transposition has no error);
    * initial states ``h0`` / ``c0`` (and ``*_reverse`` when bidirectional;
      a (1, H) state broadcast to every sample, a missing one zeros), as
      :func:`refcomp.model._initial_states` gives them: exact values, so the
      state's bound starts at zero (``u |h0|`` when the evaluation dtype is
      coarser than the model's, the state then being rounded to it first);
    * ``sequence_lens``: sample n runs its steps ``k < len[n]`` on time
      ``k`` (reverse: ``len[n] - 1 - k``); its later steps leave the state
      unchanged, so its final state and bound are those after step
      ``len[n] - 1``, and its outputs past ``len[n]`` are +0.0 in every
      evaluation (bound 0).  The samples' rows are independent in
      :func:`recurrent_bound`, so each runs over all ``T`` steps (on time 0
      once inactive) and only its first ``len[n]`` are kept.
    """
    k, a = layer.kind, layer.attrs
    direction = a.get("direction", "forward")
    ndir = 2 if direction == "bidirectional" else 1
    specs = _direction_specs(k, a, ndir)
    init = _initial_states(layer, v) if k != "mgu" else {}
    lens = _sequence_lens(layer, v) if a.get("sequence_lens") is not None else None
    time_major = a.get("layout", "batch_first") == "time_major"
    if time_major:
        v, e = v.transpose(1, 0, 2), e.transpose(1, 0, 2)
    N, T = v.shape[:2]
    if lens is None:
        lens = np.full(N, T, dtype=np.int64)
    names = ("W_ih", "W_hh", "b_ih", "b_hh", "P")
    runs = []
    if direction in ("forward", "bidirectional"):
        runs.append(({n: layer.weights[n] for n in names if n in layer.weights}, False,
                     specs[0], 0))
    if direction in ("reverse", "bidirectional"):
        if direction == "reverse":
            w = {n: layer.weights[n] for n in names if n in layer.weights}
        else:
            w = {n: layer.weights[n + "_reverse"] for n in names
                 if n + "_reverse" in layer.weights}
        runs.append((w, True, specs[-1], ndir - 1))
    steps = np.arange(T)
    active = steps[None, :] < lens[:, None]                     # (N, T): step k of sample n
    rows = np.arange(N)[:, None]
    last = np.maximum(lens - 1, 0)
    seqs, finals = [], []
    for w, rev, acts, d in runs:
        t_idx = np.where(active, (lens[:, None] - 1 - steps[None, :]) if rev else steps[None, :],
                         0)
        states = [s if ndir == 1 else s[d] for s in (init.get("h0"), init.get("c0"))
                  if s is not None]
        if init and len(states) < (2 if k == "lstm" else 1):   # only c0 given: h0 zeros
            zero = np.zeros((N, w["W_hh"].shape[1]))
            states = [zero, states[0]] if "h0" not in init else states + [zero]
        hs, es = recurrent_bound(k, w, a, acts, v[rows, t_idx], e[rows, t_idx], c,
                                 init=states or None)
        H = w["W_hh"].shape[1]
        hk = np.stack(hs, axis=1) if hs else np.zeros((N, 0, H))
        ek = np.stack(es, axis=1) if es else np.zeros((N, 0, H))
        if T:
            finals.append((hk[np.arange(N), last], ek[np.arange(N), last]))
        else:                                   # no step: the initial state, exact
            h_init = states[0] if states else np.zeros((N, H))
            finals.append((h_init, c.r * c.u * np.abs(h_init)))
        ys, eb = np.zeros_like(hk), np.zeros_like(ek)
        n_i, k_i = np.nonzero(active)
        ys[n_i, t_idx[n_i, k_i]] = hk[n_i, k_i]
        eb[n_i, t_idx[n_i, k_i]] = ek[n_i, k_i]
        seqs.append((ys, eb))
    if a["return_sequences"]:
        ys = np.concatenate([s[0] for s in seqs], axis=2)
        eb = np.concatenate([s[1] for s in seqs], axis=2)
        if time_major:
            ys, eb = ys.transpose(1, 0, 2), eb.transpose(1, 0, 2)
        return ys, eb
    return (np.concatenate([f[0] for f in finals], axis=1),
            np.concatenate([f[1] for f in finals], axis=1))


def _dsig(s):
    """sigmoid' from the value s = sigmoid(x) (first order: the derivative at v)."""
    return s * (1.0 - s)


def _dtanh(t):
    """tanh' from the value t = tanh(x)."""
    return 1.0 - t * t


def framework_error_bound(model, x, *, func_ulps=4):
    """Elementwise bound on ``|framework(x) - model(x)|`` (see the module docstring).

    Parameters
    ----------
    model : refcomp.Model
        The imported model (its reference forward pass is what is compared).
        Supported kinds: :data:`BOUNDED_KINDS` (dense, conv2d, max/avg
        pooling, flatten, reshape, dropout, batch_norm, residual, lstm, gru,
        mgu, simple_rnn) and the activations :data:`BOUNDED_ACTIVATIONS`.
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
        of any conforming evaluation (in the model's dtype) to the exact
        value (one ``e`` for the framework, one for refcomp), plus the
        smallest normal float32 for results that underflow.

    Raises
    ------
    ParameterError
        a layer kind, activation or algorithm refused by name (see the
        module docstring).
    """
    _, e = _propagate(model, x, func_ulps)
    return 2.0 * e + 2.0 ** -126


def _propagate(model, x, func_ulps, *, dtype=None, conv_algorithm="direct", extra_u=0.0):
    """(v, e): float64 values of the exact computation and the one-sided bound e.

    ``dtype``: the evaluation dtype (default the model's); ``extra_u`` is
    added to its unit roundoff (reference_and_bound adds float64's, for
    the float64 evaluation of ``v`` itself).
    """
    model_dt = model._dtype() or np.dtype(np.float32)
    dt = model_dt if dtype is None else dtype
    u = unit_roundoff_of(dt)
    coarser = u > unit_roundoff_of(model_dt)
    for i, layer in enumerate(model.layers):
        check_bounded(layer, str(i), conv_algorithm)
    c = _Ctx(u + extra_u, func_ulps, r=1 if coarser else 0)
    x = np.asarray(x)
    v = x.astype(np.float64)
    x_u = unit_roundoff_of(x.dtype) if x.dtype.name in _FORMATS else 0.0
    e = (u * np.abs(v)) if u > x_u else np.zeros_like(v)
    for layer in model.layers:
        v, e = _step(_f64(layer), v, e, c)
    return v, e
