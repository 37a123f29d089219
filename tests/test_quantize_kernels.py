"""Kernels of uniform / affine: the integer bit-pattern range scan, the fused affine scan,
and bit-identical results for every thread count (twins are NumPy, written independently)."""

import math

import numba
import numpy as np
import pytest

from refcomp._errors import ParameterError
from refcomp.kernels import quantize as K
from refcomp.quantize import affine, uniform
from refcomp.testing import assert_bits_equal


def _special_arrays(dt):
    rng = np.random.default_rng(11)
    tiny = np.finfo(dt).smallest_subnormal
    big = np.finfo(dt).max
    base = [
        rng.standard_normal(70_001).astype(dt),                   # several chunks
        -np.abs(rng.standard_normal(5000)).astype(dt),            # all negative
        np.abs(rng.standard_normal(5000)).astype(dt),             # all positive
        np.array([-0.0, 0.0], dt), np.array([0.0, -0.0], dt), np.array([-0.0], dt),
        np.array([-0.0, -1.0, -0.0], dt), np.array([tiny, -tiny, 0.0], dt),
        np.array([big, -big, 1.0], dt), np.array([-tiny], dt), np.array([3.5], dt),
    ]
    bad = []
    for val in (np.nan, np.inf, -np.inf, -np.nan):
        a = rng.standard_normal(70_001).astype(dt)
        a[[5, 66_000]] = val
        bad.append(a)
    bad.append(np.array([np.nan, -np.inf], dt))
    return base, bad


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_bit_scan_matches_twin(dt):
    base, bad = _special_arrays(dt)
    for a in base:
        assert K.minmax_nonfinite(a) == K.minmax_nonfinite_twin(a)   # a zero's sign is free
    for a in bad:                                   # naive Python ground truth
        vals = a.tolist()
        fin = [v for v in vals if math.isfinite(v)]
        want = (min(fin), max(fin)) if fin else (math.inf, -math.inf)
        assert K.minmax_nonfinite(a) == want + (len(vals) - len(fin),)
    for a in base:
        x3 = a.reshape(1, 1, -1)
        codes, rng_ = K.affine_codes(x3, np.array([0.25], dt), np.zeros(1), -128, 127,
                                     "half_even", False, None, np.int8, scan=True)
        assert rng_ == K.minmax_nonfinite_twin(a)[:2]
        with np.errstate(over="ignore"):                # big / 0.25 saturates
            twin = K.affine_codes_twin(x3, np.array([0.25], dt), np.zeros(1), -128, 127,
                                       "half_even", False, None, np.int8)
        assert_bits_equal(codes, twin)
    for a in bad:
        assert K.affine_codes(a.reshape(1, 1, -1), np.array([0.25], dt), np.zeros(1), -128, 127,
                              "half_away", True, None, np.int8, scan=True)[1] is None


def test_fused_affine_reports_nonfinite_and_range():
    w = np.random.default_rng(2).standard_normal((3, 40_000)).astype(np.float32)
    w[1, 7] = -0.0
    q = affine(w, 8, scale=0.01, zero_point=3, axis=None)
    lo, hi, _ = K.minmax_nonfinite_twin(w.reshape(-1))
    assert q.info == {"theta_min": lo + 0.0, "theta_max": hi + 0.0}
    w[2, 9] = np.inf
    w[0, 0] = np.nan
    with pytest.raises(ParameterError, match="2 non-finite"):
        affine(w, 8, scale=0.01)
    with pytest.raises(ParameterError, match="2 non-finite"):     # NaN reported before bad scale
        affine(w, 8, scale=-1.0)
    with pytest.raises(ParameterError, match="scale must be finite"):
        affine(np.ones(3, np.float32), 8, scale=-1.0)


def _results(w):
    out = [uniform(w, 8), uniform(w, 3), uniform(w.astype(np.float64), 12),
           affine(w, 8), affine(w, 8, scale=0.02, zero_point=128),
           affine(w, 8, scale=0.02, scale_op="reciprocal", rounding="half_away", signed=True),
           affine(w.reshape(4, -1), 4, axis=0, symmetric=True),
           affine(w, 8, scale=0.02, zero_point=77, scale_op="torch"),
           affine(w.reshape(4, -1), 8, axis=0, scale=np.array([0.01, 0.02, 0.03, 0.05]),
                  zero_point=np.array([1, 77, 128, 3]), scale_op="torch"),
           affine(w, 8, rounding="stochastic", rng=np.random.default_rng(1))]
    return [(q.codes, q.info) for q in out]


def test_thread_count_does_not_change_bits(monkeypatch):
    # Force the parallel kernels on a small array, then compare 1 and N threads.
    monkeypatch.setattr(K, "_PAR_MIN", 0)
    w = (np.random.default_rng(4).standard_normal(4 * 150_001) * 3).astype(np.float32)
    w[[3, 200_000]] = -0.0
    old = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = _results(w)
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        many = _results(w)
    finally:
        numba.set_num_threads(old)
    for (c1, i1), (c2, i2) in zip(one, many):
        assert_bits_equal(c1, c2)
        assert i1 == i2
    lo, hi, _ = K.minmax_nonfinite_twin(w)
    assert_bits_equal(one[0][0], K.uniform_range_codes_twin(w, lo + 0.0, (hi - lo) / 256, 255,
                                                            np.uint8))


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_affine_half_even_fast_path_edges(dt):
    # The fast path clamps in the input dtype before adding the zero point;
    # check it against the float64 twin at the clamp edges, ties, huge values,
    # and wide code ranges (fixed point up to 32 bits takes the float64 path).
    rng = np.random.default_rng(8)
    edge = np.array([-3e38, 3e38, -2.0 ** 31, 2.0 ** 31, 2.0 ** 24 + 2, -0.0, 0.0, 1e-40], dt)
    ks = np.arange(-70_000, 70_000, 0.5)
    for (qmin, qmax) in ((0, 255), (-128, 127), (-127, 127), (0, 65535), (-32768, 32767),
                         (-(1 << 23), (1 << 23) - 1), (-(1 << 24), (1 << 24) - 1),
                         (-(1 << 31), (1 << 31) - 1)):
        for zp in {qmin, qmax, (qmin + qmax) // 2, 0 if qmin < 0 else qmin}:
            for s in (1.0, 0.37, 2.0 ** -20):
                x = np.concatenate([edge, (ks * s).astype(dt),
                                    (rng.standard_normal(3000) * (qmax - qmin) * s).astype(dt)])
                x3 = x.reshape(1, 1, -1)
                for rec in (False, True):
                    op = np.array([1.0 / s if rec else s], dt)
                    args = (x3, op, np.array([float(zp)]), qmin, qmax, "half_even", rec, None,
                            np.int64)
                    with np.errstate(over="ignore"):
                        twin = K.affine_codes_twin(*args)
                    assert_bits_equal(K.affine_codes(*args), twin, (qmin, qmax, zp, s, rec))
