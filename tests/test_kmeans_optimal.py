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

# the name kmeans_optimal is the function; the module re-exports MAX_TABLE, which
# the DP driver reads in _kmeans_optimal_core (shared with kmeans(init="optimal"))
kmeans_optimal_module = importlib.import_module("refcomp.quantize.kmeans_optimal")
kmeans_optimal_core = importlib.import_module("refcomp.quantize._kmeans_optimal_core")


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
    # (16 segments per row, each solved by SMAWK) with uneven segments;
    # ties from duplicates.
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


def test_both_segment_solvers_twin_and_thread_count():
    # Skewed data, many clusters: the rows from c = 17 on solve their
    # segments by divide and conquer, the first ones by SMAWK (see
    # test_dc_rows_have_monotone_argmins).  Same bits interpreted, and for
    # any thread count.
    rng = np.random.default_rng(33)
    y, cnt, ccum = _prep(np.exp(rng.standard_normal(1500) * 3))
    s1, v1 = _with_threads(1, lambda: K.optimal_dp(y, cnt, ccum, 40))
    s2, v2 = _with_threads(2, lambda: K.optimal_dp(y, cnt, ccum, 40))
    s3, v3 = K.optimal_dp_twin(y, cnt, ccum, 40)
    assert_bits_equal(s1, s2)
    assert_bits_equal(s1, s3)
    assert_bits_equal(np.float64(v1), np.float64(v2))
    assert_bits_equal(np.float64(v1), np.float64(v3))


def _dp_rows(x, rows):
    """Run the DP rows c = 1 .. min(m, rows) - 1 of ``x`` one by one with
    ``_dc_row``; yields ``(c, m, Q, prev, cur, arg, low, path)`` per row."""
    y, cnt, _ = _prep(x)
    m = y.size
    Q = K._dp_prefix_nb(y, cnt)
    prev = np.array([K._dp_cost(Q, 0, i + 1) for i in range(m)])
    arg = np.zeros(m, np.int32)
    low = np.zeros(m, np.int32)
    work = np.empty(2 * m, np.int32)
    for c in range(1, min(m, rows)):
        cur = np.full(m, np.inf)
        path = K._dc_row_nb(prev, Q, cur, arg, low, c, m, work)
        yield c, m, Q, prev, cur, arg, low, path
        prev = cur
        arg, low = low, arg


def test_dc_rows_have_monotone_argmins():
    # The 2-bit back-pointer table relies on it: each row's argmins are
    # non-decreasing in i, with c <= arg[i] <= i.  Both ways of solving the
    # segments (SMAWK; divide and conquer once the previous row's argmins
    # prune well, at larger c) are used.
    rng = np.random.default_rng(31)
    paths = set()
    for x, rows in ((rng.standard_normal(5000), 12), (rng.laplace(size=3000).round(2), 12),
                    (np.concatenate([np.zeros(50), 1e8 + rng.standard_normal(900) * 1e-3]), 12),
                    (np.exp(rng.standard_normal(2000) * 3), 40)):
        for c, m, Q, prev, cur, arg, low, path in _dp_rows(x, rows):
            paths.add(path)
            a = arg[c:].astype(np.int64)
            assert np.all(np.diff(a) >= 0) and np.all(a >= c) and np.all(a <= np.arange(c, m))
            # monotone in the cluster count too (the search lower bound)
            assert np.all(a >= low[c:])
    assert paths == {0, 1}


def test_dc_rows_equal_exhaustive_rows():
    # Each DP row of _dc_row (divide and conquer bounded by argmins monotone
    # in i and in the cluster count, then SMAWK or divide and conquer per
    # segment) has the values of an exhaustive search over every j, with
    # the same cost evaluations: the bounds and SMAWK's REDUCE never cut
    # off a minimum.  Rows up to c = 8 as listed, and up to 40 vectorised
    # (_costs: the same IEEE operations) for the divide and conquer path.
    rng = np.random.default_rng(47)
    paths = set()
    for x, rows in ((rng.standard_normal(400), 9), (rng.laplace(size=300).round(1), 40),
                    (rng.integers(0, 6, 250).astype(np.float64), 9),
                    (np.exp(rng.standard_normal(300) * 3), 40),
                    (np.concatenate([np.zeros(40), 1e8 + rng.standard_normal(200) * 1e-3]), 40)):
        for c, m, Q, prev, cur, arg, low, path in _dp_rows(x, rows):
            paths.add(path)
            if c < 9:
                full = np.array([min(prev[j - 1] + K._dp_cost(Q, j, i + 1) for j in range(c, i + 1))
                                 for i in range(c, m)])
                np.testing.assert_array_equal(full, _exhaustive_row(prev, Q, c, m - 1, c, m - 1)[0])
            else:
                full = _exhaustive_row(prev, Q, c, m - 1, c, m - 1)[0]
            np.testing.assert_array_equal(cur[c:], full)
    assert paths == {0, 1}


def _costs(Q, j, e):
    """K._dp_cost for an array of starts j (same IEEE operations, elementwise)."""
    w = Q[e, 4] - Q[j, 4]
    s1 = (Q[e, 0] - Q[j, 0]) + (Q[e, 1] - Q[j, 1])
    s2 = (Q[e, 2] - Q[j, 2]) + (Q[e, 3] - Q[j, 3])
    c = s2 - s1 * s1 / w
    return np.where(c > 0.0, c, 0.0)


def _exhaustive_row(prev, Q, lo, hi, olo, ohi, low=None):
    """Values and leftmost argmins of rows lo..hi over olo <= j <= min(i, ohi),
    from ``low[i]`` clamped into that range when ``low`` is given (the search
    interval of K._smawk_rows)."""
    vals, args = [], []
    for i in range(lo, hi + 1):
        top = min(i, ohi)
        first = olo if low is None else max(olo, min(int(low[i]), top))
        j = np.arange(first, top + 1)
        v = prev[j - 1] + _costs(Q, j, i + 1)
        t = int(np.argmin(v))                  # first occurrence: leftmost
        vals.append(v[t])
        args.append(j[t])
    return np.array(vals), np.array(args)


def _smawk_cases(rng, n_cases, max_m):
    """(y, cnt, centred) of random small data sets: plain, heavy duplicates
    with large weights, constant runs (integer-spaced values, many equal
    costs), far from zero (centred as the DP does, and not: then the costs
    are mostly rounding noise, see the test below)."""
    for t in range(n_cases):
        m0 = int(rng.integers(1, max_m + 1))
        kind = t % 7
        if kind == 0:
            x = rng.standard_normal(m0)
        elif kind == 1:
            x = rng.integers(-6, 7, m0) * 0.5                  # few distinct values
        elif kind == 2:
            x = np.repeat(np.arange(m0 // 4 + 1, dtype=np.float64), 4)[:m0]
        elif kind == 3:
            x = np.round(rng.laplace(size=m0), 1)
        elif kind == 4:
            x = 1e8 + rng.standard_normal(m0) * 1e-3
        else:
            x = np.concatenate([np.zeros(m0 // 3), 1e8 + rng.standard_normal(m0 - m0 // 3)])
        y, cnt = np.unique(x, return_counts=True)
        cnt = cnt.astype(np.int64)
        if kind == 1:
            cnt = cnt * rng.integers(1, 10 ** 6, cnt.size)      # heavy weights
        if kind != 6:
            y = y - y[y.size // 2]
        yield y, cnt, kind != 6


def _smawk_problem(rng, y, cnt):
    """A DP row c (1..8) of (y, cnt), a random sub-matrix of it (rows lo..hi,
    columns olo..ohi with c <= olo <= lo and olo <= ohi <= hi) and lower
    bounds ``low``.  ``prev`` is the exhaustive row c - 1 (rows 0..c-2 +inf,
    as in the DP); ``low`` its argmins (as in the DP), zeros (no bound), or
    random non-decreasing bounds (still a totally monotone search)."""
    m = y.size
    Q = K._dp_prefix_nb(y, cnt)
    c = int(rng.integers(1, min(m - 1, 8) + 1))
    prev = _costs(Q, np.zeros(m, np.int64), np.arange(1, m + 1))
    low = np.zeros(m, np.int32)
    for r in range(1, c):
        row = np.full(m, np.inf)
        row[r:], low[r:] = _exhaustive_row(prev, Q, r, m - 1, r, m - 1)
        prev = row
    if rng.random() < 0.5:
        lo, hi, olo, ohi = c, m - 1, c, m - 1
    else:
        lo = int(rng.integers(c, m))
        hi = int(rng.integers(lo, m))
        olo = int(rng.integers(c, lo + 1))
        ohi = int(rng.integers(olo, hi + 1))
    u = rng.random()
    if u < 0.2:
        low[:] = 0
    elif u < 0.4:
        steps = rng.integers(0, (1, 3, 10)[int(rng.integers(3))] + 1, m)
        low[:] = np.minimum(np.cumsum(steps) - steps[0] + int(rng.integers(0, m)) // 2, m - 1)
    return (Q, prev, low, lo, hi, olo, ohi), u >= 0.2 and u < 0.4


def _run_smawk(fn, Q, prev, low, lo, hi, olo, ohi):
    m = prev.size
    cur = np.full(m, -1.0)
    arg = np.full(m, -1, np.int32)
    work = np.full(2 * m, -1, np.int32)
    lv = np.zeros((64, 2), np.int64)
    fn(prev, Q, cur, arg, low, work, lv, lo, hi, olo, ohi)
    return cur, arg


def test_smawk_rows_equal_exhaustive_leftmost():
    # SMAWK on DP rows and on random sub-matrices (as the segments of
    # _dc_row), with lower bounds: the values and leftmost argmins of an
    # exhaustive search of each row's interval with the same cost
    # evaluations; argmins non-decreasing, olo <= arg[i] <= min(i, ohi);
    # rows outside lo..hi untouched.  With the DP's own bounds (previous
    # row's argmins, or none) over a whole row: the values of the exhaustive
    # search over every j (the bound cuts off no minimum).  Uncentred data
    # 1e8 + N(0, 1) (the DP always centres): the costs are rounding noise
    # (multiples of 16, not totally monotone), so only the structure is
    # checked there.
    rng = np.random.default_rng(48)
    n = n_full = 0
    for y, cnt, centred in _smawk_cases(rng, 700, 300):
        if y.size < 2:
            continue
        (Q, prev, low, lo, hi, olo, ohi), random_low = _smawk_problem(rng, y, cnt)
        cur, arg = _run_smawk(K._smawk_rows_nb, Q, prev, low, lo, hi, olo, ohi)
        if centred:
            vals, args = _exhaustive_row(prev, Q, lo, hi, olo, ohi, low)
            np.testing.assert_array_equal(cur[lo:hi + 1], vals)
            np.testing.assert_array_equal(arg[lo:hi + 1], args)
            n += 1
            if (lo, hi, olo, ohi) == (olo, y.size - 1, olo, y.size - 1) and not random_low:
                full = _exhaustive_row(prev, Q, lo, hi, olo, ohi)[0]
                np.testing.assert_array_equal(cur[lo:], full)
                n_full += 1
        a = arg[lo:hi + 1].astype(np.int64)
        rows = np.arange(lo, hi + 1)
        assert np.all(np.diff(a) >= 0) and a[0] >= olo and np.all(a <= np.minimum(rows, ohi))
        assert np.all(cur[:lo] == -1) and np.all(cur[hi + 1:] == -1)
        assert np.all(arg[:lo] == -1) and np.all(arg[hi + 1:] == -1)
    assert n > 550 and n_full > 150


def test_smawk_rows_twin():
    # The interpreted SMAWK (same Python source) gives the compiled bits.
    rng = np.random.default_rng(49)
    for y, cnt, _ in _smawk_cases(rng, 28, 120):
        if y.size < 2:
            continue
        problem = _smawk_problem(rng, y, cnt)[0]
        c1, a1 = _run_smawk(K._smawk_rows_nb, *problem)
        c2, a2 = _run_smawk(K._smawk_rows, *problem)
        assert_bits_equal(c1, c2)
        assert_bits_equal(a1, a2)


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
    assert kmeans_optimal_module.MAX_TABLE == kmeans_optimal_core.MAX_TABLE == 1 << 32
    x = np.arange(100.0)
    monkeypatch.setattr(kmeans_optimal_core, "MAX_TABLE", 499)
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
