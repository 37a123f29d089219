"""ONNX backend node cases run through refcomp's layer API (helper of test_onnx_node_gate).

The cases are generated at test time from the installed ``onnx`` package's
own definitions (``onnx.backend.test.case.node``: importing an operator's
module runs its ``export*`` functions, which record (model, inputs,
expected outputs)); recent wheels no longer ship the data files.

Each case is classified:

* ``exact``: every output equals ONNX's expected output bit for bit (NaN
  positions equal; float8 / int4 codes equal);
* ``tolerance``: not bit-equal but within ONNX's own tolerance (rtol 1e-3,
  atol 1e-7) *and* bit-equal to the float64 formula rounded once: ONNX's
  reference implementation (``onnx.reference``) run on the same model with
  every float tensor widened to float64, its result rounded once (RNE) to
  the output dtype;
* ``refused``: refcomp raised a :class:`refcomp.RefcompError`, or the layer
  API cannot express the case (:class:`NotExpressible`, with the reason);
* ``wrong``: anything else (a result outside tolerance, or within tolerance
  but different from the float64 formula rounded once, or a non-refcomp
  exception).
"""

import copy
import importlib
import sys
import warnings

import numpy as np

import refcomp.layers as L
from refcomp import RefcompError

MODULES = {
    "Conv": "conv", "MaxPool": "maxpool", "AveragePool": "averagepool", "Gemm": "gemm",
    "MatMul": "matmul", "Relu": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh",
    "HardSigmoid": "hardsigmoid", "Softmax": "softmax", "LogSoftmax": "logsoftmax",
    "Flatten": "flatten", "Reshape": "reshape", "BatchNormalization": "batch_normalization",
    "LSTM": "lstm", "GRU": "gru", "RNN": "rnn", "QuantizeLinear": "quantizelinear",
    "DequantizeLinear": "dequantizelinear", "DynamicQuantizeLinear": "dynamicquantizelinear",
    "Cast": "cast",
}


#: {op_type: {"exact": n, "tolerance": n, "refused": n, "wrong": n}} of the gate cases run in
#: this session: filled by test_onnx_node_gate, reported by conftest's pytest_terminal_summary
#: (so CI's ``pytest -q`` log shows the counts, not only pass/fail)
RESULTS = {}

CATEGORIES = ("exact", "tolerance", "refused", "wrong")


def summary_lines(results, width=100):
    """The terminal-summary text of ``results`` (shaped as RESULTS): a totals line, then
    ``op exact/tolerance/refused/wrong`` entries in MODULES order, wrapped at ``width``."""
    total = {c: sum(r[c] for r in results.values()) for c in CATEGORIES}
    lines = [f"{sum(total.values())} cases of {len(results)} operators: "
             + ", ".join(f"{c} {total[c]}" for c in CATEGORIES),
             "per operator (exact/tolerance/refused/wrong):"]
    line = " "
    order = [op for op in MODULES if op in results] + sorted(set(results) - set(MODULES))
    for op in order:
        item = f" {op} " + "/".join(str(results[op][c]) for c in CATEGORIES) + ";"
        if len(line) + len(item) > width:
            lines.append(line)
            line = " "
        line += item
    if line.strip():
        lines.append(line)
    return lines


class NotExpressible(Exception):
    """The case needs something the layer API does not offer (counted as refused)."""


_CASES = None


def cases():
    """{op_type: [TestCase]} for the operators of MODULES (single-node models only)."""
    global _CASES
    if _CASES is None:
        from onnx.backend.test.case import node as N
        # Each case module registers its cases in onnx's global list when it runs;
        # other tests (test_integer_onnx_ops) clear that list and reload modules, so
        # every module is run here afresh and its cases taken at once.
        found = []
        for mod in dict.fromkeys(MODULES.values()):
            name = "onnx.backend.test.case.node." + mod
            N._TargetOpType = None
            N._NodeTestCases.clear()
            N._existing_names.clear()
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    if name in sys.modules:
                        importlib.reload(sys.modules[name])
                    else:
                        importlib.import_module(name)
                found += list(N._NodeTestCases)
            finally:
                N._NodeTestCases.clear()
                N._existing_names.clear()
        out = {op: [] for op in MODULES}
        seen = set()
        for t in found:
            g = t.model.graph
            if len(g.node) == 1 and g.node[0].op_type in out and t.name not in seen:
                seen.add(t.name)
                out[g.node[0].op_type].append(t)
        _CASES = out
    return _CASES


def _array(v):
    from onnx import numpy_helper
    if isinstance(v, (np.ndarray, np.generic)):
        return np.asarray(v)
    return numpy_helper.to_array(v)


def _attrs(node):
    from onnx import helper
    out = {}
    for a in node.attribute:
        v = helper.get_attribute_value(a)
        out[a.name] = v.decode() if isinstance(v, bytes) else v
    return out


def _inputs(case):
    node = case.model.graph.node[0]
    vals = iter(_array(v) for v in case.data_sets[0][0])
    return {name: next(vals) for name in node.input if name}


# -- operator bindings --------------------------------------------------------------------
def _pads(a, n):
    auto = a.get("auto_pad", "NOTSET")
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        return auto.lower()
    if auto == "VALID":
        return "valid"
    p = list(a.get("pads", [0] * 2 * n))
    return tuple((int(p[i]), int(p[i + n])) for i in range(n))


def _conv(node, a, x):
    X, W, B = x[node.input[0]], x[node.input[1]], x.get(node.input[2]) if len(node.input) > 2 \
        else None
    n = W.ndim - 2
    kw = dict(stride=tuple(a.get("strides", [1] * n)), dilation=tuple(a.get("dilations", [1] * n)),
              groups=int(a.get("group", 1)), padding=_pads(a, n))
    if n == 1:
        kw["padding"] = kw["padding"] if isinstance(kw["padding"], str) else kw["padding"][0]
        return [L.conv1d(X, W, B, **kw)]
    if n == 2:
        return [L.conv2d(X, W, B, **kw)]
    raise NotExpressible(f"{n}-D convolution")


def _pool(node, a, x, kind):
    X = x[node.input[0]]
    k = tuple(a["kernel_shape"])
    n = len(k)
    kw = dict(stride=tuple(a.get("strides", [1] * n)), dilation=tuple(a.get("dilations", [1] * n)),
              ceil_mode=bool(a.get("ceil_mode", 0)), padding=_pads(a, n))
    if kind == "max":
        want = len(node.output) > 1 and node.output[1]
        out = L.max_pool(X, k, return_indices=bool(want),
                         storage_order=int(a.get("storage_order", 0)), **kw)
        return list(out) if want else [out]
    return [L.avg_pool(X, k, count_include_pad=bool(a.get("count_include_pad", 0)), **kw)]


def _gemm(node, a, x):
    A, B = x[node.input[0]], x[node.input[1]]
    C = x.get(node.input[2]) if len(node.input) > 2 else None
    return [L.gemm(A, B, C, alpha=a.get("alpha", 1.0), beta=a.get("beta", 1.0),
                   trans_a=bool(a.get("transA", 0)), trans_b=bool(a.get("transB", 0)))]


def _matmul(node, a, x):
    return [L.matmul(x[node.input[0]], x[node.input[1]])]


def _unary(fn):
    def run(node, a, x):
        return [fn(x[node.input[0]])]
    return run


def _hard_sigmoid(node, a, x):
    return [L.hard_sigmoid(x[node.input[0]], variant="onnx", alpha=a.get("alpha", 0.2),
                           beta=a.get("beta", 0.5))]


def _softmax(fn):
    def run(node, a, x):
        return [fn(x[node.input[0]], a.get("axis", -1))]
    return run


def _flatten(node, a, x):
    return [L.flatten(x[node.input[0]], axis=a.get("axis", 1))]


def _reshape(node, a, x):
    data, shape = x[node.input[0]], x[node.input[1]]
    if int(a.get("allowzero", 0)):
        raise NotExpressible("Reshape allowzero=1")
    if data.ndim == 0 or shape.size == 0:
        raise NotExpressible("Reshape without a batch axis")
    target = [data.shape[i] if (s == 0 and i < data.ndim) else int(s)
              for i, s in enumerate(shape.tolist())]
    if target[0] != data.shape[0]:
        raise NotExpressible(f"Reshape {data.shape} -> {shape.tolist()} changes the batch axis "
                             "(refcomp.layers.reshape keeps it)")
    rest = target[1:]
    if -1 in rest:
        known = int(np.prod([s for s in rest if s != -1]))
        rest[rest.index(-1)] = int(np.prod(data.shape[1:])) // known
    return [L.reshape(data, tuple(rest))]


def _batch_norm(node, a, x):
    if int(a.get("training_mode", 0)):
        raise NotExpressible("BatchNormalization training_mode=1 (refcomp is inference only)")
    X, s, b, m, v = (x[n] for n in node.input[:5])
    return [L.batch_norm(X, s, b, m, v, eps=float(np.float32(a.get("epsilon", 1e-5))), axis=1)]


def _recurrent(kind):
    def run(node, a, x):
        from _onnx_rnn_binding import run_recurrent
        return run_recurrent(kind, node, a, x)
    return run


def _quant(kind):
    def run(node, a, x):
        from _onnx_qdq_binding import run_quant
        return run_quant(kind, node, a, x)
    return run


BINDINGS = {
    "Conv": _conv,
    "MaxPool": lambda n, a, x: _pool(n, a, x, "max"),
    "AveragePool": lambda n, a, x: _pool(n, a, x, "avg"),
    "Gemm": _gemm, "MatMul": _matmul,
    "Relu": _unary(L.relu), "Sigmoid": _unary(L.sigmoid), "Tanh": _unary(L.tanh),
    "HardSigmoid": _hard_sigmoid,
    "Softmax": _softmax(L.softmax), "LogSoftmax": _softmax(L.log_softmax),
    "Flatten": _flatten, "Reshape": _reshape, "BatchNormalization": _batch_norm,
    "LSTM": _recurrent("LSTM"), "GRU": _recurrent("GRU"), "RNN": _recurrent("RNN"),
    "QuantizeLinear": _quant("QuantizeLinear"), "DequantizeLinear": _quant("DequantizeLinear"),
    "DynamicQuantizeLinear": _quant("DynamicQuantizeLinear"), "Cast": _quant("Cast"),
}


# -- comparison ---------------------------------------------------------------------------
def _codes(a):
    from refcomp.quantize.decode import as_codes
    return as_codes(a)


def _same_bits(got, want):
    got, want = _codes(np.asarray(got)), _codes(np.asarray(want))
    if got.shape != want.shape:
        return False
    if want.dtype.kind == "f":
        if got.dtype != want.dtype:
            return False
        nan = np.isnan(want)
        if not np.array_equal(nan, np.isnan(got)):
            return False
        g, w = got[~nan], want[~nan]
        return g.tobytes() == w.tobytes()
    return np.array_equal(got.astype(np.int64), want.astype(np.int64))


def _within(got, want, rtol=1e-3, atol=1e-7):
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape or want.dtype.kind != "f":
        return False
    nan = np.isnan(want)
    if not np.array_equal(nan, np.isnan(got)):
        return False
    g, w = got[~nan].astype(np.float64), want[~nan].astype(np.float64)
    inf = ~np.isfinite(w)
    if not np.array_equal(g[inf], w[inf]):
        return False
    return bool(np.all(np.abs(g[~inf] - w[~inf]) <= atol + rtol * np.abs(w[~inf])))


def float64_formula(case):
    """ONNX's reference implementation on the model widened to float64, outputs as float64."""
    from onnx import TensorProto
    from onnx.reference import ReferenceEvaluator
    m = copy.deepcopy(case.model)
    for v in list(m.graph.input) + list(m.graph.output):
        if v.type.tensor_type.elem_type in (TensorProto.FLOAT, TensorProto.FLOAT16):
            v.type.tensor_type.elem_type = TensorProto.DOUBLE
    feeds = {}
    for name, val in _inputs(case).items():
        feeds[name] = val.astype(np.float64) if val.dtype in (np.float32, np.float16) else val
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ReferenceEvaluator(m).run(None, feeds)


def classify(case):
    """(category, detail) of one case; see the module docstring."""
    node = case.model.graph.node[0]
    a = _attrs(node)
    x = _inputs(case)
    want = [_array(v) for v in case.data_sets[0][1]]
    try:
        got = BINDINGS[node.op_type](node, a, x)
    except NotExpressible as exc:
        return "refused", f"not expressible: {exc}"
    except RefcompError as exc:
        return "refused", f"{type(exc).__name__}: {exc}"
    except Exception as exc:                    # noqa: BLE001 - a wrong kind of failure
        return "wrong", f"non-refcomp {type(exc).__name__}: {exc}"
    if len(got) != len(want):
        return "wrong", f"{len(got)} outputs, expected {len(want)}"
    if all(_same_bits(g, w) for g, w in zip(got, want)):
        return "exact", ""
    if not all(_same_bits(g, w) or _within(g, w) for g, w in zip(got, want)):
        bad = [i for i, (g, w) in enumerate(zip(got, want)) if not _within(g, w)]
        return "wrong", f"output(s) {bad} outside ONNX's tolerance"
    if node.op_type in ("LSTM", "GRU", "RNN"):
        # the recurrent contract rounds the stored state once per step (module docstring
        # of refcomp.layers.recurrent): the formula rounded once per step, in float64
        from _onnx_rnn_binding import naive_recurrent
        ref = naive_recurrent(node.op_type, node, a, x)
    else:
        ref = float64_formula(case)
    for g, w, r in zip(got, want, ref):
        if _same_bits(g, w):
            continue
        once = np.asarray(r).astype(np.asarray(w).dtype)
        if not _same_bits(g, once):
            diff = np.abs(np.asarray(g, np.float64) - once.astype(np.float64)).max()
            return "wrong", f"within tolerance but not the float64 formula rounded once " \
                            f"(max |diff| {diff:.3g})"
    return "tolerance", ""
