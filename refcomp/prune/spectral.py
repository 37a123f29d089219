"""Spectral sparsification of a dense layer (Spielman & Srivastava, "Graph
Sparsification by Effective Resistances", SIAM J. Comput. 40(6), 2011; seed 001).

|W| of a dense weight (out, in) is a weighted bipartite graph G: vertices
0..out-1 are the outputs, out..out+in-1 the inputs, and every non-zero
``W[o, i]`` an edge of weight ``w_e = |W[o, i]|`` between o and out + i
(edge index e = o * in + i, C order).  The sparsifier H samples q edges
independently with replacement, edge e with probability
``p_e = w_e R_e / sum_f w_f R_f`` (R_e its effective resistance in G), and
gives each sampled edge the weight ``w_e / (q p_e)`` per sample (Algorithm 1
of the paper); the result keeps W's sign on every sampled entry, so
``E[W_H] = W`` (unbiased).  With ``q >= 9 C^2 n log(n) / eps^2`` samples
(n vertices, natural log), Theorem 1 gives ``(1 - eps) x^T L_G x <= x^T L_H x
<= (1 + eps) x^T L_G x`` for all x with probability at least 1/2; the
constant C of Rudelson and Vershynin is not explicit and refcomp takes C = 1
(the tests measure the approximation reached).

Effective resistances:

* ``method="exact"`` (default for at most ``exact_max_nodes`` vertices): the
  Laplacian with the lowest vertex of each connected component removed
  ("grounded") is positive definite; its inverse (Cholesky,
  :mod:`refcomp.prune._spectral_kernels`) gives
  ``R_e = (G[u, u] + G[v, v]) - 2 G[u, v]`` (a grounded vertex's terms are 0),
  float64 in that order.  Equal to ``b_e^T L^+ b_e``;
* ``method="jl"`` (larger layers): the Johnson-Lindenstrauss sketch of §4:
  ``Z = Q W^{1/2} B L^+`` with Q a k x m matrix of independent
  ``+-1/sqrt(k)`` signs (row by row from ``rng.integers(0, 2, m, int8)``,
  0 -> -1), each row of ``Q W^{1/2} B`` (a vertex vector, sums in edge order)
  solved by the conjugate gradient of the sparse Laplacian; then
  ``R_e ~ ||Z[:, u] - Z[:, v]||^2`` summed over the k rows in order.  k
  defaults to ``ceil(8 ln(n))``: a constant-factor estimate, which only
  scales the sample count the theorem needs (Koutis, Miller & Peng 2010).

Sampling (exact, deterministic given ``rng``): ``t_e = w_e * R_e`` (float64),
``cdf = cumsum(t)`` (sequential), ``S = cdf[-1]``; q uniforms
``u = rng.random(q)`` pick the first e with ``cdf[e] > u * S``
(``numpy.searchsorted(..., side="right")``); with ``c_e`` the number of
picks, ``|W_H[e]| = c_e * w_e / (q * (t_e / S))`` in float64 (each operation
one rounding, in that order), rounded once (half-even) to W's dtype, times
W's sign.  Edges with ``R_e = 0`` (none in a graph with positive weights)
cannot be picked.

Approximation achieved (``epsilon_achieved``, not part of the result's
bits): up to ``exact_max_nodes`` vertices the exact ``max |lambda - 1|`` of
the pencil (L_H, L_G) by dense eigenvalues (:func:`spectral_error`); above,
a lower bound on it from test vectors, Rayleigh-Ritz on a block Krylov
space built with the sparse solver (:func:`spectral_error_estimate`; a
4096 x 4096 Laplacian pseudo-inverse is never formed), named
``epsilon_kind="lower_bound"``.
"""

import dataclasses
import math
import numbers

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from .._errors import ParameterError, ShapeError
from .._validate import as_float_array, check_choice, check_finite, check_int, describe
from ._common import fsum_rows
from . import _spectral_kernels as _k

__all__ = ["spectral_sparsify", "effective_resistances", "spectral_error",
           "spectral_error_estimate",
           "theorem_samples", "SpectralSparsified", "METHODS"]

METHODS = ("auto", "exact", "jl")


@dataclasses.dataclass(frozen=True)
class SpectralSparsified:
    """Result of :func:`spectral_sparsify`.

    W : ndarray, shape and dtype of the input: sampled entries with their sign
        and weight ``c_e w_e / (q p_e)``; +0.0 elsewhere.
    mask : bool ndarray, W's shape: the kept (sampled) entries.
    nnz : int, number of kept entries (distinct sampled edges).
    n_samples : int, q.
    method : "exact" or "jl", how the resistances were obtained.
    resistances : float64 ndarray, W's shape: R_e (0 where W is 0).
    epsilon_achieved : float or None
        The spectral approximation achieved, ``max |lambda - 1|`` over the
        generalised eigenvalues of (L_H, L_G) on the range of L_G, as
        ``epsilon_kind`` says:

        * ``"exact"`` (graphs of at most ``exact_max_nodes`` vertices): the
          value itself (:func:`spectral_error`; a measurement by LAPACK,
          ``numpy.linalg.eigvalsh``);
        * ``"lower_bound"`` (larger graphs): an *estimate from below*,
          :func:`spectral_error_estimate` (Rayleigh-Ritz on a Krylov space
          of test vectors of their own seed, with the sparse solver; the
          true epsilon is at least this value);
        * None: not computed (``check_vectors=None`` on a large graph).

        Not part of the result's bits either way.
    epsilon_kind : "exact", "lower_bound" or None (above)
    """
    W: np.ndarray
    mask: np.ndarray
    nnz: int
    n_samples: int
    method: str
    resistances: np.ndarray
    epsilon_achieved: object = None
    epsilon_kind: object = None


def theorem_samples(n_vertices, epsilon):
    """``ceil(9 n ln(n) / eps^2)`` (Spielman & Srivastava Theorem 1 with C = 1)."""
    n = check_int("n_vertices", n_vertices, lo=1)
    eps = _check_eps(epsilon)
    return max(1, math.ceil(9.0 * n * math.log(max(n, 2)) / (eps * eps)))


def _check_eps(epsilon):
    if isinstance(epsilon, bool) or not isinstance(epsilon, numbers.Real) \
            or not math.isfinite(float(epsilon)) or float(epsilon) <= 0:
        raise ParameterError(f"epsilon must be a finite number > 0, got {epsilon!r}")
    return float(epsilon)


def _matrix(W):
    as_float_array("W", W)
    if W.ndim < 2:
        raise ShapeError(f"W must have at least 2 dimensions (out, in...), got {describe(W)}")
    check_finite("W", W)
    return W.reshape(W.shape[0], -1)


def _graph(A):
    """Edges (rows, cols, weights float64) of |A| in C order and the vertex degrees
    (exactly rounded sums)."""
    rows, cols = np.nonzero(A)
    w = np.abs(A[rows, cols]).astype(np.float64)
    absA = np.abs(A).astype(np.float64)
    deg = np.concatenate([fsum_rows(absA), fsum_rows(np.ascontiguousarray(absA.T))])
    return rows.astype(np.int64), cols.astype(np.int64), w, deg


def _components(n, u, v):
    """``(count, labels)`` of the connected components of the graph on ``n`` vertices
    with edges ``(u[k], v[k])``."""
    return connected_components(coo_matrix((np.ones(u.size), (u, v)), shape=(n, n)),
                                directed=False)


def _exact_resistances(n_out, n_in, rows, cols, w, deg):
    n = n_out + n_in
    u, v = rows, n_out + cols
    n_comp, labels = _components(n, u, v)
    # ground the lowest vertex of each component (labels are in vertex order)
    ground = np.zeros(n, dtype=bool)
    ground[np.unique(labels, return_index=True)[1]] = True
    red = np.full(n, -1, dtype=np.int64)
    red[~ground] = np.arange(int((~ground).sum()))
    m = int((~ground).sum())
    L = np.zeros((m, m), dtype=np.float64)
    keep = ~ground
    L[red[keep], red[keep]] = deg[keep]
    a, b = red[u], red[v]
    both = (a >= 0) & (b >= 0)
    L[a[both], b[both]] = -w[both]
    L[b[both], a[both]] = -w[both]
    G, bad = _k.grounded_inverse(L) if m else (np.zeros((0, 0)), -1)
    if bad >= 0:
        raise ParameterError("the grounded Laplacian is not numerically positive definite "
                             "(weights spanning too many orders of magnitude); use "
                             "method='jl'")
    guu = np.where(a >= 0, G[np.maximum(a, 0), np.maximum(a, 0)], 0.0) if m else 0 * w
    gvv = np.where(b >= 0, G[np.maximum(b, 0), np.maximum(b, 0)], 0.0) if m else 0 * w
    guv = np.where(both, G[np.maximum(a, 0), np.maximum(b, 0)], 0.0) if m else 0 * w
    return (guu + gvv) - 2.0 * guv


def _csr(n, u, v, w):
    """Symmetric CSR adjacency (indptr, neighbours, weights) of the edges (u, v, w):
    each vertex's neighbours in increasing order."""
    src = np.concatenate([u, v])
    dst = np.concatenate([v, u])
    ww = np.concatenate([w, w])
    order = np.lexsort((dst, src))
    src, dst, ww = src[order], dst[order], ww[order]
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(src, minlength=n), out=indptr[1:])
    return indptr, dst, ww


def _jl_resistances(n_out, n_in, rows, cols, w, deg, rng, k, tol, max_iter):
    n = n_out + n_in
    u, v = rows, n_out + cols
    indptr, dst, ww = _csr(n, u, v, w)
    sq = np.sqrt(w)
    Z = np.zeros((k, n), dtype=np.float64)
    for r in range(k):
        signs = np.where(rng.integers(0, 2, w.size, dtype=np.int8) > 0, 1.0, -1.0)
        c = signs * sq / math.sqrt(k)
        y = np.zeros(n, dtype=np.float64)
        np.add.at(y, u, c)                   # sequential in edge order (unbuffered)
        np.add.at(y, v, -c)
        Z[r], _ = _k.laplacian_cg(indptr, dst, ww, deg, y, tol, max_iter)
    R = np.zeros(w.size, dtype=np.float64)
    for r in range(k):
        d = Z[r, u] - Z[r, v]
        R += d * d
    return R


def effective_resistances(W, *, method="auto", exact_max_nodes=1024, rng=None, jl_dim=None,
                          cg_tol=1e-10, cg_max_iter=None):
    """Effective resistance of every edge of the bipartite graph of |W|.

    Parameters
    ----------
    W : ndarray float32/float64, (out, in) (more axes: the (out, rest) view), finite
    method : {"auto", "exact", "jl"}
        "auto": exact for at most ``exact_max_nodes`` vertices, else "jl".
    rng : numpy.random.Generator, required for "jl"
    jl_dim : int, optional; k of the sketch (default ``ceil(8 ln n)``)
    cg_tol, cg_max_iter : conjugate-gradient stop rule (default max_iter = 10 n)

    Returns
    -------
    (R, method) : float64 ndarray of W's shape (0 where W is 0) and the
        method used; arithmetic in the module docstring.
    """
    A = _matrix(W)
    check_choice("method", method, METHODS)
    check_int("exact_max_nodes", exact_max_nodes, lo=0)
    n = A.shape[0] + A.shape[1]
    if method == "auto":
        method = "exact" if n <= exact_max_nodes else "jl"
    rows, cols, w, deg = _graph(A)
    R = np.zeros(A.shape, dtype=np.float64)
    if w.size == 0:
        return R.reshape(W.shape), method
    if method == "exact":
        r = _exact_resistances(A.shape[0], A.shape[1], rows, cols, w, deg)
    else:
        if not isinstance(rng, np.random.Generator):
            raise ParameterError(f"method 'jl' needs rng, a numpy.random.Generator, got "
                                 f"{type(rng).__name__}")
        k = math.ceil(8 * math.log(max(n, 2))) if jl_dim is None else \
            check_int("jl_dim", jl_dim, lo=1)
        iters = 10 * n if cg_max_iter is None else check_int("cg_max_iter", cg_max_iter, lo=1)
        r = _jl_resistances(A.shape[0], A.shape[1], rows, cols, w, deg, rng, k,
                            float(cg_tol), iters)
    R[rows, cols] = r
    return R.reshape(W.shape), method


def spectral_error(W, W_H):
    """Achieved spectral approximation of |W| by |W_H|: ``max |lambda - 1|`` over the
    generalised eigenvalues of (L_H, L_G) restricted to the range of L_G.

    Computed in float64 by LAPACK (``numpy.linalg.eigvalsh``; a measurement,
    not bit-exact across BLAS builds): with ``L_G = V diag(s) V^T`` and the
    eigenvectors of the non-zero eigenvalues (``s > n * 1e-12 * max s``),
    the eigenvalues of ``diag(s)^{-1/2} V^T L_H V diag(s)^{-1/2}``.
    """
    def lap(M):
        A = np.abs(M.reshape(M.shape[0], -1)).astype(np.float64)
        o, i = A.shape
        L = np.zeros((o + i, o + i))
        L[:o, o:] = -A
        L[o:, :o] = -A.T
        L[np.arange(o + i), np.arange(o + i)] = -L.sum(axis=1)
        return L
    LG, LH = lap(_matrix(W)), lap(_matrix(W_H))
    s, V = np.linalg.eigh(LG)
    keep = s > LG.shape[0] * 1e-12 * max(s.max(), 0.0)
    if not keep.any():
        return 0.0
    P = V[:, keep] / np.sqrt(s[keep])
    lam = np.linalg.eigvalsh(P.T @ LH @ P)
    return float(np.max(np.abs(lam - 1.0)))


def _laplacian_parts(A):
    """(CSR adjacency + degrees, number of connected components) of |A|."""
    rows, cols, w, deg = _graph(A)
    o, n = A.shape[0], A.shape[0] + A.shape[1]
    u, v = rows, o + cols
    indptr, nbr, ww = _csr(n, u, v, w)
    n_comp = _components(n, u, v)[0]
    return (indptr, nbr, ww, deg), int(n_comp)


def _orthonormal_add(basis, x):
    """Append x to the Euclidean-orthonormal ``basis`` (Gram-Schmidt twice, sequential
    dots); False when x is (numerically) in its span."""
    norm0 = math.sqrt(_k.sequential_dot(x, x))
    if not norm0 > 0:
        return False
    for _ in range(2):
        for b in basis:
            x = x - _k.sequential_dot(b, x) * b
    norm = math.sqrt(_k.sequential_dot(x, x))
    if not norm > 1e-10 * norm0:
        return False
    basis.append(x / norm)
    return True


def spectral_error_estimate(W, W_H, *, n_vectors=4, steps=6, seed=0, cg_tol=1e-10,
                            cg_max_iter=None):
    """Estimate of :func:`spectral_error` for large layers: a *lower bound* on the
    true ``max |lambda - 1|``, from test vectors, without any dense n x n matrix.

    Every test vector x gives ``|x^T L_H x / x^T L_G x - 1| <= eps_true``
    (L of |W| and of |W_H|, bipartite as in the module docstring), so the
    maximum over test vectors is a lower bound of the achieved epsilon.  The
    test vectors:

    1. if |W_H|'s graph has more connected components than |W|'s (a
       vertex or a block cut off by the sampling), some x has
       ``x^T L_H x = 0 < x^T L_G x``: lambda = 0 exactly and the estimate is
       at least 1;
    2. a block Krylov space of ``S = L_G^+ L_H``: ``n_vectors`` starting
       vectors ``x0 = g.standard_normal(n)`` in turn
       (``g = numpy.random.default_rng(seed)``, a generator of its own, so
       the caller's ``rng`` is never touched) and, from each, ``steps``
       products by S (``L_G^+`` applied by the conjugate gradient of the
       sparse Laplacian, the solver of the JL sketch: tolerance ``cg_tol``,
       at most ``cg_max_iter`` iterations, default 10 n); each new vector is
       orthonormalised against the basis (Gram-Schmidt twice);
    3. Rayleigh-Ritz on that space: with V the basis,
       ``Gg = V^T L_G V`` and ``Hh = V^T L_H V`` (sequential sums), the
       generalised eigenvalues of (Hh, Gg) on the range of Gg (as
       :func:`spectral_error`, by LAPACK on a matrix of at most
       ``n_vectors * (steps + 1)`` rows).  Each is the ratio of an actual
       vector V c, so it lies in the spectrum's range; Lanczos' extremes
       approach both ends of the spectrum of S far faster than single
       vectors do.

    Cost: ``n_vectors * steps`` sparse solves and ``2 n_vectors (steps + 1)``
    sparse products; O(nnz(W) + n n_vectors steps) memory.  Float64; the
    quadratic forms are sequential sums (:mod:`refcomp.prune._spectral_kernels`);
    a measurement (the small eigenvalue problem is LAPACK's, the value
    depends on the solver's tolerance), not a bit-exact result.

    Parameters
    ----------
    W, W_H : ndarray float32/float64 of the same shape ((out, in), more axes:
        the (out, rest) view), finite; W_H is normally spectral_sparsify's W
    n_vectors : int >= 0 (0: the bound of (1) alone, 1.0 or 0.0)
    steps : int >= 0
    seed : int >= 0, the test vectors' seed
    cg_tol, cg_max_iter : the solver's stop rule

    Returns
    -------
    float, >= 0; 0.0 when W has no non-zero.
    """
    A, AH = _matrix(W), _matrix(W_H)
    if AH.shape != A.shape:
        raise ShapeError(f"W_H must have W's shape {W.shape}, got {describe(W_H)}")
    n_vectors = check_int("n_vectors", n_vectors, lo=0)
    steps = check_int("steps", steps, lo=0)
    seed = check_int("seed", seed, lo=0)
    n = A.shape[0] + A.shape[1]
    iters = 10 * n if cg_max_iter is None else check_int("cg_max_iter", cg_max_iter, lo=1)
    csr_g, comp_g = _laplacian_parts(A)
    if csr_g[2].size == 0:
        return 0.0
    csr_h, comp_h = _laplacian_parts(AH)
    eps = 1.0 if comp_h > comp_g else 0.0
    gen = np.random.default_rng(seed)
    basis = []
    for _ in range(n_vectors):
        x = gen.standard_normal(n)
        for step in range(steps + 1):
            if not _orthonormal_add(basis, x) or step == steps:
                break
            x, _ = _k.laplacian_cg(*csr_g, _k.laplacian_matvec(*csr_h, basis[-1]),
                                   float(cg_tol), iters)
    if not basis:
        return eps
    LG = [_k.laplacian_matvec(*csr_g, b) for b in basis]
    LH = [_k.laplacian_matvec(*csr_h, b) for b in basis]
    m = len(basis)
    Gg = np.array([[_k.sequential_dot(basis[i], LG[j]) for j in range(m)] for i in range(m)])
    Hh = np.array([[_k.sequential_dot(basis[i], LH[j]) for j in range(m)] for i in range(m)])
    Gg, Hh = (Gg + Gg.T) / 2, (Hh + Hh.T) / 2
    sg, U = np.linalg.eigh(Gg)
    keep = sg > m * 1e-12 * max(sg.max(), 0.0)
    if keep.any():
        P = U[:, keep] / np.sqrt(sg[keep])
        lam = np.linalg.eigvalsh(P.T @ Hh @ P)
        eps = max(eps, float(np.max(np.abs(lam - 1.0))))
    return eps


def spectral_sparsify(W, *, n_samples=None, epsilon=None, rng, method="auto",
                      exact_max_nodes=1024, jl_dim=None, cg_tol=1e-10, cg_max_iter=None,
                      check_vectors=4, check_seed=0):
    """Spectral sparsifier of a dense layer by effective-resistance sampling.

    Parameters
    ----------
    W : ndarray float32/float64, (out, in) (more axes: the (out, rest) matrix
        view in C order), finite
    n_samples : int >= 1, optional
        q, the number of edge samples (with replacement).
    epsilon : float > 0, optional
        Instead of ``n_samples``: q = :func:`theorem_samples` (n vertices, eps).
        Exactly one of the two is required.
    rng : numpy.random.Generator
        The only source of randomness (the samples, and the sketch of "jl").
    method, exact_max_nodes, jl_dim, cg_tol, cg_max_iter
        How the resistances are obtained (:func:`effective_resistances`).
    check_vectors : int >= 0 or None, default 4
        Above ``exact_max_nodes`` vertices, the ``n_vectors`` of
        :func:`spectral_error_estimate` (with its default 6 Krylov steps,
        ``cg_tol`` and ``cg_max_iter``); None skips the
        estimate.  No effect on smaller graphs (exact value).
    check_seed : int >= 0, default 0
        The estimate's test vectors come from
        ``numpy.random.default_rng(check_seed)``, never from ``rng``: the
        sample, and the state ``rng`` is left in, do not depend on the check.

    Returns
    -------
    SpectralSparsified
        ``W`` (sampled entries, sign kept, weight ``c_e w_e / (q p_e)``),
        ``mask``, ``nnz``, ``n_samples``, ``method``, ``resistances``,
        ``epsilon_achieved`` and ``epsilon_kind`` (exact up to
        ``exact_max_nodes`` vertices, a lower-bound estimate above).
        Arithmetic and sampling in the module docstring; the same ``rng``
        state gives the same bits.

    Raises
    ------
    ParameterError
        both or neither of n_samples / epsilon, epsilon <= 0, n_samples < 1,
        non-finite W, a missing rng, an unknown method.
    ShapeError, DTypeError
        W not a float32/float64 array of at least 2 dimensions.
    """
    A = _matrix(W)
    if not isinstance(rng, np.random.Generator):
        raise ParameterError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    if (n_samples is None) == (epsilon is None):
        raise ParameterError("give exactly one of n_samples and epsilon")
    n = A.shape[0] + A.shape[1]
    q = theorem_samples(n, epsilon) if epsilon is not None else \
        check_int("n_samples", n_samples, lo=1)
    if check_vectors is not None:
        check_int("check_vectors", check_vectors, lo=0)
    check_int("check_seed", check_seed, lo=0)
    R, used = effective_resistances(W, method=method, exact_max_nodes=exact_max_nodes,
                                    rng=rng, jl_dim=jl_dim, cg_tol=cg_tol,
                                    cg_max_iter=cg_max_iter)
    flat_w = np.abs(A.astype(np.float64)).reshape(-1)
    t = flat_w * R.reshape(-1)
    t[~(t > 0)] = 0.0
    cdf = np.cumsum(t)
    S = cdf[-1] if cdf.size else 0.0
    out = np.zeros(A.size, dtype=np.float64)
    counts = np.zeros(A.size, dtype=np.int64)
    if S > 0:
        u = rng.random(q)
        picks = np.minimum(np.searchsorted(cdf, u * S, side="right"), A.size - 1)
        counts = np.bincount(picks, minlength=A.size)
        hit = counts > 0
        out[hit] = counts[hit] * flat_w[hit] / (q * (t[hit] / S))
    W_H = (np.sign(A.reshape(-1)) * out.astype(W.dtype)).reshape(W.shape).astype(W.dtype)
    W_H[W_H == 0] = 0                               # +0.0 where nothing was sampled
    mask = (counts > 0).reshape(W.shape)
    if n <= exact_max_nodes:
        eps, kind = spectral_error(W, W_H), "exact"
    elif check_vectors is None:
        eps, kind = None, None
    else:
        eps = spectral_error_estimate(W, W_H, n_vectors=check_vectors, seed=check_seed,
                                      cg_tol=cg_tol, cg_max_iter=cg_max_iter)
        kind = "lower_bound"
    return SpectralSparsified(W_H, mask, int(mask.sum()), int(q), used, R, eps, kind)
