"""Whole-sequence reference LSTM / GRU cells on the vector register tiles.

The reference step of :mod:`refcomp.layers.recurrent` (module docstring
there: float64 gate sums in the reference order, libm sigmoid/tanh, states
rounded once per step to the model dtype) evaluated for all time steps in
one parallel call.  Batch rows are independent through the whole
recurrence, so each job takes a chunk of rows and runs every step for
them: the gate products ``h W_hh^T`` by :func:`refcomp.kernels._tilevec.tile`
(one gate unit per vector lane, each its own sequential sum over h in
increasing index from +0.0, the FMA rule of :mod:`refcomp.kernels.linear`),
then per element, in this order and with these roundings (float64 unless
said):

LSTM (gates i, f, g, o; ``a`` = the input projection ``x W_ih^T + b_ih``,
``s`` = the gate sum, ``b`` = b_hh, omitted when absent)::

    z = a + (s + b);  i, f, o = sigmoid(z);  g = tanh(z)
    c' = dtype((f * c) + (i * g));  h' = dtype(o * tanh(c'))

GRU, ``reset_after=True`` (gates r, z, n)::

    r, z = sigmoid(a + (s + b));  n = tanh(a_n + r * (s_n + b_n))
    h' = dtype(((1 - z) * n) + (z * h))

sigmoid and tanh are the libm functions of
:mod:`refcomp.kernels.elementwise` (same compiled scalar code), ``c`` and
``h`` the stored (rounded) states widened exactly.  These are the NumPy
operations of the layer, element for element, so the bits are identical;
the layer's NumPy step is the twin.  One call replaces the per-step
NumPy passes and parallel launches (measured 2-core VM, N=1000, T=8,
H=64: see benchmarks/bench_forward.py).

Fast rows (float32 states).  Each row of a step is first evaluated with the
branch-free activations of :mod:`refcomp.kernels._fastact` (vector code;
within ``2**-47 |a|`` of libm's value ``a``, so every product or sum
below moves by at most the stated multiple of 2**-45.9 after the float64
roundings) and a bound ``B`` on the distance to the libm-based float64
value; the row is kept only if, for every element, ``|v| > B`` and
``float32(v - B) == float32(v + B)`` (then the libm-based value rounds to the
same float32, rounding being monotone; zeros and NaN always fail).  Else
the row is evaluated again by the libm code above, whose bits define the
result.  With ``MARGIN = 2**-42`` (about 15x the derived bounds):

    LSTM c':  B = MARGIN (|f c| + |i g|)           (the two float64 terms)
    LSTM h':  B = MARGIN |o tanh(c')|
    GRU  h':  B = MARGIN ((1 - z)(|n| + |a_n| + |r (s_n + b_n)|) + |h| + |n| / 16)

(for the GRU: ``n`` moves by the tanh argument's error, tanh being
1-Lipschitz, plus its own; ``1 - z`` by ``2**-47 (1 - z) + 2**-51``, the
sigmoid's error near 1, so a saturated update gate keeps the bound
relative.)  Gate arguments outside the ranges of the fast functions (a
sigmoid argument below -700, NaN) also send the row to libm.  Measured on
random LSTM/GRU(8->64) sequences: 0.1-1 % of row-steps evaluated again;
the bits are those of the libm rows in every case (the tests compare
both, and the NumPy step).

Private: ``proj`` (N, T, G*H) float64 C-contiguous; states (N, H) of the
model dtype; the packed W_hh^T from :func:`refcomp.kernels.linear_tiled.pack_columns`.
"""

import numba
import numpy as np

from ._fastact import MARGIN, fast_sigmoid, fast_tanh, sigmoid_in_range, tanh_in_range
from ._tilevec import tile, tile_rows
from .elementwise import _scalar, _SIGMOID, _TANH
from .linear_tiled import pack_columns

__all__ = ["lstm_tiled", "gru_tiled"]

_CHUNK = 48


@numba.njit(cache=True, inline="always")
def _gate_sums(hs, hbuf, cbuf, bp, r0, rn, fused):
    hidden = hs.shape[1]
    tr = tile_rows(bp.shape[2])
    for q in range(rn):
        for u in range(hidden):
            hbuf[q, u] = hs[r0 + q, u]                # widening: exact
    for ob in range(bp.shape[0]):
        for q in range(0, rn, tr):
            tile(hbuf, bp, cbuf, q, q, min(tr, rn - q), ob, 0, hidden, True, fused)


_LSTM, _GRU = 4, 3          # kinds, by gate count


@numba.njit(cache=True, inline="always")
def _lstm_row(proj, cbuf, bias, has_bias, hs, cs, r, q, t, hidden):
    for u in range(hidden):
        s_i, s_f = cbuf[q, u], cbuf[q, hidden + u]
        s_g, s_o = cbuf[q, 2 * hidden + u], cbuf[q, 3 * hidden + u]
        if has_bias:
            s_i = s_i + bias[u]
            s_f = s_f + bias[hidden + u]
            s_g = s_g + bias[2 * hidden + u]
            s_o = s_o + bias[3 * hidden + u]
        ig = _scalar(_SIGMOID, proj[r, t, u] + s_i)
        fg = _scalar(_SIGMOID, proj[r, t, hidden + u] + s_f)
        gg = _scalar(_TANH, proj[r, t, 2 * hidden + u] + s_g)
        og = _scalar(_SIGMOID, proj[r, t, 3 * hidden + u] + s_o)
        cs[r, u] = fg * np.float64(cs[r, u]) + ig * gg            # rounded on store
        hs[r, u] = og * _scalar(_TANH, np.float64(cs[r, u]))


@numba.njit(cache=True, inline="always")
def _gru_row(proj, cbuf, bias, has_bias, hs, hbuf, r, q, t, hidden):
    for u in range(hidden):
        s_r, s_z, s_n = cbuf[q, u], cbuf[q, hidden + u], cbuf[q, 2 * hidden + u]
        if has_bias:
            s_r = s_r + bias[u]
            s_z = s_z + bias[hidden + u]
            s_n = s_n + bias[2 * hidden + u]
        rg = _scalar(_SIGMOID, proj[r, t, u] + s_r)
        zg = _scalar(_SIGMOID, proj[r, t, hidden + u] + s_z)
        ng = _scalar(_TANH, proj[r, t, 2 * hidden + u] + rg * s_n)
        hs[r, u] = (1.0 - zg) * ng + zg * hbuf[q, u]               # rounded on store


@numba.njit(cache=True, inline="always")
def _certain(v, b):
    # float32(v) is the float32 of every float64 within b of v, and is not a
    # zero (whose sign the bound cannot decide); False for NaN.
    return (abs(v) > b) & (np.float32(v - b) == np.float32(v + b))


@numba.njit(cache=True, inline="always")
def _lstm_row_fast(proj, cbuf, bias, cs, r, q, t, hidden, hrow, crow):
    # The LSTM row with the bounded-error activations (module docstring,
    # "Fast rows"); True if every float32 state is certain (then in crow, hrow).
    ok = True
    for u in range(hidden):
        zi = proj[r, t, u] + (cbuf[q, u] + bias[u])
        zf = proj[r, t, hidden + u] + (cbuf[q, hidden + u] + bias[hidden + u])
        zg = proj[r, t, 2 * hidden + u] + (cbuf[q, 2 * hidden + u] + bias[2 * hidden + u])
        zo = proj[r, t, 3 * hidden + u] + (cbuf[q, 3 * hidden + u] + bias[3 * hidden + u])
        fc = fast_sigmoid(zf) * np.float64(cs[r, u])
        ig = fast_sigmoid(zi) * fast_tanh(zg)
        c64 = fc + ig
        c32 = np.float32(c64)
        h64 = fast_sigmoid(zo) * fast_tanh(np.float64(c32))
        ok &= (sigmoid_in_range(zi) & sigmoid_in_range(zf) & tanh_in_range(zg)
               & sigmoid_in_range(zo)
               & _certain(c64, MARGIN * (abs(fc) + abs(ig)))
               & _certain(h64, MARGIN * abs(h64)))
        crow[u] = c32
        hrow[u] = np.float32(h64)
    return ok


@numba.njit(cache=True, inline="always")
def _gru_row_fast(proj, cbuf, bias, hbuf, r, q, t, hidden, hrow):
    ok = True
    for u in range(hidden):
        zr = proj[r, t, u] + (cbuf[q, u] + bias[u])
        zz = proj[r, t, hidden + u] + (cbuf[q, hidden + u] + bias[hidden + u])
        an = proj[r, t, 2 * hidden + u]
        rs = fast_sigmoid(zr) * (cbuf[q, 2 * hidden + u] + bias[2 * hidden + u])
        arg = an + rs
        ng = fast_tanh(arg)
        zg = fast_sigmoid(zz)
        omz = 1.0 - zg
        h = hbuf[q, u]
        h64 = omz * ng + zg * h
        b = MARGIN * (omz * (abs(ng) + abs(an) + abs(rs)) + abs(h) + 0.0625 * abs(ng))
        ok &= (sigmoid_in_range(zr) & sigmoid_in_range(zz) & tanh_in_range(arg)
               & _certain(h64, b))
        hrow[u] = np.float32(h64)
    return ok


@numba.njit(cache=True, parallel=True)
def _cell_kernel(kind, proj, bp, bias, has_bias, fused, hs, cs, seq, chunk, fast):
    # hs (and cs for the LSTM) (N, H): initial states in, final states out
    # (model dtype); seq (N, T, H) or (N, 0, H).  fast: float32 states, try
    # the fast rows first.  Returns the number of rows evaluated with libm
    # after a failed fast row (a diagnostic: the bits do not depend on it).
    n, steps, gh = proj.shape
    hidden = gh // kind
    keep = seq.shape[1] > 0
    redone = 0
    for job in numba.prange((n + chunk - 1) // chunk):
        r0 = job * chunk
        rn = min(chunk, n - r0)
        hbuf = np.empty((rn, hidden), dtype=np.float64)
        cbuf = np.empty((rn, bp.shape[0] * bp.shape[2]), dtype=np.float64)
        hrow = np.empty(hidden, dtype=np.float32)
        crow = np.empty(hidden, dtype=np.float32)
        for t in range(steps):
            _gate_sums(hs, hbuf, cbuf, bp, r0, rn, fused)
            for q in range(rn):
                r = r0 + q
                if kind == _LSTM:
                    if fast and _lstm_row_fast(proj, cbuf, bias, cs, r, q, t, hidden, hrow,
                                               crow):
                        for u in range(hidden):
                            cs[r, u] = crow[u]
                            hs[r, u] = hrow[u]
                    else:
                        if fast:
                            redone += 1
                        _lstm_row(proj, cbuf, bias, has_bias, hs, cs, r, q, t, hidden)
                elif fast and _gru_row_fast(proj, cbuf, bias, hbuf, r, q, t, hidden, hrow):
                    for u in range(hidden):
                        hs[r, u] = hrow[u]
                else:
                    if fast:
                        redone += 1
                    _gru_row(proj, cbuf, bias, has_bias, hs, hbuf, r, q, t, hidden)
                if keep:
                    for u in range(hidden):
                        seq[r, t, u] = hs[r, u]
    return redone


def _common(proj, W_hh, b_hh, h0, return_sequences, lanes):
    n, steps = proj.shape[:2]
    hidden = W_hh.shape[1]
    bp = pack_columns(np.ascontiguousarray(W_hh.T, dtype=np.float64)[None], lanes)[0]
    # Without b_hh the fast rows add zeros (s + 0.0 differs from s only in the
    # sign of a zero, which changes only zero results; those always fail the
    # rounding test); the libm rows skip the addition.
    bias = np.zeros(W_hh.shape[0]) if b_hh is None else b_hh.astype(np.float64)
    hs = np.array(h0, dtype=h0.dtype, order="C", copy=True)
    seq = np.empty((n, steps if return_sequences else 0, hidden), dtype=h0.dtype)
    fused = W_hh.dtype == np.float32
    return bp, bias, hs, seq, fused


def lstm_tiled(proj, W_hh, b_hh, h0, c0, return_sequences, lanes, *, fast_rows=True,
               counts=None):
    """Run the LSTM recurrence (module docstring) from the float64 input
    projection ``proj`` (N, T, 4H); returns (seq or None, h_T, c_T) in the
    dtype of ``h0``.  ``fast_rows``: try the bounded-error rows first (float32
    states only; same bits either way); ``counts``: a list that receives the
    number of row-steps the libm rows evaluated again (diagnostic)."""
    bp, bias, hs, seq, fused = _common(proj, W_hh, b_hh, h0, return_sequences, lanes)
    cs = np.array(c0, dtype=c0.dtype, order="C", copy=True)
    fast = fast_rows and hs.dtype == np.float32 and cs.dtype == np.float32
    redone = 0
    if hs.shape[1] and proj.shape[0]:
        redone = _cell_kernel(_LSTM, np.ascontiguousarray(proj), bp, bias, b_hh is not None,
                              fused, hs, cs, seq, _CHUNK, fast)
    if counts is not None:
        counts.append(int(redone))
    return (seq if return_sequences else None), hs, cs


def gru_tiled(proj, W_hh, b_hh, h0, return_sequences, lanes, *, fast_rows=True, counts=None):
    """Run the GRU recurrence (``reset_after=True``, module docstring) from
    the float64 input projection (N, T, 3H); returns (seq or None, h_T).
    ``fast_rows``, ``counts``: as :func:`lstm_tiled`."""
    bp, bias, hs, seq, fused = _common(proj, W_hh, b_hh, h0, return_sequences, lanes)
    fast = fast_rows and hs.dtype == np.float32
    redone = 0
    if hs.shape[1] and proj.shape[0]:
        redone = _cell_kernel(_GRU, np.ascontiguousarray(proj), bp, bias, b_hh is not None,
                              fused, hs, hs, seq, _CHUNK, fast)
    if counts is not None:
        counts.append(int(redone))
    return (seq if return_sequences else None), hs
