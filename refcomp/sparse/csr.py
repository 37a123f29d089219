"""Compressed sparse row / column storage of a weight matrix (CSR, CSC).

Deep Compression stores a pruned layer "using compressed sparse row (CSR) or
compressed sparse column (CSC) format, which requires 2a + n + 1 numbers"
(Han, Mao & Dally, ICLR 2016, §2; FACTS.md §7.1).  A :class:`CSR` or
:class:`CSC` stands in a :class:`refcomp.Layer` wherever an ndarray may (it
has ``dequantize()``), is saved by :func:`refcomp.save` under the HDF5
encodings ``"csr"`` / ``"csc"`` and loads back bit for bit.  A dense layer
whose ``W`` is a CSR runs through the sparse kernels of
:mod:`refcomp.kernels.sparse` (:func:`refcomp.sparse.linear`).

Weights of more than two dimensions (a conv kernel OIHW) are stored as the
matrix ``W.reshape(W.shape[0], -1)``: rows are output channels and columns
the (c, i, j) reduction index in C order, which is exactly the summation
order of :func:`refcomp.layers.conv2d`; ``weight_shape`` remembers the
original shape for :meth:`CSR.to_dense`.
"""

import numpy as np

from .._errors import DTypeError, FormatError, ParameterError, ShapeError
from .._validate import as_float_array, describe
from ..weights import CompressedWeight, register_encoding
from ..weights._h5util import parse_attrs, shape_attr, write_dataset
from ..kernels.sparse import row_order as _row_order
from ..kernels.sparse import sliced_layout as _sliced_layout
from ..kernels.sparse import use_sliced as _use_sliced
from . import ops as _ops

__all__ = ["CSR", "CSC", "from_masked"]

_INDEX_MAX = np.iinfo(np.int32).max


def _compress(W, keep):
    """Row-compressed arrays of the 2-D ``W`` at the True entries of ``keep``."""
    rows, cols = np.nonzero(keep)                    # C order: row-major, columns increasing
    counts = np.bincount(rows, minlength=W.shape[0]) if W.shape[0] else np.zeros(0, np.int64)
    indptr = np.zeros(W.shape[0] + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    return indptr, cols.astype(np.int32), np.ascontiguousarray(W[rows, cols])


def _frozen(a):
    v = a.view()
    v.flags.writeable = False
    return v


def _as_matrix(name, W):
    as_float_array(name, W)
    if W.ndim < 2:
        raise ShapeError(f"{name} must have at least 2 dimensions (rows = axis 0), "
                         f"got {describe(W)}")
    return W.reshape(W.shape[0], -1) if W.ndim > 2 else W


class _Compressed(CompressedWeight):
    """Shared body of CSR and CSC (``_major`` = 0 for rows, 1 for columns)."""

    __slots__ = ("shape", "weight_shape", "indptr", "indices", "data", "_order", "_sliced")
    _major = 0
    format = None

    def __init__(self, indptr, indices, data, shape, *, weight_shape=None):
        shape = tuple(int(s) for s in shape)
        self.shape = shape
        self.weight_shape = shape if weight_shape is None else tuple(int(s) for s in weight_shape)
        self.indptr, self.indices, self.data = indptr, indices, data
        _check_structure(self)
        # frozen: read-only views (the caller's arrays keep their flags); a
        # non-contiguous array (a strided or reversed view, a field of a
        # record array) is copied first: the kernels read them as packed.
        self.indptr, self.indices, self.data = (
            _frozen(np.ascontiguousarray(a)) for a in (indptr, indices, data))
        self._clear_caches()

    def _clear_caches(self):
        self._order = None
        self._sliced = False          # not decided yet (None: not used)

    # Pickles carry the matrix, not the kernels' caches (rebuilt on use; a
    # pickle of an older version, without the cache slots, loads too).
    def __getstate__(self):
        return {k: getattr(self, k) for k in ("shape", "weight_shape", "indptr", "indices",
                                              "data")}

    def __setstate__(self, state):
        if isinstance(state, tuple):              # default slots pickle: (None, {slot: value})
            state = state[1]
        for k in ("shape", "weight_shape", "indptr", "indices", "data"):
            setattr(self, k, state[k])
        self._clear_caches()

    # -- construction -------------------------------------------------------------
    @classmethod
    def from_dense(cls, W, *, mask=None):
        """Compress a dense weight.

        Parameters
        ----------
        W : ndarray, float32 or float64, ndim >= 2
            The weight; more than 2 dimensions are flattened to
            ``(W.shape[0], prod(W.shape[1:]))`` in C order and the shape is
            kept in ``weight_shape``.
        mask : ndarray of bool, shape of ``W``, optional
            Keep exactly these positions, whatever their value (an explicit
            0.0 or -0.0 under the mask is stored bit for bit).  Default:
            keep ``W != 0``.  Under this default -0.0 compares equal to 0 and
            is dropped (it decodes as +0.0), and NaN compares unequal to 0
            and is kept with its payload; Inf is kept.

        Returns
        -------
        CSR or CSC with ``data.dtype == W.dtype``; within a row (CSR) or
        column (CSC) the indices are strictly increasing.
        """
        Wm = _as_matrix("W", W)
        if mask is None:
            keep = Wm != 0
        else:
            if not isinstance(mask, np.ndarray) or mask.dtype != np.bool_:
                raise DTypeError(f"mask must be a numpy.ndarray of dtype bool, got "
                                 f"{describe(mask)}")
            if mask.shape != W.shape:
                raise ShapeError(f"mask must have the shape of W {W.shape}, got {describe(mask)}")
            keep = mask.reshape(Wm.shape)
        if max(Wm.shape) > _INDEX_MAX:
            raise ShapeError(f"W has a dimension above {_INDEX_MAX} (int32 indices), "
                             f"got {describe(W)}")
        if cls._major == 0:
            indptr, indices, data = _compress(Wm, keep)
        else:
            indptr, indices, data = _compress(Wm.T, keep.T)
        return cls(indptr, indices, data, Wm.shape, weight_shape=W.shape)

    @classmethod
    def from_masked(cls, masked):
        """Exactly the kept positions of a :class:`refcomp.prune.Masked` (see
        :func:`from_masked`)."""
        return from_masked(masked, format=cls.format)

    # -- properties -----------------------------------------------------------------
    @property
    def nnz(self):
        """Number of stored entries (explicit zeros included)."""
        return int(self.data.shape[0])

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def density(self):
        n = self.shape[0] * self.shape[1]
        return self.nnz / n if n else 1.0

    def to_dense(self):
        """Dense array of shape ``weight_shape``, dtype ``data.dtype``: stored
        entries bit-exact (NaN payloads, -0.0), other entries +0.0."""
        out = np.zeros(self.shape, dtype=self.data.dtype)
        major = np.repeat(np.arange(len(self.indptr) - 1), np.diff(self.indptr))
        if self._major == 0:
            out[major, self.indices] = self.data
        else:
            out[self.indices, major] = self.data
        return out.reshape(self.weight_shape)

    def processing_order(self):
        """Row processing order of the product kernels (int64, read-only),
        computed on first use and kept: :func:`refcomp.kernels.sparse.row_order`.
        It only schedules independent rows; results never depend on it."""
        if self._order is None:
            self._order = _frozen(_row_order(self.indptr))
        return self._order

    def spmv_layout(self):
        """The sliced layout :func:`refcomp.sparse.spmv` runs on (a
        :class:`refcomp.kernels._sell.SlicedLayout`, read-only), or None
        where the row loop is used (:func:`refcomp.kernels.sparse.use_sliced`);
        decided and built on first use and kept (about 8 bytes per stored
        float32 entry).  It only schedules the same additions; results never
        depend on it."""
        if self._sliced is False:
            layout = None
            if self._major == 0 and _use_sliced(self.indptr):
                layout = _sliced_layout(self.indptr, self.indices, self.data)
                layout = type(layout)(*(_frozen(a) for a in layout))
            self._sliced = layout      # set only once built (an interrupted build retries)
        return self._sliced

    def dequantize(self):
        """Same as :meth:`to_dense` (so a Model decodes it like any compressed weight)."""
        return self.to_dense()

    def stored_bits(self):
        """Bits of the three arrays at their storage width (headers excluded):
        64 per indptr entry, 32 per index, the data width per value."""
        return 64 * self.indptr.size + 32 * self.indices.size + 8 * self.data.nbytes

    def __eq__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        return (self.shape == other.shape and self.weight_shape == other.weight_shape
                and self.dtype == other.dtype
                and np.array_equal(self.indptr, other.indptr)
                and np.array_equal(self.indices, other.indices)
                and self.data.tobytes() == other.data.tobytes())

    __hash__ = None

    def __repr__(self):
        return (f"{type(self).__name__}(shape={self.shape}, dtype={self.dtype}, "
                f"nnz={self.nnz}, weight_shape={self.weight_shape})")

    # -- storage --------------------------------------------------------------------
    def to_hdf5(self, group):
        """Write into an empty h5py group: attributes encoding ("csr"/"csc"),
        dtype, shape (2 ints), weight_shape; datasets indptr (int64),
        indices (int32), data (the value dtype)."""
        group.attrs["encoding"] = self.format
        group.attrs["dtype"] = self.dtype.str
        group.attrs["shape"] = np.asarray(self.shape, dtype=np.int64)
        group.attrs["weight_shape"] = np.asarray(self.weight_shape, dtype=np.int64)
        write_dataset(group, "indptr", self.indptr)
        write_dataset(group, "indices", self.indices)
        write_dataset(group, "data", self.data)

    @classmethod
    def from_hdf5(cls, group, *, max_elements=1 << 31):
        """Read what :meth:`to_hdf5` wrote, bit-exact.

        Sizes and dtypes are checked from the dataset headers before any
        array is read; then indptr must start at 0, be non-decreasing and end
        at nnz, and indices must lie in range and increase strictly within
        each row/column.  Any missing, mistyped or inconsistent field raises
        FormatError.
        """
        name = group.name
        shape, wshape, dtype = parse_attrs(group, cls.format, {
            "shape": shape_attr, "weight_shape": shape_attr, "dtype": np.dtype}).values()
        if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise FormatError(f"{name}: unsupported {cls.format} dtype {dtype}")
        if len(shape) != 2 or any(s < 0 for s in shape + wshape) or len(wshape) < 2:
            raise FormatError(f"{name}: invalid shape {shape} / weight_shape {wshape}")
        if max(shape) > _INDEX_MAX or int(np.prod(wshape, dtype=object)) != shape[0] * shape[1] \
                or wshape[0] != shape[0]:
            raise FormatError(f"{name}: weight_shape {wshape} does not flatten to {shape}")
        for key in ("indptr", "indices", "data"):
            if key not in group:
                raise FormatError(f"{name}: missing dataset {key!r}")
        n_major = shape[cls._major]
        want = {"indptr": (np.int64, n_major + 1), "indices": (np.int32, None),
                "data": (dtype, None)}
        nnz = group["data"].shape[0] if group["data"].ndim == 1 else -1
        for key, (dt, length) in want.items():
            ds = group[key]
            length = nnz if length is None else length
            if ds.dtype != np.dtype(dt) or ds.shape != (length,):
                base = "" if key == "indptr" else (
                    " (one per entry of 'data')" if key == "indices" else " (1-D)")
                raise FormatError(f"{name}: {key!r} holds {ds.shape} {ds.dtype}, expected "
                                  f"({length},) {np.dtype(dt)}{base}")
        if nnz > shape[0] * shape[1] or nnz + n_major + 1 > max_elements:
            raise FormatError(f"{name}: declares {nnz} entries in a {shape} matrix (limit "
                              f"{max_elements} elements)")
        arrays = [group[k][()] for k in ("indptr", "indices", "data")]
        return cls(*arrays, shape, weight_shape=wshape)


def _check_structure(A):
    """Raise FormatError unless A's arrays form a canonical compressed matrix."""
    indptr, indices, data = A.indptr, A.indices, A.data
    n_major, n_minor = A.shape[A._major], A.shape[1 - A._major]
    for key, arr, dt in (("indptr", indptr, (np.int64,)), ("indices", indices, (np.int32,)),
                         ("data", data, (np.float32, np.float64))):
        if not isinstance(arr, np.ndarray) or arr.ndim != 1 or arr.dtype not in dt:
            raise FormatError(f"{A.format}: {key} must be a 1-D array of dtype "
                        f"{'/'.join(np.dtype(d).name for d in dt)}, got {describe(arr)}")
    if indptr.shape[0] != n_major + 1 or indices.shape != data.shape:
        raise FormatError(f"{A.format}: indptr has {indptr.shape[0]} entries for {n_major} "
                    f"{'rows' if A._major == 0 else 'columns'}, indices {indices.shape[0]} and "
                    f"data {data.shape[0]}")
    if indptr[0] != 0 or indptr[-1] != data.shape[0] or np.any(np.diff(indptr) < 0):
        raise FormatError(f"{A.format}: indptr must start at 0, never decrease and end at "
                    f"nnz={data.shape[0]}")
    if indices.size:
        if indices.min() < 0 or indices.max() >= n_minor:
            raise FormatError(f"{A.format}: indices must lie in [0, {n_minor})")
        # strictly increasing inside each row: every step is > 0 except at row starts
        step = np.diff(indices.astype(np.int64))
        starts = np.zeros(indices.size, dtype=bool)
        starts[indptr[1:-1][indptr[1:-1] < indices.size]] = True
        if np.any((step <= 0) & ~starts[1:]):
            raise FormatError(f"{A.format}: indices must increase strictly within each "
                        f"{'row' if A._major == 0 else 'column'}")
    if A.weight_shape[0] != A.shape[0] or \
            int(np.prod(A.weight_shape, dtype=object)) != A.shape[0] * A.shape[1]:
        raise FormatError(f"{A.format}: weight_shape {A.weight_shape} does not flatten to {A.shape}")


class CSR(_Compressed):
    """Compressed sparse row matrix (frozen: arrays are read-only).

    Attributes
    ----------
    shape : (rows, cols)
    indptr : int64 ndarray (rows + 1,); row r holds entries indptr[r]:indptr[r+1]
    indices : int32 ndarray (nnz,); column of each entry, strictly increasing in a row
    data : float32 or float64 ndarray (nnz,)
    weight_shape : tuple; shape returned by :meth:`to_dense` (``shape`` for a matrix)

    The constructor ``CSR(indptr, indices, data, shape, weight_shape=None)``
    validates the structure (FormatError if inconsistent) and keeps read-only
    views of the arrays (no copy when they are contiguous, which the caller
    must not modify afterwards; a non-contiguous array is copied).
    """

    __slots__ = ()
    _major = 0
    format = encoding = "csr"

    def linear(self, x, b=None, *, precision="reference"):
        """Compute hook of :func:`refcomp.layers.dense`: :func:`refcomp.sparse.linear`.

        One arithmetic for both precisions (the sparse product in the
        reference order; see :func:`refcomp.sparse.linear`).
        """
        return _ops.linear(x, self, b)

    def conv2d(self, x, b=None, *, stride=1, padding=0, dilation=1, groups=1, layout="NCHW",
               precision="reference"):
        """Compute hook of :func:`refcomp.layers.conv2d`: :func:`refcomp.sparse.conv2d`.

        One arithmetic for both precisions (the reference (c, i, j) order;
        see :func:`refcomp.sparse.conv2d`).
        """
        return _ops.conv2d(x, self, b, stride=stride, padding=padding, dilation=dilation,
                           groups=groups, layout=layout)

    def to_csc(self):
        """The same matrix in CSC form (values bit-exact)."""
        return CSC.from_dense(self.to_dense(), mask=self._mask())

    def transpose(self):
        """``A.T`` as a CSR of shape (cols, rows) (weight_shape becomes the 2-D shape)."""
        Wt = self.to_dense().reshape(self.shape).T
        return CSR.from_dense(Wt, mask=np.ascontiguousarray(self._mask().reshape(self.shape).T))

    def _mask(self):
        m = np.zeros(self.shape, dtype=bool)
        m[np.repeat(np.arange(self.shape[0]), np.diff(self.indptr)), self.indices] = True
        return m.reshape(self.weight_shape)


class CSC(_Compressed):
    """Compressed sparse column matrix: as :class:`CSR` with rows and columns
    exchanged (``indptr`` has cols + 1 entries, ``indices`` are row indices,
    strictly increasing within a column)."""

    __slots__ = ()
    _major = 1
    format = encoding = "csc"

    def to_csr(self):
        """The same matrix in CSR form (values bit-exact)."""
        m = np.zeros(self.shape, dtype=bool)
        m[self.indices, np.repeat(np.arange(self.shape[1]), np.diff(self.indptr))] = True
        return CSR.from_dense(self.to_dense(), mask=m.reshape(self.weight_shape))


def from_masked(masked, *, format="csr"):
    """CSR (or CSC) of a :class:`refcomp.prune.Masked` weight: exactly its kept
    positions, values bit-exact (a kept 0.0 stays an explicit entry).

    Parameters
    ----------
    masked : refcomp.prune.masked.Masked, ndim >= 2
    format : {"csr", "csc"}
    """
    from ..prune.masked import Masked
    if not isinstance(masked, Masked):
        raise ParameterError(f"masked must be a refcomp Masked weight, got {type(masked).__name__}")
    cls = {"csr": CSR, "csc": CSC}.get(format)
    if cls is None:
        raise ParameterError(f"format must be 'csr' or 'csc', got {format!r}")
    return cls.from_dense(masked.values, mask=masked.mask)


register_encoding("csr", CSR)
register_encoding("csc", CSC)
