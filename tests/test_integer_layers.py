"""Integer layers on codes (refcomp.integer.ops) against Python-int loops and float64
simulations; the float boundary of IntegerLinear is exact; int32 accumulator wrap-around."""

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, strategies as st

import _integer_ref as R
from refcomp import DTypeError, ParameterError, ShapeError
from refcomp.integer import (IntegerLinear, add_q, avg_pool2d_q, conv2d_acc, dequantize,
                             linear_acc, max_pool2d_q, quantize, relu_bounds)
from refcomp.integer.requantize import MODES

RNG = np.random.default_rng(20)


def _wrap(v):
    return ((v + (1 << 31)) % (1 << 32)) - (1 << 31)


def test_linear_acc_against_python_ints():
    x = RNG.integers(-128, 128, size=(3, 7)).astype(np.int8)
    w = RNG.integers(-127, 128, size=(4, 7)).astype(np.int8)
    b = RNG.integers(-1000, 1000, size=4).astype(np.int32)
    for zx, zw in ((0, 0), (-17, 0), (5, np.array([1, -2, 0, 3]))):
        got = linear_acc(x, zx, w, b, w_zero_point=zw)
        zws = np.broadcast_to(zw, (4,))
        want = [[sum((int(x[n, k]) - zx) * (int(w[o, k]) - int(zws[o])) for k in range(7))
                 + int(b[o]) for o in range(4)] for n in range(3)]
        assert got.dtype == np.int32 and got.tolist() == want


@pytest.mark.parametrize("groups,stride,padding,dilation", [
    (1, 1, 0, 1), (1, 2, 1, 1), (2, 1, "same", 1), (4, 1, 1, 2), (1, (2, 1), ((1, 0), (0, 2)), 1)])
def test_conv2d_acc_against_python_ints(groups, stride, padding, dilation):
    n, c, h, w_, o, k = 2, 4, 6, 5, 8, 3
    x = RNG.integers(0, 256, size=(n, c, h, w_)).astype(np.uint8)
    wq = RNG.integers(-127, 128, size=(o, c // groups, k, k)).astype(np.int8)
    b = RNG.integers(-500, 500, size=o).astype(np.int32)
    zx = 131
    got = conv2d_acc(x, zx, wq, b, stride=stride, padding=padding, dilation=dilation,
                     groups=groups)
    from refcomp.layers._common import pair, resolve_padding
    st_, dl = pair("s", stride), pair("d", dilation)
    (pt, pb), (pl, pr) = resolve_padding(padding, (h, w_), (k, k), st_, dl)
    oh = (h + pt + pb - dl[0] * (k - 1) - 1) // st_[0] + 1
    ow = (w_ + pl + pr - dl[1] * (k - 1) - 1) // st_[1] + 1
    assert got.shape == (n, o, oh, ow)
    og, cg = o // groups, c // groups
    for i in range(n):
        for oo in range(o):
            g = oo // og
            for yy in range(oh):
                for xx in range(ow):
                    s = int(b[oo])
                    for cc in range(cg):
                        for ki in range(k):
                            for kj in range(k):
                                r = yy * st_[0] + ki * dl[0] - pt
                                q = xx * st_[1] + kj * dl[1] - pl
                                if 0 <= r < h and 0 <= q < w_:   # padding = zero point
                                    s += (int(x[i, g * cg + cc, r, q]) - zx) * int(wq[oo, cc, ki, kj])
                    assert got[i, oo, yy, xx] == s


def test_depthwise_conv_acc():
    x = RNG.integers(-128, 128, size=(1, 3, 5, 5)).astype(np.int8)
    wq = RNG.integers(-127, 128, size=(3, 1, 3, 3)).astype(np.int8)
    got = conv2d_acc(x, -3, wq, groups=3)
    for c in range(3):
        single = conv2d_acc(np.ascontiguousarray(x[:, c:c + 1]), -3, wq[c:c + 1])
        assert np.array_equal(got[:, c:c + 1], single)


def test_int32_accumulator_wraps_modulo_2_32():
    # 70,000 terms of 255 * 127: the exact sum exceeds 2**31; the result is the sum mod 2**32
    k = 70_000
    x = np.full((1, k), 127, np.int8)
    w = np.full((2, k), 127, np.int8)
    w[1] = -127
    b = np.array([(1 << 31) - 1, -(1 << 31)], np.int32)
    got = linear_acc(x, -128, w, b)
    exact = [k * 255 * 127 + (1 << 31) - 1, -k * 255 * 127 - (1 << 31)]
    assert exact[0] > 2 ** 31 and got.tolist() == [[_wrap(e) for e in exact]]


# -- the float boundary ------------------------------------------------------------------
SCALES = [2.0 ** -126, 2.0 ** -100, 1e-30, 3.3e-8, 0.0039215689, 0.1, 1 / 3, 1.0, 7.77, 1e20,
          2.0 ** 119]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dt", ["int8", "uint8"])
def test_dequantize_then_quantize_is_exact(mode, dt):
    """Every code, every zero point, scales from the smallest normal float32 up: the
    dequantized value re-quantizes to the same code (the boundary of IntegerLinear)."""
    lo, hi = (-128, 127) if dt == "int8" else (0, 255)
    codes = np.arange(lo, hi + 1).astype(dt)
    for s in SCALES:
        s = float(np.float32(s))
        for zp in range(lo, hi + 1, 3):
            y = dequantize(codes, s, zp, mode=mode)
            assert np.array_equal(quantize(y, s, zp, mode=mode, out_dtype=dt), codes), (s, zp)


@given(st.floats(min_value=2.0 ** -126, max_value=2.0 ** 100), st.integers(-128, 127),
       st.sampled_from(MODES))
def test_dequantize_then_quantize_hypothesis(s, zp, mode):
    s = float(np.float32(s))
    codes = np.arange(-128, 128).astype(np.int8)
    assert np.array_equal(quantize(dequantize(codes, s, zp, mode=mode), s, zp, mode=mode), codes)


@pytest.mark.parametrize("mode", MODES)
def test_relu6_clamp_equals_float_relu6_boundary(mode):
    for s in (0.0234, 0.05, 6 / 255, 6 / 254.5, 0.047244094):
        s = float(np.float32(s))
        for zp in (-128, -100, 0, 3):
            codes = np.arange(-128, 128).astype(np.int8)
            lo, hi = relu_bounds("relu6", s, zp, np.dtype(np.int8), mode)
            y = dequantize(codes, s, zp)
            f = np.minimum(np.maximum(y, np.float32(0)), np.float32(6))
            assert np.array_equal(quantize(f, s, zp, mode=mode), np.clip(codes, lo, hi))


# -- pooling and addition -------------------------------------------------------------------
def test_max_pool_codes():
    q = RNG.integers(-128, 128, size=(2, 3, 5, 5)).astype(np.int8)
    got = max_pool2d_q(q, 2, stride=2, padding=1)
    assert got.dtype == np.int8 and got.shape == (2, 3, 3, 3)
    for i in range(3):
        for j in range(3):
            r0, c0 = max(0, 2 * i - 1), max(0, 2 * j - 1)
            win = q[:, :, r0:2 * i + 1, c0:2 * j + 1]
            assert np.array_equal(got[:, :, i, j], win.max(axis=(2, 3)))


@pytest.mark.parametrize("mode", ["tflite_double", "onnx"])
def test_avg_pool_codes(mode):
    q = RNG.integers(-128, 128, size=(2, 2, 4, 5)).astype(np.int8)
    zp = -7
    got = avg_pool2d_q(q, 3, stride=1, padding=1, zero_point=zp, count_include_pad=False,
                       mode=mode)
    for idx in np.ndindex(got.shape):
        n, c, i, j = idx
        vals = [int(q[n, c, r, t]) for r in range(i - 1, i + 2) for t in range(j - 1, j + 2)
                if 0 <= r < 4 and 0 <= t < 5]
        if mode.startswith("tflite"):
            want = R.round_half_away_fraction(Fraction(sum(vals), len(vals)))
        else:
            want = R.round_half_even_fraction(Fraction(sum(v - zp for v in vals), len(vals))) + zp
        assert got[idx] == max(-128, min(127, want))


def _tflite_add_ref(a, b, s1, z1, s2, z2, so, zo, mode):
    single = mode == "tflite_single"
    tm = 2.0 * max(s1, s2)
    (m1, h1), (m2, h2), (mo, ho) = (R.quantize_multiplier(v, single) for v in
                                    (s1 / tm, s2 / tm, tm / ((1 << 20) * so)))
    f = R.mbqm_single if single else R.mbqm_double    # ADD: gemmlowp double unless single
    raw = f((a - z1) << 20, m1, h1) + f((b - z2) << 20, m2, h2)
    return max(-128, min(127, f(raw, mo, ho) + zo))


@pytest.mark.parametrize("mode", MODES)
def test_add_codes(mode):
    a = np.arange(-128, 128).astype(np.int8)
    b = RNG.permutation(a).astype(np.int8)
    s1, s2, so = (float(np.float32(v)) for v in (0.0312, 0.0191, 0.0457))
    z1, z2, zo = -3, 11, -20
    got = add_q(a, s1, z1, b, s2, z2, so, zo, mode=mode)
    f32 = R.fl32
    for x, y, g in zip(a.tolist(), b.tolist(), got.tolist()):
        if mode.startswith("tflite"):
            want = _tflite_add_ref(x, y, s1, z1, s2, z2, so, zo, mode)
        elif mode == "xnnpack":
            want = R.xnnpack_add(x, s1, z1, y, s2, z2, so, zo)
        elif mode == "onnx":                    # MLAS AVX2: two fused multiply-adds
            r1, r2 = f32(Fraction(s1) / Fraction(so)), f32(Fraction(s2) / Fraction(so))
            fixed = f32(zo - f32(f32(r1 * z1) + f32(r2 * z2)))
            want = R.round_half_even_fraction(f32(x * r1 + f32(y * r2 + fixed)))
        elif mode == "onnx_reference":          # QDQ float semantics
            da, db = f32((x - z1) * Fraction(s1)), f32((y - z2) * Fraction(s2))
            want = R.round_half_even_fraction(f32(f32(da + db) / Fraction(so))) + zo
        else:                                   # ATen qadd, vectorised dequantize (fma)
            da = f32(Fraction(s1) * x + f32(Fraction(s1) * -z1))
            db = f32(Fraction(s2) * y + f32(Fraction(s2) * -z2))
            inv = f32(1 / Fraction(so))
            want = R.round_half_even_fraction(f32(f32(da + db) * inv)) + zo
        assert g == max(-128, min(127, want)), (x, y)


def test_bad_input_of_ops():
    x = np.zeros((2, 3), np.int8)
    with pytest.raises(DTypeError):
        linear_acc(x.astype(np.int16), 0, np.zeros((4, 3), np.int8))
    with pytest.raises(ShapeError, match="features"):
        linear_acc(x, 0, np.zeros((4, 5), np.int8))
    with pytest.raises(ParameterError, match="x_zero_point"):
        linear_acc(x, 200, np.zeros((4, 3), np.int8))
    with pytest.raises(DTypeError, match="bias"):
        linear_acc(x, 0, np.zeros((4, 3), np.int8), np.zeros(4, np.int64))
    with pytest.raises(ShapeError, match="groups"):
        conv2d_acc(np.zeros((1, 3, 4, 4), np.int8), 0, np.zeros((4, 1, 3, 3), np.int8), groups=2)
    with pytest.raises(ShapeError, match="same shape"):
        add_q(x, 0.5, 0, x[:1], 0.5, 0, 0.5, 0, mode="onnx")
    with pytest.raises(ParameterError, match="scale"):
        add_q(x, -0.5, 0, x, 0.5, 0, 0.5, 0, mode="onnx")


# -- IntegerLinear ----------------------------------------------------------------------------
def _layer(mode, o=5, i=6, conv=False, fused=None, dt="int8"):
    codes = RNG.integers(-127, 128, size=(o, i, 3, 3) if conv else (o, i)).astype(np.int8)
    ws = RNG.uniform(0.001, 0.02, o).astype(np.float32)
    b = RNG.integers(-3000, 3000, o).astype(np.int32)
    zin, zout = (-5, 9) if dt == "int8" else (120, 130)
    lo, hi = (None, None) if fused is None else relu_bounds(fused, 0.0625, zout, np.dtype(dt), mode)
    return IntegerLinear(codes, ws, in_scale=float(np.float32(0.0217)), in_zero_point=zin,
                         out_scale=0.0625, out_zero_point=zout, mode=mode, bias=b,
                         act_min=lo, act_max=hi, act_dtype=dt)


@pytest.mark.parametrize("mode", MODES)
def test_integer_linear_against_float64_simulation(mode):
    """The layer's codes against a float64 simulation: exact accumulator in float64, then the
    mode's rounding from its written definition (tests/_integer_ref.py)."""
    lay = _layer(mode, fused="relu")
    xq = RNG.integers(-128, 128, size=(9, 6)).astype(np.int8)
    got = lay.linear_codes(xq)
    acc = (xq.astype(np.float64) + 5) @ lay.codes.T.astype(np.float64) + lay.bias
    s_acc = lay.acc_scales()
    for n in range(9):
        for o in range(5):
            want = R.requant_ref(int(acc[n, o]), float(s_acc[o]), 0.0625, 9, mode,
                                 lay.act_min, lay.act_max)
            assert got[n, o] == want


def test_integer_kernels_against_float64_simulation():
    """tflite_single and onnx_reference of a conv layer against a plain float64 simulation of
    the same rounding: floor(acc * m * 2**(shift - 31) + 1/2) (exact in float64 while
    |acc * m| < 2**53) and rint(acc * M + zp)."""
    from refcomp.integer import quantize_multiplier
    for mode in ("tflite_single", "onnx_reference"):
        lay = _layer(mode, conv=True)
        xq = RNG.integers(-128, 128, size=(3, 6, 5, 5)).astype(np.int8)
        got = lay.conv2d_codes(xq, padding=1).astype(np.float64)
        acc = conv2d_acc(xq, lay.in_zero_point, lay.codes, lay.bias, padding=1).astype(np.float64)
        s_acc = lay.acc_scales()
        for o in range(lay.codes.shape[0]):
            if mode == "tflite_single":
                m, sh = quantize_multiplier(float(s_acc[o]) / lay.out_scale, mode=mode)
                assert np.abs(acc[:, o]).max() * m < 2.0 ** 53
                v = np.floor(acc[:, o] * m * 2.0 ** (sh - 31) + 0.5) + lay.out_zero_point
            else:
                M = np.float32(np.float32(s_acc[o]) / np.float32(lay.out_scale))
                v = np.rint(acc[:, o] * np.float64(M) + lay.out_zero_point)
            assert np.array_equal(got[:, o], np.clip(v, lay.act_min, lay.act_max))


@pytest.mark.parametrize("mode", MODES)
def test_integer_linear_hooks_are_the_codes_path(mode):
    import refcomp.layers as L
    lay = _layer(mode, conv=True)
    x = RNG.standard_normal((2, 6, 5, 5)).astype(np.float32)
    y = L.conv2d(x, lay, None, padding=1)
    xq = quantize(x, lay.in_scale, lay.in_zero_point, mode=mode)
    q = lay.conv2d_codes(xq, padding=1)
    assert np.array_equal(y, dequantize(q, lay.out_scale, lay.out_zero_point, mode=mode))
    # the dequantized bias is accepted bit for bit, another b is refused
    assert np.array_equal(L.conv2d(x, lay, lay.bias_dequantized(), padding=1), y)
    with pytest.raises(ParameterError, match="bias"):
        L.conv2d(x, lay, lay.bias_dequantized() + 1, padding=1)
    yn = L.conv2d(np.ascontiguousarray(x.transpose(0, 2, 3, 1)), lay, None, padding=1,
                  layout="NHWC")
    assert np.array_equal(yn, y.transpose(0, 2, 3, 1))


def test_integer_linear_bad_input():
    codes = np.zeros((3, 4), np.int8)
    ws = np.full(3, 0.01, np.float32)
    kw = dict(in_scale=0.5, in_zero_point=0, out_scale=0.25, out_zero_point=0, mode="onnx")
    with pytest.raises(DTypeError):
        IntegerLinear(codes.astype(np.int16), ws, **kw)
    with pytest.raises(ParameterError, match="w_scale"):
        IntegerLinear(codes, np.array([0.01, 0.0, 0.01], np.float32), **kw)
    with pytest.raises(ParameterError, match="in_scale"):
        IntegerLinear(codes, ws, **{**kw, "in_scale": float("nan")})
    with pytest.raises(ParameterError, match="out_zero_point"):
        IntegerLinear(codes, ws, **{**kw, "out_zero_point": -129})
    with pytest.raises(ParameterError, match="unsupported"):
        IntegerLinear(codes, ws, **kw, act_dtype="int16")
    with pytest.raises(ParameterError, match="torch"):
        IntegerLinear(codes, ws, **kw, bias_float=np.zeros(3, np.float32))
    lay = IntegerLinear(codes, ws, **kw)
    with pytest.raises(ParameterError, match="non-finite"):
        lay.linear(np.array([[np.nan, 0, 0, 0]], np.float32))
    with pytest.raises(ShapeError, match="features"):
        lay.linear_codes(np.zeros((1, 5), np.int8))
