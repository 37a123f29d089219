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

Private: ``proj`` (N, T, G*H) float64 C-contiguous; states (N, H) of the
model dtype; the packed W_hh^T from :func:`refcomp.kernels.linear_tiled.pack_columns`.
"""

import numba
import numpy as np

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


@numba.njit(cache=True, parallel=True)
def _cell_kernel(kind, proj, bp, bias, has_bias, fused, hs, cs, seq, chunk):
    # hs (and cs for the LSTM) (N, H): initial states in, final states out
    # (model dtype); seq (N, T, H) or (N, 0, H).
    n, steps, gh = proj.shape
    hidden = gh // kind
    keep = seq.shape[1] > 0
    for job in numba.prange((n + chunk - 1) // chunk):
        r0 = job * chunk
        rn = min(chunk, n - r0)
        hbuf = np.empty((rn, hidden), dtype=np.float64)
        cbuf = np.empty((rn, bp.shape[0] * bp.shape[2]), dtype=np.float64)
        for t in range(steps):
            _gate_sums(hs, hbuf, cbuf, bp, r0, rn, fused)
            for q in range(rn):
                r = r0 + q
                if kind == _LSTM:
                    _lstm_row(proj, cbuf, bias, has_bias, hs, cs, r, q, t, hidden)
                else:
                    _gru_row(proj, cbuf, bias, has_bias, hs, hbuf, r, q, t, hidden)
                if keep:
                    for u in range(hidden):
                        seq[r, t, u] = hs[r, u]


def _common(proj, W_hh, b_hh, h0, return_sequences, lanes):
    n, steps = proj.shape[:2]
    hidden = W_hh.shape[1]
    bp = pack_columns(np.ascontiguousarray(W_hh.T, dtype=np.float64)[None], lanes)[0]
    bias = np.zeros(1) if b_hh is None else b_hh.astype(np.float64)
    hs = np.array(h0, dtype=h0.dtype, order="C", copy=True)
    seq = np.empty((n, steps if return_sequences else 0, hidden), dtype=h0.dtype)
    fused = W_hh.dtype == np.float32
    return bp, bias, hs, seq, fused


def lstm_tiled(proj, W_hh, b_hh, h0, c0, return_sequences, lanes):
    """Run the LSTM recurrence (module docstring) from the float64 input
    projection ``proj`` (N, T, 4H); returns (seq or None, h_T, c_T) in the
    dtype of ``h0``."""
    bp, bias, hs, seq, fused = _common(proj, W_hh, b_hh, h0, return_sequences, lanes)
    cs = np.array(c0, dtype=c0.dtype, order="C", copy=True)
    if hs.shape[1] and proj.shape[0]:
        _cell_kernel(_LSTM, np.ascontiguousarray(proj), bp, bias, b_hh is not None, fused, hs,
                     cs, seq, _CHUNK)
    return (seq if return_sequences else None), hs, cs


def gru_tiled(proj, W_hh, b_hh, h0, return_sequences, lanes):
    """Run the GRU recurrence (``reset_after=True``, module docstring) from
    the float64 input projection (N, T, 3H); returns (seq or None, h_T)."""
    bp, bias, hs, seq, fused = _common(proj, W_hh, b_hh, h0, return_sequences, lanes)
    if hs.shape[1] and proj.shape[0]:
        _cell_kernel(_GRU, np.ascontiguousarray(proj), bp, bias, b_hh is not None, fused, hs,
                     hs, seq, _CHUNK)
    return (seq if return_sequences else None), hs
