"""mode="torch" against PyTorch's quantized kernels (fbgemm engine, torch.ao): Linear /
LinearReLU, Conv2d (grouped, depthwise with FBGEMM's int16 pair saturation), quantized add,
and the shipped models end to end.  Skipped when torch is absent."""

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nnq = pytest.importorskip("torch.ao.nn.quantized")
nniq = pytest.importorskip("torch.ao.nn.intrinsic.quantized")

import refcomp  # noqa: E402
from refcomp.data import load_split  # noqa: E402
from refcomp.integer import (IntegerLinear, add_q, conv2d_acc, quantize, quantize_model,  # noqa: E402
                             run_codes)
from refcomp.integer.ops import _fbgemm_depthwise_acc  # noqa: E402
from refcomp.testing import assert_bits_equal  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

SIN, ZIN, SOUT, ZOUT = float(np.float32(0.0213)), 118, float(np.float32(0.0731)), 131


@pytest.fixture(autouse=True, scope="module")
def fbgemm():
    if "fbgemm" not in torch.backends.quantized.supported_engines:
        pytest.skip("PyTorch built without fbgemm")
    old_engine, old_threads = torch.backends.quantized.engine, torch.get_num_threads()
    torch.backends.quantized.engine = "fbgemm"
    torch.set_num_threads(1)
    yield
    torch.backends.quantized.engine = old_engine
    torch.set_num_threads(old_threads)


def _qweight(codes, ws):
    if ws.size > 1:
        return torch._make_per_channel_quantized_tensor(
            torch.from_numpy(codes), torch.from_numpy(ws.astype(np.float64)),
            torch.zeros(ws.size, dtype=torch.int64), 0)
    return torch._make_per_tensor_quantized_tensor(torch.from_numpy(codes), float(ws[0]), 0)


def _layer(codes, ws, b, relu=False):
    return IntegerLinear(codes, ws, in_scale=SIN, in_zero_point=ZIN, out_scale=SOUT,
                         out_zero_point=ZOUT, mode="torch", bias_float=b, act_dtype="uint8",
                         act_min=ZOUT if relu else None)


def _input(x):
    xq = torch.quantize_per_tensor(torch.from_numpy(x), SIN, ZIN, torch.quint8)
    ours = quantize(x, SIN, ZIN, mode="torch", out_dtype="uint8")
    assert np.array_equal(ours, xq.int_repr().numpy())          # input quantization too
    return xq, ours


@pytest.mark.parametrize("per_channel", [True, False])
@pytest.mark.parametrize("relu", [False, True])
def test_linear(per_channel, relu):
    rng = np.random.default_rng(1)
    n, i, o = 64, 70, 19
    codes = rng.integers(-127, 128, (o, i)).astype(np.int8)
    ws = rng.uniform(0.001, 0.02, o if per_channel else 1).astype(np.float32)
    b = (rng.standard_normal(o) * 3).astype(np.float32)
    xq, ours = _input((rng.standard_normal((n, i)) * 1.3).astype(np.float32))
    mod = (nniq.LinearReLU if relu else nnq.Linear)(i, o)
    mod.set_weight_bias(_qweight(codes, ws), torch.from_numpy(b))
    mod.scale, mod.zero_point = SOUT, ZOUT
    want = mod(xq).int_repr().numpy()
    assert_bits_equal(_layer(codes, ws, b, relu).linear_codes(ours), want)


CONVS = [(3, 8, 3, 1, 1, 1, 1), (8, 16, 3, 1, 2, 0, 1), (8, 8, 3, 2, 1, 1, 2),
         (6, 12, 1, 1, 1, 0, 1), (16, 16, 3, 4, 1, 1, 1),
         (16, 16, 3, 16, 1, 1, 1), (16, 32, 3, 16, 1, 1, 1), (32, 32, 5, 32, 2, 2, 1)]


@pytest.mark.parametrize("c,o,k,g,stride,pad,dil", CONVS)
def test_conv2d(c, o, k, g, stride, pad, dil):
    rng = np.random.default_rng(2)
    for per_channel in (True, False):
        codes = rng.integers(-127, 128, (o, c // g, k, k)).astype(np.int8)
        ws = rng.uniform(0.001, 0.02, o if per_channel else 1).astype(np.float32)
        b = rng.standard_normal(o).astype(np.float32)
        xq, ours = _input((rng.standard_normal((3, c, 9, 9)) * 1.3).astype(np.float32))
        mod = nnq.Conv2d(c, o, k, stride=stride, padding=pad, dilation=dil, groups=g)
        mod.set_weight_bias(_qweight(codes, ws), torch.from_numpy(b))
        mod.scale, mod.zero_point = SOUT, ZOUT
        want = mod(xq).int_repr().numpy()
        got = _layer(codes, ws, b).conv2d_codes(ours, stride=stride, padding=pad,
                                                dilation=dil, groups=g)
        assert_bits_equal(got, want)


def test_depthwise_int16_saturation_is_what_explains_fbgemm():
    """On FBGEMM's depthwise path the exact accumulator would disagree; the documented
    pair-saturation rule is what makes refcomp agree (test_conv2d), and it only matters when a
    pair sum leaves int16: with 7-bit activations (PyTorch's reduce_range) both agree."""
    rng = np.random.default_rng(3)
    codes = rng.integers(-127, 128, (16, 1, 3, 3)).astype(np.int8)
    x = rng.integers(0, 256, (2, 16, 6, 6)).astype(np.uint8)
    exact = conv2d_acc(x, ZIN, codes, padding=1, groups=16)
    fb = _fbgemm_depthwise_acc(x, ZIN, codes, None, (1, 1), ((1, 1), (1, 1)))
    assert np.count_nonzero(exact != fb) > 0
    x7 = (x >> 1).astype(np.uint8)                                    # [0, 127]
    assert_bits_equal(conv2d_acc(x7, 64, codes, padding=1, groups=16),
                      _fbgemm_depthwise_acc(x7, 64, codes, None, (1, 1), ((1, 1), (1, 1))))


@pytest.mark.parametrize("n", [1024, 1000, 37])
def test_quantized_add(n):
    rng = np.random.default_rng(4)
    a = rng.integers(0, 256, n).astype(np.uint8)
    b = rng.integers(0, 256, n).astype(np.uint8)
    s1, s2, so = (float(np.float32(v)) for v in (0.0312, 0.0191, 0.0457))
    ta = torch._make_per_tensor_quantized_tensor(torch.from_numpy(a), s1, 120)
    tb = torch._make_per_tensor_quantized_tensor(torch.from_numpy(b), s2, 131)
    for relu in (False, True):
        op = torch.ops.quantized.add_relu if relu else torch.ops.quantized.add
        want = op(ta, tb, so, 100).int_repr().numpy()
        got = add_q(a, s1, 120, b, s2, 131, so, 100, mode="torch", act_min=100 if relu else None)
        assert_bits_equal(got, want)


def _torch_walk(layers, q, prefix, meta):
    """Run an integer refcomp model's layers with PyTorch's quantized modules."""
    for i, layer in enumerate(layers):
        path = f"{prefix}{i}"
        k, a = layer.kind, layer.attrs
        if k in ("dense", "conv2d"):
            w = layer.weights["W"]
            relu = w.act_min == w.out_zero_point
            if k == "dense":
                mod = (nniq.LinearReLU if relu else nnq.Linear)(w.codes.shape[1], w.codes.shape[0])
            else:
                cls = nniq.ConvReLU2d if relu else nnq.Conv2d
                mod = cls(w.codes.shape[1] * a["groups"], w.codes.shape[0], w.codes.shape[2:],
                          stride=a["stride"], padding=a["padding"], dilation=a["dilation"],
                          groups=a["groups"])
            mod.set_weight_bias(_qweight(w.codes, w.w_scale), torch.from_numpy(w.bias_float))
            mod.scale, mod.zero_point = w.out_scale, w.out_zero_point
            q = mod(q)
        elif k == "max_pool2d":
            q = torch.nn.functional.max_pool2d(q, a["size"], a["stride"], a["padding"])
        elif k == "flatten":
            q = q.reshape(q.shape[0], -1)
        elif k == "reshape":
            q = q.reshape((q.shape[0],) + tuple(a["shape"]))
        elif k == "activation":
            q = torch.nn.functional.relu(q) if a["function"] == "relu" else q
        elif k == "residual":
            body = _torch_walk(layer.layers, q, path + "/", meta)
            p = meta["add"][path]
            relu = p["act_min"] == p["zero_point"]
            op = torch.ops.quantized.add_relu if relu else torch.ops.quantized.add
            q = op(q, body, p["scale"], p["zero_point"])
    return q


@pytest.mark.parametrize("name", ["mlp", "cnn", "resnet"])
def test_shipped_models_end_to_end(name):
    """quantize_model(mode="torch") run by refcomp and by torch.ao modules built from the
    same integer model: identical output codes on the test split."""
    xc, _ = load_split("calib")
    xt, _ = load_split("test")
    qm = quantize_model(refcomp.load(f"data/digits_{name}.h5"), xc, mode="torch")
    meta = qm.metadata["integer"]
    q, s, z = run_codes(qm, xt)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tq = torch.quantize_per_tensor(torch.from_numpy(xt), meta["input"]["scale"],
                                       meta["input"]["zero_point"], torch.quint8)
        out = _torch_walk(qm.layers, tq, "", meta)
    assert (out.q_scale(), out.q_zero_point()) == (s, z)
    assert_bits_equal(q, out.int_repr().numpy())
