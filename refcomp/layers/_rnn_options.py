"""Validation and direction handling of the ONNX recurrent options (private).

:func:`run_general` is what :func:`refcomp.layers.lstm` / ``gru`` /
``simple_rnn`` call when an option beyond the classic forward pass is set.
"""

import numbers

import numpy as np

from .._errors import ParameterError, ShapeError
from .._validate import as_float_array, check_choice, check_same_dtype, describe
from ._rnn_onnx import ACTIVATION_DEFAULTS, make_activation, run_direction

__all__ = ["DIRECTIONS", "LAYOUTS", "DEFAULT_ACTIVATIONS", "needs_general", "run_general",
           "run_time_major"]

DIRECTIONS = ("forward", "reverse", "bidirectional")
#: sequence layouts of x and the output sequence (ONNX ``layout`` 1 and 0)
LAYOUTS = ("batch_first", "time_major")
#: ONNX default activations per kind (one direction)
DEFAULT_ACTIVATIONS = {"lstm": ("Sigmoid", "Tanh", "Tanh"), "gru": ("Sigmoid", "Tanh"),
                       "simple_rnn": ("Tanh",)}
_GATES = {"lstm": 4, "gru": 3, "simple_rnn": 1}


def needs_general(direction, sequence_lens, peepholes, clip, input_forget, activations,
                  activation_alpha, activation_beta, update="standard"):
    return (direction != "forward" or sequence_lens is not None or peepholes is not None
            or clip is not None or bool(input_forget) or activations is not None
            or activation_alpha is not None or activation_beta is not None
            or update != "standard")


def run_time_major(fn, layout, x, weights, options):
    """``fn`` (lstm / gru / simple_rnn) on a time-major x (T, N, F): the batch-first pass on
    ``x.transpose(1, 0, 2)``, its output sequence transposed back to (T, N, H') (a copy).

    Only a transposition on each side: the arithmetic, hence every bit, is the batch-first
    one.  States keep their (N, H) / (2, N, H) shapes (PyTorch's ``batch_first=False``).
    """
    check_choice("layout", layout, LAYOUTS)
    as_float_array("x", x, ndim=3)
    seq, states = fn(x.transpose(1, 0, 2), *weights, layout="batch_first", **options)
    if options["return_sequences"]:
        seq = np.ascontiguousarray(seq.transpose(1, 0, 2))
    return seq, states


def _acts(kind, activations, alpha, beta, ndir, work, base=None):
    per = len(DEFAULT_ACTIVATIONS[kind])
    names = list(activations) if activations is not None else \
        list(base or DEFAULT_ACTIVATIONS[kind]) * ndir
    if activations is not None and len(names) == per and ndir == 2:
        names = names * 2
    if len(names) != per * ndir or any(not isinstance(n, str) for n in names):
        raise ParameterError(f"activations must list {per * ndir} function names ({per} per "
                             f"direction), got {activations!r}")
    al, be = list(alpha or []), list(beta or [])
    funcs = []
    for name in names:
        key = name.lower()
        if key not in ACTIVATION_DEFAULTS:
            raise ParameterError(f"activations: unknown function {name!r}; ONNX recurrent "
                                 f"activations are {sorted(ACTIVATION_DEFAULTS)}")
        da, db = ACTIVATION_DEFAULTS[key]
        a = float(np.float32(al.pop(0))) if da is not None and al else da
        b = float(np.float32(be.pop(0))) if db is not None and be else db
        funcs.append(make_activation(key, a, b, work))
    if al or be:
        raise ParameterError(f"activation_alpha / activation_beta hold more values than the "
                             f"activations {names} use ({alpha!r}, {beta!r})")
    return [funcs[i * per:(i + 1) * per] for i in range(ndir)]


def _check_states(name, s, ndir, n, H, dtype):
    if s is None:
        return [np.zeros((n, H), dtype=dtype)] * ndir
    as_float_array(name, s)
    want = (n, H) if ndir == 1 else (2, n, H)
    if s.shape != want or s.dtype != dtype:
        raise ShapeError(f"{name} must have shape {want} and the dtype of x, got {describe(s)}")
    return [s] if ndir == 1 else [s[0], s[1]]


def run_general(kind, x, weights, reverse_weights, states, *, direction, sequence_lens,
                peepholes, clip, input_forget, activations, activation_alpha, activation_beta,
                reset_after, update, return_sequences, precision, base_acts=None):
    """Both directions of the general engine; outputs as the public functions document."""
    check_choice("direction", direction, DIRECTIONS)
    ndir = 2 if direction == "bidirectional" else 1
    G = _GATES[kind]
    n, t_len = x.shape[:2]
    H = weights["W_hh"].shape[1]
    dirs = [weights]
    if ndir == 2:
        if not isinstance(reverse_weights, dict):
            raise ParameterError("direction='bidirectional' needs reverse={'W_ih': ..., "
                                 "'W_hh': ..., 'b_ih': ..., 'b_hh': ...} (the backward "
                                 f"direction's weights), got {type(reverse_weights).__name__}")
        unknown = set(reverse_weights) - {"W_ih", "W_hh", "b_ih", "b_hh", "peepholes"}
        if unknown:
            raise ParameterError(f"reverse: unknown keys {sorted(unknown)}")
        rw = {k: reverse_weights.get(k) for k in ("W_ih", "W_hh", "b_ih", "b_hh")}
        for k in ("W_ih", "W_hh"):
            if rw[k] is None:
                raise ParameterError(f"reverse is missing {k!r}")
        want = {"W_ih": (G * H, x.shape[2]), "W_hh": (G * H, H), "b_ih": (G * H,),
                "b_hh": (G * H,)}
        for k, v in rw.items():
            if v is not None:
                as_float_array(f"reverse[{k!r}]", v, ndim=len(want[k]))
                if v.shape != want[k]:
                    raise ShapeError(f"reverse[{k!r}] must have shape {want[k]} like the "
                                     f"forward direction (H = {H}), got {describe(v)}")
        check_same_dtype([("x", x)] + [(f"reverse[{k!r}]", v) for k, v in rw.items()])
        rw["P"] = reverse_weights.get("peepholes")
        dirs.append(rw)
    elif reverse_weights is not None:
        raise ParameterError(f"reverse weights are only used with direction='bidirectional', "
                             f"got direction={direction!r}")
    if peepholes is not None or (ndir == 2 and dirs[1].get("P") is not None):
        if kind != "lstm":
            raise ParameterError("peepholes exist for LSTM only")
        for i, p in enumerate([peepholes] + ([dirs[1]["P"]] if ndir == 2 else [])):
            if p is None:
                continue
            as_float_array("peepholes", p, ndim=1)
            if p.shape != (3 * H,) or p.dtype != x.dtype:
                raise ShapeError(f"peepholes must have shape ({3 * H},) (i, f, o) and the dtype "
                                 f"of x, got {describe(p)}")
            dirs[i]["P"] = p
    if sequence_lens is not None:
        if not isinstance(sequence_lens, np.ndarray) or sequence_lens.dtype.kind not in "iu":
            raise ParameterError(f"sequence_lens must be an integer ndarray (N,), got "
                                 f"{getattr(sequence_lens, 'dtype', type(sequence_lens))}")
        if sequence_lens.shape != (n,):
            raise ShapeError(f"sequence_lens must have shape ({n},), got {sequence_lens.shape}")
        if sequence_lens.size and (sequence_lens.min() < 1 or sequence_lens.max() > t_len):
            raise ParameterError(f"sequence_lens must lie in [1, {t_len}] (the time steps of "
                                 f"x), got {sequence_lens.tolist()}")
    if clip is not None:
        if isinstance(clip, bool) or not isinstance(clip, (numbers.Real, np.floating)) or \
                not float(clip) > 0 or not np.isfinite(float(clip)):
            raise ParameterError(f"clip must be a positive finite number, got {clip!r}")
        clip = float(np.float32(clip))
    if input_forget and kind != "lstm":
        raise ParameterError("input_forget exists for LSTM only")
    check_choice("input_forget", input_forget, (False, True))
    check_choice("update", update, ("standard", "seed000"))
    if update != "standard" and kind != "gru":
        raise ParameterError("update='seed000' is a GRU convention")
    work = np.float64 if precision == "reference" else x.dtype
    acts = _acts(kind, activations, activation_alpha, activation_beta, ndir, work,
                 base=base_acts)
    hs = _check_states("h0", states.get("h0"), ndir, n, H, x.dtype)
    cs = _check_states("c0", states.get("c0"), ndir, n, H, x.dtype) if kind == "lstm" \
        else [None] * ndir
    outs = []
    for d in range(ndir):
        rev = direction == "reverse" or d == 1
        opts = {"acts": acts[d], "clip": clip, "input_forget": bool(input_forget),
                "reset_after": reset_after, "update": update}
        outs.append(run_direction(kind, x, dirs[d], hs[d], cs[d], sequence_lens, rev, opts,
                                  precision))
    if ndir == 1:
        Y, h, c = outs[0]
        seq = Y if return_sequences else h
        return seq, ((h, c) if kind == "lstm" else (h,))
    Y = np.concatenate([outs[0][0], outs[1][0]], axis=2)
    h = np.stack([outs[0][1], outs[1][1]])
    seq = Y if return_sequences else np.concatenate([outs[0][1], outs[1][1]], axis=1)
    if kind == "lstm":
        return seq, (h, np.stack([outs[0][2], outs[1][2]]))
    return seq, (h,)
