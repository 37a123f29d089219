"""The Deep Compression layer container: only the compressed streams are stored.

A :class:`DeepCompressed` weight holds what Han, Mao & Dally (ICLR 2016,
§2-§4; FACTS.md §7.1) ship for one pruned, weight-shared layer:

* the **codebook**: the k shared values (k-means centroids) at the weight's
  precision;
* the **value stream**: one symbol per stored entry, the codebook index of
  the entry's shared value;
* the **index stream**: the relative indices of
  :func:`refcomp.sparse.encode_relative` (one code of ``index_bits`` bits per
  entry, filler entries included);
* the shape and dtype of the dense weight.

The value stream is canonical-Huffman coded (``coding="huffman"``, the
paper's third stage, :func:`refcomp.coding.huffman_encode`) or bit-packed at
a fixed width (``coding="fixed"``, MSB first, :mod:`refcomp._bitpack`).  The
index stream uses ``index_coding``: the same two choices (by default the
same as ``coding``), or ``"universal"``: the relative-index codes (the gaps,
fillers included) written with the cheapest universal code of the layer,
chosen by :func:`refcomp.coding.choose_gap_code` among Elias gamma/delta,
Rice k=0..62 and zeta_k k=1..8 (codewords of at most 64 bits), as an
:func:`refcomp.coding.encode_ints` stream whose 12-byte header records the
code id and its parameter (bytes 2 and 3, see
:mod:`refcomp.coding.universal`); :attr:`DeepCompressed.index_code` reads
them back.  ``index_coding="webgraph"`` replaces the relative indices
altogether: the index stream is the Boldi-Vigna coding of the kept
positions of the (shape[0], rest) matrix view (a 1-D weight is one row;
:mod:`refcomp.coding.webgraph`, parameters recorded in its header), with no
filler entries (so ``n_entries`` = kept entries, variant "reserved" only).
Nothing else is stored but the counts and a checksum (below):
:meth:`DeepCompressed.dequantize` rebuilds the dense
weight from the streams, bit-identical to ``codebook[code]`` at the kept
positions and +0.0 elsewhere.

Fillers and the value stream
    With ``variant="reserved"`` (default of :mod:`refcomp.sparse.relative`)
    fillers are recognisable from the index stream alone, so the value stream
    holds one symbol per *real* entry only (fillers carry no value: a saving
    over the paper, which stores a zero value for each filler).  With
    ``variant="fig2"`` the index stream cannot tell a filler from an entry at
    distance exactly ``2**index_bits``, so the value stream holds one symbol
    per entry and fillers use the extra symbol ``k`` (one past the codebook),
    which decodes to exact +0.0, as the paper's "filler zero".

Every container carries a CRC-32 (``zlib.crc32``, the ISO-HDLC polynomial) of
its codebook bytes, value stream and index stream, in that order; a
mismatch raises :class:`refcomp.DecodeError`, so a flipped bit in a stream
whose symbols would all still be valid is caught too.  Every container is
validated when it is built or read: the streams are
decoded once and must be consistent (declared counts, code ranges,
positions inside the weight); a corrupt stream raises
:class:`refcomp.DecodeError` (inconsistent attributes :class:`refcomp.FormatError`),
never garbage.  Declared sizes are checked before anything is allocated.
The decoded weight is cached (read-only) for repeated forward passes.
"""

import copy
import math
import zlib

import numpy as np

from .._bitpack import pack_codes, packed_nbytes, unpack_codes
from .._errors import DecodeError, DTypeError, FormatError, ParameterError, ShapeError
from .._validate import check_choice, check_int, describe
from ..weights import CompressedWeight, register_encoding
from ..weights._h5util import parse_attrs, shape_attr, write_dataset
from ..sparse.relative import VARIANTS, decode_relative, encode_relative

__all__ = ["DeepCompressed", "CODINGS", "INDEX_CODINGS", "ENCODING"]

#: HDF5 encoding name of :class:`DeepCompressed`.
ENCODING = "deep_compressed"
#: Value-stream codings.
CODINGS = ("huffman", "fixed")
#: Index-stream codings.
INDEX_CODINGS = ("huffman", "fixed", "universal", "webgraph")
_MAX_K = 1 << 16
_MAX_ELEMENTS = 1 << 31
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def _huffman():
    from ..coding import huffman_decode, huffman_encode, huffman_sizes
    return huffman_encode, huffman_decode, huffman_sizes


def _universal():
    from ..coding import choose_gap_code, decode_ints, encode_ints, universal_sizes
    return choose_gap_code, encode_ints, decode_ints, universal_sizes


def _webgraph():
    from ..coding import webgraph
    return webgraph


def _matrix_shape(shape):
    """(rows, cols) view of a weight for the WebGraph index coding."""
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return 1, shape[0]
    return shape[0], math.prod(shape[1:])


def _symbol_width(n_symbols):
    """Fixed code width of an alphabet of ``n_symbols`` (at least 1 bit)."""
    return max(1, (n_symbols - 1).bit_length())


def _encode_stream(symbols, n_symbols, coding):
    """uint8 stream of the symbols (uint16 array, values < n_symbols)."""
    if symbols.size == 0:
        return np.zeros(0, dtype=np.uint8)
    if coding == "fixed":
        return pack_codes(symbols, _symbol_width(n_symbols))
    if coding == "universal":
        choose, encode_ints, _, _ = _universal()
        code, k, _ = choose(symbols, max_length=64)
        return np.frombuffer(encode_ints(symbols, code=code, k=k), dtype=np.uint8).copy()
    encode, _, _ = _huffman()
    return np.frombuffer(encode(symbols), dtype=np.uint8).copy()


def _decode_stream(stream, count, n_symbols, coding, what, bound=""):
    """``count`` symbols (int64) of a stream, each checked < n_symbols; a DecodeError
    names the stream and the coding read for it (the attribute that chose it)."""
    try:
        return _decode_stream_checked(stream, count, n_symbols, coding, what, bound)
    except DecodeError as exc:
        attr = "index_coding" if what == "index" else "coding"
        msg = str(exc)
        if attr not in msg:
            msg += f" ({what} stream read as {coding!r}, attribute {attr!r})"
        raise DecodeError(msg) from None


def _decode_stream_checked(stream, count, n_symbols, coding, what, bound):
    if count == 0:
        if stream.size:
            raise DecodeError(f"{what} stream holds {stream.size} bytes for 0 symbols")
        return np.zeros(0, dtype=np.int64)
    if coding == "fixed":
        width = _symbol_width(n_symbols)
        if stream.size != packed_nbytes(count, width):
            raise DecodeError(f"{what} stream holds {stream.size} bytes, "
                              f"{packed_nbytes(count, width)} expected for {count} codes of "
                              f"{width} bits")
        sym = unpack_codes(stream, width, count, name=f"{what} stream")
    else:
        if coding == "universal":
            decode = _universal()[2]
        else:
            decode = _huffman()[1]
        sym = decode(stream.tobytes(), max_symbols=count)
        if not isinstance(sym, np.ndarray) or sym.dtype.kind not in "iu" or sym.ndim != 1:
            raise DecodeError(f"{what} stream does not decode to integer symbols")
        if sym.size != count:
            raise DecodeError(f"{what} stream decodes to {sym.size} symbols, {count} declared")
    sym = sym.astype(np.int64)
    if sym.size and (int(sym.min()) < 0 or int(sym.max()) >= n_symbols):
        raise DecodeError(f"{what} stream holds a symbol outside [0, {n_symbols})"
                          + (f" ({bound})" if bound else ""))
    return sym


def _stream_sizes(stream, count, n_symbols, coding):
    """(payload_bits, header_bits) of a stream; header includes byte padding,
    so the two add up to ``8 * stream.size``."""
    total = 8 * int(stream.size)
    if coding == "webgraph" and stream.size:
        # every row costs bits (its degree) even without entries
        _, payload = _webgraph().webgraph_sizes(stream.tobytes())
        return payload, total - payload
    if count == 0:
        return 0, total
    if coding == "fixed":
        payload = count * _symbol_width(n_symbols)
    else:
        sizes = _universal()[3] if coding == "universal" else _huffman()[2]
        _, payload = sizes(stream.tobytes())
        payload = int(payload)
    return payload, total - payload


class DeepCompressed(CompressedWeight):
    """One pruned, weight-shared, entropy-coded weight (Han et al. 2016).

    Build it with :meth:`encode` (or :func:`refcomp.compress.deep_compress`);
    the constructor takes the stored fields, as read from a file, and
    validates them by decoding.

    Attributes
    ----------
    shape : tuple of int
        Shape of the dense weight.
    dtype : numpy.dtype, float32 or float64
    codebook : ndarray (k,), ``dtype``
        Shared values; value symbol ``j < k`` decodes to ``codebook[j]``.
    index_bits : int in [1, 16]
    variant : {"reserved", "fig2"}
        Relative-index variant (:mod:`refcomp.sparse.relative`).
    coding : {"huffman", "fixed"}
        Coding of the value stream.
    index_coding : {"huffman", "fixed", "universal"}
        Coding of the index stream (the constructor's default ``None`` means
        ``coding``, as in files written before this field existed).
    n_entries : int
        Entries of the index stream (fillers included).
    n_values : int
        Symbols of the value stream (real entries for "reserved", all
        entries for "fig2").
    values_stream, index_stream : ndarray of uint8
        The coded streams, exactly as written to the file.
    """

    __slots__ = ("shape", "dtype", "codebook", "index_bits", "variant", "coding",
                 "index_coding", "n_entries", "n_values", "values_stream", "index_stream",
                 "crc32", "_decoded")
    encoding = ENCODING

    def __init__(self, *, shape, dtype, codebook, index_bits, variant, coding, n_entries,
                 n_values, values_stream, index_stream, crc32=None, index_coding=None):
        try:
            self.shape = tuple(int(s) for s in shape)
            self.dtype = np.dtype(dtype)
        except (TypeError, ValueError) as exc:
            raise FormatError(f"deep_compressed: bad shape or dtype ({exc})") from None
        if self.dtype not in _FLOATS:
            raise FormatError(f"deep_compressed: dtype must be float32 or float64, got "
                              f"{self.dtype}")
        if any(s < 0 for s in self.shape):
            raise FormatError(f"deep_compressed: invalid shape {self.shape}")
        size = math.prod(self.shape)
        if size > _MAX_ELEMENTS:
            raise FormatError(f"deep_compressed: declares {size} elements, more than "
                              f"{_MAX_ELEMENTS}")
        if not isinstance(codebook, np.ndarray) or codebook.ndim != 1 \
                or codebook.dtype != self.dtype or codebook.size > _MAX_K:
            raise FormatError(f"deep_compressed: codebook must be a 1-D {self.dtype} array "
                              f"of at most {_MAX_K} values, got {describe(codebook)}")
        for name, s in (("values_stream", values_stream), ("index_stream", index_stream)):
            if not isinstance(s, np.ndarray) or s.dtype != np.uint8 or s.ndim != 1:
                raise FormatError(f"deep_compressed: {name} must be 1-D uint8, got "
                                  f"{describe(s)}")
        try:
            self.index_bits = check_int("index_bits", index_bits, lo=1, hi=16)
            self.variant = check_choice("variant", variant, VARIANTS)
            self.coding = check_choice("coding", coding, CODINGS)
            self.index_coding = check_choice(
                "index_coding", self.coding if index_coding is None else index_coding,
                INDEX_CODINGS)
            self.n_entries = check_int(f"n_entries (at most the {size} elements of shape "
                                       f"{self.shape})", n_entries, lo=0, hi=size)
            self.n_values = check_int(f"n_values (at most n_entries = {self.n_entries})",
                                      n_values, lo=0, hi=self.n_entries)
        except ParameterError as exc:
            raise FormatError(f"deep_compressed: {exc}") from None
        if self.variant == "fig2" and self.n_values != self.n_entries:
            raise FormatError("deep_compressed: variant 'fig2' stores one value per entry "
                              f"({self.n_entries}), got n_values={self.n_values}")
        self.codebook = codebook
        self.values_stream = values_stream
        self.index_stream = index_stream
        crc = _crc(codebook, values_stream, index_stream)
        if crc32 is not None and int(crc32) != crc:
            raise DecodeError(f"deep_compressed: CRC-32 mismatch (attribute 'crc32' "
                              f"{int(crc32):#010x}, computed {crc:#010x} over 'codebook', "
                              "'values' and 'index'): corrupt codebook or stream")
        self.crc32 = crc
        for a in (codebook, values_stream, index_stream):
            a.flags.writeable = False
        self._decoded = None
        self._decode()

    # -- construction -------------------------------------------------------------
    @classmethod
    def encode(cls, mask, codes, codebook, *, index_bits, variant="reserved",
               huffman=True, index_coding=None, webgraph_params=None):
        """Encode a pruned, shared weight.

        Parameters
        ----------
        mask : ndarray of bool, the weight's shape
            Kept positions.
        codes : ndarray of integers, (mask.sum(),)
            Codebook index of each kept entry, in C order of the positions.
        codebook : ndarray (k,), float32 or float64 (the weight's dtype)
        index_bits : int in [1, 16]
        variant : {"reserved", "fig2"}
        huffman : bool
            True: canonical Huffman on the value stream (and on the index
            stream unless ``index_coding`` says otherwise); False: fixed width
            (``ceil(log2 k)`` bits per value, ``index_bits`` per index; one
            more value symbol for fig2 fillers).
        index_coding : {"huffman", "fixed", "universal"} or None
            Coding of the index stream; None: the same as the value stream.
            "universal": the cheapest universal code of this weight's index
            codes (:func:`refcomp.coding.choose_gap_code` with codewords of at
            most 64 bits), recorded in the stream header.  "webgraph": the
            Boldi-Vigna coding of the mask's (shape[0], rest) rows
            (:func:`refcomp.coding.webgraph.webgraph_encode_mask`, variant
            "reserved" only; ``index_bits`` is then recorded but unused).
        webgraph_params : dict, optional
            ``window``, ``min_interval``, ``zeta_k``, ``origin`` of the
            WebGraph coding (default BVGraph's 7, 4, 3, "zero").

        Returns
        -------
        DeepCompressed whose ``dequantize()`` equals ``codebook[codes]`` at
        the kept positions (bit for bit) and +0.0 elsewhere.
        """
        if not isinstance(mask, np.ndarray) or mask.dtype != np.bool_:
            raise DTypeError(f"mask must be a numpy.ndarray of dtype bool, got {describe(mask)}")
        if not isinstance(codebook, np.ndarray) or codebook.ndim != 1 \
                or codebook.dtype not in _FLOATS:
            raise DTypeError(f"codebook must be a 1-D float32/float64 array, got "
                             f"{describe(codebook)}")
        n_kept = int(np.count_nonzero(mask))
        if not isinstance(codes, np.ndarray) or codes.dtype.kind not in "iu" \
                or codes.shape != (n_kept,):
            raise ShapeError(f"codes must be integers of shape ({n_kept},) (one per kept "
                             f"entry), got {describe(codes)}")
        k = codebook.size
        if k > _MAX_K or (n_kept and (int(codes.min()) < 0 or int(codes.max()) >= k)):
            raise ParameterError(f"codes must lie in [0, {k}) with k <= {_MAX_K}")
        check_choice("variant", variant, VARIANTS)
        coding = "huffman" if huffman else "fixed"
        index_coding = check_choice("index_coding",
                                    coding if index_coding is None else index_coding,
                                    INDEX_CODINGS)
        if index_coding == "webgraph":
            if variant != "reserved":
                raise ParameterError("index_coding='webgraph' stores no filler entries: "
                                     "use variant='reserved'")
            check_int("index_bits", index_bits, lo=1, hi=16)
            wg = _webgraph()
            stream = wg.webgraph_encode_mask(mask.reshape(_matrix_shape(mask.shape)),
                                             **(webgraph_params or {}))
            return cls(shape=mask.shape, dtype=codebook.dtype, codebook=codebook.copy(),
                       index_bits=index_bits, variant=variant, coding=coding,
                       index_coding=index_coding, n_entries=n_kept, n_values=n_kept,
                       values_stream=_encode_stream(codes.astype(np.uint16), k, coding),
                       index_stream=np.frombuffer(stream, dtype=np.uint8).copy())
        if webgraph_params:
            raise ParameterError("webgraph_params applies to index_coding='webgraph' only")
        rel = encode_relative(mask.reshape(-1), index_bits=index_bits, variant=variant)
        sym = codes.astype(np.uint16)
        if variant == "fig2":
            full = np.full(rel.n_entries, k, dtype=np.uint16)
            full[~rel.is_filler] = sym
            sym, n_symbols = full, k + 1
        else:
            n_symbols = k
        return cls(shape=mask.shape, dtype=codebook.dtype, codebook=codebook.copy(),
                   index_bits=rel.index_bits, variant=variant, coding=coding,
                   index_coding=index_coding,
                   n_entries=rel.n_entries, n_values=int(sym.size),
                   values_stream=_encode_stream(sym, n_symbols, coding),
                   index_stream=_encode_stream(rel.diffs.astype(np.uint16),
                                               1 << rel.index_bits, index_coding))

    # -- decoding -----------------------------------------------------------------
    @property
    def k(self):
        return int(self.codebook.size)

    @property
    def size(self):
        return math.prod(self.shape)

    @property
    def index_code(self):
        """``(code, k)`` of a universal index stream (e.g. ``("rice", 3)``; k is
        0 for gamma and delta), read from the stream header; None for the
        Huffman and fixed codings or an empty stream."""
        if self.index_coding != "universal" or self.index_stream.size == 0:
            return None
        from ..coding.universal import CODES
        code = CODES[int(self.index_stream[2])]
        return code, int(self.index_stream[3])

    @property
    def index_coding_label(self):
        """Short name of the index coding: "huffman", "fixed", or the universal
        code ("gamma", "delta", "rice(k=3)", "zeta(k=2)"; "universal" when the
        stream is empty)."""
        if self.index_coding == "webgraph":
            if self.index_stream.size == 0:
                return "webgraph"
            p = _webgraph().webgraph_params(self.index_stream.tobytes())
            return f"webgraph(W={p['window']},L={p['min_interval']},k={p['zeta_k']})"
        ic = self.index_code
        if ic is None:
            return self.index_coding
        return ic[0] if ic[0] in ("gamma", "delta") else f"{ic[0]}(k={ic[1]})"

    def _n_value_symbols(self):
        return self.k + (1 if self.variant == "fig2" else 0)

    def streams(self):
        """Decoded streams ``(value_symbols, index_codes)``, both int64 1-D (for the
        WebGraph index coding, the kept positions' flat C-order indices)."""
        if self.index_coding == "webgraph":
            pos = self._webgraph_positions()
            val = _decode_stream(self.values_stream, self.n_values, self._n_value_symbols(),
                                 self.coding, "value", f"codebook of {self.k}")
            return val, pos
        idx = _decode_stream(self.index_stream, self.n_entries, 1 << self.index_bits,
                             self.index_coding, "index", f"index_bits = {self.index_bits}")
        val = _decode_stream(self.values_stream, self.n_values, self._n_value_symbols(),
                             self.coding, "value", f"codebook of {self.k}")
        return val, idx

    def _webgraph_positions(self):
        """Flat positions of the WebGraph index stream (DecodeError if inconsistent)."""
        rows, cols = _matrix_shape(self.shape)
        if self.index_stream.size == 0 and self.n_entries == 0:
            return np.zeros(0, dtype=np.int64)
        wg = _webgraph()
        data = self.index_stream.tobytes()
        p = wg.webgraph_params(data)
        if (p["rows"], p["cols"], p["nnz"]) != (rows, cols, self.n_entries):
            raise DecodeError(f"deep_compressed: WebGraph index stream holds a {p['rows']} x "
                              f"{p['cols']} pattern with {p['nnz']} entries, expected "
                              f"{rows} x {cols} with {self.n_entries}")
        indptr, indices, _ = wg.webgraph_decode(data, max_nnz=self.n_entries)
        return np.repeat(np.arange(rows, dtype=np.int64), np.diff(indptr)) * cols + indices

    def _decode(self):
        if self.index_coding == "webgraph":
            if self.variant != "reserved" or self.n_values != self.n_entries:
                raise FormatError("deep_compressed: the WebGraph index coding needs variant "
                                  f"'reserved' and one value per entry (variant "
                                  f"{self.variant!r}, n_values {self.n_values}, n_entries "
                                  f"{self.n_entries})")
            val, pos = self.streams()
            out = np.zeros(self.size, dtype=self.dtype)
            out[pos] = self.codebook[val]
            out = out.reshape(self.shape)
            out.flags.writeable = False
            self._decoded = out
            return
        val, idx = self.streams()
        try:
            pos, _ = decode_relative(idx.astype(np.uint64), index_bits=self.index_bits,
                                     variant=self.variant, size=self.size)
        except DecodeError as exc:
            raise DecodeError(f"deep_compressed index stream: {exc}") from None
        if self.variant == "fig2":
            real = val != self.k
            pos, val = pos[real], val[real]
        elif pos.size != self.n_values:
            raise DecodeError(f"deep_compressed: index stream has {pos.size} real entries, "
                              f"value stream {self.n_values}")
        out = np.zeros(self.size, dtype=self.dtype)
        out[pos] = self.codebook[val]
        out = out.reshape(self.shape)
        out.flags.writeable = False
        self._decoded = out

    def reshape(self, shape):
        """The same streams decoding to ``shape``: positions are flat C-order indices,
        so ``dequantize()`` equals ``self.dequantize().reshape(shape)`` bit for bit.

        Raises ParameterError for a different element count.
        """
        shape = tuple(int(s) for s in shape)
        if math.prod(shape) != math.prod(self.shape):
            raise ParameterError(f"cannot reshape a {self.shape} deep_compressed weight to "
                                 f"{shape}")
        new = copy.copy(self)
        new.shape = shape
        new._decoded = self._decoded.reshape(shape)
        new._decoded.flags.writeable = False
        return new

    def dequantize(self):
        """Dense weight (new array, ``dtype``, ``shape``): ``codebook[symbol]`` at
        each real entry's position, bit for bit; +0.0 elsewhere (and at fig2
        fillers)."""
        return self._decoded.copy()

    @property
    def mask(self):
        """Kept positions (bool, ``shape``), decoded from the index stream."""
        if self.index_coding == "webgraph":
            m = np.zeros(self.size, dtype=bool)
            m[self._webgraph_positions()] = True
            return m.reshape(self.shape)
        _, idx = self.streams()
        pos, is_filler = decode_relative(idx.astype(np.uint64), index_bits=self.index_bits,
                                         variant=self.variant, size=self.size)
        if self.variant == "fig2":
            val, _ = self.streams()
            pos = pos[val != self.k]
        m = np.zeros(self.size, dtype=bool)
        m[pos] = True
        return m.reshape(self.shape)

    @property
    def n_real(self):
        """Number of real (non-filler) entries."""
        if self.variant == "reserved":
            return self.n_values
        val, _ = self.streams()
        return int(np.count_nonzero(val != self.k))

    def stream_sizes(self):
        """Bits actually written, per stream (``dict``).

        Keys: ``values`` / ``index`` (payload bits of each stream: Huffman
        or universal codewords, or ``count * width`` for fixed coding),
        ``values_header`` / ``index_header`` (everything else in the stream
        bytes: Huffman header, the 96-bit universal-code header, final-byte
        padding), ``codebook`` (k values at the
        weight's precision).  ``values + values_header + index +
        index_header == 8 * (len(values_stream) + len(index_stream))``.
        """
        vp, vh = _stream_sizes(self.values_stream, self.n_values, self._n_value_symbols(),
                               self.coding)
        ip, ih = _stream_sizes(self.index_stream, self.n_entries, 1 << self.index_bits,
                               self.index_coding)
        return {"values": vp, "values_header": vh, "index": ip, "index_header": ih,
                "codebook": self.k * self.dtype.itemsize * 8}

    def stored_bits(self):
        """Stream bytes plus codebook, in bits (HDF5 metadata, the counts and
        the CRC-32 excluded, as HDF5's own checksums are)."""
        return sum(self.stream_sizes().values())

    def __eq__(self, other):
        if not isinstance(other, DeepCompressed):
            return NotImplemented
        return (self.shape == other.shape and self.dtype == other.dtype
                and (self.index_bits, self.variant, self.coding, self.index_coding,
                     self.n_entries, self.n_values)
                == (other.index_bits, other.variant, other.coding, other.index_coding,
                    other.n_entries, other.n_values)
                and self.codebook.tobytes() == other.codebook.tobytes()
                and np.array_equal(self.values_stream, other.values_stream)
                and np.array_equal(self.index_stream, other.index_stream))

    __hash__ = None

    def __repr__(self):
        return (f"DeepCompressed(shape={self.shape}, dtype={self.dtype}, k={self.k}, "
                f"entries={self.n_entries}, index_bits={self.index_bits}, "
                f"variant={self.variant!r}, coding={self.coding!r}, "
                f"index_coding={self.index_coding_label!r}, "
                f"bits={self.stored_bits()})")

    # -- storage ------------------------------------------------------------------
    def to_hdf5(self, group):
        """Write into an empty h5py group (encoding ``"deep_compressed"``).

        Attributes: ``encoding``, ``dtype`` (NumPy dtype string), ``shape``
        (int64[]), ``index_bits``, ``variant``, ``coding``, ``index_coding``,
        ``n_entries``, ``n_values``, ``crc32`` (uint32).  Datasets: ``codebook`` (k,) of ``dtype``, ``values``
        and ``index`` (uint8 streams), each with the Fletcher-32 checksum.
        """
        a = group.attrs
        a["encoding"] = ENCODING
        a["dtype"] = self.dtype.str
        a["shape"] = np.asarray(self.shape, dtype=np.int64)
        a["index_bits"] = self.index_bits
        a["variant"] = self.variant
        a["coding"] = self.coding
        a["index_coding"] = self.index_coding
        a["n_entries"] = self.n_entries
        a["n_values"] = self.n_values
        a["crc32"] = np.uint32(self.crc32)
        write_dataset(group, "codebook", self.codebook)
        write_dataset(group, "values", self.values_stream)
        write_dataset(group, "index", self.index_stream)

    @classmethod
    def from_hdf5(cls, group):
        """Read what :meth:`to_hdf5` wrote and validate it by decoding.

        Dataset sizes are checked from their headers before reading: the
        codebook at most 65536 values, each stream at most what the declared
        counts could need (Huffman codewords, and the universal codewords
        :meth:`encode` chooses, are at most 64 bits, plus a header bounded by
        1 MiB), so a file cannot make the reader allocate
        more than the declared weight.  Raises FormatError (missing or
        mistyped fields) or DecodeError (corrupt streams).  A missing
        ``index_coding`` attribute (files written before it existed) means
        the same coding as ``coding``.
        """
        name = group.name
        fields = parse_attrs(group, "deep_compressed", {
            "shape": shape_attr, "dtype": np.dtype, "index_bits": int, "variant": _str,
            "coding": _str, "n_entries": int, "n_values": int, "crc32": int,
            "index_coding": _str}, optional=("index_coding",))
        for key in ("codebook", "values", "index"):
            if key not in group or not hasattr(group[key], "dtype"):
                raise FormatError(f"{name}: missing dataset {key!r}")
        cb, vs, ix = group["codebook"], group["values"], group["index"]
        if cb.ndim != 1 or cb.shape[0] > _MAX_K or cb.dtype != fields["dtype"]:
            raise FormatError(f"{name}: codebook holds {cb.shape} {cb.dtype}, expected at "
                              f"most {_MAX_K} values of {fields['dtype']} (attribute 'dtype')")
        for key, ds, count in (("values", vs, fields["n_values"]),
                               ("index", ix, fields["n_entries"])):
            limit = packed_nbytes(max(count, 0), 64) + (1 << 20)
            if key == "index" and fields["index_coding"] == "webgraph":
                # per entry at most two 64-bit words; per row a few (degree,
                # reference, block and interval counts)
                rows = _matrix_shape(fields["shape"])[0]
                limit = 16 * max(count, 0) + 32 * rows + (1 << 20)
            if ds.ndim != 1 or ds.dtype != np.uint8 or ds.shape[0] > limit:
                raise FormatError(f"{name}: {key!r} holds {ds.shape} {ds.dtype}, expected at "
                                  f"most {limit} bytes of uint8")
        try:
            return cls(codebook=cb[()], values_stream=vs[()], index_stream=ix[()], **fields)
        except (DecodeError, FormatError) as exc:
            raise type(exc)(f"{name}: {exc}") from None


def _crc(*arrays):
    crc = 0
    for a in arrays:
        crc = zlib.crc32(np.ascontiguousarray(a).tobytes(), crc)
    return crc


def _str(v):
    return v.decode("utf-8") if isinstance(v, bytes) else str(v)


register_encoding(ENCODING, DeepCompressed)
