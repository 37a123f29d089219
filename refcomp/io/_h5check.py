"""Validation of untrusted refcomp HDF5 files (``docs/FORMAT.md``, "Declared sizes").

Everything checked before a value is read: the global heap collections of
the file (:func:`_check_global_heaps`), then, through :class:`_Reader`,
member links (hard links, each object met once), datatypes, attribute sizes,
string and JSON attributes, and the declared size of every dataset against
the file and the per-file budgets (:data:`~refcomp.io.hdf5.MAX_ELEMENTS`,
``MAX_EXPANSION``, ``MAX_TOTAL_BYTES``, ``MAX_DEPTH``, read from
:mod:`._format` at each check).  :func:`_read_checked` opens a file
read-only and turns every failure into one FormatError naming the file and
HDF5 path.  The model format itself is read by :mod:`._h5read`; plain-array
files by :mod:`._arrays`.
"""

import json
import math
import mmap
import os

from .._errors import DecodeError, FormatError, RefcompError
from . import _format
from ._format import _CORRUPT, _h5py, _one_line, _short


def _oversized_int(value):
    """First integer in a JSON value whose magnitude exceeds :data:`MAX_ELEMENTS`, or None."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
        elif isinstance(v, int) and not isinstance(v, bool) and abs(v) > _format.MAX_ELEMENTS:
            return v
    return None


def _check_global_heaps(path):
    """Refuse a file holding a malformed HDF5 global heap collection, or a
    variable-length descriptor lying about the length of its heap object.

    Variable-length strings (every string attribute h5py writes) live in
    global heap collections (signature ``GCOL``).  The HDF5 library walks a
    collection's objects trusting their sizes: a free-space object of size
    0 makes it loop forever, a huge size makes it jump outside the
    collection.  This walks every collection the same way first and
    requires each object to advance and to end inside its collection, as
    in every well-formed heap.  Only byte runs that look like a collection
    header are checked (version 1, zero reserved bytes, a size of at least
    4096 that fits the file).

    A variable-length value is stored as a descriptor: its length (4 bytes,
    in base elements), the collection's address (8 bytes) and the object's
    index (4 bytes).  libhdf5 allocates the length the descriptor declares
    *before* it looks at the heap object (a flipped byte there made it
    allocate up to 4 GiB and fail only afterwards), so every descriptor that
    points at an object found above must declare at most the object's size
    in bytes (elements are at least one byte).  Descriptors are found by
    their (address, index) bytes; h5py's 8-byte addresses are assumed, as
    everywhere in refcomp files, and file addresses equal to byte offsets (no
    user block, as h5py writes by default).

    Raises
    ------
    FormatError
        Naming the byte offset of the malformed collection or descriptor.
    """
    with open(path, "rb") as fh:
        if os.fstat(fh.fileno()).st_size < 16:
            return
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            _check_heaps_in(mm)


def _check_heaps_in(mm):
    """:func:`_check_global_heaps` on the bytes of a file (bytes or an mmap)."""
    size = len(mm)
    if size < 16:
        return
    objects = {}                    # collection address -> {index: object size}
    pos = mm.find(b"GCOL")
    while pos != -1:
        head = mm[pos:pos + 16]
        csize = int.from_bytes(head[8:16], "little")
        if (len(head) == 16 and head[4:8] == b"\x01\x00\x00\x00"
                and 4096 <= csize <= size - pos):
            p, end = 16, csize
            while p + 16 <= end:
                obj = mm[pos + p:pos + p + 16]
                idx = int.from_bytes(obj[0:2], "little")
                osize = int.from_bytes(obj[8:16], "little")
                need = 16 + ((osize + 7) & ~7) if idx else osize
                if need <= 0 or need > end - p:
                    raise FormatError(f"global heap collection at byte {pos}: object "
                                      f"at byte {pos + p} declares {osize} bytes, "
                                      "outside the collection (corrupt file)")
                if idx:
                    objects.setdefault(pos, {})[idx] = osize
                p += need
        pos = mm.find(b"GCOL", pos + 4)
    _check_vlen_descriptors(mm, objects)


def _check_vlen_descriptors(mm, objects):
    """Each descriptor (length, address, index) pointing at a known heap object
    declares at most the object's size (see :func:`_check_global_heaps`)."""
    for addr, sizes in objects.items():
        pat = addr.to_bytes(8, "little")
        i = mm.find(pat, 4)
        while i != -1:
            idx = int.from_bytes(mm[i + 8:i + 12], "little")
            osize = sizes.get(idx)
            if osize is not None and i + 12 <= len(mm):
                length = int.from_bytes(mm[i - 4:i], "little")
                if length > osize:
                    raise FormatError(f"variable-length value at byte {i - 4} declares "
                                      f"{length} elements, but its global heap object "
                                      f"(collection at byte {addr}, index {idx}) holds "
                                      f"{osize} bytes (corrupt file)")
            i = mm.find(pat, i + 1)


class _Reader:
    """Validating reader of one open refcomp file.

    Every member is reached through a hard link and at most once; every
    attribute and dataset is size-checked from its header before it is
    read (:meth:`dataset`), against the file size and the per-file budgets;
    :attr:`where` is the HDF5 path being read, for error messages.
    """

    def __init__(self, f, file_size):
        self.h5py = _h5py()
        self.f = f
        self.file_size = int(file_size)
        self.where = "/"
        self.stored = 0          # bytes declared by the datasets read so far
        self.decoded = 0         # bytes of the weights decoded so far
        self.seen = set()

    # -- objects and attributes ----------------------------------------------------
    def _ident(self, obj):
        info = self.h5py.h5o.get_info(obj.id)
        return (info.fileno, info.addr)

    def check_type(self, tid, hpath, what, classes):
        """Refuse HDF5 datatypes outside ``classes`` before any value is converted.

        Only plain numbers and strings (and h5py's integer-based enums, its
        booleans) are part of the format; variable-length sequences,
        references, compounds... are refused unread, as corrupted ones can
        crash the HDF5 library during conversion.
        """
        h5t = self.h5py.h5t
        cls = tid.get_class()
        if cls == h5t.ENUM and tid.get_super().get_class() == h5t.INTEGER:
            cls = h5t.INTEGER
        if cls not in classes:
            names = {h5t.INTEGER: "integer", h5t.FLOAT: "float", h5t.STRING: "string"}
            raise FormatError(f"{hpath}: {what} has an unsupported HDF5 datatype (class "
                              f"{cls}; expected {' or '.join(names[c] for c in classes)})")

    def check_attrs(self, obj, hpath):
        """Refuse attributes of an unsupported datatype or larger than the file."""
        h5a, h5t = self.h5py.h5a, self.h5py.h5t
        for name in obj.attrs:
            aid = h5a.open(obj.id, name.encode("utf-8"))
            self.check_type(aid.get_type(), hpath, f"attribute {name!r}",
                            (h5t.INTEGER, h5t.FLOAT, h5t.STRING))
            shape = aid.shape or ()
            nbytes = math.prod(shape) * aid.dtype.itemsize
            if nbytes > self.file_size:
                raise FormatError(f"{hpath}: attribute {name!r} declares {nbytes} bytes, more "
                                  f"than the whole file ({self.file_size} bytes)")

    def child(self, group, key, hpath):
        """Member ``key`` of ``group``: a hard link to an object not met before."""
        self.where = hpath
        link = group.get(key, getlink=True)
        if link is None:
            raise FormatError(f"{hpath}: missing")
        if not isinstance(link, self.h5py.HardLink):
            raise FormatError(f"{hpath}: is a {type(link).__name__}; refcomp files link "
                              "their members by hard links only")
        obj = group[key]
        ident = self._ident(obj)
        if ident in self.seen:
            raise FormatError(f"{hpath}: links an HDF5 object already met in this file "
                              "(shared or cyclic links are not part of the format)")
        self.seen.add(ident)
        self.check_attrs(obj, hpath)
        return obj

    def group(self, parent, key, hpath):
        """Member ``key`` of ``parent``, which must be a group."""
        if key not in parent:
            raise FormatError(f"{hpath}: missing group")
        obj = self.child(parent, key, hpath)
        if not isinstance(obj, self.h5py.Group):
            raise FormatError(f"{hpath}: expected a group, found a {type(obj).__name__.lower()}")
        return obj

    def text(self, obj, key, hpath):
        """String attribute ``key`` of ``obj``."""
        if key not in obj.attrs:
            raise FormatError(f"{hpath}: missing attribute {key!r}")
        v = obj.attrs[key]
        if isinstance(v, bytes):
            try:
                v = v.decode("utf-8")
            except UnicodeDecodeError:
                raise FormatError(f"{hpath}: attribute {key!r} is not UTF-8 text") from None
        if not isinstance(v, str):
            raise FormatError(f"{hpath}: attribute {key!r} must be a string, got "
                              f"{type(v).__name__} {_short(v)}")
        return v

    def json_object(self, obj, key, hpath):
        """Attribute ``key`` of ``obj``: a string holding a JSON object."""
        text = self.text(obj, key, hpath)
        try:
            value = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise FormatError(f"{hpath}: attribute {key!r} is not valid JSON "
                              f"({_one_line(exc)})") from None
        if not isinstance(value, dict):
            raise FormatError(f"{hpath}: attribute {key!r} must be a JSON object, got "
                              f"{type(value).__name__} {_short(value)}")
        return value

    # -- sizes -----------------------------------------------------------------------
    def add_decoded(self, nbytes, hpath, why=""):
        self.decoded += nbytes
        if self.decoded > _format.MAX_TOTAL_BYTES:
            raise FormatError(f"{hpath}: the weights of this file decode to more than "
                              f"MAX_TOTAL_BYTES = {_format.MAX_TOTAL_BYTES} bytes in total"
                              + (f" ({why})" if why else ""))

    def dataset(self, ds, hpath, strings=False):
        """Check a dataset's declared size before it is read; return its byte count.

        Refused: a datatype other than numbers (and strings if ``strings``,
        for plain-array files); more than :data:`MAX_ELEMENTS` elements; data outside this
        file (external or virtual storage); more bytes than the file stores
        for it (times :data:`MAX_EXPANSION` under a compressing filter);
        chunks larger than the dataset; and a running total of declared
        bytes over ``min(MAX_TOTAL_BYTES, MAX_EXPANSION * file size)``.
        """
        h5py = self.h5py
        self.where = hpath
        h5t = h5py.h5t
        self.check_type(ds.id.get_type(), hpath, "dataset",
                        (h5t.INTEGER, h5t.FLOAT) + ((h5t.STRING,) if strings else ()))
        shape = ds.shape
        if shape is None:
            raise FormatError(f"{hpath}: dataset has a null dataspace (no shape)")
        n = math.prod(shape)
        if n > _format.MAX_ELEMENTS:
            raise FormatError(f"{hpath}: declares {n} elements, more than the limit "
                              f"{_format.MAX_ELEMENTS}")
        nbytes = n * ds.dtype.itemsize
        plist = ds.id.get_create_plist()
        layout = plist.get_layout()
        if layout == h5py.h5d.VIRTUAL or plist.get_external_count():
            raise FormatError(f"{hpath}: data stored outside this file (external or virtual "
                              "dataset) is not read")
        expanding = False
        if layout == h5py.h5d.CHUNKED:
            chunk_bytes = math.prod(ds.chunks) * ds.dtype.itemsize
            if chunk_bytes > max(nbytes, 1 << 20):
                raise FormatError(f"{hpath}: chunks of {chunk_bytes} bytes for a dataset of "
                                  f"{nbytes} bytes")
            codes = {plist.get_filter(i)[0] for i in range(plist.get_nfilters())}
            expanding = bool(codes - {h5py.h5z.FILTER_SHUFFLE, h5py.h5z.FILTER_FLETCHER32})
        if nbytes:
            stored = min(int(ds.id.get_storage_size()), self.file_size)
            limit = stored * _format.MAX_EXPANSION if expanding else stored
            if nbytes > limit:
                how = (f"; a compressed dataset may expand at most MAX_EXPANSION = "
                       f"{_format.MAX_EXPANSION} times" if expanding else "")
                raise FormatError(f"{hpath}: declares shape {tuple(shape)} {ds.dtype} "
                                  f"({nbytes} bytes) but the file stores only {stored} bytes "
                                  f"for it{how}")
        self.stored += nbytes
        budget = min(_format.MAX_TOTAL_BYTES, _format.MAX_EXPANSION * self.file_size)
        if self.stored > budget:
            raise FormatError(f"{hpath}: the datasets of this file declare {self.stored} bytes "
                              f"in total, more than {budget} (MAX_TOTAL_BYTES, or "
                              f"MAX_EXPANSION x the file size of {self.file_size} bytes)")
        return nbytes

    def scan(self, group, hpath, depth):
        """Check every member of an encoded weight group before its reader runs."""
        if depth > _format.MAX_DEPTH:
            raise FormatError(f"{hpath}: groups nested deeper than MAX_DEPTH = {_format.MAX_DEPTH}")
        for key in list(group):
            mpath = f"{hpath}/{key}"
            obj = self.child(group, key, mpath)
            if isinstance(obj, self.h5py.Group):
                self.scan(obj, mpath, depth + 1)
            elif isinstance(obj, self.h5py.Dataset):
                self.dataset(obj, mpath)


def _read_checked(path, body, *, keep_decode, reader_type=_Reader):
    """Open ``path`` read-only, check it (global heaps, declared sizes through
    a :class:`_Reader`), run ``body(f, reader)`` and return its result.

    ``reader`` is a ``reader_type(f, file size)``: :class:`_Reader`, or a
    subclass that also reads the format (``_h5read._ModelReader``).

    Every failure becomes one :class:`FormatError` naming the file and, where
    known, the HDF5 path (a :class:`DecodeError` stays one if
    ``keep_decode``); h5py/libhdf5 exceptions never escape.
    """
    h5py = _h5py()
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise FormatError(f"{path}: not a readable HDF5 file ({_one_line(exc)})") from None
    reader = None
    try:
        with f:
            _check_global_heaps(path)
            reader = reader_type(f, os.path.getsize(path))
            return body(f, reader)
    except RefcompError as exc:
        msg = _one_line(exc)
        cls = DecodeError if keep_decode and isinstance(exc, DecodeError) else FormatError
        raise cls(f"{path}:{msg}" if msg.startswith("/") else f"{path}: {msg}") from None
    except _CORRUPT as exc:
        where = reader.where if reader is not None else "/"
        raise FormatError(f"{path}:{where}: corrupt or unreadable HDF5 content "
                          f"({type(exc).__name__}: {_one_line(exc)})") from None
