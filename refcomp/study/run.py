"""The study of Resmerita et al. §5 on any model: per-layer sweep, whole
network, and adaptive per-layer bit allocation (Tables 4-5, Figures 2-5)."""

import inspect
import itertools
import math
import pickle
import uuid

import numpy as np

from .._errors import ParameterError, ShapeError
from .._validate import as_float_array, check_choice, describe
from ..metrics import KL_UNITS, kl_in_unit
from .evaluate import Evaluator, find_units, layer_view
from .executors import check_main_guard, run_tasks
from .registry import get_method

__all__ = ["run_study", "check_study", "pareto_front", "DEFAULT_MAX_COMBINATIONS", "KL_COLUMNS"]

#: the runs' KL column per unit: "kl" (nats, the default and the historical name) or "kl_bits"
KL_COLUMNS = {"nats": "kl", "bits": "kl_bits"}

#: Above this many adaptive assignments per method the greedy search is used.
DEFAULT_MAX_COMBINATIONS = 4096

_EVALUATORS = {}

_EXPERIMENTS = ("per_layer", "whole", "adaptive")


def _compress_task(state, item):
    # The Method objects travel with the state (functions pickled by
    # reference), so a worker needs no registry entry for user methods.
    # Every method runs through the layer interface; a flat-vector method
    # through its adapter (the same call on theta_k, the same bits).
    u, method, value = item
    meth, extra = state["methods"][method]
    res = meth.compress_layer(state["views"][u], value, model=state.get("model"),
                              calibration=state.get("calibration"), **extra)
    return res.weights, res.bits


def _eval_task(state, configs):
    ev = _EVALUATORS.get(state["token"])
    if ev is None:
        _EVALUATORS.clear()
        ev = Evaluator(state["model"], state["x"], state["y"], state["units"], state["table"],
                       precision=state["precision"], reuse=state["reuse"])
        _EVALUATORS[state["token"]] = ev
    return [ev.run({u: (m, v) for u, m, v in cfg}) for cfg in configs]


def _chunks(seq, n_chunks):
    size = max(1, math.ceil(len(seq) / max(1, n_chunks)))
    return [seq[i:i + size] for i in range(0, len(seq), size)]


def pareto_front(rows, *, x="tau", y="accuracy"):
    """Rows not dominated in (x, y), both maximised; sorted by x increasing.

    A row is dominated if another has x >= and y >= with one strict.
    Exact ties keep the first row in input order.

    Parameters
    ----------
    rows : list of dict
        Runs with numeric ``x`` and ``y`` keys.
    x, y : str
        Keys of the two maximised quantities.

    Returns
    -------
    list of dict
        The non-dominated rows (the same objects), by increasing ``x``.
    """
    order = sorted(range(len(rows)), key=lambda i: (-rows[i][x], -rows[i][y], i))
    front, best_y = [], -math.inf
    for i in order:
        if rows[i][y] > best_y:
            front.append(rows[i])
            best_y = rows[i][y]
    return sorted(front, key=lambda r: r[x])


def run_study(model, x, y, *, methods=("uniform", "kmeans"), bits=tuple(range(1, 9)),
              adaptive_bits=(1, 2, 3, 4), biases="joint", precision="reference", workers=1,
              scheduler=None, max_combinations=DEFAULT_MAX_COMBINATIONS, tradeoff_drop=0.01,
              experiments=("per_layer", "whole", "adaptive"), reuse=True, progress=None,
              method_params=None, source=None, calibration=None, kl_unit="nats"):
    """Run the study; return a dict with settings, baseline, units and every run.

    Parameters
    ----------
    model : Model
        Model with float weights.
    x : ndarray
        (N, *input) test inputs.
    y : ndarray
        (N,) integer labels, each in [0, C) for the model's C outputs.
    methods : sequence of str
        Registered method names (:mod:`refcomp.study.registry`), built-in
        or registered by the user; the :class:`~refcomp.study.registry.Method`
        objects are shipped with the tasks, so user methods also run with
        ``workers`` > 1 or a ``scheduler`` (their functions must then be
        picklable: module-level functions of an importable module).
    bits : sequence of int
        Values swept in the per-layer and whole-network experiments.
    adaptive_bits : sequence of int
        Values each unit may take in the adaptive experiment; all
        len(adaptive_bits)**L assignments are evaluated when that is at most
        ``max_combinations``, else the greedy search below.
    biases : {"joint", "float"}
        "joint" (default; seed 002 §5.1: theta_k groups W_k and b_k, one
        quantizer per layer) or "float" (biases kept at full precision and
        counted at their size).
    precision : {"reference", "fast"}
        Forward-pass precision.
    workers : int
        1 runs in-process; N > 1 uses N local processes.
    scheduler : str or distributed.Client, optional
        Dask scheduler; takes precedence over ``workers``.
    max_combinations : int
        Limit of the exhaustive adaptive search, per method.
    tradeoff_drop : float
        Accuracy drop (fraction, 0.01 = 1 point) allowed below the float
        baseline when choosing the "best trade-off" configurations.
    experiments : sequence of str
        Among "per_layer", "whole", "adaptive".
    reuse : bool
        Reuse the activations of unchanged layers (same results, faster).
    progress : bool, optional
        Progress bar on stderr (default: only on a terminal); it advances
        once per run, also in the serial run.
    method_params : mapping, optional
        ``{method: {name: value}}``, values of the extra (fixed) parameters
        a method declares (``register_method(extra_params=...)``); the
        values used are recorded in ``settings["method_params"]`` (only
        present when a chosen method declares extra parameters).
    source : str, optional
        Where ``x`` and ``y`` come from (a file name), quoted in errors.
    calibration : (ndarray, ndarray), optional
        ``(x_cal, y_cal)``, inputs and integer labels handed to the layer
        methods that declare ``needs=("calibration",)`` (e.g. ``obd``);
        required when such a method is chosen.  Its size is recorded in
        ``settings["calibration"]``.
    kl_unit : {"nats", "bits"}
        Unit of the mean KL divergence (seed 002 eq. (11)) of every run.
        "nats" (default): natural log, the column ``kl`` (as before: the
        default outputs are unchanged).  "bits": the same value divided by
        ln 2 (:func:`refcomp.metrics.kl_in_unit`), in a column named
        ``kl_bits`` instead of ``kl``, and ``settings["kl_unit"] = "bits"``;
        the tables and figures then say "KL (bits)".

    Returns
    -------
    dict
        ``settings``, ``model``, ``n_test``, ``baseline``, ``units`` and
        ``runs`` (one dict of metrics per evaluated configuration).

    Raises
    ------
    ShapeError, ParameterError
        Bad input, detected before any work starts (see :func:`check_study`).

    Notes
    -----
    Greedy search (large L): start with every unit at max(adaptive_bits);
    each round evaluates lowering each unit by one step and keeps the
    candidate with the highest accuracy (ties: higher tau, then lowest unit
    index), until every unit is at the minimum.  Every evaluated assignment
    enters the Pareto front and the best-of selections.
    """
    meths, extras, units = _validate(model, x, y, methods=methods, bits=bits,
                                     adaptive_bits=adaptive_bits, biases=biases, workers=workers,
                                     scheduler=scheduler, tradeoff_drop=tradeoff_drop,
                                     experiments=experiments, method_params=method_params,
                                     source=source, calibration=calibration, kl_unit=kl_unit)
    y = np.asarray(y)
    views = [layer_view(model, u) for u in units]

    # Methods whose parameter is not a bit width (e.g. pruning's "keep"
    # percentage) sweep their registered values in every experiment.
    def sweep(m):
        return tuple(bits) if m.param == "bits" else m.values

    def levels_of(m):
        return sorted(set(adaptive_bits if m.param == "bits" else m.values))

    items = []
    for m in meths:
        needed = set()
        if "per_layer" in experiments or "whole" in experiments:
            needed |= set(sweep(m))
        if "adaptive" in experiments:
            needed |= set(levels_of(m))
        items += [(u.index, m.name, v) for v in sorted(needed) for u in units]
    shipped = {m.name: (m, extras.get(m.name, {})) for m in meths}
    cstate = {"views": views, "methods": shipped}
    needs = {n for m in meths for n in m.needs}
    if "model" in needs:
        cstate["model"] = model
    if "calibration" in needs:
        cstate["calibration"] = calibration
    compressed = run_tasks(_compress_task, cstate, items,
                           workers=workers, scheduler=scheduler, label="compress",
                           progress=progress)
    table = dict(zip(items, compressed))
    state = {"token": uuid.uuid4().hex, "model": model, "x": x, "y": y, "units": units,
             "table": table, "precision": precision, "reuse": reuse}
    parallel = workers > 1 or scheduler is not None

    def evaluate(configs, label):
        # Serial: one run per task, so the progress bar advances per run (the
        # same in-process evaluator sees the same runs in the same order).
        # Parallel: a few chunks per worker, to amortise the task overhead.
        chunks = _chunks(configs, 4 * max(workers, 2)) if parallel else [[c] for c in configs]
        res = run_tasks(_eval_task, state, chunks, workers=workers, scheduler=scheduler,
                        label=label, progress=progress)
        return [r for chunk in res for r in chunk]

    base = Evaluator(model, x, y, units, {}, precision=precision, reuse=False)
    runs = []

    def record(experiment, method, unit_label, value, cfg, metrics):
        if kl_unit != "nats":        # the evaluator reports nats; the column names the unit
            metrics = {(KL_COLUMNS[kl_unit] if k == "kl" else k):
                       (kl_in_unit(v, kl_unit) if k == "kl" else v) for k, v in metrics.items()}
        row = {"experiment": experiment, "method": method.name, "label": method.label,
               "unit": unit_label, "value": value,
               "config": "-".join(str(v) for _, _, v in cfg) if experiment == "adaptive" else "",
               **metrics}
        runs.append(row)
        return row

    if "per_layer" in experiments:
        cfgs, meta = [], []
        for m in meths:
            for u in units:
                for v in sweep(m):
                    cfgs.append(((u.index, m.name, v),))
                    meta.append((m, u.label, v))
        for (m, lab, v), cfg, met in zip(meta, cfgs, evaluate(cfgs, "per-layer sweep")):
            record("per_layer", m, lab, v, cfg, met)
    if "whole" in experiments:
        cfgs, meta = [], []
        for m in meths:
            for v in sweep(m):
                cfgs.append(tuple((u.index, m.name, v) for u in units))
                meta.append((m, v))
        for (m, v), cfg, met in zip(meta, cfgs, evaluate(cfgs, "whole network")):
            record("whole", m, "all", v, cfg, met)
    adaptive_modes = {}
    if "adaptive" in experiments:
        for m in meths:
            levels = levels_of(m)
            n_comb = len(levels) ** len(units)
            mode = adaptive_modes[m.name] = ("exhaustive" if n_comb <= max_combinations
                                             else "greedy")
            if mode == "exhaustive":
                cfgs = [tuple((u.index, m.name, v) for u, v in zip(units, assign))
                        for assign in itertools.product(levels, repeat=len(units))]
                for cfg, met in zip(cfgs, evaluate(cfgs, f"adaptive {m.label}")):
                    record("adaptive", m, "adaptive", None, cfg, met)
            else:
                _greedy(m, units, levels, evaluate, record)
    modes = set(adaptive_modes.values())
    adaptive_mode = modes.pop() if len(modes) == 1 else ("mixed" if modes else None)
    settings = {"methods": [m.name for m in meths], "bits": list(bits),
                "adaptive_bits": list(adaptive_bits), "biases": biases,
                "precision": precision, "tradeoff_drop": tradeoff_drop,
                "adaptive_mode": adaptive_mode, "adaptive_modes": adaptive_modes,
                "params": {m.name: m.param for m in meths},
                "max_combinations": max_combinations,
                "accounting": {m.name: m.accounting for m in meths}}
    if kl_unit != "nats":            # recorded when not the default (default output unchanged)
        settings["kl_unit"] = kl_unit
    if extras:
        settings["method_params"] = extras
    if any(m.level != "vector" for m in meths):
        settings["levels"] = {m.name: m.level for m in meths}
    if "calibration" in needs:
        settings["calibration"] = {"n": int(calibration[0].shape[0])}
    out = {"settings": settings,
           "model": model.name, "n_test": int(x.shape[0]),
           "baseline": {"accuracy": base.base_accuracy,
                        "bits": base.original_bits + base.other_bits},
           "units": [dict(u.as_dict(), bits=u.n_params * u.dtype.itemsize * 8) for u in units],
           "runs": runs}
    pca = [m for m in meths if m.name == "pca"]
    if pca:
        # Seed 004's Tables 1 and 3 (P, G, A, ER; A-R after the coordinate
        # refit) over the pca method's energies: only when pca is chosen, so
        # the other studies' outputs are unchanged.
        from .seed004 import seed004_tables
        out["seed004"] = seed004_tables(model, x, y, calibration, pca[0].values,
                                        precision=precision,
                                        forward=extras.get("pca", {}).get("forward",
                                                                          "reconstruct"))
    return out


def check_study(model, x, y, **kwargs):
    """Check the arguments of :func:`run_study` without running anything.

    Everything :func:`run_study` would reject is rejected here, cheaply (one
    forward pass of one sample to count the model's classes), so that a
    caller can validate before creating output files.

    Parameters
    ----------
    model, x, y, **kwargs
        As for :func:`run_study` (unknown keywords raise TypeError).

    Raises
    ------
    ShapeError
        inputs that do not fit the model, labels of the wrong shape or
        dtype, an empty test set, a model whose output is not (N, classes).
    ParameterError
        unknown method, experiment or extra parameter; bit widths out of a
        method's range; labels outside [0, classes); a method function that
        cannot be pickled for ``workers`` > 1 or a ``scheduler``.
    """
    args = inspect.signature(run_study).bind(model, x, y, **kwargs)
    args.apply_defaults()
    a = dict(args.arguments)
    _validate(a["model"], a["x"], a["y"], methods=a["methods"], bits=a["bits"],
              adaptive_bits=a["adaptive_bits"], biases=a["biases"], workers=a["workers"],
              scheduler=a["scheduler"], tradeoff_drop=a["tradeoff_drop"],
              experiments=a["experiments"], method_params=a["method_params"],
              source=a["source"], calibration=a["calibration"], kl_unit=a["kl_unit"])


def _validate(model, x, y, *, methods, bits, adaptive_bits, biases, workers, scheduler,
              tradeoff_drop, experiments, method_params, source, calibration=None,
              kl_unit="nats"):
    """(methods, {method: extra params} for methods declaring some, units) or raise."""
    where = f" in {source}" if source else ""
    as_float_array("x", x)
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != x.shape[0] or y.dtype.kind not in "iu":
        raise ShapeError(f"labels{where} must be integers of shape ({x.shape[0]},), got "
                         f"{describe(y)}")
    if x.shape[0] == 0:
        raise ShapeError(f"test set{where} is empty")
    if model.input_shape is not None and tuple(x.shape[1:]) != model.input_shape:
        raise ShapeError(f"test data{where} {describe(x)} does not fit model {model.name!r} "
                         f"(input_shape {model.input_shape})")
    if biases not in ("joint", "float"):
        raise ParameterError(f"biases must be 'joint' or 'float', got {biases!r}")
    check_choice("kl_unit", kl_unit, KL_UNITS)
    for e in experiments:
        if e not in _EXPERIMENTS:
            raise ParameterError(f"unknown experiment {e!r} ({', '.join(_EXPERIMENTS)})")
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1:
        raise ParameterError(f"workers must be an integer >= 1, got {workers!r}")
    meths = [get_method(m) for m in methods]
    swept = tuple(bits) if ("per_layer" in experiments or "whole" in experiments) else ()
    swept += tuple(adaptive_bits) if "adaptive" in experiments else ()
    for m in meths:
        if m.param != "bits":
            continue    # sweeps its own registered values (validated at registration)
        for v in swept:
            if not m.min_value <= v <= m.max_value:
                raise ParameterError(f"{m.param}={v} out of range [{m.min_value}, "
                                     f"{m.max_value}] for method {m.name!r}")
    method_params = dict(method_params or {})
    for name in method_params:
        if name not in [m.name for m in meths]:
            raise ParameterError(f"parameters given for method {name!r}, which is not among "
                                 f"the study's methods ({', '.join(m.name for m in meths)})")
    extras = {m.name: m.resolve(method_params.get(m.name)) for m in meths if m.extra_params}
    if not 0 <= tradeoff_drop <= 1:
        raise ParameterError(f"tradeoff_drop must be in [0, 1], got {tradeoff_drop}")
    needing = [m.name for m in meths if "calibration" in m.needs]
    if needing:
        _check_calibration(model, calibration, needing)
    units = find_units(model, biases=biases)
    if not units:
        raise ParameterError(f"model {model.name!r} has no compressible layer")
    _check_labels(model, x, y, where)
    if workers > 1 and scheduler is None:
        check_main_guard(f"workers={workers}")
    if workers > 1 or scheduler is not None:
        _check_picklable(meths, extras, scheduler)
    return meths, extras, units


def _check_calibration(model, calibration, needing):
    what = f"method(s) {', '.join(repr(n) for n in needing)} need(s) a calibration split"
    if calibration is None:
        raise ParameterError(f"{what}: pass calibration=(x, y) (refcomp study --calib FILE)")
    try:
        xc, yc = calibration
    except (TypeError, ValueError):
        raise ParameterError(f"{what} given as (x, y), got {type(calibration).__name__}") \
            from None
    as_float_array("calibration x", xc)
    yc = np.asarray(yc)
    if yc.ndim != 1 or yc.shape[0] != xc.shape[0] or yc.dtype.kind not in "iu" \
            or xc.shape[0] == 0:
        raise ShapeError(f"calibration labels must be integers of shape ({xc.shape[0]},) for "
                         f"a non-empty split, got {describe(yc)}")
    if model.input_shape is not None and tuple(xc.shape[1:]) != model.input_shape:
        raise ShapeError(f"calibration data {describe(xc)} does not fit model {model.name!r} "
                         f"(input_shape {model.input_shape})")


def _check_labels(model, x, y, where):
    out = model(x[:1], precision="fast")
    if out.ndim != 2:
        raise ShapeError(f"model {model.name!r} outputs {describe(out)} per batch; the study "
                         f"needs (N, classes) scores")
    n_cls = out.shape[1]
    bad = y[(y < 0) | (y >= n_cls)]
    if bad.size:
        raise ParameterError(
            f"labels{where} must lie in [0, {n_cls - 1}] for the {n_cls} classes of model "
            f"{model.name!r}; {bad.size} of {y.size} lie outside, in [{int(bad.min())}, "
            f"{int(bad.max())}]")


def _check_picklable(meths, extras, scheduler):
    dumps = pickle.dumps
    if scheduler is not None:
        try:        # what Dask uses: pickle, cloudpickle for __main__ and lambdas
            from distributed.protocol.pickle import dumps
        except ImportError:
            pass    # run_tasks reports the missing 'dist' extra
    for m in meths:
        try:
            dumps((m, extras.get(m.name, {})))
        except Exception as exc:  # noqa: BLE001 - any pickling failure
            where = "Dask workers" if scheduler is not None else "worker processes"
            raise ParameterError(
                f"method {m.name!r} cannot be sent to {where}: its function {m.func!r} "
                f"(or its parameters) cannot be pickled ({type(exc).__name__}: {exc}); "
                f"define it with def at module level in an importable module, not as a "
                f"lambda or nested function") from None


def _greedy(method, units, levels, evaluate, record):
    current = [len(levels) - 1] * len(units)
    cfg = tuple((u.index, method.name, levels[i]) for u, i in zip(units, current))
    (met,) = evaluate([cfg], f"greedy {method.label}")
    record("adaptive", method, "adaptive", None, cfg, met)
    while any(current):
        cands, idxs = [], []
        for k in range(len(units)):
            if current[k] > 0:
                nxt = list(current)
                nxt[k] -= 1
                cands.append(tuple((u.index, method.name, levels[i]) for u, i in zip(units, nxt)))
                idxs.append((k, nxt))
        results = evaluate(cands, f"greedy {method.label}")
        best = None
        for (k, nxt), cfg, met in zip(idxs, cands, results):
            record("adaptive", method, "adaptive", None, cfg, met)
            key = (met["accuracy"], met["tau"], -k)
            if best is None or key > best[0]:
                best = (key, nxt)
        current = best[1]
