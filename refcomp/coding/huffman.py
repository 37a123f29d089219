"""Canonical Huffman coding with an optional length limit (package-merge).

Deep Compression (Han, Mao & Dally, ICLR 2016, §4, cited by seed 002) codes
the shared-weight indices and the relative sparse indices with a Huffman code
(Huffman 1952).  This module builds the code lengths, assigns canonical code
words (the DEFLATE rule, RFC 1951 §3.2.2) and reads/writes a self-describing
byte stream.

Code lengths (:func:`huffman_code_lengths`)
-------------------------------------------
Two-queue Huffman construction (van Leeuwen 1976) on the present symbols:

* the leaves are sorted by ``(count, symbol)`` ascending;
* each step takes the two smallest nodes among the front of the leaf queue
  and the front of the internal-node queue (internal nodes in creation
  order); **on equal weight the leaf is taken first** (this tie-break gives,
  among all optimal codes, one of minimal longest code word and minimal sum of
  lengths' variance, Schwartz 1964);
* the first node taken becomes the left child (irrelevant for the lengths).

Weights are exact int64 sums (the total count must be below ``2**62``).
A lone present symbol gets length 1; absent symbols length 0.  The
lengths are a function of the count table alone (ties included, by the rule
above), so they, the stream header and the code words never depend on the
order of the symbols in the stream (tests/test_determinism.py).  With
``max_length`` below the unconstrained longest word, the lengths come from the
package-merge algorithm (Larmore & Hirschberg, J. ACM 37(3), 1990), which is
optimal among codes whose words are at most ``max_length`` bits; its ties are
broken the same way (leaves in ``(count, symbol)`` order, a leaf before a
package of equal weight).  Otherwise the Huffman lengths are returned as is.

Canonical code words (:func:`canonical_codes`)
----------------------------------------------
Symbols with non-zero length are sorted by ``(length, symbol)``; the first
gets the all-zero word; each next word is ``(previous + 1) << (its length -
previous length)``.  Words are uint64, so lengths are at most 64.

Stream layout (:func:`huffman_encode`, all integers big-endian)
----------------------------------------------------------------
==========  ==========================================================
bytes 0-1   magic ``b"RH"``
byte 2      version, ``1``
byte 3      dtype code: 0 int8, 1 uint8, 2 int16, 3 uint16, 4 int32,
            5 uint32, 6 int64, 7 uint64
bytes 4-11  ``n``: number of symbols (uint64)
bytes 12-15 ``m``: number of distinct symbols (uint32); ``m == 0`` iff
            ``n == 0``, and then the stream ends here (16 bytes).
next s      smallest symbol ``a_0`` in the input dtype, two's complement
            for signed dtypes, ``s`` = itemsize bytes
next byte   ``gw``: bit width of the alphabet gaps (0..64)
next byte   ``lw``: bit width of the code lengths (1..7)
bit field   ``m - 1`` gaps ``a_i - a_{i-1} - 1`` (``gw`` bits each), then
            ``m`` code lengths (``lw`` bits each, in alphabet order), MSB-first,
            zero-padded to a byte boundary
payload     the ``n`` canonical code words MSB-first, zero-padded to a byte
==========  ==========================================================

The stream has exactly ``ceil(payload_bits / 8)`` payload bytes: trailing
bytes and non-zero padding bits are rejected.  :func:`huffman_sizes` counts
the header bytes (with the header's padding) as header bits, the code words
as payload bits; the final padding (0..7 bits) is the remainder
``8 * len(data) - header_bits - payload_bits``.
"""

import numpy as np

from .._errors import DecodeError, DTypeError, ParameterError
from ..kernels import huffman as _k
from ._alphabet import check_symbols, parse_header, symbol_alphabet, write_header

__all__ = ["huffman_code_lengths", "canonical_codes", "huffman_cost", "huffman_encode",
           "huffman_decode", "huffman_sizes", "MAX_SYMBOLS"]

#: Largest symbol count a stream may declare.  With at most ``2**40`` symbols a
#: Huffman word is at most 57 bits (Fibonacci bound, F(60) > 2**40), so every
#: code word fits the uint64 code registers.
MAX_SYMBOLS = 1 << 40
_MAGIC = b"RH"
_VERSION = 1
_MAX_WEIGHT = 1 << 62
_MAX_LEN = 64


# ---------------------------------------------------------------- lengths

def _check_counts(counts):
    if not isinstance(counts, np.ndarray) or counts.ndim != 1 or counts.dtype.kind not in "iu":
        raise DTypeError("counts must be a 1-D integer ndarray, got %s"
                         % (getattr(counts, "dtype", type(counts)),))
    if counts.size and int(counts.min()) < 0:
        raise ParameterError("counts must be non-negative")
    if counts.size and int(counts.max()) >= _MAX_WEIGHT:
        raise ParameterError("total count must be below 2**62")
    c = counts.astype(np.int64)
    # exact total without int64 overflow: 31-bit halves (fewer than 2**32 entries)
    total = (int((c >> 31).sum()) << 31) + int((c & ((1 << 31) - 1)).sum())
    if total >= _MAX_WEIGHT:
        raise ParameterError("total count must be below 2**62, got %d" % total)
    return c


def _huffman_lengths(w):
    """Two-queue Huffman on sorted positive weights ``w`` (int64, m >= 2);
    returns the depth of each leaf (in the order of ``w``)."""
    m = w.size
    wl = w.tolist()
    iw = [0] * (m - 1)            # internal node weights
    parent = [0] * (2 * m - 1)    # node ids: leaves 0..m-1, internal m..2m-2
    li = ii = 0
    for k in range(m - 1):
        kids = []
        for _ in range(2):
            if li < m and (ii >= k or wl[li] <= iw[ii]):
                kids.append((wl[li], li))
                li += 1
            else:
                kids.append((iw[ii], m + ii))
                ii += 1
        iw[k] = kids[0][0] + kids[1][0]
        parent[kids[0][1]] = parent[kids[1][1]] = m + k
    depth = [0] * (2 * m - 1)     # root = m + (m - 2), created last
    for node in range(2 * m - 3, -1, -1):
        depth[node] = depth[parent[node]] + 1
    return np.array(depth[:m], dtype=np.int64)


def _package_merge(w, limit):
    """Optimal lengths of words <= ``limit`` bits for sorted positive weights
    ``w`` (m >= 2, 2**limit >= m), Larmore & Hirschberg 1990.

    Level ``limit`` holds the leaves; each higher level merges the leaves with
    the packages (sums of consecutive pairs) of the level below, a leaf first
    on equal weight.  The first ``2m - 2`` items of the top level are chosen;
    the packages among the first ``k`` items of a level expand into the first
    ``2 * packages`` items of the level below, and a leaf's length is the
    number of levels at which it is chosen.  Since each merged list is sorted
    and the leaves keep their order, the chosen leaves of a level are a prefix.
    """
    m = w.size
    levels = []                   # per level: is_leaf flags of the merged list
    items = w.copy()
    levels.append(np.ones(m, dtype=bool))
    for _ in range(limit - 1):
        pk = items[0:items.size - 1:2] + items[1::2]
        merged = np.concatenate([w, pk])
        order = np.argsort(merged, kind="stable")   # stable: leaves before packages
        levels.append(order < m)
        items = merged[order]
    lengths = np.zeros(m, dtype=np.int64)
    k = 2 * m - 2
    for is_leaf in reversed(levels):   # from the top level (last built) down
        sel = is_leaf[:k]
        nleaf = int(sel.sum())
        lengths[:nleaf] += 1
        k = 2 * (k - nleaf)
    return lengths


def huffman_code_lengths(counts, *, max_length=None):
    """Optimal (or length-limited optimal) prefix-code lengths.

    Parameters
    ----------
    counts : ndarray of int, shape (k,)
        Occurrences of symbols ``0..k-1`` (>= 0, total < 2**62).  Exact int64
        arithmetic on the weights.
    max_length : int or None
        Longest allowed code word (1..64).  ``None``: unconstrained Huffman.

    Returns
    -------
    ndarray of uint8, shape (k,)
        0 for absent symbols; 1 for a lone present symbol.  Tie-breaking is
        described in the module docstring (leaves by ``(count, symbol)``, a
        leaf before an equal-weight internal node / package).

    Raises
    ------
    ParameterError
        ``max_length`` outside 1..64 or ``2**max_length`` below the number of
        present symbols; negative counts.
    """
    c = _check_counts(counts)
    if max_length is not None:
        if isinstance(max_length, bool) or not isinstance(max_length, (int, np.integer)) \
                or not 1 <= max_length <= _MAX_LEN:
            raise ParameterError("max_length must be an int in [1, 64], got %r" % (max_length,))
        max_length = int(max_length)
    out = np.zeros(c.size, dtype=np.uint8)
    present = np.flatnonzero(c)
    m = present.size
    if max_length is not None and m > (1 << max_length):
        raise ParameterError("max_length=%d cannot code %d distinct symbols" % (max_length, m))
    if m == 0:
        return out
    if m == 1:
        out[present] = 1
        return out
    order = present[np.lexsort((present, c[present]))]    # (count, symbol)
    w = c[order]
    ln = _huffman_lengths(w)
    if max_length is not None and int(ln.max()) > max_length:
        ln = _package_merge(w, max_length)
    if int(ln.max()) > 255:
        raise ParameterError("code lengths exceed 255 bits")
    out[order] = ln
    return out


def canonical_codes(lengths):
    """Canonical code words (RFC 1951 §3.2.2) of the given code lengths.

    Parameters
    ----------
    lengths : ndarray of uint8, shape (k,)
        0 = symbol absent; otherwise 1..64.  Not required to satisfy Kraft
        (an over-full set gives colliding words; validate first if needed).

    Returns
    -------
    ndarray of uint64, shape (k,)
        Word of each symbol (right-aligned, ``lengths[i]`` significant bits);
        0 for absent symbols.  Order: symbols sorted by ``(length, symbol)``.
    """
    if not isinstance(lengths, np.ndarray) or lengths.ndim != 1 or lengths.dtype.kind not in "iu":
        raise DTypeError("lengths must be a 1-D integer ndarray, got %s"
                         % (getattr(lengths, "dtype", type(lengths)),))
    ln = lengths.astype(np.int64)
    if ln.size and (int(ln.min()) < 0 or int(ln.max()) > _MAX_LEN):
        raise ParameterError("code lengths must be in [0, 64]")
    codes = np.zeros(ln.size, dtype=np.uint64)
    present = np.flatnonzero(ln)
    if present.size == 0:
        return codes
    first, _, _, perm = _canonical_tables(ln[present])
    sl = ln[present][perm]
    # word = first[l] + (index within its length class)
    cnt = np.bincount(sl, minlength=_MAX_LEN + 1)
    start = np.cumsum(cnt) - cnt
    within = np.arange(sl.size) - start[sl]
    codes[present[perm]] = first[sl] + within.astype(np.uint64)
    return codes


def _canonical_tables(ln):
    """For lengths ``ln`` (int64 >= 1, alphabet order): ``first[l]`` (uint64
    first word of length l), ``count[l]``, ``offset[l]`` (index in ``perm``)
    and ``perm`` (alphabet ranks sorted by (length, rank)); l = 0..64."""
    count = np.bincount(ln, minlength=_MAX_LEN + 1).astype(np.int64)
    offset = (np.cumsum(count) - count).astype(np.int64)
    first = np.zeros(_MAX_LEN + 1, dtype=np.uint64)
    code = 0
    for l in range(1, _MAX_LEN + 1):
        code = (code + int(count[l - 1])) << 1 if l > 1 else 0
        first[l] = code & 0xFFFFFFFFFFFFFFFF
    perm = np.argsort(ln, kind="stable")
    return first, count, offset, perm


def huffman_cost(counts, *, max_length=None):
    """Payload bits ``sum(counts * lengths)`` of the (length-limited) Huffman
    code of ``counts`` (exact Python int; see :func:`huffman_code_lengths`)."""
    ln = huffman_code_lengths(counts, max_length=max_length)
    return _cost(counts.astype(np.int64), ln)


def _cost(c, ln):
    """Exact sum(c * ln): int64 count totals per length (< 2**62), then Python ints."""
    return sum(int(l) * int(c[ln == l].sum()) for l in np.unique(ln) if l)


# ---------------------------------------------------------------- stream

def huffman_encode(symbols, *, max_length=None, _twin=False):
    """Canonical-Huffman code an integer array into a self-describing stream.

    Parameters
    ----------
    symbols : ndarray of int, shape (n,)
        Any of int8..int64 / uint8..uint64 (no cast; other dtypes rejected).
    max_length : int or None
        Length limit of the code words (package-merge), see
        :func:`huffman_code_lengths`.

    Returns
    -------
    bytes
        Layout in the module docstring.  The payload has exactly
        ``huffman_cost(counts, max_length=max_length)`` bits.
    """
    check_symbols(symbols, MAX_SYMBOLS)
    n = symbols.size
    if n == 0:
        return write_header(_MAGIC, _VERSION, symbols.dtype, 0, None, None, 0)
    alpha, counts, ranks = symbol_alphabet(symbols)
    ln = huffman_code_lengths(counts, max_length=max_length)
    codes = canonical_codes(ln)
    head = write_header(_MAGIC, _VERSION, symbols.dtype, n, alpha, ln.astype(np.uint64),
                        int(ln.max()).bit_length())
    total = _cost(counts, ln)
    out = np.zeros((total + 7) // 8, dtype=np.uint8)
    (_k.encode_twin if _twin else _k.encode_kernel)(ranks, codes, ln, out)
    return head + out.tobytes()


def _parse_header(data, max_symbols):
    """Validate the header (every word is at least one bit: n <= payload bits)
    and the code lengths (1..64, Kraft)."""
    limit = MAX_SYMBOLS if max_symbols is None else min(MAX_SYMBOLS, max_symbols)
    h = parse_header(data, magic=_MAGIC, version=_VERSION, what="Huffman", limit=limit,
                     vw_range=(1, 7), max_n=lambda nbytes: 8 * nbytes)
    if h["n"] == 0:
        return h
    ln = h["values"].astype(np.int64)
    if int(ln.min()) < 1 or int(ln.max()) > _MAX_LEN:
        raise DecodeError("code lengths must be in [1, 64]")
    cnt = np.bincount(ln, minlength=_MAX_LEN + 1)
    kraft = sum(int(cnt[l]) << (_MAX_LEN - l) for l in range(1, _MAX_LEN + 1))
    if kraft > (1 << _MAX_LEN):
        raise DecodeError("code lengths violate the Kraft inequality")
    h["ln"] = ln
    return h


def huffman_decode(data, *, max_symbols=None, _twin=False):
    """Decode a stream of :func:`huffman_encode`; same values and dtype.

    Parameters
    ----------
    data : bytes
    max_symbols : int or None
        Reject streams declaring more symbols (also capped by
        :data:`MAX_SYMBOLS`).

    Returns
    -------
    ndarray, shape (n,), of the encoded dtype

    Raises
    ------
    DecodeError
        Bad magic/version/dtype, declared sizes that do not fit ``len(data)``
        or ``max_symbols``, lengths violating Kraft, truncated payload, invalid
        code words, trailing bytes or non-zero padding.  Work is bounded by
        ``O(len(data) * 64)`` and memory by ``8 * n <= 64 * len(data)`` bytes.
    """
    h = _parse_header(data, max_symbols)
    dtype = h["dtype"]
    if h["n"] == 0:
        return np.zeros(0, dtype=dtype)
    ranks, end = _decode_ranks(h, _twin)
    data = h["data"]
    if (end + 7) // 8 != len(data):
        raise DecodeError("%d trailing bytes after the payload" % (len(data) - (end + 7) // 8))
    if end % 8 and data[-1] & ((1 << (8 - end % 8)) - 1):
        raise DecodeError("non-zero padding bits after the payload")
    return h["alpha"][ranks]


def _decode_ranks(h, twin):
    ln = h["ln"]
    first, count, offset, perm = _canonical_tables(ln)
    maxlen = int(ln.max())
    buf = np.frombuffer(h["data"], dtype=np.uint8)
    out = np.empty(h["n"], dtype=np.int64)
    start = 8 * h["hbytes"]
    if twin:
        status, end = _k.decode_twin(buf, start, h["n"], first, count, offset, maxlen, perm, out)
    else:
        t = min(_k.TABLE_BITS, maxlen)
        tsym, tlen = _table(ln, first, count, offset, perm, t)
        status, end = _k.decode_kernel(buf, start, h["n"], tsym, tlen, t, first, count,
                                       offset, maxlen, perm, out)
    if status == 1:
        raise DecodeError("Huffman payload truncated")
    if status == 2:
        raise DecodeError("invalid Huffman code word in the payload")
    return out, int(end)


def _table(ln, first, count, offset, perm, t):
    """First-level table over ``t`` bits: rank and length of every word of at
    most ``t`` bits, replicated over its ``2**(t - l)`` completions."""
    tsym = np.zeros(1 << t, dtype=np.int64)
    tlen = np.zeros(1 << t, dtype=np.uint8)
    for l in range(1, t + 1):
        c = int(count[l])
        if c == 0:
            continue
        f = int(first[l])
        lo, hi = f << (t - l), (f + c) << (t - l)
        tsym[lo:hi] = np.repeat(perm[offset[l]:offset[l] + c], 1 << (t - l))
        tlen[lo:hi] = l
    return tsym, tlen


def huffman_sizes(data):
    """``(header_bits, payload_bits)`` of a stream (after full validation).

    ``header_bits = 8 * header bytes`` (the header's own zero padding
    included); ``payload_bits`` = exact code-word bits; the final padding is
    ``8 * len(data) - header_bits - payload_bits`` (0..7 bits).
    """
    h = _parse_header(data, None)
    if h["n"] == 0:
        return 8 * h["hbytes"], 0
    _, end = _decode_ranks(h, False)
    return 8 * h["hbytes"], end - 8 * h["hbytes"]
