"""minifloat / bfloat16 / float16 / float8 and posit: exhaustive and against ml_dtypes / SoftPosit."""

import math
from fractions import Fraction

import numpy as np
import pytest

from refcomp.kernels import quantize as K
from refcomp.quantize import (Quantized, minifloat, posit, to_bfloat16, to_float16,
                              to_float8_e4m3fn, to_float8_e5m2)
from refcomp.testing import assert_bits_equal

ml_dtypes = pytest.importorskip("ml_dtypes")

FORMATS = [(to_bfloat16, ml_dtypes.bfloat16, np.uint16, 16),
           (to_float16, np.float16, np.uint16, 16),
           (to_float8_e4m3fn, ml_dtypes.float8_e4m3fn, np.uint8, 8),
           (to_float8_e5m2, ml_dtypes.float8_e5m2, np.uint8, 8)]


def _specials():
    f = np.float32
    return np.array([0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan, 448, 464, 465, -464.0001,
                     57344, 61440, 61441, 65504, 65520, 65519.99, 3.3895314e38, 3.4e38,
                     2 ** -9, 2 ** -10, 1.5 * 2 ** -10, 2 ** -16, 2 ** -17, 2 ** -24, 2 ** -25,
                     2 ** -133, 2 ** -134, 1e-45, 1 + 2 ** -8, 1 + 3 * 2 ** -8], dtype=f)


@pytest.mark.parametrize("fn,ref,udt,nbits", FORMATS)
def test_exhaustive_patterns_roundtrip_and_match(fn, ref, udt, nbits):
    pats = np.arange(1 << nbits, dtype=np.int64).astype(udt)
    vals = pats.view(ref).astype(np.float32)          # exact widening
    q = fn(vals)
    nan = np.isnan(vals)
    assert np.array_equal(q.codes[~nan], pats[~nan])
    assert np.all(np.isnan(q.codes[nan].view(ref).astype(np.float32)))
    assert_bits_equal(q.dequantize()[~nan], vals[~nan])
    # in-between values (midpoints: ties) and random float32 / float64 vs the framework
    mids = ((vals[:-1].astype(np.float64) + vals[1:]) / 2)
    rng = np.random.default_rng(nbits)
    r32 = rng.integers(0, 2 ** 32, 300_000, dtype=np.uint64).astype(np.uint32).view(np.float32)
    r64 = rng.standard_normal(50_000) * np.exp(rng.uniform(-40, 40, 50_000))
    for x in (mids[np.isfinite(mids)], mids[np.isfinite(mids)].astype(np.float32), r32, r64,
              _specials(), _specials().astype(np.float64)):
        with np.errstate(all="ignore"):
            want = x.astype(ref).view(udt)
        got = fn(x).codes
        isn = np.isnan(x)
        if ref is np.float16:        # NumPy keeps NaN payload bits; we emit the quiet NaN
            assert np.all(np.isnan(got[isn].view(np.float16)))
            got, want = got[~isn], want[~isn]
        assert_bits_equal(got, want)


def test_saturate_and_roundtrip(tmp_path):
    h5py = pytest.importorskip("h5py")
    x = np.array([1e6, -np.inf, np.nan, 470.0, -1e-30], dtype=np.float32)
    q = to_float8_e4m3fn(x, saturate=True)
    d = q.dequantize()
    assert d[0] == 448 and d[1] == -448 and np.isnan(d[2]) and d[3] == 448
    assert str(d[4]) == "-0.0"
    for qq in (q, to_bfloat16(x.astype(np.float64)), minifloat(x, 3, 4, subnormals=False),
               posit(x, 16, 1)):
        with h5py.File(tmp_path / "q.h5", "w") as f:
            qq.to_hdf5(f.create_group("q"))
        with h5py.File(tmp_path / "q.h5", "r") as f:
            r = Quantized.from_hdf5(f["q"])
        assert r == qq
        assert_bits_equal(r.dequantize(), qq.dequantize())


def test_no_subnormals_rule():
    q = minifloat(np.array([2.0 ** -15, 1.5 * 2 ** -15, 2 ** -14 * 0.9]), 5, 10, subnormals=False)
    assert q.dequantize().tolist() == [0.0, 2 ** -14, 2 ** -14]


def test_minifloat_and_posit_twins():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.standard_normal(3000) * np.exp(rng.uniform(-30, 30, 3000)),
                        [0.0, -0.0, np.inf, -np.inf, np.nan]])
    for args in ((7, 8, 127, True, False, False), (3, 4, 7, True, True, True),
                 (2, 5, 3, False, True, False)):
        assert_bits_equal(K.minifloat_encode(x, *args, np.uint16),
                          K.minifloat_encode_twin(x, *args, np.uint16))
    for n, es in ((8, 0), (16, 1), (32, 2), (10, 3)):
        c = K.posit_encode(x, n, es, np.uint32)
        assert_bits_equal(c, K.posit_encode_twin(x, n, es, np.uint32))
        assert_bits_equal(K.posit_decode(c, n, es), K.posit_decode_twin(c, n, es))


# -- posit ---------------------------------------------------------------------------
def _posit_value(p, n, es):
    """Independent decoder on Fractions, straight from the definition (FACTS.md §6.5)."""
    if p == 0:
        return Fraction(0)
    if p == 1 << (n - 1):
        return None
    neg = p >> (n - 1)
    if neg:
        p = (1 << n) - p
    bits = format(p, f"0{n}b")[1:]
    r0 = bits[0]
    m = len(bits) - len(bits.lstrip(r0))
    k = m - 1 if r0 == "1" else -m
    rest = bits[m + 1:]
    e = int((rest[:es] + "0" * es)[:es], 2) if es else 0
    f = rest[es:]
    frac = Fraction(int(f, 2), 2 ** len(f)) if f else Fraction(0)
    v = Fraction(2) ** (k * 2 ** es + e) * (1 + frac)
    return -v if neg else v


@pytest.mark.parametrize("n,es", [(6, 0), (6, 1), (7, 2), (8, 0), (8, 1), (8, 2), (9, 3)])
def test_posit_general_against_fraction_definition(n, es):
    pats = list(range(1 << n))
    vals = {p: _posit_value(p, n, es) for p in pats}
    dec = K.posit_decode(np.array(pats, dtype=np.int64), n, es)
    for p in pats:
        assert (np.isnan(dec[p]) if vals[p] is None else Fraction(float(dec[p])) == vals[p])
    # every value round-trips; midpoints of neighbours (in pattern order, positive half)
    # go to the even pattern when the exponent field is complete.
    finite = np.array([float(vals[p]) for p in pats if vals[p] is not None])
    q = posit(finite, n, es)
    assert_bits_equal(q.dequantize(), finite)
    pos = [p for p in range(1, 1 << (n - 1))]
    maxpos, minpos = float(vals[pos[-1]]), float(vals[1])
    assert posit(np.array([maxpos * 4, minpos / 4, -maxpos * 4]), n, es).codes.tolist() == [
        pos[-1], 1, (1 << n) - pos[-1]]


def test_posit_against_softposit():
    sp = pytest.importorskip("softposit")
    rng = np.random.default_rng(7)
    x = np.concatenate([rng.standard_normal(20_000) * np.exp(rng.uniform(-50, 50, 20_000)),
                        [0.0, -0.0, 1.0, -1.0, 2.0 ** 30, 2.0 ** -30, 1e300, -1e-300]])
    for n, es, cls in ((8, 0, sp.posit8), (16, 1, sp.posit16), (32, 2, sp.posit32)):
        got = posit(x, n, es).codes.astype(np.int64)
        want = np.array([cls(float(v)).v.v for v in x])
        assert np.array_equal(got, want), (n, es)
    # exhaustive posit8: midpoints between consecutive values and all patterns
    vals = K.posit_decode(np.arange(256), 8, 0)
    fin = np.sort(vals[np.isfinite(vals)])
    mids = (fin[:-1] + fin[1:]) / 2
    for v in np.concatenate([fin, mids]):
        assert posit(np.array([v]), 8, 0).codes[0] == sp.posit8(float(v)).v.v
    assert posit(np.array([np.nan, np.inf]), 8, 0).codes.tolist() == [128, 128]
