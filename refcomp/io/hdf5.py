"""refcomp HDF5 format, versions 1 and 2 (specification: ``docs/FORMAT.md``).

Two kinds of refcomp file share the layout rules: a whole model
(``format = "refcomp-model"``) and a single stored weight such as one
:class:`refcomp.quantize.Quantized` (``format = "refcomp-weight"``).
:func:`save` / :func:`load` handle both.

Version 1 holds raw datasets only; version 2 adds the compressed encodings
(quantized, masked, csr/csc, product/residual quantized, deep_compressed...).
A writer uses the lowest version that can hold the file's content, so a
model of plain arrays stays readable by version-1 readers.

Also plain-array files (:func:`read_arrays` / :func:`write_arrays`) for users
who export weights as HDF5 datasets rather than as a refcomp model.
"""

import fnmatch
import json
import math
import mmap
import os

import numpy as np

from .. import __version__
from .._errors import DecodeError, DTypeError, FormatError, ParameterError, RefcompError
from .._validate import FLOAT_DTYPES
from ..model import LAYER_KINDS, Layer, Model
from ..weights import encoding_reader, register_encoding, registered_encodings
from ..weights._h5util import write_dataset
from ._atomic import atomic_path

__all__ = ["save", "load", "load_model", "register_encoding", "read_arrays", "write_arrays",
           "FORMAT_NAME", "FORMAT_VERSION", "FORMAT_VERSIONS", "WEIGHT_FORMAT_NAME",
           "MAX_ELEMENTS", "MAX_EXPANSION", "MAX_TOTAL_BYTES", "MAX_DEPTH"]

FORMAT_NAME = "refcomp-model"
#: Newest format version: written for files holding any encoded (compressed) weight.
FORMAT_VERSION = 2
#: Version written for files holding raw datasets only.
RAW_FORMAT_VERSION = 1
#: Versions this reader accepts; any other ``format_version`` is a FormatError.
FORMAT_VERSIONS = (1, 2)
#: ``format`` attribute of a file holding one stored weight.
WEIGHT_FORMAT_NAME = "refcomp-weight"
#: Largest number of elements accepted in one dataset (refused before reading).
MAX_ELEMENTS = 1 << 31
#: A dataset with a compressing filter may declare at most this many bytes per
#: byte it occupies in the file; all datasets of a file together may declare
#: at most this many bytes per byte of the file.
MAX_EXPANSION = 1024
#: Budget of one file: its datasets together may declare at most this many
#: bytes, and its weights together may decode to at most this many bytes.
MAX_TOTAL_BYTES = 1 << 32
#: Deepest nesting of residual blocks, and of groups inside one weight entry.
MAX_DEPTH = 64

#: Exceptions h5py, NumPy and the encoding readers raise on malformed content;
#: :func:`load` reports them as FormatError naming the HDF5 path being read.
_CORRUPT = (OSError, LookupError, RuntimeError, ValueError, TypeError, AttributeError,
            ArithmeticError, BufferError)


def _lookup_encoding(name):
    return encoding_reader(name) is not None


def _unknown_encoding(hpath, enc):
    return (f"{hpath}: unknown weight encoding {enc!r}: no class is registered for it "
            f"(registered: raw, {', '.join(registered_encodings())}; a type defined "
            "outside refcomp registers with refcomp.weights.register_encoding before "
            "the file is loaded)")


def _h5py():
    import h5py
    return h5py


def _one_line(obj):
    return " ".join(str(obj).split())


def _short(v, n=60):
    text = _one_line(repr(v))
    return text if len(text) <= n else text[:n] + "..."


# -- writing ------------------------------------------------------------------------
def _write_layer(group, layer):
    group.attrs["kind"] = layer.kind
    group.attrs["name"] = layer.name
    group.attrs["attrs"] = json.dumps(layer.attrs, sort_keys=True)
    wg = group.create_group("weights")
    for wname, value in layer.weights.items():
        if isinstance(value, np.ndarray):
            ds = write_dataset(wg, wname, value)
            ds.attrs["encoding"] = "raw"
        elif hasattr(value, "to_hdf5"):
            value.to_hdf5(wg.create_group(wname))
        else:
            raise FormatError(f"layer {layer.name!r}: weight {wname!r} of type "
                              f"{type(value).__name__} cannot be stored")
    if layer.layers is not None:
        sub = group.create_group("layers")
        for i, s in enumerate(layer.layers):
            _write_layer(sub.create_group(f"{i:04d}"), s)


def _check_weight_dtype(value, where):
    dt = getattr(value, "dtype", None)
    if dt is not None and np.dtype(dt) not in FLOAT_DTYPES:
        raise DTypeError(f"{where} has dtype {np.dtype(dt)}; refcomp files store float32 or "
                         "float64 weights (convert, e.g. W.astype(np.float32)); nothing "
                         "was written")


def _plan_model(model):
    """Check that ``model`` can be stored; return the format version to write.

    Parameters
    ----------
    model : refcomp.Model

    Returns
    -------
    int
        :data:`RAW_FORMAT_VERSION` if every weight is a plain ndarray,
        :data:`FORMAT_VERSION` if any weight uses an encoding.

    Raises
    ------
    DTypeError
        A weight whose dtype is not float32/float64 (an ``index_map`` that
        is not an integer array).
    FormatError
        A weight that is neither an ndarray nor has ``to_hdf5``.
    ParameterError
        Metadata or layer attributes that are not JSON-serialisable.
    """
    version = RAW_FORMAT_VERSION
    try:
        json.dumps(model.metadata, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise ParameterError(f"model {model.name!r}: metadata is not JSON-serialisable "
                             f"({exc}); nothing was written") from None
    for path, layer in model.named_layers():
        ref = f"layer {path} ({layer.kind} {layer.name!r})"
        try:
            json.dumps(layer.attrs, sort_keys=True)
        except (TypeError, ValueError) as exc:
            raise ParameterError(f"{ref}: attributes are not JSON-serialisable ({exc}); "
                                 "nothing was written") from None
        for wname, value in layer.weights.items():
            where = f"{ref}: weight {wname!r}"
            if isinstance(value, np.ndarray):
                if wname == "index_map":
                    if value.dtype.kind not in "iu":
                        raise DTypeError(f"{where} has dtype {value.dtype}; an index_map is an "
                                         "integer array; nothing was written")
                else:
                    _check_weight_dtype(value, where)
            elif hasattr(value, "to_hdf5"):
                _check_weight_dtype(value, where)
                version = FORMAT_VERSION
            else:
                raise FormatError(f"{where} of type {type(value).__name__} cannot be stored "
                                  "(an ndarray or an object with to_hdf5); nothing was written")
    return version


def save(obj, path):
    """Write a model or a single stored weight to ``path`` (refcomp HDF5), atomically.

    Parameters
    ----------
    obj : refcomp.Model or stored weight
        A model, or a single weight object refcomp stores in models (a
        :class:`refcomp.quantize.Quantized`, or any object with
        ``to_hdf5(group)`` writing a registered ``encoding``).
    path : str or os.PathLike

    Notes
    -----
    A model is written as ``format = "refcomp-model"``; a single weight as
    ``format = "refcomp-weight"`` with the entry in group ``/weight``
    (``docs/FORMAT.md``).  A model whose weights are all plain arrays is
    written as ``format_version = 1``; a file holding any encoded weight
    (and every single-weight file) as ``format_version = 2``.  Weights are
    stored with their exact dtype (raw datasets, float32 or float64) or
    through their encoding (e.g. quantized codes bit-packed); loading gives
    back bit-identical arrays.  Everything is validated before the file is
    opened.  The file is written to a temporary file in the same directory,
    fsynced, then renamed over ``path``: an existing file is replaced only
    once the new one is complete, and a failure leaves it untouched.

    Raises
    ------
    ParameterError
        ``obj`` is neither a Model nor a storable weight, or its metadata
        or layer attributes are not JSON-serialisable.
    DTypeError
        A weight of a dtype other than float32/float64 (e.g. float16,
        which ``load`` and the layers refuse).
    FormatError
        A weight of a model cannot be stored, or a weight object wrote an
        unregistered encoding.
    """
    if isinstance(obj, Model):
        _save_model(obj, path)
    elif hasattr(obj, "to_hdf5") and not isinstance(obj, (Layer, type)):
        _save_weight(obj, path)
    else:
        raise ParameterError(f"save() takes a refcomp.Model or a stored weight such as "
                             f"refcomp.quantize.Quantized, got {type(obj).__name__}")


def _save_model(model, path):
    h5py = _h5py()
    version = _plan_model(model)
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = FORMAT_NAME
            f.attrs["format_version"] = version
            f.attrs["refcomp_version"] = __version__
            f.attrs["name"] = model.name
            f.attrs["metadata"] = json.dumps(model.metadata, sort_keys=True)
            if model.input_shape is not None:
                f.attrs["input_shape"] = np.asarray(model.input_shape, dtype=np.int64)
            lg = f.create_group("layers")
            for i, layer in enumerate(model.layers):
                _write_layer(lg.create_group(f"{i:04d}"), layer)


def _save_weight(obj, path):
    h5py = _h5py()
    _check_weight_dtype(obj, f"{type(obj).__name__}")
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = WEIGHT_FORMAT_NAME
            f.attrs["format_version"] = FORMAT_VERSION
            f.attrs["refcomp_version"] = __version__
            g = f.create_group("weight")
            obj.to_hdf5(g)
            enc = g.attrs.get("encoding", None)
            enc = enc.decode() if isinstance(enc, bytes) else enc
            if not isinstance(enc, str) or not _lookup_encoding(enc):
                raise FormatError(f"{type(obj).__name__}.to_hdf5 wrote encoding {enc!r}, which "
                                  "no reader is registered for")


# -- reading ------------------------------------------------------------------------
def _hdf5_layer_path(model_path):
    """``"3/0"`` (a :meth:`Model.named_layers` path) -> ``"/layers/0003/layers/0000"``."""
    try:
        parts = [int(p) for p in str(model_path).split("/")]
    except ValueError:
        return None
    return "".join(f"/layers/{p:04d}" for p in parts)


def _oversized_int(value):
    """First integer in a JSON value whose magnitude exceeds :data:`MAX_ELEMENTS`, or None."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
        elif isinstance(v, int) and not isinstance(v, bool) and abs(v) > MAX_ELEMENTS:
            return v
    return None


def _check_global_heaps(path):
    """Refuse a file holding a malformed HDF5 global heap collection.

    Variable-length strings (every string attribute h5py writes) live in
    global heap collections (signature ``GCOL``).  The HDF5 library walks a
    collection's objects trusting their sizes: a free-space object of size
    0 makes it loop forever, a huge size makes it jump outside the
    collection.  This walks every collection the same way first and
    requires each object to advance and to end inside its collection, as
    in every well-formed heap.  Only byte runs that look like a collection
    header are checked (version 1, zero reserved bytes, a size of at least
    4096 that fits the file).

    Raises
    ------
    FormatError
        Naming the byte offset of the malformed collection.
    """
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size < 16:
            return
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
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
                        p += need
                pos = mm.find(b"GCOL", pos + 4)


def _relocated(exc, hpath):
    """``exc`` as FormatError (DecodeError kept) whose message names ``hpath``."""
    msg = _one_line(exc)
    if hpath not in msg:
        msg = f"{hpath}: {msg}"
    return (DecodeError if isinstance(exc, DecodeError) else FormatError)(msg)


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
    def add_decoded(self, nbytes, hpath):
        self.decoded += nbytes
        if self.decoded > MAX_TOTAL_BYTES:
            raise FormatError(f"{hpath}: the weights of this file decode to more than "
                              f"MAX_TOTAL_BYTES = {MAX_TOTAL_BYTES} bytes in total")

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
        if n > MAX_ELEMENTS:
            raise FormatError(f"{hpath}: declares {n} elements, more than the limit "
                              f"{MAX_ELEMENTS}")
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
            limit = stored * MAX_EXPANSION if expanding else stored
            if nbytes > limit:
                how = (f"; a compressed dataset may expand at most MAX_EXPANSION = "
                       f"{MAX_EXPANSION} times" if expanding else "")
                raise FormatError(f"{hpath}: declares shape {tuple(shape)} {ds.dtype} "
                                  f"({nbytes} bytes) but the file stores only {stored} bytes "
                                  f"for it{how}")
        self.stored += nbytes
        budget = min(MAX_TOTAL_BYTES, MAX_EXPANSION * self.file_size)
        if self.stored > budget:
            raise FormatError(f"{hpath}: the datasets of this file declare {self.stored} bytes "
                              f"in total, more than {budget} (MAX_TOTAL_BYTES, or "
                              f"MAX_EXPANSION x the file size of {self.file_size} bytes)")
        return nbytes

    def scan(self, group, hpath, depth):
        """Check every member of an encoded weight group before its reader runs."""
        if depth > MAX_DEPTH:
            raise FormatError(f"{hpath}: groups nested deeper than MAX_DEPTH = {MAX_DEPTH}")
        for key in list(group):
            mpath = f"{hpath}/{key}"
            obj = self.child(group, key, mpath)
            if isinstance(obj, self.h5py.Group):
                self.scan(obj, mpath, depth + 1)
            elif isinstance(obj, self.h5py.Dataset):
                self.dataset(obj, mpath)

    # -- weights -----------------------------------------------------------------------
    def raw(self, ds, hpath, wname):
        """A ``raw`` entry: float32/float64 weight (integer ``index_map``)."""
        if not isinstance(ds, self.h5py.Dataset):
            raise FormatError(f"{hpath}: encoding 'raw' needs a dataset, found a group")
        nbytes = self.dataset(ds, hpath)
        dt = ds.dtype
        ok = dt.kind in "iu" if wname == "index_map" else (dt.kind == "f"
                                                          and dt.itemsize in (4, 8))
        if not ok:
            raise FormatError(f"{hpath}: unsupported dtype {dt} (float32/float64 weights, "
                              "integer index maps)")
        self.add_decoded(nbytes, hpath)
        arr = np.asarray(ds[()])
        if not arr.dtype.isnative:                  # big-endian file: same values, native order
            arr = arr.astype(arr.dtype.newbyteorder("="))
        return arr

    def declared_decoded(self, group, hpath):
        """Count the decoded size an encoded entry declares (``shape`` x ``dtype``)."""
        a = group.attrs
        if "shape" not in a or "dtype" not in a:
            return
        try:
            shape = [int(s) for s in np.asarray(a["shape"]).reshape(-1)]
            dt = a["dtype"]
            dt = np.dtype(dt.decode("utf-8") if isinstance(dt, bytes) else str(dt))
        except (TypeError, ValueError, OverflowError):
            return                                  # the encoding's reader reports it
        if len(shape) > 64 or any(s < 0 for s in shape):
            return
        self.add_decoded(math.prod(shape) * dt.itemsize, hpath)

    def encoded(self, group, hpath, enc, depth):
        """An encoded entry: size checks, then the registered reader."""
        if not isinstance(group, self.h5py.Group):
            raise FormatError(f"{hpath}: encoding {enc!r} needs a group, found a dataset")
        self.scan(group, hpath, depth)
        self.declared_decoded(group, hpath)
        self.where = hpath
        try:
            value = encoding_reader(enc)(group)
        except RefcompError as exc:
            raise _relocated(exc, hpath) from None
        except _CORRUPT as exc:
            raise FormatError(f"{hpath}: cannot decode encoding {enc!r} "
                              f"({type(exc).__name__}: {_one_line(exc)})") from None
        dt = getattr(value, "dtype", None)
        try:
            ok = dt is not None and np.dtype(dt) in FLOAT_DTYPES
        except TypeError:
            ok = False
        if not ok:
            raise FormatError(f"{hpath}: encoding {enc!r} decodes to dtype {dt}, not float32 "
                              "or float64")
        return value

    # -- layers ------------------------------------------------------------------------
    def layer(self, group, hpath, depth):
        self.where = hpath
        kind = self.text(group, "kind", hpath)
        if kind not in LAYER_KINDS:
            raise FormatError(f"{hpath}: unknown layer kind {kind!r}")
        name = self.text(group, "name", hpath)
        attrs = self.json_object(group, "attrs", hpath)
        big = _oversized_int(attrs)
        if big is not None:
            raise FormatError(f"{hpath}: attribute 'attrs' holds the integer {_short(big)}, "
                              f"outside [-{MAX_ELEMENTS}, {MAX_ELEMENTS}]")
        wg = self.group(group, "weights", f"{hpath}/weights")
        weights = {}
        required, optional, _ = LAYER_KINDS[kind]
        for wname in list(wg):
            wpath = f"{hpath}/weights/{wname}"
            if wname not in required + optional:
                raise FormatError(f"{wpath}: unexpected weight for a {kind} layer "
                                  f"(expected {list(required + optional)})")
            obj = self.child(wg, wname, wpath)
            enc = self.text(obj, "encoding", wpath)
            if enc == "raw":
                weights[wname] = self.raw(obj, wpath, wname)
            elif _lookup_encoding(enc):
                weights[wname] = self.encoded(obj, wpath, enc, depth)
            else:
                raise FormatError(_unknown_encoding(wpath, enc))
        for wname in required:
            if wname not in weights:
                raise FormatError(f"{hpath}/weights: missing dataset {wname!r} for a {kind} "
                                  "layer")
        sub = None
        if kind == "residual":
            sub = self.layers(self.group(group, "layers", f"{hpath}/layers"), f"{hpath}/layers",
                              depth + 1)
        self.where = hpath
        try:
            return Layer(kind, name=name, attrs=attrs, weights=weights, layers=sub)
        except RefcompError as exc:
            w = getattr(exc, "weight_name", None)
            raise FormatError(f"{hpath}{'/weights/' + w if w else ''}: "
                              f"{_one_line(exc)}") from None

    def layers(self, group, hpath, depth):
        if depth > MAX_DEPTH:
            raise FormatError(f"{hpath}: residual blocks nested deeper than MAX_DEPTH = "
                              f"{MAX_DEPTH}")
        self.where = hpath
        keys = list(group)
        names = [f"{i:04d}" for i in range(len(keys))]
        if set(keys) != set(names):
            odd = sorted(set(keys) - set(names))[:3]
            raise FormatError(f"{hpath}: layer groups must be named 0000, 0001, ... without "
                              f"gaps (found {odd})")
        return [self.layer(self.group(group, k, f"{hpath}/{k}"), f"{hpath}/{k}", depth)
                for k in names]

    # -- root ----------------------------------------------------------------------------
    def version(self):
        if "format_version" not in self.f.attrs:
            raise FormatError("/: missing attribute 'format_version'")
        v = self.f.attrs["format_version"]
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
            raise FormatError(f"/: attribute 'format_version' is {_short(v)}, not an integer")
        if int(v) not in FORMAT_VERSIONS:
            raise FormatError(f"/: unsupported format_version {int(v)} (this refcomp reads "
                              f"versions {', '.join(map(str, FORMAT_VERSIONS))})")
        return int(v)

    def input_shape(self):
        if "input_shape" not in self.f.attrs:
            return None
        v = np.asarray(self.f.attrs["input_shape"])
        if v.dtype.kind not in "iu" or v.ndim != 1 or (v.size and int(v.min()) < 0):
            raise FormatError(f"/: attribute 'input_shape' must be a 1-D array of "
                              f"non-negative integers, got {_short(v.tolist())}")
        shape = tuple(int(s) for s in v)
        if math.prod(shape) > MAX_ELEMENTS:
            raise FormatError(f"/: attribute 'input_shape' {shape} declares more than "
                              f"{MAX_ELEMENTS} elements per sample")
        return shape

    def check_dtypes(self, layers, prefix="/layers", first=None):
        """All float weights of a model share one dtype (refcomp never casts)."""
        for i, layer in enumerate(layers):
            lp = f"{prefix}/{i:04d}"
            for wname, v in layer.weights.items():
                dt = getattr(v, "dtype", None)
                if dt is None or np.dtype(dt).kind != "f":
                    continue
                if first is None:
                    first = (f"{lp}/weights/{wname}", np.dtype(dt))
                elif np.dtype(dt) != first[1]:
                    raise FormatError(f"{lp}/weights/{wname}: dtype {np.dtype(dt)} differs "
                                      f"from {first[1]} of {first[0]}; a model computes in "
                                      "one dtype and refcomp never casts")
            if layer.layers is not None:
                first = self.check_dtypes(layer.layers, f"{lp}/layers", first)
        return first

    def read(self):
        f = self.f
        self.seen.add(self._ident(f))
        self.check_attrs(f, "/")
        fmt = self.text(f, "format", "/")
        if fmt not in (FORMAT_NAME, WEIGHT_FORMAT_NAME):
            raise FormatError(f"/: attribute 'format' is {fmt!r}, not {FORMAT_NAME!r} or "
                              f"{WEIGHT_FORMAT_NAME!r}")
        self.version()
        if fmt == WEIGHT_FORMAT_NAME:
            g = self.group(f, "weight", "/weight")
            enc = self.text(g, "encoding", "/weight")
            if not _lookup_encoding(enc):
                raise FormatError(_unknown_encoding("/weight", enc))
            return self.encoded(g, "/weight", enc, 0)
        layers = self.layers(self.group(f, "layers", "/layers"), "/layers", 0)
        self.where = "/"
        input_shape = self.input_shape()
        metadata = self.json_object(f, "metadata", "/")
        name = self.text(f, "name", "/")
        self.check_dtypes(layers)
        self.where = "/layers"
        try:
            return Model(layers, name=name, input_shape=input_shape, metadata=metadata)
        except (RefcompError,) + _CORRUPT as exc:
            hpath = _hdf5_layer_path(getattr(exc, "layer_path", None)) or "/layers"
            weight = getattr(exc, "weight_name", None)
            if weight and hpath != "/layers":
                hpath += f"/weights/{weight}"
            cls = DecodeError if isinstance(exc, DecodeError) else FormatError
            what = _one_line(exc) if isinstance(exc, RefcompError) else \
                f"the zero-batch forward pass fails ({type(exc).__name__}: {_one_line(exc)})"
            raise cls(f"{hpath}: inconsistent model: {what}") from None


def load(path):
    """Read a refcomp HDF5 file (read-only): a model, or a single stored weight.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    refcomp.Model or stored weight
        A :class:`refcomp.Model` for a ``format = "refcomp-model"`` file,
        validated fully; for a ``format = "refcomp-weight"`` file written
        by :func:`save`, the stored weight object (e.g. a
        :class:`refcomp.quantize.Quantized`) with codes and decoding rule
        bit-identical to what was saved.  Use :func:`load_model` where
        only a model will do.

    Raises
    ------
    FormatError
        ``"<file>:<HDF5 path>: <problem>"``: not an HDF5 file, truncated
        or corrupt, wrong format name, unsupported ``format_version`` (1
        and 2 are read), unknown layer kind or weight encoding, missing
        dataset, wrong dtype, a member that is not the expected group or
        dataset, declared sizes the file cannot back (checked from the
        headers before anything is allocated, see :data:`MAX_EXPANSION`
        and :data:`MAX_TOTAL_BYTES`), or shapes / dtypes that do not fit
        between the weights of a layer or consecutive layers.
    DecodeError
        A stored weight whose packed streams are inconsistent (too short,
        codes out of range...), also naming the file and HDF5 path.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FormatError(f"{path}: no such file")
    return _read_checked(path, lambda f, reader: reader.read(), keep_decode=True)


def _read_checked(path, body, *, keep_decode):
    """Open ``path`` read-only, check it (global heaps, declared sizes through
    a :class:`_Reader`), run ``body(f, reader)`` and return its result.

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
            reader = _Reader(f, os.path.getsize(path))
            return body(f, reader)
    except RefcompError as exc:
        msg = _one_line(exc)
        cls = DecodeError if keep_decode and isinstance(exc, DecodeError) else FormatError
        raise cls(f"{path}:{msg}" if msg.startswith("/") else f"{path}: {msg}") from None
    except _CORRUPT as exc:
        where = reader.where if reader is not None else "/"
        raise FormatError(f"{path}:{where}: corrupt or unreadable HDF5 content "
                          f"({type(exc).__name__}: {_one_line(exc)})") from None


def load_model(path):
    """Read a refcomp model file; a single-weight file is refused.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    refcomp.Model

    Raises
    ------
    FormatError
        As :func:`load`, and for a ``refcomp-weight`` file (``"... is a
        single-weight file, expected a model"``).
    DecodeError
        As :func:`load`.
    """
    obj = load(path)
    if not isinstance(obj, Model):
        raise FormatError(f"{os.fspath(path)}: is a single-weight file (format "
                          f"{WEIGHT_FORMAT_NAME!r}, holding a {type(obj).__name__}), expected "
                          "a model")
    return obj


# -- plain arrays -------------------------------------------------------------------
def read_arrays(path, *, pattern="*"):
    """Read every dataset of a plain HDF5 file (read-only).

    Parameters
    ----------
    path : str or os.PathLike
    pattern : str
        Glob; only dataset paths matching it are read.

    Returns
    -------
    dict
        ``{"group/name": ndarray}``: keys are absolute HDF5 paths without
        the leading "/", in sorted (depth-first, name-ordered) order.

    Raises
    ------
    FormatError
        Not a readable HDF5 file, or a dataset whose declared size the file
        cannot back (:data:`MAX_ELEMENTS`, :data:`MAX_EXPANSION`,
        :data:`MAX_TOTAL_BYTES`, checked from the headers before reading).
    """
    h5py = _h5py()

    def body(f, reader):
        names, out = [], {}
        f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
        for n in sorted(names):
            if fnmatch.fnmatchcase(n, pattern):
                ds = f[n]
                reader.dataset(ds, f"/{n}", strings=True)
                out[n] = ds[()]
        return out

    return _read_checked(os.fspath(path), body, keep_decode=False)


def write_arrays(path, arrays, *, attrs=None):
    """Write ``{"group/name": ndarray}`` as datasets (groups created), atomically.

    Parameters
    ----------
    path : str or os.PathLike
    arrays : dict
        Dataset path -> ndarray, stored with its exact dtype.
    attrs : dict, optional
        Dataset path -> dict of attributes to set on that dataset.
    """
    h5py = _h5py()
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            for n, a in arrays.items():
                ds = write_dataset(f, n.lstrip("/"), a)
                for k, v in ((attrs or {}).get(n) or {}).items():
                    ds.attrs[k] = v
