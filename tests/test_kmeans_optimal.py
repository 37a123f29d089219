"""Optimal 1-D k-means: brute force over all partitions, never worse than Lloyd or scikit-learn."""

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from refcomp import ParameterError
from refcomp.kernels import kmeans as K
from refcomp.quantize import kmeans, kmeans_optimal
from refcomp.testing import assert_bits_equal


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
        for init in ("linear", "density", "density_tfmot", "random", "kmeans++"):
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


def test_bad_input():
    with pytest.raises(ParameterError):
        kmeans_optimal(np.arange(3.0), 0)
    with pytest.raises(ParameterError):
        kmeans_optimal(np.array([np.nan, 1.0]), 2)
    with pytest.raises(ParameterError):
        kmeans_optimal(np.arange(3.0), 5, bits=2)
