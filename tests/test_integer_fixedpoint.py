"""refcomp.integer primitives against their Python-int definitions (tests/_integer_ref.py):
QuantizeMultiplier, SRDHM, RoundingDivideByPOT, MultiplyByQuantizedMultiplier (double and
single rounding), requantize in every mode; the Numba kernels against their NumPy twins."""

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, strategies as st

import _integer_ref as R
from refcomp import DTypeError, ParameterError
from refcomp.integer import (multiply_by_quantized_multiplier, quantize_multiplier, requantize,
                             rounding_divide_by_pot, saturating_rounding_doubling_high_mul)
from refcomp.integer.requantize import MODES
from refcomp.kernels import integer as K
from refcomp.testing import assert_bits_equal

I32 = st.integers(R.INT32_MIN, R.INT32_MAX)
EDGES = [R.INT32_MIN, R.INT32_MIN + 1, -(1 << 30) - 1, -(1 << 30), -(1 << 30) + 1, -65537,
         -32768, -255, -3, -2, -1, 0, 1, 2, 3, 255, 32767, 65537, (1 << 30) - 1, 1 << 30,
         (1 << 30) + 1, R.INT32_MAX - 1, R.INT32_MAX]


# -- SRDHM ------------------------------------------------------------------------------
def test_srdhm_edges_exhaustive():
    a, b = np.meshgrid(np.array(EDGES, np.int32), np.array(EDGES, np.int32))
    got = saturating_rounding_doubling_high_mul(a, b)
    assert got.dtype == np.int32
    want = [[R.srdhm(int(x), int(y)) for x, y in zip(ra, rb)] for ra, rb in zip(a, b)]
    assert got.tolist() == want


def test_srdhm_ties_go_to_plus_infinity():
    # a*b / 2**31 = k + 1/2 exactly: a = 2k+1, b = 2**30.
    for k in range(-40, 40):
        got = saturating_rounding_doubling_high_mul(2 * k + 1, 1 << 30)
        assert got == R.srdhm(2 * k + 1, 1 << 30) == k + 1      # ties toward +inf
    assert saturating_rounding_doubling_high_mul(R.INT32_MIN, R.INT32_MIN) == R.INT32_MAX
    assert saturating_rounding_doubling_high_mul(-1, 1 << 30) == 0    # -0.5 -> 0


@given(I32, I32)
def test_srdhm_hypothesis(a, b):
    got = saturating_rounding_doubling_high_mul(a, b)
    assert got == R.srdhm(a, b)
    if not a == b == R.INT32_MIN:                 # nearest, ties toward +inf
        assert got == math.floor(Fraction(a * b, 1 << 31) + Fraction(1, 2))


# -- RoundingDivideByPOT -------------------------------------------------------------------
def test_rdbpot_exhaustive_exponents_and_ties():
    xs, es = [], []
    for e in range(32):
        cands = set(EDGES)
        if e:
            for k in range(-3, 3):                    # exact ties (2k+1) * 2**(e-1)
                cands.add((2 * k + 1) << (e - 1))
        for x in cands:
            if R.INT32_MIN <= x <= R.INT32_MAX:
                xs.append(x)
                es.append(e)
    got = rounding_divide_by_pot(np.array(xs, np.int32), np.array(es, np.int32))
    assert got.tolist() == [R.rdbpot(x, e) for x, e in zip(xs, es)]
    # ties away from zero
    assert [rounding_divide_by_pot(v, 1) for v in (-5, -3, -1, 1, 3, 5)] == [-3, -2, -1, 1, 2, 3]
    for x, e in zip(xs, es):
        assert R.rdbpot(x, e) == R.round_half_away_fraction(Fraction(x, 1 << e))


@given(I32, st.integers(0, 31))
def test_rdbpot_hypothesis(x, e):
    assert rounding_divide_by_pot(x, e) == R.rdbpot(x, e) == \
        R.round_half_away_fraction(Fraction(x, 1 << e))


# -- QuantizeMultiplier --------------------------------------------------------------------
QM_CASES = [0.0, 1.0, 0.5, 0.25, 0.75, 1e-3, 0.0049, 0.9999999999, 1 - 2.0 ** -33,
            1 - 2.0 ** -32, (2 ** 31 + 1) / 2 ** 32, (2 ** 31 + 3) / 2 ** 32, 2.0 ** -31,
            2.0 ** -32, 2.0 ** -33, 1.5 * 2.0 ** -32, 2.0 ** 30, 2.0 ** 31, 3.7e12, 1e-300,
            -0.5, -(2 ** 31 + 1) / 2 ** 32, -1 + 2.0 ** -33, 5e-324, 1.7976931348623157e308]


@pytest.mark.parametrize("real", QM_CASES)
@pytest.mark.parametrize("mode", ["tflite_double", "tflite_single"])
def test_quantize_multiplier_edges(real, mode):
    assert quantize_multiplier(real, mode=mode) == R.quantize_multiplier(
        real, mode == "tflite_single")


def test_quantize_multiplier_corner_cases():
    # q * 2**31 rounds up to 2**31: halved, shift + 1
    assert quantize_multiplier(1 - 2.0 ** -33) == (1 << 30, 1)
    # exact tie q * 2**31 = 2**30 + 1/2: away from zero
    assert quantize_multiplier((2 ** 31 + 1) / 2 ** 32) == ((1 << 30) + 1, 0)
    assert quantize_multiplier(-(2 ** 31 + 1) / 2 ** 32) == (-(1 << 30) - 1, 0)
    # shift < -31 flushes to zero; -31 is kept
    assert quantize_multiplier(2.0 ** -33) == (0, 0)
    assert quantize_multiplier(2.0 ** -32) == (1 << 30, -31)
    # single rounding clamps shift > 30
    assert quantize_multiplier(2.0 ** 31, mode="tflite_single") == (R.INT32_MAX, 30)
    assert quantize_multiplier(2.0 ** 31) == (1 << 30, 32)


@given(st.floats(min_value=0, max_value=2.0 ** 40, allow_nan=False, allow_subnormal=True))
def test_quantize_multiplier_hypothesis(real):
    got = quantize_multiplier(real)
    assert got == R.quantize_multiplier(real)
    m, s = got
    if m:                       # the representation is within half a unit of 2**(s-31)
        assert abs(Fraction(m) * Fraction(2) ** (s - 31) - Fraction(real)) <= \
            Fraction(2) ** (s - 32)


def test_quantize_multiplier_bad_input():
    for bad in (float("nan"), float("inf"), "0.5", None, True):
        with pytest.raises(ParameterError):
            quantize_multiplier(bad)
    with pytest.raises(ParameterError, match="mode"):
        quantize_multiplier(0.5, mode="gemmlowp")


# -- MultiplyByQuantizedMultiplier ---------------------------------------------------------
def _mbqm_ref(x, m, s, mode):
    return {"tflite_double": R.mbqm_double, "tflite_single": R.mbqm_single,
            "tflite_ruy": R.mbqm_ruy}[mode](x, m, s)


@pytest.mark.parametrize("mode", ["tflite_double", "tflite_single", "tflite_ruy"])
def test_mbqm_edges_exhaustive(mode):
    mults = [0, 1, (1 << 30) - 1, 1 << 30, (1 << 30) + 1, 1518500250, R.INT32_MAX - 1, R.INT32_MAX]
    xs, ms, ss, want = [], [], [], []
    for s in range(-31, 31):
        for m in mults:
            for x in EDGES + [(2 * k + 1) << 10 for k in range(-2, 2)]:
                r = _mbqm_ref(x, m, s, mode)
                if r is None:
                    continue
                xs.append(x), ms.append(m), ss.append(s), want.append(r)
    got = multiply_by_quantized_multiplier(np.array(xs, np.int32), np.array(ms, np.int32),
                                           np.array(ss, np.int32), mode=mode)
    assert got.tolist() == want
    assert len(want) > 10000


def test_mbqm_rounding_rules():
    # single rounding: one rounding, ties toward +inf; x * m / 2**(31 - s)
    m = 1 << 30                                       # 0.5 * 2**31
    for x in range(-9, 10):
        want = math.floor(Fraction(x, 4) + Fraction(1, 2))       # x * 0.5 / 2 with s = -1
        assert multiply_by_quantized_multiplier(x, m, -1, mode="tflite_single") == want
        # double: SRDHM (x/2, ties +inf) then /2 ties away from zero
        h = math.floor(Fraction(x, 2) + Fraction(1, 2))
        assert multiply_by_quantized_multiplier(x, m, -1, mode="tflite_double") == \
            R.round_half_away_fraction(Fraction(h, 2))
    # the two disagree: x = 3 -> 0.75 single 1; double: SRDHM 1.5 -> 2, 2/2 = 1; x = -3:
    # single -0.75 -> -1, double: -1.5 -> -1, -1/2 -> -1 (away); x = 5: 1.25 -> 1; double
    # 2.5 -> 3, 3/2 = 1.5 -> 2: double rounding differs.
    assert multiply_by_quantized_multiplier(5, m, -1, mode="tflite_single") == 1
    assert multiply_by_quantized_multiplier(5, m, -1, mode="tflite_double") == 2


@given(I32, st.integers(0, R.INT32_MAX), st.integers(-31, 30),
       st.sampled_from(["tflite_double", "tflite_single", "tflite_ruy"]))
def test_mbqm_hypothesis(x, m, s, mode):
    want = _mbqm_ref(x, m, s, mode)
    if want is None:
        with pytest.raises(ParameterError, match="definition domain"):
            multiply_by_quantized_multiplier(x, m, s, mode=mode)
    else:
        assert multiply_by_quantized_multiplier(x, m, s, mode=mode) == want


def test_mbqm_bad_input():
    with pytest.raises(ParameterError, match="shift"):
        multiply_by_quantized_multiplier(1, 1 << 30, 31, mode="tflite_double")
    with pytest.raises(ParameterError, match="multiplier"):
        multiply_by_quantized_multiplier(1, -1, 0, mode="tflite_single")
    with pytest.raises(DTypeError):
        multiply_by_quantized_multiplier(np.array([1.0]), 1, 0, mode="tflite_single")
    with pytest.raises(ParameterError, match="acc"):
        multiply_by_quantized_multiplier(np.array([1 << 40]), 1, 0, mode="tflite_single")
    with pytest.raises(ParameterError, match="definition domain"):
        multiply_by_quantized_multiplier(1 << 20, 1 << 30, 12, mode="tflite_double")
    with pytest.raises(ParameterError, match="broadcast"):
        multiply_by_quantized_multiplier(np.zeros(3, np.int32), np.zeros(2, np.int32), 0,
                                         mode="tflite_single")


# -- requantize ---------------------------------------------------------------------------


def _f32(v):
    return float(np.float32(v))


ACCS = [0, 1, -1, 2, -2, 3, 100, -100, 127, 255, -255, 1000, -1000, 12345, -12345, 1 << 20,
        -(1 << 20), (1 << 24) - 1, (1 << 24) + 1, -(1 << 24) - 3, (1 << 27) + 5, R.INT32_MAX,
        R.INT32_MIN]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("s_out", [_f32(0.1), _f32(1 / 3), _f32(2.0 ** -4), _f32(77.7)])
@pytest.mark.parametrize("zp", [-128, -5, 0, 3, 127])
def test_requantize_matches_definitions(mode, s_out, zp):
    s_in = float(np.float32(0.0123)) * float(np.float32(0.0071))     # exact product
    acc = np.array(ACCS + list(range(-300, 300, 7)), np.int32)
    got = requantize(acc, s_in, s_out, zp, mode=mode)
    want = [R.requant_ref(int(a), s_in, s_out, zp, mode, -128, 127) for a in acc.tolist()]
    assert got.dtype == np.int8 and got.tolist() == want


def test_requantize_every_kind_of_tie():
    # s_in / s_out = 1/2 exactly (M = 0.5 in every mode): acc = odd -> exact ties x.5
    s_in, s_out = 0.5, 1.0
    acc = np.arange(-9, 10, dtype=np.int32)
    half_up = [math.floor(Fraction(a, 2) + Fraction(1, 2)) for a in acc.tolist()]
    half_even = [R.round_half_even_fraction(Fraction(a, 2)) for a in acc.tolist()]
    assert requantize(acc, s_in, s_out, 0, mode="tflite_single").tolist() == half_up
    # double rounding: SRDHM with m = 2**30, shift 0 -> ties +inf as well here
    assert requantize(acc, s_in, s_out, 0, mode="tflite_double").tolist() == half_up
    assert requantize(acc, s_in, s_out, 0, mode="onnx").tolist() == half_even
    assert requantize(acc, s_in, s_out, 0, mode="torch").tolist() == half_even
    assert requantize(acc, s_in, s_out, 0, mode="xnnpack").tolist() == half_even
    half_away = [R.round_half_away_fraction(Fraction(a, 2)) for a in acc.tolist()]
    assert requantize(acc, s_in, s_out, 0, mode="tflite_float64").tolist() == half_away
    # onnx_reference adds the zero point before rint: an odd zero point moves every tie
    ref = requantize(acc, s_in, s_out, 1, mode="onnx_reference").tolist()
    assert ref == [R.round_half_even_fraction(Fraction(a, 2) + 1) for a in acc.tolist()]
    ort = requantize(acc, s_in, s_out, 1, mode="onnx").tolist()
    assert ort == [h + 1 for h in half_even] and ref != ort
    # ties below zero: half-away (TFLite double's second rounding) vs +inf (single)
    assert requantize(np.array([-3], np.int32), 0.25, 1.0, 0,
                      mode="tflite_double").tolist() == [-1]          # -0.75: SRDHM -1.5->-1
    assert requantize(np.array([-6], np.int32), 0.25, 1.0, 0,
                      mode="tflite_double").tolist() == [-2]          # -1.5: -3 /2 -> -2 away
    assert requantize(np.array([-6], np.int32), 0.25, 1.0, 0,
                      mode="tflite_single").tolist() == [-1]          # -1.5 -> -1 (+inf)
    # ruy: SRDHM (-3) then /2 with ties toward +inf: -1.5 -> -1
    assert requantize(np.array([-6], np.int32), 0.25, 1.0, 0,
                      mode="tflite_ruy").tolist() == [-1]
    assert requantize(np.array([6], np.int32), 0.25, 1.0, 0,
                      mode="tflite_ruy").tolist() == [2]


@given(st.lists(I32, min_size=1, max_size=40),
       st.floats(min_value=1e-6, max_value=10.0), st.floats(min_value=1e-6, max_value=10.0),
       st.floats(min_value=1e-3, max_value=100.0), st.integers(-128, 127),
       st.sampled_from(MODES))
def test_requantize_hypothesis(accs, sx, sw, so, zp, mode):
    s_in = _f32(sx) * _f32(sw)
    s_out = _f32(so)
    acc = np.array(accs, np.int32)
    try:
        got = requantize(acc, s_in, s_out, zp, mode=mode)
    except ParameterError as exc:
        assert mode.startswith("tflite") and "domain" in str(exc)
        return
    want = [R.requant_ref(a, s_in, s_out, zp, mode, -128, 127) for a in accs]
    assert got.tolist() == want


@pytest.mark.parametrize("per_channel", [False, True])
def test_requantize_torch_float_bias(per_channel):
    rng = np.random.default_rng(3)
    acc = rng.integers(-50000, 50000, size=(7, 5)).astype(np.int32)
    sx = _f32(0.0217)
    sw = rng.uniform(0.001, 0.01, 5).astype(np.float32)
    s_in = sw.astype(np.float64) * sx if per_channel else float(sw[0]) * sx
    bias = rng.standard_normal(5).astype(np.float32)
    b = bias if per_channel else bias[:1]
    a = acc if per_channel else acc[:, :1]
    got = requantize(a, s_in, _f32(0.05), 130, mode="torch", axis=1 if per_channel else None,
                     out_dtype="uint8", bias=b)
    sin = s_in if per_channel else np.full(1, s_in)
    want = [[R.requant_ref(int(a[i, c]), float(sin[c]), _f32(0.05), 130, "torch", 0, 255,
                           bias=float(b[c]), per_channel=per_channel)
             for c in range(a.shape[1])] for i in range(a.shape[0])]
    assert got.dtype == np.uint8 and got.tolist() == want


def test_requantize_per_channel_and_clamp():
    rng = np.random.default_rng(0)
    acc = rng.integers(-30000, 30000, size=(3, 4, 5)).astype(np.int32)
    s_in = rng.uniform(1e-5, 1e-3, 4)
    for mode in MODES:
        got = requantize(acc, s_in, _f32(0.02), -7, mode=mode, axis=1, act_min=-7, act_max=100)
        want = [[[R.requant_ref(int(acc[i, c, j]), float(s_in[c]), _f32(0.02), -7, mode, -7, 100)
                  for j in range(5)] for c in range(4)] for i in range(3)]
        assert got.tolist() == want


def test_requantize_bad_input():
    acc = np.zeros(4, np.int32)
    with pytest.raises(DTypeError, match="int32"):
        requantize(acc.astype(np.int64), 0.1, 0.1, 0, mode="onnx")
    for bad in (0.0, -0.1, float("nan"), float("inf")):
        with pytest.raises(ParameterError, match="scale"):
            requantize(acc, bad, 0.5, 0, mode="onnx")
        with pytest.raises(ParameterError, match="scale_out"):
            requantize(acc, 0.1, bad, 0, mode="onnx")
    with pytest.raises(ParameterError, match="float32"):
        requantize(acc, 0.1, 0.1, 0, mode="onnx")        # 0.1 is not a float32 value
    with pytest.raises(ParameterError, match="zero_point"):
        requantize(acc, 0.1, 0.5, 128, mode="onnx")
    with pytest.raises(ParameterError, match="zero_point"):
        requantize(acc, 0.1, 0.5, -1, mode="onnx", out_dtype="uint8")
    with pytest.raises(ParameterError, match="unsupported"):
        requantize(acc, 0.1, 0.5, 0, mode="onnx", out_dtype="int16")
    with pytest.raises(ParameterError, match="mode"):
        requantize(acc, 0.1, 0.5, 0, mode="tflite")
    with pytest.raises(ParameterError, match="axis"):
        requantize(acc, np.array([0.1] * 4), 0.5, 0, mode="onnx")
    with pytest.raises(ParameterError, match="torch"):
        requantize(acc, 0.1, 0.5, 0, mode="onnx", bias=np.zeros(1, np.float32))
    with pytest.raises(ParameterError, match="2\\*\\*30"):
        requantize(acc, 2.0 ** 40, 0.5, 0, mode="tflite_double")


# -- kernels and their twins ----------------------------------------------------------------
def test_fixedpoint_kernels_twin():
    rng = np.random.default_rng(5)
    a = np.concatenate([np.array(EDGES, np.int64),
                        rng.integers(R.INT32_MIN, R.INT32_MAX, 20000, endpoint=True)])
    b = np.concatenate([np.array(EDGES[::-1], np.int64),
                        rng.integers(R.INT32_MIN, R.INT32_MAX, 20000, endpoint=True)])
    assert_bits_equal(K.srdhm(a, b), K.srdhm_twin(a, b))
    e = rng.integers(0, 32, a.size).astype(np.int64)
    assert_bits_equal(K.rdbpot(a, e), K.rdbpot_twin(a, e))


@pytest.mark.parametrize("single", [0, 1, 2])
def test_mbqm_requant_kernel_twin(single):
    rng = np.random.default_rng(6)
    acc3 = rng.integers(-(1 << 26), 1 << 26, size=(3, 6, 1000)).astype(np.int32)
    acc3[0, 5, :len(EDGES)] = EDGES                # shift 5: some overflow
    mult = rng.integers(1 << 30, R.INT32_MAX, 6).astype(np.int32)
    shift = np.array([-31, -20, -8, 0, 1, 5], np.int32)
    for dt, lo, hi, zp in ((np.int8, -128, 127, -3), (np.uint8, 0, 255, 128),
                           (np.int64, R.INT32_MIN, R.INT32_MAX, 0)):
        got, bad = K.mbqm_requant(acc3, mult, shift, single, zp, lo, hi, dt)
        twin, bad2 = K.mbqm_requant_twin(acc3, mult, shift, single, zp, lo, hi, dt)
        assert_bits_equal(got, twin)
        assert bad == bad2 > 0


def test_float_requant_kernels_twin():
    rng = np.random.default_rng(7)
    acc3 = rng.integers(R.INT32_MIN, R.INT32_MAX, size=(4, 5, 777), endpoint=True).astype(np.int32)
    acc3[1] = rng.integers(-3000, 3000, size=(5, 777))
    m32 = rng.uniform(1e-6, 1e-2, 5).astype(np.float32)
    m32[0] = 0.5
    bterm = rng.standard_normal(5).astype(np.float32) * 100
    for dt, lo, hi, zp in ((np.int8, -128, 127, 5), (np.uint8, 0, 255, 0)):
        for bt in (None, bterm):
            assert_bits_equal(K.float32_requant(acc3, m32, bt, zp, lo, hi, dt),
                              K.float32_requant_twin(acc3, m32, bt, zp, lo, hi, dt))
        m64 = m32.astype(np.float64)
        m64[1] = 0.5                                   # exact ties for the half-away rule
        for away in (False, True):
            assert_bits_equal(K.float64_requant(acc3, m64, zp, lo, hi, dt, away=away),
                              K.float64_requant_twin(acc3, m64, zp, lo, hi, dt, away=away))
