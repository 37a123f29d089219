"""TensorFlow Model Optimization (tfmot) cases of the keras "pruning" suite.

===========================================  ==============================================
tfmot ``PolynomialDecay.__call__``           :func:`refcomp.prune.polynomial_sparsity`,
(eager, and inside ``tf.function``)          ``mode="eager"`` / ``"graph"``: the float32
                                             sparsity bits and the update flag
tfmot ``pruning_impl.Pruning._update_mask``  :func:`refcomp.prune.magnitude` with
(what ``prune_low_magnitude`` applies)       ``keep_ties=True``: the mask, bit for bit,
                                             on weights with many exact ties
===========================================  ==============================================

tfmot needs TensorFlow, which Keras 3 on the torch backend does not.  The
cases run in the interpreter that has ``tensorflow_model_optimization``:
this one if it imports, else the one named by the environment variable
``REFCOMP_TFMOT_PYTHON`` (a separate virtual environment with
``tensorflow-cpu``, ``tensorflow-model-optimization`` and ``tf-keras``),
through a subprocess that reads the cases as JSON on stdin (float32 values
as their bit patterns, Python floats by ``repr``: exact) and writes the
results the same way.  Without either the cases are "skipped" with that
instruction.
"""

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np

from ._codes import CodeTally
from ._draw import case_seed
from ._report import CaseResult

__all__ = ["TFMOT_CASES", "tfmot_python"]

_SCRIPT = r'''
import json, os, sys
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np
import tensorflow as tf
import tensorflow_model_optimization as tfmot
from tensorflow_model_optimization.python.core.sparsity.keras import pruning_impl

req = json.load(sys.stdin)
out = {"versions": {"tensorflow": tf.__version__, "tfmot": tfmot.__version__},
       "schedules": [], "masks": []}
for c in req["schedules"]:
    sch = tfmot.sparsity.keras.PolynomialDecay(
        initial_sparsity=c["initial"], final_sparsity=c["final"], begin_step=c["begin"],
        end_step=c["end"], power=c["power"], frequency=c["frequency"])
    graph = tf.function(lambda s: sch(s))
    res = []
    for step in c["steps"]:
        for mode, fn in (("eager", sch), ("graph", graph)):
            upd, sp = fn(tf.constant(step, tf.int64))
            res.append([bool(upd.numpy()),
                        int(np.asarray(sp.numpy(), np.float32).view(np.uint32))])
    out["schedules"].append(res)
for c in req["masks"]:
    w = np.asarray(c["w"], np.uint32).view(np.float32).reshape(c["shape"])
    p = pruning_impl.Pruning(
        training_step_fn=lambda: 0, pruning_vars=[],
        pruning_schedule=tfmot.sparsity.keras.ConstantSparsity(c["sparsity"], 0),
        block_size=(1, 1), block_pooling_type="AVG")
    _, mask = p._update_mask(tf.constant(w))
    out["masks"].append(np.asarray(mask.numpy()).reshape(-1).astype(int).tolist())
json.dump(out, sys.stdout)
'''

_INSTALL = ("tfmot needs TensorFlow: pip install tensorflow-cpu tensorflow-model-optimization "
            "tf-keras (in a separate environment if this one holds Keras 3 without "
            "TensorFlow) and set REFCOMP_TFMOT_PYTHON to that environment's python")


def tfmot_python():
    """The interpreter that has tfmot: this one, ``$REFCOMP_TFMOT_PYTHON``, or None."""
    if importlib.util.find_spec("tensorflow_model_optimization") is not None:
        return sys.executable
    exe = os.environ.get("REFCOMP_TFMOT_PYTHON")
    return exe if exe and os.path.exists(exe) else None


def _run(req):
    exe = tfmot_python()
    proc = subprocess.run([exe, "-c", _SCRIPT], input=json.dumps(req), capture_output=True,
                          text=True, timeout=600)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["?"])[-1][:200]
        raise RuntimeError(f"the tfmot subprocess ({exe}) failed: {tail}")
    return json.loads(proc.stdout)


def _with_versions(result, res):
    result.note = "; ".join(x for x in (result.note, "tensorflow {tensorflow}, tfmot {tfmot}"
                                        .format(**res["versions"])) if x)
    return result


def _schedule_cases(n, seed):
    rng = np.random.default_rng(case_seed(seed, "tfmot PolynomialDecay"))
    cases = []
    for _ in range(n):
        begin = int(rng.integers(0, 200))
        end = begin + int(rng.integers(1, 3000))
        freq = int(rng.integers(1, 200))
        steps = sorted({-1, begin, end, end + 7, *rng.integers(-5, end + 50, 12).tolist()})
        cases.append({"initial": float(rng.choice([0.0, 0.1, 0.25, float(rng.uniform(0, 0.5))])),
                      "final": float(rng.choice([0.5, 0.8, 0.9, float(rng.uniform(0.5, 0.99))])),
                      "begin": begin, "end": end,
                      "power": [3, 2, 1, 0.5, 4, float(rng.uniform(0.2, 5))][int(rng.integers(6))],
                      "frequency": freq, "steps": [int(s) for s in steps]})
    return cases


def _mask_cases(n, seed):
    rng = np.random.default_rng(case_seed(seed, "tfmot _update_mask"))
    cases = []
    for _ in range(n):
        shape = [int(rng.integers(1, 9)), int(rng.integers(1, 40))]
        # few distinct magnitudes: many exact ties at the cut
        w = (rng.integers(-6, 7, shape) * rng.choice([0.25, 0.1, 1.0])).astype(np.float32)
        s = float(rng.choice([0.0, 0.3, 0.5, 0.75, 0.9, float(rng.uniform(0, 0.99))]))
        cases.append({"w": w.reshape(-1).view(np.uint32).tolist(), "shape": shape,
                      "sparsity": s})
    return cases


def _schedule(n, seed):
    from ..prune.schedule import polynomial_sparsity
    name = "tfmot PolynomialDecay vs polynomial_sparsity (eager and graph)"
    if tfmot_python() is None:
        return CaseResult("pruning", name, verdict="skipped", note=_INSTALL)
    cases = _schedule_cases(n, seed)
    res = _run({"schedules": cases, "masks": []})
    tally = CodeTally()
    for c, got in zip(cases, res["schedules"]):
        ours, theirs = [], []
        for (upd, bits), (step, mode) in zip(got, [(s, m) for s in c["steps"]
                                                   for m in ("eager", "graph")]):
            sp, u = polynomial_sparsity(step, initial_sparsity=c["initial"],
                                        final_sparsity=c["final"], begin_step=c["begin"],
                                        end_step=c["end"], power=c["power"],
                                        frequency=c["frequency"], mode=mode)
            ours += [int(np.float32(sp).view(np.uint32)), int(bool(u))]
            theirs += [bits, int(upd)]
        tally.exact(np.array(theirs, np.int64), np.array(ours, np.int64),
                    "sparsity bits / update flag")
    return _with_versions(tally.result("pruning", name), res)


def _masks(n, seed):
    from ..prune.magnitude import magnitude
    name = "tfmot _update_mask vs magnitude(keep_ties=True)"
    if tfmot_python() is None:
        return CaseResult("pruning", name, verdict="skipped", note=_INSTALL)
    cases = _mask_cases(n, seed)
    res = _run({"schedules": [], "masks": cases})
    tally = CodeTally()
    for c, got in zip(cases, res["masks"]):
        w = np.asarray(c["w"], np.uint32).view(np.float32).reshape(c["shape"])
        ours = magnitude(w, sparsity=c["sparsity"], keep_ties=True).reshape(-1)
        tally.exact(np.array(got, np.int64), ours.astype(np.int64), "mask")
    return _with_versions(tally.result("pruning", name), res)


TFMOT_CASES = [("tfmot PolynomialDecay vs polynomial_sparsity (eager and graph)", _schedule),
               ("tfmot _update_mask vs magnitude(keep_ties=True)", _masks)]
