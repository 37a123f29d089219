"""Shared header of the entropy-coded streams (Huffman ``RH``, rANS ``RA``).

Layout (big-endian integers)::

    bytes 0-1   magic
    byte 2      version
    byte 3      dtype code: 0 int8, 1 uint8, 2 int16, 3 uint16, 4 int32,
                5 uint32, 6 int64, 7 uint64
    bytes 4-11  n, number of symbols (uint64)
    bytes 12-15 m, number of distinct symbols (uint32); m == 0 iff n == 0,
                and then the stream ends here (16 bytes)
    next s      smallest symbol a_0 in the dtype (two's complement if signed),
                s = itemsize bytes
    next byte   gw: bit width of the alphabet gaps (0..64)
    next byte   vw: bit width of the per-symbol values (coder-specific)
    bit field   m - 1 gaps a_i - a_{i-1} - 1 (gw bits each), then m values
                (vw bits each, alphabet order), MSB-first, zero-padded to a byte

Parsing checks every declared size against ``len(data)`` before allocating,
and raises :class:`refcomp.DecodeError` only.
"""
import numpy as np

from .._errors import DecodeError, DTypeError, ParameterError

DTYPES = tuple(np.dtype(d) for d in ("int8", "uint8", "int16", "uint16", "int32", "uint32",
                                    "int64", "uint64"))
FIXED = 16


def check_symbols(symbols, max_symbols):
    if not isinstance(symbols, np.ndarray) or symbols.ndim != 1 or symbols.dtype not in DTYPES:
        raise DTypeError("symbols must be a 1-D integer ndarray (int8..uint64), got %s of shape %s"
                         % (getattr(symbols, "dtype", type(symbols)), getattr(symbols, "shape", "")))
    if symbols.size > max_symbols:
        raise ParameterError("at most %d symbols per stream, got %d" % (max_symbols, symbols.size))


def _to_ordered_u64(v):
    """Order-preserving map of an integer array to uint64 (offset binary for
    signed dtypes), so gaps are exact unsigned differences."""
    if v.dtype.kind == "i":
        return v.astype(np.int64).view(np.uint64) ^ np.uint64(1 << 63)
    return v.astype(np.uint64)


def _from_ordered_u64(u, dtype):
    if dtype.kind == "i":
        return (u ^ np.uint64(1 << 63)).view(np.int64).astype(dtype)
    return u.astype(dtype)


def symbol_alphabet(symbols):
    """(alphabet sorted ascending in the input dtype, counts int64, ranks int64)."""
    if symbols.dtype.itemsize <= 2:   # histogram: O(n), no sort
        lo = np.iinfo(symbols.dtype).min
        off = symbols.astype(np.int64) - lo if lo else symbols.astype(np.intp)
        hist = np.bincount(off, minlength=1)
        present = np.flatnonzero(hist)
        rank_of = np.zeros(hist.size, dtype=np.int64)
        rank_of[present] = np.arange(present.size)
        return (present + lo).astype(symbols.dtype), hist[present].astype(np.int64), rank_of[off]
    alpha, ranks, counts = np.unique(symbols, return_inverse=True, return_counts=True)
    return alpha, counts.astype(np.int64), ranks.reshape(-1).astype(np.int64)


def _pack_fields(values, width):
    """MSB-first bits of uint64 ``values`` at ``width`` bits each (uint8 0/1)."""
    if width == 0 or values.size == 0:
        return np.zeros(0, dtype=np.uint8)
    sh = np.arange(width - 1, -1, -1, dtype=np.uint64)
    return ((values[:, None] >> sh[None, :]) & np.uint64(1)).astype(np.uint8).ravel()


def _unpack_fields(bits, width, count):
    if width == 0:
        return np.zeros(count, dtype=np.uint64)
    b = bits[:width * count].reshape(count, width).astype(np.uint64)
    sh = np.arange(width - 1, -1, -1, dtype=np.uint64)
    return np.bitwise_or.reduce(b << sh[None, :], axis=1)


def write_header(magic, version, dtype, n, alpha, values, vw):
    """Header bytes (layout in the module docstring); ``values`` uint64 (m,)."""
    head = magic + bytes([version, DTYPES.index(dtype)]) + n.to_bytes(8, "big")
    if n == 0:
        return head + (0).to_bytes(4, "big")
    gaps = np.diff(_to_ordered_u64(alpha)) - np.uint64(1)
    gw = int(gaps.max()).bit_length() if gaps.size else 0
    bits = np.concatenate([_pack_fields(gaps, gw), _pack_fields(values, vw)])
    first = alpha[:1].astype(dtype.newbyteorder(">")).tobytes()
    return head + alpha.size.to_bytes(4, "big") + first + bytes([gw, vw]) \
        + np.packbits(bits).tobytes()


def parse_header(data, *, magic, version, what, limit, vw_range, max_n):
    """Validate a header.  ``limit``: largest n allowed; ``vw_range``: allowed
    (lo, hi) of vw; ``max_n(payload_bytes)``: largest n the payload can hold.
    Returns a dict: data (bytes), dtype, n, m, hbytes, and for n > 0 values
    (uint64, m), vw, alpha (dtype, m)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise DecodeError("data must be bytes, got %s" % type(data).__name__)
    data = bytes(data)
    if len(data) < FIXED or data[:2] != magic:
        raise DecodeError("not a %s stream (bad magic or %d-byte header)" % (what, len(data)))
    if data[2] != version:
        raise DecodeError("unsupported %s stream version %d" % (what, data[2]))
    if data[3] >= len(DTYPES):
        raise DecodeError("unknown dtype code %d" % data[3])
    dtype = DTYPES[data[3]]
    n = int.from_bytes(data[4:12], "big")
    m = int.from_bytes(data[12:16], "big")
    if n > limit:
        raise DecodeError("stream declares %d symbols, at most %d allowed" % (n, limit))
    if (n == 0) != (m == 0) or m > n:
        raise DecodeError("inconsistent symbol count %d and alphabet size %d" % (n, m))
    if n == 0:
        if len(data) != FIXED:
            raise DecodeError("empty stream followed by %d bytes" % (len(data) - FIXED))
        return dict(data=data, dtype=dtype, n=0, m=0, hbytes=FIXED)
    s = dtype.itemsize
    if len(data) < FIXED + s + 2:
        raise DecodeError("%s stream truncated in its header" % what)
    a0 = np.frombuffer(data, dtype=dtype.newbyteorder(">"), count=1, offset=FIXED)
    gw, vw = data[FIXED + s], data[FIXED + s + 1]
    if gw > 64 or not vw_range[0] <= vw <= vw_range[1]:
        raise DecodeError("bad field widths: gaps %d bits, values %d bits" % (gw, vw))
    fbits = (m - 1) * gw + m * vw
    hbytes = FIXED + s + 2 + (fbits + 7) // 8
    if hbytes > len(data) or n > max_n(len(data) - hbytes):
        raise DecodeError("stream of %d bytes cannot hold %d symbols over %d distinct values"
                          % (len(data), n, m))
    bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8, count=hbytes - FIXED - s - 2,
                                       offset=FIXED + s + 2))
    if bits[fbits:].any():
        raise DecodeError("non-zero padding in the header")
    gaps = _unpack_fields(bits, gw, m - 1)
    values = _unpack_fields(bits[(m - 1) * gw:], vw, m)
    u0 = int(_to_ordered_u64(a0.astype(dtype))[0])
    umax = int(_to_ordered_u64(np.array([np.iinfo(dtype).max], dtype=dtype))[0])
    if u0 + (m - 1) + int(gaps.astype(object).sum()) > umax:   # exact, Python ints
        raise DecodeError("alphabet exceeds the range of %s" % dtype)
    u = np.uint64(u0) + np.concatenate([np.zeros(1, np.uint64),
                                        np.cumsum(gaps + np.uint64(1), dtype=np.uint64)])
    return dict(data=data, dtype=dtype, n=n, m=m, hbytes=hbytes, values=values, vw=vw,
                alpha=_from_ordered_u64(u, dtype))
