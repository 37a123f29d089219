"""``refcomp slim`` (registered by refcomp.cli): AutoSlim-style one-shot channel
search on a trained model (:func:`refcomp.search.autoslim`).

``refcomp slim [MODEL.h5] -o OUT.h5 --target R [--step 0.1] [--importance l1|l2]
[--data calib] [--eval test] [--curve CURVE.csv] [--workers N] [--scheduler ADDR]``
slims the model until its multiply-accumulates are at most R times the
original, evaluating each step's candidates on the validation split (the
shipped calibration split by default), writes the slimmed model and prints
the accuracy-against-MACs curve.  ``--workers`` / ``--scheduler`` run the
candidate evaluations with the study's executors
(:func:`refcomp.study.executors.run_tasks`), injected into the search.
"""

import csv
import functools
import os

from .._errors import ParameterError
from . import CLIError
from ._files import add_force, check_input, check_model_fits, check_output, load_split_checked

__all__ = ["register"]


def _cmd_slim(args):
    from ..data import default_data_dir
    from ..io.hdf5 import load_model, save
    from ..metrics import accuracy
    from ..search import autoslim
    from ..study.executors import run_tasks

    if args.workers < 1:
        raise ParameterError(f"--workers must be >= 1, got {args.workers}")
    model_path = args.model or os.path.join(default_data_dir(), "digits_cnn.h5")
    check_input(model_path, "model")
    check_output(args.output, (model_path,), force=args.force)
    if args.curve:
        check_output(args.curve, (model_path, args.output), force=args.force, what="curve")
        if os.path.abspath(args.curve) == os.path.abspath(args.output):
            raise CLIError(f"curve {args.curve!r} is also the output model; give another file")
    check_model_fits(model_path)
    model = load_model(model_path)
    x, y = load_split_checked(args.data, model)     # every size checked before any work
    split = load_split_checked(args.eval, model) if args.eval else None
    progress = False if args.quiet else None
    mapper = None
    if args.workers > 1 or args.scheduler:
        mapper = functools.partial(_run, workers=args.workers, scheduler=args.scheduler,
                                   run_tasks=run_tasks)
    res = autoslim(model, x, y, target_flops_ratio=args.target, step=args.step,
                   importance=args.importance, precision=args.precision, map_tasks=mapper,
                   progress=progress)
    save(res.model, args.output)
    print(f"{'step':>4}  {'layer':>6}  {'MACs':>10}  {'ratio':>6}  {'params':>8}  "
          f"{'val acc':>8}  widths")
    for c in res.curve:
        widths = ",".join(f"{p}:{w}" for p, w in c["widths"].items())
        print(f"{c['step']:>4}  {c['layer'] or '-':>6}  {c['flops']:>10}  "
              f"{c['flops_ratio']:>6.3f}  {c['params']:>8}  {100 * c['accuracy']:>7.2f}%  "
              f"{widths}")
    if args.curve:
        _write_curve(args.curve, res.curve)
    if args.eval:
        xt, yt = split
        print(f"{args.eval} accuracy: {100 * accuracy(model(xt), yt):.2f}% -> "
              f"{100 * accuracy(res.model(xt), yt):.2f}%")
    if not res.reached:
        print(f"target not reached: no layer can lose another step of channels "
              f"(MACs {res.curve[-1]['flops']} > {res.target_flops})")
    print(f"wrote {args.output}")
    return 0


def _write_curve(path, curve):
    """The curve as CSV, atomically like every CLI output (a temporary file in the
    target directory, renamed over ``path`` only once complete)."""
    from ..io._atomic import atomic_path
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["step", "layer", "flops", "flops_ratio", "params", "accuracy",
                        "widths"])
            for c in curve:
                w.writerow([c["step"], c["layer"] or "", c["flops"], repr(c["flops_ratio"]),
                            c["params"], repr(c["accuracy"]),
                            " ".join(f"{p}:{v}" for p, v in c["widths"].items())])


def _run(func, state, items, *, workers, scheduler, run_tasks):
    return run_tasks(func, state, items, workers=workers, scheduler=scheduler,
                     label="candidates", progress=False)


def register(sub):
    """Add the ``slim`` sub-command."""
    p = sub.add_parser("slim", help="AutoSlim-style one-shot channel search on a trained "
                       "model (no retraining)")
    p.add_argument("model", nargs="?", default=None,
                   help="refcomp model (default: the shipped data/digits_cnn.h5)")
    p.add_argument("-o", "--output", required=True, help="slimmed model file")
    p.add_argument("--target", type=float, required=True,
                   help="target MACs as a fraction in (0, 1] of the original")
    p.add_argument("--step", type=float, default=0.1,
                   help="fraction of a layer's original width removed per step")
    p.add_argument("--importance", choices=("l1", "l2"), default="l1")
    p.add_argument("--data", default="calib", help="validation split (default: calib)")
    p.add_argument("--eval", nargs="?", const="test", default=None, metavar="SPLIT",
                   help="print accuracy before/after on a split (default test)")
    p.add_argument("--precision", choices=("reference", "fast"), default="reference")
    p.add_argument("--curve", default=None, help="write the curve as CSV")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--scheduler", default=None, help="Dask scheduler address tcp://host:8786")
    p.add_argument("--quiet", action="store_true", help="no progress")
    add_force(p)
    p.set_defaults(func=_cmd_slim)
