"""Hypothesis properties of the scalar quantizers and number formats.

Monotone (where the quantizer is), at most 2**bits distinct codes, codes in range,
dequantize(quantize(x)) idempotent on representable values, per-channel equal to per-tensor
slice by slice, save/load bit-exact.  Ground truths are naive loops on Python ints/Fractions
where the property alone would not pin the result.  The profile (examples, derandomised CI)
comes from tests/conftest.py.
"""

import math
import os
import tempfile
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays

import refcomp
from refcomp.quantize import (affine, binary, calibrate, dynamic_fixed_point, fixed_point,
                              minifloat, posit, power_of_two, ternary, to_bfloat16, to_float16,
                              to_float8_e4m3fn, to_float8_e5m2, uniform, xnor)
from refcomp.testing import assert_bits_equal

pytest.importorskip("h5py")

DETERMINISTIC = ("half_even", "half_away", "half_up", "floor")


def _floats(dt, lim=1e4):
    return st.floats(-lim, lim, width=32 if dt == np.float32 else 64, allow_nan=False,
                     allow_subnormal=True)


def vec(dt=np.float32, lim=1e4, max_size=40):
    return arrays(dt, st.integers(1, max_size), elements=_floats(dt, lim))


def mat(dt=np.float32, lim=1e3):
    shapes = st.tuples(st.integers(1, 5), st.integers(1, 4), st.integers(1, 6))
    return arrays(dt, shapes, elements=_floats(dt, lim))


def _monotone(w, v):
    """v (decoded) is non-decreasing in w, ties in w included (stable sort by w)."""
    order = np.argsort(w.reshape(-1), kind="stable")
    vv = v.reshape(-1)[order].astype(np.float64)
    assert np.all(vv[1:] >= vv[:-1])                     # (inf, inf) is fine


def _exact_round(fr, mode):
    fl = math.floor(fr)
    d = fr - fl
    if mode == "floor" or d < Fraction(1, 2):
        return fl
    if d > Fraction(1, 2):
        return fl + 1
    return {"half_even": fl + (fl % 2), "half_up": fl + 1,
            "half_away": fl + 1 if fr > 0 else fl}[mode]


# -- fixed point -------------------------------------------------------------------------
@given(vec(), st.integers(2, 24), st.integers(-8, 30), st.sampled_from(DETERMINISTIC))
def test_fixed_point_properties(w, word, frac, rounding):
    q = fixed_point(w, word, frac, rounding=rounding)
    qmin, qmax = -(1 << (word - 1)), (1 << (word - 1)) - 1
    naive = [min(max(_exact_round(Fraction(float(x)) * Fraction(2) ** frac, rounding), qmin),
                 qmax) for x in w.tolist()]
    assert q.codes.tolist() == naive
    assert len(np.unique(q.codes)) <= 1 << word
    v = q.dequantize()
    _monotone(w, v)
    # representable values (word <= 24 bits: exact in float32) are fixed points
    q2 = fixed_point(v, word, frac, rounding=rounding)
    assert np.array_equal(q2.codes, q.codes)
    assert_bits_equal(q2.dequantize(), v)


@given(vec(np.float64, 1e6), st.integers(2, 24))
def test_dynamic_fixed_point_rule_and_idempotence(w, word):
    q = dynamic_fixed_point(w, word)
    m = Fraction(float(np.max(np.abs(w))))
    if m == 0:
        want = word - 1
    else:
        # smallest c with 2**c >= max|w| (ceil log2), from the integer bit lengths
        c = m.numerator.bit_length() - m.denominator.bit_length() + 1
        while Fraction(2) ** (c - 1) >= m:
            c -= 1
        assert Fraction(2) ** c >= m
        want = word - (c + 1)
    assert q.params["frac_bits"] == max(-32, min(64, want))
    assert np.array_equal(q.codes, fixed_point(w, word, q.params["frac_bits"]).codes)
    v = q.dequantize()
    _monotone(w, v)
    assert np.array_equal(fixed_point(v, word, q.params["frac_bits"]).codes, q.codes)


# -- minifloat and the standard formats --------------------------------------------------------
@given(vec(np.float64, 1e6), st.integers(2, 6), st.integers(1, 8), st.booleans(),
       st.sampled_from(["ieee", "fn"]))
def test_minifloat_properties(w, e, m, subnormals, special):
    w = np.concatenate([w, [0.0, -0.0]])
    q = minifloat(w, e, m, subnormals=subnormals, saturate=True, special=special)
    assert int(q.codes.max()) < 1 << (1 + e + m)
    v = q.dequantize()
    assert np.all(np.isfinite(v))                           # saturating: never inf
    _monotone(w, v)
    assert np.all(np.abs(v) <= q.info["max"])
    q2 = minifloat(v, e, m, subnormals=subnormals, saturate=True, special=special)
    assert np.array_equal(q2.codes, q.codes)                # signed zeros included


FORMATS = [(to_bfloat16, 16), (to_float16, 16), (to_float8_e4m3fn, 8), (to_float8_e5m2, 8)]


@given(vec(np.float32, float(np.float32(3e38))), st.sampled_from(FORMATS), st.booleans())
def test_standard_formats_properties(w, fmt, saturate):
    fn, nbits = fmt
    with np.errstate(over="ignore"):
        q = fn(w, saturate=saturate)
    assert int(q.codes.max()) < 1 << nbits
    v = q.dequantize()
    ok = ~np.isnan(v)                       # e4m3fn without saturation overflows to NaN
    if saturate:
        assert ok.all() and np.all(np.isfinite(v))
    _monotone(w[ok], v[ok])
    q2 = fn(v, saturate=saturate)
    assert np.array_equal(q2.codes[ok], q.codes[ok])
    assert_bits_equal(q2.dequantize(), v)


# -- posit -----------------------------------------------------------------------------------
@given(vec(np.float64, 1e30), st.sampled_from([(6, 0), (8, 0), (8, 1), (8, 2), (10, 3),
                                               (16, 1), (16, 2), (32, 2)]))
def test_posit_properties(w, ne):
    n, es = ne
    w = np.concatenate([w, [0.0, -0.0]])
    q = posit(w, n, es)
    assert int(q.codes.max()) < 1 << n
    v = q.dequantize()
    assert not np.any(np.isnan(v))                      # finite input never gives NaR
    assert np.all((v == 0) == (w == 0))                 # no underflow to 0
    _monotone(w, v)
    assert np.array_equal(posit(v, n, es).codes, q.codes)


# -- power of two --------------------------------------------------------------------------------
@given(vec(np.float64, 1e6), st.integers(2, 8), st.sampled_from(["log", "linear"]))
def test_power_of_two_properties(w, bits, domain):
    q = power_of_two(w, bits, domain=domain)
    L = (1 << (bits - 1)) - 1
    assert q.codes.min() >= -L and q.codes.max() <= L
    v = q.dequantize()
    assert len(np.unique(v)) <= (1 << bits) - 1
    _monotone(w, v)
    assert -1000 <= q.info["e_max"] <= 1000                # the max_exp argument's range
    for mx in (None, q.info["e_max"]):
        q2 = power_of_two(v, bits, domain=domain, max_exp=mx)
        assert np.array_equal(q2.codes, q.codes) or not np.any(v)
    # every non-zero value is a power of two with an exponent in [e_min, e_max]
    nz = v[v != 0]
    m, e = np.frexp(np.abs(nz))
    assert np.all(m == 0.5)
    assert np.all((e - 1 >= q.params["e_min"]) & (e - 1 <= q.info["e_max"]))


# -- binary / XNOR / ternary -------------------------------------------------------------------
@given(mat(), st.sampled_from([None, 0, 1, 2, -1]))
def test_binary_xnor_ternary_properties(w, axis):
    b = binary(w)
    assert set(np.unique(b.dequantize()).tolist()) <= {-1.0, 1.0}
    _monotone(w, b.dequantize())
    assert np.array_equal(binary(b.dequantize()).codes, b.codes)
    for zero, levels in (("plus", 2), ("keep", 3)):
        xq = xnor(w, axis=axis, zero=zero)
        v = xq.dequantize()
        assert np.array_equal(xnor(v, axis=axis, zero=zero).codes, xq.codes)
        if zero == "plus":        # "keep": zeros count in n but decode to 0, so α shrinks
            assert_bits_equal(xnor(v, axis=axis).dequantize(), v)     # float32: exact
        slices = [w] if axis is None else [np.take(w, i, axis=axis)
                                           for i in range(w.shape[axis])]
        vs = [v] if axis is None else [np.take(v, i, axis=axis) for i in range(w.shape[axis])]
        for ws, vv in zip(slices, vs):
            assert len(np.unique(vv)) <= levels
            _monotone(ws, vv)
            assert_bits_equal(vv, xnor(np.ascontiguousarray(ws), axis=None,
                                       zero=zero).dequantize())
    t = ternary(w, axis=axis)
    v = t.dequantize()
    assert_bits_equal(ternary(v, axis=axis).dequantize(), v)
    if axis is None:
        assert len(np.unique(v)) <= 3
        _monotone(w, v)
    else:
        for i in range(w.shape[axis]):
            ws = np.ascontiguousarray(np.take(w, i, axis=axis))
            vv = np.take(v, i, axis=axis)
            assert len(np.unique(vv)) <= 3
            _monotone(ws, vv)
            assert_bits_equal(vv, ternary(ws).dequantize())


# -- affine per channel == per tensor slice by slice (every operation order) ------------------
@given(mat(lim=50), st.integers(0, 2), st.integers(2, 8), st.booleans(),
       st.sampled_from(["divide", "reciprocal", "reciprocal_add_zp", "reciprocal_fma_zp"]),
       st.sampled_from(DETERMINISTIC))
def test_affine_per_channel_equals_per_slice(w, axis, bits, symmetric, scale_op, rounding):
    q = affine(w, bits, axis=axis, symmetric=symmetric, scale_op=scale_op, rounding=rounding)
    assert len(np.unique(q.codes)) <= 1 << bits
    v = q.dequantize()
    for i in range(w.shape[axis]):
        ws = np.ascontiguousarray(np.take(w, i, axis=axis))
        qs = affine(ws, bits, symmetric=symmetric, scale_op=scale_op, rounding=rounding)
        assert np.array_equal(np.take(q.codes, i, axis=axis), qs.codes)
        assert_bits_equal(np.take(v, i, axis=axis), qs.dequantize())
        _monotone(ws, qs.dequantize())
    # "torch" per channel is the two-rounding order slice by slice
    qt = affine(w, bits, axis=axis, symmetric=symmetric, scale_op="torch", rounding=rounding)
    assert np.array_equal(qt.codes, affine(w, bits, axis=axis, symmetric=symmetric,
                                           scale_op="reciprocal_add_zp",
                                           rounding=rounding).codes)
    # idempotent on its own output, same parameters (round-to-nearest modes: the decoded
    # value is within an ulp of the grid point, which floor may push one code down)
    if rounding == "floor":
        return
    q2 = affine(v, bits, axis=axis, scale=q.params["scale"], zero_point=q.params["zero_point"],
                signed=q.params["signed"], scale_op=scale_op, rounding=rounding)
    assert_bits_equal(q2.dequantize(), v)


# -- calibrate ------------------------------------------------------------------------------
def _cal(x, method, **kw):
    return calibrate(x, 8 if method != "entropy" or kw.get("variant") != "mxnet" else 4,
                     method=method, **kw)


CAL = [("minmax", {}), ("percentile", {"percentile": 99.0}), ("mse", {"num_bins": 160}),
       ("entropy", {"num_bins": 160}), ("entropy", {"variant": "mxnet", "num_bins": 41})]


@settings(max_examples=25)
@given(vec(np.float32, 1e3, max_size=300), st.sampled_from(CAL))
def test_calibrate_properties(x, cal):
    method, kw = cal
    lo, hi = _cal(x, method, **kw)
    amax = float(np.max(np.abs(x)))
    if method == "minmax":
        assert (lo, hi) == (float(x.min()) + 0.0, float(x.max()) + 0.0)
    else:
        assert lo == -hi and 0.0 <= hi <= amax
        # symmetric methods ignore the sign of the data
        assert _cal(-x, method, **kw) == (lo, hi) or kw.get("variant") == "mxnet"
    # exact power-of-two scaling: every histogram edge and count scales exactly
    lo2, hi2 = _cal(x * np.float32(4), method, **kw)
    assert (lo2, hi2) == (lo * 4, hi * 4)
    if method == "percentile":                      # monotone in the percentile
        assert calibrate(x, 8, method="percentile", percentile=50.0)[1] <= hi <= \
            calibrate(x, 8, method="percentile", percentile=100.0)[1] == amax


# -- save / load round trip of every method -------------------------------------------------
def _all_methods(w):
    w2 = w.reshape(2, -1)
    return [uniform(w, 3), uniform(w, 2, grid="zero"), affine(w, 8),
            affine(w2, 4, axis=0, symmetric=True, scale_op="torch"),
            affine(w, 8, scale_op="reciprocal_fma_zp", signed=True),
            fixed_point(w, 12, 5), dynamic_fixed_point(w, 8), minifloat(w, 3, 2),
            to_bfloat16(w), to_float16(w), to_float8_e4m3fn(w), to_float8_e5m2(w),
            posit(w, 8, 1), power_of_two(w, 4), binary(w), xnor(w2), xnor(w2, axis=None),
            ternary(w), ternary(w2, axis=1)]


@settings(max_examples=10)
@given(arrays(st.sampled_from([np.float32, np.float64]), st.sampled_from([2, 4, 6, 10]),
              elements=st.floats(-1e3, 1e3, width=32)))
def test_save_load_round_trip_property(w):
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "q.h5")
        for q in _all_methods(w):
            refcomp.save(q, path)
            r = refcomp.load(path)
            assert r == q, q
            assert_bits_equal(r.dequantize(), q.dequantize())
