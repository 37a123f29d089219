"""Spectral sparsification: effective resistances (Foster's theorem, pseudo-inverse),
the (1 +- eps) guarantee on graphs, unbiasedness, determinism, kernels' twins."""

import numba
import numpy as np
import pytest

from refcomp import DTypeError, ParameterError, ShapeError
from refcomp.prune import effective_resistances, spectral_sparsify
from refcomp.prune import _spectral_kernels as K
from refcomp.prune.spectral import spectral_error, spectral_error_estimate, theorem_samples
from refcomp.testing import assert_bits_equal


def _laplacian(W):
    A = np.abs(W.reshape(W.shape[0], -1)).astype(np.float64)
    o, i = A.shape
    L = np.zeros((o + i, o + i))
    L[:o, o:] = -A
    L[o:, :o] = -A.T
    L[np.arange(o + i), np.arange(o + i)] = -L.sum(axis=1)
    return L


def _quad(W, x):
    """x^T L x = sum over edges of w_e (x_u - x_v)^2, by a plain loop."""
    A = np.abs(W)
    o = A.shape[0]
    return sum(A[a, b] * (x[a] - x[o + b]) ** 2 for a in range(A.shape[0])
               for b in range(A.shape[1]))


def test_exact_resistances_match_pseudo_inverse_and_foster():
    rng = np.random.default_rng(0)
    W = rng.standard_normal((9, 13))
    W[2] = 0.0                                  # an isolated output: two components
    R, method = effective_resistances(W)
    assert method == "exact"
    P = np.linalg.pinv(_laplacian(W))
    o = W.shape[0]
    for a in range(W.shape[0]):
        for b in range(W.shape[1]):
            want = P[a, a] + P[o + b, o + b] - 2 * P[a, o + b] if W[a, b] else 0.0
            assert abs(R[a, b] - want) <= 1e-10
    # Foster: sum_e w_e R_e = n - (number of components)
    assert abs(float(np.sum(np.abs(W) * R)) - (22 - 2)) < 1e-9


def test_jl_resistances_within_a_constant_factor():
    rng = np.random.default_rng(1)
    W = rng.standard_normal((10, 14))
    exact, _ = effective_resistances(W)
    jl, method = effective_resistances(W, method="jl", rng=np.random.default_rng(2), jl_dim=300)
    assert method == "jl"
    ratio = jl[W != 0] / exact[W != 0]
    assert 0.6 < ratio.min() and ratio.max() < 1.5


def test_grounded_inverse_twin():
    rng = np.random.default_rng(3)
    M = rng.standard_normal((14, 14))
    A = M @ M.T + 14 * np.eye(14)
    a, _ = K.grounded_inverse(A)
    b, _ = K.grounded_inverse_twin(A)
    assert_bits_equal(a, b)
    assert np.allclose(a @ A, np.eye(14), atol=1e-10)


def _csr_of(A):
    """(indptr, neighbours, weights, degrees) of a symmetric adjacency matrix, by rows."""
    n = A.shape[0]
    indptr = np.zeros(n + 1, np.int64)
    np.cumsum((A != 0).sum(axis=1), out=indptr[1:])
    nbr = np.concatenate([np.flatnonzero(A[v]) for v in range(n)]).astype(np.int64)
    wts = np.concatenate([A[v][A[v] != 0] for v in range(n)])
    return indptr, nbr, wts, A.sum(axis=1)


def test_laplacian_cg_twin():
    rng = np.random.default_rng(4)
    n = 12
    A = np.triu(rng.random((n, n)) < 0.5, 1)
    A = (A | A.T).astype(np.float64) * rng.random((n, n))
    A = np.triu(A, 1)
    A = A + A.T
    indptr, nbr, wts, deg = _csr_of(A)
    b = rng.standard_normal(n)
    b -= b.mean()
    x1, i1 = K.laplacian_cg(indptr, nbr, wts, deg, b, 1e-12, 200)
    x2, i2 = K.laplacian_cg_twin(indptr, nbr, wts, deg, b, 1e-12, 200)
    assert i1 == i2
    assert_bits_equal(x1, x2)


def test_laplacian_matvec_and_sequential_dot_twins():
    rng = np.random.default_rng(14)
    n = 15
    A = np.triu(rng.random((n, n)) * (rng.random((n, n)) < 0.4), 1)
    A = A + A.T
    indptr, nbr, wts, deg = _csr_of(A)
    x = rng.standard_normal(n)
    y1 = K.laplacian_matvec(indptr, nbr, wts, deg, x)
    assert_bits_equal(y1, K.laplacian_matvec_twin(indptr, nbr, wts, deg, x))
    assert np.allclose(y1, (np.diag(deg) - A) @ x, atol=1e-12)
    d1, d2 = K.sequential_dot(x, y1), K.sequential_dot_twin(x, y1)
    assert np.float64(d1).view(np.uint64) == np.float64(d2).view(np.uint64)


def test_resistances_thread_count_does_not_change_bits():
    W = np.random.default_rng(5).standard_normal((20, 30))
    old = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one, _ = effective_resistances(W)
    finally:
        numba.set_num_threads(old)
    assert_bits_equal(one, effective_resistances(W)[0])


@pytest.mark.parametrize("method", ["exact", "jl"])
def test_graph_quadratic_forms_within_one_plus_minus_eps(method):
    rng = np.random.default_rng(6)
    W = np.abs(rng.standard_normal((8, 10)))       # a graph: non-negative weights
    eps = 0.5
    res = spectral_sparsify(W, epsilon=eps, rng=np.random.default_rng(7), method=method)
    assert res.n_samples == theorem_samples(18, eps)
    for _ in range(30):
        x = rng.standard_normal(18)
        g, h = _quad(W, x), _quad(res.W, x)
        assert (1 - eps) * g <= h <= (1 + eps) * g
    assert res.epsilon_achieved is not None and res.epsilon_achieved < eps


def test_unbiased_mean_over_seeds_approaches_W():
    W = np.random.default_rng(8).standard_normal((6, 7))
    errs = []
    for n_seeds in (20, 320):
        mean = np.mean([spectral_sparsify(W, n_samples=30, rng=np.random.default_rng(s)).W
                        for s in range(n_seeds)], axis=0)
        errs.append(np.linalg.norm(mean - W) / np.linalg.norm(W))
    assert errs[1] < 0.1 and errs[1] < errs[0] / 2


def test_seeded_determinism_signs_and_report():
    W = np.random.default_rng(9).standard_normal((10, 12)).astype(np.float32)
    a = spectral_sparsify(W, n_samples=40, rng=np.random.default_rng(1))
    b = spectral_sparsify(W, n_samples=40, rng=np.random.default_rng(1))
    c = spectral_sparsify(W, n_samples=40, rng=np.random.default_rng(2))
    assert_bits_equal(a.W, b.W)
    assert not np.array_equal(a.W, c.W)
    assert a.W.dtype == np.float32 and a.nnz == int(a.mask.sum()) <= 40
    assert np.all(np.sign(a.W[a.mask]) == np.sign(W[a.mask]))
    assert np.all(a.W[~a.mask] == 0)


def test_bad_input():
    W = np.ones((3, 4), np.float32)
    rng = np.random.default_rng(0)
    for eps in (0, -0.1, float("nan"), float("inf")):
        with pytest.raises(ParameterError, match="epsilon"):
            spectral_sparsify(W, epsilon=eps, rng=rng)
    with pytest.raises(ParameterError, match="exactly one"):
        spectral_sparsify(W, rng=rng)
    with pytest.raises(ParameterError, match="exactly one"):
        spectral_sparsify(W, n_samples=3, epsilon=0.5, rng=rng)
    with pytest.raises(ParameterError, match="n_samples"):
        spectral_sparsify(W, n_samples=0, rng=rng)
    with pytest.raises(ParameterError, match="rng"):
        spectral_sparsify(W, n_samples=3, rng=0)
    with pytest.raises(ParameterError, match="non-finite"):
        spectral_sparsify(np.array([[1.0, np.inf]]), n_samples=3, rng=rng)
    with pytest.raises(ShapeError):
        spectral_sparsify(np.ones(3), n_samples=3, rng=rng)
    with pytest.raises(DTypeError):
        spectral_sparsify(np.ones((2, 2), np.int64), n_samples=3, rng=rng)
    with pytest.raises(ParameterError, match="rng"):
        effective_resistances(W, method="jl")
    assert spectral_sparsify(np.zeros((2, 3)), n_samples=5, rng=rng).nnz == 0


@pytest.fixture(scope="module")
def large_graph():
    """A graph past exact_max_nodes (560 + 480 = 1040 vertices): the JL path."""
    W = np.abs(np.random.default_rng(15).standard_normal((560, 480)))
    res = spectral_sparsify(W, n_samples=W.size // 2, rng=np.random.default_rng(16))
    return W, res, spectral_error(W, res.W)


def test_large_layer_reports_a_lower_bound_on_epsilon(large_graph):
    """Above exact_max_nodes the achieved epsilon is estimated (Rayleigh-Ritz on a Krylov
    space of test vectors, sparse solves only): it never exceeds the true value (dense
    eigenvalues, computed here only because the graph is still small enough) and comes
    close to it."""
    W, res, true = large_graph
    assert res.method == "jl" and res.epsilon_kind == "lower_bound"
    assert 0.8 * true <= res.epsilon_achieved <= true * (1 + 1e-9)
    # the exact path names its value "exact"
    small = spectral_sparsify(W[:20, :30], n_samples=300, rng=np.random.default_rng(0))
    assert small.epsilon_kind == "exact"
    assert small.epsilon_achieved == spectral_error(W[:20, :30], small.W)


def test_estimate_leaves_rng_and_sample_alone_and_is_deterministic(large_graph):
    W, res, true = large_graph
    g = np.random.default_rng(16)
    off = spectral_sparsify(W, n_samples=W.size // 2, rng=g, check_vectors=None)
    assert off.epsilon_achieved is None and off.epsilon_kind is None
    assert_bits_equal(off.W, res.W)
    g2 = np.random.default_rng(16)
    again = spectral_sparsify(W, n_samples=W.size // 2, rng=g2)
    assert g.random() == g2.random()             # the check draws nothing from rng
    assert again.epsilon_achieved == res.epsilon_achieved
    other = spectral_error_estimate(W, res.W, seed=3)
    assert other != res.epsilon_achieved and other <= true * (1 + 1e-9)


def test_estimate_of_a_cut_sample_is_at_least_one():
    """Too few samples leave a vertex isolated: lambda = 0 exists and eps >= 1 exactly
    (connected components), whatever the test vectors."""
    W = np.abs(np.random.default_rng(17).standard_normal((40, 30)))
    H = spectral_sparsify(W, n_samples=50, rng=np.random.default_rng(0)).W
    assert spectral_error_estimate(W, H, n_vectors=0) == 1.0
    assert spectral_error_estimate(W, H) >= 1.0
    assert spectral_error_estimate(W, W) < 1e-6
    assert spectral_error_estimate(np.zeros((3, 4)), np.zeros((3, 4))) == 0.0
    with pytest.raises(ShapeError, match="W_H"):
        spectral_error_estimate(W, H[:3])
    with pytest.raises(ParameterError, match="n_vectors"):
        spectral_error_estimate(W, H, n_vectors=-1)
