"""MSB-first bit writer/reader on Python ints/bytes (pure Python, exact).

The reader never reads past the end of its buffer: every overrun raises
:class:`refcomp.DecodeError`, so decoding random bytes fails quickly.
"""
from .._errors import DecodeError


class BitWriter:
    """Append bits MSB-first; ``getvalue()`` pads the last byte with zeros."""

    def __init__(self):
        self._acc = 0
        self.nbits = 0

    def write(self, value, nbits):
        if nbits:
            self._acc = (self._acc << nbits) | (value & ((1 << nbits) - 1))
            self.nbits += nbits

    def write_unary(self, q):
        """``q`` zero bits then a one bit."""
        self.write(1, q + 1)

    def getvalue(self):
        pad = (-self.nbits) % 8
        return (self._acc << pad).to_bytes((self.nbits + pad) // 8, "big")


class BitReader:
    """Read bits MSB-first from ``data`` (bytes), bounded by its length."""

    def __init__(self, data):
        self._int = int.from_bytes(data, "big")
        self.total = 8 * len(data)
        self.pos = 0

    def read(self, nbits):
        if nbits == 0:
            return 0
        end = self.pos + nbits
        if end > self.total:
            raise DecodeError("bit stream truncated: need %d bits at offset %d of %d"
                              % (nbits, self.pos, self.total))
        self.pos = end
        return (self._int >> (self.total - end)) & ((1 << nbits) - 1)

    def read_unary(self, limit):
        """Count zero bits up to the next one bit; more than ``limit`` zeros -> DecodeError."""
        q = 0
        while self.read(1) == 0:
            q += 1
            if q > limit:
                raise DecodeError("unary run longer than %d bits" % limit)
        return q
