"""Universal integer codes for index gaps: Elias gamma/delta, Golomb-Rice, zeta_k.

All codes map a non-negative integer ``x`` (a gap) to a bit string, MSB-first.
Elias gamma/delta and zeta_k are defined on positive integers, so they code
``n = x + 1`` (the WebGraph convention for naturals). References: Elias, IEEE
Trans. IT 21(2), 1975 (gamma, delta); Golomb 1966 / Rice 1979 (Rice = Golomb
with m = 2**k); Boldi & Vigna, "Codes for the World Wide Web", Internet Math.
2(4), 2005, §3 (zeta_k, with the minimal binary code of Def. 3.1). The
pointer to WebGraph comes from seed 001.

Bit layouts (``n = x + 1``, ``L = n.bit_length()``):

- gamma: ``L-1`` zeros, then ``n`` in ``L`` bits (leading 1 included).
- delta: gamma code of ``L`` (as a positive integer), then the ``L-1`` low bits of ``n``.
- rice(k): ``q = x >> k`` zeros then a one, then the ``k`` low bits of ``x``.
- zeta(k): ``h`` = the unique integer with ``2**(h*k) <= n < 2**((h+1)*k)``;
  ``h`` zeros then a one, then ``y = n - 2**(h*k)`` in the minimal binary code
  on ``z = 2**((h+1)*k) - 2**(h*k)`` values: with ``s = (z-1).bit_length()``
  (= ceil(log2 z)), ``y < 2**s - z`` is written in ``s-1`` bits, otherwise
  ``y + 2**s - z`` in ``s`` bits.
  zeta_1 equals gamma.  (For ``k >= 2``: ``s = h*k + k`` and ``2**s - z =
  2**(h*k)``, so ``n < 2**(h*k+1)`` writes ``y`` in ``h*k+k-1`` bits and
  otherwise ``n`` itself in ``h*k+k`` bits.)

Container (``encode_ints``): ``b"RU"`` magic, 1 byte code id
(0 gamma, 1 delta, 2 rice, 3 zeta), 1 byte parameter k (0 for gamma and
delta), 8 bytes count (uint64 big-endian), then the codewords MSB-first
(the first at bit 7 of byte 12), zero-padded to a byte.  Values are
``0 <= x < 2**63``; decoding returns an int64 array.  Every codeword is at
least one bit, so a count above the payload bit count is rejected before
anything is allocated.

Implementation: Numba kernels over a uint8 buffer with an explicit bit
position (:mod:`refcomp.coding._universal_kernels`), O(bits) time in both
directions; ``_twin=True`` runs the plain-Python reference transcription
(also linear), which writes identical bytes and decodes identical values.
"""
import numpy as np

from .._errors import DecodeError, DTypeError, ParameterError
from . import _universal_kernels as _k

__all__ = ["code_length", "encode_ints", "decode_ints", "choose_gap_code", "universal_sizes",
           "CODES", "MAX_SYMBOLS", "HEADER_BYTES"]

CODES = ("gamma", "delta", "rice", "zeta")
#: Largest count a stream may declare (as the Huffman and rANS streams).
MAX_SYMBOLS = 1 << 40
#: Bytes of the container header (magic, code id, k, count).
HEADER_BYTES = 12
_MAGIC = b"RU"
_MAX_RICE_Q = _k.MAX_RICE_Q  # longest unary run the encoder writes and the decoder reads
_ZETA_KS = range(1, 9)       # zeta candidates of choose_gap_code


def _check_code(code, k):
    if code not in CODES:
        raise ParameterError("code must be one of %s, got %r" % (CODES, code))
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise ParameterError("k must be an int, got %r" % (k,))
    if code == "rice" and not (0 <= k <= 62):
        raise ParameterError("rice parameter k must be in [0, 62], got %r" % (k,))
    if code == "zeta" and not (1 <= k <= 32):
        raise ParameterError("zeta parameter k must be in [1, 32], got %r" % (k,))


def code_length(x, code, k=0):
    """Length in bits of the codeword of the non-negative int ``x``.

    Parameters
    ----------
    x : int
        ``x >= 0`` (Python int, exact).
    code : {"gamma", "delta", "rice", "zeta"}
    k : int
        Rice shift or zeta shrinking factor.

    Returns
    -------
    int
    """
    _check_code(code, k)
    n = x + 1
    L = n.bit_length()
    if code == "gamma":
        return 2 * L - 1
    if code == "delta":
        return 2 * L.bit_length() - 1 + L - 1
    if code == "rice":
        return (x >> k) + 1 + k
    h = (L - 1) // k
    lo = 1 << (h * k)
    z = (1 << ((h + 1) * k)) - lo
    s = (z - 1).bit_length()
    return h + 1 + (s - 1 if n - lo < (1 << s) - z else s)


def _as_u64(values, name):
    """Checked 1-D uint64 copy of non-negative integers below 2**63."""
    if not isinstance(values, np.ndarray) or values.dtype.kind not in "iu" or values.ndim != 1:
        raise DTypeError("%s must be a 1-D integer ndarray, got %r"
                         % (name, getattr(values, "dtype", type(values)),))
    if values.size and int(values.min()) < 0:
        raise ParameterError("%s must be non-negative" % name)
    if values.size and int(values.max()) >= 1 << 63:
        raise ParameterError("%s must be below 2**63 (decoded as int64)" % name)
    return values.astype(np.uint64)


def encode_ints(values, *, code, k=0, _twin=False):
    """Encode non-negative integers with a universal code (container in module doc).

    Parameters
    ----------
    values : ndarray of int (int8..int64, uint8..uint64), shape (n,)
        ``0 <= x < 2**63``; exact integer arithmetic, no rounding.
    code : {"gamma", "delta", "rice", "zeta"}
    k : int
        Rice shift (0..62) or zeta shrinking factor (1..32); stored as 0 and
        ignored for gamma and delta.

    Returns
    -------
    bytes
        12 header bytes, then ``ceil(total / 8)`` payload bytes where
        ``total = sum(code_length(x, code, k))``.  Time O(n + total).

    Raises
    ------
    DTypeError
        ``values`` not a 1-D integer ndarray.
    ParameterError
        Unknown code or k out of range; a negative value or one >= 2**63;
        a Rice quotient ``x >> k`` above 2**20 (choose a larger k); more
        than :data:`MAX_SYMBOLS` values.
    """
    _check_code(code, k)
    vals = _as_u64(values, "values")
    if vals.size > MAX_SYMBOLS:
        raise ParameterError("at most %d values per stream, got %d" % (MAX_SYMBOLS, vals.size))
    k = int(k) if code in ("rice", "zeta") else 0
    if code == "rice" and vals.size and int(vals.max()) >> k > _MAX_RICE_Q:
        raise ParameterError("rice quotient x >> k exceeds %d; choose a larger k" % _MAX_RICE_Q)
    cid = CODES.index(code)
    nbits = (_k.bits_twin if _twin else _k.bits_kernel)(vals, cid, k)
    out = np.zeros((int(nbits) + 7) // 8, dtype=np.uint8)
    (_k.encode_twin if _twin else _k.encode_kernel)(vals, cid, k, out)
    head = _MAGIC + bytes([cid, k])
    return head + vals.size.to_bytes(8, "big") + out.tobytes()


_STATUS = {_k.TRUNCATED: "bit stream truncated",
           _k.TOO_LARGE: "decoded value does not fit int64",
           _k.LONG_RUN: "unary run longer than %d bits" % _MAX_RICE_Q}


def _parse(data, max_symbols):
    """Validate the header; returns (payload uint8 array, code id, k, count)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise DecodeError("data must be bytes, got %s" % type(data).__name__)
    data = bytes(data)
    if len(data) < HEADER_BYTES or data[:2] != _MAGIC:
        raise DecodeError("not a universal-code stream (bad magic or short header)")
    if data[2] >= len(CODES):
        raise DecodeError("unknown code id %d" % data[2])
    code, k = CODES[data[2]], data[3]
    try:
        _check_code(code, k)
    except ParameterError as e:
        raise DecodeError(str(e)) from None
    if code in ("gamma", "delta") and k != 0:
        raise DecodeError("%s stream with a non-zero parameter byte %d" % (code, k))
    count = int.from_bytes(data[4:12], "big")
    limit = MAX_SYMBOLS if max_symbols is None else min(MAX_SYMBOLS, int(max_symbols))
    if count > limit:
        raise DecodeError("stream declares %d values, at most %d allowed" % (count, limit))
    payload = np.frombuffer(data, dtype=np.uint8, offset=HEADER_BYTES)
    if count > 8 * payload.size:
        raise DecodeError("declared count %d exceeds payload bits %d" % (count, 8 * payload.size))
    return payload, data[2], k, count


def _decode(data, max_symbols, twin):
    payload, cid, k, count = _parse(data, max_symbols)
    out = np.empty(count, dtype=np.int64)
    status, end, i = (_k.decode_twin if twin else _k.decode_kernel)(payload, count, cid, k, out)
    if status != _k.OK:
        raise DecodeError("%s (%s code, value %d of %d)" % (_STATUS[status], CODES[cid], i,
                                                             count))
    end = int(end)
    total = 8 * payload.size
    if total - end >= 8:
        raise DecodeError("%d trailing bytes after the last codeword" % ((total - end) // 8))
    if end < total and int(payload[-1]) & ((1 << (total - end)) - 1):
        raise DecodeError("non-zero padding bits after the last codeword")
    return out, end


def decode_ints(data, *, max_symbols=None, _twin=False):
    """Decode :func:`encode_ints` output to an int64 array.

    Parameters
    ----------
    data : bytes, bytearray or memoryview
        Anything else raises :class:`refcomp.DecodeError`, as in every refcomp
        stream decoder (:func:`huffman_decode`, :func:`rans_decode`).
    max_symbols : int or None
        Reject streams declaring more values (also capped by
        :data:`MAX_SYMBOLS`); checked before allocating.

    Returns
    -------
    ndarray of int64, shape (count,)

    Raises
    ------
    DecodeError
        Not bytes, bad magic, unknown code or parameter (a non-zero parameter
        byte for gamma/delta included), a count above ``max_symbols`` or the
        payload bit count (checked before allocation), a truncated stream, a
        value not representable in int64, a Rice unary run above 2**20 bits,
        trailing bytes or non-zero padding.  Time O(len(data)); memory
        ``8 * count <= 64 * len(data)`` bytes.
    """
    return _decode(data, max_symbols, _twin)[0]


def universal_sizes(data):
    """``(header_bits, payload_bits)`` of an :func:`encode_ints` stream (after
    full validation, as :func:`decode_ints`): ``header_bits = 96``,
    ``payload_bits`` the exact codeword bits; the final padding (0..7 bits)
    is ``8 * len(data) - header_bits - payload_bits``."""
    _, end = _decode(data, None, False)
    return 8 * HEADER_BYTES, end


def _bit_lengths(x):
    """``(x + 1).bit_length()`` of uint64 ``x < 2**63`` (int64, exact)."""
    v = x + np.uint64(1)
    L = np.zeros(v.shape, dtype=np.int64)
    for s in (32, 16, 8, 4, 2, 1):
        t = v >> np.uint64(s)
        big = t != 0
        v = np.where(big, t, v)
        L += big * s
    return L + (v != 0)


def _exact_sum(a):
    """Exact Python-int sum of uint64 values below 2**63."""
    total = 0
    for i in range(0, a.size, 1 << 30):
        c = a[i:i + (1 << 30)]
        total += (int(np.sum(c >> np.uint64(32), dtype=np.uint64)) << 32) \
            + int(np.sum(c & np.uint64(0xFFFFFFFF), dtype=np.uint64))
    return total


def choose_gap_code(gaps, *, max_length=None):
    """Pick the cheapest universal code for ``gaps`` (exact total bit count).

    Parameters
    ----------
    gaps : ndarray of int, shape (n,)
        Non-negative, below 2**63.
    max_length : int or None
        If given, skip the candidates whose longest codeword on ``gaps``
        (``code_length(max(gaps), ...)``: every code's length is
        non-decreasing in x) exceeds ``max_length`` bits.  The Deep
        Compression container passes 64, so a stream never needs more than 8
        bytes per entry.

    Returns
    -------
    (code, k, total_bits) : (str, int, int)
        ``total_bits = sum(code_length(x, code, k))`` (Python int), the
        payload of ``encode_ints(gaps, code=code, k=k)``.  Candidates in
        fixed order: gamma, delta, rice k=0..62, zeta k=1..8; ties go to the
        earliest candidate.  Rice parameters whose largest quotient
        ``max(gaps) >> k`` exceeds 2**20 are skipped (:func:`encode_ints`
        refuses them).  An empty ``gaps`` gives ``("gamma", 0, 0)``.

    Raises
    ------
    DTypeError, ParameterError
        Bad ``gaps`` (as :func:`encode_ints`); no candidate within
        ``max_length``.

    Notes
    -----
    Gamma, delta and zeta lengths depend only on ``L = (x + 1).bit_length()``,
    so their totals come from a histogram of L (65 bins); Rice totals are
    ``sum(x >> k) + n * (k + 1)`` with exact integer sums, for k up to the
    largest L (a larger k only adds bits).  Time O(n * max L).
    """
    x = _as_u64(gaps, "gaps")
    if max_length is not None and (isinstance(max_length, bool)
                                   or not isinstance(max_length, (int, np.integer))):
        raise ParameterError("max_length must be an int or None, got %r" % (max_length,))
    n = int(x.size)
    hist = np.bincount(_bit_lengths(x), minlength=65).tolist() if n else [0] * 65
    present = [(L, c) for L, c in enumerate(hist) if c]
    xmax = int(x.max()) if n else 0

    def by_length(length_of):
        return sum(c * length_of(L) for L, c in present)

    def zeta_len(L, k):
        h = (L - 1) // k
        hk = h * k
        return 2 * L - 1 if k == 1 else h + 1 + hk + k - (1 if L == hk + 1 else 0)

    cands = [("gamma", 0, by_length(lambda L: 2 * L - 1)),
             ("delta", 0, by_length(lambda L: 2 * L.bit_length() - 1 + L - 1))]
    for k in range(0, min(62, max(L for L, _ in present) if present else 0) + 1):
        if xmax >> k <= _MAX_RICE_Q:
            cands.append(("rice", k, _exact_sum(x >> np.uint64(k)) + n * (k + 1)))
    cands += [("zeta", k, by_length(lambda L, k=k: zeta_len(L, k))) for k in _ZETA_KS]
    if max_length is not None:
        cands = [c for c in cands if code_length(xmax, c[0], c[1]) <= max_length]
        if not cands:
            raise ParameterError("no universal code has codewords of at most %d bits for a "
                                 "largest gap of %d" % (max_length, xmax))
    best = cands[0]
    for c in cands[1:]:
        if c[2] < best[2]:
            best = c
    return best
