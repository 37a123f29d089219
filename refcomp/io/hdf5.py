"""refcomp HDF5 model format, version 1 (specification: ``docs/FORMAT.md``).

Two kinds of refcomp file share the layout rules: a whole model
(``format = "refcomp-model"``) and a single stored weight such as one
:class:`refcomp.quantize.Quantized` (``format = "refcomp-weight"``).
:func:`save` / :func:`load` handle both.

Also plain-array files (:func:`read_arrays` / :func:`write_arrays`) for users
who export weights as HDF5 datasets rather than as a refcomp model.
"""

import fnmatch
import json
import os

import numpy as np

from .. import __version__
from .._errors import FormatError, ParameterError, RefcompError
from ..model import LAYER_KINDS, Layer, Model
from ._atomic import atomic_path
from ._h5util import write_dataset

__all__ = ["save", "load", "register_encoding", "read_arrays", "write_arrays",
           "FORMAT_NAME", "FORMAT_VERSION", "WEIGHT_FORMAT_NAME", "MAX_ELEMENTS"]

FORMAT_NAME = "refcomp-model"
FORMAT_VERSION = 1
#: ``format`` attribute of a file holding one stored weight (same version).
WEIGHT_FORMAT_NAME = "refcomp-weight"
#: Largest number of elements accepted in one dataset (refused before reading).
MAX_ELEMENTS = 1 << 31

_ENCODINGS = {}
#: Encodings defined by refcomp sub-packages: the module is imported on first
#: use, so ``refcomp.load`` reads them without the caller importing it first.
_ENCODING_MODULES = {
    "masked": "refcomp.prune.masked",
    "csr": "refcomp.sparse.csr",
    "csc": "refcomp.sparse.csr",
    "product_quantized": "refcomp.quantize.product",
    "residual_quantized": "refcomp.quantize.residual",
    "deep_compressed": "refcomp.compress.container",
}


def register_encoding(name, reader):
    """Register ``reader(h5py.Group) -> object`` for weight groups with attribute
    ``encoding == name``.  Objects written under that encoding must provide
    ``to_hdf5(group)`` which sets ``group.attrs["encoding"] = name``."""
    _ENCODINGS[name] = reader


def _register_builtin():
    from ..quantize._quantized import Quantized
    register_encoding("quantized", Quantized.from_hdf5)


_register_builtin()


def _lookup_encoding(name):
    if name not in _ENCODINGS and name in _ENCODING_MODULES:
        import importlib
        importlib.import_module(_ENCODING_MODULES[name])
    return name in _ENCODINGS


def _h5py():
    import h5py
    return h5py


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


def save(obj, path):
    """Write a model or a single stored weight to ``path`` (refcomp HDF5 v1), atomically.

    Parameters
    ----------
    obj : refcomp.Model, or a single weight object refcomp stores in
        models (a :class:`refcomp.quantize.Quantized`, or any object with
        ``to_hdf5(group)`` writing a registered ``encoding``).
    path : str or os.PathLike

    Notes
    -----
    A model is written as ``format = "refcomp-model"``; a single weight as
    ``format = "refcomp-weight"`` with the entry in group ``/weight``
    (``docs/FORMAT.md``).  Weights are stored with their exact dtype (raw
    datasets) or through their encoding (e.g. quantized codes bit-packed);
    loading gives back bit-identical arrays.  The file is written to a
    temporary file in the same directory, fsynced, then renamed over
    ``path``: an existing file is replaced only once the new one is
    complete, and a failure leaves it untouched.

    Raises
    ------
    ParameterError
        ``obj`` is neither a Model nor a storable weight.
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
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = FORMAT_NAME
            f.attrs["format_version"] = FORMAT_VERSION
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
def _attr(obj, key, path):
    if key not in obj.attrs:
        raise FormatError(f"{path}: missing attribute {key!r}")
    v = obj.attrs[key]
    return v.decode("utf-8") if isinstance(v, bytes) else v


def _read_raw(ds, path, wname):
    h5py = _h5py()
    if not isinstance(ds, h5py.Dataset):
        raise FormatError(f"{path}: expected a dataset")
    n = int(np.prod(ds.shape, dtype=np.int64)) if ds.shape else 1
    if n > MAX_ELEMENTS:
        raise FormatError(f"{path}: declares {n} elements, more than the limit {MAX_ELEMENTS}")
    allowed = ("i",) if wname == "index_map" else ("f",)
    if ds.dtype.kind not in allowed or (ds.dtype.kind == "f" and ds.dtype.itemsize not in (4, 8)):
        raise FormatError(f"{path}: unsupported dtype {ds.dtype} (float32/float64 weights, "
                          "int index maps)")
    return ds[()]


def _read_layer(group, path):
    h5py = _h5py()
    kind = _attr(group, "kind", path)
    if kind not in LAYER_KINDS:
        raise FormatError(f"{path}: unknown layer kind {kind!r}")
    name = _attr(group, "name", path)
    try:
        attrs = json.loads(_attr(group, "attrs", path))
    except (TypeError, ValueError) as exc:
        raise FormatError(f"{path}: attribute 'attrs' is not valid JSON ({exc})") from None
    if not isinstance(attrs, dict):
        raise FormatError(f"{path}: attribute 'attrs' must be a JSON object")
    if "weights" not in group:
        raise FormatError(f"{path}: missing group 'weights'")
    weights = {}
    required, optional, _ = LAYER_KINDS[kind]
    for wname in group["weights"]:
        obj = group["weights"][wname]
        wpath = f"{path}/weights/{wname}"
        if wname not in required + optional:
            raise FormatError(f"{wpath}: unexpected weight for a {kind} layer "
                              f"(expected {list(required + optional)})")
        enc = obj.attrs.get("encoding", None)
        enc = enc.decode() if isinstance(enc, bytes) else enc
        if enc is None:
            raise FormatError(f"{wpath}: missing attribute 'encoding'")
        if enc == "raw":
            weights[wname] = _read_raw(obj, wpath, wname)
        elif _lookup_encoding(enc) and isinstance(obj, h5py.Group):
            try:
                weights[wname] = _ENCODINGS[enc](obj)
            except RefcompError:
                raise
            except (KeyError, ValueError, TypeError, OSError) as exc:
                raise FormatError(f"{wpath}: cannot decode encoding {enc!r} ({exc})") from None
        else:
            raise FormatError(f"{wpath}: unknown weight encoding {enc!r}")
    for wname in required:
        if wname not in weights:
            raise FormatError(f"{path}/weights: missing dataset {wname!r} for a {kind} layer")
    sub = None
    if kind == "residual":
        if "layers" not in group:
            raise FormatError(f"{path}: residual layer without 'layers' group")
        sub = _read_layers(group["layers"], f"{path}/layers")
    try:
        return Layer(kind, name=name, attrs=attrs, weights=weights, layers=sub)
    except (ParameterError, FormatError) as exc:
        raise FormatError(f"{path}: {exc}") from None


def _read_layers(group, path):
    keys = sorted(group.keys())
    if keys != [f"{i:04d}" for i in range(len(keys))]:
        raise FormatError(f"{path}: layer groups must be named 0000, 0001, ... without gaps")
    return [_read_layer(group[k], f"{path}/{k}") for k in keys]


def load(path):
    """Read a refcomp HDF5 file (read-only): a model, or a single stored weight.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    refcomp.Model
        for a ``format = "refcomp-model"`` file, validated fully;
    the stored weight object
        (e.g. :class:`refcomp.quantize.Quantized`) for a ``format =
        "refcomp-weight"`` file written by :func:`save`; its codes and
        decoding rule are bit-identical to what was saved.

    Raises
    ------
    FormatError
        naming the HDF5 path and the problem: not an HDF5 file, truncated
        or corrupt, wrong format name, unsupported version, unknown layer
        kind or weight encoding, missing dataset, wrong dtype, absurd size,
        or shapes that do not fit between consecutive layers.
    DecodeError
        a stored weight whose packed streams are inconsistent (too short,
        codes out of range...).
    """
    h5py = _h5py()
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FormatError(f"{path}: no such file")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise FormatError(f"{path}: not a readable HDF5 file ({exc})") from None
    try:
        with f:
            fmt = _attr(f, "format", "/")
            if fmt not in (FORMAT_NAME, WEIGHT_FORMAT_NAME):
                raise FormatError(f"{path}: attribute 'format' is {fmt!r}, not {FORMAT_NAME!r} "
                                  f"or {WEIGHT_FORMAT_NAME!r}")
            version = int(_attr(f, "format_version", "/"))
            if version != FORMAT_VERSION:
                raise FormatError(f"{path}: unsupported format_version {version} "
                                  f"(this refcomp reads {FORMAT_VERSION})")
            if fmt == WEIGHT_FORMAT_NAME:
                return _read_weight_file(f, path)
            if "layers" not in f:
                raise FormatError(f"{path}: missing group '/layers'")
            layers = _read_layers(f["layers"], "/layers")
            input_shape = f.attrs.get("input_shape", None)
            input_shape = None if input_shape is None else tuple(int(s) for s in input_shape)
            try:
                metadata = json.loads(_attr(f, "metadata", "/"))
            except ValueError as exc:
                raise FormatError(f"{path}: metadata is not valid JSON ({exc})") from None
            name = _attr(f, "name", "/")
    except (OSError, KeyError, RuntimeError) as exc:
        raise FormatError(f"{path}: corrupt or truncated HDF5 file ({exc})") from None
    try:
        return Model(layers, name=name, input_shape=input_shape, metadata=metadata)
    except RefcompError as exc:
        raise FormatError(f"{path}: inconsistent model: {exc}") from None


def _read_weight_file(f, path):
    h5py = _h5py()
    if "weight" not in f or not isinstance(f["weight"], h5py.Group):
        raise FormatError(f"{path}: missing group '/weight'")
    g = f["weight"]
    enc = _attr(g, "encoding", "/weight")
    if not isinstance(enc, str) or not _lookup_encoding(enc):
        raise FormatError(f"{path}:/weight: unknown weight encoding {enc!r}")
    try:
        return _ENCODINGS[enc](g)
    except RefcompError:
        raise
    except (KeyError, ValueError, TypeError) as exc:
        raise FormatError(f"{path}:/weight: cannot decode encoding {enc!r} ({exc})") from None


# -- plain arrays -------------------------------------------------------------------
def read_arrays(path, *, pattern="*"):
    """Read every dataset of a plain HDF5 file: ``{"/group/name": ndarray}``.

    Keys are absolute HDF5 paths without the leading "/", in sorted
    (depth-first, name-ordered) traversal order; only paths matching the glob
    ``pattern`` are read.  The file is opened read-only; sizes are checked
    against :data:`MAX_ELEMENTS` before reading.
    """
    h5py = _h5py()
    out = {}
    try:
        with h5py.File(os.fspath(path), "r") as f:
            names = []
            f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
            for n in sorted(names):
                if not fnmatch.fnmatchcase(n, pattern):
                    continue
                ds = f[n]
                size = int(np.prod(ds.shape, dtype=np.int64)) if ds.shape else 1
                if size > MAX_ELEMENTS:
                    raise FormatError(f"{path}:/{n}: declares {size} elements, over the limit")
                out[n] = ds[()]
    except OSError as exc:
        raise FormatError(f"{path}: not a readable HDF5 file ({exc})") from None
    return out


def write_arrays(path, arrays, *, attrs=None):
    """Write ``{"group/name": ndarray}`` as datasets (groups created), atomically.

    ``attrs`` optionally maps a dataset path to a dict of attributes.
    """
    h5py = _h5py()
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            for n, a in arrays.items():
                ds = write_dataset(f, n.lstrip("/"), a)
                for k, v in ((attrs or {}).get(n) or {}).items():
                    ds.attrs[k] = v
