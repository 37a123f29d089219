"""``refcomp quantize`` sub-command (registered by refcomp.cli).

``refcomp quantize MODEL.h5 --int8 [--calib SPLIT] [--mode MODE] [--calibration METHOD]
[--weights SCHEME] [--activations SCHEME] [--act-dtype int8|uint8] [--eval SPLIT | --no-eval]
[--onnx OUT.onnx [--onnx-form qlinear|qdq]] [--force]
-o OUT.h5`` quantizes a float model to an integer
model (:func:`refcomp.integer.quantize_model`, TFLite int8 spec, requantization ``--mode``),
writes it in the refcomp HDF5 format and prints the accuracy of the float model and of the
integer pipeline (:func:`refcomp.integer.run`) on the test split, with the share of
identical predictions.  Recurrent layers are refused by name.  Both outputs are written
atomically and, like every command's, refuse to replace an input, or an existing file unless
``--force`` is given.
"""

import os

import numpy as np

from . import CLIError

__all__ = ["register"]


def _cmd_quantize(args):
    if not args.int8:
        raise CLIError("quantize: only integer quantization is implemented; pass --int8")
    from ..integer import quantize_model, run
    from ..io.hdf5 import load_model, save
    from ..metrics import accuracy
    from ._files import check_input, check_model_fits, check_output, load_split_checked
    check_input(args.model, "model")
    check_output(args.output, (args.model, args.calib), force=args.force)
    if args.onnx:
        check_output(args.onnx, (args.model, args.calib, args.output), force=args.force,
                     what="ONNX output")
        if os.path.abspath(args.onnx) == os.path.abspath(args.output):
            raise CLIError(f"ONNX output {args.onnx!r} is also the -o output; give another "
                           "file")
    check_model_fits(args.model)                  # every size checked before any work
    model = load_model(args.model)
    xc, _ = load_split_checked(args.calib, model)
    split = load_split_checked(args.eval, model) if args.eval else None
    qm = quantize_model(model, xc, mode=args.mode, calibration=args.calibration,
                        weights=args.weights, activations=args.activations,
                        act_dtype=args.act_dtype)
    save(qm, args.output)
    meta = qm.metadata["integer"]
    print(f"wrote {args.output}: {model.name} -> int8, mode {args.mode}, activations "
          f"{meta['act_dtype']} ({args.activations}, {args.calibration} on {xc.shape[0]} "
          f"calibration samples), weights int8 {args.weights}")
    if args.onnx:
        from ..integer.onnx_export import to_onnx
        from ..io._atomic import atomic_path
        m = to_onnx(qm, form=args.onnx_form)
        with atomic_path(args.onnx) as tmp:           # like every CLI output
            with open(tmp, "wb") as f:
                f.write(m.SerializeToString())
        print(f"wrote {args.onnx}: ONNX {args.onnx_form} graph of the integer model")
    if args.eval:
        x, y = split
        yf = model(x)
        yq = run(qm, x)
        same = float(np.mean(np.argmax(yf, axis=1) == np.argmax(yq, axis=1)))
        print(f"accuracy on {args.eval} ({x.shape[0]} samples): float {accuracy(yf, y):.4f}, "
              f"int8 {accuracy(yq, y):.4f}; identical predictions {same:.4f}; "
              f"max |logit difference| {float(np.max(np.abs(yf - yq))):.4g}")
    return 0


def register(subparsers):
    """Add the ``quantize`` sub-command."""
    from ..integer.ptq import ACTIVATION_SCHEMES, CALIBRATIONS, WEIGHT_SCHEMES
    from ..integer.requantize import MODES
    p = subparsers.add_parser("quantize", help="integer (int8) post-training quantization "
                              "with the requantization of TFLite, ONNX Runtime or PyTorch, "
                              "and its accuracy against the float model")
    p.add_argument("model")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--int8", action="store_true", help="integer-only int8 model (required)")
    p.add_argument("--calib", default="calib", metavar="SPLIT",
                   help="calibration split or HDF5 file (default the shipped calib split)")
    p.add_argument("--mode", choices=MODES, default="tflite_double",
                   help="requantization semantics (default tflite_double)")
    p.add_argument("--calibration", choices=CALIBRATIONS, default="minmax")
    p.add_argument("--weights", choices=WEIGHT_SCHEMES, default="per_channel_symmetric")
    p.add_argument("--activations", choices=ACTIVATION_SCHEMES, default="per_tensor_asymmetric")
    p.add_argument("--act-dtype", choices=("int8", "uint8"), default=None,
                   help="activation codes (default int8; uint8 for --mode torch)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--eval", default="test", metavar="SPLIT",
                   help="accuracy report on this split (default test)")
    g.add_argument("--no-eval", dest="eval", action="store_const", const=None)
    p.add_argument("--onnx", default=None, metavar="OUT.onnx",
                   help="also write the integer model as an ONNX graph")
    p.add_argument("--onnx-form", choices=("qlinear", "qdq"), default="qlinear")
    from ._files import add_force
    add_force(p)
    p.set_defaults(func=_cmd_quantize)
