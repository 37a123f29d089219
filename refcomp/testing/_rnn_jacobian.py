"""Recurrent-layer bounds through the state recurrence's signed Jacobians (see
:mod:`.framework_bound`).

Every recurrent layer kind and ONNX option refcomp runs (lstm with peepholes,
input_forget; gru with either reset formula and seed 000's update; mgu;
simple_rnn; ``clip``; activation lists with their alpha / beta) is written
once below as a sequence of elementary operations on :class:`_Q` values.
Each carries, per element:

* ``v``: the float64 value of the exact computation (refcomp's reference
  arithmetic: fixed-order float64 products, libm functions);
* ``ea``: a bound on the error of any conforming evaluation given that the
  previous state is within the previous step's bound (the elementwise,
  absolute-value propagation of the non-recurrent layers, rigorous for any error
  size: a function's error uses its Lipschitz constant on the whole
  interval ``v +- ea``);
* ``el``: the *local* error of the step, the same propagation with an exact
  previous state (rounding of this step's operations and the input's error);
* ``t``: the signed derivative of ``v`` with respect to the previous state
  (forward-mode differentiation, derivatives at the exact point).

A step then gives the state's Jacobian ``J_t`` and local error ``d_t``.
To first order in the errors (the same order as the whole bound), the error
of the state at step ``t`` is ``sum_tau P_{t,tau} delta_tau`` with ``P_{t,tau}
= J_t ... J_{tau+1}``; signs are unknown, so

    e_t = |P_{t,t0}| e_{t0} + sum_{tau=t0+1}^{t} |P_{t,tau}| d_tau

over a window of the last :data:`WINDOW` steps (``e_{t0}`` the bound at the
window's start, which contains everything before).  The absolute values are
taken of the *products*, not of each factor, so the cancellations of the
recurrence (a contracting LSTM forgets its old errors) are kept; the bound
returned is ``min(e_t, ea_t)`` elementwise, both being bounds.  Where an
operation has a kink (clip, relu, the ONNX piecewise activations) within
``ea`` of its argument, the linearisation does not hold: that sample's
window restarts from ``ea_t``.

The first-order neglect (terms of order ``e**2``) is that of the module
:mod:`.framework_bound` states.  Products here are fixed-order float64
(:func:`refcomp.kernels.linear.matmul_acc64`) and functions libm's, so the
bounds are the same bits on every machine.
"""

import numpy as np

from .._errors import ParameterError
from ..kernels.elementwise import exp64, tanh64
from ..kernels.linear import matmul_acc64
from ..layers._rnn_onnx import ACTIVATION_DEFAULTS, make_activation
from ..layers._rnn_options import DEFAULT_ACTIVATIONS

__all__ = ["recurrent_bound", "WINDOW", "activation_specs"]

#: Steps over which the Jacobian products are kept signed.
WINDOW = 8


def _mm(a, b):
    """``a @ b`` in float64, fixed sequential order."""
    return matmul_acc64(np.ascontiguousarray(a, np.float64), np.ascontiguousarray(b, np.float64))


class _Q:
    """value v (N, k), total bound ea, local bound el, tangent t (N, k, D) (see module doc)."""

    __slots__ = ("v", "ea", "el", "t")

    def __init__(self, v, ea, el, t):
        self.v, self.ea, self.el, self.t = v, ea, el, t


class _Ops:
    def __init__(self, c, N, D):
        self.c, self.N, self.D = c, N, D
        self.kinked = np.zeros(N, dtype=bool)

    def const(self, v):
        v = np.asarray(v, np.float64)
        z = np.zeros_like(v)
        return _Q(v, z, z, np.zeros(v.shape + (self.D,)))

    def dot(self, W, q, b, n_terms):
        """``q W^T + b`` as part of a dot product of ``n_terms`` products plus biases:
        ``gamma_{n_terms + r}`` on the magnitudes (any order, Higham Thm 3.1)."""
        c = self.c
        aW = np.abs(W)
        v = _mm(q.v, W.T) + (0.0 if b is None else b)
        g = c.gamma(n_terms + c.r)
        mag = _mm(np.abs(q.v) + q.ea, aW.T) + (0.0 if b is None else np.abs(b))
        N, k = q.v.shape
        t = _mm(np.ascontiguousarray(q.t.transpose(0, 2, 1)).reshape(N * self.D, k), W.T)
        t = t.reshape(N, self.D, W.shape[0]).transpose(0, 2, 1)
        return _Q(v, _mm(q.ea, aW.T) + g * mag, _mm(q.el, aW.T) + g * mag, t)

    def add(self, a, b, rounded=True):
        v = a.v + b.v
        r = self.c.u * np.abs(v) if rounded else 0.0
        return _Q(v, a.ea + b.ea + r, a.el + b.el + r, a.t + b.t)

    def mul(self, a, b, extra=0):
        v = a.v * b.v
        r = (1 + extra) * self.c.u * np.abs(v)
        return _Q(v, np.abs(b.v) * a.ea + np.abs(a.v) * b.ea + a.ea * b.ea + r,
                  np.abs(b.v) * a.el + np.abs(a.v) * b.el + a.el * b.el + r,
                  b.v[..., None] * a.t + a.v[..., None] * b.t)

    def one_minus(self, a):
        v = 1.0 - a.v
        r = self.c.u * np.abs(v)
        return _Q(v, a.ea + r, a.el + r, -a.t)

    def blend(self, z, n, h):
        """``(1 - z) n + z h``, or ``n + z (h - n)``: three roundings on |n|, |h|,
        |z (h - n)| cover both forms."""
        c = self.c
        v = (1.0 - z.v) * n.v + z.v * h.v
        r = c.gamma(3) * (np.abs(n.v) + np.abs(h.v) + np.abs(z.v * (h.v - n.v)))
        dz = np.abs(h.v - n.v)
        # |1 - z| and |z|, not 1 - z and z: a gate drawn through tanh, relu or a
        # hard sigmoid with other alpha / beta leaves [0, 1] (the terms then went negative).
        w_n, w_h = np.abs(1.0 - z.v), np.abs(z.v)

        def err(a, b, d):
            return dz * a + w_n * b + w_h * d + a * (b + d)
        return _Q(v, err(z.ea, n.ea, h.ea) + r, err(z.el, n.el, h.el) + r,
                  (1.0 - z.v)[..., None] * n.t + z.v[..., None] * h.t
                  + (h.v - n.v)[..., None] * z.t)

    def clip(self, a, clip):
        if clip is None:
            return a
        v = np.clip(a.v, -clip, clip)
        inside = (np.abs(a.v) < clip)
        self._kinks(a, (-clip, clip))
        return _Q(v, a.ea, a.el, a.t * inside[..., None])

    def _kinks(self, a, points):
        for p in points:
            near = np.abs(a.v - p) <= a.ea
            self.kinked |= near.reshape(self.N, -1).any(axis=1)

    def act(self, spec, a):
        """An activation of :func:`activation_specs` on ``a``."""
        name, f, d, lip, kinks, ferr = spec
        v = f(a.v)
        lo, hi = a.v - a.ea, a.v + a.ea
        self._kinks(a, kinks)
        fe = ferr(a.v, v, self.c)
        jump = 0.0
        if name == "thresholdedrelu":          # a jump of height alpha at alpha
            alpha = kinks[0]
            jump = np.where((lo < alpha) & (hi >= alpha), abs(alpha), 0.0)
        dv = d(a.v)
        return _Q(v, lip(lo, hi) * a.ea + jump + fe, np.abs(dv) * a.el + fe,
                  dv[..., None] * a.t)


def _closest_to_zero(lo, hi):
    return np.where((lo <= 0) & (hi >= 0), 0.0, np.minimum(np.abs(lo), np.abs(hi)))


def _sig(x):
    return 0.5 * (1.0 + tanh64(0.5 * x))


def activation_specs(name, alpha, beta):
    """(name, f, f', Lipschitz on [lo, hi], kinks, function error) of an ONNX recurrent
    activation; ``alpha``/``beta`` as :func:`refcomp.layers._rnn_onnx.make_activation`."""
    key = name.lower()
    f = make_activation(key, alpha, beta, np.float64)
    a = 0.0 if alpha is None else float(alpha)
    b = 0.0 if beta is None else float(beta)

    def fn_err(v, y, c):
        # within func_ulps ulps of the value, or of 1 - |value|: ONNX Runtime's recurrent
        # kernels form tanh as 2 sigmoid(2x) - 1 (measured: 20 ulps of a tanh near 0.004,
        # onnxruntime 1.32), an absolute error of func_ulps ulps of 1
        return c.f * (np.abs(y) + 1.0)

    def none(v, y, c):
        return 0.0 * y
    if key == "sigmoid":
        def dsig(x):
            s = _sig(x)
            return s * (1 - s)
        return (key, f, dsig, lambda lo, hi: dsig(_closest_to_zero(lo, hi)), (), fn_err)
    if key == "tanh":
        def dtanh(x):
            t = tanh64(x)
            return 1 - t * t
        return (key, f, dtanh, lambda lo, hi: dtanh(_closest_to_zero(lo, hi)), (), fn_err)
    if key == "relu":
        return (key, f, lambda x: (x > 0).astype(np.float64), lambda lo, hi: 1.0, (0.0,), none)
    if key == "affine":
        return (key, f, lambda x: np.full_like(x, a), lambda lo, hi: abs(a), (),
                lambda v, y, c: 2 * c.u * (np.abs(a * v) + abs(b)))
    if key == "leakyrelu":
        return (key, f, lambda x: np.where(x >= 0, 1.0, a), lambda lo, hi: max(1.0, abs(a)),
                (0.0,), lambda v, y, c: c.u * np.abs(y))
    if key == "thresholdedrelu":
        return (key, f, lambda x: (x > a).astype(np.float64), lambda lo, hi: 1.0, (a,), none)
    if key == "scaledtanh":
        def dst(x):
            t = tanh64(b * x)
            return a * b * (1 - t * t)

        def lst(lo, hi):
            m = _closest_to_zero(lo, hi)
            t = tanh64(b * m)
            return abs(a * b) * (1 - t * t)
        return (key, f, dst, lst, (), lambda v, y, c: (c.f + 3 * c.u) * np.abs(y)
                + c.f * abs(a) + abs(a) * c.u * np.abs(b * v))
    if key == "hardsigmoid":
        pts = () if a == 0 else (-b / a, (1 - b) / a)
        return (key, f, lambda x: np.where((a * x + b > 0) & (a * x + b < 1), a, 0.0),
                lambda lo, hi: abs(a), pts, lambda v, y, c: 2 * c.u * (np.abs(a * v) + abs(b)))
    if key == "elu":
        def lel(lo, hi):
            neg = abs(a) * exp64(np.minimum(hi, 0.0))
            return np.where(hi >= 0, np.maximum(1.0, neg), neg)
        return (key, f, lambda x: np.where(x >= 0, 1.0, a * exp64(np.minimum(x, 0.0))), lel,
                (0.0,), lambda v, y, c: (c.f + 2 * c.u) * (np.abs(y) + abs(a)))
    if key == "softsign":
        return (key, f, lambda x: 1 / (1 + np.abs(x)) ** 2,
                lambda lo, hi: 1 / (1 + _closest_to_zero(lo, hi)) ** 2, (),
                lambda v, y, c: 3 * c.u * np.abs(y))
    if key == "softplus":
        return (key, f, lambda x: _sig(x), lambda lo, hi: _sig(hi), (),
                lambda v, y, c: (c.f + c.u) * (1 + np.abs(y)))
    raise ParameterError(f"framework_error_bound: recurrent activation {name!r} is not "
                         f"supported; known: {sorted(ACTIVATION_DEFAULTS)}")


def _direction_specs(kind, attrs, ndir):
    """Per direction, the activation specs (the resolution of refcomp.layers' _acts)."""
    if kind == "mgu":
        return [[activation_specs("sigmoid", None, None), activation_specs("tanh", None, None)]]
    base = list(DEFAULT_ACTIVATIONS[kind])
    if kind == "simple_rnn":
        base = [attrs.get("activation", "tanh")]
    per = len(base)
    names = list(attrs["activations"]) if attrs.get("activations") is not None else base * ndir
    if len(names) == per and ndir == 2:
        names = names * 2
    if len(names) != per * ndir:
        raise ParameterError(f"activations must list {per * ndir} function names, got "
                             f"{attrs.get('activations')!r}")
    al = list(attrs.get("activation_alpha") or [])
    be = list(attrs.get("activation_beta") or [])
    specs = []
    for name in names:
        da, db = ACTIVATION_DEFAULTS.get(name.lower(), (None, None))
        a = float(np.float32(al.pop(0))) if da is not None and al else da
        b = float(np.float32(be.pop(0))) if db is not None and be else db
        specs.append(activation_specs(name, a, b))
    return [specs[i * per:(i + 1) * per] for i in range(ndir)]


def _weights(w):
    W_ih, W_hh = w["W_ih"], w["W_hh"]
    return W_ih, W_hh, w.get("b_ih"), w.get("b_hh")


def _gate(ops, a_part, W, h, b, F, H):
    """x-projection part ``a_part`` (already a _Q) + ``h W^T + b``: one pre-activation
    of F + H products and two biases."""
    return ops.add(a_part, ops.dot(W, h, b, F + H + 2), rounded=False)


def _sl(q, s):
    return _Q(q.v[:, s], q.ea[:, s], q.el[:, s], q.t[:, s])


def _step(kind, ops, xq, state, w, attrs, acts, F, H):
    """One step: returns the new state as a list of _Q (h[, c])."""
    W_ih, W_hh, b_ih, b_hh = _weights(w)
    clip = attrs.get("clip")
    proj = ops.dot(W_ih, xq, b_ih, F + H + 2)
    h = state[0]
    if kind == "lstm":
        c = state[1]
        z = _gate(ops, proj, W_hh, h, b_hh, F, H)
        zi, zf, zg, zo = (_sl(z, slice(j * H, (j + 1) * H)) for j in range(4))
        P = w.get("P")
        if P is not None:
            Pc = [ops.const(np.broadcast_to(P[j * H:(j + 1) * H], zi.v.shape)) for j in range(3)]
            zi = ops.add(zi, ops.mul(Pc[0], c, extra=ops.c.r))
            zf = ops.add(zf, ops.mul(Pc[1], c, extra=ops.c.r))
        i = ops.act(acts[0], ops.clip(zi, clip))
        f = ops.one_minus(i) if attrs.get("input_forget") else ops.act(acts[0], ops.clip(zf, clip))
        g = ops.act(acts[1], ops.clip(zg, clip))
        c_new = ops.add(ops.mul(f, c), ops.mul(i, g))
        if P is not None:
            zo = ops.add(zo, ops.mul(Pc[2], c_new, extra=ops.c.r))
        o = ops.act(acts[0], ops.clip(zo, clip))
        return [ops.mul(o, ops.act(acts[2], c_new)), c_new]
    if kind == "gru":
        gh = ops.dot(W_hh[:2 * H], h, None if b_hh is None else b_hh[:2 * H], F + H + 2)
        rz = ops.add(_sl(proj, slice(0, 2 * H)), gh)
        r = ops.act(acts[0], ops.clip(_sl(rz, slice(0, H)), clip))
        z = ops.act(acts[0], ops.clip(_sl(rz, slice(H, 2 * H)), clip))
        an = _sl(proj, slice(2 * H, 3 * H))
        b_hn = None if b_hh is None else b_hh[2 * H:]
        if attrs.get("reset_after", True):
            hn = ops.dot(W_hh[2 * H:], h, b_hn, H + 1)
            pre = ops.add(an, ops.mul(r, hn))
        else:
            hn = ops.dot(W_hh[2 * H:], ops.mul(r, h), b_hn, H + 1)
            pre = ops.add(an, hn)
        n = ops.act(acts[1], ops.clip(pre, clip))
        if attrs.get("update", "standard") == "seed000":
            return [ops.blend(z, h, n)]              # (1 - z) h + z n
        return [ops.blend(z, n, h)]                  # (1 - z) n + z h
    if kind == "mgu":
        pf = ops.dot(W_hh[:H], h, None if b_hh is None else b_hh[:H], F + H + 2)
        f = ops.act(acts[0], ops.add(_sl(proj, slice(0, H)), pf, rounded=False))
        pu = ops.dot(W_hh[H:], ops.mul(f, h), None if b_hh is None else b_hh[H:], F + H + 2)
        cand = ops.act(acts[1], ops.add(_sl(proj, slice(H, 2 * H)), pu, rounded=False))
        return [ops.blend(f, h, cand)]               # (1 - f) h + f cand
    z = _gate(ops, proj, W_hh, h, b_hh, F, H)      # simple_rnn
    return [ops.act(acts[0], ops.clip(z, clip))]


def recurrent_bound(kind, w, attrs, acts, v, e, c, init=None):
    """Per-step hidden values and bounds of one direction (lists of (N, H) arrays).

    ``w``: W_ih, W_hh, optional b_ih, b_hh, P (float64); ``acts``: this
    direction's activation specs; ``v``, ``e``: input values and bounds (N, T, F);
    ``init``: the initial states [h0] or [h0, c0] (LSTM), float64 (N, H), default
    zeros.  Given states are exact (their bound starts at 0), or rounded to the
    evaluation dtype when it is coarser than the model's (``c.r`` = 1: ``u |s|``).
    """
    W_ih, W_hh = w["W_ih"], w["W_hh"]
    H, F = W_hh.shape[1], W_ih.shape[1]
    N, T = v.shape[:2]
    ns = 2 if kind == "lstm" else 1
    D = ns * H
    eye = np.broadcast_to(np.eye(D), (N, D, D))
    zero = np.zeros((N, H))
    vals = [zero] * ns if init is None else [np.asarray(s, np.float64) for s in init]
    if len(vals) != ns or any(s.shape != (N, H) for s in vals):
        raise ParameterError(f"recurrent_bound: {kind} needs {ns} initial state(s) of shape "
                             f"{(N, H)}, got {[np.shape(s) for s in vals]}")
    bound = np.concatenate([c.r * c.u * np.abs(s) for s in vals], axis=1)
    # window entries: [P_{t,tau} (N, D, D), vector (N, D), bound e_tau of the state at tau]
    # and whether the sample's linearisation still reaches back to tau (no kink since)
    entries = [[eye.copy(), bound.copy(), bound.copy(), np.ones(N, dtype=bool)]]
    hs, es = [], []
    for t in range(T):
        ops = _Ops(c, N, D)
        state = [_Q(vals[j], bound[:, j * H:(j + 1) * H], np.zeros((N, H)),
                    np.ascontiguousarray(eye[:, j * H:(j + 1) * H, :])) for j in range(ns)]
        xq = _Q(v[:, t], e[:, t], e[:, t], np.zeros((N, F, D)))
        new = _step(kind, ops, xq, state, w, attrs, acts, F, H)
        J = np.concatenate([q.t for q in new], axis=1)              # (N, D, D)
        d = np.concatenate([q.el for q in new], axis=1)
        ea = np.concatenate([q.ea for q in new], axis=1)
        K = len(entries)
        Pall = np.concatenate([en[0] for en in entries], axis=2)  # (N, D, K*D)
        vec = np.concatenate([en[1] for en in entries], axis=1)   # (N, K*D)
        ejac = np.empty((N, D))
        newP = np.empty_like(Pall)
        for n in range(N):
            newP[n] = _mm(J[n], Pall[n])
            ejac[n] = _mm(np.abs(newP[n]), vec[n][:, None])[:, 0]
        ejac += d
        bound = np.minimum(ejac, ea)
        entries = [[newP[:, :, k * D:(k + 1) * D]] + entries[k][1:] for k in range(K)]
        entries.append([eye.copy(), d.copy(), bound.copy(), np.ones(N, dtype=bool)])
        kinked = ops.kinked
        if kinked.any():                     # the linearisation fails there: restart from ea
            for en in entries[:-1]:
                en[1] = np.where(kinked[:, None], 0.0, en[1])
                en[3] = en[3] & ~kinked
            entries[-1][1][kinked] = bound[kinked]
        if len(entries) > WINDOW:
            # the true error at tau1 is within e_tau1, whatever came before: one entry
            e1 = entries[1]
            entries = [[e1[0], np.where(e1[3][:, None], e1[2], 0.0), e1[2], e1[3]]] \
                + entries[2:]
        vals = [q.v for q in new]
        hs.append(vals[0])
        es.append(bound[:, :H])
    return hs, es
