"""Optimal 1-D k-means: brute force over all partitions, never worse than Lloyd or scikit-learn."""

import importlib
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from refcomp import ParameterError, RefcompError, ShapeError
from refcomp.kernels import kmeans as K
from refcomp.quantize import kmeans, kmeans_optimal
from refcomp.testing import assert_bits_equal
from test_kmeans import _with_threads

# the name kmeans_optimal is the function; the module holds MAX_TABLE
kmeans_optimal_module = importlib.import_module("refcomp.quantize.kmeans_optimal")


def set_partitions(items):
    if not items:
        yield []
        return
    first, rest = items[0], items[1:]
    for p in set_partitions(rest):
        yield [[first]] + p
        for i in range(len(p)):
            yield p[:i] + [[first] + p[i]] + p[i + 1:]


def exact_cost(groups):
    total = Fraction(0)
    for g in groups:
        vals = [Fraction(v) for v in g]
        mu = sum(vals) / len(vals)
        total += sum((v - mu) ** 2 for v in vals)
    return total


def brute_force(xs, k):
    """Minimal exact SSE over all partitions of the observations into <= k groups."""
    return min(exact_cost(p) for p in set_partitions(list(xs)) if len(p) <= k)


def partition_cost(x, q):
    codes = q.codes.reshape(-1)
    groups = [[float(v) for v in x.reshape(-1)[codes == c]] for c in np.unique(codes)]
    return exact_cost(groups)


_values = st.one_of(st.integers(-8, 8).map(lambda i: i / 2.0),
                    st.floats(-4, 4, allow_nan=False, allow_subnormal=False, width=32))


@settings(max_examples=40)
@given(x=hnp.arrays(np.float64, st.integers(1, 7), elements=_values), k=st.integers(1, 4))
def test_equals_brute_force(x, k):
    q = kmeans_optimal(x, k)
    assert partition_cost(x, q) == brute_force([float(v) for v in x], k)
    assert q.codebook.size == min(k, np.unique(x).size)


def test_golden():
    x = np.array([0.0, 1.0, 10.0, 11.0, 12.0, 30.0])
    q = kmeans_optimal(x, 3)
    assert_bits_equal(q.codebook, np.array([0.5, 11.0, 30.0]))
    np.testing.assert_array_equal(q.codes, [0, 0, 1, 1, 1, 2])
    assert q.info["sse"] == 2.5 and q.info["k_effective"] == 3


def test_more_clusters_than_values():
    q = kmeans_optimal(np.array([2.0, 2.0, 5.0], np.float32), 8)
    assert_bits_equal(q.codebook, np.array([2.0, 5.0], np.float32))
    assert q.info["sse"] == 0.0 and q.bits == 3


@pytest.mark.parametrize("dist", ["normal", "laplace"])
def test_never_worse_than_lloyd_or_sklearn(dist):
    sk = pytest.importorskip("sklearn.cluster")
    rng = np.random.default_rng(4)
    x = getattr(rng, dist)(size=1500)
    for k in (2, 5, 16):
        opt = kmeans_optimal(x, k).info["sse"]
        for init in ("linear", "density", "density_tfmot", "random", "random_tfmot", "kmeans++"):
            for alg in ("lloyd", "hartigan"):
                s = kmeans(x, k, init=init, algorithm=alg, rng=np.random.default_rng(k)).info["sse"]
                assert opt <= s * (1 + 1e-12)
        best = sk.KMeans(k, n_init=10, random_state=0).fit(x.reshape(-1, 1)).inertia_
        assert opt <= best * (1 + 1e-9)


def test_cancellation_far_from_zero():
    # Tight clusters far from the origin: plain prefix sums of x and x² lose
    # every digit here (x² ~ 1e16, cluster variance ~ 1e-6).
    base = 1e8
    x = base + np.concatenate([np.arange(5) * 1e-3, 1.0 + np.arange(5) * 1e-3, 7 + np.zeros(3)])
    q = kmeans_optimal(x, 3)
    np.testing.assert_array_equal(q.codes, [0] * 5 + [1] * 5 + [2] * 3)


def test_shuffle_invariance_and_twin():
    rng = np.random.default_rng(8)
    x = rng.standard_normal(400).astype(np.float32)
    a, b = kmeans_optimal(x, 6), kmeans_optimal(rng.permutation(x), 6)
    assert_bits_equal(a.codebook, b.codebook)
    u, cnt = np.unique(x.astype(np.float64), return_counts=True)
    cnt = cnt.astype(np.int64)
    ccum = np.concatenate([[0], np.cumsum(cnt)]).astype(np.int64)
    y = u - u[u.size // 2]
    s1, v1 = K.optimal_dp(y, cnt, ccum, 6)
    s2, v2 = K.optimal_dp_twin(y, cnt, ccum, 6)
    assert_bits_equal(s1, s2)
    assert_bits_equal(np.float64(v1), np.float64(v2))


def _prep(x):
    u, cnt = np.unique(x.astype(np.float64) + 0.0, return_counts=True)
    cnt = cnt.astype(np.int64)
    return u - u[u.size // 2], cnt, np.concatenate([[0], np.cumsum(cnt)]).astype(np.int64)


def test_thread_count_does_not_matter():
    # Large enough for the divide and conquer to reach its parallel part
    # (64 segments per row) with uneven segments; ties from duplicates.
    rng = np.random.default_rng(30)
    x = np.concatenate([rng.standard_normal(30000), rng.integers(-20, 20, 5000) * 0.125])
    x = x.astype(np.float32)
    a = _with_threads(1, lambda: kmeans_optimal(x, 37))
    b = _with_threads(2, lambda: kmeans_optimal(x, 37))
    assert a == b and a.info == b.info
    y, cnt, ccum = _prep(x)
    s1, v1 = _with_threads(1, lambda: K.optimal_dp(y, cnt, ccum, 37))
    s2, v2 = _with_threads(2, lambda: K.optimal_dp(y, cnt, ccum, 37))
    assert_bits_equal(s1, s2)
    assert_bits_equal(np.float64(v1), np.float64(v2))


def test_dc_rows_have_monotone_argmins():
    # The 2-bit back-pointer table relies on it: each row's argmins are
    # non-decreasing in i, with c <= arg[i] <= i.
    rng = np.random.default_rng(31)
    for x in (rng.standard_normal(5000), rng.laplace(size=3000).round(2),
              np.concatenate([np.zeros(50), 1e8 + rng.standard_normal(900) * 1e-3])):
        y, cnt, _ = _prep(x)
        m = y.size
        Q = K._dp_prefix_nb(y, cnt)
        prev = np.array([K._dp_cost(Q, 0, i + 1) for i in range(m)])
        arg = np.zeros(m, np.int32)
        low = np.zeros(m, np.int32)
        for c in range(1, 12):
            cur = np.full(m, np.inf)
            K._dc_row_nb(prev, Q, cur, arg, low, c, m)
            a = arg[c:].astype(np.int64)
            assert np.all(np.diff(a) >= 0) and np.all(a >= c) and np.all(a <= np.arange(c, m))
            # monotone in the cluster count too (the search lower bound)
            assert np.all(a >= low[c:])
            prev = cur
            arg, low = low, arg


def test_dc_rows_equal_exhaustive_rows():
    # Each DP row of the bounded divide and conquer (argmins monotone in i and
    # in the cluster count) has the values of an exhaustive search over every
    # j, with the same cost evaluations: the bounds never cut off a minimum.
    rng = np.random.default_rng(47)
    for x in (rng.standard_normal(400), rng.laplace(size=300).round(1),
              rng.integers(0, 6, 250).astype(np.float64), np.exp(rng.standard_normal(300) * 3),
              np.concatenate([np.zeros(40), 1e8 + rng.standard_normal(200) * 1e-3])):
        y, cnt, _ = _prep(x)
        m = y.size
        Q = K._dp_prefix_nb(y, cnt)
        prev = np.array([K._dp_cost(Q, 0, i + 1) for i in range(m)])
        arg = np.zeros(m, np.int32)
        low = np.zeros(m, np.int32)
        for c in range(1, min(m, 9)):
            cur = np.full(m, np.inf)
            K._dc_row_nb(prev, Q, cur, arg, low, c, m)
            full = np.array([min(prev[j - 1] + K._dp_cost(Q, j, i + 1) for j in range(c, i + 1))
                             for i in range(c, m)])
            np.testing.assert_array_equal(cur[c:], full)
            prev = cur
            arg, low = low, arg


@pytest.mark.parametrize("compiled", [True, False])
def test_packed_backpointers_roundtrip(compiled):
    pack = K._pack_row_nb if compiled else K._pack_row
    get = K._packed_arg_nb if compiled else K._packed_arg
    rng = np.random.default_rng(32)
    for t in range(150 if compiled else 40):
        m = int(rng.integers(1, 300))
        c = int(rng.integers(0, m))
        arg = np.zeros(m, np.int32)
        # non-decreasing with c <= arg[i] <= i, from all-equal to every jump
        steps = rng.integers(0, (1, 2, 5, m)[t % 4], m - c)
        arg[c:] = np.minimum(c + np.cumsum(steps) - steps[0], np.arange(c, m))
        row = np.zeros((2 * m + 63) >> 6, np.uint64)
        pack(arg, c, m, row)
        assert [int(get(row, c, i)) for i in range(c, m)] == arg[c:].tolist()
        assert sum(bin(int(w)).count("1") for w in row) == m - c
    for v in (0, 1, 2 ** 64 - 1, 0x8000000000000001, 0x0123456789ABCDEF):
        want = bin(v).count("1")
        assert int(K._popcount(np.uint64(v))) == int(K._popcount_nb(np.uint64(v))) == want


def test_table_cap(monkeypatch):
    # k·m above MAX_TABLE is refused (monkeypatched small: the real cap,
    # 2**32 entries at 2 bits each, is 1 GiB).
    assert kmeans_optimal_module.MAX_TABLE == 1 << 32
    x = np.arange(100.0)
    monkeypatch.setattr(kmeans_optimal_module, "MAX_TABLE", 499)
    with pytest.raises(ParameterError, match="exceeds"):
        kmeans_optimal(x, 5)
    assert kmeans_optimal(x, 4).info["k_effective"] == 4
    assert kmeans_optimal(x[:50], 9).info["k_effective"] == 9     # k·m = 450


def test_bad_input():
    with pytest.raises(ParameterError):
        kmeans_optimal(np.arange(3.0), 0)
    with pytest.raises(ParameterError):
        kmeans_optimal(np.array([np.nan, 1.0]), 2)
    with pytest.raises(ParameterError):
        kmeans_optimal(np.array([1.0, -np.inf]), 2)
    with pytest.raises(ParameterError):
        kmeans_optimal(np.arange(3.0), 5, bits=2)
    with pytest.raises(ParameterError):
        kmeans_optimal(np.arange(3.0))                  # neither k nor bits
    for empty in (np.zeros(0), np.zeros((3, 0), np.float32)):
        with pytest.raises(ShapeError, match="empty|non-empty|size"):
            kmeans_optimal(empty, 2)
        with pytest.raises(RefcompError):
            kmeans(empty, 2, init="optimal")
