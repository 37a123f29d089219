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
  zeta_1 equals gamma.

Container (``encode_ints``): ``b"RU"`` magic, 1 byte code id
(0 gamma, 1 delta, 2 rice, 3 zeta), 1 byte parameter k, 8 bytes count
(uint64 big-endian), then the codewords MSB-first, zero-padded to a byte.
Values are Python ints; decoding returns an int64 array. Every codeword is
at least one bit, so a count above the payload bit count is rejected before
anything is allocated.
"""
import numpy as np

from .._errors import DecodeError, ParameterError, DTypeError
from ._bitio import BitReader, BitWriter

__all__ = ["code_length", "encode_ints", "decode_ints", "choose_gap_code", "CODES"]

CODES = ("gamma", "delta", "rice", "zeta")
_MAX_RICE_Q = 1 << 20  # longest unary run the encoder accepts (memory bound)
_MAX_BITS = 64  # values are < 2**63 (int64); bounds unary runs on decode


def _minbin_write(w, y, z):
    s = (z - 1).bit_length()
    short = (1 << s) - z
    if y < short:
        w.write(y, s - 1)
    else:
        w.write(y + short, s)


def _minbin_read(r, z):
    if z == 1:  # a single value takes no bits
        return 0
    s = (z - 1).bit_length()
    short = (1 << s) - z
    v = r.read(s - 1) if s else 0
    if v < short:
        return v
    return ((v << 1) | r.read(1)) - short


def _minbin_len(y, z):
    s = (z - 1).bit_length()
    return s - 1 if y < (1 << s) - z else s


def _check_code(code, k):
    if code not in CODES:
        raise ParameterError("code must be one of %s, got %r" % (CODES, code))
    if code == "rice" and not (0 <= k <= 62):
        raise ParameterError("rice parameter k must be in [0, 62], got %r" % (k,))
    if code == "zeta" and not (1 <= k <= 32):
        raise ParameterError("zeta parameter k must be in [1, 32], got %r" % (k,))


def code_length(x, code, k=0):
    """Length in bits of the codeword of the non-negative int ``x`` (exact, Python int)."""
    n = x + 1
    L = n.bit_length()
    if code == "gamma":
        return 2 * L - 1
    if code == "delta":
        return 2 * L.bit_length() - 1 + L - 1
    if code == "rice":
        return (x >> k) + 1 + k
    h = (L - 1) // k
    return h + 1 + _minbin_len(n - (1 << (h * k)), (1 << ((h + 1) * k)) - (1 << (h * k)))


def _write(w, x, code, k):
    n = x + 1
    L = n.bit_length()
    if code == "gamma":
        w.write(0, L - 1)
        w.write(n, L)
    elif code == "delta":
        _write(w, L - 1, "gamma", 0)
        w.write(n, L - 1)
    elif code == "rice":
        w.write_unary(x >> k)
        w.write(x, k)
    else:
        h = (L - 1) // k
        lo = 1 << (h * k)
        w.write_unary(h)
        _minbin_write(w, n - lo, (1 << ((h + 1) * k)) - lo)


def _read(r, code, k):
    if code == "gamma":
        z = r.read_unary(_MAX_BITS)
        n = (1 << z) | r.read(z)
    elif code == "delta":
        L = _read(r, "gamma", 0) + 1
        if L > _MAX_BITS:
            raise DecodeError("delta code declares a %d-bit value" % L)
        n = (1 << (L - 1)) | r.read(L - 1)
    elif code == "rice":
        q = r.read_unary(_MAX_RICE_Q)
        return (q << k) | r.read(k)
    else:
        h = r.read_unary(_MAX_BITS // k + 1)
        lo = 1 << (h * k)
        n = lo + _minbin_read(r, (1 << ((h + 1) * k)) - lo)
    return n - 1


def _as_values(values):
    if not isinstance(values, np.ndarray) or values.dtype.kind not in "iu" or values.ndim != 1:
        raise DTypeError("values must be a 1-D integer ndarray, got %r"
                         % (getattr(values, "dtype", type(values)),))
    if values.size and int(values.min()) < 0:
        raise ParameterError("values must be non-negative")
    return [int(v) for v in values]


def encode_ints(values, *, code, k=0):
    """Encode non-negative integers with a universal code (container in module doc).

    Parameters
    ----------
    values : ndarray of int, shape (n,)
        Non-negative; exact integer arithmetic (Python ints), no rounding.
    code : {"gamma", "delta", "rice", "zeta"}
    k : int
        Rice shift (0..62) or zeta shrinking factor (1..32); ignored otherwise.

    Returns
    -------
    bytes
    """
    _check_code(code, k)
    vals = _as_values(values)
    if code == "rice" and vals and (max(vals) >> k) > _MAX_RICE_Q:
        raise ParameterError("rice quotient x >> k exceeds %d; choose a larger k" % _MAX_RICE_Q)
    w = BitWriter()
    for x in vals:
        _write(w, x, code, k)
    head = b"RU" + bytes([CODES.index(code), k if code in ("rice", "zeta") else 0])
    return head + len(vals).to_bytes(8, "big") + w.getvalue()


def decode_ints(data):
    """Decode :func:`encode_ints` output to an int64 array.

    Raises :class:`refcomp.DecodeError` on a bad magic, unknown code, a count
    larger than the payload bit count (checked before allocation), a truncated
    stream, a value not representable in int64, or non-zero padding.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise DTypeError("data must be bytes, got %s" % type(data).__name__)
    data = bytes(data)
    if len(data) < 12 or data[:2] != b"RU":
        raise DecodeError("not a universal-code stream (bad magic or short header)")
    if data[2] >= len(CODES):
        raise DecodeError("unknown code id %d" % data[2])
    code, k = CODES[data[2]], data[3]
    try:
        _check_code(code, k)
    except ParameterError as e:
        raise DecodeError(str(e)) from None
    count = int.from_bytes(data[4:12], "big")
    payload = data[12:]
    if count > 8 * len(payload):
        raise DecodeError("declared count %d exceeds payload bits %d" % (count, 8 * len(payload)))
    r = BitReader(payload)
    out = np.empty(count, dtype=np.int64)
    for i in range(count):
        x = _read(r, code, k)
        if x >= 1 << 63:
            raise DecodeError("decoded value does not fit int64")
        out[i] = x
    if r.total - r.pos >= 8 or r.read(r.total - r.pos) != 0:
        raise DecodeError("trailing garbage after the last codeword")
    return out


def choose_gap_code(gaps):
    """Pick the cheapest code for ``gaps`` (exact total bit count).

    Candidates in fixed order: gamma, delta, rice k=0..62, zeta k=1..8; ties
    go to the earliest candidate. Returns ``(code, k, total_bits)``.
    """
    vals = _as_values(gaps)
    cands = [("gamma", 0), ("delta", 0)] + [("rice", k) for k in range(63)] \
        + [("zeta", k) for k in range(1, 9)]
    best = None
    for code, k in cands:
        bits = sum(code_length(x, code, k) for x in vals)
        if best is None or bits < best[2]:
            best = (code, k, bits)
    return best
