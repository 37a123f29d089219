"""Reading the refcomp model format: :func:`load`, :func:`load_model`.

:class:`_ModelReader` extends the checking :class:`~._h5check._Reader` with
the format itself: raw and encoded weight entries (encodings looked up
through :mod:`refcomp.weights`), layers and residual blocks, the root
attributes, and the consistency of the model they build.  Files are opened
through :func:`~._h5check._read_checked`.
"""

import math
import os

import numpy as np

from .._errors import DecodeError, FormatError, ParameterError, RefcompError
from .._validate import FLOAT_DTYPES
from ..model import LAYER_KINDS, Layer, Model
from ..weights import encoding_reader
from . import _format
from ._format import (_CORRUPT, FORMAT_NAME, FORMAT_VERSIONS, WEIGHT_FORMAT_NAME,
                      _lookup_encoding, _one_line, _short, _unknown_encoding)
from ._atomic import checked_path
from ._h5check import _oversized_int, _read_checked, _Reader


def _hdf5_layer_path(model_path):
    """``"3/0"`` (a :meth:`Model.named_layers` path) -> ``"/layers/0003/layers/0000"``."""
    try:
        parts = [int(p) for p in str(model_path).split("/")]
    except ValueError:
        return None
    return "".join(f"/layers/{p:04d}" for p in parts)


def _relocated(exc, hpath, suffix=""):
    """``exc`` as FormatError (DecodeError kept) whose message names ``hpath``, then
    ``suffix`` (the encoding the entry declares: the reader that refused it)."""
    msg = _one_line(exc)
    if hpath not in msg:
        msg = f"{hpath}: {msg}"
    return (DecodeError if isinstance(exc, DecodeError) else FormatError)(msg + suffix)


class _ModelReader(_Reader):
    """Reader of the refcomp model format on top of the checks of :class:`_Reader`."""

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
        self.add_decoded(math.prod(shape) * dt.itemsize, hpath,
                         f"attributes 'shape' {_short(shape)} and 'dtype' {dt}")

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
            raise _relocated(exc, hpath, f" (attribute 'encoding' {enc!r})") from None
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
                              f"outside [-{_format.MAX_ELEMENTS}, {_format.MAX_ELEMENTS}]")
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
            # a weight's problem names the weight; the others come from the layer's
            # attributes (kind, weights and sub-layers were checked above)
            w = getattr(exc, "weight_name", None)
            raise FormatError(f"{hpath}{'/weights/' + w if w else ''}: "
                              f"{'' if w else 'attribute ' + repr('attrs') + ': '}"
                              f"{_one_line(exc)}") from None

    def layers(self, group, hpath, depth):
        if depth > _format.MAX_DEPTH:
            raise FormatError(f"{hpath}: residual blocks nested deeper than MAX_DEPTH = "
                              f"{_format.MAX_DEPTH}")
        self.where = hpath
        keys = list(group)
        names = [f"{i:04d}" for i in range(len(keys))]
        if set(keys) != set(names):
            odd = sorted(set(keys) - set(names))[:3]
            gaps = [f"{hpath}/{k}" for k in sorted(set(names) - set(keys))[:3]]
            raise FormatError(f"{hpath}: layer groups must be named 0000, 0001, ... without "
                              f"gaps (found {odd}, missing {gaps})")
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
        if math.prod(shape) > _format.MAX_ELEMENTS:
            raise FormatError(f"/: attribute 'input_shape' {shape} declares more than "
                              f"{_format.MAX_ELEMENTS} elements per sample")
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
        if "format" not in f.attrs:
            raise FormatError(_not_refcomp(f))
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
            if not weight and isinstance(exc, ParameterError) and hpath != "/layers":
                what = f"attribute 'attrs': {what}"     # a layer parameter, not a weight
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
    path = checked_path(path)
    if os.path.isdir(path):
        raise FormatError(f"{path}: is a directory, not a refcomp file")
    if not os.path.isfile(path):
        raise FormatError(f"{path}: no such file")
    return _read_checked(path, lambda f, reader: reader.read(), keep_decode=True,
                         reader_type=_ModelReader)


def _not_refcomp(f):
    """The message for an HDF5 file without refcomp's root ``format`` attribute."""
    if "model_config" in f.attrs or "layer_names" in f.attrs:
        return ("/: no attribute 'format': this is a Keras HDF5 file, not a refcomp file; "
                "convert it with refcomp convert (refcomp.io.read_any)")
    names = sorted(f)                       # root members only: no walk of an untrusted file
    shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
    return ("/: no attribute 'format': this is a plain-array HDF5 file (members: "
            f"{shown or 'none'}), not a refcomp model; refcomp info lists it, refcomp run "
            "and refcomp apply read it (refcomp.io.read_arrays)")


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
