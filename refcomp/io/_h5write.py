"""Writing refcomp HDF5 files: :func:`save` (a model or a single stored weight).

Everything is checked first (:func:`_plan_model`, :func:`_check_weight_dtype`),
which also chooses the lowest format version that holds the content; then
the file is written atomically (:func:`refcomp.io._atomic.atomic_path`).
"""

import json

import numpy as np

from .. import __version__
from .._errors import DTypeError, FormatError, ParameterError
from .._validate import FLOAT_DTYPES
from ..model import Layer, Model
from ..weights._h5util import write_dataset
from ._atomic import atomic_path
from ._format import (FORMAT_NAME, FORMAT_VERSION, RAW_FORMAT_VERSION, WEIGHT_FORMAT_NAME,
                      _h5py, _lookup_encoding)


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
