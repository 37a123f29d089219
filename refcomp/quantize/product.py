"""Product quantization of dense weights (Gong, Liu, Yang & Bourdev 2014; FACTS.md §7.10)."""

import numpy as np

from .._bitpack import pack_codes, unpack_codes
from .._errors import DecodeError, FormatError, ParameterError
from .._validate import check_int, check_ndim
from ..weights import CompressedWeight, register_encoding
from ..weights._h5util import parse_attrs, shape_attr, write_dataset
from ..kernels import kmeans as K
from ._quantized import narrowest_code_dtype
from ._scalar_common import finite_range, float_input
from .kmeans import MAX_BITS, check_rng

__all__ = ["product_quantize", "ProductQuantized"]

ENCODING = "product_quantized"


class ProductQuantized(CompressedWeight):
    """Codes (out, s) plus one codebook of k sub-vectors per subspace.

    Attributes
    ----------
    codes : ndarray (out, s), narrowest unsigned dtype
    codebooks : ndarray (s, k, dmax) of ``dtype``; subspace i uses the
        first ``offsets[i+1] − offsets[i]`` columns (the rest is 0 padding).
    offsets : ndarray (s + 1,) int64, column offsets of the subspaces.
    bits : int, bits per stored code.
    dtype : numpy.dtype of the quantized matrix; ``shape`` = (out, in).
    info : dict of diagnostics (sse, n_iter...), not stored.
    """

    __slots__ = ("codes", "codebooks", "offsets", "bits", "dtype", "info")
    encoding = ENCODING

    def __init__(self, codes, codebooks, offsets, *, bits, dtype, info=None):
        self.codes, self.codebooks, self.offsets = codes, codebooks, offsets
        self.bits, self.dtype, self.info = int(bits), np.dtype(dtype), dict(info or {})

    @property
    def shape(self):
        return (self.codes.shape[0], int(self.offsets[-1]))

    def dequantize(self):
        """W rebuilt by table lookup (exact copies of codebook values), dtype ``self.dtype``."""
        out = np.empty(self.shape, self.dtype)
        for i in range(self.codes.shape[1]):
            a, b = int(self.offsets[i]), int(self.offsets[i + 1])
            out[:, a:b] = self.codebooks[i][self.codes[:, i].astype(np.intp), :b - a]
        return out

    def __repr__(self):
        return (f"ProductQuantized(shape={self.shape}, subspaces={self.codes.shape[1]}, "
                f"k={self.codebooks.shape[1]}, bits={self.bits}, dtype={self.dtype})")

    def stored_bits(self):
        """Bits of the packed codes plus the codebooks (padding excluded)."""
        widths = np.diff(self.offsets)
        k = self.codebooks.shape[1]
        return self.codes.size * self.bits + int(widths.sum()) * k * self.dtype.itemsize * 8

    def to_hdf5(self, group):
        group.attrs["encoding"] = ENCODING
        group.attrs["bits"] = self.bits
        group.attrs["dtype"] = self.dtype.str
        group.attrs["code_dtype"] = self.codes.dtype.str
        group.attrs["codes_shape"] = np.asarray(self.codes.shape, np.int64)
        write_dataset(group, "codes", pack_codes(self.codes.reshape(-1).astype(np.uint64),
                                                 self.bits))
        write_dataset(group, "codebooks", self.codebooks)
        write_dataset(group, "offsets", self.offsets)

    @classmethod
    def from_hdf5(cls, group, *, max_elements=1 << 31):
        bits, dtype, code_dtype, shape = parse_attrs(group, "product_quantized", {
            "bits": int, "dtype": np.dtype, "code_dtype": np.dtype,
            "codes_shape": shape_attr}).values()
        arrays = []
        for key in ("codes", "codebooks", "offsets"):
            try:
                arrays.append(group[key][()])
            except (KeyError, TypeError, ValueError) as exc:
                raise FormatError(f"{group.name}: bad product-quantized dataset {key!r} "
                                  f"({exc})") from None
        packed, codebooks, offsets = arrays
        if len(shape) != 2 or min(shape) < 0 or not 1 <= bits <= 64:
            raise DecodeError(f"{group.name}: invalid codes shape {shape} or bits {bits}")
        count = shape[0] * shape[1]
        if count > max_elements:
            raise DecodeError(f"{group.name}: declares {count} codes, over {max_elements}")
        if (codebooks.ndim != 3 or codebooks.dtype != dtype or offsets.shape != (shape[1] + 1,)
                or np.any(np.diff(offsets) < 0) or np.any(np.diff(offsets) > codebooks.shape[2])):
            raise DecodeError(f"{group.name}: codebooks/offsets inconsistent with codes")
        codes = unpack_codes(packed, bits, count, name="'codes'")
        if codes.size and int(codes.max()) >= codebooks.shape[1]:
            raise DecodeError(f"{group.name}: code out of range of the codebook")
        codes = codes.astype(code_dtype).reshape(shape)
        return cls(codes, codebooks, offsets.astype(np.int64), bits=bits, dtype=dtype)


register_encoding(ENCODING, ProductQuantized)


def _lloyd_vq(X, C, to32, max_iter, layout):
    codes = K.vq_assign(X, C)
    n_iter, converged = 0, False
    for _ in range(max_iter):
        C = K.vq_means(X, codes, C, to32, *layout)
        n_iter += 1
        new = K.vq_assign(X, C)
        same = np.array_equal(new, codes)
        codes = new
        if same:
            converged = True
            break
    return C, codes, n_iter, converged


def product_quantize(W, *, n_subspaces, k, rng, max_iter=100):
    """Product quantization of a dense weight matrix (Gong et al. 2014).

    Parameters
    ----------
    W : ndarray (out, in), float32 or float64, finite, non-empty
    n_subspaces : int in [1, in]
        The input axis is split into contiguous column blocks as
        ``numpy.array_split`` does: the first ``in % s`` blocks have one more
        column.  Each block's ``out`` rows (sub-vectors) are clustered.
    k : int in [1, 65536], centroids per subspace.
    rng : numpy.random.Generator
        Forgy initialisation: ``rng.choice(out, size=k, replace=False)``
        (sorted) picks the initial rows, one draw per subspace in order.
        When ``k >= out`` every row is a centroid (rows in order, padded
        with copies of the last row) and ``rng`` is not used, so W is
        reproduced exactly.
    max_iter : int >= 0, Lloyd iterations per subspace.

    Returns
    -------
    ProductQuantized
        codes (out, s), codebooks (s, k, dmax) of ``W.dtype``, ``bits =
        max(1, ceil(log2 k))``; ``info``: ``sse`` (float64 diagnostic, NumPy
        pairwise ``np.sum`` of the squared errors), ``n_iter`` and ``converged`` per
        subspace.

    Notes
    -----
    Assignment: squared Euclidean distance computed directly, Σ_j (x_j −
    c_j)² in float64 with j ascending; the lowest centroid index wins ties.
    Update: each centroid coordinate is the exactly rounded mean of its
    members (exact sum, one float64 division, RNE to ``W.dtype``), as in
    :func:`refcomp.quantize.kmeans`; empty clusters keep their centroid.
    Stop when no code changes or after ``max_iter`` updates.  Codes are the
    assignment to the returned codebooks.  Storage (FACTS §7.10):
    ``out·s·bits`` code bits plus ``k·in`` codebook values.
    """
    float_input("W", W)
    check_ndim("W", W, 2)
    finite_range("W", W)
    out, n_in = W.shape
    s = check_int("n_subspaces", n_subspaces, lo=1, hi=n_in)
    k = check_int("k", k, lo=1, hi=1 << MAX_BITS)
    max_iter = check_int("max_iter", max_iter, lo=0)
    check_rng(rng, "product_quantize")
    if out >= 1 << 32:
        raise ParameterError("W has too many rows")
    bits = max(1, (k - 1).bit_length())
    to32 = W.dtype == np.float32
    sizes = [n_in // s + (1 if i < n_in % s else 0) for i in range(s)]
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    X64 = np.ascontiguousarray(W, dtype=np.float64) + 0.0
    layout = K.exact_layout(X64.reshape(-1))
    codebooks = np.zeros((s, k, max(sizes)), W.dtype)
    codes = np.empty((out, s), narrowest_code_dtype(0, k - 1))
    sse, iters, conv = 0.0, [], []
    for i in range(s):
        X = np.ascontiguousarray(X64[:, offsets[i]:offsets[i + 1]])
        if k >= out:
            idx = np.concatenate([np.arange(out), np.full(k - out, out - 1)])
        else:
            idx = np.sort(rng.choice(out, size=k, replace=False))
        C, c_i, n_it, cv = _lloyd_vq(X, X[idx].copy(), to32, max_iter, layout)
        codebooks[i, :, :sizes[i]] = C.astype(W.dtype)
        codes[:, i] = c_i
        diff = X - C[c_i]
        sse += float(np.sum(diff * diff))
        iters.append(n_it)
        conv.append(cv)
    info = {"sse": sse, "n_iter": iters, "converged": conv, "k": k}
    return ProductQuantized(codes, codebooks, offsets, bits=bits, dtype=W.dtype, info=info)
