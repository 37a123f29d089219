"""Fitting the bucket values of a hashed weight to a trained weight: :func:`hash_compress`."""

import math
from fractions import Fraction

import numba
import numpy as np

from .._errors import ParameterError, ShapeError
from .._validate import as_float_array, check_choice, check_finite, check_int, describe
from . import _kernels as _k
from ._xxh32 import DEFAULT_SEED
from .weight import HASHES, HashedWeight

__all__ = ["hash_compress", "n_buckets_for", "bucket_indices", "bucket_means",
           "bucket_means_twin"]


def n_buckets_for(size, compression):
    """The authors' bucket count ``hsize_w = ceil(size * compression)``.

    Parameters
    ----------
    size : int >= 1
        Number of virtual weights.
    compression : float or Fraction in (0, 1]
        E.g. 1/8.  The product is taken on the exact binary value of a float
        (``fractions.Fraction``) and rounded up, so ``0.125 * 64 = 8`` exactly.

    Returns
    -------
    int >= 1
    """
    size = check_int("size", size, lo=1)
    try:
        c = Fraction(compression)
    except (TypeError, ValueError):
        raise ParameterError(f"compression must be a number in (0, 1], got {compression!r}") \
            from None
    if isinstance(compression, bool) or not 0 < c <= 1:
        raise ParameterError(f"compression must be in (0, 1], got {compression!r}")
    return max(1, math.ceil(size * c))


def _check_common(n_buckets, seed, sign, hash):
    if isinstance(n_buckets, bool) or not isinstance(n_buckets, (int, np.integer)):
        raise ParameterError(f"n_buckets must be an integer >= 1, got {n_buckets!r}")
    if n_buckets < 1:
        raise ParameterError(f"n_buckets must be >= 1 (at least one stored value), got "
                             f"{n_buckets}")
    check_int("n_buckets", n_buckets, lo=1, hi=(1 << 31) - 1)
    check_int("seed", seed, lo=0, hi=(1 << 32) - 1)
    if not isinstance(sign, (bool, np.bool_)):
        raise ParameterError(f"sign must be a bool, got {sign!r}")
    check_choice("hash", hash, HASHES)


def bucket_indices(shape, n_buckets, *, seed=DEFAULT_SEED, sign=True, hash="string"):
    """Bucket and sign of every virtual weight of a hashed weight of ``shape``.

    Parameters
    ----------
    shape : tuple of int, 2-D (out, in) or 4-D (O, C, kh, kw)
    n_buckets, seed, sign, hash : as :func:`hash_compress`

    Returns
    -------
    (idx, sgn) : int64 0-based buckets (the authors' 1-based index minus one)
        and int8 signs in {-1, +1} (all +1 when ``sign`` is False), shape ``shape``.
    """
    _check_common(n_buckets, seed, sign, hash)
    return HashedWeight(np.zeros(n_buckets, np.float32), shape, seed=seed, sign=sign,
                        hash=hash).indices()


@numba.njit(cache=True)
def _means_kernel(w, idx, sgn, n_buckets, sums, counts):
    for k in range(w.shape[0]):
        b = idx[k]
        sums[b] += w[k] if sgn[k] > 0 else -w[k]
        counts[b] += 1
    for b in range(n_buckets):
        sums[b] = sums[b] / counts[b] if counts[b] else 0.0


def bucket_means(w64, idx, sgn, n_buckets):
    """Per-bucket mean of ``sgn * w64`` (float64): the sum in ascending flat order
    in float64 from +0.0, then one division by the count; empty buckets +0.0."""
    sums = np.zeros(n_buckets, dtype=np.float64)
    counts = np.zeros(n_buckets, dtype=np.int64)
    _means_kernel(w64, idx, sgn, n_buckets, sums, counts)
    return sums


def bucket_means_twin(w64, idx, sgn, n_buckets):
    """Twin of :func:`bucket_means` (a Python loop on Python floats)."""
    sums = [0.0] * n_buckets
    counts = [0] * n_buckets
    for wv, b, s in zip(w64.tolist(), idx.tolist(), sgn.tolist()):
        sums[b] += wv if s > 0 else -wv
        counts[b] += 1
    return np.array([s / c if c else 0.0 for s, c in zip(sums, counts)], dtype=np.float64)


def hash_compress(W, n_buckets, *, seed=DEFAULT_SEED, sign=True, hash="string"):
    """HashedNets weight fitted to a trained ``W`` by least squares (no retraining).

    Parameters
    ----------
    W : ndarray, float32 or float64, (out, in) or (O, C/groups, kh, kw), finite
    n_buckets : int >= 1
        Stored values (the authors' ``hsize_w``; :func:`n_buckets_for` gives
        ``ceil(W.size * compression)``).
    seed : int in [0, 2**32), default 1691 (the authors' ``hashSeed``)
    sign : bool, default True
        Use the sign hash xi (the authors' ``config.xi``).
    hash : {"string", "integer"}
        The authors' decimal key strings (FACTS.md §7.6) or the faster
        integer keys (:mod:`refcomp.hashing._xxh32`).

    Returns
    -------
    HashedWeight of ``W.shape`` and ``W.dtype``.

    Arithmetic
    ----------
    ``w[b]`` minimises ``sum over (o, i) in bucket b of (W[o, i] - xi w[b])**2``;
    as ``xi**2 = 1`` this is the mean of ``xi * W`` over the bucket (Chen et
    al. 2015 fit by training; this is the least-squares start without it).
    ``xi * W`` is exact (a sign flip); the sum runs in float64 in ascending
    C-order flat index from +0.0, is divided once by the count in float64,
    and rounded once (half-even) to W's dtype.  Empty buckets get +0.0.

    Raises
    ------
    ParameterError
        ``n_buckets < 1``, a bad seed, sign or hash, non-finite values in W.
    ShapeError, DTypeError
        W not a 2-D or 4-D float32/float64 ndarray.
    """
    as_float_array("W", W)
    if W.ndim not in (2, 4) or W.size == 0:
        raise ShapeError(f"W must be a non-empty 2-D (out, in) or 4-D (O, C, kh, kw) weight, "
                         f"got {describe(W)}")
    _check_common(n_buckets, seed, sign, hash)
    check_finite("W", W)
    idx, sgn = bucket_indices(W.shape, int(n_buckets), seed=seed, sign=sign, hash=hash)
    means = bucket_means(np.ascontiguousarray(W, dtype=np.float64).reshape(-1),
                         idx.reshape(-1), sgn.reshape(-1), int(n_buckets))
    return HashedWeight(means.astype(W.dtype), W.shape, seed=seed, sign=bool(sign), hash=hash)
