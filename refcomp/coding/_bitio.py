"""MSB-first bit writer/reader on bytes (pure Python, exact, linear time).

This is the plain-Python path of the universal codes (the twin of the Numba
kernels in :mod:`refcomp.coding._universal_kernels`).  Bit order: the first
bit written is bit 7 (the most significant) of byte 0; ``getvalue()`` pads
the last byte with zero bits.

Both classes do O(1) amortised work per bit: the writer keeps fewer than 8
pending bits in a small accumulator and appends whole bytes to a
``bytearray``; the reader slices only the bytes a read covers.  (An earlier
version shifted one growing Python int per call, which made encoding and
decoding quadratic in the stream length.)

The reader never reads past the end of its buffer: every overrun raises
:class:`refcomp.DecodeError`, so decoding random bytes fails quickly.
"""
from .._errors import DecodeError


class BitWriter:
    """Append bits MSB-first; ``getvalue()`` pads the last byte with zeros.

    Attributes
    ----------
    nbits : int
        Bits written so far (padding excluded).
    """

    def __init__(self):
        self._buf = bytearray()
        self._acc = 0      # the pending bits (fewer than 8 between calls)
        self._nacc = 0
        self.nbits = 0

    def write(self, value, nbits):
        """Append the low ``nbits`` bits of the non-negative int ``value``, MSB first."""
        if nbits <= 0:
            return
        acc = (self._acc << nbits) | (value & ((1 << nbits) - 1))
        nacc = self._nacc + nbits
        self.nbits += nbits
        rem = nacc & 7
        if nacc >= 8:
            self._buf += (acc >> rem).to_bytes(nacc >> 3, "big")
            acc &= (1 << rem) - 1
        self._acc, self._nacc = acc, rem

    def write_unary(self, q):
        """``q`` zero bits then a one bit."""
        self.write(1, q + 1)

    def getvalue(self):
        """The bytes written, the last one zero-padded (``ceil(nbits / 8)`` bytes)."""
        if self._nacc:
            return bytes(self._buf) + bytes([(self._acc << (8 - self._nacc)) & 0xFF])
        return bytes(self._buf)


class BitReader:
    """Read bits MSB-first from ``data`` (bytes), bounded by its length.

    Attributes
    ----------
    total : int
        ``8 * len(data)``.
    pos : int
        Bits consumed so far.
    """

    def __init__(self, data):
        self._data = bytes(data)
        self.total = 8 * len(self._data)
        self.pos = 0

    def read(self, nbits):
        """The next ``nbits`` bits as a non-negative int (DecodeError past the end)."""
        if nbits <= 0:
            return 0
        pos = self.pos
        end = pos + nbits
        if end > self.total:
            raise DecodeError("bit stream truncated: need %d bits at offset %d of %d"
                              % (nbits, pos, self.total))
        b1 = (end + 7) >> 3
        chunk = int.from_bytes(self._data[pos >> 3:b1], "big")
        self.pos = end
        return (chunk >> (8 * b1 - end)) & ((1 << nbits) - 1)

    def read_unary(self, limit):
        """Count zero bits up to the next one bit (consumed); more than ``limit``
        zeros -> DecodeError, as is running off the end."""
        data, pos, total = self._data, self.pos, self.total
        q = 0
        while True:
            if pos >= total:
                raise DecodeError("bit stream truncated inside a unary run at offset %d" % pos)
            off = pos & 7
            byte = data[pos >> 3] & (0xFF >> off)
            if byte == 0:                 # the rest of this byte is zeros
                q += 8 - off
                pos += 8 - off
            else:
                lead = 8 - byte.bit_length()    # index of the first one bit in the byte
                q += lead - off
                pos += lead - off + 1
                if q > limit:
                    break
                self.pos = pos
                return q
            if q > limit:
                break
        raise DecodeError("unary run longer than %d bits" % limit)
