"""Bit packing of signs and XNOR-popcount dot products, each with a NumPy twin.

Signs are bits: 1 for +1 (x >= 0, so +0.0, -0.0 and positive values), 0 for -1.  A row of n
signs is packed into ceil(n / 64) uint64 words, element j in bit (j % 64) of word j // 64;
the unused high bits of the last word are 0 in every row, so they XOR to 0.

For two packed rows a, b of n signs and an optional validity mask m (bits of the terms that
count), the dot product of the sign vectors is, exactly,

    dot = valid - 2 * popcount((a XOR b) AND m),     valid = popcount(m)

(each agreeing pair adds +1, each disagreeing pair -1).  Popcount is the SWAR bit count
(Hacker's Delight 5-2, the byte sums by shifts) in the Numba kernel and
``numpy.bitwise_count`` in the twin; both
are exact integer computations.

Private module: inputs are validated by :mod:`refcomp.integer.xnor`.
"""

import numba
import numpy as np

__all__ = ["pack_rows", "pack_rows_twin", "xnor_dot", "xnor_dot_twin"]

_M1 = np.uint64(0x5555555555555555)
_M2 = np.uint64(0x3333333333333333)
_M4 = np.uint64(0x0F0F0F0F0F0F0F0F)


@numba.njit(cache=True, inline="always")
def _popcount(x):
    x = x - ((x >> np.uint64(1)) & _M1)
    x = (x & _M2) + ((x >> np.uint64(2)) & _M2)
    x = (x + (x >> np.uint64(4))) & _M4
    # byte sums by shifts (no multiplication: nothing wraps, also when interpreted)
    x = x + (x >> np.uint64(8))
    x = x + (x >> np.uint64(16))
    x = x + (x >> np.uint64(32))
    return x & np.uint64(0x7F)


@numba.njit(cache=True, parallel=True)
def _pack_kernel(bits, out):
    n_rows, n = bits.shape
    for r in numba.prange(n_rows):
        for j in range(n):
            if bits[r, j]:
                out[r, j >> 6] |= np.uint64(1) << np.uint64(j & 63)


def pack_rows(nonneg):
    """Pack a 2-D bool array (True = sign +1) row by row into uint64 words."""
    n_rows, n = nonneg.shape
    out = np.zeros((n_rows, (n + 63) // 64), np.uint64)
    _pack_kernel(np.ascontiguousarray(nonneg), out)
    return out


def pack_rows_twin(nonneg):
    n_rows, n = nonneg.shape
    words = (n + 63) // 64
    padded = np.zeros((n_rows, words * 64), np.uint64)
    padded[:, :n] = nonneg
    weights = np.uint64(1) << np.arange(64, dtype=np.uint64)
    return (padded.reshape(n_rows, words, 64) * weights).sum(axis=2, dtype=np.uint64)


@numba.njit(cache=True, parallel=True)
def _dot_kernel(a, b, mask, valid, out):
    n_a, words = a.shape
    n_b = b.shape[0]
    has_mask = mask.shape[0] == n_a
    for i in numba.prange(n_a):
        for o in range(n_b):
            cnt = np.uint64(0)
            if has_mask:
                for w in range(words):
                    cnt += _popcount((a[i, w] ^ b[o, w]) & mask[i, w])
                out[i, o] = valid[i] - 2 * np.int64(cnt)
            else:
                for w in range(words):
                    cnt += _popcount(a[i, w] ^ b[o, w])
                out[i, o] = valid[0] - 2 * np.int64(cnt)


def xnor_dot(a, b, n, mask=None):
    """int32 (A, B) sign dot products of packed rows a (A, W) and b (B, W) of n signs
    (``mask`` (A, W): per-row validity bits, e.g. padding of a convolution)."""
    out = np.empty((a.shape[0], b.shape[0]), np.int64)
    if mask is None:
        _dot_kernel(a, b, np.zeros((0, a.shape[1]), np.uint64), np.array([n], np.int64), out)
    else:
        valid = np.bitwise_count(mask).sum(axis=1).astype(np.int64)
        _dot_kernel(a, b, mask, valid, out)
    return out.astype(np.int32)


def xnor_dot_twin(a, b, n, mask=None):
    x = a[:, None, :] ^ b[None, :, :]
    if mask is None:
        valid = np.int64(n)
    else:
        x = x & mask[:, None, :]
        valid = np.bitwise_count(mask).sum(axis=1).astype(np.int64)[:, None]
    cnt = np.bitwise_count(x).sum(axis=2, dtype=np.int64)
    return (valid - 2 * cnt).astype(np.int32)
