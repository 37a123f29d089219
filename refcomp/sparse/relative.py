"""Deep Compression relative sparse indices with filler zeros.

Han, Mao & Dally (ICLR 2016, §2 and Fig. 2; FACTS.md §7.1) store the
position of each non-zero weight as its *difference* to the previous one, in
a fixed number of bits (8 for conv layers, 5 for fully connected layers; 4
in the AlexNet table), and "when we need an index difference larger than the
bound, we add a filler zero": an extra stored entry whose value is zero.

The paper is ambiguous (3 bits hold at most 7, yet the text says "exceeds
8"; Fig. 2 stores differences 1..8, i.e. ``code = diff - 1``; its first
difference is counted from 0, which would leave position 0 unreachable).
Both readings are offered by name; in each, positions are the flat C-order
indices of the weight, the origin is ``-1`` (the first entry's difference is
its position + 1, so ``code`` = number of zeros skipped before the entry),
and a filler occupies a position inside the zero gap and carries a value
(zero) in the value stream, as in the paper.

``variant="reserved"`` (default)
    Codes ``0 .. 2^b - 2`` are real entries with ``diff = code + 1``
    (differences 1 .. 2^b - 1); the largest code ``2^b - 1`` is a filler
    that advances by ``2^b - 1``.  A gap ``d`` becomes ``(d - 1) // (2^b - 1)``
    fillers and one real entry.  The index stream alone tells fillers from
    non-zeros, so decoding needs no value and the value stream may even omit
    fillers' values.  Chosen as default for this reason (the oracle must
    decode positions exactly from the index stream); it costs at most one
    extra filler per gap of exactly a multiple of ``2^b - 1`` compared with
    "fig2".
``variant="fig2"``
    The paper's Figure 2: ``code = diff - 1`` for every entry (differences
    1 .. 2^b), fillers advance by ``2^b`` and are only inserted when a gap
    exceeds ``2^b``.  A filler then has the same code as a non-zero at
    distance exactly ``2^b``: the index stream gives every entry's position
    but cannot mark fillers; :func:`decode_relative` returns all entry
    positions with ``is_filler`` all False (the fillers' stored values, zero,
    keep the dense reconstruction exact).  ``encode_relative`` knows the
    fillers and reports them in ``RelativeIndex.is_filler``.
"""

import numpy as np

from .._errors import DecodeError, DTypeError, ShapeError
from .._validate import check_choice, check_int, describe

__all__ = ["RelativeIndex", "encode_relative", "decode_relative", "default_index_bits",
           "VARIANTS", "DEFAULT_VARIANT"]

VARIANTS = ("reserved", "fig2")
DEFAULT_VARIANT = "reserved"
#: Paper defaults (Han et al. 2016 §2): 8 bits for conv, 5 for fully connected.
_DEFAULT_BITS = {"conv": 8, "conv2d": 8, "dense": 5, "fc": 5}
_MAX_BITS = 16


def default_index_bits(kind):
    """Index width of the paper (§2): 8 for ``"conv"``/``"conv2d"``, 5 for
    ``"dense"``/``"fc"`` (Table 4 uses 4 for all AlexNet layers: pass it
    explicitly)."""
    check_choice("kind", kind, _DEFAULT_BITS)
    return _DEFAULT_BITS[kind]


def _geometry(index_bits, variant):
    """(filler code, filler advance) of a variant."""
    top = (1 << index_bits) - 1
    return top, (top if variant == "reserved" else top + 1)


class RelativeIndex:
    """Relative index stream of one weight.

    Attributes
    ----------
    diffs : ndarray uint8 (index_bits <= 8) or uint16, (n_entries,)
        The stored codes, one per entry (filler or real).
    is_filler : ndarray bool, (n_entries,)
        True for filler entries (their value in the value stream is zero).
    index_bits : int
    variant : str
    size : int
        Number of positions of the flattened weight.
    """

    __slots__ = ("diffs", "is_filler", "index_bits", "variant", "size")

    def __init__(self, diffs, is_filler, index_bits, variant, size):
        self.diffs = diffs
        self.is_filler = is_filler
        self.index_bits = index_bits
        self.variant = variant
        self.size = size

    @property
    def n_entries(self):
        return int(self.diffs.shape[0])

    @property
    def n_fillers(self):
        return int(np.count_nonzero(self.is_filler))

    def positions(self):
        """Flat positions (int64, increasing) of the real entries."""
        return _entry_positions(self.diffs, self.variant, self.index_bits)[~self.is_filler]

    def stored_bits(self):
        """``n_entries * index_bits`` (the paper's index stream, no header)."""
        return self.n_entries * self.index_bits

    def __eq__(self, other):
        if not isinstance(other, RelativeIndex):
            return NotImplemented
        return (self.index_bits == other.index_bits and self.variant == other.variant
                and self.size == other.size and np.array_equal(self.diffs, other.diffs)
                and np.array_equal(self.is_filler, other.is_filler))

    __hash__ = None

    def __repr__(self):
        return (f"RelativeIndex(variant={self.variant!r}, index_bits={self.index_bits}, "
                f"size={self.size}, entries={self.n_entries}, fillers={self.n_fillers})")


def encode_relative(mask, *, index_bits=None, variant=DEFAULT_VARIANT, kind="dense"):
    """Relative indices of the True positions of ``mask`` (Han et al. 2016 §2).

    Parameters
    ----------
    mask : ndarray of bool, 1-D
        Flattened (C order) keep-mask of a weight.
    index_bits : int in [1, 16], optional
        Code width b; default :func:`default_index_bits` of ``kind``.
    variant : {"reserved", "fig2"}
        See the module docstring; default "reserved" (fillers detectable
        from the index stream alone).
    kind : {"dense", "fc", "conv", "conv2d"}
        Only used to choose the default ``index_bits`` (5 dense, 8 conv).

    Returns
    -------
    RelativeIndex
        With ``d`` the difference of a non-zero to the previous one (origin
        -1) and ``A`` the filler advance (2^b - 1 "reserved", 2^b "fig2"):
        ``f = (d - 1) // A`` fillers with code ``2^b - 1``, then the entry
        with code ``d - f*A - 1``.  Integer arithmetic only; exact.
    """
    if not isinstance(mask, np.ndarray) or mask.dtype != np.bool_:
        raise DTypeError(f"mask must be a numpy.ndarray of dtype bool, got {describe(mask)}")
    if mask.ndim != 1:
        raise ShapeError(f"mask must be 1-D (flattened weight positions), got {describe(mask)}")
    check_choice("variant", variant, VARIANTS)
    bits = default_index_bits(kind) if index_bits is None else \
        check_int("index_bits", index_bits, lo=1, hi=_MAX_BITS)
    filler_code, advance = _geometry(bits, variant)
    pos = np.flatnonzero(mask).astype(np.int64)
    d = np.diff(pos, prepend=np.int64(-1))
    fillers = (d - 1) // advance
    counts = fillers + 1
    n_entries = int(counts.sum())
    dtype = np.uint8 if bits <= 8 else np.uint16
    diffs = np.full(n_entries, filler_code, dtype=dtype)
    is_filler = np.ones(n_entries, dtype=bool)
    real = np.cumsum(counts) - 1
    diffs[real] = (d - fillers * advance - 1).astype(dtype)
    is_filler[real] = False
    return RelativeIndex(diffs, is_filler, bits, variant, int(mask.shape[0]))


def _entry_positions(codes, variant, bits):
    steps = codes.astype(np.int64) + 1
    if variant == "reserved":
        filler_code, advance = _geometry(bits, variant)
        steps[codes == filler_code] = advance
    return np.cumsum(steps) - 1


def decode_relative(diffs, *, index_bits, variant, size):
    """Decode a relative index stream exactly (inverse of :func:`encode_relative`).

    Parameters
    ----------
    diffs : ndarray of unsigned integers (uint8/uint16/uint32/uint64), 1-D
    index_bits : int in [1, 16]
    variant : {"reserved", "fig2"}
    size : int >= 0
        Number of positions of the flattened weight.

    Returns
    -------
    positions : ndarray int64
        Increasing flat positions of the real entries ("reserved"), or of
        every entry, fillers included ("fig2", whose fillers the index
        stream cannot identify: module docstring).
    is_filler : ndarray bool, one per entry (all False for "fig2").

    Raises
    ------
    DecodeError
        A code >= 2^index_bits, a position >= size, or (for "reserved") a
        stream ending with a filler, which no encoder emits.
    """
    if not isinstance(diffs, np.ndarray) or diffs.dtype.kind != "u":
        raise DTypeError(f"diffs must be a numpy.ndarray of unsigned integers, got "
                         f"{describe(diffs)}")
    if diffs.ndim != 1:
        raise ShapeError(f"diffs must be 1-D, got {describe(diffs)}")
    bits = check_int("index_bits", index_bits, lo=1, hi=_MAX_BITS)
    check_choice("variant", variant, VARIANTS)
    size = check_int("size", size, lo=0)
    filler_code, _ = _geometry(bits, variant)
    if diffs.size and int(diffs.max()) > filler_code:
        raise DecodeError(f"relative index code {int(diffs.max())} does not fit in "
                          f"index_bits={bits} bits")
    if diffs.size > size:
        raise DecodeError(f"{diffs.size} diffs entries cannot fit in size={size} positions")
    pos = _entry_positions(diffs, variant, bits)
    if pos.size and pos[-1] >= size:
        raise DecodeError(f"relative indices (diffs) reach position {int(pos[-1])}, beyond "
                          f"the weight's size={size} positions")
    if variant == "fig2":
        return pos, np.zeros(pos.shape, dtype=bool)
    is_filler = diffs == filler_code
    if is_filler.size and is_filler[-1]:
        raise DecodeError("relative index stream (diffs) ends with a filler (no encoder "
                          "emits one)")
    return pos[~is_filler], is_filler
