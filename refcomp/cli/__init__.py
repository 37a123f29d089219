"""Command-line interface: ``refcomp <command> ...``.

Every command is a function ``func(args) -> int``.  ``info`` and ``run``
live here; the other commands live in one module per group, each adding its
sub-commands with a ``register(subparsers)`` function listed in
:data:`PLUGINS`:

- :mod:`refcomp.cli._io`: ``convert``, ``eval``;
- :mod:`refcomp.cli._study`: ``study``, ``apply``;
- :mod:`refcomp.cli._compress`: ``compress``, ``size``;
- :mod:`refcomp.cli._quantize`: ``quantize`` (integer int8 models).

This package is the top of the import graph: it may import every other part
of refcomp (io, the algorithms, the study), and none of them imports it.
Errors print one line on stderr (``refcomp: error: ...``) and exit
non-zero; no traceback.
"""

import argparse
import importlib
import sys


from .._errors import RefcompError

#: Modules that add sub-commands with ``register(subparsers)``.
PLUGINS = ("refcomp.cli._io", "refcomp.cli._study", "refcomp.cli._compress",
           "refcomp.cli._quantize")


class CLIError(RefcompError):
    """A command-line usage error."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise CLIError(f"{self.prog}: {message}")


def _cmd_info(args):
    from ..io.hdf5 import load_model
    model = load_model(args.model)
    print(model.summary())
    return 0


def _read_input(path, dataset):
    from ..io.hdf5 import read_arrays
    arrays = read_arrays(path)
    if dataset is None:
        if "x" in arrays:
            dataset = "x"
        elif len(arrays) == 1:
            dataset = next(iter(arrays))
        else:
            raise CLIError(f"{path}: has datasets {sorted(arrays)}; choose one with --dataset")
    if dataset not in arrays:
        raise CLIError(f"{path}: no dataset {dataset!r} (has {sorted(arrays)})")
    return arrays[dataset]


def _cmd_run(args):
    from ..io.hdf5 import load_model, write_arrays
    model = load_model(args.model)
    x = _read_input(args.input, args.dataset)
    y = model(x, precision=args.precision)
    write_arrays(args.output, {"y": y})
    print(f"wrote {args.output}: y {y.shape} {y.dtype}")
    return 0


def build_parser():
    parser = _Parser(prog="refcomp", description="Bit-exact reference implementation of "
                     "neural-network compression.")
    from .. import __version__
    parser.add_argument("--version", action="version", version=f"refcomp {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    p = sub.add_parser("info", help="layers, shapes, parameters and bytes of a model")
    p.add_argument("model")
    p.set_defaults(func=_cmd_info)
    p = sub.add_parser("run", help="forward pass of a model on an HDF5 input")
    p.add_argument("model")
    p.add_argument("input", help="HDF5 file with dataset 'x' (or --dataset)")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--dataset", default=None)
    p.add_argument("--precision", choices=("reference", "fast"), default="reference")
    p.set_defaults(func=_cmd_run)
    for mod in PLUGINS:
        try:
            module = importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name and mod.startswith(exc.name):
                continue   # optional plugin not present in this tree
            raise
        module.register(sub)
    return parser


def main(argv=None):
    """Entry point of the ``refcomp`` console script; returns the exit code."""
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help(sys.stderr)
            return 2
        return int(args.func(args) or 0)
    except CLIError as exc:
        print(f"refcomp: error: {exc}", file=sys.stderr)
        return 2
    except (RefcompError, OSError) as exc:
        msg = " ".join(str(exc).split())
        print(f"refcomp: error: {msg}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("refcomp: interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        print("refcomp: error: out of memory", file=sys.stderr)
        return 1
