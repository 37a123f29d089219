"""The "layers" suite: every layer kind and the shipped models, against the derived bound.

Each case runs a framework's forward pass (a function ``forward(model, x)``
of ``_torch_run``, ``_onnx_run``, ``_keras_run``) on hypothesis-drawn
single-layer models (:func:`refcomp.testing.strategies.layers`) and, for the
"shipped" cases, on the models of ``data/`` with the test split, and checks
every output element with :func:`refcomp.testing.check_conforms` (float32,
``func_ulps=4``).  A failing example is diagnosed; a layer the framework has
no operator for is a known difference.
"""

import numpy as np

from .._errors import FormatError
from ..model import Model
from ..testing import check_conforms
from ._common import NotBuilt, NotExpressible, rnn_options
from ._draw import case_seed, draw_examples
from ._report import CaseResult

__all__ = ["layer_cases", "run_layer_case", "SHIPPED_MODELS"]

#: Models of data/ run on the first 120 samples of the test split.
SHIPPED_MODELS = ("mlp", "cnn", "resnet", "lstm", "gru")


def _strategies():
    from ..testing.strategies import layers

    def only(kind, pred=None):
        s = layers(kinds=(kind,), onnx_options=True)
        return s if pred is None else s.filter(lambda c: pred(c[0]))

    def classic(pred=None):
        return lambda lay: not rnn_options(lay) and (pred is None or pred(lay))

    def gemm(lay):
        return lay.attrs["alpha"] != 1.0 or lay.attrs["beta"] != 1.0
    return {
        "dense": only("dense", lambda lay: not gemm(lay)),
        "dense with Gemm alpha / beta": only("dense", gemm),
        "conv2d (padding modes, groups, dilation)": only("conv2d"),
        "conv1d (padding modes, groups, dilation)": only("conv1d"),
        "max_pool2d": only("max_pool2d"),
        "avg_pool2d": only("avg_pool2d"),
        "max_pool N-D (dilations, ceil_mode)": only("max_pool"),
        "avg_pool N-D (ceil_mode)": only("avg_pool"),
        "batch_norm": only("batch_norm"),
        "activations": only("activation"),
        "residual": only("residual"),
        "lstm": only("lstm", classic()),
        "gru reset_after=True": only("gru", classic(lambda lay: lay.attrs["reset_after"])),
        "gru reset_after=False": only("gru", classic(lambda lay: not lay.attrs["reset_after"])),
        "simple_rnn": only("simple_rnn", classic()),
        "mgu": only("mgu"),
        "lstm, ONNX options (direction, clip, peepholes, input_forget, activations)":
            only("lstm", rnn_options),
        "gru, ONNX options (direction, clip, activations, seed-000 update)":
            only("gru", rnn_options),
        "simple_rnn, ONNX options (direction, clip, activations)":
            only("simple_rnn", rnn_options),
    }


def layer_cases():
    """Names of the cases of the layers suite, in run order."""
    from ..testing.strategies import layers  # noqa: F401  (hypothesis present)
    return list(_strategies()) + [f"shipped digits_{m}" for m in SHIPPED_MODELS]


def _examples(name, n, seed):
    if name.startswith("shipped "):
        import refcomp
        from ..data import default_data_dir, load_split
        path = default_data_dir() / f"{name.split()[1]}.h5"
        x, _ = load_split("test")
        return [(refcomp.load(path), x[:120])]
    layer_strats = _strategies()
    return [(Model([layer]), x) for layer, x in draw_examples(layer_strats[name], n,
                                                               case_seed(seed, name))]


def run_layer_case(name, forward, *, n, seed):
    """Run one case; return a :class:`CaseResult`."""
    try:
        examples = _examples(name, n, seed)
    except FormatError as exc:                   # no data/ directory (a wheel install)
        return CaseResult("layers", name, verdict="skipped", note=str(exc))
    worst, elements, bits, ran = 0.0, 0, 0, 0
    known, failure, not_built = None, None, False
    for model, x in examples:
        try:
            y = forward(model, x)
        except NotExpressible as exc:
            known = str(exc)
            not_built = isinstance(exc, NotBuilt)
            continue
        ran += 1
        rep = check_conforms(y, model, x, diagnose_failure=False)
        elements += rep.size
        worst = max(worst, rep.worst_ratio)
        ref = model(x)
        if y.shape == ref.shape:
            bits += int(np.count_nonzero(np.asarray(y, np.float32).view(np.uint32)
                                         != ref.astype(np.float32).view(np.uint32)))
        if not rep.passed and failure is None:
            full = check_conforms(y, model, x)
            failure = full.message(model.name).replace("\n", "; ")
    if failure is not None:
        verdict, note = "FAIL", failure
    elif ran == 0 and known is not None:
        verdict, note = ("skipped" if not_built else "known difference"), known
    else:
        verdict = "pass"
        note = "" if known is None else (f"{len(examples) - ran} of {len(examples)} examples "
                                         f"not expressible: {known}")
    return CaseResult("layers", name, examples=ran, elements=elements,
                      worst_ratio=worst if ran else None, mismatches=bits, verdict=verdict,
                      note=note)
