"""rANS byte-wise coder kernels (Numba) and plain-Python twins.

32-bit state ``x`` kept in ``[L, 256 L)`` with ``L = 2**23``; byte-wise
renormalisation (Duda 2013; the "rans_byte" arrangement of F. Giesen).
Symbols are coded in reverse and bytes written backwards, so the decoder
reads forward.  All arithmetic is on integers (no rounding).
"""
import numba
import numpy as np

RANS_L = 1 << 23


@numba.njit(cache=True)
def encode_kernel(ranks, freq, cum, prec, buf):
    """Encode ``ranks`` into the tail of ``buf`` (size >= 2 n + 4); returns
    the start index of the stream (state first, 4 bytes big-endian)."""
    x = np.int64(RANS_L)
    p = buf.shape[0]
    for i in range(ranks.shape[0] - 1, -1, -1):
        r = ranks[i]
        f = np.int64(freq[r])
        x_max = ((RANS_L >> prec) << 8) * f
        while x >= x_max:
            p -= 1
            buf[p] = np.uint8(x & 0xFF)
            x >>= 8
        x = ((x // f) << prec) + (x % f) + np.int64(cum[r])
    for k in range(4):
        p -= 1
        buf[p] = np.uint8(x & 0xFF)
        x >>= 8
    return p


def encode_twin(ranks, freq, cum, prec, buf):
    """Plain-Python twin of :func:`encode_kernel` (Python ints)."""
    x = RANS_L
    out = []
    for r in reversed(ranks.tolist()):
        f = int(freq[r])
        while x >= ((RANS_L >> prec) << 8) * f:
            out.append(x & 0xFF)
            x >>= 8
        x = (x // f << prec) + x % f + int(cum[r])
    out += [x & 0xFF, (x >> 8) & 0xFF, (x >> 16) & 0xFF, x >> 24]
    p = buf.shape[0] - len(out)
    buf[p:] = np.array(out[::-1], dtype=np.uint8)
    return p


@numba.njit(cache=True)
def decode_kernel(data, start, n, slot_rank, freq, cum, prec, out):
    """Decode ``n`` ranks; returns ``(status, end, x)``: status 0 ok,
    1 truncated, 2 unassigned slot.  A valid stream ends with ``x == L`` and
    ``end == len(data)``."""
    size = data.shape[0]
    p = start
    if p + 4 > size:
        return 1, p, np.int64(0)
    x = np.int64(0)
    for k in range(4):
        x = (x << 8) | np.int64(data[p])
        p += 1
    mask = (np.int64(1) << prec) - 1
    for i in range(n):
        slot = x & mask
        r = slot_rank[slot]
        if r < 0:
            return 2, p, x
        out[i] = r
        x = np.int64(freq[r]) * (x >> prec) + slot - np.int64(cum[r])
        while x < RANS_L:
            if p >= size:
                return 1, p, x
            x = (x << 8) | np.int64(data[p])
            p += 1
    return 0, p, x


def decode_twin(data, start, n, slot_rank, freq, cum, prec, out):
    """Plain-Python twin of :func:`decode_kernel`."""
    size = len(data)
    p = start
    if p + 4 > size:
        return 1, p, 0
    x = int.from_bytes(bytes(data[p:p + 4]), "big")
    p += 4
    for i in range(n):
        slot = x & ((1 << prec) - 1)
        r = int(slot_rank[slot])
        if r < 0:
            return 2, p, x
        out[i] = r
        x = int(freq[r]) * (x >> prec) + slot - int(cum[r])
        while x < RANS_L:
            if p >= size:
                return 1, p, x
            x = (x << 8) | int(data[p])
            p += 1
    return 0, p, x
