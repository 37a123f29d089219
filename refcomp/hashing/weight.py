"""The hashed weight (HashedNets, Chen et al., ICML 2015): a compressed weight type.

``V[o, i] = xi(o, i) * w[h(o, i)]`` for a dense weight (out, in); a conv
kernel (O, C, kh, kw) is hashed as its (O, C*kh*kw) matrix view in C order.
Only the bucket values ``w`` and the seed are stored; the bucket ``h`` and
the sign ``xi`` are xxHash32 of the authors' key strings (or of integer
keys), see :mod:`refcomp.hashing._xxh32`.  Registered under the HDF5
encoding ``"hashed"``; ``refcomp.save`` / ``load`` store it as the bucket
values and the seed (plus the shape and the hash variant as attributes).
"""

import math

import numpy as np

from .._errors import FormatError, ParameterError, ShapeError
from .._validate import FLOAT_DTYPES, check_choice, check_int, describe
from ..weights import CompressedWeight, register_encoding
from ..weights._h5util import parse_attrs, shape_attr, write_dataset
from . import _kernels as _k
from ._xxh32 import DEFAULT_SEED
from .ops import hashed_conv2d, hashed_linear

__all__ = ["HashedWeight", "HASHES", "ENCODING", "SEED_BITS"]

#: Hash variants: the authors' string keys and refcomp's integer keys.
HASHES = ("string", "integer")
ENCODING = "hashed"
#: Bits charged for the stored seed (an unsigned 32-bit xxHash seed).
SEED_BITS = 32
# Indices are 1-based uint32 in the integer keys (and below 2**32 - 2 for
# the i + 2 of the string keys): the matrix view must stay below this.
_MAX_DIM = (1 << 31) - 1


class HashedWeight(CompressedWeight):
    """A hashed dense or conv weight: bucket values + seed.

    Parameters
    ----------
    buckets : ndarray (n_buckets,), float32 or float64, n_buckets >= 1
        The stored values ``w`` (the weight's dtype).  Kept as a read-only
        view (copied first when not contiguous).
    shape : tuple of int
        The virtual weight's shape: (out, in) or (O, C/groups, kh, kw).
    seed : int in [0, 2**32)
        The xxHash32 seed (the authors' default 1691).
    sign : bool
        Use the sign hash xi (the authors' ``config.xi``); else xi = +1.
    hash : {"string", "integer"}
        The authors' decimal key strings (default) or the integer keys.

    Attributes
    ----------
    shape, weight_shape : the virtual shape;  dtype : the buckets' dtype;
    n_buckets, seed, sign, hash, mode (0 string, 1 integer).
    """

    __slots__ = ("buckets", "shape", "seed", "sign", "hash", "mode")
    encoding = ENCODING

    def __init__(self, buckets, shape, *, seed=DEFAULT_SEED, sign=True, hash="string"):
        if not isinstance(buckets, np.ndarray) or buckets.dtype not in FLOAT_DTYPES \
                or buckets.ndim != 1:
            raise ParameterError(f"buckets must be a 1-D float32/float64 ndarray, got "
                                 f"{describe(buckets)}")
        if buckets.size < 1:
            raise ParameterError("a hashed weight needs at least one bucket (n_buckets >= 1), "
                                 f"got {describe(buckets)}")
        try:
            shape = tuple(check_int("shape", s, lo=1) for s in shape)
        except TypeError:
            raise ParameterError(f"shape must be a tuple of ints, got {shape!r}") from None
        if len(shape) not in (2, 4):
            raise ShapeError(f"a hashed weight is 2-D (out, in) or 4-D (O, C, kh, kw), got "
                             f"shape {shape}")
        if shape[0] > _MAX_DIM or math.prod(shape[1:]) > _MAX_DIM:
            raise ShapeError(f"hashed weight {shape}: its matrix view must stay below "
                             f"{_MAX_DIM} rows and columns")
        self.seed = check_int("seed", seed, lo=0, hi=(1 << 32) - 1)
        if not isinstance(sign, (bool, np.bool_)):
            raise ParameterError(f"sign must be a bool, got {sign!r}")
        self.sign = bool(sign)
        self.hash = check_choice("hash", hash, HASHES)
        self.mode = HASHES.index(hash)
        self.shape = shape
        b = np.ascontiguousarray(buckets).view()
        b.flags.writeable = False
        self.buckets = b

    # -- properties ---------------------------------------------------------------
    @property
    def dtype(self):
        return self.buckets.dtype

    @property
    def n_buckets(self):
        return int(self.buckets.size)

    @property
    def matrix_shape(self):
        """(rows, cols) of the hashed matrix view."""
        return self.shape[0], math.prod(self.shape[1:])

    def indices(self):
        """``(bucket, sign)``: int64 0-based buckets and int8 signs (+-1) of every
        virtual weight, shape ``weight_shape`` (materialised; for inspection)."""
        r, c = self.matrix_shape
        idx, sgn = _k.hash_table(r, c, self.n_buckets, self.seed, self.mode, self.sign)
        return idx.reshape(self.shape), sgn.reshape(self.shape)

    def dequantize(self):
        """V (new array, ``weight_shape``, ``dtype``): ``buckets[h]`` where the sign
        is +1, ``-buckets[h]`` (exact sign flip; +0.0 becomes -0.0) where it is -1."""
        idx, sgn = self.indices()
        vals = self.buckets[idx]
        return np.where(sgn > 0, vals, -vals)

    def stored_bits(self):
        """Bucket values at their width plus :data:`SEED_BITS` for the seed (the
        shape, sign flag and hash variant are the header, not counted)."""
        return self.n_buckets * self.dtype.itemsize * 8 + SEED_BITS

    # -- compute hooks ------------------------------------------------------------
    def linear(self, x, b=None, *, precision="reference"):
        """Compute hook of :func:`refcomp.layers.dense`: :func:`refcomp.hashing.hashed_linear`."""
        return hashed_linear(x, self, b, precision=precision)

    def conv2d(self, x, b=None, *, stride=1, padding=0, dilation=1, groups=1, layout="NCHW",
               precision="reference"):
        """Compute hook of :func:`refcomp.layers.conv2d`: :func:`refcomp.hashing.hashed_conv2d`."""
        return hashed_conv2d(x, self, b, stride=stride, padding=padding, dilation=dilation,
                             groups=groups, layout=layout, precision=precision)

    # -- comparison ---------------------------------------------------------------
    def __eq__(self, other):
        if not isinstance(other, HashedWeight):
            return NotImplemented
        return ((self.shape, self.seed, self.sign, self.hash, self.dtype)
                == (other.shape, other.seed, other.sign, other.hash, other.dtype)
                and self.buckets.tobytes() == other.buckets.tobytes())

    __hash__ = None

    def __repr__(self):
        return (f"HashedWeight(shape={self.shape}, dtype={self.dtype}, "
                f"n_buckets={self.n_buckets}, seed={self.seed}, sign={self.sign}, "
                f"hash={self.hash!r})")

    # -- storage ------------------------------------------------------------------
    def to_hdf5(self, group):
        """Attributes ``encoding`` ("hashed"), ``dtype``, ``shape``, ``seed`` (int64),
        ``sign`` (0/1), ``hash``; dataset ``buckets``."""
        a = group.attrs
        a["encoding"] = ENCODING
        a["dtype"] = self.dtype.str
        a["shape"] = np.asarray(self.shape, dtype=np.int64)
        a["seed"] = np.int64(self.seed)
        a["sign"] = np.int8(self.sign)
        a["hash"] = self.hash
        write_dataset(group, "buckets", self.buckets)

    @classmethod
    def from_hdf5(cls, group, *, max_elements=1 << 31):
        """Read what :meth:`to_hdf5` wrote, bit-exactly.  FormatError for missing or
        inconsistent fields; the bucket count and the virtual size are checked
        against ``max_elements`` from the headers before anything is read."""
        name = group.name
        dtype, shape, seed, sign, hash_ = parse_attrs(group, "hashed", {
            "dtype": np.dtype, "shape": shape_attr, "seed": int, "sign": int,
            "hash": lambda v: v.decode("utf-8") if isinstance(v, bytes) else str(v)}).values()
        if dtype not in FLOAT_DTYPES or sign not in (0, 1) or hash_ not in HASHES:
            raise FormatError(f"{name}: unsupported hashed weight (dtype {dtype}, sign {sign}, "
                              f"hash {hash_!r})")
        if len(shape) not in (2, 4) or any(s < 1 for s in shape) \
                or math.prod(shape) > max_elements:
            raise FormatError(f"{name}: invalid or too large shape {shape} (limit "
                              f"{max_elements} elements)")
        ds = group.get("buckets")
        if ds is None or not hasattr(ds, "dtype") or ds.ndim != 1 or ds.dtype != dtype \
                or not 1 <= ds.shape[0] <= max_elements:
            raise FormatError(f"{name}: 'buckets' must be a 1-D {dtype} dataset of 1 to "
                              f"{max_elements} values")
        try:
            return cls(ds[()], shape, seed=seed, sign=bool(sign), hash=hash_)
        except (ParameterError, ShapeError) as exc:
            raise FormatError(f"{name}: {exc}") from None


register_encoding(ENCODING, HashedWeight)
