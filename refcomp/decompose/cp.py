"""CP (CANDECOMP/PARAFAC) decomposition of a conv kernel by alternating least
squares (Lebedev et al. 2015, "Speeding-up convolutional neural networks
using fine-tuned CP-decomposition"; FACTS.md §7.12; Lebedev et al. fit with
non-linear least squares, not read here; this is the ALS of tensorly's
``parafac``): K[t, s, i, j] ~ sum_r A[t, r] B[s, r] C[i, r] D[j, r]; the
layer becomes 1x1 conv S -> R, a depthwise kh x 1 conv, a depthwise 1 x kw
conv and a 1x1 conv R -> T."""

import numpy as np

from .._errors import DecodeError, FormatError, ParameterError, ShapeError
from .._validate import check_choice, check_int, describe
from ..layers import conv2d
from ..metrics import parameter_mse
from ..weights import register_encoding
from ..weights._h5util import write_dataset
from ._common import (check_rank, check_weight_shape, fix_signs, float_weight, read_array,
                      seq_matmul)
from ._factorized import FORWARDS, FactorizedWeight, check_forward_attr
from .tucker import unfold

__all__ = ["CPWeight", "cp", "ENCODING", "cp_init"]

ENCODING = "cp"
_NAMES = ("a_out", "b_in", "c_rows", "d_cols")


class CPWeight(FactorizedWeight):
    """A conv kernel stored as four CP factors (weights folded into ``a_out``).

    Attributes
    ----------
    a_out (T, R), b_in (S, R), c_rows (kh, R), d_cols (kw, R).
    forward : "reconstruct" or "factorized".
    info : ``rel_error``, ``mse``, ``rank``, ``n_iter``.

    Arithmetic
    ----------
    ``dequantize()``: ``K[t, s, i, j] = sum_r ((a[t, r] * b[s, r]) * c[i, r]) *
    d[j, r]`` in float64, products left to right, the sum sequential over r
    from +0.0, one rounding to ``dtype``.  ``"factorized"`` pass (groups =
    1): 1x1 conv S -> R (weight ``b.T``); depthwise kh x 1 conv (weight
    ``c``) with the layer's vertical stride, padding and dilation;
    depthwise 1 x kw conv (weight ``d``) with the horizontal ones; 1x1 conv
    R -> T (weight ``a``) with the bias.  Reference: every stage refcomp's
    reference conv in float64, one final rounding; fast: every stage in
    ``dtype`` with ``precision="fast"``.  Roundings per term
    (:meth:`error_bound`): reconstruct/reference ``R + n + 5`` float64 and 2
    in dtype; reconstruct/fast ``R + 3`` and ``n + 3``; factorized/reference
    ``S + kh + kw + R + 6`` and 1; factorized/fast 0 and ``S + kh + kw + R +
    6``.
    """

    __slots__ = ("a_out", "b_in", "c_rows", "d_cols", "_wshape", "_dtype", "forward", "info")
    encoding = ENCODING

    def __init__(self, a_out, b_in, c_rows, d_cols, *, forward="reconstruct", info=None):
        check_choice("forward", forward, FORWARDS)
        fs = (a_out, b_in, c_rows, d_cols)
        if (any(f.ndim != 2 for f in fs) or len({f.shape[1] for f in fs}) != 1
                or len({f.dtype for f in fs}) != 1):
            raise ShapeError("CPWeight: factors " + ", ".join(describe(f) for f in fs) +
                             " must be 2-D with the same number of columns and one dtype")
        self.a_out, self.b_in, self.c_rows, self.d_cols = fs
        self._wshape = tuple(int(f.shape[0]) for f in fs)
        self._dtype = np.dtype(a_out.dtype)
        self.forward = forward
        self.info = dict(info or {})

    @property
    def rank(self):
        return int(self.a_out.shape[1])

    def factors(self):
        return (self.a_out, self.b_in, self.c_rows, self.d_cols)

    def stored_params(self):
        """``R (T + S + kh + kw)``."""
        return int(sum(f.size for f in self.factors()))

    def _copy(self):
        return CPWeight(*self.factors(), forward=self.forward, info=self.info)

    def __repr__(self):
        return f"CPWeight(weight_shape={self._wshape}, rank={self.rank}, dtype={self._dtype})"

    @staticmethod
    def _reconstruct64(a, b, c, d):
        K = np.zeros((a.shape[0], b.shape[0], c.shape[0], d.shape[0]))
        for r in range(a.shape[1]):          # sequential over r
            K += ((a[:, r][:, None, None, None] * b[:, r][None, :, None, None])
                  * c[:, r][None, None, :, None]) * d[:, r][None, None, None, :]
        return K

    def dequantize(self):
        return self._reconstruct64(*[f.astype(np.float64) for f in self.factors()]) \
            .astype(self._dtype)

    def _abs_weight64(self):
        return self._reconstruct64(*[np.abs(f.astype(np.float64)) for f in self.factors()])

    def _rank_terms(self):
        return self.rank + 3

    def _counts(self, forward, precision, n):
        r = self.rank
        if forward == "reconstruct":
            return (r + n + 5, 2) if precision == "reference" else (r + 3, n + 3)
        k = self._wshape[1] + self._wshape[2] + self._wshape[3] + r + 6
        return (k, 1) if precision == "reference" else (0, k)

    def _factor_linear(self, *args):
        raise ParameterError("CPWeight is a conv2d weight")

    def _factor_conv(self, xc, b, stride, pads, dilation, groups, precision):
        if groups != 1:
            raise ParameterError(f"the factorized CP pass needs groups=1, got {groups} "
                                 "(forward='reconstruct' handles grouped convolutions)")
        r = self.rank
        (t, bo), (le, ri) = pads
        w1 = self.b_in.T.reshape(r, -1, 1, 1)
        wv = self.c_rows.T.reshape(r, 1, -1, 1)
        wh = self.d_cols.T.reshape(r, 1, 1, -1)
        w4 = self.a_out.reshape(-1, r, 1, 1)
        fast = precision == "fast"
        dt = xc.dtype if fast else np.float64
        kw = {"precision": "fast"} if fast else {}
        z = conv2d(xc.astype(dt, copy=False), np.ascontiguousarray(w1, dt), **kw)
        z = conv2d(z, np.ascontiguousarray(wv, dt), stride=(stride[0], 1),
                   padding=((t, bo), (0, 0)), dilation=(dilation[0], 1), groups=r, **kw)
        z = conv2d(z, np.ascontiguousarray(wh, dt), stride=(1, stride[1]),
                   padding=((0, 0), (le, ri)), dilation=(1, dilation[1]), groups=r, **kw)
        z = conv2d(z, np.ascontiguousarray(w4, dt), None if b is None else b.astype(dt), **kw)
        return z.astype(xc.dtype, copy=False)

    def to_hdf5(self, group):
        group.attrs["encoding"] = ENCODING
        group.attrs["weight_shape"] = np.asarray(self._wshape, np.int64)
        group.attrs["rank"] = self.rank
        group.attrs["forward"] = self.forward
        for name, f in zip(_NAMES, self.factors()):
            write_dataset(group, name, f)

    @classmethod
    def from_hdf5(cls, group, *, max_elements=1 << 31):
        try:
            shape = check_weight_shape(group.attrs["weight_shape"])
            r = int(group.attrs["rank"])
            forward = check_forward_attr(group.attrs["forward"])
        except KeyError as exc:
            raise FormatError(f"{group.name}: bad cp group (missing {exc})") from None
        fs = [read_array(group, n, ndim=2, max_elements=max_elements) for n in _NAMES]
        if fs[0].dtype not in (np.float32, np.float64) or any(f.dtype != fs[0].dtype for f in fs):
            raise DecodeError(f"{group.name}: factors must share one float32/float64 dtype")
        if len(shape) != 4 or any(f.shape != (s, r) for f, s in zip(fs, shape)):
            raise DecodeError(f"{group.name}: factors {[f.shape for f in fs]} inconsistent "
                              f"with weight_shape {shape} and rank {r}")
        return cls(*fs, forward=forward)


register_encoding(ENCODING, CPWeight)


def cp_init(K, rank, rng):
    """tensorly's ``init="svd"`` for ``parafac`` (FACTS.md §7.12), in float64.

    Factor n = the ``rank`` leading left singular vectors of the mode-n
    unfolding (LAPACK gesdd, largest-magnitude entry positive); factor 0
    scaled by the singular values; when a mode is shorter than ``rank``, the
    missing columns are ``rng.random((I_n, rank - I_n))`` (uniform [0, 1)),
    drawn for the modes in order.
    """
    factors = []
    for mode in range(K.ndim):
        A = unfold(K, mode)
        U, s, _ = np.linalg.svd(A, full_matrices=False)
        k = min(rank, U.shape[1])
        U = fix_signs(U[:, :k], axis=0)[0]
        if mode == 0:
            U = U * s[None, :k]
        if U.shape[1] < rank:
            U = np.concatenate([U, rng.random((U.shape[0], rank - U.shape[1]))], axis=1)
        factors.append(U)
    return factors


def _khatri_rao(mats):
    """Column-wise Kronecker product, rows in C order over the given factors."""
    out = mats[0]
    for m in mats[1:]:
        out = (out[:, None, :] * m[None, :, :]).reshape(-1, out.shape[1])
    return out


def _sym_solve(V, Mt):
    """Solve V X = Mt for symmetric positive semi-definite V: LAPACK eigh,
    eigenvalues <= 1e-12 * max dropped (minimum-norm solution)."""
    lam, Q = np.linalg.eigh(V)
    keep = lam > 1e-12 * max(lam[-1], 0.0)
    if not np.any(keep):
        return np.zeros_like(Mt)
    Qk = Q[:, keep]
    return seq_matmul(Qk, seq_matmul(Qk.T, Mt) / lam[keep][:, None])


def cp(W, rank, *, rng, n_iter_max=100, init=None, forward="reconstruct"):
    """CP decomposition of a conv kernel by alternating least squares.

    Parameters
    ----------
    W : ndarray (T, S, kh, kw) OIHW, float32/float64, finite, non-empty.
    rank : int >= 1
        R; at most ``T S kh kw`` (any larger rank is pointless).
    rng : numpy.random.Generator
        Draws the initial columns of modes shorter than ``rank``
        (:func:`cp_init`); not used otherwise.
    n_iter_max : int >= 0
        ALS sweeps (exactly this many; each sweep updates the factors of
        modes 0, 1, 2, 3 in order, as tensorly's ``parafac`` with ``tol=0``).
    init : list of four float64 arrays, optional
        Initial factors instead of :func:`cp_init` (copied).
    forward : {"reconstruct", "factorized"}

    Returns
    -------
    CPWeight
        Factors rounded once (half-even) to ``W.dtype``; ``info["rel_error"]``
        of the stored factors.

    Arithmetic
    ----------
    In float64.  Update of mode n: ``V = *_{m != n} (F_m^T F_m)`` (Hadamard
    product of the Gram matrices, in mode order), ``M = unfold_n(W) KR`` with
    ``KR`` the Khatri-Rao product of the other factors in mode order (C
    order, the layout of :func:`refcomp.decompose.tucker.unfold`), ``F_n =
    (V^+ M^T)^T`` with the pseudo-inverse of :func:`_sym_solve` (LAPACK
    eigh); Gram matrices and products by fixed-order float64 sums.
    Deterministic for a given machine, LAPACK, thread count and ``rng``
    state.

    Raises
    ------
    ParameterError
        rank below 1 or above T S kh kw; a bad n_iter_max, rng or init; a
        dense weight.
    ShapeError, DTypeError
        W not a non-empty 4-D float32/float64 array.
    """
    float_weight("W", W, (2, 4))
    if W.ndim != 4:
        raise ParameterError(f"cp decomposes conv weights (T, S, kh, kw); W is {describe(W)}: "
                             "use svd_compress or pca_filters for a dense one")
    check_choice("forward", forward, FORWARDS)
    rank = check_rank("rank", rank, W.size, f"at most T S kh kw = {W.size} for W "
                                            f"{describe(W)}")
    n_iter_max = check_int("n_iter_max", n_iter_max, lo=0)
    if not isinstance(rng, np.random.Generator):
        raise ParameterError(f"cp needs rng=numpy.random.Generator, got {type(rng).__name__}")
    K = W.astype(np.float64)
    if init is None:
        factors = cp_init(K, rank, rng)
    else:
        factors = [np.array(f, dtype=np.float64) for f in init]
        if len(factors) != 4 or any(f.shape != (s, rank) for f, s in zip(factors, K.shape)):
            raise ParameterError(f"init must be four factors of shapes "
                                 f"{[(s, rank) for s in K.shape]}")
    unf = [unfold(K, m) for m in range(4)]
    for _ in range(n_iter_max):
        for mode in range(4):
            others = [factors[m] for m in range(4) if m != mode]
            V = np.ones((rank, rank))
            for f in others:
                V = V * seq_matmul(f.T, f)
            M = seq_matmul(unf[mode], _khatri_rao(others))
            factors[mode] = _sym_solve(V, M.T).T
    dt = W.dtype
    w = CPWeight(*[f.astype(dt) for f in factors], forward=forward)
    d = w.dequantize().astype(np.float64) - K
    w.info.update(rank=rank, n_iter=n_iter_max, mse=parameter_mse([W], [w.dequantize()]),
                  rel_error=float(np.sqrt(np.sum(d * d)) / np.sqrt(np.sum(K * K))))
    return w
