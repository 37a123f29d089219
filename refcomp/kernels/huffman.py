"""Canonical-Huffman bit packing and table-driven decoding (Numba) with twins.

Bit order: MSB-first, the first code word starts at bit 7 of byte 0 of the
payload; the last byte is padded with zero bits.  Code words are at most 64
bits (``refcomp.coding.huffman`` guarantees it).  The kernels are private:
callers pass consistent arrays (ranks < len(codes), lengths 1..64).

Decoding status codes (returned, never raised, so Numba stays simple):
``0`` ok, ``1`` truncated (a code word runs past the payload), ``2`` invalid
code word (a bit pattern that no symbol owns: only possible for an incomplete
code, e.g. the single-symbol code ``0``).
"""

import numba
import numpy as np

__all__ = ["encode_kernel", "encode_twin", "decode_kernel", "decode_twin",
           "TABLE_BITS"]

#: Bits of the first-level decoding table (2**TABLE_BITS entries); longer
#: code words fall back to the canonical per-length search.
TABLE_BITS = 11


@numba.njit(cache=True)
def encode_kernel(ranks, codes, lengths, out):
    """Write ``codes[ranks[i]]`` (``lengths[ranks[i]]`` bits) MSB-first into
    ``out`` (zeroed uint8, exactly ceil(total/8) bytes); returns bits written."""
    acc = np.uint64(0)
    nacc = 0          # pending bits in acc, always < 8 between symbols
    pos = 0
    total = 0
    for i in range(ranks.shape[0]):
        r = ranks[i]
        ln = np.int64(lengths[r])
        c = codes[r]
        total += ln
        if ln > 56:   # keep acc below 64 bits: write the high part first
            hi = ln - 32
            acc = (acc << np.uint64(hi)) | (c >> np.uint64(32))
            nacc += hi
            while nacc >= 8:
                nacc -= 8
                out[pos] = np.uint8((acc >> np.uint64(nacc)) & np.uint64(0xFF))
                pos += 1
            ln = 32
            c = c & np.uint64(0xFFFFFFFF)
        acc = ((acc << np.uint64(ln)) | c) & np.uint64(0xFFFFFFFFFFFFFFFF)
        nacc += ln
        while nacc >= 8:
            nacc -= 8
            out[pos] = np.uint8((acc >> np.uint64(nacc)) & np.uint64(0xFF))
            pos += 1
        acc = acc & ((np.uint64(1) << np.uint64(nacc)) - np.uint64(1))
    if nacc > 0:
        out[pos] = np.uint8((acc << np.uint64(8 - nacc)) & np.uint64(0xFF))
    return total


def encode_twin(ranks, codes, lengths, out):
    """NumPy twin of :func:`encode_kernel` (expands every code word to bits)."""
    ln = lengths[ranks].astype(np.int64)
    total = int(ln.sum())
    if total == 0:
        return 0
    cw = np.repeat(codes[ranks], ln)
    # bit j (0 = most significant) of a word of length l is bit (l-1-j)
    start = np.repeat(np.cumsum(ln) - ln, ln)
    shift = np.repeat(ln - 1, ln) - (np.arange(total, dtype=np.int64) - start)
    bits = ((cw >> shift.astype(np.uint64)) & np.uint64(1)).astype(np.uint8)
    packed = np.packbits(bits)
    out[:packed.size] = packed
    return total


@numba.njit(cache=True)
def _peek(data, nbytes, p, t):
    """``t`` (<= 16) bits starting at bit ``p``, zeros past the end."""
    b = p >> 3
    w = np.int64(0)
    for k in range(3):
        w <<= 8
        if b + k < nbytes:
            w |= np.int64(data[b + k])
    return (w >> (24 - t - (p & 7))) & ((np.int64(1) << t) - 1)


@numba.njit(cache=True)
def decode_kernel(data, start_bit, n, tsym, tlen, t, first, count, offset, maxlen,
                  perm, out):
    """Decode ``n`` symbol ranks into ``out`` (int64) starting at ``start_bit``.

    ``tsym``/``tlen``: table over the next ``t`` bits (``tlen == 0``: the code
    word is longer than ``t``).  ``first[l]``, ``count[l]``, ``offset[l]``: the
    canonical first code, number of words and index in ``perm`` (ranks sorted
    by (length, rank)) of length ``l``.  Returns ``(status, end_bit)``.
    """
    nbytes = data.shape[0]
    total = np.int64(nbytes) * 8
    p = np.int64(start_bit)
    for i in range(n):
        v = _peek(data, nbytes, p, t)
        ln = np.int64(tlen[v])
        if ln > 0:
            if p + ln > total:
                return 1, p
            out[i] = tsym[v]
            p += ln
            continue
        code = np.uint64(v)
        q = p + t
        found = False
        for ln2 in range(t + 1, maxlen + 1):
            if q >= total:
                return 1, p
            bit = (np.int64(data[q >> 3]) >> (7 - (q & 7))) & 1
            code = (code << np.uint64(1)) | np.uint64(bit)
            q += 1
            if count[ln2] > 0 and code >= first[ln2] and code - first[ln2] < np.uint64(count[ln2]):
                out[i] = perm[offset[ln2] + np.int64(code - first[ln2])]
                found = True
                break
        if not found:
            return 2, p
        p = q
    return 0, p


def decode_twin(data, start_bit, n, first, count, offset, maxlen, perm, out):
    """Plain-Python twin of :func:`decode_kernel`: canonical decoding bit by bit
    (no table), same status codes and end position."""
    total = 8 * len(data)
    p = start_bit
    for i in range(n):
        code = 0
        q = p
        for ln in range(1, maxlen + 1):
            if q >= total:
                return 1, p
            code = (code << 1) | ((int(data[q >> 3]) >> (7 - (q & 7))) & 1)
            q += 1
            c = int(count[ln])
            if c and int(first[ln]) <= code < int(first[ln]) + c:
                out[i] = perm[int(offset[ln]) + code - int(first[ln])]
                break
        else:
            return 2, p
        p = q
    return 0, p
