"""Load a model from a file of any supported format: :func:`read_any`.

The format is chosen by extension (``.onnx``, ``.pt``/``.pth``, ``.keras``,
``.weights.h5``) and, for other ``.h5`` files, by content (refcomp or Keras
HDF5); the framework importers are imported only when their format is read.
"""

import json
import os

from .._errors import FormatError, ParameterError

__all__ = ["read_any", "file_kind", "FILE_KINDS"]

#: What :func:`file_kind` reports, and which refcomp commands read each kind.
FILE_KINDS = {
    "refcomp-model": "a refcomp model: read by info, run, eval, size, apply, compress, study",
    "refcomp-weight": "a single refcomp weight (refcomp.save of one compressed weight): "
                      "read by info and refcomp.load",
    "arrays": "a plain-array HDF5 file (weights, inputs or the logits of refcomp run): read by "
              "info, run (input x or --dataset), apply, and eval --data when it holds x and y",
    "keras": "a Keras model file: convert it with refcomp convert",
    "onnx": "an ONNX graph: convert it with refcomp convert",
    "torch": "a PyTorch state dict: convert it with refcomp convert --spec",
}


def file_kind(path):
    """What kind of file ``path`` is, from its name and root attributes (read-only).

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    str
        A key of :data:`FILE_KINDS`: "refcomp-weight" (an HDF5 file whose
        root ``format`` attribute says so), "refcomp-model" (any other HDF5
        file with a root ``format``: :func:`refcomp.load` validates it), "keras" (by
        extension or Keras root attributes), "onnx" / "torch" (by
        extension), or "arrays" (any other HDF5 file).

    Raises
    ------
    FormatError
        A missing path, a directory, or a file that is none of these.
    """
    p = os.fspath(path)
    if os.path.isdir(p):
        raise FormatError(f"{p}: is a directory, not a file")
    if not os.path.isfile(p):
        raise FormatError(f"{p}: no such file")
    low = p.lower()
    if low.endswith(".onnx"):
        return "onnx"
    if low.endswith((".pt", ".pth")):
        return "torch"
    if low.endswith((".keras", ".weights.h5")):
        return "keras"
    from ._h5check import _read_checked

    def classify(f, reader):
        # The checked open (global heaps, attribute types and sizes) comes
        # first: an untrusted file can make libhdf5 loop on its attributes.
        reader.check_attrs(f, "/")
        if "format" in f.attrs:
            # A refcomp file (or a damaged one: refcomp.load says what is wrong).
            fmt = f.attrs["format"]
            fmt = fmt.decode("utf-8", "replace") if isinstance(fmt, bytes) else fmt
            return "refcomp-weight" if (isinstance(fmt, str)
                                        and fmt == "refcomp-weight") else "refcomp-model"
        if "model_config" in f.attrs or "layer_names" in f.attrs:
            return "keras"
        return "arrays"

    return _read_checked(p, classify, keep_decode=False)


def read_any(path, *, fmt="auto", config=None, layout="NCHW", spec=None, input_shape=None):
    """Load a Keras, ONNX, PyTorch state-dict or refcomp file as a Model.

    Parameters
    ----------
    path : str or os.PathLike
    fmt : {"auto", "keras", "onnx", "torch", "refcomp"}
        "auto" decides by extension (.onnx, .pt/.pth, .keras, .weights.h5)
        and, for other .h5 files, by content (a refcomp file has the root
        attribute ``format``, a Keras one ``model_config`` or
        ``layer_names``).
    config, layout : optional
        Keras config JSON for weights-only files; image layout of Keras models.
    spec, input_shape : optional
        JSON layer spec and per-sample input shape of a PyTorch state dict.

    Returns
    -------
    refcomp.Model

    Raises
    ------
    FormatError
        An unreadable or malformed file, or a refcomp single-weight file
        (``refcomp-weight``), which holds no model.
    ParameterError
        An unknown ``fmt`` or a state dict without ``spec``.
    """
    p = os.fspath(path)
    if os.path.isdir(p):
        raise FormatError(f"{p}: is a directory, not a file")
    if not os.path.isfile(p):
        raise FormatError(f"{p}: no such file")
    if fmt == "auto":
        low = p.lower()
        if low.endswith(".onnx"):
            fmt = "onnx"
        elif low.endswith((".pt", ".pth")):
            fmt = "torch"
        elif low.endswith((".keras", ".weights.h5")):
            fmt = "keras"
        else:
            fmt = _sniff_h5(p)
    if fmt == "onnx":
        from .onnx import load
        return load(p, name=os.path.splitext(os.path.basename(p))[0])
    if fmt == "keras":
        from .keras import load
        return load(p, config=config, layout=layout)
    if fmt == "refcomp":
        from .hdf5 import load_model
        return load_model(p)
    if fmt == "torch":
        if spec is None:
            raise ParameterError("a PyTorch state dict needs --spec (a JSON layer list; see "
                                 "refcomp.io.torch)")
        try:
            import torch
        except ImportError:
            raise FormatError("reading .pt files needs torch") from None
        try:
            sd = torch.load(p, map_location="cpu", weights_only=True)
        except Exception as exc:  # pickle/zip errors of many kinds
            # torch's messages span several lines (advice on weights_only): first line only
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise FormatError(f"{p}: not a readable PyTorch state dict "
                              f"({type(exc).__name__}: {' '.join(first.split())[:200]})") from None
        try:
            with open(spec, encoding="utf-8") as fh:
                spec_list = json.load(fh)
        except (OSError, ValueError) as exc:
            raise FormatError(f"{spec}: cannot read the spec ({exc})") from None
        from .torch import from_state_dict
        return from_state_dict(sd, spec_list, input_shape=input_shape,
                               name=os.path.splitext(os.path.basename(p))[0])
    raise ParameterError(f"unknown input format {fmt!r}")


def _sniff_h5(p):
    import h5py
    try:
        with h5py.File(p, "r") as f:
            if "format" in f.attrs:
                return "refcomp"
            if "model_config" in f.attrs or "layer_names" in f.attrs or "layers" in f:
                return "keras"
    except OSError as exc:
        raise FormatError(f"{p}: not a readable HDF5 file ({exc})") from None
    raise FormatError(f"{p}: cannot tell the format (not a refcomp or Keras HDF5 file); "
                      "use --from")
