"""Kernels of the spectral sparsifier (Numba) and their plain Python twins.

* :func:`grounded_inverse`: the inverse of a symmetric positive definite
  float64 matrix (a Laplacian with one vertex per connected component
  removed) by a Cholesky factorisation ``A = C C^T`` (C lower), then
  ``X = C^{-1}`` by forward substitution column by column, then
  ``A^{-1} = X^T X``.  Every sum is sequential in increasing index from the
  first term, float64, no FMA contraction; parallel only over independent
  rows/columns, so the bits do not depend on the thread count.
* :func:`laplacian_matvec`: ``L x = deg * x - A x`` (the adjacency sum of a
  row sequential in CSR order); :func:`sequential_dot`: ``sum a[i] b[i]``
  sequential in index order from +0.0 (both used by
  :func:`refcomp.prune.spectral.spectral_error_estimate`);
* :func:`laplacian_cg`: Jacobi-preconditioned conjugate gradient on a graph
  Laplacian in CSR form (``L x = deg * x - A x``; the adjacency sum of a row
  sequential in CSR order), a fixed sequence of float64 operations: dot
  products sequential in vertex order, stop when ``||r|| <= tol * ||b||`` or
  after ``max_iter`` iterations.
"""

import math

import numba
import numpy as np

__all__ = ["grounded_inverse", "grounded_inverse_twin", "laplacian_cg", "laplacian_cg_twin",
           "laplacian_matvec", "laplacian_matvec_twin", "sequential_dot", "sequential_dot_twin"]


@numba.njit(cache=True)
def _cholesky(a, c):
    n = a.shape[0]
    for j in range(n):
        s = a[j, j]
        for k in range(j):
            s -= c[j, k] * c[j, k]
        if not s > 0.0:
            return j
        c[j, j] = math.sqrt(s)
        for i in range(j + 1, n):
            t = a[i, j]
            for k in range(j):
                t -= c[i, k] * c[j, k]
            c[i, j] = t / c[j, j]
    return -1


@numba.njit(cache=True, parallel=True)
def _tri_inverse(c, x):
    n = c.shape[0]
    for col in numba.prange(n):
        for i in range(col, n):
            t = 1.0 if i == col else 0.0
            for k in range(col, i):
                t -= c[i, k] * x[k, col]
            x[i, col] = t / c[i, i]


@numba.njit(cache=True, parallel=True)
def _gram(x, g):
    n = x.shape[0]
    for a in numba.prange(n):
        for b in range(n):
            s = 0.0
            for k in range(max(a, b), n):
                s += x[k, a] * x[k, b]
            g[a, b] = s


def grounded_inverse(a):
    """``(inverse, failed_row)``: failed_row is -1, or the pivot index where
    the matrix proved not positive definite (inverse then None)."""
    n = a.shape[0]
    c = np.zeros((n, n), dtype=np.float64)
    bad = _cholesky(np.ascontiguousarray(a), c)
    if bad >= 0:
        return None, int(bad)
    x = np.zeros((n, n), dtype=np.float64)
    _tri_inverse(c, x)
    g = np.empty((n, n), dtype=np.float64)
    _gram(x, g)
    return g, -1


def grounded_inverse_twin(a):
    """Twin of :func:`grounded_inverse` (Python floats, the same loops)."""
    n = a.shape[0]
    A = a.tolist()
    C = [[0.0] * n for _ in range(n)]
    for j in range(n):
        s = A[j][j]
        for k in range(j):
            s -= C[j][k] * C[j][k]
        if not s > 0.0:
            return None, j
        C[j][j] = math.sqrt(s)
        for i in range(j + 1, n):
            t = A[i][j]
            for k in range(j):
                t -= C[i][k] * C[j][k]
            C[i][j] = t / C[j][j]
    X = [[0.0] * n for _ in range(n)]
    for col in range(n):
        for i in range(col, n):
            t = 1.0 if i == col else 0.0
            for k in range(col, i):
                t -= C[i][k] * X[k][col]
            X[i][col] = t / C[i][i]
    G = [[0.0] * n for _ in range(n)]
    for a_ in range(n):
        for b in range(n):
            s = 0.0
            for k in range(max(a_, b), n):
                s += X[k][a_] * X[k][b]
            G[a_][b] = s
    return np.array(G, dtype=np.float64).reshape(n, n), -1


@numba.njit(cache=True)
def _matvec(indptr, nbr, wts, deg, x, out):
    for v in range(deg.shape[0]):
        s = 0.0
        for p in range(indptr[v], indptr[v + 1]):
            s += wts[p] * x[nbr[p]]
        out[v] = deg[v] * x[v] - s


@numba.njit(cache=True)
def _dot(a, b):
    s = 0.0
    for i in range(a.shape[0]):
        s += a[i] * b[i]
    return s


@numba.njit(cache=True)
def _cg(indptr, nbr, wts, deg, b, tol, max_iter, x):
    n = b.shape[0]
    r = b.copy()
    z = np.empty(n)
    for i in range(n):
        x[i] = 0.0
        z[i] = r[i] / deg[i] if deg[i] > 0.0 else r[i]
    p = z.copy()
    q = np.empty(n)
    rz = _dot(r, z)
    stop = tol * math.sqrt(_dot(b, b))
    it = 0
    while it < max_iter and math.sqrt(_dot(r, r)) > stop:
        _matvec(indptr, nbr, wts, deg, p, q)
        pq = _dot(p, q)
        if not pq > 0.0:
            break
        alpha = rz / pq
        for i in range(n):
            x[i] += alpha * p[i]
            r[i] -= alpha * q[i]
            z[i] = r[i] / deg[i] if deg[i] > 0.0 else r[i]
        rz_new = _dot(r, z)
        beta = rz_new / rz
        rz = rz_new
        for i in range(n):
            p[i] = z[i] + beta * p[i]
        it += 1
    return it


def laplacian_matvec(indptr, nbr, wts, deg, x):
    """``L x`` of the CSR Laplacian (module docstring), float64."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    out = np.empty_like(x)
    _matvec(indptr, nbr, wts, deg, x, out)
    return out


def _dot_list(u, v):
    """Sequential ``sum u[i] * v[i]`` of two lists of Python floats (the twins' dot)."""
    s = 0.0
    for a, b in zip(u, v):
        s += a * b
    return s


def _matvec_list(ip, nb, w, d, v):
    """``L v`` on lists, row by row in CSR order (the twins' Laplacian product)."""
    out = []
    for i in range(len(d)):
        s = 0.0
        for p in range(ip[i], ip[i + 1]):
            s += w[p] * v[nb[p]]
        out.append(d[i] * v[i] - s)
    return out


def laplacian_matvec_twin(indptr, nbr, wts, deg, x):
    """Twin of :func:`laplacian_matvec` (Python floats, the same operations)."""
    return np.array(_matvec_list(indptr.tolist(), nbr.tolist(), wts.tolist(), deg.tolist(),
                                 x.tolist()), dtype=np.float64)


def sequential_dot(a, b):
    """``sum a[i] * b[i]`` of two float64 vectors, sequential from +0.0 (a Python float)."""
    return float(_dot(np.ascontiguousarray(a, dtype=np.float64),
                      np.ascontiguousarray(b, dtype=np.float64)))


def sequential_dot_twin(a, b):
    """Twin of :func:`sequential_dot`."""
    return _dot_list(a.tolist(), b.tolist())


def laplacian_cg(indptr, nbr, wts, deg, b, tol, max_iter):
    """``(x, iterations)`` of L x = b (module docstring)."""
    x = np.zeros(b.shape[0], dtype=np.float64)
    it = _cg(indptr, nbr, wts, deg, np.ascontiguousarray(b, dtype=np.float64), float(tol),
             int(max_iter), x)
    return x, int(it)


def laplacian_cg_twin(indptr, nbr, wts, deg, b, tol, max_iter):
    """Twin of :func:`laplacian_cg` (Python floats, the same operations)."""
    n = b.shape[0]
    ip, nb, w, d = indptr.tolist(), nbr.tolist(), wts.tolist(), deg.tolist()
    dot = _dot_list

    def matvec(v):
        return _matvec_list(ip, nb, w, d, v)

    r = b.tolist()
    x = [0.0] * n
    z = [r[i] / d[i] if d[i] > 0.0 else r[i] for i in range(n)]
    p = list(z)
    rz = dot(r, z)
    stop = tol * math.sqrt(dot(b.tolist(), b.tolist()))
    it = 0
    while it < max_iter and math.sqrt(dot(r, r)) > stop:
        q = matvec(p)
        pq = dot(p, q)
        if not pq > 0.0:
            break
        alpha = rz / pq
        for i in range(n):
            x[i] += alpha * p[i]
            r[i] -= alpha * q[i]
            z[i] = r[i] / d[i] if d[i] > 0.0 else r[i]
        rz_new = dot(r, z)
        beta = rz_new / rz
        rz = rz_new
        p = [z[i] + beta * p[i] for i in range(n)]
        it += 1
    return np.array(x, dtype=np.float64), it
