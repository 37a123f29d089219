"""PCA of the filters of a layer with an energy threshold (seed 004:
Fernandez Brillet et al., "Compression adaptative des CNNs par réduction de
la dimensionnalité", §3 and §3.1).

The N filters of a conv weight (or the N rows of a dense weight) are the
rows of X (N x d); with mu their mean and X_c = X - mu, C_X = X_c^T X_c =
P D P^T; the coordinates are Y_c = X_c P; keeping the Q leading
eigenvectors, X^ = Y_cQ P_Q^T + mu.  :class:`PCAWeight` stores P_Q (Q x d),
Y_cQ (N x Q) and mu (d), N Q + Q d + d parameters.
"""

import numpy as np

from .._errors import DecodeError, FormatError, ParameterError, ShapeError
from .._validate import check_choice, describe
from ..layers import conv2d
from ..metrics import parameter_mse
from ..weights import register_encoding
from ..weights._h5util import write_dataset
from ._common import (check_int_attr, check_rank, check_weight_shape, energy_rank,
                      exact_column_mean, float_weight, rank_tolerance, read_array, seq_matmul,
                      svd_desc)
from ._factorized import FORWARDS, FactorizedWeight, check_forward_attr

__all__ = ["PCAWeight", "pca_filters", "ENCODING"]

ENCODING = "pca"


class PCAWeight(FactorizedWeight):
    """A weight stored as PCA basis, coordinates and mean (seed 004 §3).

    Attributes
    ----------
    basis : ndarray (Q, d), P_Q^T: one principal direction per row.
    coords : ndarray (N, Q), Y_cQ: the coordinates of each filter.
    mean : ndarray (d,), mu, the mean filter.
    weight_shape : (N, C, kh, kw) for a conv weight, (N, d) for a dense one;
        the flattening order is C order of a filter (channel, row, column).
    forward : "reconstruct" (default) or "factorized": the pass the layer
        hooks run.
    info : dict of diagnostics (not stored): ``eigenvalues`` (float64, the
        full decreasing spectrum D), ``energy``, ``mse`` (reconstruction
        MSE of the stored weight against the original), ``n_components``.
    dtype : float32 or float64, the dtype of the three arrays.

    Arithmetic
    ----------
    ``dequantize()``: ``X^[i, e] = (sum_q coords[i, q] * basis[q, e]) + mean[e]``
    in float64, the sum sequential over q = 0..Q-1 from +0.0 (products
    exact for float32 factors), then ``+ mean[e]``, one rounding
    (half-even) to ``dtype``; reshaped to ``weight_shape``.

    The ``"factorized"`` pass (the operation count of the paper's §4): for a
    conv weight, convolve ``x`` with the Q basis filters and with ``mean``
    (one map per group), then combine the Q maps with a 1x1 convolution by
    the coordinates, add the mean map and the bias.  ``precision=
    "reference"``: the two convolutions are refcomp's reference
    accumulation in float64 (not rounded), the combination sums
    ``coords[o, q] * T_q`` sequentially over q in float64, then ``+ mean
    map``, ``+ b[o]``, one rounding to ``dtype``.  ``"fast"``: the same
    three convolutions with ``precision="fast"`` (BLAS in ``dtype``), the
    mean map added last.  Dense weights: the same with ``x @ basis.T``,
    ``x @ mean`` and ``h @ coords.T``.  Bound: :meth:`error_bound`
    (roundings per term: reconstruct/reference ``Q + n + 4`` float64 and 2
    in ``dtype``; reconstruct/fast ``Q + 2`` and ``n + 3``;
    factorized/reference ``n + Q + 5`` and 1; factorized/fast 0 and
    ``n + Q + 5``; ``n`` = fan-in).
    """

    __slots__ = ("basis", "coords", "mean", "_wshape", "_dtype", "forward", "info")
    encoding = ENCODING

    def __init__(self, basis, coords, mean, weight_shape, *, forward="reconstruct",
                 info=None):
        check_choice("forward", forward, FORWARDS)
        self.basis, self.coords, self.mean = basis, coords, mean
        self._wshape = tuple(int(s) for s in weight_shape)
        self._dtype = np.dtype(mean.dtype)
        n, d = self._wshape[0], int(np.prod(self._wshape[1:]))
        q = basis.shape[0]
        if (basis.shape != (q, d) or coords.shape != (n, q) or mean.shape != (d,)
                or not basis.dtype == coords.dtype == mean.dtype):
            raise ShapeError(f"PCAWeight: basis {describe(basis)}, coords {describe(coords)} "
                             f"and mean {describe(mean)} do not fit weight_shape "
                             f"{self._wshape} (expected ({q}, {d}), ({n}, {q}), ({d},), "
                             f"one dtype)")
        self.forward = forward
        self.info = dict(info or {})

    @property
    def n_components(self):
        """Q, the number of principal components kept."""
        return int(self.basis.shape[0])

    @property
    def mse(self):
        """Reconstruction MSE against the original weight (from ``info``; None after loading)."""
        return self.info.get("mse")

    def stored_params(self):
        """``N Q + Q d + d`` (seed 004: P_Q, Y_cQ and mu)."""
        return int(self.coords.size + self.basis.size + self.mean.size)

    def _copy(self):
        return PCAWeight(self.basis, self.coords, self.mean, self._wshape,
                         forward=self.forward, info=self.info)

    def __repr__(self):
        return (f"PCAWeight(weight_shape={self._wshape}, Q={self.n_components}, "
                f"dtype={self._dtype}, forward={self.forward!r})")

    def dequantize(self):
        """X^ = Y_cQ P_Q^T + mu (class docstring for the order), shape ``weight_shape``."""
        exact = self._dtype == np.float32
        acc = seq_matmul(self.coords, self.basis, exact_products=exact)
        acc += self.mean.astype(np.float64)[None, :]
        return acc.astype(self._dtype).reshape(self._wshape)

    def _abs_weight64(self):
        R = seq_matmul(np.abs(self.coords), np.abs(self.basis))
        R += np.abs(self.mean.astype(np.float64))[None, :]
        return R.reshape(self._wshape)

    def _rank_terms(self):
        return self.n_components + 1

    def _counts(self, forward, precision, n):
        q = self.n_components
        if forward == "reconstruct":
            return (q + n + 4, 2) if precision == "reference" else (q + 2, n + 3)
        return (n + q + 5, 1) if precision == "reference" else (0, n + q + 5)

    # -- factorized passes ------------------------------------------------------------
    def _factor_linear(self, x, b, precision):
        if precision == "fast":
            y = (x @ self.basis.T) @ self.coords.T
            y += (x @ self.mean)[:, None]
            if b is not None:
                y += b
            return y
        exact = x.dtype == np.float32
        h = seq_matmul(x, self.basis.T, exact_products=exact)
        m = seq_matmul(x, self.mean[:, None], exact_products=exact)
        acc = seq_matmul(h, self.coords.T)
        acc += m
        if b is not None:
            acc += b.astype(np.float64)[None, :]
        return acc.astype(x.dtype)

    def _factor_conv(self, xc, b, stride, pads, dilation, groups, precision):
        n_out, cg, kh, kw = self._wshape
        q, og = self.n_components, n_out // groups
        kb = np.tile(self.basis.reshape(q, cg, kh, kw), (groups, 1, 1, 1))
        km = np.tile(self.mean.reshape(1, cg, kh, kw), (groups, 1, 1, 1))
        kw_ = dict(stride=stride, padding=pads, dilation=dilation, groups=groups)
        if precision == "fast":
            m = conv2d(xc, km, None, precision="fast", **kw_)
            if q:
                T = conv2d(xc, kb, None, precision="fast", **kw_)
                y = conv2d(T, np.ascontiguousarray(self.coords.reshape(n_out, q, 1, 1)), b,
                           groups=groups, precision="fast")
            else:
                y = np.zeros((xc.shape[0], n_out) + m.shape[2:], xc.dtype)
                if b is not None:
                    y += b[None, :, None, None]
            y5 = y.reshape(y.shape[0], groups, og, *y.shape[2:])
            y5 += m[:, :, None]
            return y
        x64 = xc.astype(np.float64)
        m = conv2d(x64, km.astype(np.float64), None, **kw_)      # float64 accumulators
        acc = np.zeros((xc.shape[0], n_out) + m.shape[2:], np.float64)
        a5 = acc.reshape(acc.shape[0], groups, og, *acc.shape[2:])
        if q:
            T = conv2d(x64, kb.astype(np.float64), None, **kw_)
            T5 = T.reshape(T.shape[0], groups, q, *T.shape[2:])
            Y3 = self.coords.astype(np.float64).reshape(groups, og, q)
            for k in range(q):          # sequential over q, as the class docstring says
                a5 += Y3[None, :, :, k, None, None] * T5[:, :, None, k]
        a5 += m[:, :, None]
        if b is not None:
            acc += b.astype(np.float64)[None, :, None, None]
        return acc.astype(xc.dtype)

    # -- file -------------------------------------------------------------------------
    def to_hdf5(self, group):
        group.attrs["encoding"] = ENCODING
        group.attrs["weight_shape"] = np.asarray(self._wshape, np.int64)
        group.attrs["n_components"] = self.n_components
        group.attrs["forward"] = self.forward
        write_dataset(group, "basis", self.basis)
        write_dataset(group, "coords", self.coords)
        write_dataset(group, "mean", self.mean)

    @classmethod
    def from_hdf5(cls, group, *, max_elements=1 << 31):
        try:
            a = group.attrs
            shape = check_weight_shape(a["weight_shape"])
            q = check_int_attr("n_components", a["n_components"])
            forward = check_forward_attr(a["forward"])
        except KeyError as exc:
            raise FormatError(f"{group.name}: bad pca group (missing {exc})") from None
        if len(shape) not in (2, 4):
            raise DecodeError(f"{group.name}: weight_shape {shape} is neither dense nor conv2d")
        mean = read_array(group, "mean", ndim=1, max_elements=max_elements)
        if mean.dtype not in (np.float32, np.float64):
            raise DecodeError(f"{group.name}/mean: dtype {mean.dtype} is not float32/float64")
        basis = read_array(group, "basis", dtype=mean.dtype, ndim=2, max_elements=max_elements)
        coords = read_array(group, "coords", dtype=mean.dtype, ndim=2,
                            max_elements=max_elements)
        n, d = shape[0], int(np.prod(shape[1:]))
        if basis.shape != (q, d) or coords.shape != (n, q) or mean.shape != (d,):
            raise DecodeError(f"{group.name}: basis {basis.shape}, coords {coords.shape}, "
                              f"mean {mean.shape} inconsistent with weight_shape {shape} and "
                              f"Q = {q}")
        return cls(basis, coords, mean, shape, forward=forward)


register_encoding(ENCODING, PCAWeight)


def pca_filters(W, *, energy=None, n_components=None, forward="reconstruct"):
    """PCA of the filters (rows) of a conv or dense weight (seed 004 §3).

    Parameters
    ----------
    W : ndarray (N, C, kh, kw) conv weight (OIHW) or (N, d) dense weight
        (out, in); float32 or float64, finite, non-empty.  Filter i is
        ``W[i].reshape(-1)`` (C order: channel, kernel row, column), the
        row X_i of X (N x d, d = C kh kw).
    energy : float in (0, 1], optional
        Keep the smallest Q whose eigenvalues carry at least this fraction
        of their sum (:func:`refcomp.decompose.energy_rank`: exact
        comparison, 0.9 read as 9/10, ties not extended, Q = 0 for an
        all-zero spectrum).
    n_components : int in [1, min(N, d)], optional
        Keep exactly this many components instead.  Exactly one of
        ``energy`` and ``n_components`` must be given.
    forward : {"reconstruct", "factorized"}
        The pass the layer hooks of the result run (see :class:`PCAWeight`).

    Returns
    -------
    PCAWeight
        basis P_Q^T (Q, d), coords Y_cQ (N, Q), mean mu (d,), all of
        ``W.dtype``; ``info``: ``eigenvalues`` (the min(N, d) eigenvalues
        of C_X, decreasing), ``energy``, ``mse``, ``n_components``.

    Arithmetic
    ----------
    1. X in float64 (exact).  mu = exactly rounded column sums
       (``math.fsum``) divided by N in float64.  X_c = X - mu (float64).
    2. The eigendecomposition C_X = X_c^T X_c = P D P^T is obtained from the
       thin SVD X_c = U S P^T (LAPACK gesdd through ``numpy.linalg.svd``;
       D = S^2, the same P without squaring the condition number):
       eigenvalues in decreasing order (equal ones in LAPACK's order; the
       basis of a repeated eigenvalue's eigenspace is LAPACK's, so X^ is
       unique only when lambda_Q > lambda_{Q+1}).  Sign convention: every
       eigenvector (column of P) has its entry of largest magnitude
       positive, ties to the lowest index.  Singular values at or below
       NumPy's rank cutoff ``s_max * max(N, d) * eps`` count as zero
       eigenvalues (so that energy 1 keeps the numerical rank, not the
       rounding noise).  Deterministic for a given machine, LAPACK and
       thread count.
    3. Y_c = X_c P_Q in float64, each entry summed sequentially over the d
       coordinates from +0.0.
    4. P_Q, Y_cQ and mu are rounded once (half-even) to ``W.dtype``.
    5. ``mse`` = mean over N d entries of ``(X^ - X)^2`` with X^ the stored
       weight's ``dequantize()`` (squares in float64, exactly rounded sum).

    Raises
    ------
    ParameterError
        both or neither of ``energy`` / ``n_components``; ``energy``
        outside (0, 1]; ``n_components`` outside [1, min(N, d)]; non-finite W.
    ShapeError, DTypeError
        W not 2-D/4-D, empty, or not float32/float64.
    """
    float_weight("W", W, (2, 4))
    if (energy is None) == (n_components is None):
        raise ParameterError("pca_filters needs exactly one of energy= and n_components=")
    check_choice("forward", forward, FORWARDS)
    n = W.shape[0]
    X = W.reshape(n, -1).astype(np.float64)
    d = X.shape[1]
    mu = exact_column_mean(X)
    Xc = X - mu[None, :]
    _, s, Vt = svd_desc(Xc)
    s = np.where(s > rank_tolerance(s, Xc.shape), s, 0.0)
    lam = s * s
    if energy is not None:
        q = energy_rank(lam, energy)
    else:
        q = check_rank("n_components", n_components, min(n, d),
                       f"at most min(N, d) = min({n}, {d}) components for W {describe(W)}")
    P = Vt[:q]                                    # (Q, d): P_Q^T
    Y = seq_matmul(Xc, P.T)                       # (N, Q)
    dt = W.dtype
    w = PCAWeight(P.astype(dt), Y.astype(dt), mu.astype(dt), W.shape, forward=forward)
    w.info.update(eigenvalues=lam, energy=energy, n_components=q,
                  mse=parameter_mse([W], [w.dequantize()]))
    return w
