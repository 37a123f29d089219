"""Recurrent layers: LSTM, GRU, MGU and simple RNN, batch-first (N, T, F).

LSTM, GRU and simple RNN also take time-major sequences (T, N, F) with
``layout="time_major"`` (ONNX ``layout=0``, PyTorch ``batch_first=False``):
a transposition on each side of the batch-first computation, same bits.

Canonical layouts (PyTorch): ``W_ih`` (G*H, F), ``W_hh`` (G*H, H),
``b_ih``/``b_hh`` (G*H,), gate blocks stacked along rows in the order
LSTM i,f,g,o; GRU r,z,n; MGU f,h.  Converters from Keras and ONNX layouts
are in :mod:`refcomp.convert`.

Arithmetic shared by all cells (``precision="reference"``):

1. pre-activations per gate unit: ``a = x_t . W_ih[row]`` (float64 exact
   products, sequential sum over features, as :func:`refcomp.layers.dense`)
   ``+ b_ih[row]``; ``r = h . W_hh[row]`` (same rule) ``+ b_hh[row]``;
   then ``a + r`` in float64 (except where a formula keeps them apart);
2. sigmoid/tanh in float64 through libm (:mod:`refcomp.kernels.elementwise`);
3. the state update in float64, evaluated left to right as written in each
   function's docstring;
4. the new states are rounded once (half-even) to the input dtype at the
   end of every step: the stored state has the model dtype, as in every
   framework, and the next step starts from those rounded values.

Where the host has float64 vector FMA, the classic LSTM and GRU
(``reset_after=True``) run these operations for the whole sequence in one
parallel call (:mod:`refcomp.kernels.rnn_tiled`, batch rows split between
threads); the per-step NumPy code below is its twin (same bits).  With
float32 states that kernel first evaluates each row with vectorized
activations of bounded error (:mod:`refcomp.kernels._fastact`) and keeps a
stored state only when the libm-based float64 value provably rounds to the
same float32 (Ziv's rounding test); otherwise, about one row-step in 10**3,
it evaluates the row again through libm.  The result is the libm
definition above, bit for bit, either way.

``precision="fast"`` (:mod:`refcomp.layers._rnn_fast`) evaluates the same
formulas in the input dtype: per step one BLAS product of the fused weights
``[W_hh | W_ih | b_ih | b_hh]`` with ``[h; x_t; 1; 1]`` (a second one where
a gate multiplies h before its product), ``sigmoid(z) = 0.5*tanh(z/2) + 0.5``
with NumPy's tanh (the halving folded exactly into the sigmoid rows), then
the state update with NumPy.  Missing biases count as zeros; missing h0/c0
as zeros.
"""

import numpy as np

from .._errors import ShapeError
from .._validate import as_float_array, check_same_dtype, describe
from ..kernels._tilevec import LANES
from ..kernels.elementwise import sigmoid64, tanh64
from ..kernels.rnn_tiled import gru_tiled, lstm_tiled
from ._common import check_precision
from ._rnn_fast import gru_fast, lstm_fast, mgu_fast, simple_rnn_fast
from ._rnn_options import needs_general, run_general, run_time_major
from .activations import relu
from .dense import dense_acc64

__all__ = ["lstm", "gru", "mgu", "simple_rnn"]


class _Ref:
    """The reference arithmetic of the module docstring (precision="fast"
    is :mod:`refcomp.layers._rnn_fast`)."""

    work = np.float64

    def __init__(self, dtype):
        self.dtype = dtype

    def affine(self, x, W, b):
        y = dense_acc64(x, W)
        if b is not None:
            # In place (y is new): the same additions, without a second
            # array of the size of the whole sequence's projection.
            y += b.astype(np.float64)
        return y

    def sigmoid(self, v):
        return sigmoid64(v)

    def tanh(self, v):
        return tanh64(v)

    def store(self, v):
        return v.astype(self.dtype)


def _check_rnn(x, W_ih, W_hh, b_ih, b_hh, gates, states):
    # Each argument is first checked to be a float32/float64 ndarray of the
    # right ndim, then dtypes are compared, then shapes.
    as_float_array("x", x, ndim=3)
    as_float_array("W_ih", W_ih, ndim=2)
    as_float_array("W_hh", W_hh, ndim=2)
    for name, a in (("b_ih", b_ih), ("b_hh", b_hh)):
        if a is not None:
            as_float_array(name, a, ndim=1)
    for name, s in states.items():
        if s is not None:
            as_float_array(name, s, ndim=2)
    check_same_dtype([("x", x), ("W_ih", W_ih), ("W_hh", W_hh), ("b_ih", b_ih),
                      ("b_hh", b_hh)] + list(states.items()))
    gh = W_hh.shape[0]
    if gh % gates:
        raise ShapeError(f"W_hh rows must be {gates}*H, got {describe(W_hh)}")
    hidden = gh // gates
    if W_hh.shape != (gates * hidden, hidden):
        raise ShapeError(f"W_hh must have shape ({gates}*H, H) = ({gh}, {hidden}), "
                         f"got {describe(W_hh)}")
    if W_ih.shape != (gh, x.shape[2]):
        raise ShapeError(f"W_ih must have shape ({gh}, {x.shape[2]}) = ({gates}*H, features of "
                         f"x {describe(x)}), got {describe(W_ih)}")
    for name, b in (("b_ih", b_ih), ("b_hh", b_hh)):
        if b is not None and b.shape != (gh,):
            raise ShapeError(f"{name} must have shape ({gh},), got {describe(b)}")
    n = x.shape[0]
    out = {}
    for name, s in states.items():
        if s is None:
            out[name] = np.zeros((n, hidden), dtype=x.dtype)
        else:
            if s.shape != (n, hidden):
                raise ShapeError(f"{name} must have shape ({n}, {hidden}), got {describe(s)}")
            out[name] = s
    return hidden, out


_GENERAL_DOC = """
    layout : {"batch_first", "time_major"}, default "batch_first"
        Axes of ``x`` and of the output sequence.  "batch_first": x (N, T,
        F), outputs (N, T, H') -- ONNX ``layout=1`` (X [N, T, F], its Y
        [N, T, D, H] is ``out.reshape(N, T, D, H)``), PyTorch
        ``batch_first=True``, Keras.  "time_major": x (T, N, F), outputs
        (T, N, H') -- ONNX ``layout=0``, the ONNX default (X [T, N, F], its
        Y [T, D, N, H] is ``out.reshape(T, N, D, H).transpose(0, 2, 1, 3)``),
        PyTorch ``batch_first=False``.  H' is H, or 2H when bidirectional.
        Only x and the output sequence change axes: h0 / c0, the final
        states and ``sequence_lens`` keep their shapes (N, H) / (2, N, H) /
        (N,) in both (PyTorch's rule; ONNX ``layout=1`` states [N, D, H]
        are their ``transpose(1, 0, 2)``).  The computation is the
        batch-first one on ``x.transpose(1, 0, 2)``: the same bits, exactly
        transposed.  Any other value is a ParameterError naming it.

    ONNX options (keyword only; any non-default value runs the general
    engine :mod:`refcomp.layers._rnn_onnx`, whose arithmetic is the
    reference order of this module, with the same bits as the classic path
    for the defaults):

    direction : {"forward", "reverse", "bidirectional"}
        "reverse" processes t = T-1 .. 0 (outputs stay at their time
        index); "bidirectional" runs both and concatenates the features
        [forward, reverse] (PyTorch layout; ONNX's Y is
        ``out.reshape(N, T, 2, H)``); final states then have shape
        (2, N, H) and ``return_sequences=False`` gives (N, 2H).
    reverse : dict, for "bidirectional": the backward direction's weights
        {"W_ih", "W_hh", "b_ih", "b_hh"[, "peepholes"]}, canonical layout.
    sequence_lens : int ndarray (N,) with values in [1, T]: sample b runs
        its first len_b steps (reverse: from len_b - 1 down); later outputs
        are +0.0, the final state is the one after its last step.
    activations : list of ONNX activation names per direction (LSTM f, g,
        h; GRU f, g; RNN f), with activation_alpha / activation_beta lists
        consumed in order by the functions that take a parameter (each
        rounded to float32); see :func:`refcomp.layers._rnn_onnx.make_activation`.
    clip : positive float (rounded to float32): the gate pre-activations
        (inputs of f and g) are clipped to [-clip, clip] (ONNX ``clip``, as
        ONNX Runtime applies it: an LSTM cell is not clipped before h).
"""


#: Tile width of the whole-sequence reference cells
#: (:mod:`refcomp.kernels.rnn_tiled`), 0: the NumPy step below (their twin).
#: The host's vector width by default; tests set it (same bits either way).
_TILED_LANES = LANES


def _projection(x, ops, W_ih, b_ih):
    # The input projection x_t W_ih^T + b_ih does not depend on the state, so
    # it is computed for all time steps at once: per (sample, step, unit) it
    # is the same row-by-row computation, so the bits are identical.
    n, t_len, f = x.shape
    proj = ops.affine(np.ascontiguousarray(x).reshape(n * t_len, f), W_ih, b_ih)
    return proj.reshape(n, t_len, W_ih.shape[0])


def _run(x, step, states, return_sequences, ops, W_ih, b_ih):
    proj = _projection(x, ops, W_ih, b_ih)
    t_len = x.shape[1]
    outputs = []
    for t in range(t_len):
        states = step(proj[:, t, :], states)
        if return_sequences:
            outputs.append(states[0])
    h = states[0]
    seq = (np.stack(outputs, axis=1) if outputs else np.zeros((x.shape[0], 0, h.shape[1]), h.dtype)) \
        if return_sequences else h
    return seq, states


def lstm(x, W_ih, W_hh, b_ih=None, b_hh=None, *, h0=None, c0=None, return_sequences=True,
         precision="reference", direction="forward", reverse=None, sequence_lens=None,
         peepholes=None, clip=None, input_forget=False, activations=None,
         activation_alpha=None, activation_beta=None, layout="batch_first"):
    """Long short-term memory layer (FACTS.md §1.1, seed 000 §II), gate order i, f, g, o.

    Parameters
    ----------
    x : (N, T, F) float32/float64.
    W_ih : (4H, F); W_hh : (4H, H); b_ih, b_hh : (4H,) optional; same dtype.
    h0, c0 : (N, H) optional initial states.

    Returns
    -------
    outputs : (N, T, H) if return_sequences else h_T (N, H)
    (h_T, c_T) : final states (N, H).

    Step: z = (x W_ih^T + b_ih) + (h W_hh^T + b_hh); i = sig(z_i), f = sig(z_f),
    g = tanh(z_g), o = sig(z_o); c' = (f*c) + (i*g) -> rounded to dtype;
    h' = o * tanh(c') (using the rounded c') -> rounded to dtype.

    ``precision="fast"``: see the module docstring (the i, f, o rows form
    one sigmoid block; one BLAS product per step).

    peepholes : (3H,) P in gate order i, f, o (ONNX ``P``, reordered from
        its i, o, f by :func:`refcomp.convert.lstm_from_onnx`):
        ``i = f(z_i + p_i*c)``, ``f = f(z_f + p_f*c)``, ``o = f(z_o + p_o*c')``
        with c' the new (rounded) cell.
    input_forget : bool, ONNX ``input_forget=1``: f = 1 - i.
    h0, c0 : (N, H), or (2, N, H) when bidirectional.
    """ + _GENERAL_DOC
    if layout != "batch_first":
        return run_time_major(lstm, layout, x, (W_ih, W_hh, b_ih, b_hh), dict(
            h0=h0, c0=c0, return_sequences=return_sequences, precision=precision,
            direction=direction, reverse=reverse, sequence_lens=sequence_lens,
            peepholes=peepholes, clip=clip, input_forget=input_forget, activations=activations,
            activation_alpha=activation_alpha, activation_beta=activation_beta))
    check_precision(precision)
    if needs_general(direction, sequence_lens, peepholes, clip, input_forget, activations,
                     activation_alpha, activation_beta):
        _check_rnn(x, W_ih, W_hh, b_ih, b_hh, 4, {})
        return run_general("lstm", x, {"W_ih": W_ih, "W_hh": W_hh, "b_ih": b_ih, "b_hh": b_hh},
                           reverse, {"h0": h0, "c0": c0}, direction=direction,
                           sequence_lens=sequence_lens, peepholes=peepholes, clip=clip,
                           input_forget=input_forget, activations=activations,
                           activation_alpha=activation_alpha, activation_beta=activation_beta,
                           reset_after=True, update="standard",
                           return_sequences=return_sequences, precision=precision)
    hidden, st = _check_rnn(x, W_ih, W_hh, b_ih, b_hh, 4, {"h0": h0, "c0": c0})
    if precision == "fast":
        return lstm_fast(x, W_ih, W_hh, b_ih, b_hh, st["h0"], st["c0"], return_sequences)
    ops = _Ref(x.dtype)
    H = hidden
    if _TILED_LANES:
        seq, h, c = lstm_tiled(_projection(x, ops, W_ih, b_ih), W_hh, b_hh, st["h0"], st["c0"],
                               return_sequences, _TILED_LANES)
        return (h if seq is None else seq), (h, c)

    def step(a, states):
        h, c = states
        z = a + ops.affine(h, W_hh, b_hh)
        i, f = ops.sigmoid(z[:, :H]), ops.sigmoid(z[:, H:2 * H])
        g, o = ops.tanh(z[:, 2 * H:3 * H]), ops.sigmoid(z[:, 3 * H:])
        c_new = ops.store(f * c + i * g)
        h_new = ops.store(o * ops.tanh(c_new.astype(ops.work)))
        return h_new, c_new

    seq, (h, c) = _run(x, step, (st["h0"], st["c0"]), return_sequences, ops, W_ih, b_ih)
    return seq, (h, c)


def gru(x, W_ih, W_hh, b_ih=None, b_hh=None, *, h0=None, reset_after=True, return_sequences=True,
        precision="reference", update="standard", direction="forward", reverse=None,
        sequence_lens=None, clip=None, activations=None, activation_alpha=None,
        activation_beta=None, layout="batch_first"):
    """Gated recurrent unit (FACTS.md §2), gate order r, z, n.

    Parameters
    ----------
    x : (N, T, F); W_ih : (3H, F); W_hh : (3H, H); b_ih, b_hh : (3H,) optional.
    reset_after : bool, default True
        True: ``n = tanh((W_in x + b_in) + r * (W_hn h + b_hn))``: PyTorch
        ``nn.GRU``, Keras ``reset_after=True``, ONNX ``linear_before_reset=1``.
        False: ``n = tanh((W_in x + b_in) + (W_hn (r*h) + b_hn))``: the original
        Cho et al. form, Keras ``reset_after=False`` (whose single bias is b_ih,
        b_hh = 0), ONNX default ``linear_before_reset=0`` (Rbh outside the product).

    Returns
    -------
    outputs : (N, T, H) or h_T (N, H); (h_T,) : 1-tuple with the final state.

    Step: r = sig((x W_ir^T + b_ir) + (h W_hr^T + b_hr)), z likewise;
    n as above; h' = ((1 - z) * n) + (z * h), rounded to the dtype.
    In the reset_before form r*h is formed in float64 and its dot with W_hn
    uses float64 products (rounded, no longer exact).

    update : {"standard", "seed000"}
        "standard" (default): h' = (1 - z) * n + z * h, the convention of
        PyTorch, Keras and ONNX.  "seed000": h' = (1 - z) * h + z * n, as
        seed 000 writes the GRU (h_t = (1 - z_t) h_{t-1} + z_t h~_t).  The
        two map onto each other by negating the update gate's
        pre-activation (its rows of W_ih, W_hh, b_ih, b_hh): sigmoid(-a) =
        1 - sigmoid(a), so z_seed = 1 - z_standard; exact in real
        arithmetic, equal up to the libm rounding of the two sigmoids.
    h0 : (N, H), or (2, N, H) when bidirectional.
    """ + _GENERAL_DOC
    if layout != "batch_first":
        return run_time_major(gru, layout, x, (W_ih, W_hh, b_ih, b_hh), dict(
            h0=h0, reset_after=reset_after, return_sequences=return_sequences,
            precision=precision, update=update, direction=direction, reverse=reverse,
            sequence_lens=sequence_lens, clip=clip, activations=activations,
            activation_alpha=activation_alpha, activation_beta=activation_beta))
    check_precision(precision)
    if needs_general(direction, sequence_lens, None, clip, False, activations,
                     activation_alpha, activation_beta, update):
        _check_rnn(x, W_ih, W_hh, b_ih, b_hh, 3, {})
        return run_general("gru", x, {"W_ih": W_ih, "W_hh": W_hh, "b_ih": b_ih, "b_hh": b_hh},
                           reverse, {"h0": h0}, direction=direction,
                           sequence_lens=sequence_lens, peepholes=None, clip=clip,
                           input_forget=False, activations=activations,
                           activation_alpha=activation_alpha, activation_beta=activation_beta,
                           reset_after=bool(reset_after), update=update,
                           return_sequences=return_sequences, precision=precision)
    hidden, st = _check_rnn(x, W_ih, W_hh, b_ih, b_hh, 3, {"h0": h0})
    if precision == "fast":
        return gru_fast(x, W_ih, W_hh, b_ih, b_hh, st["h0"], reset_after, return_sequences)
    ops = _Ref(x.dtype)
    H = hidden
    if _TILED_LANES and reset_after:
        seq, h = gru_tiled(_projection(x, ops, W_ih, b_ih), W_hh, b_hh, st["h0"],
                           return_sequences, _TILED_LANES)
        return (h if seq is None else seq), (h,)
    W_hrz = W_hh[:2 * H]
    W_hn = W_hh[2 * H:]
    b_hrz = None if b_hh is None else b_hh[:2 * H]
    b_hn = None if b_hh is None else b_hh[2 * H:]

    def step(a, states):
        (h,) = states
        rz = a[:, :2 * H] + ops.affine(h, W_hrz, b_hrz)
        r, z = ops.sigmoid(rz[:, :H]), ops.sigmoid(rz[:, H:])
        if reset_after:
            n = ops.tanh(a[:, 2 * H:] + r * ops.affine(h, W_hn, b_hn))
        else:
            rh = r * h.astype(ops.work)
            hn = _dot64(rh, W_hn)
            hn = hn if b_hn is None else hn + b_hn.astype(np.float64)
            n = ops.tanh(a[:, 2 * H:] + hn)
        h_new = ops.store((1 - z) * n + z * h)
        return (h_new,)

    seq, (h,) = _run(x, step, (st["h0"],), return_sequences, ops, W_ih, b_ih)
    return seq, (h,)


def _dot64(v64, W):
    # float64 operand times weights: same sequential order as dense_acc64.
    from ..kernels.linear import matmul_acc64
    return matmul_acc64(np.ascontiguousarray(v64), np.ascontiguousarray(W.T, dtype=np.float64))


def mgu(x, W_ih, W_hh, b_ih=None, b_hh=None, *, h0=None, return_sequences=True,
        precision="reference"):
    """Minimal gated unit (Zhou, Wu, Zhang & Zhou 2016; mentioned in seed 000).

    Gate blocks f, h: ``W_ih`` (2H, F) = [W_f; W_h], ``W_hh`` (2H, H) = [U_f; U_h].
    f = sig((W_f x + b_if) + (U_f h + b_hf));
    h~ = tanh((W_h x + b_ih_h) + (U_h (f*h) + b_hh_h));
    h' = ((1 - f) * h) + (f * h~), rounded to the dtype.
    (f*h) is formed in float64 and its dot with U_h uses rounded float64 products.
    Returns (outputs, (h_T,)).
    """
    check_precision(precision)
    hidden, st = _check_rnn(x, W_ih, W_hh, b_ih, b_hh, 2, {"h0": h0})
    if precision == "fast":
        return mgu_fast(x, W_ih, W_hh, b_ih, b_hh, st["h0"], return_sequences)
    ops = _Ref(x.dtype)
    H = hidden
    b_hf = None if b_hh is None else b_hh[:H]
    b_hh_h = None if b_hh is None else b_hh[H:]

    def step(a, states):
        (h,) = states
        f = ops.sigmoid(a[:, :H] + ops.affine(h, W_hh[:H], b_hf))
        fh = f * h.astype(ops.work)
        u = _dot64(fh, W_hh[H:])
        u = u if b_hh_h is None else u + b_hh_h.astype(np.float64)
        cand = ops.tanh(a[:, H:] + u)
        return (ops.store((1 - f) * h + f * cand),)

    seq, (h,) = _run(x, step, (st["h0"],), return_sequences, ops, W_ih, b_ih)
    return seq, (h,)


def simple_rnn(x, W_ih, W_hh, b_ih=None, b_hh=None, *, h0=None, activation="tanh",
               return_sequences=True, precision="reference", direction="forward", reverse=None,
               sequence_lens=None, clip=None, activations=None, activation_alpha=None,
               activation_beta=None, layout="batch_first"):
    """Elman RNN: ``h' = act((x W_ih^T + b_ih) + (h W_hh^T + b_hh))``.

    Parameters
    ----------
    x : ndarray (N, T, F), float32 or float64
    W_ih : ndarray (H, F); W_hh : ndarray (H, H); dtype of x
        PyTorch ``nn.RNN`` layout; a Keras SimpleRNN kernel is the transpose,
        its bias is b_ih.
    b_ih, b_hh : ndarray (H,), dtype of x, optional (missing = zeros)
    h0 : ndarray (N, H), dtype of x, optional (missing = zeros)
    activation : {"tanh", "relu"}
    return_sequences : bool
    precision : {"reference", "fast"}

    Returns
    -------
    outputs : (N, T, H) if return_sequences else h_T (N, H); dtype of x
    (h_T,) : 1-tuple with the final state (N, H).

    Arithmetic
    ----------
    Per step, the pre-activation is formed as in the module docstring
    (reference: float64, sequential sums, ``(x.W_ih + b_ih) + (h.W_hh +
    b_hh)``; fast: one BLAS sum of the F + H + 2 terms in the input dtype),
    then the activation:
    "tanh" is libm tanh in float64 (reference) or ``np.tanh`` in the input
    dtype (fast); "relu" is the rule of :func:`refcomp.layers.relu` in both
    precisions (an exact selection: positives kept, negatives, -0.0 and
    +0.0 give +0.0, NaN stays NaN, +inf stays +inf).  The new state is
    rounded once (half-even) to the input dtype; relu commutes with that
    rounding, so the relu result equals relu of the rounded pre-activation.

    The ONNX ``RNN`` operator is this layer (:func:`refcomp.convert.rnn_from_onnx`
    for its W, R, B); ``activations`` (one name per direction) overrides
    ``activation``.  h0 : (N, H), or (2, N, H) when bidirectional.
    """ + _GENERAL_DOC
    if layout != "batch_first":
        return run_time_major(simple_rnn, layout, x, (W_ih, W_hh, b_ih, b_hh), dict(
            h0=h0, activation=activation, return_sequences=return_sequences,
            precision=precision, direction=direction, reverse=reverse,
            sequence_lens=sequence_lens, clip=clip, activations=activations,
            activation_alpha=activation_alpha, activation_beta=activation_beta))
    check_precision(precision)
    if activation not in ("tanh", "relu"):
        from .._errors import ParameterError
        raise ParameterError(f"activation must be 'tanh' or 'relu', got {activation!r}")
    if needs_general(direction, sequence_lens, None, clip, False, activations,
                     activation_alpha, activation_beta):
        _check_rnn(x, W_ih, W_hh, b_ih, b_hh, 1, {})
        return run_general("simple_rnn", x, {"W_ih": W_ih, "W_hh": W_hh, "b_ih": b_ih,
                                             "b_hh": b_hh},
                           reverse, {"h0": h0}, direction=direction,
                           sequence_lens=sequence_lens, peepholes=None, clip=clip,
                           input_forget=False, activations=activations,
                           activation_alpha=activation_alpha, activation_beta=activation_beta,
                           reset_after=True, update="standard",
                           return_sequences=return_sequences, precision=precision,
                           base_acts=(activation.capitalize(),))
    hidden, st = _check_rnn(x, W_ih, W_hh, b_ih, b_hh, 1, {"h0": h0})
    if precision == "fast":
        return simple_rnn_fast(x, W_ih, W_hh, b_ih, b_hh, st["h0"], activation,
                               return_sequences)
    ops = _Ref(x.dtype)

    def step(a, states):
        (h,) = states
        z = a + ops.affine(h, W_hh, b_hh)
        # relu: the exact rule of layers.relu (NaN kept, -0.0 -> +0.0) in float64
        z = ops.tanh(z) if activation == "tanh" else relu(z)
        return (ops.store(z),)

    seq, (h,) = _run(x, step, (st["h0"],), return_sequences, ops, W_ih, b_ih)
    return seq, (h,)
