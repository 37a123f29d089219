"""``refcomp validate`` (registered by refcomp.cli): conformance runs of a framework.

``refcomp validate --framework torch|onnxruntime|keras|litert [--suite
layers|quantizers|pruning|integer|all] [--examples N] [--seed S] [--report
out.md] [--force] [--quiet]`` runs :func:`refcomp.validate.run` and prints
its table (case, examples, compared elements, worst error / bound, bit
mismatches, verdict, note) and a summary line.  Exit status 0 when no case
fails, 1 when one does (known differences and skipped cases do not fail);
a framework that is not installed is one line naming the extra (exit 1).
``--report`` also writes the Markdown report (atomically; an existing file
only with ``--force``).  Progress: a bar on a terminal, a line every 15 s
otherwise; ``--quiet`` silences it.
"""

from . import CLIError

__all__ = ["register"]


def _cmd_validate(args):
    from ..validate import run
    if args.report:
        from ._files import check_output
        check_output(args.report, (), force=args.force)
    if args.examples < 1:
        raise CLIError("--examples must be >= 1")
    _check_memory(args)
    report = run(args.framework, args.suite, examples=args.examples, seed=args.seed,
                 progress=False if args.quiet else None)
    print(report.table())
    print(report.summary())
    if args.report:
        from ..io._atomic import atomic_path
        with atomic_path(args.report) as tmp:
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(report.markdown())
        print(f"wrote {args.report}")
    return 0 if report.ok else 1


def _check_memory(args):
    """The shipped models' forward passes of the run (integer suite), checked against
    the run budget before any case starts (refcomp.io.limits)."""
    from ..io.hdf5 import load_model
    from ..validate import shipped_model_batches
    from ._files import check_batch_fits, check_model_fits
    for path, batch in shipped_model_batches(args.framework, args.suite,
                                             examples=args.examples):
        check_model_fits(path)
        check_batch_fits(load_model(path), batch)


def register(sub):
    """Add the ``validate`` sub-command to the ``refcomp`` parser."""
    from ..validate import FRAMEWORKS, SUITES
    from ._files import add_force
    p = sub.add_parser("validate", help="run a framework's layers, quantizers, pruning and "
                       "integer operators against refcomp (derived bounds, exact codes)")
    p.add_argument("--framework", required=True, choices=FRAMEWORKS)
    p.add_argument("--suite", default="all", choices=SUITES + ("all",))
    p.add_argument("--examples", type=int, default=20, metavar="N",
                   help="hypothesis-drawn examples per case (default 20)")
    p.add_argument("--seed", type=int, default=0, metavar="S",
                   help="seed of the draws (default 0): same seed, same cases")
    p.add_argument("--report", metavar="OUT.md", help="also write a Markdown report")
    p.add_argument("--quiet", action="store_true", help="no progress bar or lines")
    add_force(p)
    p.set_defaults(func=_cmd_validate)
