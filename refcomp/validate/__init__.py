"""Conformance runs of other frameworks against refcomp: :func:`run` (``refcomp validate``).

A run draws cases with hypothesis (deterministically, from ``seed``), runs
each through the framework's own operators and through refcomp, and
scores it:

* float layers (suite "layers"): every output element within the derived
  bound of :func:`refcomp.testing.reference_and_bound` (float32,
  ``func_ulps=4``); failures are diagnosed (gate order, padding, layout
  ...); bit differences from refcomp's float32 reference are counted but
  allowed;
* integer codes (suites "quantizers", "pruning", "integer"): identical,
  except the boundary cases and exact ties of
  :func:`refcomp.testing.compare_quantized`, which are reported with the
  framework's tie rule;
* a framework that documents another semantics (no MGU, one GRU formula,
  its own NaN encoding, torch.topk's order among equal magnitudes) gets
  the verdict "known difference", reported, never hidden, never failed.

Frameworks: "torch" (PyTorch operators), "onnxruntime" (ONNX graphs built
node by node, run by ONNX Runtime), "keras" (Keras 3 layers on the torch
backend), "litert" (the LiteRT interpreter on flatbuffers written operator by
operator; see :data:`FRAMEWORK_NOTES`).  A framework that is not
installed raises :class:`refcomp.MissingDependencyError` naming the extra.

Example, in a user's own pytest::

    from refcomp.validate import run

    def test_onnxruntime_conforms():
        report = run("onnxruntime", "layers", examples=10)
        assert report.ok, report.table()
"""

import numpy as np

from .._errors import ParameterError
from .._progress import Progress
from ._common import FRAMEWORKS, require
from ._report import VERDICTS, CaseResult, ValidationReport

__all__ = ["run", "plan", "shipped_model_batches", "SUITES", "FRAMEWORKS", "VERDICTS", "ValidationReport",
           "CaseResult", "FRAMEWORK_NOTES"]

#: Suites of a run; "all" runs them in this order.
SUITES = ("layers", "quantizers", "pruning", "integer")

#: What each framework's run covers, beyond the table of its module.
FRAMEWORK_NOTES = {
    "torch": "torch.nn.functional / torch.nn modules, torch.quantize_per_*, fake quant, "
             "casts, torch.nn.utils.prune",
    "onnxruntime": "ONNX graphs of standard operators (opset 17/21) on the CPU provider",
    "keras": "Keras 3 layers (torch backend): Dense, Conv2D, pooling, BatchNormalization, "
             "LSTM, GRU, SimpleRNN",
    "litert": "LiteRT (ai-edge-litert) interpreter on .tflite flatbuffers written operator "
              "by operator (no converter): FULLY_CONNECTED, CONV_2D, pooling, activations, "
              "RESHAPE, ADD, batch norm as MUL/ADD, UNIDIRECTIONAL_SEQUENCE_LSTM / _RNN, "
              "GRU unrolled from builtins, QUANTIZE, DEQUANTIZE",
}


def _forward(framework):
    if framework == "torch":
        from ._torch_run import torch_forward
        return torch_forward
    if framework == "onnxruntime":
        require("onnx")
        from ._onnx_run import onnxruntime_forward
        return onnxruntime_forward
    if framework == "keras":
        from ._keras_run import keras_forward
        return keras_forward
    from ._litert_run import litert_forward
    return litert_forward


def _code_cases(framework):
    if framework == "torch":
        from ._torch_cases import TORCH_CASES
        return TORCH_CASES
    if framework == "onnxruntime":
        from ._ort_cases import ORT_CASES
        return ORT_CASES
    if framework == "keras":
        from ._keras_run import KERAS_CASES
        return KERAS_CASES
    from ._litert_run import LITERT_CASES
    return LITERT_CASES


def _versions(framework):
    import refcomp
    out = {"refcomp": refcomp.__version__, "numpy": np.__version__}
    if framework == "litert":
        require("litert")
        from importlib.metadata import version
        out["ai-edge-litert"] = version("ai-edge-litert")
        return out
    if framework == "keras":
        from ._keras_run import _keras
        mod = _keras()
    else:
        mod = require(framework)
    out[framework] = getattr(mod, "__version__", "?")
    if framework == "keras":
        out["keras backend"] = mod.backend.backend()
    return out


def plan(framework, suite="all"):
    """The ``(suite, case)`` names a run would execute, in order (no framework needed
    beyond what listing the cases imports)."""
    _check(framework, suite)
    suites = SUITES if suite == "all" else (suite,)
    out = []
    for s in suites:
        if s == "layers":
            from ._layers import layer_cases
            out += [(s, c) for c in layer_cases()]
        else:
            cases = _code_cases(framework).get(s, [])
            out += [(s, c) for c, _ in cases] or [(s, "(none)")]
    return out


def shipped_model_batches(framework, suite="all", *, examples=20):
    """``[(model path, batch), ...]``: the shipped models a run's cases feed through a
    forward pass and the largest batch each gets (the integer suite's shipped-model
    cases: the calibration split, and at most ``18 * examples`` test samples); empty
    when no case of the run uses them.  ``refcomp validate`` checks the memory of
    these forward passes before it starts (only the shipped splits are read here)."""
    from ..data import default_data_dir
    if not any(c.startswith("shipped models") for _, c in plan(framework, suite)):
        return []
    from ._integer_cases import _SHIPPED, _splits
    calib, test = (len(a) for a in _splits(int(examples)))
    return [(default_data_dir() / f"digits_{m}.h5", max(calib, test)) for m in _SHIPPED]


def _check(framework, suite):
    if framework not in FRAMEWORKS:
        raise ParameterError(f"framework must be one of {', '.join(FRAMEWORKS)}, got "
                             f"{framework!r}")
    if suite != "all" and suite not in SUITES:
        raise ParameterError(f"suite must be one of {', '.join(SUITES + ('all',))}, got "
                             f"{suite!r}")


def run(framework, suite="all", *, examples=20, seed=0, progress=False):
    """Run a conformance suite of ``framework`` against refcomp.

    Parameters
    ----------
    framework : {"torch", "onnxruntime", "keras", "litert"}
    suite : {"layers", "quantizers", "pruning", "integer", "all"}
    examples : int, keyword-only
        Hypothesis-drawn examples per case (the shipped-model cases run once;
        the quantizer, cast and pruning cases also run ten weight arrays of
        the shipped models, :mod:`refcomp.validate._shipped`).
    seed : int, keyword-only
        Seed of the draws: the same seed, hypothesis version and framework
        version give the same examples and the same table.
    progress : bool or None, keyword-only
        A progress bar on stderr (:class:`refcomp._progress.Progress`):
        False (default) none, None on a terminal (periodic lines off one).

    Returns
    -------
    ValidationReport
        ``ok`` is False when any case FAILs; ``table()`` / ``markdown()``
        render it.

    Raises
    ------
    ParameterError
        Unknown framework or suite, ``examples < 1``.
    MissingDependencyError
        The framework (or hypothesis) is not installed: the message names
        the extra to install.
    """
    _check(framework, suite)
    if not isinstance(examples, (int, np.integer)) or examples < 1:
        raise ParameterError(f"examples must be an integer >= 1, got {examples!r}")
    require("hypothesis")
    versions = _versions(framework)
    cases = plan(framework, suite)
    results = []
    bar = Progress(len(cases), f"validate {framework}", enabled=progress)
    forward = _forward(framework)
    code = _code_cases(framework)
    for s, c in cases:
        if s == "layers":
            from ._layers import run_layer_case
            results.append(run_layer_case(c, forward, n=int(examples), seed=int(seed)))
        elif c == "(none)":
            results.append(CaseResult(s, c, verdict="skipped",
                                      note=f"{framework} has no {s} utility to compare"))
        else:
            fn = dict(code[s])[c]
            results.append(fn(int(examples), int(seed)))
        bar.update()
    return ValidationReport(framework, results, versions=versions, seed=int(seed),
                            examples=int(examples))
