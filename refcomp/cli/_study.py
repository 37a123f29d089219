"""``refcomp study`` (the main job) and ``refcomp apply`` sub-commands (registered by
refcomp.cli)."""

import fnmatch
import os
import time

import numpy as np

from .._errors import FormatError, ParameterError
from ..io.auto import FILE_KINDS
from . import CLIError
from ._files import add_force, check_forward_fits, check_input, check_model_fits, check_output

#: Files every study writes into --out (plots come on top).
REPORT_FILES = ("runs.csv", "runs.json", "tables.md")

__all__ = ["register", "parse_range", "parse_params", "study_method_params"]


def parse_range(text, *, name, lo=1, hi=16):
    """"1-8", "2,4,8" or "3" -> sorted tuple of ints in [lo, hi].

    Parameters
    ----------
    text : str
        Comma-separated integers and inclusive ranges ``a-b``.
    name : str
        Option name quoted in errors.
    lo, hi : int
        Accepted bounds.

    Returns
    -------
    tuple of int

    Raises
    ------
    ParameterError
        malformed text or a value outside [lo, hi].
    """
    vals = set()
    try:
        for part in str(text).split(","):
            part = part.strip()
            if "-" in part:
                a, b = part.split("-", 1)
                a, b = int(a), int(b)
                if a > b:
                    raise ValueError
                vals.update(range(a, b + 1))
            else:
                vals.add(int(part))
    except ValueError:
        raise ParameterError(f"{name} must look like '1-8' or '2,4,8', got {text!r}") from None
    if not vals or min(vals) < lo or max(vals) > hi:
        raise ParameterError(f"{name} must lie in [{lo}, {hi}], got {text!r}")
    return tuple(sorted(vals))


def parse_params(pairs):
    """["k=v", ...] -> dict with int/float/str values.

    Parameters
    ----------
    pairs : list of str or None

    Returns
    -------
    dict
        Values converted to int if possible, else float, else kept as str.

    Raises
    ------
    ParameterError
        an item without "=" or with an empty key.
    """
    out = {}
    for p in pairs or []:
        if "=" not in p:
            raise ParameterError(f"--param must be KEY=VALUE, got {p!r}")
        k, v = p.split("=", 1)
        if not k.strip():
            raise ParameterError(f"--param must be KEY=VALUE, got {p!r}")
        for conv in (int, float):
            try:
                v = conv(v)
                break
            except ValueError:
                pass
        out[k.strip()] = v
    return out


def study_method_params(pairs, methods):
    """``--param`` items of ``refcomp study`` -> ``{method: {name: value}}``.

    Parameters
    ----------
    pairs : list of str
        ``NAME=VALUE`` (for every chosen method declaring ``NAME``) or
        ``METHOD.NAME=VALUE`` (for that method only).
    methods : list of Method
        The study's methods.

    Returns
    -------
    dict
        Values converted to each parameter's declared type.

    Raises
    ------
    ParameterError
        a malformed item, a method not in the study, or a name no chosen
        method declares as an extra parameter.
    """
    by_name = {m.name: m for m in methods}
    out = {}
    for key, value in parse_params(pairs).items():
        if "." in key:
            mname, pname = key.split(".", 1)
            if mname not in by_name:
                raise ParameterError(f"--param {key}: method {mname!r} is not among the "
                                     f"study's methods ({', '.join(by_name)})")
            targets = [by_name[mname]]
        else:
            pname = key
            targets = [m for m in methods if pname in dict(m.extra_params)]
            if not targets:
                declared = sorted({f"{m.name}.{n}" for m in methods for n, _ in m.extra_params})
                raise ParameterError(f"--param {key}: no chosen method has a fixed parameter "
                                     f"{pname!r} (declared: {', '.join(declared) or 'none'})")
        for m in targets:
            out.setdefault(m.name, {})[pname] = m.resolve({pname: value})[pname]
    return out


def _missing_dirs(path):
    """The directories os.makedirs(path) would create, deepest first."""
    missing = []
    path = os.path.abspath(path)
    while not os.path.exists(path):
        missing.append(path)
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return missing


def _remove_empty(dirs):
    for d in dirs:          # deepest first
        try:
            os.rmdir(d)
        except OSError:
            break


def _check_out_dir(path):
    """Refuse an output folder that cannot be written, creating nothing: the
    report is staged and moved in at the end (refcomp.io._atomic.atomic_directory),
    so a run that is interrupted leaves no new folder behind."""
    from ..io._atomic import temp_name
    if os.path.exists(path) and not os.path.isdir(path):
        raise FormatError(f"output directory {path!r} is a file")
    probe_dir = path
    while not os.path.isdir(probe_dir):
        probe_dir = os.path.dirname(os.path.abspath(probe_dir))
    probe = temp_name(probe_dir)
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        os.unlink(probe)
    except OSError as exc:
        raise FormatError(f"output directory {path!r} is not writable "
                          f"({exc.strerror or exc})") from None


def _cmd_compare(args):
    """``refcomp study --compare``: every method on the shipped MLP and CNN (or MODEL)."""
    from ..data import default_data_dir, load_split
    from ..io.hdf5 import load_model as load
    from ..study.compare import COMPARE_METHODS, run_compare, winners
    from ..study.compare_report import write_compare

    methods = COMPARE_METHODS if args.methods is None else tuple(
        m.strip() for m in args.methods.split(",") if m.strip())
    if args.workers < 1:
        raise ParameterError(f"--workers must be >= 1, got {args.workers}")
    paths = [args.model] if args.model else [os.path.join(default_data_dir(), f"{n}.h5")
                                             for n in ("digits_mlp", "digits_cnn")]
    models = {}
    for p in paths:
        check_input(p, "model")
        models[os.path.splitext(os.path.basename(p))[0]] = load(p)
    x, y = load_split(args.data or "test")
    calibration = load_split(args.calib or "calib")
    out = args.out or "compare_out"
    existing = [n for n in ("compare.csv", "compare.md") if os.path.exists(os.path.join(out, n))]
    if existing and not args.force:
        raise CLIError(f"{os.path.join(out, existing[0])} exists (a previous comparison); pass "
                       "--force to replace it, or choose another --out")
    created = _missing_dirs(out)
    _check_out_dir(out)
    try:
        t0 = time.perf_counter()
        result = run_compare(models, x, y, methods=methods, calibration=calibration,
                             workers=args.workers, scheduler=args.scheduler,
                             progress=None if not args.quiet else False)
        elapsed = time.perf_counter() - t0
        files = write_compare(result, out, plots=not args.no_plots)
    except BaseException:
        _remove_empty(created)
        raise
    for k, row in winners(result).items():
        cells = ", ".join(f">= {t}: " + ("-" if r is None else
                                         f"{r['label']} {100 * r['accuracy']:.1f} %")
                          for t, r in row.items())
        print(f"{k}: most accurate with tau {cells}")
    print(f"{len(result['runs'])} runs in {elapsed:.1f} s; wrote {', '.join(files)} to {out}")
    return 0


def _cmd_study(args):
    if args.compare:
        if args.kl_unit != "nats":
            raise ParameterError("--kl-unit bits is a study option; --compare reports KL in "
                                 "nats (compare.csv column kl)")
        return _cmd_compare(args)
    if args.methods is None:
        args.methods = "uniform,kmeans"
    if args.out is None:
        args.out = "study_out"
    from ..data import default_data_dir, load_split
    from ..io.hdf5 import load_model as load
    from ..study.registry import get_method, method_names
    from ..study.report import summary_text, write_report
    from ..study.run import check_study, run_study

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if not methods:
        raise ParameterError(f"--methods names no method (got {args.methods!r}); registered: "
                             f"{', '.join(method_names())}")
    lo = 1
    meths = [get_method(m) for m in methods]
    for meth in meths:
        if meth.param == "bits":
            lo = max(lo, meth.min_value)
    # Default ranges start at the smallest width every chosen method accepts
    # (affine, fixed point, power of two need 2 bits); explicit ranges are
    # checked as given.
    bits = parse_range(args.bits or f"{lo}-8", name="--bits")
    adaptive = parse_range(args.adaptive_bits or f"{lo}-{max(lo, 4)}", name="--adaptive-bits")
    experiments = tuple(e.strip() for e in args.experiments.split(","))
    for e in experiments:
        if e not in ("per_layer", "whole", "adaptive"):
            raise ParameterError(f"unknown experiment {e!r} (per_layer, whole, adaptive)")
    if args.workers < 1:
        raise ParameterError(f"--workers must be >= 1, got {args.workers}")
    method_params = study_method_params(args.param, meths)
    model_path = args.model or os.path.join(default_data_dir(), "digits_cnn.h5")
    check_input(model_path, "model")
    check_model_fits(model_path)
    model = load(model_path)
    data = args.data or "test"
    x, y = load_split(data)
    check_forward_fits(model, x)       # one forward pass of the split, per process
    calibration = None
    if any("calibration" in m.needs for m in meths) or args.calib:
        # The shipped calibration split by default (data/digits_calib.h5).
        calibration = load_split(args.calib or "calib")
    kwargs = dict(methods=methods, bits=bits, adaptive_bits=adaptive, biases=args.biases,
                  precision=args.precision, workers=args.workers, scheduler=args.scheduler,
                  tradeoff_drop=args.tradeoff_drop / 100.0, experiments=experiments,
                  max_combinations=args.max_combinations, reuse=not args.no_reuse,
                  progress=None if not args.quiet else False,
                  method_params=method_params or None, source=args.data or None,
                  calibration=calibration, kl_unit=args.kl_unit)
    # Everything that can be checked is checked before the output folder is
    # created; a folder created here is removed again if the study fails.
    check_study(model, x, y, **kwargs)
    existing = [n for n in REPORT_FILES if os.path.exists(os.path.join(args.out, n))]
    if existing and not args.force:
        raise CLIError(f"{os.path.join(args.out, existing[0])} exists (a previous study); pass "
                       "--force to replace the report files, or choose another --out")
    created = _missing_dirs(args.out)
    _check_out_dir(args.out)
    try:
        t0 = time.perf_counter()
        result = run_study(model, x, y, **kwargs)
        elapsed = time.perf_counter() - t0
        result["settings"]["elapsed_seconds"] = round(elapsed, 3)
        files = write_report(result, args.out, plots=not args.no_plots)
    except BaseException:
        _remove_empty(created)
        raise
    print(summary_text(result))
    print(f"{len(result['runs'])} runs in {elapsed:.1f} s; wrote {', '.join(files)} to {args.out}")
    return 0


def _apply_method(method, value, extra, arrays, progress):
    """``{name: (array, Compressed)}`` and the per-array report rows."""
    from ..metrics import compression_ratio, parameter_mse
    from .._progress import Progress
    report, results = [], {}
    todo = [k for k, a in arrays.items() if a.dtype in (np.float32, np.float64) and a.size]
    bar = Progress(len(todo), f"apply {method.name}", enabled=progress)
    for name, a in arrays.items():
        if name not in todo:
            report.append((name, None))
            continue
        res = method.apply(np.ascontiguousarray(a).reshape(-1), value, **extra)
        results[name] = (a, res)
        orig_bits = a.size * a.dtype.itemsize * 8
        report.append((name, {"mse": parameter_mse([a], [res.decoded.reshape(a.shape)]),
                              "bits": int(res.bits),
                              "tau": compression_ratio(orig_bits, res.bits)}))
        bar.update()
    return results, report


def _stored_form(res, shape, dequantize):
    """The compressed object as a stored weight of ``shape`` (the method ran on the
    flattened weight), or None when it has no such form."""
    from .._errors import RefcompError
    from ..weights import CompressedWeight
    obj = res.obj
    if dequantize or not isinstance(obj, CompressedWeight):
        return None
    if tuple(obj.weight_shape) != tuple(shape):
        if not callable(getattr(obj, "reshape", None)):
            return None
        try:
            obj = obj.reshape(shape)
        except RefcompError:
            return None
    return obj


def _cmd_apply(args):
    from ..io._atomic import atomic_path
    from ..io.auto import file_kind
    from ..io.hdf5 import load_model, read_arrays, save
    from ..study.evaluate import UNIT_KINDS
    from ..study.registry import get_method
    from ..weights._h5util import write_dataset
    import h5py

    method = get_method(args.method)
    if method.level != "vector":
        raise ParameterError(f"method {method.name!r} compresses whole layers of a model "
                             "(level='layer'); apply works on weight arrays one by one: use "
                             "it in refcomp study")
    params = parse_params(args.param)
    value = params.pop(method.param, None)
    if value is None:
        raise ParameterError(f"method {method.name!r} needs --param {method.param}=VALUE")
    unknown = sorted(k for k in params if k not in dict(method.extra_params))
    if unknown:
        raise ParameterError(f"unknown parameter(s) {unknown} for method {method.name!r}")
    extra = method.resolve(params)
    if not isinstance(value, int) or not method.min_value <= value <= method.max_value:
        raise ParameterError(f"{method.param} must be an integer in [{method.min_value}, "
                             f"{method.max_value}], got {value!r}")
    check_input(args.input)
    check_output(args.output, (args.input,), force=args.force)
    # no forward pass: the declared arrays (model or plain-array file) are the memory
    check_model_fits(args.input, "the input")
    progress = False if args.quiet else None
    kind = file_kind(args.input)
    if kind == "refcomp-model":
        # A model in, a model out: every float weight of the compressible layers
        # (dense, conv2d, recurrent) whose "PATH/NAME" matches --datasets.
        model = load_model(args.input)
        arrays = {f"{path}/{name}": w for path, layer in model.named_layers()
                  if layer.kind in UNIT_KINDS for name, w in layer.weights.items()
                  if isinstance(w, np.ndarray)
                  and fnmatch.fnmatchcase(f"{path}/{name}", args.datasets)}
        if not arrays:
            raise ParameterError(f"no float weight of a dense, conv2d or recurrent layer of "
                                 f"{args.input} matches {args.datasets!r} (weights are named "
                                 "PATH/NAME, e.g. 0/W)")
        results, report = _apply_method(method, value, extra, arrays, progress)
        mapping = {}
        for key, (orig, res) in results.items():
            path, name = key.rsplit("/", 1)
            obj = _stored_form(res, orig.shape, args.dequantize)
            mapping[(path, name)] = obj if obj is not None else res.decoded.reshape(orig.shape)
        out = model.replace_weights(mapping)
        out.metadata = dict(out.metadata, refcomp_apply={
            "method": method.name, method.param: value, **extra,
            "dequantize": bool(args.dequantize)})
        save(out, args.output)
    elif kind == "arrays":
        arrays = read_arrays(args.input)
        selected = {k: a for k, a in arrays.items() if fnmatch.fnmatchcase(k, args.datasets)}
        if not selected:
            raise ParameterError(f"no dataset of {args.input} matches {args.datasets!r}")
        results, report = _apply_method(method, value, extra, selected, progress)
        report_of = dict(report)
        with atomic_path(args.output) as tmp:
            with h5py.File(tmp, "w") as f:
                f.attrs["refcomp_method"] = method.name
                f.attrs[f"refcomp_{method.param}"] = value
                for k, v in extra.items():
                    f.attrs[f"refcomp_{k}"] = v
                for name, a in arrays.items():
                    if name not in results:
                        write_dataset(f, name, a)         # copied unchanged
                        continue
                    orig, res = results[name]
                    if args.dequantize or res.obj is None or not hasattr(res.obj, "to_hdf5"):
                        obj = write_dataset(f, name, res.decoded.reshape(orig.shape))
                    else:
                        obj = f.create_group(name)
                        res.obj.to_hdf5(obj)
                        obj.attrs["original_shape"] = np.asarray(orig.shape, dtype=np.int64)
                    for k, v in report_of[name].items():
                        obj.attrs[k] = v
    else:
        raise ParameterError(f"{args.input} is {FILE_KINDS[kind]}; apply reads refcomp models "
                             "and plain-array HDF5 files")
    print(f"{'dataset':<40}{'MSE':>12}{'bits':>12}{'tau':>9}")
    for name, st in report:
        if st is None:
            print(f"{name:<40}{'(skipped: not a non-empty float array)':>33}")
        else:
            print(f"{name:<40}{st['mse']:>12.4e}{st['bits']:>12}{st['tau']:>9.2f}")
    print(f"wrote {args.output}")
    return 0


def register(sub):
    """Add the ``study`` and ``apply`` sub-commands.

    Parameters
    ----------
    sub : argparse._SubParsersAction
        The ``refcomp`` command's sub-parsers.
    """
    p = sub.add_parser("study", help="the Resmerita et al. quantization study (main job)")
    p.add_argument("model", nargs="?", default=None,
                   help="refcomp model file (default: the shipped data/digits_cnn.h5)")
    p.add_argument("--data", default=None, help="test split file (default: data/digits_test.h5)")
    p.add_argument("--calib", default=None,
                   help="calibration split for the methods that need one, e.g. obd "
                        "(default: data/digits_calib.h5)")
    p.add_argument("--methods", default=None,
                   help="registered method names (default uniform,kmeans; with --compare, "
                        "all the comparison's methods)")
    p.add_argument("--compare", action="store_true",
                   help="seed 001's comparative study: every method (magnitude, OBD, "
                        "structured, less-is-more, uniform, k-means, HashedNets, spectral, "
                        "Deep Compression, PCA, SVD, Tucker-2, CP, NNC) over its own sweep on "
                        "the shipped MLP and CNN (or "
                        "MODEL), no retraining; writes compare.csv/.json/.md/.png to --out "
                        "(default compare_out)")
    p.add_argument("--bits", default=None,
                   help="bits for per-layer and whole-network sweeps (default 1-8, from 2 "
                        "for methods that need it)")
    p.add_argument("--adaptive-bits", default=None,
                   help="bits each layer may take in the adaptive search (default 1-4)")
    p.add_argument("--experiments", default="per_layer,whole,adaptive",
                   help="comma-separated among per_layer (one layer at a time, Table 4), whole "
                        "(every layer, Figure 5), adaptive (bits per layer, Table 5); default all")
    p.add_argument("--biases", choices=("joint", "float"), default="joint")
    p.add_argument("--precision", choices=("reference", "fast"), default="reference")
    p.add_argument("--kl-unit", choices=("nats", "bits"), default="nats",
                   help="unit of the mean KL divergence: nats (default; CSV column kl) or bits "
                        "(column kl_bits); tables and figures name the unit")
    p.add_argument("--tradeoff-drop", type=float, default=1.0,
                   help="accuracy points below float allowed for the trade-off pick")
    p.add_argument("--max-combinations", type=int, default=4096)
    p.add_argument("--out", default=None, help="output folder (default study_out, or "
                   "compare_out with --compare)")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--scheduler", default=None, help="Dask scheduler address tcp://host:8786")
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("--no-reuse", action="store_true", help="recompute every run from the input")
    p.add_argument("--quiet", action="store_true",
                   help="no progress (default: a bar on a terminal, a line every 15 s "
                        "otherwise)")
    add_force(p)
    p.add_argument("--param", action="append", default=[], metavar="[METHOD.]NAME=VALUE",
                   help="fixed extra parameter of the chosen methods that declare it "
                        "(int, float, bool or str; repeatable)")
    p.set_defaults(func=_cmd_study)

    p = sub.add_parser("apply", help="apply a registered method to every weight of a refcomp "
                       "model (writes a model) or every dataset of a plain HDF5 file")
    p.add_argument("method")
    p.add_argument("input")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="the method's swept parameter (e.g. bits=4) and any extra parameter")
    p.add_argument("--datasets", default="*",
                   help="glob on dataset paths (on a model: PATH/NAME of the weights of dense, "
                        "conv2d and recurrent layers, e.g. '*/W')")
    p.add_argument("--dequantize", action="store_true",
                   help="write decoded arrays instead of the compressed representation")
    p.add_argument("--quiet", action="store_true", help="no progress")
    add_force(p)
    p.set_defaults(func=_cmd_apply)
