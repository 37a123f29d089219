"""1-D k-means quantizer: independent naive Lloyd, golden cases, properties, twins, bad input."""

import importlib
import math
from fractions import Fraction

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from refcomp import DTypeError, ParameterError, ShapeError
from refcomp.kernels import kmeans as K
from refcomp.quantize import kmeans
from refcomp.testing import assert_bits_equal


# -- independent ground truth: O(nk) Lloyd on Python floats ---------------------------
def naive_linear_init(xs, k, dtype):
    lo, hi = min(xs), max(xs)
    if k == 1:
        c = [lo]
    else:
        step = (hi - lo) / (k - 1)
        c = [lo + i * step for i in range(k)]
        c[-1] = hi
    return sorted(float(np.array(v).astype(dtype)) for v in c)


def naive_inits(x, k, init, seed):
    """Initial centroids (sorted Python floats of the dtype) by the documented
    rules, written independently of refcomp; None for "kmeans++" and
    "optimal" (their kernels have their own tests: a twin, brute force)."""
    dtype = x.dtype
    xs = sorted(float(v) + 0.0 for v in x.reshape(-1))
    n = len(xs)
    rng = np.random.default_rng(seed)
    if init == "linear":
        return naive_linear_init(xs, k, dtype)
    if init == "density":          # order statistics floor((2i+1)n/(2k)), 0-based
        c = [xs[((2 * i + 1) * n) // (2 * k)] for i in range(k)]
    elif init == "density_tfmot":  # 30-point CDF grid, searched at linspace(0.01, 1, k)
        grid = np.linspace(xs[0] - 0.01, xs[-1] + 0.01, 30)
        cdf = [sum(1 for v in xs if v <= g) / n for g in grid]
        c = [float(grid[min(sum(1 for f in cdf if f <= p), 29)]) for p in np.linspace(0.01, 1, k)]
    elif init == "random":         # Forgy over the distinct values
        u = sorted(set(xs))
        c = [u[i] for i in rng.choice(len(u), size=k, replace=False)]
    elif init == "random_tfmot":
        c = rng.uniform(xs[0], xs[-1], size=k).tolist()
    else:
        return None
    return sorted(float(np.array(v).astype(dtype)) for v in c)


def naive_lloyd(x, k, max_iter=300, c0=None):
    """Lloyd with eq. (12)/(17)/(18) rules: thresholds 0.5a+0.5b, value on a
    threshold to the upper cell, centroid fsum(cell)/n rounded to the dtype,
    empty cell keeps its centroid, stop when no assignment changes.  Starts
    from the sorted centroids ``c0`` (default: the linear init)."""
    dtype = x.dtype
    xs = [float(v) + 0.0 for v in x.reshape(-1)]
    c = naive_linear_init(xs, k, dtype) if c0 is None else [float(v) for v in c0]

    def assign(c):
        t = [0.5 * c[i - 1] + 0.5 * c[i] for i in range(1, k)]
        return [sum(1 for ti in t if v >= ti) for v in xs]

    a = assign(c)
    n_iter, converged = 0, False
    for _ in range(max_iter):
        for i in range(k):
            members = [v for v, ai in zip(xs, a) if ai == i]
            if members:
                c[i] = float(np.array(math.fsum(members) / len(members)).astype(dtype))
        n_iter += 1
        new = assign(c)
        if new == a:
            converged = True
            break
        a = new
    return np.array(c, dtype=dtype), np.array(a).reshape(x.shape), n_iter, converged


def exact_sse(x, q):
    xr = q.dequantize()
    return sum((Fraction(float(a)) - Fraction(float(b))) ** 2
               for a, b in zip(x.reshape(-1), xr.reshape(-1)))


_values = st.one_of(st.integers(-6, 6).map(lambda i: i / 4.0),
                    st.floats(-5, 5, allow_nan=False, allow_subnormal=False, width=32))
_arrays = st.sampled_from([np.float32, np.float64]).flatmap(
    lambda dt: hnp.arrays(dt, st.integers(1, 40), elements=_values))


@settings(max_examples=60)
@given(x=_arrays, k=st.integers(1, 9))
def test_matches_naive_lloyd(x, k):
    q = kmeans(x, k)
    c, codes, n_iter, conv = naive_lloyd(x, k)
    assert_bits_equal(q.codebook, c)
    np.testing.assert_array_equal(q.codes.astype(np.int64), codes)
    assert q.info["n_iter"] == n_iter and q.info["converged"] == conv
    assert q.dequantize().dtype == x.dtype


@settings(max_examples=40)
@given(x=_arrays, k=st.integers(1, 9), seed=st.integers(0, 2 ** 32 - 1),
       init=st.sampled_from(["linear", "density", "density_tfmot", "random", "random_tfmot",
                             "kmeans++", "optimal"]))
def test_matches_naive_lloyd_every_init(x, k, seed, init):
    # Every init is deterministic given the rng: the naive Lloyd starts from
    # the same centroids, computed independently where the rule is simple
    # and otherwise taken from refcomp's 0-iteration result.
    if init == "random" and k > np.unique(x + 0.0).size:
        with pytest.raises(ParameterError, match="distinct"):
            kmeans(x, k, init=init, rng=np.random.default_rng(seed))
        return
    c0 = kmeans(x, k, init=init, max_iter=0, rng=np.random.default_rng(seed)).codebook
    want0 = naive_inits(x, k, init, seed)
    if want0 is not None:
        assert_bits_equal(c0, np.array(want0, dtype=x.dtype))
    q = kmeans(x, k, init=init, rng=np.random.default_rng(seed))
    c, codes, n_iter, conv = naive_lloyd(x, k, c0=c0)
    assert_bits_equal(q.codebook, c)
    np.testing.assert_array_equal(q.codes.astype(np.int64), codes)
    assert q.info["n_iter"] == n_iter and q.info["converged"] == conv


def test_golden_tie_goes_to_upper_cell():
    # c0 = [0, 2], threshold 1.0: the value 1 is on it and joins the upper cell.
    q = kmeans(np.array([0.0, 1.0, 2.0]), 2)
    assert_bits_equal(q.codebook, np.array([0.0, 1.5]))
    np.testing.assert_array_equal(q.codes, [0, 1, 1])
    assert q.info["converged"] and q.info["sse"] == 0.5


def test_golden_empty_cell_keeps_centroid():
    q = kmeans(np.array([0.0, 0.0, 0.0, 10.0], dtype=np.float32), 3)
    assert_bits_equal(q.codebook, np.array([0.0, 5.0, 10.0], np.float32))
    np.testing.assert_array_equal(q.codes, [0, 0, 0, 2])
    assert q.info["n_empty"] == 1


def test_golden_constant_and_more_codes_than_values():
    q = kmeans(np.full((2, 3), 3.0), 4)
    assert_bits_equal(q.codebook, np.full(4, 3.0))
    np.testing.assert_array_equal(q.codes, np.full((2, 3), 3))  # thresholds = 3 -> top cell
    assert q.info["sse"] == 0.0 and q.bits == 2


def test_signed_zero_is_one_value():
    q = kmeans(np.array([-0.0, 0.0, 1.0]), 2)
    assert_bits_equal(q.codebook, np.array([0.0, 1.0]))


def test_centroid_is_fsum_mean_not_naive_sum():
    # naive float sum of [1e16, 1, -1e16] is 0; the exact mean is 1/3.
    x = np.array([1e16, 1.0, -1e16, 5e16])
    q = kmeans(x, 2, max_iter=0)  # cells from the linear init only
    q1 = kmeans(x, 2, max_iter=1)
    assert q1.codebook[0] == math.fsum([1e16, 1.0, -1e16]) / 3
    assert q.info["n_iter"] == 0


def lloyd_step_slack(x):
    """Largest SSE increase one Lloyd iteration can cause through rounding.

    In exact arithmetic neither step increases the SSE.  (a) Centroid
    update, cells fixed: a cell's SSE around c is SSE(mean) + n·(c − mean)²,
    so the new centroid loses to the old one only if it is farther from the
    exact mean.  The new one is fl_dtype(fl64(fl64(S)/n)): up to 1 ulp of
    the dtype from the mean (double rounding), the old one may be nearer
    (e.g. the nearest value itself): at most n·ulp(M)² in all, M = max|x|.
    (b) Reassignment, centroids a < b fixed: the threshold 0.5a + 0.5b is
    rounded to float64 (exact unless a, b are float64 or their exponents
    differ by more than 29), so a value within ulp64(t)/2 of the true
    midpoint may join the farther centroid, at a cost
    2·(b − a)·|x − t| <= 2M·ulp64(M) per value.  So the SSE can grow, but
    only by this absolute amount (about 1e-11 for the drawn data), never in
    proportion to the SSE.
    """
    n = x.size
    big = float(np.max(np.abs(x)))
    ulp = Fraction(float(np.spacing(x.dtype.type(big))))
    ulp64 = Fraction(float(np.spacing(np.float64(big))))
    return n * (ulp * ulp + 2 * Fraction(big) * ulp64)


@settings(max_examples=25)
@given(x=_arrays, k=st.integers(2, 6))
def test_sse_never_increases(x, k):
    prev = None
    slack = lloyd_step_slack(x)
    for m in range(0, 6):
        q = kmeans(x, k, max_iter=m)
        s = exact_sse(x, q)
        if prev is not None:
            # Exact SSEs (Fractions); the only allowance is the rounding of
            # centroids and thresholds, bounded in lloyd_step_slack.
            assert s <= prev + slack
        prev = s


def test_sse_can_increase_by_a_rounding_amount():
    # Why test_sse_never_increases cannot demand s <= prev exactly: the
    # linear init puts c0 on 0.5558579321080079, the nearest double to the
    # first cell's mean, but the computed mean fl(fl(S)/3) is one ulp above.
    x = np.array([0.5558579321080079, 0.555857932108008, 0.5558579321080079, 8.388788053046808])
    s0 = exact_sse(x, kmeans(x, 3, max_iter=0))
    s1 = exact_sse(x, kmeans(x, 3, max_iter=1))
    assert 0 < s1 - s0 <= lloyd_step_slack(x)


@settings(max_examples=25)
@given(x=_arrays, k=st.integers(1, 7), seed=st.integers(0, 2 ** 32 - 1))
def test_shuffle_invariance_and_repeatability(x, k, seed):
    perm = np.random.default_rng(seed).permutation(x.size)
    a = kmeans(x, k, init="density")
    b = kmeans(x.reshape(-1)[perm], k, init="density")
    assert_bits_equal(a.codebook, b.codebook)
    np.testing.assert_array_equal(a.codes.reshape(-1)[perm], b.codes)
    assert a == kmeans(x, k, init="density")


@pytest.mark.parametrize("init", ["linear", "density", "density_tfmot", "random",
                                  "random_tfmot", "kmeans++", "optimal"])
@pytest.mark.parametrize("algorithm", ["lloyd", "hartigan"])
def test_every_init_and_algorithm(init, algorithm):
    x = np.random.default_rng(5).laplace(size=(40, 25)).astype(np.float32)
    q = kmeans(x, bits=3, init=init, algorithm=algorithm, rng=np.random.default_rng(1))
    cb = q.codebook
    assert cb.dtype == np.float32 and cb.shape == (8,) and np.all(np.diff(cb) >= 0)
    r = kmeans(x, bits=3, init=init, algorithm=algorithm, rng=np.random.default_rng(1))
    assert q == r and q.info["sse"] == r.info["sse"]
    # Codes are the nearest codebook entry (ties to the upper one).
    err = np.abs(x[..., None].astype(np.float64) - cb.astype(np.float64))
    best = err.min(axis=-1)
    np.testing.assert_array_equal(err[np.arange(40)[:, None], np.arange(25), q.codes], best)


def test_hartigan_not_worse_than_its_start():
    x = np.random.default_rng(3).standard_normal(3000)
    for init in ("linear", "density"):
        h = kmeans(x, 16, init=init, algorithm="hartigan")
        s = kmeans(x, 16, init=init, max_iter=0)
        assert h.info["sse"] <= s.info["sse"]


def test_tfmot_density_grid_points():
    x = np.linspace(-1, 1, 101)
    q = kmeans(x, 4, init="density_tfmot", max_iter=0)
    grid = np.linspace(-1.01, 1.01, 30)
    assert set(q.codebook.tolist()) <= set(grid.tolist())


def test_kmeanspp_with_few_distinct_values():
    q = kmeans(np.array([1.0, 1.0, 2.0]), 4, init="kmeans++", rng=np.random.default_rng(0),
               max_iter=0)
    assert sorted(set(q.codebook.tolist())) == [1.0, 2.0]


# -- kernels vs twins --------------------------------------------------------------------
def _prep(x):
    u, cnt = np.unique(x.astype(np.float64) + 0.0, return_counts=True)
    cnt = cnt.astype(np.int64)
    return u, cnt, np.concatenate([[0], np.cumsum(cnt)]).astype(np.int64)


@settings(max_examples=30)
@given(x=_arrays, k=st.integers(1, 9))
def test_kernel_twins(x, k):
    u, cnt, ccum = _prep(x)
    to32 = x.dtype == np.float32
    c0 = np.sort(np.linspace(u[0], u[-1], k).astype(x.dtype).astype(np.float64))
    emin, n_limbs = K.exact_layout(u)
    assert (emin, n_limbs) == K.exact_layout_twin(u)
    P = K.block_prefix(u, cnt, emin, n_limbs)
    a = K.lloyd(u, cnt, ccum, c0, to32, 50, emin, P)
    b = K.lloyd_twin(u, cnt, ccum, c0, to32, 50)
    assert_bits_equal(a[0], b[0])
    assert_bits_equal(a[1], b[1])
    assert a[2:] == b[2:]
    assert_bits_equal(np.float64(K.sse(u, cnt, a[0], a[1])),
                      np.float64(K.sse_twin(u, cnt, a[0], a[1])))
    r = np.random.default_rng(k).random(k - 1)
    assert_bits_equal(K.kmeanspp(u, cnt, u.size // 2, r), K.kmeanspp_twin(u, cnt, u.size // 2, r))
    starts = np.append(u, np.inf)[a[1][:-1]]
    assert_bits_equal(K.cell_codes(x.reshape(-1), starts, np.int64),
                      K.cell_codes_twin(x.reshape(-1), starts, np.int64))
    bnd1, bnd2 = K.boundaries(u, c0), K.boundaries(u, c0)
    h1 = K.hartigan(u, cnt, c0, to32, 20, emin, n_limbs, bnd1)
    h2 = K.hartigan_twin(u, cnt, c0, to32, 20, emin, n_limbs, bnd2)
    assert_bits_equal(h1[0], h2[0])
    assert_bits_equal(bnd1, bnd2)
    assert h1[1:] == h2[1:]


def test_exact_sums_against_fsum_wide_range():
    rng = np.random.default_rng(11)
    for trial in range(40):
        n = int(rng.integers(1, 300))
        x = rng.standard_normal(n) * np.exp2(rng.integers(-300, 300, size=n))
        if trial % 2:
            x = np.concatenate([x, -x[: n // 2], [2.0 ** -1074]])
        u, cnt, ccum = _prep(x)
        emin, n_limbs = K.exact_layout(u)
        assert (emin, n_limbs) == K.exact_layout_twin(u)
        P = K.block_prefix(u, cnt, emin, n_limbs)
        m = u.size
        bnd = np.concatenate([[0], np.sort(rng.integers(0, m + 1, 3)), [m]]).astype(np.int64)
        c = K.cell_means(u, cnt, ccum, bnd, np.zeros(4), False, emin, P)
        for i in range(4):
            a, b = bnd[i], bnd[i + 1]
            if b > a:
                ref = math.fsum(np.repeat(u[a:b], cnt[a:b]).tolist()) / float(ccum[b] - ccum[a])
                assert_bits_equal(np.float64(c[i]), np.float64(ref))


def test_thread_count_does_not_matter():
    x = np.random.default_rng(2).standard_normal(20000).astype(np.float32)
    old = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        a = kmeans(x, 32, init="kmeans++", rng=np.random.default_rng(0))
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        b = kmeans(x, 32, init="kmeans++", rng=np.random.default_rng(0))
    finally:
        numba.set_num_threads(old)
    assert a == b



def _with_threads(n, f):
    old = numba.get_num_threads()
    try:
        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
        return f()
    finally:
        numba.set_num_threads(old)


def _zero_heavy(rng, n, dtype):
    """Ties, duplicates, both signed zeros and a few subnormals."""
    x = rng.integers(-4, 5, n) * 0.25 + np.where(rng.random(n) < 0.5, rng.standard_normal(n), 0.0)
    x[rng.random(n) < 0.2] = -0.0
    x[rng.random(n) < 0.05] = np.finfo(dtype).smallest_subnormal * rng.integers(1, 9)
    return x.astype(dtype)


def test_merge_distinct_twin():
    rng = np.random.default_rng(21)
    for t in range(60):
        dt = (np.float32, np.float64)[t % 2]
        x = _zero_heavy(rng, int(rng.integers(1, 300)), dt)
        h = int(rng.integers(0, x.size + 1))
        a, b = np.sort(x[:h]), np.sort(x[h:])
        if a.size == 0:
            a, b = b, a
        got = K.merge_distinct(a, b)
        want = K.merge_distinct_twin(a, b)
        for g, w in zip(got, want):
            assert_bits_equal(np.ascontiguousarray(g), w)
        # independent: np.unique of the float64 values with -0.0 -> +0.0
        u, c, cc = _prep(x)
        assert_bits_equal(np.ascontiguousarray(got[0]), u)
        assert_bits_equal(got[1], c)


def test_exact_layout_twin_subnormals_and_zeros():
    rng = np.random.default_rng(22)
    tiny = [5e-324, -5e-324, 3e-310, 2.0 ** -1022, -0.0, 0.0]
    for t in range(200):
        n = int(rng.integers(1, 60))
        x = rng.standard_normal(n) * np.exp2(rng.integers(-1080, 1000, n).astype(np.float64))
        x = np.concatenate([x, rng.choice(tiny, int(rng.integers(0, 4)))])
        x = x[np.isfinite(x)]
        if x.size:
            assert K.exact_layout(x) == K.exact_layout_twin(x)
    for x in (np.zeros(3), np.array([-0.0]), np.array([5e-324]), np.array([2.0 ** 1023, 3e-310])):
        assert K.exact_layout(x) == K.exact_layout_twin(x)


def test_block_prefix_twin():
    rng = np.random.default_rng(23)
    for t in range(6):
        u, cnt, _ = _prep(_zero_heavy(rng, int(rng.integers(1, 3000)), (np.float32, np.float64)[t % 2]))
        emin, n_limbs = K.exact_layout(u)
        assert_bits_equal(K.block_prefix(u, cnt, emin, n_limbs),
                          K.block_prefix_twin(u, cnt, emin, n_limbs))
    # The kernel reads IEEE bit fields, the twin frexp/ldexp: subnormals (the
    # smallest ±5e-324 too), the largest subnormal and mixed signs.
    x = np.concatenate([rng.standard_normal(400) * 1e-310, rng.standard_normal(400),
                        [5e-324, -5e-324, 2.225073858507201e-308, -1.0, 1.0]])
    u, cnt, _ = _prep(x)
    emin, n_limbs = K.exact_layout(u)
    assert_bits_equal(K.block_prefix(u, cnt, emin, n_limbs),
                      K.block_prefix_twin(u, cnt, emin, n_limbs))


def test_layout_prefix_thread_count_does_not_matter():
    x = np.random.default_rng(24).standard_normal(140_000) * np.exp2(
        np.random.default_rng(25).integers(-40, 40, 140_000).astype(np.float64))
    a = _with_threads(1, lambda: K.exact_layout(x))
    b = _with_threads(2, lambda: K.exact_layout(x))
    assert a == b == K.exact_layout_twin(x)
    u, cnt, _ = _prep(x[:5000])
    emin, n_limbs = K.exact_layout(u)
    p1 = _with_threads(1, lambda: K.block_prefix(u, cnt, emin, n_limbs))
    p2 = _with_threads(2, lambda: K.block_prefix(u, cnt, emin, n_limbs))
    assert_bits_equal(p1, p2)


def test_split_sort_thread_count_and_twin(monkeypatch):
    # Above _SPLIT_MIN the data are sorted in two halves (one in a helper
    # thread) and merged; the result must equal the single-sort path.
    # _Data and the split sort live in the module shared by kmeans and kmeans_optimal.
    common = importlib.import_module("refcomp.quantize._kmeans_common")
    rng = np.random.default_rng(26)
    for dt in (np.float32, np.float64):
        x = _zero_heavy(rng, common._SPLIT_MIN + 1001, dt)
        a = _with_threads(1, lambda: kmeans(x, bits=4))
        b = _with_threads(2, lambda: kmeans(x, bits=4, init="density"))
        with monkeypatch.context() as mp:
            mp.setattr(common, "_SPLIT_MIN", 1 << 62)
            assert kmeans(x, bits=4) == a
            assert kmeans(x, bits=4, init="density") == b

# -- bad input ---------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, exc", [
    (dict(k=0), ParameterError), (dict(bits=0), ParameterError), (dict(bits=17), ParameterError),
    (dict(k=5, bits=2), ParameterError), (dict(), ParameterError),
    (dict(k=2, init="forgy"), ParameterError), (dict(k=2, algorithm="elkan"), ParameterError),
    (dict(k=2, init="random"), ParameterError), (dict(k=2, init="kmeans++", rng=0), ParameterError),
    (dict(k=2, max_iter=-1), ParameterError), (dict(k=True), ParameterError),
])
def test_bad_parameters(kwargs, exc):
    with pytest.raises(exc):
        kmeans(np.arange(4.0), **kwargs)


@pytest.mark.parametrize("w, exc", [
    (np.array([1.0, np.nan]), ParameterError), (np.array([np.inf, 1.0]), ParameterError),
    (np.zeros(0), ShapeError), ([1.0, 2.0], DTypeError), (np.arange(4), DTypeError),
    (np.ones(3, np.float16), DTypeError),
])
def test_bad_arrays(w, exc):
    with pytest.raises(exc):
        kmeans(w, 2)


def test_random_init_needs_enough_distinct_values():
    with pytest.raises(ParameterError, match="distinct"):
        kmeans(np.array([1.0, 1.0, 2.0]), 3, init="random", rng=np.random.default_rng(0))


def test_float64_overflow_guard():
    with pytest.raises(ParameterError, match="overflow"):
        kmeans(np.array([1e308, -1e308, 1e308]), 2)


@pytest.mark.parametrize("k", [1, 2, 5, 32, 33, 200])
def test_cell_codes_twin_both_paths(k):
    # k <= 32 counts starts <= v, larger k binary-searches: both against searchsorted,
    # with elements exactly on the starts, repeated starts (empty cells), ±0 and +inf padding.
    rng = np.random.default_rng(k)
    x = rng.standard_normal(5000).astype(np.float32)
    x[:3] = (0.0, -0.0, x.min())
    starts = np.sort(rng.choice(x, size=k, replace=False).astype(np.float64))
    starts[0] = x.min()
    if k > 3:
        starts[2] = starts[1]
        starts[-1] = np.inf
    x[3:3 + k] = starts.astype(np.float32)[:5000 - 3][:k].clip(max=np.float32(x.max()))
    for dt in (np.uint8 if k <= 256 else np.uint16, np.int64):
        assert_bits_equal(K.cell_codes(x, starts, dt), K.cell_codes_twin(x, starts, dt))
