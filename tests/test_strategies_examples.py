"""Every public strategy of refcomp.testing.strategies documents, and runs, the test a user writes.

Each docstring's ``Examples`` section holds a ``@given`` property test
against "your own implementation" (``my_*``).  Here each example is
extracted and executed with stand-ins for those functions: plain NumPy
formulas where they are short (dense, int8 / QuantizeLinear / TFLite
quantizers, the naive conv2d of tests/naive.py, ml_dtypes' bfloat16 cast),
refcomp itself elsewhere (recurrent layers, pooling, minifloat ...): the
point is that the documented test runs as written, with a handful of
examples, not the numerics of the stand-ins.
"""

import inspect
import textwrap

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import naive
import refcomp
import refcomp.testing.strategies as S
from refcomp.testing import assert_bitexact, assert_conforms, compare_quantized

f32 = np.float32
PUBLIC = sorted(n for n in S.__all__ if callable(getattr(S, n)))


def _example(name):
    """The code block of the Examples section of strategy ``name``, dedented."""
    doc = inspect.getdoc(getattr(S, name)) or ""
    if "\nExamples\n--------\n" not in doc:
        return None
    sec = doc.split("\nExamples\n--------\n", 1)[1]
    lines = sec.split("\n")
    start = next(i for i, ln in enumerate(lines) if ln.rstrip().endswith("::")) + 1
    block = []
    for ln in lines[start:]:
        if ln.strip() and not ln.startswith("    "):
            break
        block.append(ln)
    return textwrap.dedent("\n".join(block)).strip() + "\n"


def _refcomp_layer(kind):
    def run(x, weights, **attrs):
        return refcomp.Model([refcomp.Layer(kind, weights=weights, attrs=attrs)])(x) \
            .astype(f32)
    return run


def _refcomp_codes(fn):
    return lambda w, *a, **kw: fn(w, *a, **kw).codes


def _my_dense(x, W, b):
    y = x @ W.T                                         # float32 BLAS
    return y if b is None else y + b


def _my_quantize_linear(w, scale, zero_point, *, axis, qmin, qmax):
    shp = [1] * w.ndim
    if axis is not None:
        shp[axis] = -1
    t = w / scale.astype(f32).reshape(shp)             # float32 division, as ONNX
    return np.clip(np.rint(t) + zero_point.reshape(shp), qmin, qmax).astype(np.int64)


def _my_tflite_quantize(w, scale, zero_point, *, signed):
    t = (w / f32(scale)).astype(np.float64)
    r = np.sign(t) * np.floor(np.abs(t) + 0.5)          # TfLiteRound: half away from zero
    lo, hi = (-128, 127) if signed else (0, 255)
    return np.clip(r + zero_point, lo, hi).astype(np.int64)


def _my_to_bfloat16_bits(v):
    ml = pytest.importorskip("ml_dtypes")
    return np.array([v], f32).astype(ml.bfloat16).view(np.uint16)[0]


class _Engine:
    @staticmethod
    def run(model, x):
        return model(x).astype(f32)


def _namespace():
    Q = refcomp.quantize
    ns = {"np": np, "st": st, "given": given, "refcomp": refcomp,
          "assert_conforms": assert_conforms, "compare_quantized": compare_quantized,
          "assert_bitexact": assert_bitexact}
    ns.update({n: getattr(S, n) for n in S.__all__})
    ns.update({
        "my_to_bfloat16_bits": _my_to_bfloat16_bits,
        "my_quantize_int8": lambda w, scale: np.clip(np.rint(w / f32(scale)), -127, 127)
        .astype(np.int8),
        "my_dense": _my_dense,
        "my_conv1d": lambda x, W, **attrs: _refcomp_layer("conv1d")(x, {"W": W}, **attrs),
        "my_conv2d": lambda x, W, *, stride, pads, dilation, groups: naive.conv2d(
            x, W, None, stride, pads, dilation, groups).astype(f32),
        "my_pool2d": lambda x, kind, **attrs: _refcomp_layer(kind)(x, {}, **attrs),
        "my_pool_nd": lambda x, kind, **attrs: _refcomp_layer(kind)(x, {}, **attrs),
        "my_gru": _refcomp_layer("gru"),
        "my_lstm": _refcomp_layer("lstm"),
        "my_engine": _Engine, "export": lambda model: model,
        "my_quantize_linear": _my_quantize_linear,
        "my_tflite_quantize": _my_tflite_quantize,
        "my_uniform": _refcomp_codes(Q.uniform),
        "my_minifloat_bits": _refcomp_codes(Q.minifloat),
        "my_fixed_point": _refcomp_codes(Q.fixed_point),
        "my_quantizers": {n: _refcomp_codes(getattr(Q, n))
                          for n in ("affine", "uniform", "minifloat", "fixed_point")},
    })
    return ns


def test_every_public_strategy_is_covered():
    assert len(PUBLIC) == 16 and "weight_arrays" in PUBLIC and "affine_tie_cases" in PUBLIC


@pytest.mark.parametrize("name", PUBLIC)
def test_strategy_documents_a_given_example(name):
    code = _example(name)
    assert code is not None, f"{name}: no Examples section"
    assert "@given(" in code and "def test_" in code, code
    assert "..." not in code, f"{name}: the example is not complete"


@pytest.mark.parametrize("name", PUBLIC)
def test_strategy_example_runs(name):
    code = _example(name)
    ns = _namespace()
    before = set(ns)
    exec(compile(code, f"<{name} example>", "exec"), ns)
    tests = [ns[k] for k in set(ns) - before if k.startswith("test_")]
    assert len(tests) == 1
    fast = settings(max_examples=4, deadline=None, database=None, derandomize=True,
                    suppress_health_check=list(HealthCheck))
    fast(tests[0])()
