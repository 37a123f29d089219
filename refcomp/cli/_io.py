"""``refcomp convert`` and ``refcomp eval`` sub-commands (registered by refcomp.cli).

``refcomp convert IN OUT.h5`` reads a Keras file (``.h5`` legacy model,
``.weights.h5`` with ``--config``, ``.keras``), an ONNX file (``.onnx``) or
a PyTorch state dict (``.pt``/``.pth``, loaded with
``torch.load(weights_only=True)``, plus ``--spec`` JSON and
``--input-shape``) and writes a refcomp HDF5 model.  The output file is
written atomically and only after the whole input was converted, so a
failed conversion writes nothing.  Reading is :func:`refcomp.io.read_any`.

``refcomp eval MODEL.h5 [--data SPLIT]`` prints the top-1 accuracy of a
refcomp model on a data split (default: the shipped test split).
"""

import numpy as np

from .._errors import FormatError, ParameterError
from ..io.auto import read_any
from ._files import add_force

__all__ = ["register"]


def _shape(text):
    try:
        return tuple(int(s) for s in text.replace("x", ",").split(",") if s.strip())
    except ValueError:
        raise ParameterError(f"--input-shape must be integers like 8,8; got {text!r}") from None


def _cmd_convert(args):
    from ..io.hdf5 import save
    from ._files import check_input, check_output
    check_input(args.input)
    check_output(args.output, (args.input, args.config, args.spec), force=args.force)
    model = read_any(args.input, fmt=args.fmt, config=args.config, layout=args.layout,
                     spec=args.spec,
                     input_shape=None if args.input_shape is None else _shape(args.input_shape))
    if args.name:
        model.name = args.name
    save(model, args.output)
    print(f"wrote {args.output}: {model!r}")
    return 0


def _nonfinite(a):
    bad = ~np.isfinite(a.reshape(a.shape[0], -1)).all(axis=1)
    rows = np.flatnonzero(bad)
    first = ", ".join(str(int(i)) for i in rows[:5]) + (", ..." if rows.size > 5 else "")
    return rows.size, first


def _cmd_eval(args):
    from ..io.hdf5 import load_model
    from ..data import load_split
    from ._files import check_forward_fits, check_input, check_model_fits
    check_input(args.model, "model")
    check_model_fits(args.model)
    model = load_model(args.model)
    x, y = load_split(args.data)
    if x.shape[0] == 0:
        raise ParameterError(f"split {args.data!r} is empty: no accuracy to report")
    # An accuracy over NaN inputs would be a confident number about nothing.
    n_bad, first = _nonfinite(x)
    if n_bad:
        raise ParameterError(f"split {args.data!r}: {n_bad} of {x.shape[0]} samples hold "
                             f"non-finite inputs (NaN/Inf; samples {first}); no accuracy "
                             "is reported (refcomp run computes their outputs)")
    check_forward_fits(model, x)
    logits = model(x, precision=args.precision)
    if logits.ndim != 2 or logits.shape[0] != y.shape[0]:
        raise FormatError(f"model output has shape {logits.shape}; expected (N, classes) "
                          f"with N = {y.shape[0]}")
    n_cls = logits.shape[1]
    out = y[(y < 0) | (y >= n_cls)]
    if out.size:
        raise ParameterError(f"labels of {args.data!r} must lie in [0, {n_cls - 1}] for the "
                             f"{n_cls} classes of the model; {out.size} of {y.size} lie "
                             f"outside, in [{int(out.min())}, {int(out.max())}]")
    n_bad, first = _nonfinite(logits)
    if n_bad:
        raise ParameterError(f"the model's outputs are non-finite (NaN/Inf) for {n_bad} of "
                             f"{x.shape[0]} samples (samples {first}); no accuracy is reported")
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
    add_force(p)
    p.set_defaults(func=_cmd_convert)
    p = subparsers.add_parser("eval", help="top-1 accuracy of a model on a data split")
    p.add_argument("model")
    p.add_argument("--data", default="test",
                   help="split name (train/calib/test) or HDF5 file with x, y; default test")
    p.add_argument("--precision", choices=("reference", "fast"), default="reference")
    p.set_defaults(func=_cmd_eval)
