"""LSTM ``precision="fast"``: one BLAS product and eight NumPy passes per step.

Private; :func:`refcomp.layers.lstm` validates the arguments first.

Arithmetic (all in the input dtype, float32 or float64):

* the pre-activations of a step are one matrix product (BLAS, its own
  summation order and blocking) of the gate weights ``[W_hh | W_ih | b_ih |
  b_hh]`` (4H, H + F + 2) with the column ``[h; x_t; 1; 1]``: each gate unit
  is one sum of the F + H + 2 terms ``x.W_ih + b_ih + h.W_hh + b_hh``
  (the terms of the reference mode, whose order it does not keep: the
  gamma_n bound of FACTS.md §8 covers any order);
* the i, f, o rows of those weights are multiplied by 1/2 beforehand, which
  is exact (a power of two; weights below 2^-125 in float32 would lose
  bits as subnormals), so the product gives exactly half of the
  pre-activation, and ``sigmoid(z) = 0.5 * tanh(z / 2) + 0.5`` is evaluated
  as ``tanh`` (NumPy's, of the dtype) then ``* 0.5`` then ``+ 0.5``: one
  tanh pass over all four gates instead of negate, exp, add, divide;
* ``c' = f*c + i*g`` and ``h' = o * tanh(c')`` as written, rounded to the
  dtype after each operation (NumPy).

The state is kept transposed, (H, N), so every elementwise pass is over a
contiguous block.  Results differ from the reference mode in the last bits
(float32 sums in BLAS's order, NumPy's float32 tanh); tests check them
against an independent float64 evaluation.
"""

import numpy as np

__all__ = ["lstm_fast"]


def lstm_fast(x, W_ih, W_hh, b_ih, b_hh, h0, c0, return_sequences):
    """Fast-mode LSTM on validated arguments (h0, c0 arrays, never modified);
    returns ``(outputs, (h_T, c_T))`` like :func:`refcomp.layers.lstm`."""
    n, t_len, f = x.shape
    hid = W_hh.shape[1]
    dt = x.dtype
    # private gate order i, f, o, g: the three sigmoid gates are one block
    perm = np.r_[0:2 * hid, 3 * hid:4 * hid, 2 * hid:3 * hid]
    k = hid + f + 2
    W = np.zeros((4 * hid, k), dtype=dt)
    W[:, :hid] = W_hh[perm]
    W[:, hid:hid + f] = W_ih[perm]
    if b_ih is not None:
        W[:, hid + f] = b_ih[perm]
    if b_hh is not None:
        W[:, hid + f + 1] = b_hh[perm]
    W[:3 * hid] *= 0.5
    v = np.empty((k, n), dtype=dt)          # the operand [h; x_t; 1; 1]
    v[:hid] = h0.T
    v[hid + f:] = 1
    # always a copy (c0 is never written): for H = 1 or N = 1, c0.T is
    # already C-contiguous and ascontiguousarray would return a view
    c = c0.T.copy()
    z = np.empty((4 * hid, n), dtype=dt)
    tmp = np.empty((hid, n), dtype=dt)
    seq = np.empty((n, t_len, hid), dtype=dt) if return_sequences else None
    xt = x.transpose(1, 2, 0)               # (T, F, N) view
    for t in range(t_len):
        v[hid:hid + f] = xt[t]
        np.matmul(W, v, out=z)
        np.tanh(z, out=z)
        s = z[:3 * hid]
        s *= 0.5
        s += 0.5
        i, fg, o, g = z[:hid], z[hid:2 * hid], z[2 * hid:3 * hid], z[3 * hid:]
        np.multiply(fg, c, out=c)
        np.multiply(i, g, out=tmp)
        c += tmp
        np.tanh(c, out=tmp)
        np.multiply(o, tmp, out=v[:hid])    # h_t, the next step's operand
        if return_sequences:
            seq[:, t, :] = v[:hid].T
    h = np.ascontiguousarray(v[:hid].T)
    c = np.ascontiguousarray(c.T)
    return (seq if return_sequences else h), (h, c)
