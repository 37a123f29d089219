"""The public decode path (from_codes), FNUZ / float4 formats, truncation, decoder checks.

Ground truth: ml_dtypes (every bit pattern of every 8-bit and 4-bit format),
torch casts for the via-float32 path, the bit truncation of float32 patterns,
and a naive Python loop for blocked dequantization.
"""

import numpy as np
import pytest
from hypothesis import given, strategies as st

from refcomp import DTypeError, ParameterError, RefcompError, ShapeError
from refcomp.kernels import quantize as K
from refcomp.quantize import (Quantized, from_codes, minifloat, to_bfloat16, to_float4_e2m1,
                              to_float8_e4m3fnuz, to_float8_e5m2fnuz, to_format)
from refcomp.quantize.float_formats import FORMATS
from refcomp.testing import assert_bits_equal

ml_dtypes = pytest.importorskip("ml_dtypes")

SMALL = ["float8_e4m3fn", "float8_e4m3fnuz", "float8_e5m2", "float8_e5m2fnuz", "float4_e2m1fn"]


def _specials():
    return np.array([0.0, -0.0, np.inf, -np.inf, 448, 464, 465, 240, 248, 256, 57344, 61440,
                     6, 7, 5, -5.5, 0.25, 0.24, -0.26, 2 ** -9, 2 ** -10, 2 ** -17, 1e-30,
                     -1e-30, 3e38, -3e38], dtype=np.float32)


@pytest.mark.parametrize("name", SMALL)
def test_every_pattern_decodes_as_ml_dtypes(name):
    nbits = 4 if name.startswith("float4") else 8
    pats = np.arange(1 << nbits, dtype=np.uint8)
    want = pats.view(getattr(ml_dtypes, name)).astype(np.float64)
    for dt in (np.float32, np.float64):
        got = from_codes(pats, name, dtype=dt).dequantize()
        assert got.dtype == dt
        nan = np.isnan(want)
        assert np.array_equal(np.isnan(got), nan)
        assert_bits_equal(got[~nan], want[~nan].astype(dt))


@pytest.mark.parametrize("name", SMALL)
def test_encode_matches_ml_dtypes(name):
    ref = getattr(ml_dtypes, name)
    rng = np.random.default_rng(3)
    r32 = rng.integers(0, 2 ** 32, 200_000, dtype=np.uint64).astype(np.uint32).view(np.float32)
    r64 = rng.standard_normal(20_000) * np.exp(rng.uniform(-12, 12, 20_000))
    pats = np.arange(256 if "8" in name else 16, dtype=np.uint8)
    vals = pats.view(ref).astype(np.float64)
    vals = vals[np.isfinite(vals)]
    vals.sort()
    mids = (vals[:-1] + vals[1:]) / 2
    for x in (r32, r64, _specials(), mids, mids.astype(np.float32)):
        if name == "float4_e2m1fn":
            x = x[~np.isnan(x)]               # no NaN pattern: refused (tested below)
        with np.errstate(all="ignore"):
            want = x.astype(ref).view(np.uint8)
        # ml_dtypes 0.7 rounds float64 once: via_float32=False
        got = to_format(x, name, via_float32=False).codes
        if name == "float4_e2m1fn":
            nz = want != 0                        # ml_dtypes may give a NaN-free -0/+0 mix
            assert_bits_equal(got[nz], want[nz])
            assert np.all(from_codes(got[~nz], name).dequantize() == 0)
        else:
            assert_bits_equal(got, want)


def test_fnuz_nan_zero_and_saturation():
    x = np.array([np.nan, -np.nan, -0.0, -1e-30, np.inf, -np.inf, 1e6, 241, 240], np.float32)
    q = to_float8_e4m3fnuz(x)
    assert q.codes.tolist() == [0x80, 0x80, 0, 0, 0x80, 0x80, 0x80, 0x7F, 0x7F]
    s = to_float8_e4m3fnuz(x, saturate=True).dequantize()
    assert s[4] == 240 and s[5] == -240 and s[6] == 240 and np.isnan(s[0])
    assert to_float8_e5m2fnuz(np.array([np.inf], np.float32), saturate=True).dequantize()[0] \
        == 57344


def test_silent_fnuz_decode_is_fixed():
    # A hand-built FNUZ Quantized used to decode as IEEE: 0x80 -> -0.0, 0x7F -> NaN.
    q = Quantized(np.array([0x80, 0x7F, 0xFF, 0x00], np.uint8), bits=8, method="m",
                  decoder="minifloat", dtype=np.float32,
                  params={"exp_bits": 4, "man_bits": 3, "bias": 8, "special": "fnuz"})
    d = q.dequantize()
    assert np.isnan(d[0]) and d[1] == 240 and d[2] == -240 and d[3] == 0
    assert not np.signbit(d[3])


def test_float4_refuses_nan_and_non_saturation():
    with pytest.raises(ParameterError, match="NaN"):
        to_float4_e2m1(np.array([1.0, np.nan], np.float32))
    with pytest.raises(ParameterError, match="saturate"):
        minifloat(np.ones(2, np.float32), 2, 1, bias=1, special="finite", saturate=False)
    assert to_float4_e2m1(np.array([np.inf, -7.0, 5.0, 0.2], np.float32)).dequantize() \
        .tolist() == [6.0, -6.0, 4.0, 0.0]


def _nans(n_random, seed):
    # quiet and signalling NaNs of both signs with assorted payloads, as float32 patterns
    rng = np.random.default_rng(seed)
    fixed = [0x7FC00000, 0xFFC00000, 0x7F800001, 0xFF800001, 0x7FFFFFFF, 0xFFFFFFFF]
    pay = rng.integers(1, 1 << 23, size=n_random)
    sign = rng.integers(0, 2, size=n_random).astype(np.int64) << 31
    bits = np.array(fixed + (sign | 0x7F800000 | pay).tolist(), dtype=np.int64)
    return bits.astype(np.uint32).view(np.float32)


@given(st.integers(0, 2 ** 32 - 1), st.lists(st.floats(-20, 20, width=32), max_size=8))
def test_float4_finite_nan_ml_dtypes_variant_matches_ml_dtypes(seed, finite):
    """finite_nan="ml_dtypes": bit-exact with astype(ml_dtypes.float4_e2m1fn) for NaN of every
    sign and payload, mixed with numbers, from float32, float64 and float16 sources."""
    w = np.concatenate([_nans(8, seed), np.array(finite, np.float32)])
    np.random.default_rng(seed).shuffle(w)
    for src in (w, w.astype(np.float64)):
        with np.errstate(invalid="ignore"):
            want = src.astype(ml_dtypes.float4_e2m1fn).view(np.uint8)
        got = to_float4_e2m1(src, finite_nan="ml_dtypes").codes
        assert got.dtype == np.uint8 and np.array_equal(got, want)
        assert np.array_equal(to_format(src, "float4_e2m1fn", finite_nan="ml_dtypes").codes, want)
    with np.errstate(invalid="ignore"):
        want16 = w.astype(np.float16).astype(ml_dtypes.float4_e2m1fn).view(np.uint8)
    from refcomp.quantize import qdq
    assert np.array_equal(qdq.cast(w.astype(np.float16), "float4_e2m1fn",
                                   finite_nan="ml_dtypes"), want16)


def test_float4_finite_nan_hand_cases_and_default_refusal():
    """numpy.nan (sign bit clear) -> 0x8 (-0), -nan -> 0x0 (+0): ml_dtypes' inverted sign."""
    w = np.array([np.nan, -np.nan, 1.0, -0.0], np.float32)
    assert to_float4_e2m1(w, finite_nan="ml_dtypes").codes.tolist() == [8, 0, 2, 8]
    q = minifloat(w, 2, 3, bias=1, special="finite", finite_nan="ml_dtypes")  # float6 E2M3
    with np.errstate(invalid="ignore"):
        assert np.array_equal(q.codes, w.astype(ml_dtypes.float6_e2m3fn).view(np.uint8))
    for bad in ("zero", None, "ml-dtypes"):
        with pytest.raises(ParameterError, match="finite_nan"):
            to_float4_e2m1(w, finite_nan=bad)
    with pytest.raises(ParameterError, match="NaN"):
        to_float4_e2m1(w)                     # the default still refuses
    # ignored for formats with a NaN pattern
    assert to_format(w, "float8_e4m3fn", finite_nan="ml_dtypes").codes.tolist() == \
        to_format(w, "float8_e4m3fn").codes.tolist()


def test_bfloat16_float64_references():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    # values one float32 rounding away from a bfloat16 tie: the two references differ
    base = rng.integers(0, 0x7F00, 4000).astype(np.uint32) << 16 | 0x8000
    ties = base.view(np.float32).astype(np.float64)          # finite bfloat16 midpoints
    x = np.concatenate([ties * (1 + 2.0 ** -40), ties * (1 - 2.0 ** -40),
                        rng.standard_normal(5000) * 10.0 ** rng.uniform(-30, 30, 5000)])
    once = to_bfloat16(x, via_float32=False).codes
    assert_bits_equal(once, x.astype(ml_dtypes.bfloat16).view(np.uint16))
    twice = to_bfloat16(x).codes              # default: via float32, as PyTorch
    want = torch.from_numpy(x).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
    assert_bits_equal(twice, want)
    assert np.count_nonzero(once != twice) > 1000
    t8 = torch.from_numpy(x).to(torch.float8_e4m3fn).view(torch.uint8).numpy()
    assert_bits_equal(to_format(x, "float8_e4m3fn").codes[np.abs(x) < 448],
                      t8[np.abs(x) < 448])


def test_bfloat16_truncation_is_the_high_half():
    rng = np.random.default_rng(7)
    x = rng.integers(0, 2 ** 32, 300_000, dtype=np.uint64).astype(np.uint32).view(np.float32)
    x = np.concatenate([x, _specials()])
    x = x[~np.isnan(x)]
    q = to_bfloat16(x, rounding="toward_zero")
    assert_bits_equal(q.codes, (x.view(np.uint32) >> 16).astype(np.uint16))
    assert q.params["rounding"] == "toward_zero"
    nan = to_bfloat16(np.array([0x7F800001], np.uint32).view(np.float32),
                      rounding="toward_zero").codes[0]
    assert nan == 0x7FC0                      # a quiet NaN, not the inf of bit truncation


@given(st.lists(st.floats(allow_nan=False, width=32), min_size=1, max_size=40),
       st.sampled_from(sorted(FORMATS)))
def test_truncation_never_increases_magnitude(vals, name):
    x = np.array(vals, np.float32)
    if name == "float4_e2m1fn":
        x = x[np.isfinite(x)]
    q = to_format(x, name, rounding="toward_zero", saturate=True)
    d = q.dequantize().astype(np.float64)
    n = to_format(x, name, saturate=True).dequantize().astype(np.float64)
    fin = np.isfinite(x)
    assert np.all(np.abs(d[fin]) <= np.abs(x[fin].astype(np.float64)))
    # the nearest value is the truncated one or the next one up in magnitude
    assert np.all(np.abs(n[fin] - x[fin]) <= np.abs(d[fin] - x[fin]))


def test_minifloat_special_and_truncation_twins():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.standard_normal(3000) * np.exp(rng.uniform(-20, 20, 3000)),
                        [0.0, -0.0, np.inf, -np.inf, np.nan, 1e300]])
    for args in ((3, 4, 8, True, False, 2), (2, 5, 16, True, True, 2), (1, 2, 1, True, True, 3),
                 (7, 8, 127, True, False, 0), (3, 4, 7, False, False, 1)):
        for trunc in (False, True):
            y = x if args[-1] != 3 else x[~np.isnan(x)]
            assert_bits_equal(K.minifloat_encode(y, *args, np.uint16, trunc=trunc),
                              K.minifloat_encode_twin(y, *args, np.uint16, trunc=trunc))


# -- blocked affine decoding ------------------------------------------------------------------
def _naive_blocked(codes, scale, zp, axis, block):
    out = np.empty(codes.shape, dtype=np.float32)
    for idx in np.ndindex(codes.shape):
        j = list(idx)
        j[axis] = idx[axis] // block
        j = tuple(j)
        out[idx] = np.float32(float(int(codes[idx]) - int(zp[j])) * float(scale[j]))
    return out


@given(st.integers(1, 4), st.integers(1, 9), st.integers(1, 5), st.integers(0, 1),
       st.integers(0, 2 ** 31))
def test_blocked_dequantization_against_a_loop(rows, cols, block, axis, seed):
    rng = np.random.default_rng(seed)
    shape = (rows, cols)
    codes = rng.integers(-128, 128, shape).astype(np.int8)
    sshape = list(shape)
    sshape[axis] = -(-shape[axis] // block)
    scale = rng.uniform(1e-3, 2, sshape).astype(np.float32)
    zp = rng.integers(-5, 5, sshape).astype(np.int8)
    q = from_codes(codes, "affine", scale=scale, zero_point=zp, axis=axis, block_size=block)
    assert_bits_equal(q.dequantize(), _naive_blocked(codes, scale, zp, axis, block))


def test_decoders_check_every_parameter():
    c = np.arange(12, dtype=np.int8).reshape(3, 4)
    cases = [
        (ParameterError, "block_size", dict(scale=np.ones((3, 2), np.float32), axis=1,
                                            block_size=1)),
        (ParameterError, "block_size", dict(scale=np.ones((3, 2), np.float32), axis=1,
                                            block_size=0)),
        (ShapeError, "scale", dict(scale=np.ones(5, np.float32), axis=1)),
        (ShapeError, "scale", dict(scale=np.ones(4, np.float32))),
        (ParameterError, "axis", dict(scale=np.ones(4, np.float32), axis=3)),
        (ParameterError, "unknown parameter", dict(scale=np.ones(1, np.float32), blocksize=2)),
    ]
    for exc, word, kw in cases:
        with pytest.raises(exc, match=word):
            from_codes(c, "affine", **kw)
    with pytest.raises(ParameterError, match="special"):
        from_codes(np.zeros(2, np.uint8), "minifloat", exp_bits=4, man_bits=3, special="nuz")
    with pytest.raises(ParameterError, match="missing"):
        from_codes(np.zeros(2, np.uint8), "minifloat", exp_bits=4)
    with pytest.raises(ParameterError, match="codes must lie"):
        from_codes(np.array([300], np.uint16), "float8_e4m3fn")
    with pytest.raises(ParameterError, match="codes must lie"):
        from_codes(np.array([0, 4], np.uint8), "codebook", codebook=np.zeros(4, np.float32))
    with pytest.raises(ParameterError, match="method"):
        from_codes(c, "nope")
    with pytest.raises(DTypeError):
        from_codes(np.zeros(2, np.float32), "affine", scale=1.0)
    # hand-built Quantized objects go through the same checks (no NumPy error escapes)
    bad = Quantized(c, bits=8, method="affine", decoder="affine", dtype=np.float32,
                    params={"scale": np.ones((3, 3), np.float32), "axis": 1, "block_size": 2,
                            "zero_point": np.zeros(1, np.int32)})
    with pytest.raises(RefcompError, match="block_size"):
        bad.dequantize()
    for dec, params in (("uniform", {"theta_min": 0.0, "delta": np.nan, "grid": "range"}),
                        ("posit", {"nbits": 40, "es": 1}),
                        ("sign_scale", {"alpha": np.ones(2, np.float32), "axis": None,
                                        "levels": "binary"}),
                        ("fixed_point", {"frac_bits": 1.5})):
        with pytest.raises(RefcompError):
            Quantized(np.zeros((2, 2), np.uint8), bits=2, method=dec, decoder=dec,
                      params=params, dtype=np.float32).dequantize()


def test_from_codes_accepts_ml_dtypes_arrays():
    x = np.array([0.5, -3, 240], np.float32)
    a = x.astype(ml_dtypes.float8_e4m3fnuz)
    assert_bits_equal(from_codes(a, "float8_e4m3fnuz").dequantize(), x)
    i4 = np.array([-8, 7, 1], dtype=ml_dtypes.int4)
    q = from_codes(i4, "affine", scale=0.5, bits=4)
    assert q.dequantize().tolist() == [-4.0, 3.5, 0.5] and q.stored_bits() == 3 * 4 + 32 + 32
