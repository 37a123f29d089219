"""Tucker-2 decomposition of a conv kernel (Kim et al. 2016, "Compression of
deep convolutional neural networks for fast and low power mobile
applications"; FACTS.md §7.12): K (T, S, kh, kw) ~ core x_0 U_T x_1 U_S with
core (R4, R3, kh, kw), by HOSVD with optional HOOI sweeps; the layer becomes
a 1x1 conv S -> R3, a kh x kw conv R3 -> R4 and a 1x1 conv R4 -> T."""

import numpy as np

from .._errors import DecodeError, FormatError, ParameterError, ShapeError
from .._validate import check_choice, check_int, describe
from ..layers import conv2d
from ..metrics import parameter_mse
from ..weights import register_encoding
from ..weights._h5util import write_dataset
from ._common import (check_rank, check_weight_shape, fix_signs, float_weight,
                      read_array, seq_matmul)
from ._factorized import FORWARDS, FactorizedWeight, check_forward_attr

__all__ = ["TuckerWeight", "tucker2", "ENCODING", "unfold", "leading_left"]

ENCODING = "tucker2"


def unfold(T, mode):
    """Mode-``mode`` unfolding: ``moveaxis(T, mode, 0)`` reshaped to (I_mode, -1), C order."""
    return np.ascontiguousarray(np.moveaxis(T, mode, 0).reshape(T.shape[mode], -1))


def leading_left(A, r):
    """The ``r`` leading left singular vectors of a float64 matrix (LAPACK gesdd),
    each with its largest-magnitude entry positive (ties to the lowest index)."""
    U = np.linalg.svd(A, full_matrices=False)[0][:, :r]
    return fix_signs(U, axis=0)[0]


def _mode_dot_t(T, U, mode):
    """``T x_mode U^T``: contracts axis ``mode`` of T with the columns of U
    (fixed-order float64 sums, refcomp.kernels.linear.matmul_acc64)."""
    moved = np.moveaxis(T, mode, 0)
    out = seq_matmul(U.T, moved.reshape(moved.shape[0], -1))
    return np.moveaxis(out.reshape((U.shape[1],) + moved.shape[1:]), 0, mode)


class TuckerWeight(FactorizedWeight):
    """A conv kernel stored as Tucker-2 factors: K* = core x_0 U_T x_1 U_S.

    Attributes
    ----------
    core : ndarray (R4, R3, kh, kw); u_out : ndarray (T, R4); u_in : ndarray (S, R3).
    forward : "reconstruct" or "factorized".
    info : ``rel_error`` (``||K - K^||_F / ||K||_F`` of the stored factors),
        ``mse``, ``ranks``, ``n_iter``.

    Arithmetic
    ----------
    ``dequantize()``: ``tmp[a, s, i, j] = sum_b core[a, b, i, j] * u_in[s, b]``
    sequential over b, then ``K[t, s, i, j] = sum_a u_out[t, a] * tmp[a, s, i,
    j]`` sequential over a, both in float64 from +0.0, one rounding to
    ``dtype``.  ``"factorized"`` pass (groups = 1): 1x1 conv S -> R3 with
    weight ``u_in.T``, kh x kw conv R3 -> R4 with ``core`` (the layer's
    stride, padding and dilation; the 1x1 has no bias, so zero padding
    commutes with it), 1x1 conv R4 -> T with ``u_out`` and the bias;
    reference: each stage refcomp's reference conv in float64 (intermediates
    not rounded), one rounding at the end; fast: each stage
    ``precision="fast"`` in ``dtype``.  Roundings per term for
    :meth:`error_bound`: reconstruct/reference ``R3 + R4 + n + 4`` float64
    and 2 in dtype; reconstruct/fast ``R3 + R4 + 2`` and ``n + 3``;
    factorized/reference ``S + R3 kh kw + R4 + 4`` and 1; factorized/fast 0
    and ``S + R3 kh kw + R4 + 4``.
    """

    __slots__ = ("core", "u_out", "u_in", "_wshape", "_dtype", "forward", "info")
    encoding = ENCODING

    def __init__(self, core, u_out, u_in, *, forward="reconstruct", info=None):
        check_choice("forward", forward, FORWARDS)
        if (core.ndim != 4 or u_out.ndim != 2 or u_in.ndim != 2
                or core.shape[:2] != (u_out.shape[1], u_in.shape[1])
                or not core.dtype == u_out.dtype == u_in.dtype):
            raise ShapeError(f"TuckerWeight: core {describe(core)}, u_out {describe(u_out)}, "
                             f"u_in {describe(u_in)} must be (R4, R3, kh, kw), (T, R4), "
                             "(S, R3) of one dtype")
        self.core, self.u_out, self.u_in = core, u_out, u_in
        self._wshape = (u_out.shape[0], u_in.shape[0]) + core.shape[2:]
        self._dtype = np.dtype(core.dtype)
        self.forward = forward
        self.info = dict(info or {})

    @property
    def ranks(self):
        """(R4, R3): output and input ranks."""
        return (int(self.core.shape[0]), int(self.core.shape[1]))

    def stored_params(self):
        """``T R4 + S R3 + R4 R3 kh kw``."""
        return int(self.core.size + self.u_out.size + self.u_in.size)

    def _copy(self):
        return TuckerWeight(self.core, self.u_out, self.u_in, forward=self.forward,
                            info=self.info)

    def __repr__(self):
        return f"TuckerWeight(weight_shape={self._wshape}, ranks={self.ranks}, dtype={self._dtype})"

    def _reconstruct64(self, core, u_out, u_in):
        r4, r3 = core.shape[:2]
        kh, kw = core.shape[2:]
        t_, s_ = u_out.shape[0], u_in.shape[0]
        tmp = np.zeros((r4, s_, kh, kw))
        for b in range(r3):           # sequential over b
            tmp += core[:, b][:, None] * u_in[:, b][None, :, None, None]
        K = np.zeros((t_, s_, kh, kw))
        for a in range(r4):           # sequential over a
            K += u_out[:, a][:, None, None, None] * tmp[a][None]
        return K

    def dequantize(self):
        f = [np.asarray(a, np.float64) for a in (self.core, self.u_out, self.u_in)]
        return self._reconstruct64(*f).astype(self._dtype)

    def _abs_weight64(self):
        return self._reconstruct64(*[np.abs(np.asarray(a, np.float64))
                                     for a in (self.core, self.u_out, self.u_in)])

    def _rank_terms(self):
        r4, r3 = self.ranks
        return r3 + r4 + r3 * r4

    def _counts(self, forward, precision, n):
        r4, r3 = self.ranks
        if forward == "reconstruct":
            return (r3 + r4 + n + 4, 2) if precision == "reference" else (r3 + r4 + 2, n + 3)
        k = self._wshape[1] + r3 * self._wshape[2] * self._wshape[3] + r4 + 4
        return (k, 1) if precision == "reference" else (0, k)

    def _factor_linear(self, *args):
        raise ParameterError("TuckerWeight is a conv2d weight")

    def _factor_conv(self, xc, b, stride, pads, dilation, groups, precision):
        if groups != 1:
            raise ParameterError(f"the factorized Tucker-2 pass needs groups=1, got {groups} "
                                 "(forward='reconstruct' handles grouped convolutions)")
        r4, r3 = self.ranks
        w1 = np.ascontiguousarray(self.u_in.T.reshape(r3, -1, 1, 1))
        w3 = np.ascontiguousarray(self.u_out.reshape(-1, r4, 1, 1))
        if precision == "fast":
            z = conv2d(xc, w1, precision="fast")
            z = conv2d(z, self.core, stride=stride, padding=pads, dilation=dilation,
                       precision="fast")
            return conv2d(z, w3, b, precision="fast")
        f64 = np.float64
        z = conv2d(xc.astype(f64), w1.astype(f64))
        z = conv2d(z, self.core.astype(f64), stride=stride, padding=pads, dilation=dilation)
        z = conv2d(z, w3.astype(f64), None if b is None else b.astype(f64))
        return z.astype(xc.dtype)

    def to_hdf5(self, group):
        group.attrs["encoding"] = ENCODING
        group.attrs["weight_shape"] = np.asarray(self._wshape, np.int64)
        group.attrs["ranks"] = np.asarray(self.ranks, np.int64)
        group.attrs["forward"] = self.forward
        write_dataset(group, "core", self.core)
        write_dataset(group, "u_out", self.u_out)
        write_dataset(group, "u_in", self.u_in)

    @classmethod
    def from_hdf5(cls, group, *, max_elements=1 << 31):
        try:
            shape = check_weight_shape(group.attrs["weight_shape"])
            ranks = check_weight_shape(group.attrs["ranks"])
            forward = check_forward_attr(group.attrs["forward"])
        except KeyError as exc:
            raise FormatError(f"{group.name}: bad tucker2 group (missing {exc})") from None
        core = read_array(group, "core", ndim=4, max_elements=max_elements)
        if core.dtype not in (np.float32, np.float64):
            raise DecodeError(f"{group.name}/core: dtype {core.dtype} is not float32/float64")
        u_out = read_array(group, "u_out", dtype=core.dtype, ndim=2, max_elements=max_elements)
        u_in = read_array(group, "u_in", dtype=core.dtype, ndim=2, max_elements=max_elements)
        if (len(shape) != 4 or len(ranks) != 2 or core.shape != tuple(ranks) + shape[2:]
                or u_out.shape != (shape[0], ranks[0]) or u_in.shape != (shape[1], ranks[1])):
            raise DecodeError(f"{group.name}: factors {core.shape}, {u_out.shape}, "
                              f"{u_in.shape} inconsistent with weight_shape {shape} and ranks "
                              f"{ranks}")
        return cls(core, u_out, u_in, forward=forward)


register_encoding(ENCODING, TuckerWeight)


def tucker2(W, ranks, *, n_iter=0, forward="reconstruct"):
    """Tucker-2 decomposition of a conv kernel on its output and input modes.

    Parameters
    ----------
    W : ndarray (T, S, kh, kw) OIHW, float32/float64, finite, non-empty.
    ranks : (R4, R3)
        Output and input ranks, ``1 <= R4 <= min(T, S kh kw)`` and
        ``1 <= R3 <= min(S, T kh kw)`` (the ranks of the mode-0 and mode-1
        unfoldings at most).
    n_iter : int >= 0
        HOOI sweeps after the HOSVD initialisation (each sweep updates U_T,
        then U_S; tensorly's ``partial_tucker(W, rank=ranks, modes=[0, 1],
        init="svd", n_iter_max=n_iter, tol=0)`` runs the same sweeps).
    forward : {"reconstruct", "factorized"}

    Returns
    -------
    TuckerWeight
        Factors rounded once (half-even) to ``W.dtype``.

    Arithmetic
    ----------
    In float64.  HOSVD: U_T = the R4 leading left singular vectors of the
    mode-0 unfolding of W, U_S = the R3 leading ones of the mode-1
    unfolding (LAPACK gesdd; each vector's largest-magnitude entry positive,
    ties to the lowest index).  HOOI sweep: U_T from the mode-0 unfolding of
    ``W x_1 U_S^T``, then U_S from the mode-1 unfolding of ``W x_0 U_T^T``.
    core = ``W x_0 U_T^T x_1 U_S^T``.  Mode products by fixed-order float64
    sums.  Deterministic for a given machine, LAPACK and thread count.

    Raises
    ------
    ParameterError
        a rank below 1 or above the full rank of its unfolding; a bad
        ``n_iter``; a dense weight (use svd_compress or pca_filters).
    ShapeError, DTypeError
        W not a non-empty 4-D float32/float64 array.
    """
    float_weight("W", W, (2, 4))
    if W.ndim != 4:
        raise ParameterError(f"tucker2 decomposes conv weights (T, S, kh, kw); W is "
                             f"{describe(W)}: use svd_compress or pca_filters for a dense one")
    check_choice("forward", forward, FORWARDS)
    try:
        r4, r3 = ranks
    except (TypeError, ValueError):
        raise ParameterError(f"ranks must be a pair (R4, R3), got {ranks!r}") from None
    t_, s_, kh, kw = W.shape
    r4 = check_rank("ranks[0]", r4, min(t_, s_ * kh * kw),
                    f"output rank: at most min(T, S kh kw) for W {describe(W)}")
    r3 = check_rank("ranks[1]", r3, min(s_, t_ * kh * kw),
                    f"input rank: at most min(S, T kh kw) for W {describe(W)}")
    n_iter = check_int("n_iter", n_iter, lo=0)
    K = W.astype(np.float64)
    u_out = leading_left(unfold(K, 0), r4)
    u_in = leading_left(unfold(K, 1), r3)
    for _ in range(n_iter):
        u_out = leading_left(unfold(_mode_dot_t(K, u_in, 1), 0), r4)
        u_in = leading_left(unfold(_mode_dot_t(K, u_out, 0), 1), r3)
    core = _mode_dot_t(_mode_dot_t(K, u_out, 0), u_in, 1)
    dt = W.dtype
    w = TuckerWeight(core.astype(dt), u_out.astype(dt), u_in.astype(dt), forward=forward)
    d = w.dequantize().astype(np.float64) - K
    w.info.update(ranks=(r4, r3), n_iter=n_iter, mse=parameter_mse([W], [w.dequantize()]),
                  rel_error=float(np.sqrt(np.sum(d * d)) / np.sqrt(np.sum(K * K))))
    return w
