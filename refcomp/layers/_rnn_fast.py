"""``precision="fast"`` of the recurrent layers: one BLAS product per step
(two for GRU ``reset_after=False`` and MGU) and a few NumPy passes.

Private; the public functions in :mod:`refcomp.layers.recurrent` validate
the arguments first and document the cell formulas.

Arithmetic (all in the input dtype, float32 or float64):

* the pre-activations of a step are one matrix product (BLAS: its own
  summation order and blocking) of fused gate weights ``[W_hh | W_ih | b_ih
  | b_hh]`` (rows per gate, R x (H + F + 2)) with the column ``[h; x_t; 1;
  1]``: each gate unit is one sum of the F + H + 2 terms ``x.W_ih + b_ih +
  h.W_hh + b_hh`` (those of the reference mode, not in its order; the
  gamma_n bound of FACTS.md §8 covers any order).  Where a formula keeps the
  input and recurrent parts apart (GRU's candidate), they are separate rows
  with zeros in the other columns;
* a product that needs a gate first (GRU ``reset_after=False``: ``W_hn
  (r*h) + b_hn``; MGU: ``U_h (f*h) + b_hh_h``) is a second product of
  ``[W | b]`` with ``[r*h; 1]``;
* sigmoid rows are multiplied by 1/2 beforehand, which is exact (a power of
  two; only weights below the normal range, 2^-125 in float32, would lose
  bits), so the product gives exactly half the pre-activation and
  ``sigmoid(z) = 0.5 * tanh(z/2) + 0.5`` is evaluated as NumPy's tanh of
  the dtype, then ``* 0.5``, then ``+ 0.5``;
* the state updates are the formulas of the public docstrings, each
  operation rounded to the dtype (NumPy); relu is the exact rule of
  :func:`refcomp.layers.relu`.

The state is kept transposed, (H, N), so every pass is over contiguous
rows.  Results differ from the reference mode in the last bits (BLAS order,
NumPy's tanh); tests check them against independent float64 evaluations
and PyTorch.
"""

import numpy as np

__all__ = ["lstm_fast", "gru_fast", "mgu_fast", "simple_rnn_fast"]


def _fused(hid, feat, dt, blocks):
    """Stack gate row blocks ``(W_h, W_x, b_x, b_h, halve)`` (any may be None:
    zeros) into the (R, H + F + 2) matrix multiplying ``[h; x_t; 1; 1]``."""
    rows = sum(next(a.shape[0] for a in blk[:4] if a is not None) for blk in blocks)
    W = np.zeros((rows, hid + feat + 2), dtype=dt)
    r0 = 0
    for W_h, W_x, b_x, b_h, halve in blocks:
        m = next(a.shape[0] for a in (W_h, W_x, b_x, b_h) if a is not None)
        blk = W[r0:r0 + m]
        if W_h is not None:
            blk[:, :hid] = W_h
        if W_x is not None:
            blk[:, hid:hid + feat] = W_x
        if b_x is not None:
            blk[:, hid + feat] = b_x
        if b_h is not None:
            blk[:, hid + feat + 1] = b_h
        if halve:
            blk *= 0.5
        r0 += m
    return W


def _rows(b, rows):
    """``b[rows]``, or None for a missing bias."""
    return None if b is None else b[rows]


def _with_bias(W, b, dt):
    """``[W | b]`` (b None: zeros), multiplying ``[v; 1]``."""
    out = np.zeros((W.shape[0], W.shape[1] + 1), dtype=dt)
    out[:, :-1] = W
    if b is not None:
        out[:, -1] = b
    return out


def _sigmoid_halved(z):
    # z holds exactly half the pre-activation: sigmoid = 0.5*tanh(z) + 0.5
    np.tanh(z, out=z)
    z *= 0.5
    z += 0.5


def _recur(x, W, h0, return_sequences, cell):
    """Run ``cell(z, h)`` after ``z = W @ [h; x_t; 1; 1]`` for every step; the
    cell writes the new state into h (H, N) in place."""
    n, t_len, feat = x.shape
    hid = h0.shape[1]
    dt = x.dtype
    v = np.empty((hid + feat + 2, n), dtype=dt)
    v[:hid] = h0.T
    v[hid + feat:] = 1
    h = v[:hid]
    z = np.empty((W.shape[0], n), dtype=dt)
    seq = np.empty((n, t_len, hid), dtype=dt) if return_sequences else None
    xt = x.transpose(1, 2, 0)                    # (T, F, N) view
    for t in range(t_len):
        v[hid:hid + feat] = xt[t]
        np.matmul(W, v, out=z)
        cell(z, h)
        if return_sequences:
            seq[:, t, :] = h.T
    # .copy(), not ascontiguousarray: for H = 1 or N = 1, h.T is already
    # contiguous and would stay a view of the work buffer
    h_last = h.T.copy()
    return (seq if return_sequences else h_last), h_last


def lstm_fast(x, W_ih, W_hh, b_ih, b_hh, h0, c0, return_sequences):
    """LSTM (gates i, f, g, o); returns ``(outputs, (h_T, c_T))``."""
    hid, feat, dt = W_hh.shape[1], x.shape[2], x.dtype
    # private row order i, f, o, g: the three sigmoid gates form one block
    sig = np.r_[0:2 * hid, 3 * hid:4 * hid]
    g = slice(2 * hid, 3 * hid)
    W = _fused(hid, feat, dt, [(W_hh[sig], W_ih[sig], _rows(b_ih, sig), _rows(b_hh, sig), True),
                               (W_hh[g], W_ih[g], _rows(b_ih, g), _rows(b_hh, g), False)])
    c = c0.T.copy()                              # c0 is never written
    tmp = np.empty_like(c)
    H = hid

    def cell(z, h):
        np.tanh(z, out=z)
        s = z[:3 * H]
        s *= 0.5
        s += 0.5
        i, f, o, gg = z[:H], z[H:2 * H], z[2 * H:3 * H], z[3 * H:]
        np.multiply(f, c, out=c)                 # c' = (f*c) + (i*g)
        np.multiply(i, gg, out=tmp)
        np.add(c, tmp, out=c)
        np.tanh(c, out=tmp)                      # h' = o * tanh(c')
        np.multiply(o, tmp, out=h)

    seq, h = _recur(x, W, h0, return_sequences, cell)
    return seq, (h, c.T.copy())


def gru_fast(x, W_ih, W_hh, b_ih, b_hh, h0, reset_after, return_sequences):
    """GRU (gates r, z, n); returns ``(outputs, (h_T,))``."""
    H, feat, dt = W_hh.shape[1], x.shape[2], x.dtype
    rz, nn = slice(0, 2 * H), slice(2 * H, 3 * H)
    blocks = [(W_hh[rz], W_ih[rz], _rows(b_ih, rz), _rows(b_hh, rz), True),
              (None, W_ih[nn], _rows(b_ih, nn), None, False)]          # W_in x + b_in
    if reset_after:
        blocks.append((W_hh[nn], None, None, _rows(b_hh, nn), False))  # W_hn h + b_hn
        W2 = rh = None
    else:
        W2 = _with_bias(W_hh[nn], _rows(b_hh, nn), dt)                  # [W_hn | b_hn]
        rh = np.empty((H + 1, x.shape[0]), dtype=dt)                  # [r*h; 1]
        rh[H] = 1
    W = _fused(H, feat, dt, blocks)
    hn = np.empty((H, x.shape[0]), dtype=dt)

    def cell(z, h):
        _sigmoid_halved(z[:2 * H])
        r, u, xn = z[:H], z[H:2 * H], z[2 * H:3 * H]
        if reset_after:
            np.multiply(r, z[3 * H:], out=hn)    # r * (W_hn h + b_hn)
        else:
            np.multiply(r, h, out=rh[:H])
            np.matmul(W2, rh, out=hn)            # W_hn (r*h) + b_hn
        np.add(hn, xn, out=hn)
        np.tanh(hn, out=hn)                      # n
        np.subtract(1, u, out=xn)                # h' = ((1 - z) * n) + (z * h)
        xn *= hn
        np.multiply(u, h, out=h)
        h += xn

    seq, h = _recur(x, W, h0, return_sequences, cell)
    return seq, (h,)


def mgu_fast(x, W_ih, W_hh, b_ih, b_hh, h0, return_sequences):
    """MGU (gates f, h); returns ``(outputs, (h_T,))``."""
    H, feat, dt = W_hh.shape[1], x.shape[2], x.dtype
    ff, hh = slice(0, H), slice(H, 2 * H)
    W = _fused(H, feat, dt, [(W_hh[ff], W_ih[ff], _rows(b_ih, ff), _rows(b_hh, ff), True),
                             (None, W_ih[hh], _rows(b_ih, hh), None, False)])
    W2 = _with_bias(W_hh[hh], _rows(b_hh, hh), dt)                     # [U_h | b_hh_h]
    fh = np.empty((H + 1, x.shape[0]), dtype=dt)                      # [f*h; 1]
    fh[H] = 1
    cand = np.empty((H, x.shape[0]), dtype=dt)

    def cell(z, h):
        f, xh = z[:H], z[H:]
        _sigmoid_halved(f)
        np.multiply(f, h, out=fh[:H])
        np.matmul(W2, fh, out=cand)              # U_h (f*h) + b_hh_h
        np.add(cand, xh, out=cand)
        np.tanh(cand, out=cand)                  # h~
        np.subtract(1, f, out=xh)                # h' = ((1 - f) * h) + (f * h~)
        xh *= h
        np.multiply(f, cand, out=h)
        h += xh

    seq, h = _recur(x, W, h0, return_sequences, cell)
    return seq, (h,)


def simple_rnn_fast(x, W_ih, W_hh, b_ih, b_hh, h0, activation, return_sequences):
    """Elman RNN; returns ``(outputs, (h_T,))``."""
    H, feat, dt = W_hh.shape[1], x.shape[2], x.dtype
    W = _fused(H, feat, dt, [(W_hh, W_ih, b_ih, b_hh, False)])
    zero = dt.type(0)

    def cell(z, h):
        if activation == "tanh":
            np.tanh(z, out=h)
        else:                                    # the rule of layers.relu
            np.maximum(z, zero, out=h)           # NaN kept
            h += zero                            # -0.0 -> +0.0
    seq, h = _recur(x, W, h0, return_sequences, cell)
    return seq, (h,)
