"""HashedNets kernels (Numba) and their plain Python/NumPy twins.

Hash arithmetic: :mod:`refcomp.hashing._xxh32` (xxHash32, the authors' string
keys and the integer keys).  All hash arithmetic here is on uint64 values
masked to 32 bits (every product of two values below 2**32 fits uint64);
no Python int literal meets a uint64 (Numba would promote to float64).

Modes: 0 = the authors' string keys, 1 = integer keys.  Bucket of the
1-based (i, j): ``h = hash(key(i, j, bucket)) % n_buckets`` (0-based; the
authors' 1-based index is h + 1).  Sign: ``hash(key(i, j, sign)) % 2``:
0 -> -1, 1 -> +1 (the authors' ``(h % 2 + 1) * 2 - 3``); +1 everywhere when
signs are off.

Products: every kernel computes, per output element, the terms
``x * v`` with ``v = sign * buckets[h]`` (exact: a sign flip) in the dtype
of its arrays and adds them sequentially, in increasing order of the
reduction index, to an accumulator of that dtype starting at +0.0 (no FMA
contraction: Numba emits separate multiply and add without ``fastmath``).
Parallel over output neurons / channels only, so results do not depend on
the thread count.  The twins compute the hash tables with the Python
xxHash32, then the same additions in the same order with NumPy.
"""

import numba
import numpy as np

from ._xxh32 import P1 as _p1, P2 as _p2, P3 as _p3, P4 as _p4, P5 as _p5
from ._xxh32 import SUFFIXES, int_key, string_key, xxh32

__all__ = ["hash_table", "hash_table_twin", "hashed_matmul", "hashed_matmul_twin",
           "hashed_conv", "hashed_conv_twin", "xxh32_bytes", "KEY_MAX"]

_M = np.uint64(0xFFFFFFFF)
_P1, _P2, _P3, _P4, _P5 = (np.uint64(p) for p in (_p1, _p2, _p3, _p4, _p5))
_U0 = np.uint64(0)
_U1 = np.uint64(1)
_IDX = np.frombuffer(SUFFIXES[0], dtype=np.uint8).copy()
_XI = np.frombuffer(SUFFIXES[1], dtype=np.uint8).copy()
#: Longest string key: 6 decimal numbers of at most 10 digits (indices below
#: 2**32), "_" and a 4-byte suffix.
KEY_MAX = 6 * 10 + 1 + 4
#: Output neurons / channels per block of the product kernels: one block's hashed rows
#: (CONV_BLOCK x fan-in values) per thread, and CONV_BLOCK accumulators updated per input
#: value in one vectorisable loop (each accumulator's additions keep their order).
CONV_BLOCK = 16


@numba.njit(cache=True)
def _rotl(v, r):
    return ((v << np.uint64(r)) | (v >> np.uint64(32 - r))) & _M


@numba.njit(cache=True)
def _word(buf, p):
    return (np.uint64(buf[p]) | (np.uint64(buf[p + 1]) << np.uint64(8))
            | (np.uint64(buf[p + 2]) << np.uint64(16)) | (np.uint64(buf[p + 3]) << np.uint64(24)))


@numba.njit(cache=True)
def _avalanche(h):
    h ^= h >> np.uint64(15)
    h = (h * _P2) & _M
    h ^= h >> np.uint64(13)
    h = (h * _P3) & _M
    h ^= h >> np.uint64(16)
    return h


@numba.njit(cache=True)
def _xxh32_buf(buf, n, seed):
    """XXH32 of ``buf[:n]`` (uint8) with the uint64 ``seed`` (< 2**32)."""
    p = 0
    if n >= 16:
        v1 = (seed + _P1 + _P2) & _M
        v2 = (seed + _P2) & _M
        v3 = seed
        v4 = (seed + (np.uint64(1 << 32) - _P1)) & _M
        while p + 16 <= n:
            v1 = (_rotl((v1 + _word(buf, p) * _P2) & _M, 13) * _P1) & _M
            v2 = (_rotl((v2 + _word(buf, p + 4) * _P2) & _M, 13) * _P1) & _M
            v3 = (_rotl((v3 + _word(buf, p + 8) * _P2) & _M, 13) * _P1) & _M
            v4 = (_rotl((v4 + _word(buf, p + 12) * _P2) & _M, 13) * _P1) & _M
            p += 16
        h = (_rotl(v1, 1) + _rotl(v2, 7) + _rotl(v3, 12) + _rotl(v4, 18)) & _M
    else:
        h = (seed + _P5) & _M
    h = (h + np.uint64(n)) & _M
    while p + 4 <= n:
        h = (_rotl((h + _word(buf, p) * _P3) & _M, 17) * _P4) & _M
        p += 4
    while p < n:
        h = (_rotl((h + np.uint64(buf[p]) * _P5) & _M, 11) * _P1) & _M
        p += 1
    return _avalanche(h)


@numba.njit(cache=True)
def _int_hash(i1, j1, tag, seed):
    """XXH32 of the 12 little-endian bytes of uint32 (i1, j1, tag)."""
    h = (seed + _P5 + np.uint64(12)) & _M
    h = (_rotl((h + np.uint64(i1) * _P3) & _M, 17) * _P4) & _M
    h = (_rotl((h + np.uint64(j1) * _P3) & _M, 17) * _P4) & _M
    h = (_rotl((h + np.uint64(tag) * _P3) & _M, 17) * _P4) & _M
    return _avalanche(h)


@numba.njit(cache=True)
def _put_dec(buf, pos, v):
    """ASCII decimal digits of the positive int ``v`` at ``buf[pos:]``."""
    nd = 0
    t = v
    while True:
        nd += 1
        t //= 10
        if t == 0:
            break
    for k in range(nd - 1, -1, -1):
        buf[pos + k] = 48 + v % 10
        v //= 10
    return pos + nd


@numba.njit(cache=True)
def _key_prefix(buf, i1, j1):
    """Write str(i)str(i+1)str(i+2)_str(j)str(j+1)str(j+2); returns its length."""
    pos = _put_dec(buf, 0, i1)
    pos = _put_dec(buf, pos, i1 + 1)
    pos = _put_dec(buf, pos, i1 + 2)
    buf[pos] = 95                                   # "_"
    pos = _put_dec(buf, pos + 1, j1)
    pos = _put_dec(buf, pos, j1 + 1)
    return _put_dec(buf, pos, j1 + 2)


@numba.njit(cache=True)
def _string_hash(buf, pos, suffix, seed):
    for k in range(suffix.shape[0]):
        buf[pos + k] = suffix[k]
    return _xxh32_buf(buf, pos + suffix.shape[0], seed)


@numba.njit(cache=True)
def _bucket_sign(i1, j1, n_buckets, seed, mode, sign, buf):
    """(0-based bucket, sign +-1) of the 1-based (i1, j1)."""
    if mode == 0:
        pos = _key_prefix(buf, i1, j1)
        h = _string_hash(buf, pos, _IDX, seed)
        s = _string_hash(buf, pos, _XI, seed) if sign else _U1
    else:
        h = _int_hash(i1, j1, 0, seed)
        s = _int_hash(i1, j1, 1, seed) if sign else _U1
    b = np.int64(h % np.uint64(n_buckets))
    return b, (1 if (s & _U1) == _U1 else -1)


@numba.njit(cache=True, parallel=True)
def _table_kernel(n_rows, n_cols, n_buckets, seed, mode, sign, idx, sgn):
    for r in numba.prange(n_rows):
        buf = np.zeros(KEY_MAX, dtype=np.uint8)
        for c in range(n_cols):
            b, s = _bucket_sign(r + 1, c + 1, n_buckets, seed, mode, sign, buf)
            idx[r, c] = b
            sgn[r, c] = s


def hash_table(n_rows, n_cols, n_buckets, seed, mode, sign):
    """``(idx int64 (n_rows, n_cols), sgn int8 (n_rows, n_cols))`` of a hashed matrix."""
    idx = np.empty((n_rows, n_cols), dtype=np.int64)
    sgn = np.empty((n_rows, n_cols), dtype=np.int8)
    if idx.size:
        _table_kernel(n_rows, n_cols, n_buckets, np.uint64(seed), mode, bool(sign), idx, sgn)
    return idx, sgn


def hash_table_twin(n_rows, n_cols, n_buckets, seed, mode, sign):
    """Twin of :func:`hash_table`: Python xxHash32 on explicitly built keys."""
    idx = np.empty((n_rows, n_cols), dtype=np.int64)
    sgn = np.ones((n_rows, n_cols), dtype=np.int8)
    for r in range(n_rows):
        for c in range(n_cols):
            if mode == 0:
                h = xxh32(string_key(r + 1, c + 1, SUFFIXES[0]), seed)
                s = xxh32(string_key(r + 1, c + 1, SUFFIXES[1]), seed) if sign else 1
            else:
                h = xxh32(int_key(r + 1, c + 1, 0), seed)
                s = xxh32(int_key(r + 1, c + 1, 1), seed) if sign else 1
            idx[r, c] = h % n_buckets
            sgn[r, c] = 1 if s % 2 == 1 else -1
    return idx, sgn


def xxh32_bytes(data, seed):
    """XXH32 of ``data`` (bytes) by the Numba kernel (tests: the twin of ``xxh32``)."""
    buf = np.frombuffer(bytes(data), dtype=np.uint8)
    return int(_xxh32_buf(buf, buf.shape[0], np.uint64(seed)))


@numba.njit(cache=True)
def _hashed_block(o0, m, n_cols, buckets, seed, mode, sign, dtype):
    """Rows o0 .. o0+m-1 of V, column-major (``blk[col, t]`` = V[o0 + t, col]) so that one
    input value meets the block's m weights contiguously."""
    buf = np.zeros(KEY_MAX, dtype=np.uint8)
    nb = buckets.shape[0]
    blk = np.empty((n_cols, m), dtype=dtype)
    for t in range(m):
        for col in range(n_cols):
            b, s = _bucket_sign(o0 + t + 1, col + 1, nb, seed, mode, sign, buf)
            blk[col, t] = buckets[b] if s > 0 else -buckets[b]
    return blk


@numba.njit(cache=True, parallel=True)
def _matmul_kernel(x, buckets, n_out, seed, mode, sign, out):
    n, n_in = x.shape
    ob = CONV_BLOCK
    for task in numba.prange((n_out + ob - 1) // ob):
        o0 = task * ob
        m = min(ob, n_out - o0)
        # rows o0 .. o0+m-1 of V: m * n_in values per thread, never the matrix
        rows = _hashed_block(o0, m, n_in, buckets, seed, mode, sign, out.dtype)
        acc = np.empty(m, dtype=out.dtype)
        for r in range(n):
            acc[:] = 0                          # +0.0, then i = 0, 1, ... for every output
            for i in range(n_in):
                v = x[r, i]
                for t in range(m):
                    acc[t] += v * rows[i, t]
            for t in range(m):
                out[r, o0 + t] = acc[t]


def hashed_matmul(x, buckets, n_out, seed, mode, sign):
    """Accumulator of ``x @ V.T`` (module doc): ``x`` (N, in) and ``buckets`` of one
    dtype (float64 for the reference, the data dtype for "fast"); returns (N, n_out)
    of that dtype.  V is never formed: each block of :data:`CONV_BLOCK` rows of V is
    hashed once per call into a per-thread buffer; parallel over the blocks."""
    out = np.empty((x.shape[0], n_out), dtype=x.dtype)
    if out.size:
        _matmul_kernel(np.ascontiguousarray(x), np.ascontiguousarray(buckets), n_out,
                       np.uint64(seed), mode, bool(sign), out)
    return out


def hashed_matmul_twin(x, buckets, n_out, seed, mode, sign):
    """Twin of :func:`hashed_matmul`: the hash table by the twin, V, then for
    i = 0, 1, ... ``acc += x[:, i] * V[:, i]`` in the arrays' dtype."""
    idx, sgn = hash_table_twin(n_out, x.shape[1], buckets.shape[0], seed, mode, sign)
    V = np.where(sgn > 0, buckets[idx], -buckets[idx])
    acc = np.zeros((x.shape[0], n_out), dtype=x.dtype)
    for i in range(x.shape[1]):
        acc += x[:, i][:, None] * V[:, i][None, :]
    return acc


@numba.njit(cache=True, parallel=True)
def _conv_kernel(xp, buckets, n_out, cg, kh, kw, groups, sh, sw, dh, dw, oh_n, ow_n, seed,
                 mode, sign, out):
    n = xp.shape[0]
    og = n_out // groups
    K = cg * kh * kw
    ob = min(CONV_BLOCK, og)
    per_group = (og + ob - 1) // ob
    for task in numba.prange(groups * per_group):
        g = task // per_group
        o0 = g * og + (task % per_group) * ob
        m = min(ob, g * og + og - o0)
        # the hashed filters of output channels o0 .. o0+m-1
        filt = _hashed_block(o0, m, K, buckets, seed, mode, sign, out.dtype)
        acc = np.empty(m, dtype=out.dtype)
        for r in range(n):
            for a in range(oh_n):
                for q in range(ow_n):
                    # +0.0, then the terms in the order c, i, j (each accumulator's own
                    # sequence of additions is that of the scalar loop: same bits)
                    acc[:] = 0
                    for c in range(cg):
                        for i in range(kh):
                            row = a * sh + i * dh
                            for j in range(kw):
                                v = xp[r, g * cg + c, row, q * sw + j * dw]
                                col = (c * kh + i) * kw + j
                                for t in range(m):
                                    acc[t] += v * filt[col, t]
                    for t in range(m):
                        out[r, o0 + t, a, q] = acc[t]


def hashed_conv(xp, buckets, n_out, cg, kh, kw, groups, stride, dilation, seed, mode, sign):
    """Accumulator of the cross-correlation of the padded NCHW ``xp`` with the
    hashed kernel (n_out, cg, kh, kw); (N, n_out, OH, OW) in the arrays' dtype.
    Order per output element: c, then kernel row i, then column j, increasing
    (the order of :func:`refcomp.layers.conv2d`'s reference).  Parallel over blocks of
    :data:`CONV_BLOCK` output channels of one group; within a block each input value is
    multiplied by the block's weights in one vectorisable loop over the channels (the
    per-element order of additions is unchanged, so are the bits)."""
    oh = (xp.shape[2] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (xp.shape[3] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    out = np.empty((xp.shape[0], n_out, oh, ow), dtype=xp.dtype)
    if out.size:
        _conv_kernel(np.ascontiguousarray(xp), np.ascontiguousarray(buckets), n_out, cg, kh,
                     kw, groups, stride[0], stride[1], dilation[0], dilation[1], oh, ow,
                     np.uint64(seed), mode, bool(sign), out)
    return out


def hashed_conv_twin(xp, buckets, n_out, cg, kh, kw, groups, stride, dilation, seed, mode,
                     sign):
    """Twin of :func:`hashed_conv` (hash table by the twin, then the same ordered
    additions on strided NumPy slices)."""
    idx, sgn = hash_table_twin(n_out, cg * kh * kw, buckets.shape[0], seed, mode, sign)
    V = np.where(sgn > 0, buckets[idx], -buckets[idx])
    n = xp.shape[0]
    oh = (xp.shape[2] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (xp.shape[3] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    og = n_out // groups
    out = np.zeros((n, n_out, oh, ow), dtype=xp.dtype)
    for o in range(n_out):
        g = o // og
        for c in range(cg):
            for i in range(kh):
                for j in range(kw):
                    r0, c0 = i * dilation[0], j * dilation[1]
                    patch = xp[:, g * cg + c, r0:r0 + (oh - 1) * stride[0] + 1:stride[0],
                               c0:c0 + (ow - 1) * stride[1] + 1:stride[1]]
                    out[:, o] += patch * V[o, (c * kh + i) * kw + j]
    return out
