"""The single result type of every quantizer: :class:`Quantized`.

A ``Quantized`` holds integer ``codes`` (same shape as the input) plus the
rule that maps codes back to values.  Decoding rules are registered by
quantizer modules with :func:`register_decoder`; the rule is looked up by
``decoder`` name so that files written by one version decode identically
in the next (the name is part of the HDF5 format, see ``docs/FORMAT.md``).
"""

import numpy as np

from .._bitpack import pack_codes, unpack_codes
from .._errors import DecodeError, FormatError, ParameterError
from ..weights import CompressedWeight, register_encoding
from ..weights._h5util import parse_attrs, shape_attr, write_dataset

__all__ = ["Quantized", "register_decoder", "narrowest_code_dtype"]

_DECODERS = {}


def register_decoder(name, func):
    """Register ``func(q: Quantized) -> ndarray`` as the decoding rule ``name``.

    ``func`` must return an array of dtype ``q.dtype`` and shape ``q.shape``
    and be a pure function of ``q.codes`` and ``q.params``.
    """
    _DECODERS[name] = func
    return func


def narrowest_code_dtype(lo, hi):
    """Smallest NumPy integer dtype holding every integer in [lo, hi]."""
    for dt in (np.uint8, np.int8, np.uint16, np.int16, np.uint32, np.int32,
               np.uint64, np.int64):
        info = np.iinfo(dt)
        if info.min <= lo and hi <= info.max:
            return np.dtype(dt)
    raise ParameterError(f"code range [{lo}, {hi}] does not fit in 64 bits")


def _decode_codebook(q):
    # Exact table lookup: the codebook already holds values of q.dtype.
    from . import _decoder_checks as C
    C.need(q.params, "codebook", "codebook")
    cb = q.params["codebook"]
    if not isinstance(cb, np.ndarray) or cb.ndim != 1 or cb.dtype != q.dtype:
        raise ParameterError(f"codebook decoder: codebook must be a 1-D ndarray of dtype "
                             f"{q.dtype}, got {getattr(cb, 'dtype', type(cb).__name__)} "
                             f"{getattr(cb, 'shape', '')}")
    C.check_codes(q.codes, "codebook", 0, cb.size - 1)
    return cb[q.codes.astype(np.intp)]


register_decoder("codebook", _decode_codebook)


class Quantized(CompressedWeight):
    """Integer codes plus the rule that decodes them.

    Attributes
    ----------
    codes : ndarray of integers, same shape as the quantized input, the
        narrowest suitable dtype (see :func:`narrowest_code_dtype`).
    bits : int
        Bits per code when stored (codes are stored as ``codes - code_min``
        packed at ``bits`` bits, so signed codes are fine).
    method : str
        Name of the quantizer that produced this (``"uniform"``, ``"kmeans"``...).
    decoder : str
        Name of the registered decoding rule (``"codebook"``, ``"affine"``...).
    params : dict
        Everything the decoder needs plus the method's options: ndarrays,
        Python ints/floats/str/bool or None.  For ``decoder="codebook"``,
        ``params["codebook"]`` is a sorted 1-D array of dtype ``dtype``.
    dtype : numpy.dtype
        Dtype of the quantized input; ``dequantize()`` returns it.
    info : dict
        Diagnostics not needed to decode (iterations, SSE, level count...).
        Not stored in files.

    Notes
    -----
    Stored inside a model or alone: ``refcomp.save(q, path)`` /
    ``refcomp.load(path)`` write and read a single Quantized bit-exactly
    (``docs/FORMAT.md``: "Single-weight files" and every decoder's
    arithmetic).
    """

    __slots__ = ("codes", "bits", "method", "decoder", "params", "dtype", "info")
    encoding = "quantized"

    def __init__(self, codes, *, bits, method, decoder, params, dtype, info=None):
        self.codes = codes
        self.bits = int(bits)
        self.method = str(method)
        self.decoder = str(decoder)
        self.params = dict(params)
        self.dtype = np.dtype(dtype)
        self.info = dict(info or {})

    @property
    def shape(self):
        return self.codes.shape

    @property
    def codebook(self):
        """The sorted codebook for codebook-decoded results, else None."""
        return self.params.get("codebook")

    def dequantize(self):
        """Decoded values, dtype ``self.dtype``, shape ``self.shape``."""
        try:
            func = _DECODERS[self.decoder]
        except KeyError:
            raise FormatError(f"unknown quantized decoder {self.decoder!r}") from None
        out = func(self)
        assert out.dtype == self.dtype and out.shape == self.shape
        return out

    def reshape(self, shape):
        """The same codes and rule decoding to ``shape`` (C order), for storage in a model.

        Parameters
        ----------
        shape : tuple of int, with the same number of elements

        Returns
        -------
        Quantized
            Codes reshaped (a copy), the same params: ``dequantize()`` equals
            ``self.dequantize().reshape(shape)`` bit for bit, because every
            per-tensor decoding rule is elementwise.

        Raises
        ------
        ParameterError
            A different element count, or a per-channel rule (``axis`` set),
            whose channels would not follow the new shape.
        """
        shape = tuple(int(s) for s in shape)
        if int(np.prod(shape, dtype=np.int64)) != self.codes.size:
            raise ParameterError(f"cannot reshape {self.shape} codes to {shape}")
        if self.params.get("axis") is not None:
            raise ParameterError(f"a per-channel {self.method!r} result (axis="
                                 f"{self.params['axis']}) cannot be reshaped")
        return Quantized(self.codes.reshape(shape).copy(), bits=self.bits, method=self.method,
                         decoder=self.decoder, params=self.params, dtype=self.dtype,
                         info=self.info)

    def __repr__(self):
        return (f"Quantized(method={self.method!r}, bits={self.bits}, shape={self.shape}, "
                f"dtype={self.dtype}, decoder={self.decoder!r})")

    def __eq__(self, other):
        if not isinstance(other, Quantized):
            return NotImplemented
        if (self.bits, self.method, self.decoder, self.dtype) != (
                other.bits, other.method, other.decoder, other.dtype):
            return False
        if self.codes.dtype != other.codes.dtype or not np.array_equal(self.codes, other.codes):
            return False
        if self.params.keys() != other.params.keys():
            return False
        for k, v in self.params.items():
            w = other.params[k]
            if isinstance(v, np.ndarray) or isinstance(w, np.ndarray):
                if not (isinstance(v, np.ndarray) and isinstance(w, np.ndarray)
                        and v.dtype == w.dtype and v.shape == w.shape
                        and v.tobytes() == w.tobytes()):
                    return False
            elif v != w and not (v != v and w != w):  # NaN params compare equal
                return False
        return True

    __hash__ = None

    # -- storage ---------------------------------------------------------------
    def stored_bits(self):
        """Bits written for codes plus decoding-rule arrays (headers excluded)."""
        total = self.codes.size * self.bits
        for v in self.params.values():
            if isinstance(v, np.ndarray):
                total += v.size * v.dtype.itemsize * 8
        return total

    def to_hdf5(self, group):
        """Write into an (empty) h5py group: packed codes, params, attributes."""
        code_min = int(self.codes.min()) if self.codes.size else 0
        group.attrs["encoding"] = "quantized"
        group.attrs["bits"] = self.bits
        group.attrs["method"] = self.method
        group.attrs["decoder"] = self.decoder
        group.attrs["dtype"] = self.dtype.str
        group.attrs["code_dtype"] = self.codes.dtype.str
        group.attrs["code_min"] = code_min
        group.attrs["shape"] = np.asarray(self.codes.shape, dtype=np.int64)
        offs = self.codes.astype(np.int64) - code_min
        write_dataset(group, "codes", pack_codes(offs.astype(np.uint64), self.bits))
        params = group.create_group("params")
        for k, v in self.params.items():
            if isinstance(v, np.ndarray):
                write_dataset(params, k, v)
            elif v is None:
                params.attrs[k] = "__none__"
            elif isinstance(v, bool):
                params.attrs[k] = np.bool_(v)
            else:
                params.attrs[k] = v

    @classmethod
    def from_hdf5(cls, group, *, max_elements=1 << 31):
        """Read what :meth:`to_hdf5` wrote; bit-exact.  Raises DecodeError/FormatError."""
        f = parse_attrs(group, "quantized", {
            "shape": shape_attr, "bits": int, "code_dtype": _int_dtype, "dtype": np.dtype,
            "code_min": int, "method": str, "decoder": str})
        shape, bits, code_dtype, dtype, code_min, method, decoder = f.values()
        if any(s < 0 for s in shape) or not 1 <= bits <= 64:
            raise DecodeError(f"{group.name}: invalid shape {shape} or bits {bits}")
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        if count > max_elements:
            raise DecodeError(f"{group.name}: declares {count} codes, more than the "
                              f"limit {max_elements}")
        if "codes" not in group or "params" not in group:
            raise FormatError(f"{group.name}: missing 'codes' or 'params'")
        packed = group["codes"][()]
        offs = unpack_codes(packed, bits, count, name="'codes'")
        codes = (offs.astype(np.int64) + code_min)
        info = np.iinfo(code_dtype)
        if codes.size and (codes.min() < info.min or codes.max() > info.max):
            raise DecodeError(f"{group.name}: codes overflow {code_dtype}")
        codes = codes.astype(code_dtype).reshape(shape)
        params = {}
        for k, v in group["params"].attrs.items():
            if isinstance(v, str) and v == "__none__":
                params[k] = None
            elif isinstance(v, np.bool_):
                params[k] = bool(v)
            elif isinstance(v, np.integer):
                params[k] = int(v)
            elif isinstance(v, np.floating):
                params[k] = float(v)
            else:
                params[k] = v
        for k, ds in group["params"].items():
            params[k] = ds[()]
        if decoder not in _DECODERS:
            raise FormatError(f"{group.name}: unknown quantized decoder {decoder!r}")
        return cls(codes, bits=bits, method=method, decoder=decoder, params=params, dtype=dtype)


def _int_dtype(value):
    """An integer dtype from an HDF5 attribute (ValueError otherwise)."""
    dt = np.dtype(value)
    if dt.kind not in "iu":
        raise ValueError(f"{dt} is not an integer dtype")
    return dt


register_encoding("quantized", Quantized)
