"""refcomp.testing.bitexact: ulp_distance against an exhaustive float16 ranking, and the
failure messages of assert_bitexact."""

import numpy as np
import pytest

from refcomp import DTypeError
from refcomp.testing import assert_bitexact, ulp_distance
from refcomp.testing.bitexact import NAN_DISTANCE


def _float16_ranks():
    """Every non-NaN float16 by value: rank = number of distinct values below it."""
    bits = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
    vals = bits.view(np.float16)
    keep = ~np.isnan(vals)
    vals = vals[keep]
    distinct = np.unique(vals.astype(np.float64))          # +0.0 and -0.0 collapse
    rank = np.searchsorted(distinct, vals.astype(np.float64))
    return vals, rank


def test_ulp_distance_is_the_rank_difference_of_all_float16():
    vals, rank = _float16_ranks()
    rng = np.random.default_rng(0)
    i = rng.integers(0, vals.size, 200_000)
    j = rng.integers(0, vals.size, 200_000)
    d = ulp_distance(vals[i], vals[j])
    assert d.dtype == np.uint64
    np.testing.assert_array_equal(d, np.abs(rank[i] - rank[j]).astype(np.uint64))


def test_ulp_distance_float32_neighbours_and_specials():
    f = np.float32
    one = f(1)
    up = np.nextafter(one, f(2))
    mx = np.finfo(f).max
    tiny = np.float32(2.0 ** -149)
    a = np.array([one, one, mx, -tiny, f(0), np.nan, np.nan, -np.inf], f)
    b = np.array([up, np.nextafter(up, f(2)), np.inf, tiny, f(-0.0), np.nan, one, np.inf], f)
    np.testing.assert_array_equal(
        ulp_distance(a, b), np.array([1, 2, 1, 2, 0, 0, NAN_DISTANCE, 2 * 0x7F800000],
                                     np.uint64))
    # float64 extremes: the modulo-2**64 subtraction stays exact
    d = ulp_distance(np.array([-np.inf]), np.array([np.inf]))
    assert int(d[0]) == 2 * 0x7FF0000000000000


def test_ulp_distance_bfloat16_and_errors():
    ml = pytest.importorskip("ml_dtypes")
    a = np.array([1.0, 2.0], ml.bfloat16)
    b = np.array([1.0078125, 2.0], ml.bfloat16)                  # 1 + 2**-7: next bfloat16
    np.testing.assert_array_equal(ulp_distance(a, b), [1, 0])
    with pytest.raises(DTypeError, match="one dtype"):
        ulp_distance(np.float32([1]), np.float64([1]))
    with pytest.raises(DTypeError, match="floating-point"):
        ulp_distance(np.int32([1]), np.int32([1]))


def test_assert_bitexact_passes_on_identical_bits_nan_payload_included():
    a = np.array([1.0, -0.0, np.nan], np.float32)
    assert_bitexact(a, a.copy())
    assert_bitexact(np.arange(5), np.arange(5))


@pytest.mark.parametrize("actual, desired, what", [
    (np.zeros(3, np.float32), np.zeros(4, np.float32), "shape differs"),
    (np.zeros(3, np.float32), np.zeros(3, np.float64), "dtype differs"),
    (np.float32([1, np.nan]), np.float32([1, 2]), "NaN position"),
    (np.array([0x7FC00001], np.uint32).view(np.float32),
     np.array([0x7FC00000], np.uint32).view(np.float32), "NaN payload"),
    (np.float32([0.0, 1.0]), np.float32([-0.0, 1.0]), "signed zero"),
    (np.float32([1, 2, 3]), np.float32([1, 2, np.nextafter(np.float32(3), np.float32(4))]),
     "bit mismatch"),
    (np.int8([1, 2]), np.int8([1, 3]), "bit mismatch"),
])
def test_assert_bitexact_names_the_difference(actual, desired, what):
    with pytest.raises(AssertionError, match=what):
        assert_bitexact(actual, desired)


def test_assert_bitexact_lists_indices_values_and_ulps():
    a = np.ones((3, 4), np.float32)
    d = a.copy()
    d[1, 2] = np.nextafter(np.float32(1), np.float32(0))
    d[2, 3] = np.float32(1.5)
    with pytest.raises(AssertionError) as exc:
        assert_bitexact(a, d, max_report=1, err_msg="port")
    msg = str(exc.value)
    assert msg.startswith("port: 2 of 12 elements differ")
    assert "at (1, 2): actual 1.0 (0x3f800000), desired 0.99999994 (0x3f7fffff)" in msg
    assert "ulp distance 1" in msg and "... and 1 more" in msg
