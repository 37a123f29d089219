"""Residual quantization of dense weights (Gong, Liu, Yang & Bourdev 2014, §3.3).

Stage 1 quantizes W; stage t quantizes the residual left by stages 1..t-1;
the approximation is the sum of the stage reconstructions.  Each stage is a
:func:`refcomp.quantize.product_quantize` (with ``n_subspaces=1`` it is the
plain vector quantization of the rows that Gong et al. describe; more
subspaces give the "residual product" hybrid).
"""

import numpy as np

from .._errors import DecodeError, FormatError
from .._validate import check_int, check_ndim
from ..weights import CompressedWeight, register_encoding
from ..weights._h5util import parse_attrs
from ._scalar_common import finite_range, float_input
from .kmeans import check_rng
from .product import ProductQuantized, product_quantize

__all__ = ["residual_quantize", "ResidualQuantized"]

ENCODING = "residual_quantized"
#: Largest number of stages accepted (and read back from a file).
MAX_STAGES = 64


class ResidualQuantized(CompressedWeight):
    """A sequence of :class:`ProductQuantized` stages of the same shape and dtype.

    ``dequantize()``: the stage reconstructions (exact codebook copies)
    summed in float64 in stage order (stage 1 first, starting from +0.0),
    rounded once (half-even) to ``dtype``.
    """

    __slots__ = ("stages", "dtype", "info")
    encoding = ENCODING

    def __init__(self, stages, *, dtype, info=None):
        self.stages, self.dtype, self.info = list(stages), np.dtype(dtype), dict(info or {})

    @property
    def shape(self):
        return self.stages[0].shape

    @property
    def bits(self):
        return sum(s.bits for s in self.stages)

    def dequantize(self):
        acc = np.zeros(self.shape, np.float64)
        for stage in self.stages:
            acc += stage.dequantize().astype(np.float64)
        return acc.astype(self.dtype)

    def __repr__(self):
        return (f"ResidualQuantized(shape={self.shape}, stages={len(self.stages)}, "
                f"dtype={self.dtype})")

    def stored_bits(self):
        """Sum of the stages' code and codebook bits (headers excluded)."""
        return sum(s.stored_bits() for s in self.stages)

    def to_hdf5(self, group):
        group.attrs["encoding"] = ENCODING
        group.attrs["dtype"] = self.dtype.str
        group.attrs["n_stages"] = len(self.stages)
        for i, stage in enumerate(self.stages):
            stage.to_hdf5(group.create_group(f"stage_{i}"))

    @classmethod
    def from_hdf5(cls, group, *, max_elements=1 << 31):
        n, dtype = parse_attrs(group, "residual_quantized", {"n_stages": int,
                                                             "dtype": np.dtype}).values()
        if not 1 <= n <= MAX_STAGES:
            raise DecodeError(f"{group.name}: {n} stages, expected 1..{MAX_STAGES}")
        stages = []
        for i in range(n):
            if f"stage_{i}" not in group:
                raise FormatError(f"{group.name}: missing stage_{i}")
            st = ProductQuantized.from_hdf5(group[f"stage_{i}"], max_elements=max_elements)
            if st.dtype != dtype or (stages and st.shape != stages[0].shape):
                raise DecodeError(f"{group.name}/stage_{i}: shape {st.shape} or dtype {st.dtype} "
                                  f"differs from {group.name}/stage_0 ({stages[0].shape if stages else '-'}) "
                                  f"or the attribute 'dtype' ({dtype})")
            stages.append(st)
        return cls(stages, dtype=dtype)


register_encoding(ENCODING, ResidualQuantized)


def residual_quantize(W, *, n_stages, k, rng, n_subspaces=1, max_iter=100):
    """Residual quantization (Gong et al. 2014 §3.3) of a dense weight matrix.

    Parameters
    ----------
    W : ndarray (out, in), float32 or float64, finite, non-empty
    n_stages : int in [1, 64]
    k : int, centroids per stage (and per subspace), as in
        :func:`product_quantize`.
    rng : numpy.random.Generator, consumed by the stages in order (each
        stage's Forgy draws as documented in :func:`product_quantize`).
    n_subspaces : int, subspaces per stage (default 1: whole rows).
    max_iter : int, Lloyd iterations per stage and subspace.

    Returns
    -------
    ResidualQuantized
        ``info["sse"]``: float64 sum of squared errors of ``dequantize()``
        against W after each stage (list, NumPy pairwise sum, diagnostic).

    Arithmetic
    ----------
    R_1 = W; stage t runs ``product_quantize(R_t, ...)`` and
    ``R_{t+1} = R_t − dequantize(stage t)`` computed in float64 and rounded
    once (half-even) to ``W.dtype`` (exact for float32 input when no
    underflow: the difference of two float32 is exact in float64 and the
    rounding then only matters if it exceeds 24 significant bits).  The
    approximation sums the stages in float64 in stage order and rounds once
    to ``W.dtype``.  Storage: the sum of the stages' ``stored_bits()``.
    """
    float_input("W", W)
    check_ndim("W", W, 2)
    finite_range("W", W)
    n_stages = check_int("n_stages", n_stages, lo=1, hi=MAX_STAGES)
    check_rng(rng, "residual_quantize")
    stages, sse = [], []
    residual = W
    approx = np.zeros(W.shape, np.float64)
    for _ in range(n_stages):
        stage = product_quantize(residual, n_subspaces=n_subspaces, k=k, rng=rng,
                                 max_iter=max_iter)
        rec = stage.dequantize().astype(np.float64)
        stages.append(stage)
        residual = (residual.astype(np.float64) - rec).astype(W.dtype)
        approx += rec
        err = W.astype(np.float64) - approx.astype(W.dtype)
        sse.append(float(np.sum(err * err)))
    return ResidualQuantized(stages, dtype=W.dtype, info={"sse": sse})
