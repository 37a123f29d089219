"""Truncated SVD of a dense layer (Denton et al. 2014, "Exploiting linear
structure within convolutional networks", cited by seed 004 [6]): W (out,
in) ~ L R with L = U_r diag(s_r) (out x r) and R = V_r^T (r x in), the
Eckart-Young optimum of rank r in the Frobenius norm; the layer becomes two
dense products, x -> x R^T -> (x R^T) L^T + b."""

from fractions import Fraction

import numpy as np

from .._errors import DecodeError, FormatError, ParameterError, ShapeError
from .._validate import check_choice, describe
from ..metrics import parameter_mse
from ..weights import register_encoding
from ..weights._h5util import write_dataset
from ._common import (check_int_attr, check_rank, check_weight_shape, energy_rank,
                      float_weight, rank_tolerance, read_array, seq_matmul, svd_desc)
from ._factorized import FORWARDS, FactorizedWeight, check_forward_attr

__all__ = ["SVDWeight", "svd_compress", "ENCODING"]

ENCODING = "svd"


class SVDWeight(FactorizedWeight):
    """A dense weight stored as two factors, W* = left @ right.

    Attributes
    ----------
    left : ndarray (out, r) = U_r diag(s_r); right : ndarray (r, in) = V_r^T.
    forward : "reconstruct" or "factorized".
    info : ``singular_values`` (all, decreasing, float64), ``rank``,
        ``mse``, ``optimal_sse`` (sum of the discarded s_i^2: the
        Eckart-Young minimum of ``||W - W_r||_F^2``).

    Arithmetic
    ----------
    ``dequantize()``: ``W[o, i] = sum_k left[o, k] * right[k, i]`` in float64,
    sequential over k from +0.0 (exact products for float32 factors), one
    rounding to ``dtype``.  ``"factorized"`` pass, reference: ``h = x @
    right.T`` then ``h @ left.T``, both sums sequential in float64 (h kept
    in float64), ``+ b``, one rounding; fast: the two products by BLAS in
    ``dtype``, ``+ b``.  Roundings per term for :meth:`error_bound`:
    reconstruct/reference ``r + n + 3`` float64 and 2 in ``dtype``,
    reconstruct/fast ``r + 1`` and ``n + 2``, factorized/reference
    ``n + r + 3`` and 1, factorized/fast 0 and ``n + r + 3``.
    """

    __slots__ = ("left", "right", "_wshape", "_dtype", "forward", "info")
    encoding = ENCODING

    def __init__(self, left, right, *, forward="reconstruct", info=None):
        check_choice("forward", forward, FORWARDS)
        if (left.ndim != 2 or right.ndim != 2 or left.shape[1] != right.shape[0]
                or left.dtype != right.dtype):
            raise ShapeError(f"SVDWeight: left {describe(left)} and right {describe(right)} "
                             "must be (out, r) and (r, in) of one dtype")
        self.left, self.right = left, right
        self._wshape = (left.shape[0], right.shape[1])
        self._dtype = np.dtype(left.dtype)
        self.forward = forward
        self.info = dict(info or {})

    @property
    def rank(self):
        return int(self.left.shape[1])

    def stored_params(self):
        """``r (out + in)``."""
        return int(self.left.size + self.right.size)

    def _copy(self):
        return SVDWeight(self.left, self.right, forward=self.forward, info=self.info)

    def __repr__(self):
        return f"SVDWeight(weight_shape={self._wshape}, rank={self.rank}, dtype={self._dtype})"

    def dequantize(self):
        acc = seq_matmul(self.left, self.right, exact_products=self._dtype == np.float32)
        return acc.astype(self._dtype)

    def _abs_weight64(self):
        return seq_matmul(np.abs(self.left), np.abs(self.right))

    def _rank_terms(self):
        return self.rank

    def _counts(self, forward, precision, n):
        r = self.rank
        if forward == "reconstruct":
            return (r + n + 3, 2) if precision == "reference" else (r + 1, n + 2)
        return (n + r + 3, 1) if precision == "reference" else (0, n + r + 3)

    def _factor_linear(self, x, b, precision):
        if precision == "fast":
            y = (x @ self.right.T) @ self.left.T
            if b is not None:
                y += b
            return y
        h = seq_matmul(x, self.right.T, exact_products=x.dtype == np.float32)
        acc = seq_matmul(h, self.left.T)
        if b is not None:
            acc += b.astype(np.float64)[None, :]
        return acc.astype(x.dtype)

    def _factor_conv(self, *args):      # never reached: dense weights only
        raise ParameterError("SVDWeight is a dense weight")

    def to_hdf5(self, group):
        group.attrs["encoding"] = ENCODING
        group.attrs["weight_shape"] = np.asarray(self._wshape, np.int64)
        group.attrs["rank"] = self.rank
        group.attrs["forward"] = self.forward
        write_dataset(group, "left", self.left)
        write_dataset(group, "right", self.right)

    @classmethod
    def from_hdf5(cls, group, *, max_elements=1 << 31):
        try:
            shape = check_weight_shape(group.attrs["weight_shape"])
            r = check_int_attr("rank", group.attrs["rank"], lo=1)
            forward = check_forward_attr(group.attrs["forward"])
        except KeyError as exc:
            raise FormatError(f"{group.name}: bad svd group (missing {exc})") from None
        left = read_array(group, "left", ndim=2, max_elements=max_elements)
        if left.dtype not in (np.float32, np.float64):
            raise DecodeError(f"{group.name}/left: dtype {left.dtype} is not float32/float64")
        right = read_array(group, "right", dtype=left.dtype, ndim=2, max_elements=max_elements)
        if len(shape) != 2 or left.shape != (shape[0], r) or right.shape != (r, shape[1]):
            raise DecodeError(f"{group.name}: left {left.shape} and right {right.shape} "
                              f"inconsistent with weight_shape {shape} and rank {r}")
        return cls(left, right, forward=forward)


register_encoding(ENCODING, SVDWeight)


def svd_compress(W, *, rank=None, energy=None, forward="reconstruct"):
    """Truncated SVD of a dense weight (Denton et al. 2014; Eckart-Young optimum).

    Parameters
    ----------
    W : ndarray (out, in), float32 or float64, finite, non-empty.
    rank : int in [1, min(out, in)], optional
    energy : float in (0, 1], optional
        Keep the smallest r whose squared singular values carry this share
        of their sum (:func:`refcomp.decompose.energy_rank`; at least 1).
        Exactly one of ``rank`` / ``energy``.
    forward : {"reconstruct", "factorized"}

    Returns
    -------
    SVDWeight
        ``left = U_r diag(s_r)``, ``right = V_r^T`` rounded once to
        ``W.dtype``.

    Arithmetic
    ----------
    Thin SVD of W in float64 by LAPACK gesdd (``numpy.linalg.svd``),
    singular values decreasing, each right singular vector's
    largest-magnitude entry positive (ties to the lowest index) and the left
    one flipped with it; singular values at or below NumPy's rank cutoff
    count as zero for ``energy``.  ``left[:, k] = U[:, k] * s[k]`` in float64,
    then both factors rounded (half-even) to ``W.dtype``.  In exact
    arithmetic ``left @ right`` is the best rank-r approximation
    (``||W - W_r||_F^2 = sum_{k >= r} s_k^2``, ``info["optimal_sse"]``);
    the stored factors add their rounding.  Deterministic for a given
    machine, LAPACK and thread count.

    Raises
    ------
    ParameterError
        both or neither of rank / energy; rank outside [1, min(out, in)];
        energy outside (0, 1]; a conv weight (use pca_filters, tucker2, cp).
    ShapeError, DTypeError
        W not a non-empty 2-D float32/float64 array.
    """
    float_weight("W", W, (2, 4))
    if W.ndim != 2:
        raise ParameterError(f"svd_compress factorizes dense weights (out, in); W is "
                             f"{describe(W)}: use pca_filters, tucker2 or cp for a conv weight")
    if (rank is None) == (energy is None):
        raise ParameterError("svd_compress needs exactly one of rank= and energy=")
    check_choice("forward", forward, FORWARDS)
    full = min(W.shape)
    U, s, Vt = svd_desc(W.astype(np.float64))
    s_eff = np.where(s > rank_tolerance(s, W.shape), s, 0.0)
    if energy is not None:
        r = max(1, energy_rank(s_eff * s_eff, energy))
    else:
        r = check_rank("rank", rank, full, f"the full rank of W {describe(W)} is at most "
                                           f"min(out, in) = {full}")
    left = (U[:, :r] * s[None, :r]).astype(W.dtype)
    w = SVDWeight(left, Vt[:r].astype(W.dtype), forward=forward)
    sq = [Fraction(float(v)) ** 2 for v in s[r:]]
    w.info.update(singular_values=s, rank=r, energy=energy,
                  optimal_sse=float(sum(sq, Fraction(0))),
                  mse=parameter_mse([W], [w.dequantize()]))
    return w
