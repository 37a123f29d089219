"""Packing of non-negative integer codes at a fixed bit width (MSB first).

Used by every compact on-disk representation (quantized codes, sparse
indices).  Pure NumPy: the packing is a data-layout operation with no
arithmetic to get wrong, and ``np.packbits`` is already memory bound.

Layout: code ``j`` occupies bits ``[j*bits, (j+1)*bits)`` of the stream,
most significant bit first; bit ``k`` of the stream is bit ``7 - k % 8`` of
byte ``k // 8`` (``np.packbits`` big-endian order).  The final byte is
padded with zero bits.
"""

import numpy as np

from ._errors import DecodeError, ParameterError

__all__ = ["pack_codes", "unpack_codes", "packed_nbytes"]


def packed_nbytes(count, bits):
    """Bytes needed for ``count`` codes of ``bits`` bits each."""
    return (int(count) * int(bits) + 7) // 8


def pack_codes(codes, bits):
    """Pack a 1-D array of integers in ``[0, 2**bits)`` into ``uint8``.

    Parameters
    ----------
    codes : ndarray of any integer dtype, any shape (flattened in C order)
    bits : int in [1, 64]

    Returns
    -------
    ndarray of uint8, shape ``(packed_nbytes(codes.size, bits),)``
    """
    if not 1 <= bits <= 64:
        raise ParameterError(f"bits must be in [1, 64], got {bits}")
    flat = np.ascontiguousarray(codes).reshape(-1)
    if flat.size and (flat.min() < 0 or (bits < 64 and int(flat.max()) >= (1 << bits))):
        raise ParameterError(f"codes must lie in [0, 2**{bits}) to be packed at {bits} bits")
    u = flat.astype(np.uint64)
    shifts = np.arange(bits - 1, -1, -1, dtype=np.uint64)
    bitplanes = ((u[:, None] >> shifts[None, :]) & np.uint64(1)).astype(np.uint8)
    return np.packbits(bitplanes.reshape(-1))


def unpack_codes(data, bits, count, *, name="packed stream"):
    """Inverse of :func:`pack_codes`; returns ``uint64`` codes of length ``count``.

    Raises DecodeError when ``data`` is shorter than ``count * bits`` bits;
    the length is checked before anything is allocated.  ``name`` names the
    stream in the message (e.g. the HDF5 dataset it was read from).
    """
    if not 1 <= bits <= 64:
        raise DecodeError(f"{name}: packed bit width must be in [1, 64], got {bits}")
    need = packed_nbytes(count, bits)
    if data.dtype != np.uint8 or data.ndim != 1 or data.size < need:
        raise DecodeError(f"{name} holds {data.size} bytes, {need} needed for "
                          f"{count} codes of {bits} bits")
    bitplanes = np.unpackbits(data[:need])[: count * bits].reshape(count, bits)
    shifts = np.arange(bits - 1, -1, -1, dtype=np.uint64)
    return (bitplanes.astype(np.uint64) << shifts[None, :]).sum(axis=1, dtype=np.uint64)
