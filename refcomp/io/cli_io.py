"""``refcomp convert`` and ``refcomp eval`` sub-commands (registered by refcomp.cli).

``refcomp convert IN OUT.h5`` reads a Keras file (``.h5`` legacy model,
``.weights.h5`` with ``--config``, ``.keras``), an ONNX file (``.onnx``) or
a PyTorch state dict (``.pt``/``.pth``, loaded with
``torch.load(weights_only=True)``, plus ``--spec`` JSON and
``--input-shape``) and writes a refcomp HDF5 model.  The output file is
written atomically and only after the whole input was converted, so a
failed conversion writes nothing.

``refcomp eval MODEL.h5 [--data SPLIT]`` prints the top-1 accuracy of a
refcomp model on a data split (default: the shipped test split).
"""

import json
import os

import numpy as np

from .._errors import FormatError, ParameterError

__all__ = ["register", "read_any"]


def _shape(text):
    try:
        return tuple(int(s) for s in text.replace("x", ",").split(",") if s.strip())
    except ValueError:
        raise ParameterError(f"--input-shape must be integers like 8,8; got {text!r}") from None


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
            raise FormatError(f"{p}: not a readable PyTorch state dict "
                              f"({type(exc).__name__}: {exc})") from None
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


def _cmd_convert(args):
    from .hdf5 import save
    model = read_any(args.input, fmt=args.fmt, config=args.config, layout=args.layout,
                     spec=args.spec,
                     input_shape=None if args.input_shape is None else _shape(args.input_shape))
    if args.name:
        model.name = args.name
    save(model, args.output)
    print(f"wrote {args.output}: {model!r}")
    return 0


def _cmd_eval(args):
    from .hdf5 import load_model
    from ..data import load_split
    model = load_model(args.model)
    x, y = load_split(args.data)
    logits = model(x, precision=args.precision)
    if logits.ndim != 2 or logits.shape[0] != y.shape[0]:
        raise FormatError(f"model output has shape {logits.shape}; expected (N, classes) "
                          f"with N = {y.shape[0]}")
    # argmax: the first maximal class wins ties (numpy.argmax), as in every framework
    correct = int(np.sum(np.argmax(logits, axis=1) == y))
    print(f"accuracy {correct / y.shape[0]:.4f} ({correct}/{y.shape[0]}) of {args.model} on "
          f"{args.data} [{args.precision}]")
    return 0


def register(subparsers):
    """Add the ``convert`` and ``eval`` sub-commands to an argparse subparsers object."""
    p = subparsers.add_parser("convert", help="convert a Keras / ONNX / PyTorch model to refcomp "
                              "HDF5")
    p.add_argument("input")
    p.add_argument("output")
    p.add_argument("--from", dest="fmt", default="auto",
                   choices=("auto", "keras", "onnx", "torch", "refcomp"))
    p.add_argument("--config", default=None, help="Keras config JSON for weights-only files")
    p.add_argument("--layout", default="NCHW", choices=("NCHW", "NHWC"),
                   help="tensor layout of imported Keras image models")
    p.add_argument("--spec", default=None, help="JSON layer spec for a PyTorch state dict")
    p.add_argument("--input-shape", default=None, help="per-sample input shape, e.g. 8,8")
    p.add_argument("--name", default=None)
    p.set_defaults(func=_cmd_convert)
    p = subparsers.add_parser("eval", help="top-1 accuracy of a model on a data split")
    p.add_argument("model")
    p.add_argument("--data", default="test",
                   help="split name (train/calib/test) or HDF5 file with x, y; default test")
    p.add_argument("--precision", choices=("reference", "fast"), default="reference")
    p.set_defaults(func=_cmd_eval)
