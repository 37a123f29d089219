"""Universal-code kernels (Numba) over a uint8 bit buffer, and plain-Python twins.

Bit layouts of the codes: :mod:`refcomp.coding.universal`.  Bit order:
MSB-first, the first code word starts at bit 7 of byte 0 of the payload,
an explicit bit position ``pos`` (int64) indexes the buffer (bit ``pos`` is
bit ``7 - pos % 8`` of byte ``pos // 8``).  The kernels write into a zeroed
uint8 buffer, so runs of zeros only advance ``pos``; every read is bounded by
``8 * len(data)``.  Work is O(bits) for both directions (no growing
integers).

Values: uint64 ``x < 2**63`` (``n = x + 1 <= 2**63`` fits uint64).  Code ids:
0 gamma, 1 delta, 2 rice, 3 zeta.

Decoding status codes (returned, never raised): ``0`` ok, ``1`` truncated
(a code word runs past the buffer), ``2`` a code word for a value that does
not fit int64 (``x >= 2**63``, including unary prefixes that already imply
it), ``3`` a Rice unary run longer than :data:`MAX_RICE_Q`.  Every accepted
stream decodes to the same values with the kernel and the twin; on a
rejected stream both return a non-zero status (the twins are the reference
transcription of the layouts with Python ints and may report another
non-zero status for the same stream).

The twins (:func:`encode_twin`, :func:`decode_twin`) take the same
arguments and return the same values as the kernels; tests assert identical
bytes and outputs.
"""
import numba
import numpy as np

from .._errors import DecodeError
from ._bitio import BitReader, BitWriter

GAMMA, DELTA, RICE, ZETA = 0, 1, 2, 3
OK, TRUNCATED, TOO_LARGE, LONG_RUN = 0, 1, 2, 3
#: Longest Rice unary run (quotient ``x >> k``) written or read.
MAX_RICE_Q = 1 << 20

_U0 = np.uint64(0)
_U1 = np.uint64(1)
_TOP = np.uint64(1 << 63)


# ------------------------------------------------------------------ Numba kernels

@numba.njit(cache=True)
def _bitlen(v):
    """Bit length (0..64) of a uint64."""
    L = 0
    for s in (32, 16, 8, 4, 2, 1):
        t = v >> np.uint64(s)
        if t != _U0:
            v = t
            L += s
    if v != _U0:
        L += 1
    return L


@numba.njit(cache=True)
def _put(out, pos, v, nbits, write):
    """Write the low ``nbits`` (0..64) bits of uint64 ``v`` MSB-first at bit
    ``pos`` of the zeroed ``out`` (only if ``write``); returns the new pos."""
    if not write:
        return pos + nbits
    while nbits > 0:
        room = 8 - (pos & 7)
        take = room if room < nbits else nbits
        chunk = (v >> np.uint64(nbits - take)) & np.uint64((1 << take) - 1)
        out[pos >> 3] |= np.uint8(chunk << np.uint64(room - take))
        pos += take
        nbits -= take
    return pos


@numba.njit(cache=True)
def _put_wide(out, pos, v, width, write):
    """Write uint64 ``v`` in ``width`` bits (may exceed 64: leading zeros)."""
    if width > 64:
        pos += width - 64
        width = 64
    return _put(out, pos, v, width, write)


@numba.njit(cache=True)
def _emit(out, pos, x, code, k, write):
    """Code word of uint64 ``x`` (< 2**63); returns the position after it."""
    n = x + _U1
    L = _bitlen(n)
    if code == GAMMA:                       # L-1 zeros, n in L bits
        return _put(out, pos + (L - 1), n, L, write)
    if code == DELTA:                       # gamma(L), low L-1 bits of n
        lb = _bitlen(np.uint64(L))
        pos = _put(out, pos + (lb - 1), np.uint64(L), lb, write)
        return _put(out, pos, n, L - 1, write)
    if code == RICE:                        # q zeros, a one, k low bits of x
        pos += np.int64(x >> np.uint64(k))
        pos = _put(out, pos, _U1, 1, write)
        return _put(out, pos, x, k, write)
    h = (L - 1) // k                        # zeta_k: h zeros, a one, minimal binary
    pos = _put(out, pos + h, _U1, 1, write)
    if k == 1:                              # z = 2**h: y = n - 2**h in h bits
        return _put(out, pos, n, h, write)
    hk = h * k                              # k >= 2: s = hk + k, short = 2**hk
    lo = _U1 << np.uint64(hk)
    if n - lo < lo:
        return _put_wide(out, pos, n - lo, hk + k - 1, write)
    return _put_wide(out, pos, n, hk + k, write)   # y + short == n


@numba.njit(cache=True)
def bits_kernel(vals, code, k):
    """Total code-word bits (int64) of uint64 ``vals`` (each < 2**63; Rice
    quotients at most :data:`MAX_RICE_Q`, checked by the caller)."""
    dummy = np.zeros(0, dtype=np.uint8)
    pos = 0
    for i in range(vals.shape[0]):
        pos = _emit(dummy, pos, vals[i], code, k, False)
    return pos


@numba.njit(cache=True)
def encode_kernel(vals, code, k, out):
    """Write the code words of ``vals`` (uint64) into the zeroed uint8 ``out``
    (``ceil(bits_kernel(...) / 8)`` bytes); returns the bits written."""
    pos = 0
    for i in range(vals.shape[0]):
        pos = _emit(out, pos, vals[i], code, k, True)
    return pos


@numba.njit(cache=True)
def _get(data, pos, nbits):
    """``nbits`` (0..64) bits at ``pos`` as uint64 (caller checked the bound)."""
    v = _U0
    while nbits > 0:
        room = 8 - (pos & 7)
        take = room if room < nbits else nbits
        chunk = (np.uint64(data[pos >> 3]) >> np.uint64(room - take)) \
            & np.uint64((1 << take) - 1)
        v = (v << np.uint64(take)) | chunk
        pos += take
        nbits -= take
    return v


@numba.njit(cache=True)
def _zeros(data, pos, total, limit):
    """Count zero bits before the next one bit (consumed).  Returns ``(q, pos,
    status)``: status 1 past the end, 2 more than ``limit`` zeros."""
    q = 0
    while True:
        if pos >= total:
            return q, pos, TRUNCATED
        off = pos & 7
        byte = np.int64(data[pos >> 3]) & (0xFF >> off)
        if byte == 0:
            q += 8 - off
            pos += 8 - off
            if q > limit:
                return q, pos, TOO_LARGE
            continue
        lead = 0                            # index of the first one bit in the byte
        while (byte << lead) & 0x80 == 0:
            lead += 1
        q += lead - off
        pos += lead - off + 1
        if q > limit:
            return q, pos, TOO_LARGE
        return q, pos, OK


@numba.njit(cache=True)
def decode_kernel(data, count, code, k, out):
    """Decode ``count`` values of code ``code`` (parameter ``k``) from the
    uint8 ``data`` into the int64 ``out``.  Returns ``(status, end_bit, i)``:
    status in the module docstring, ``i`` the index of the failing value."""
    total = np.int64(data.shape[0]) * 8
    pos = np.int64(0)
    zmax = 63 // k if code == ZETA else 0   # zeta: h*k >= 64 means n >= 2**64
    for i in range(count):
        if code == RICE:
            q, pos, st = _zeros(data, pos, total, MAX_RICE_Q)
            if st == TOO_LARGE:
                return LONG_RUN, pos, i
            if st != OK:
                return st, pos, i
            if pos + k > total:
                return TRUNCATED, pos, i
            r = _get(data, pos, k)
            pos += k
            if (q >> (63 - k)) != 0:        # (q << k) | r >= 2**63
                return TOO_LARGE, pos, i
            out[i] = np.int64((np.uint64(q) << np.uint64(k)) | r)
            continue
        if code == GAMMA:
            z, pos, st = _zeros(data, pos, total, 63)
            if st != OK:
                return st, pos, i
            if pos + z > total:
                return TRUNCATED, pos, i
            n = (_U1 << np.uint64(z)) | _get(data, pos, z)
            pos += z
        elif code == DELTA:
            z, pos, st = _zeros(data, pos, total, 6)    # L <= 64 has at most 7 bits
            if st != OK:
                return st, pos, i
            if pos + z > total:
                return TRUNCATED, pos, i
            L = np.int64((_U1 << np.uint64(z)) | _get(data, pos, z))
            pos += z
            if L > 64:
                return TOO_LARGE, pos, i
            if pos + L - 1 > total:
                return TRUNCATED, pos, i
            n = (_U1 << np.uint64(L - 1)) | _get(data, pos, L - 1)
            pos += L - 1
        else:
            h, pos, st = _zeros(data, pos, total, zmax)
            if st != OK:
                return st, pos, i
            if k == 1:
                if pos + h > total:
                    return TRUNCATED, pos, i
                n = (_U1 << np.uint64(h)) | _get(data, pos, h)
                pos += h
            else:
                hk = h * k
                w = hk + k - 1
                if pos + w > total:
                    return TRUNCATED, pos, i
                if w > 64:                  # leading bits beyond 64 must be zero
                    if _get(data, pos, w - 64) != _U0:
                        return TOO_LARGE, pos, i
                    pos += w - 64
                    w = 64
                v = _get(data, pos, w)
                pos += w
                lo = _U1 << np.uint64(hk)
                if v < lo:
                    n = lo + v
                else:
                    if pos + 1 > total:
                        return TRUNCATED, pos, i
                    if v >= _TOP:
                        return TOO_LARGE, pos, i
                    n = (v << _U1) | _get(data, pos, 1)
                    pos += 1
        if n > _TOP:
            return TOO_LARGE, pos, i
        out[i] = np.int64(n - _U1)
    return OK, pos, count


# ------------------------------------------------------------------ plain-Python twins

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


def write_twin(w, x, code, k):
    """Reference transcription: append the code word of the int ``x`` to the
    :class:`BitWriter` ``w`` (Python ints, the layouts of the module doc of
    :mod:`refcomp.coding.universal`)."""
    n = x + 1
    L = n.bit_length()
    if code == GAMMA:
        w.write(0, L - 1)
        w.write(n, L)
    elif code == DELTA:
        write_twin(w, L - 1, GAMMA, 0)
        w.write(n, L - 1)
    elif code == RICE:
        w.write_unary(x >> k)
        w.write(x, k)
    else:
        h = (L - 1) // k
        lo = 1 << (h * k)
        w.write_unary(h)
        _minbin_write(w, n - lo, (1 << ((h + 1) * k)) - lo)


def read_twin(r, code, k):
    """Reference transcription: read one code word from the :class:`BitReader`
    ``r``; returns the int ``x`` (possibly >= 2**63, checked by the caller).
    Unary prefixes are bounded (64 zeros for gamma, ``64 // k + 1`` for zeta,
    :data:`MAX_RICE_Q` for Rice); a delta length above 64 raises."""
    if code == GAMMA:
        z = r.read_unary(64)
        n = (1 << z) | r.read(z)
    elif code == DELTA:
        L = read_twin(r, GAMMA, 0) + 1
        if L > 64:
            raise DecodeError("delta code declares a %d-bit value" % L)
        n = (1 << (L - 1)) | r.read(L - 1)
    elif code == RICE:
        q = r.read_unary(MAX_RICE_Q)
        return (q << k) | r.read(k)
    else:
        h = r.read_unary(64 // k + 1)
        lo = 1 << (h * k)
        n = lo + _minbin_read(r, (1 << ((h + 1) * k)) - lo)
    return n - 1


def bits_twin(vals, code, k):
    """Twin of :func:`bits_kernel` (writes the words and counts the bits)."""
    w = BitWriter()
    for x in vals.tolist():
        write_twin(w, int(x), code, k)
    return w.nbits


def encode_twin(vals, code, k, out):
    """Twin of :func:`encode_kernel` (reference transcription, Python ints)."""
    w = BitWriter()
    for x in vals.tolist():
        write_twin(w, int(x), code, k)
    data = w.getvalue()
    out[:len(data)] = np.frombuffer(data, dtype=np.uint8)
    return w.nbits


def decode_twin(data, count, code, k, out):
    """Twin of :func:`decode_kernel` (reference transcription, Python ints)."""
    r = BitReader(data.tobytes())
    for i in range(count):
        try:
            x = read_twin(r, code, k)
        except DecodeError as exc:
            status = LONG_RUN if code == RICE and "unary run" in str(exc) else \
                TRUNCATED if "truncated" in str(exc) else TOO_LARGE
            return status, r.pos, i
        if x >= 1 << 63:
            return TOO_LARGE, r.pos, i
        out[i] = x
    return OK, r.pos, count
