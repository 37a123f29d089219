"""The compressed-weight protocol: what every stored weight type provides.

A model's weight is either a plain float32/float64 ``numpy.ndarray`` or an
instance of a :class:`CompressedWeight` subclass (a quantized tensor, a
pruned mask, a sparse matrix, a factorised kernel...).  The rest of refcomp
sees compressed weights only through this protocol:

- the forward pass (:mod:`refcomp.layers`, :mod:`refcomp.model`) decodes a
  weight with :meth:`CompressedWeight.dequantize`, unless its type provides
  a compute hook (:attr:`CompressedWeight.linear`,
  :attr:`CompressedWeight.conv2d`) that runs the product itself;
- the HDF5 format (:mod:`refcomp.io`) writes it with ``to_hdf5`` and reads
  it back with the class registered for its encoding name
  (:mod:`refcomp.weights._registry`);
- size reports count :meth:`CompressedWeight.stored_bits`.

Nothing here knows any concrete type: they live in their own modules
(``refcomp.quantize``, ``refcomp.prune``, ``refcomp.sparse``,
``refcomp.compress``...) and register themselves.
"""

import abc

import numpy as np

from .._errors import FormatError

__all__ = ["CompressedWeight", "materialize", "is_weight", "PROTOCOL_METHODS", "HOOKS",
           "protocol_problems"]

#: Methods every compressed weight type implements (checked at registration).
PROTOCOL_METHODS = ("dequantize", "stored_bits", "to_hdf5", "from_hdf5")
#: Optional compute hooks a type may provide (``None`` when absent).
HOOKS = ("linear", "conv2d")


class CompressedWeight(abc.ABC):
    """Abstract base class of every compressed (stored) weight type.

    Required of an instance
    -----------------------
    shape : tuple of int
        Shape of the stored object (for matrix formats such as
        :class:`refcomp.sparse.CSR`, the matrix shape).
    dtype : numpy.dtype
        float32 or float64: the dtype :meth:`dequantize` returns.  The
        forward pass never casts, so it must equal the model's dtype.
    weight_shape : tuple of int
        Shape of the decoded weight as the layer sees it; defaults to
        ``shape`` (a CSR of a conv kernel stores the (O, C*kh*kw) matrix
        and reports the OIHW ``weight_shape``).

    Required methods (abstract: a subclass missing one cannot be
    instantiated, and :func:`refcomp.weights.register_encoding` refuses it)
    -----------------------------------------------------------------------
    dequantize() -> ndarray
        The decoded weight, shape ``weight_shape``, dtype ``dtype``; a pure
        function of the stored content (same bits on every call and host).
    stored_bits() -> int
        Exact bits of the stored payload and decoding rule (headers
        excluded), as the type documents.
    to_hdf5(group)
        Write into an empty ``h5py.Group``, setting
        ``group.attrs["encoding"]`` to the type's registered encoding name.
    from_hdf5(group, *, max_elements) -> instance  (classmethod)
        Read what ``to_hdf5`` wrote, bit-exactly; refuse declared sizes above
        ``max_elements`` before allocating (raise DecodeError/FormatError).

    Optional compute hooks (class attributes; ``None`` = not provided)
    --------------------------------------------------------------------
    linear(x, b, *, precision) -> ndarray
        Run ``x @ W.T + b`` (``x`` (N, in), ``b`` (out,) or None) for this
        weight of ``weight_shape`` (out, in).  :func:`refcomp.layers.dense`
        validates ``x`` and ``b`` against ``weight_shape`` and ``dtype``
        before the call (the hook receives clean input) and checks the
        result's shape and dtype after it.  The hook states its own
        arithmetic; :class:`refcomp.sparse.CSR`'s equals the dense
        reference bit for bit for finite inputs.
    conv2d(x, b, *, stride, padding, dilation, groups, layout, precision) -> ndarray
        Likewise for :func:`refcomp.layers.conv2d` with a weight of
        ``weight_shape`` (O, C/groups, kh, kw); the arguments are the
        layer's own, already validated.

    Optional method
    ---------------
    reshape(shape) -> CompressedWeight
        The same stored content decoding to another shape of the same size
        (C order), for encodings whose decoding is elementwise (a flat
        result stored as a layer's weight, e.g. by ``refcomp apply``).

    Class attributes
    ----------------
    encoding : str
        The name written to ``group.attrs["encoding"]`` (a class writing
        several names, e.g. CSR and CSC, registers each).
    """

    __slots__ = ()

    encoding = None
    linear = None
    conv2d = None

    @property
    def weight_shape(self):
        return tuple(int(s) for s in self.shape)

    @abc.abstractmethod
    def dequantize(self):
        """The decoded ndarray (shape ``weight_shape``, dtype ``dtype``)."""

    @abc.abstractmethod
    def stored_bits(self):
        """Exact stored size in bits (payload + decoding rule, headers excluded)."""

    @abc.abstractmethod
    def to_hdf5(self, group):
        """Write into an empty h5py group, with ``group.attrs["encoding"]`` set."""

    @classmethod
    @abc.abstractmethod
    def from_hdf5(cls, group, *, max_elements=1 << 31):
        """Read what :meth:`to_hdf5` wrote (bit-exact)."""

    def __array__(self, dtype=None, copy=None):
        out = self.dequantize()
        return out if dtype is None else out.astype(dtype)


def protocol_problems(cls):
    """Names of protocol methods ``cls`` lacks or leaves abstract (empty if none).

    Parameters
    ----------
    cls : type

    Returns
    -------
    list of str
    """
    missing = [m for m in PROTOCOL_METHODS if not callable(getattr(cls, m, None))]
    missing += sorted(getattr(cls, "__abstractmethods__", ()) or ())
    for hook in HOOKS:
        v = getattr(cls, hook, None)
        if v is not None and not callable(v):
            missing.append(f"{hook} (must be a method or None)")
    return sorted(set(missing))


def is_weight(value):
    """True for a value a layer accepts as a weight: an ndarray or a CompressedWeight."""
    return isinstance(value, (np.ndarray, CompressedWeight))


def materialize(w):
    """The plain ndarray behind a weight.

    Parameters
    ----------
    w : ndarray, CompressedWeight, or any object with ``dequantize()``

    Returns
    -------
    ndarray
        ``w`` itself for an ndarray (no copy), else ``w.dequantize()``
        (the type's documented decoding; no cast).

    Raises
    ------
    FormatError
        ``w`` is neither.
    """
    if isinstance(w, np.ndarray):
        return w
    if hasattr(w, "dequantize"):
        return w.dequantize()
    raise FormatError(f"weight of type {type(w).__name__} is neither an ndarray nor has "
                      "dequantize()")
