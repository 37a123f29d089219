"""mode="onnx" against ONNX Runtime: QLinearConv / QLinearMatMul / QLinearAdd nodes and the
shipped models exported as QLinear and QDQ graphs.  Skipped when onnxruntime is absent."""

import numpy as np
import pytest

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import refcomp  # noqa: E402
from refcomp.data import load_split  # noqa: E402
from refcomp.integer import (IntegerLinear, add_q, linear_acc, quantize_model, requantize,  # noqa: E402
                             run)
from refcomp.integer.onnx_export import to_onnx  # noqa: E402
from refcomp.testing import assert_bits_equal  # noqa: E402

_TYPES = {np.dtype(np.int8): TensorProto.INT8, np.dtype(np.uint8): TensorProto.UINT8}


def _session(model):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), so,
                                providers=["CPUExecutionProvider"])


def _single(op, inputs, inits, out_type, domain=None, **attrs):
    """One-node model: ``inputs`` = [(name, array)] graph inputs, ``inits`` = [(name, array)]."""
    node = helper.make_node(op, [n for n, _ in inputs + inits] if not attrs.get("_order")
                            else attrs.pop("_order"), ["y"], domain=domain or "", **attrs)
    g = helper.make_graph(
        [node], "t", [helper.make_tensor_value_info(n, _TYPES[a.dtype], list(a.shape))
                      for n, a in inputs],
        [helper.make_tensor_value_info("y", out_type, None)],
        [numpy_helper.from_array(a, n) for n, a in inits])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 21),
                                            helper.make_opsetid("com.microsoft", 1)])
    m.ir_version = 10
    return m


F32 = np.float32


@pytest.mark.parametrize("dt", [np.int8, np.uint8])
@pytest.mark.parametrize("per_channel", [True, False])
@pytest.mark.parametrize("k,groups,c", [(3, 1, 4), (3, 8, 8), (1, 1, 600)])
def test_qlinearconv(dt, per_channel, k, groups, c):
    rng = np.random.default_rng(0)
    o = 8
    lo, hi = (-128, 127) if dt == np.int8 else (0, 255)
    x = rng.integers(lo, hi + 1, (2, c, 6, 6)).astype(dt)
    w = rng.integers(-127, 128, (o, c // groups, k, k)).astype(np.int8)
    ws = rng.uniform(0.0005, 0.004, o if per_channel else 1).astype(F32)
    b = rng.integers(-20000, 20000, o).astype(np.int32)
    xs, xz, ys, yz = F32(0.0173), dt(lo + 100), F32(0.0517), dt(lo + 120)
    pad = k // 2
    m = _single("QLinearConv", [("x", x)],
                [("xs", xs), ("xz", np.array(xz)), ("w", w), ("ws", ws),
                 ("wz", np.zeros(ws.size, np.int8)), ("ys", ys), ("yz", np.array(yz)),
                 ("b", b)], _TYPES[np.dtype(dt)], pads=[pad] * 4, group=groups)
    want = _session(m).run(None, {"x": x})[0]
    lay = IntegerLinear(w, ws, in_scale=float(xs), in_zero_point=int(xz), out_scale=float(ys),
                        out_zero_point=int(yz), mode="onnx", bias=b, act_dtype=np.dtype(dt).name)
    assert_bits_equal(lay.conv2d_codes(x, padding=pad, groups=groups), want)


@pytest.mark.parametrize("dt", [np.int8, np.uint8])
def test_qlinearmatmul_large_accumulators(dt):
    """K = 4000 terms: accumulators beyond 2**24 round when ORT converts them to float32."""
    rng = np.random.default_rng(1)
    lo, hi = (-128, 127) if dt == np.int8 else (0, 255)
    a = rng.integers(lo, hi + 1, (16, 4000)).astype(dt)
    a[:4] = hi
    b = rng.integers(-127, 128, (4000, 24)).astype(np.int8)
    b[:, :3] = 127
    az = dt(lo + 7)
    asc, bsc, ys = F32(0.0173), F32(0.0021), F32(37.0)
    yz = dt(lo + 9)
    m = _single("QLinearMatMul", [("a", a)],
                [("as", asc), ("az", np.array(az)), ("b", b), ("bs", bsc),
                 ("bz", np.array(np.int8(0))), ("ys", ys), ("yz", np.array(yz))],
                _TYPES[np.dtype(dt)])
    want = _session(m).run(None, {"a": a})[0]
    acc = linear_acc(a, int(az), np.ascontiguousarray(b.T))
    assert np.abs(acc).max() > 2 ** 24
    got = requantize(acc, float(asc) * float(bsc), float(ys), int(yz), mode="onnx",
                     out_dtype=np.dtype(dt).name)
    assert_bits_equal(got, want)
    assert np.count_nonzero((np.abs(acc) > 2 ** 24) & (got > lo) & (got < hi)) > 0


@pytest.mark.parametrize("dt", [np.int8, np.uint8])
@pytest.mark.parametrize("n", [4096, 37])
def test_qlinearadd(dt, n):
    rng = np.random.default_rng(2)
    lo, hi = (-128, 127) if dt == np.int8 else (0, 255)
    a = rng.integers(lo, hi + 1, n).astype(dt)
    b = rng.integers(lo, hi + 1, n).astype(dt)
    sa, sb, sc = F32(0.0312), F32(0.0191), F32(0.0457)
    za, zb, zc = dt(lo + 3), dt(hi - 11), dt(lo + 77)
    m = _single("QLinearAdd", [("a", a), ("b", b)],
                [("as", sa), ("az", np.array(za)), ("bs", sb), ("bz", np.array(zb)),
                 ("cs", sc), ("cz", np.array(zc))], _TYPES[np.dtype(dt)], domain="com.microsoft",
                _order=["a", "as", "az", "b", "bs", "bz", "cs", "cz"])
    want = _session(m).run(None, {"a": a, "b": b})[0]
    got = add_q(a, float(sa), int(za), b, float(sb), int(zb), float(sc), int(zc), mode="onnx")
    assert_bits_equal(got, want)


@pytest.fixture(scope="module")
def splits():
    return load_split("calib")[0], load_split("test")[0]


@pytest.mark.parametrize("name", ["mlp", "cnn", "resnet"])
@pytest.mark.parametrize("dt,form", [("int8", "qlinear"), ("uint8", "qlinear"),
                                     ("uint8", "qdq")])
def test_shipped_models(splits, name, dt, form):
    """The integer model of mode "onnx", exported by refcomp.integer.to_onnx and run by ONNX
    Runtime (all its integer kernels fused): identical float32 output bits."""
    xc, xt = splits
    qm = quantize_model(refcomp.load(f"data/digits_{name}.h5"), xc, mode="onnx", act_dtype=dt)
    want = _session(to_onnx(qm, form=form)).run(None, {"x": xt})[0]
    assert_bits_equal(run(qm, xt), want)


def _explained(lay, kind, attrs, q_in, ours, theirs):
    """Differences of one dense / conv2d layer between refcomp ("onnx" mode) and an ONNX Runtime
    node left unfused (DequantizeLinear -> float32 Conv -> QuantizeLinear).  The rule: each
    differing code differs by exactly one and the exact real value acc * s_x * s_w / s_y lies
    within the float32 error bound of the rounding boundary between the two codes:
    (K + 2) u (sum |x_f w_f| + |b_f|) / s_y for ORT's float32 convolution (any order, FACTS.md
    §8) and its division, plus 3 u |R| for refcomp's float32 requantization, u = 2**-24."""
    from refcomp.layers import conv2d, dense
    from refcomp.integer.ops import _conv_acc, _linear_acc, conv_pads, _pair
    diff = np.argwhere(ours != theirs)
    if diff.size == 0:
        return 0
    d = ours.astype(np.int64) - theirs
    assert np.all(np.abs(d[d != 0]) == 1)
    xf = np.abs((q_in.astype(np.float64) - lay.in_zero_point) * lay.in_scale)
    wf = np.abs(lay.dequantize().astype(np.float64))
    ws = np.broadcast_to(lay.w_scale.astype(np.float64), (lay.codes.shape[0],))
    bf = np.abs(lay.bias.astype(np.float64) * lay.in_scale * ws)
    if kind == "conv2d":
        st, dil = _pair("s", attrs["stride"]), _pair("d", attrs["dilation"])
        pads = conv_pads(attrs["padding"], q_in.shape[2:], lay.codes.shape[2:], st, dil)
        acc = _conv_acc(q_in, lay.in_zero_point, lay.codes, lay.bias, st, pads, dil,
                        attrs["groups"])
        sabs = conv2d(xf, wf, None, stride=st, padding=attrs["padding"], dilation=dil,
                      groups=attrs["groups"])
        k = int(np.prod(lay.codes.shape[1:]))
        chan = diff[:, 1]
    else:
        acc = _linear_acc(q_in, lay.in_zero_point, lay.codes, lay.bias)
        sabs = dense(xf, wf)
        k = lay.codes.shape[1]
        chan = diff[:, 1]
    u = 2.0 ** -24
    for idx, c in zip(map(tuple, diff), chan):
        r = float(acc[idx]) * lay.in_scale * ws[c] / lay.out_scale      # real value in codes
        bound = ((k + 2) * u * (sabs[idx] + bf[c])) / lay.out_scale + 3 * u * abs(r) + 1e-9
        boundary = min(int(ours[idx]), int(theirs[idx])) - lay.out_zero_point + 0.5
        assert abs(r - boundary) <= bound, (idx, r, boundary, bound)
    return len(diff)


def _check_layers(layers, prefix, q, s, z, outs, meta, counts):
    from refcomp.integer.run import _walk
    pending = []
    for i, layer in enumerate(layers):
        path = f"{prefix}{i}"
        if layer.kind in ("dense", "conv2d"):
            q_in, s_in, z_in = _walk(pending, q, s, z, prefix, meta)
            ours, s, z = _walk([layer], q_in, s_in, z_in, prefix, meta)
            theirs = outs[f"codes/{path}"]
            counts[path] = _explained(layer.weights["W"], layer.kind, layer.attrs, q_in, ours,
                                      theirs)
            q, pending = theirs, []
        elif layer.kind == "residual":
            q_in, s_in, z_in = _walk(pending, q, s, z, prefix, meta)
            qb, sb, zb = _check_layers(layer.layers, path + "/", q_in, s_in, z_in, outs, meta,
                                       counts)
            p = meta["add"][path]
            theirs = outs[f"codes/{path}"]
            # ORT leaves an int8 QDQ Add unfused: DequantizeLinear, float32 Add (then Relu),
            # QuantizeLinear, i.e. exactly the "onnx_reference" (QDQ float) addition.
            ours = add_q(q_in, s_in, z_in, qb, sb, zb, p["scale"], p["zero_point"],
                         mode="onnx_reference", act_min=p["act_min"], act_max=p["act_max"])
            assert_bits_equal(ours, theirs)
            counts[path] = 0
            q, s, z, pending = theirs, p["scale"], p["zero_point"], []
        else:
            pending.append(layer)
    return _walk(pending, q, s, z, prefix, meta)


@pytest.mark.parametrize("name", ["cnn", "resnet"])
def test_int8_qdq_differences_follow_the_float_rule(splits, name):
    """int8 activations in a QDQ graph: ONNX Runtime 1.32 (x86-64) fuses only some nodes into
    integer kernels and runs the others as float32 operators between DequantizeLinear and
    QuantizeLinear.  Layer by layer (each fed ORT's own input codes), every code that differs
    from refcomp's "onnx" mode is explained by the float32 rule of :func:`_explained`, and
    unfused additions equal the "onnx_reference" (QDQ float) addition bit for bit."""
    from refcomp.integer.requantize import quantize
    xc, xt = splits
    qm = quantize_model(refcomp.load(f"data/digits_{name}.h5"), xc, mode="onnx",
                        act_dtype="int8")
    meta = qm.metadata["integer"]
    sess = _session(to_onnx(qm, form="qdq", intermediate=True))
    outs = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {"x": xt})))
    q0 = quantize(xt, meta["input"]["scale"], meta["input"]["zero_point"], mode="onnx")
    counts = {}
    _check_layers(qm.layers, "", q0, meta["input"]["scale"], meta["input"]["zero_point"],
                  outs, meta, counts)
    print(name, "differing codes per layer:", counts)
    assert sum(counts.values()) > 0          # the rule is exercised, not vacuous
