"""ONNX QuantizeLinear / DequantizeLinear / Cast (refcomp.quantize.qdq) against ml_dtypes,
exact rationals and naive loops; bad parameters are refcomp errors naming them."""

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, strategies as st

from refcomp import DTypeError, ParameterError, RefcompError, ShapeError
from refcomp.quantize import from_codes, qdq
from refcomp.testing import assert_bits_equal

ml_dtypes = pytest.importorskip("ml_dtypes")
f32 = np.float32


def _round_f32(fr):
    """Fraction -> the nearest float32, ties to even (independent of NumPy's casts)."""
    if fr == 0:
        return f32(0.0)
    c = f32(float(fr))
    lo, hi = (np.nextafter(c, f32(-np.inf)), c) if Fraction(float(c)) > fr else \
        (c, np.nextafter(c, f32(np.inf)))
    dl, dh = fr - Fraction(float(lo)), Fraction(float(hi)) - fr
    if dl != dh:
        return lo if dl < dh else hi
    return lo if int(np.array(lo).view(np.uint32)) % 2 == 0 else hi


@given(st.sampled_from(["int8", "uint8", "int16", "uint16", "int4", "uint4", "int2", "uint2"]),
       st.integers(1, 5), st.integers(1, 6), st.integers(0, 3), st.integers(0, 1),
       st.integers(0, 2 ** 31))
def test_quantize_linear_integer_against_a_loop(out, rows, cols, block, axis, seed):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((rows, cols)) * 20).astype(f32)
    lo, hi, npt = qdq.INT_TYPES[out]
    shape = [rows, cols]
    if block:
        shape[axis] = -(-shape[axis] // block)
    else:
        shape = [shape[axis]]
    s = rng.uniform(0.05, 3, shape).astype(f32)
    zp = rng.integers(lo, hi + 1, shape).astype(npt)
    got = qdq.quantize_linear(x, s, zp.astype(getattr(ml_dtypes, out)) if "4" in out or "2" in out
                              else zp, axis=axis, block_size=block)
    for i in range(rows):
        for j in range(cols):
            if block:
                k = (i // block, j) if axis == 0 else (i, j // block)
            else:
                k = (i if axis == 0 else j,)
            v = float(f32(x[i, j] / s[k]))               # one float32 division
            want = min(max(int(np.rint(v)) + int(zp[k]), lo), hi)
            assert int(got[i, j]) == want


@pytest.mark.parametrize("fmt", ["float8_e4m3fn", "float8_e4m3fnuz", "float8_e5m2",
                                 "float8_e5m2fnuz"])
def test_quantize_and_cast_float8_against_ml_dtypes(fmt):
    rng = np.random.default_rng(4)
    x = (rng.standard_normal(4000) * 10.0 ** rng.uniform(-6, 6, 4000)).astype(f32)
    x = np.concatenate([x, np.array([np.nan, np.inf, -np.inf, -0.0, 1e9], f32)])
    s = np.array(0.37, f32)
    ref = getattr(ml_dtypes, fmt)
    with np.errstate(all="ignore"):
        want = (x / s).astype(ref).view(np.uint8)        # ml_dtypes: RNE, no saturation
    got = qdq.quantize_linear(x, s, output_dtype=fmt, saturate=False)
    nan = np.isnan(want.view(ref).astype(f32))
    assert np.array_equal(nan, np.isnan(from_codes(got, fmt).dequantize()))
    assert_bits_equal(got[~nan], want[~nan])
    # Cast, saturating (ONNX table: Inf -> +-max) equals ml_dtypes on clipped input
    mx = float(ml_dtypes.finfo(ref).max)
    with np.errstate(all="ignore"):
        want = np.clip(x, -mx, mx).astype(ref).view(np.uint8)
    got = qdq.cast(x, fmt)
    nan = np.isnan(x)
    assert_bits_equal(got[~nan], want[~nan])
    # and back: every pattern decodes exactly
    pats = np.arange(256, dtype=np.uint8)
    back = qdq.cast(pats.view(ref), "float32")
    ok = ~np.isnan(pats.view(ref).astype(f32))
    assert_bits_equal(back[ok], pats.view(ref).astype(f32)[ok])


def test_cast_refuses_an_unknown_target_listing_each_type_once():
    with pytest.raises(ParameterError, match="int8") as info:
        qdq.cast(np.zeros(2, np.float32), "int8")
    names = str(info.value).split("[")[1].split("]")[0].replace("'", "").split(", ")
    assert len(names) == len(set(names)) and {"float16", "bfloat16", "float4_e2m1fn"} <= set(names)


def test_cast_bfloat16_float64_rounds_once():
    rng = np.random.default_rng(5)
    x = rng.standard_normal(20000) * 10.0 ** rng.uniform(-30, 30, 20000)
    assert_bits_equal(qdq.cast(x, "bfloat16"), x.astype(ml_dtypes.bfloat16).view(np.uint16))
    inf = qdq.cast(np.array([np.inf, 3.5e38], f32), "bfloat16")    # saturate is float8 only
    assert inf.tolist() == [0x7F80, 0x7F80]


@given(st.integers(0, 2 ** 31), st.sampled_from(["float32", "float16", "bfloat16"]))
def test_dequantize_linear_rounds_the_exact_product_once(seed, out):
    rng = np.random.default_rng(seed)
    top = 1 << (12 if out == "float16" else 31)
    x = rng.integers(-top, top - 1, 50).astype(np.int32)
    s = rng.uniform(1e-6 if out != "float16" else 1e-3, 10, 50).astype(f32)
    got = qdq.dequantize_linear(x, s, axis=0, output_dtype=out)
    for i in range(50):
        exact = Fraction(int(x[i])) * Fraction(float(s[i]))
        if out == "float32":
            assert got[i].tobytes() == _round_f32(exact).tobytes()
        elif out == "float16":       # float16 = nearest float16 of the exact value
            cand = np.float16(float(exact))
            nb = [np.nextafter(cand, np.float16(-np.inf)), cand,
                  np.nextafter(cand, np.float16(np.inf))]
            best = min(nb, key=lambda c: (abs(Fraction(float(c)) - exact),
                                          int(np.array(c).view(np.uint16)) % 2))
            assert got[i] == best
        else:
            pat = int(got[i])
            val = Fraction(float(np.array([pat], np.uint16).view(ml_dtypes.bfloat16)[0]))
            if abs(exact) < Fraction(3e38):
                nxt = Fraction(float(np.array([pat + 1], np.uint16).view(ml_dtypes.bfloat16)[0]))
                prv = Fraction(float(np.array([pat - 1], np.uint16).view(ml_dtypes.bfloat16)[0]))
                assert abs(val - exact) <= abs(nxt - exact) and abs(val - exact) <= \
                    abs(prv - exact)


def test_dequantize_agrees_with_the_public_decode_path():
    rng = np.random.default_rng(6)
    x = rng.integers(-8, 8, (3, 8)).astype(np.int8)
    s = rng.uniform(0.1, 2, (3, 4)).astype(f32)
    zp = rng.integers(-8, 8, (3, 4)).astype(np.int8)
    a = qdq.dequantize_linear(x.astype(ml_dtypes.int4), s, zp.astype(ml_dtypes.int4), axis=1,
                              block_size=2)
    b = from_codes(x, "affine", scale=s, zero_point=zp, axis=1, block_size=2).dequantize()
    assert_bits_equal(a, b)


def test_dynamic_quantize_linear():
    x = np.array([0.0, 2.0, -3.0, -2.5, 1.34, 0.5], f32)
    y, s, z = qdq.dynamic_quantize_linear(x)
    assert s.dtype == f32 and z.dtype == np.uint8
    assert s == f32((f32(2.0) - f32(-3.0)) / f32(255))
    with pytest.raises(ParameterError, match="all zeros"):
        qdq.dynamic_quantize_linear(np.zeros(3, f32))


def test_bad_parameters_are_named():
    x = np.ones((2, 4), f32)
    cases = [
        (ParameterError, "block_size", lambda: qdq.quantize_linear(x, np.ones((2, 2), f32),
                                                                   axis=1, block_size=-1)),
        (ParameterError, "block_size=3", lambda: qdq.quantize_linear(
            x, np.ones((2, 1), f32), axis=1, block_size=3)),
        (ShapeError, "y_scale", lambda: qdq.quantize_linear(x, np.ones(3, f32), axis=1)),
        (ParameterError, "axis", lambda: qdq.quantize_linear(x, np.ones(4, f32), axis=5)),
        (ParameterError, "output type", lambda: qdq.quantize_linear(x, np.ones(1, f32),
                                                                    output_dtype="int64")),
        (ParameterError, "NaN", lambda: qdq.quantize_linear(np.array([np.nan], f32),
                                                            np.ones(1, f32))),
        (ParameterError, "zero", lambda: qdq.quantize_linear(
            x, np.ones(1, f32), np.array([0x38], np.uint8).view(ml_dtypes.float8_e4m3fn))),
        (ParameterError, "y_scale", lambda: qdq.quantize_linear(x, np.zeros(1, f32))),
        (ParameterError, "x_type", lambda: qdq.dequantize_linear(np.ones(2, np.uint8),
                                                                 np.ones(1, f32), x_type="int7")),
        (ParameterError, "to", lambda: qdq.cast(x, "int4")),
        (DTypeError, "x", lambda: qdq.quantize_linear(np.ones(2, np.int32), np.ones(1, f32))),
        (ParameterError, "NaN", lambda: qdq.cast(np.array([np.nan], f32), "float4_e2m1fn")),
    ]
    for exc, word, call in cases:
        with pytest.raises(exc, match=word):
            call()
        assert issubclass(exc, RefcompError)
