"""``refcomp compress`` and ``refcomp size`` sub-commands (registered by refcomp.cli).

``refcomp compress MODEL.h5 -o OUT.h5 (--prune S | --no-prune) [--kmeans B |
--no-kmeans] [--huffman | --no-huffman] [--index-bits N] [--variant V]
[--index-coding C]`` runs the Deep Compression stages on every weight that
:func:`refcomp.compress.deep_compress` covers: ``W`` of dense and conv2d
layers and ``W_ih`` / ``W_hh`` of the recurrent layers (lstm, gru, mgu,
simple_rnn; an extension with the fully connected defaults).  The pruned
fraction must be chosen (``--prune S`` or ``--no-prune``): the paper's 0.9
is a setting for retrained networks and, without retraining, costs most of
the accuracy of every shipped model (see :data:`_PRUNE_HELP`).  The other
stages use the paper's defaults (8-bit conv / 5-bit dense and recurrent
sharing, relative indices, Huffman on both streams); ``--no-prune`` keeps every weight (sharing and
coding only); ``--index-coding universal`` writes each weight's
relative-index stream with its cheapest universal code, ``webgraph`` the
kept positions in the Boldi-Vigna scheme (``fixed`` /
``huffman`` force those; default: as the value stream).  ``--no-kmeans``
prunes only and stores the weights as ``Masked`` (a bitmap, no value or
relative-index stream), so ``--huffman``, ``--kmeans``, ``--index-bits``,
``--variant`` and ``--index-coding`` are refused with it (one-line error,
exit status 2).  Progress: a bar on a terminal, a line every 15 s otherwise.

``refcomp size FILE.h5 [--per-weight] [--json]`` prints the size report
(:func:`refcomp.compress.size_report`) of any refcomp model.
"""

import argparse
import json

from . import CLIError

__all__ = ["register"]


def _load_checked(args):
    """The model, and the ``--eval`` split, each checked against the run budget
    before it is read (and the forward pass of the split before any work)."""
    from ..io.hdf5 import load_model
    from ._files import check_model_fits, load_split_checked
    check_model_fits(args.model)
    model = load_model(args.model)
    return model, (load_split_checked(args.eval, model) if args.eval else None)


def _save_and_report(args, model, out, report, split):
    from ..io.hdf5 import save
    save(out, args.output)
    print(f"wrote {args.output}: {report.original_bits} -> {report.compressed_bits} bits, "
          f"tau = {report.tau:.3f}")
    if args.eval:
        from ..metrics import accuracy
        x, y = split
        print(f"accuracy on {args.eval} (no retraining): {accuracy(model(x), y):.4f} -> "
              f"{accuracy(out(x), y):.4f}")
    return 0


def _cmd_compress(args):
    from ._files import check_input, check_output
    check_input(args.model, "model")
    if args.codec == "nnc":
        return _cmd_compress_nnc(args)
    if args.qp is not None or args.nonweight_qp is not None or args.no_dq \
            or args.lambda_scale != 0.0 or args.dq_states is not None:
        raise CLIError("--qp, --nonweight-qp, --lambda-scale, --no-dq and --dq-states set the "
                       "NNC coder: add --codec nnc")
    if args.prune is None and not args.no_prune:
        raise CLIError("choose how much to prune: --prune S (fraction of each layer's weights "
                       "removed; no single value keeps accuracy on every model without "
                       "retraining, see --help) or --no-prune")
    check_output(args.output, (args.model,), force=args.force)
    model, split = _load_checked(args)
    huffman = args.huffman
    sparsity = 0.0 if args.no_prune else args.prune
    if args.no_kmeans:
        if huffman:
            raise CLIError("--huffman codes the shared-value symbols: it needs k-means "
                           "(drop --no-kmeans)")
        if args.kmeans is not None:
            raise CLIError("--kmeans and --no-kmeans exclude each other")
        for flag, value in (("--index-bits", args.index_bits), ("--variant", args.variant),
                            ("--index-coding", args.index_coding)):
            if value is not None:
                raise CLIError(f"{flag} sets the relative-index stream, which --no-kmeans "
                               "does not write (it stores Masked weights with a bitmap)")
        from ..prune.magnitude import magnitude
        from ..prune.masked import apply_masks, prunable_weights
        from ..prune._common import check_sparsity
        from ..compress.deep import DEFAULT_SPARSITY
        s = check_sparsity(DEFAULT_SPARSITY if sparsity is None else sparsity, "--prune")
        masks = {key: magnitude(w, sparsity=s) for key, w in prunable_weights(model).items()}
        out = apply_masks(model, masks)
        from ..compress.size import size_report
        report = size_report(out)
    else:
        from ..sparse.relative import DEFAULT_VARIANT
        from ..compress.deep import deep_compress
        out, report = deep_compress(
            model, sparsity=sparsity, bits=args.kmeans,
            huffman=True if huffman is None else huffman, index_bits=args.index_bits,
            variant=DEFAULT_VARIANT if args.variant is None else args.variant,
            index_coding=args.index_coding, progress=None if not args.quiet else False)
    return _save_and_report(args, model, out, report, split)


def _cmd_compress_nnc(args):
    from ._files import check_output
    for flag, value in (("--prune", args.prune), ("--kmeans", args.kmeans),
                        ("--huffman", args.huffman), ("--index-bits", args.index_bits),
                        ("--variant", args.variant), ("--index-coding", args.index_coding)):
        if value is not None:
            raise CLIError(f"{flag} is a Deep Compression option; --codec nnc quantizes with "
                           "--qp and codes with DeepCABAC")
    if args.no_prune or args.no_kmeans:
        raise CLIError("--no-prune/--no-kmeans are Deep Compression options, not --codec nnc's")
    from ..compress.nnc import DEFAULT_NONWEIGHT_QP, DEFAULT_QP, nnc_compress
    check_output(args.output, (args.model,), force=args.force)
    model, split = _load_checked(args)
    out, report = nnc_compress(
        model, qp=DEFAULT_QP if args.qp is None else args.qp,
        nonweight_qp=DEFAULT_NONWEIGHT_QP if args.nonweight_qp is None else args.nonweight_qp,
        dq=not args.no_dq, lambda_scale=args.lambda_scale,
        dq_states=8 if args.dq_states is None else args.dq_states,
        progress=None if not args.quiet else False)
    return _save_and_report(args, model, out, report, split)


def _cmd_size(args):
    from ..io.hdf5 import load_model as load
    from ..compress.size import size_report
    from ._files import check_input
    report = size_report(load(check_input(args.file)))
    if args.json:
        print(json.dumps(report.as_dict(), indent=1, default=str))
    else:
        print(report.to_markdown(per_weight=args.per_weight))
        print(f"\ntau = {report.tau:.4f} (seed 002 eq. (19): {report.original_bits} original "
              f"bits / {report.compressed_bits} compressed bits)")
    return 0


def _fraction(text):
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1], got {text!r}") \
            from None
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1], got {text!r}")
    return v


#: Measured on the shipped models (test split, fast forward pass, no
#: retraining; refcomp 0.1 of 2026-12-06): accuracy after deep_compress.
_PRUNE_HELP = """\
accuracy on the test split without retraining (float -> --prune 0 / 0.3 / 0.5 / 0.7 / 0.9):
  digits_mlp     96.9 % -> 96.7 / 96.7 / 97.2 / 93.3 / 46.1 %
  digits_cnn     98.6 % -> 98.6 / 98.9 / 96.7 / 88.6 / 18.9 %
  digits_resnet  98.6 % -> 98.6 / 97.5 / 96.7 / 80.0 / 47.5 %
  digits_lstm    98.1 % -> 96.9 / 96.7 / 76.7 / 14.7 / 18.3 %
  digits_gru     98.1 % -> 98.1 / 96.7 / 91.7 / 51.7 / 15.8 %
The paper's 0.9 (Han et al. 2016) assumes retraining after pruning."""


def register(subparsers):
    """Add the ``compress`` and ``size`` sub-commands."""
    p = subparsers.add_parser("compress", help="Deep Compression of dense, conv2d and "
                              "recurrent weights: prune, share (k-means), relative indices, "
                              "Huffman (no retraining)", epilog=_PRUNE_HELP,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model")
    p.add_argument("-o", "--output", required=True)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--prune", type=_fraction, default=None, metavar="S",
                   help="fraction of each layer's weights removed (required, or --no-prune; "
                        "see the table below)")
    g.add_argument("--no-prune", action="store_true", help="keep every weight")
    p.add_argument("--kmeans", type=int, default=None, metavar="BITS",
                   help="shared-value bits for every layer (default 8 conv, 5 dense)")
    p.add_argument("--no-kmeans", action="store_true",
                   help="prune only (weights stored as Masked)")
    p.add_argument("--huffman", action=argparse.BooleanOptionalAction, default=None,
                   help="Huffman-code both streams (default on with k-means)")
    p.add_argument("--index-bits", type=int, default=None, metavar="N",
                   help="relative index width (default 8 conv, 5 dense)")
    p.add_argument("--variant", choices=("reserved", "fig2"), default=None,
                   help="relative-index filler rule (default reserved)")
    p.add_argument("--index-coding", choices=("huffman", "fixed", "universal", "webgraph"),
                   default=None,
                   help="coding of the index stream: universal = the cheapest of Elias "
                        "gamma/delta, Rice, zeta_k per weight on the relative indices; "
                        "webgraph = Boldi-Vigna coding of the kept positions (default: as "
                        "the value stream, Huffman)")
    p.add_argument("--codec", choices=("deep", "nnc"), default="deep",
                   help="deep (default): Deep Compression; nnc: MPEG NNC core as NNCodec "
                        "2.1.3 (uniform or dependent quantization at --qp, DeepCABAC)")
    p.add_argument("--qp", type=int, default=None, metavar="Q",
                   help="--codec nnc: quantization parameter of the weights (default -38; "
                        "step = 2**(Q/4) at qp_density 2)")
    p.add_argument("--nonweight-qp", type=int, default=None, metavar="Q",
                   help="--codec nnc: qp of 1-D weights such as biases (default -75)")
    p.add_argument("--lambda-scale", type=float, default=0.0, metavar="S",
                   help="--codec nnc: rate-distortion quantization with CABAC rate estimates "
                        "(NNCodec's lambda_scale; default 0: distortion only)")
    p.add_argument("--no-dq", action="store_true",
                   help="--codec nnc: uniform quantizer instead of dependent quantization")
    p.add_argument("--dq-states", type=int, default=None, metavar="N",
                   help="--codec nnc: dependent-quantization state machine, 8 (NNC's, as "
                        "NNCodec; default) or 4 (VVC's; a refcomp variant NNCodec cannot read)")
    p.add_argument("--eval", nargs="?", const="test", default=None, metavar="SPLIT",
                   help="print accuracy before/after on a split (default test)")
    p.add_argument("--quiet", action="store_true", help="no progress")
    from ._files import add_force
    add_force(p)
    p.set_defaults(func=_cmd_compress)
    p = subparsers.add_parser("size", help="size report of a model: bits per stream, "
                              "entropy bounds, tau (seed 002 eq. 19)")
    p.add_argument("file")
    p.add_argument("--per-weight", action="store_true", help="one row per weight")
    p.add_argument("--json", action="store_true", help="JSON instead of a Markdown table")
    p.set_defaults(func=_cmd_size)
