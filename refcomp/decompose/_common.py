"""Shared pieces of the low-rank decompositions: argument checks, the energy
rule, the sign convention of singular vectors, fixed-order products and the
rounding-error factors of the factorized forward passes (private)."""

import math
import numbers
from fractions import Fraction

import numpy as np

from .._errors import DecodeError, FormatError, ParameterError
from .._validate import as_float_array, check_finite, check_int, describe
from ..kernels.linear import matmul_acc64

__all__ = ["parse_energy", "check_rank", "energy_rank", "fix_signs", "svd_desc",
           "exact_column_mean", "seq_matmul", "float_weight", "path_factor", "abs_term",
           "read_array", "rank_tolerance"]

_U64 = 2.0 ** -53


def parse_energy(energy, name="energy"):
    """``energy`` in (0, 1] as an exact :class:`fractions.Fraction`.

    A float is read as the decimal number its shortest ``repr`` denotes
    (``0.9`` means exactly 9/10, not the binary double nearest to it), so
    that a spectrum [9, 1] at energy 0.9 keeps one component; ints and
    Fractions are exact already.  NaN, bools, strings and values outside
    (0, 1] raise ParameterError.
    """
    if isinstance(energy, bool) or not isinstance(energy, (numbers.Real, Fraction)):
        raise ParameterError(f"{name} must be a number in (0, 1], got {energy!r}")
    if isinstance(energy, (float, np.floating)):
        if not math.isfinite(float(energy)):
            raise ParameterError(f"{name} must be a number in (0, 1], got {energy!r}")
        value = Fraction(repr(float(energy)))
    else:
        value = Fraction(energy)
    if not 0 < value <= 1:
        raise ParameterError(f"{name} must be in (0, 1] (a fraction of the spectrum's sum), "
                             f"got {energy!r}")
    return value


def check_rank(name, rank, full, what):
    """``rank`` as an int in [1, full]; ParameterError naming the full rank otherwise."""
    if isinstance(rank, bool) or not isinstance(rank, (numbers.Integral, np.integer)):
        raise ParameterError(f"{name} must be an integer, got {rank!r}")
    rank = int(rank)
    if not 1 <= rank <= full:
        raise ParameterError(f"{name} must be in [1, {full}] ({what}), got {rank}")
    return rank


def energy_rank(eigenvalues, energy):
    """Smallest Q whose leading eigenvalues carry at least ``energy`` of their sum.

    Parameters
    ----------
    eigenvalues : 1-D array-like of float, non-negative, in decreasing order
        (a spectrum: PCA eigenvalues, or squared singular values).
    energy : float, int or Fraction in (0, 1]
        Read exactly by :func:`parse_energy` (0.9 means 9/10).

    Returns
    -------
    int
        The smallest ``Q`` in [0, len] with ``sum(lam[:Q]) >= energy *
        sum(lam)``, compared exactly in rational arithmetic on the float
        values (Fernandez Brillet et al. §3: keep the eigenvectors of the
        largest eigenvalues).  Ties: Q is never extended over eigenvalues
        equal to the last kept one (the smallest count wins).  An all-zero
        spectrum gives Q = 0 (no component; the reconstruction is the mean).

    Raises
    ------
    ParameterError
        ``energy`` outside (0, 1]; a negative, non-finite or increasing
        spectrum.
    """
    e = parse_energy(energy)
    lam = np.asarray(eigenvalues, dtype=np.float64)
    if lam.ndim != 1:
        raise ParameterError(f"eigenvalues must be 1-D, got shape {lam.shape}")
    if not np.all(np.isfinite(lam)) or np.any(lam < 0):
        raise ParameterError("eigenvalues must be finite and non-negative")
    if np.any(np.diff(lam) > 0):
        raise ParameterError("eigenvalues must be in decreasing order")
    fr = [Fraction(float(v)) for v in lam]
    target = e * sum(fr, Fraction(0))
    acc = Fraction(0)
    for q in range(len(fr) + 1):
        if acc >= target:
            return q
        acc += fr[q]
    return len(fr)      # unreachable: acc reaches the sum >= target


def fix_signs(vectors, axis=0):
    """Flip each vector so that its entry of largest magnitude is positive.

    ``vectors`` holds one vector per column (``axis=0``: entries along rows)
    or per row (``axis=1``).  The entry of largest ``|v|`` (ties to the
    lowest index) is made positive; an all-zero vector is left as is.
    Returns ``(flipped, signs)`` with ``signs`` the +-1.0 float64 factors
    applied (exact: a sign flip never rounds).
    """
    v = np.asarray(vectors)
    mags = np.abs(v)
    idx = np.argmax(mags, axis=axis)          # first maximum: lowest index on ties
    if axis == 0:
        lead = v[idx, np.arange(v.shape[1])]
    else:
        lead = v[np.arange(v.shape[0]), idx]
    signs = np.where(lead < 0, -1.0, 1.0)
    out = v * (signs[None, :] if axis == 0 else signs[:, None])
    return out, signs


def rank_tolerance(s, shape):
    """NumPy's ``matrix_rank`` cutoff: ``s.max() * max(shape) * eps(float64)``."""
    return (float(s[0]) if s.size else 0.0) * max(shape) * np.finfo(np.float64).eps


def svd_desc(A):
    """Thin SVD of a float64 matrix by LAPACK (``numpy.linalg.svd``, gesdd).

    Returns ``(U, s, Vt)`` with ``s`` decreasing (LAPACK's order; exactly
    equal singular values keep LAPACK's order) and signs fixed so that every
    right singular vector (row of ``Vt``) has its largest-magnitude entry
    positive (ties to the lowest index); the matching column of ``U`` is
    flipped with it, so ``U diag(s) Vt`` is unchanged.  Deterministic for a
    given machine, LAPACK build and thread count.
    """
    U, s, Vt = np.linalg.svd(A, full_matrices=False)
    Vt, signs = fix_signs(Vt, axis=1)
    return U * signs[None, :], s, Vt


def exact_column_mean(X):
    """Column means of a float64 matrix: exactly rounded sum (``math.fsum``),
    then one float64 division by the row count (two roundings in all)."""
    n = X.shape[0]
    return np.array([math.fsum(X[:, j]) / n for j in range(X.shape[1])], dtype=np.float64)


def seq_matmul(a, b, *, exact_products=False):
    """``a @ b`` in float64, each entry summed sequentially over the inner
    index in increasing order from +0.0 (refcomp.kernels.linear.matmul_acc64:
    the same bits for any thread count).  ``exact_products`` when both
    operands hold float32 values (the kernel then fuses the exact product)."""
    a = np.ascontiguousarray(a, dtype=np.float64)
    b = np.ascontiguousarray(b, dtype=np.float64)
    if a.shape[1] == 0:
        return np.zeros((a.shape[0], b.shape[1]), np.float64)
    return matmul_acc64(a, b, exact_products=exact_products)


def float_weight(name, W, ndims):
    """Validate a float32/float64 weight of one of ``ndims``, finite, non-empty."""
    as_float_array(name, W, ndim=ndims, allow_empty=False)
    check_finite(name, W)
    return W


def gamma(k, u):
    """``k u / (1 - k u)`` (FACTS.md §8), rounded up a little to stay an upper bound."""
    if not k * u < 0.5:
        raise ParameterError(f"rounding-error factor undefined for {k} roundings of unit {u}")
    return (k * u / (1.0 - k * u)) * (1.0 + 4 * _U64)


def path_factor(k64, k_d, dtype):
    """Relative factor of a value whose every real term went through at most
    ``k64`` float64 roundings and ``k_d`` roundings to ``dtype``:
    ``(1 + gamma_k64(2**-53)) (1 + gamma_kd(u_dtype)) - 1`` (rounded up).

    Each rounding multiplies a term by ``(1 + delta)`` with ``|delta| <= u``
    (standard model, FACTS.md §8; no underflow), and a product of ``k`` such
    factors lies within ``gamma_k`` of 1.
    """
    u_d = 2.0 ** -24 if np.dtype(dtype) == np.float32 else _U64
    g1, g2 = gamma(k64, _U64), gamma(k_d, u_d)
    return (g1 + g2 + g1 * g2) * (1.0 + 4 * _U64)


def abs_term(n_terms, n_roundings, dtype):
    """Absolute allowance for underflow: each rounding of a term may lose up to
    half the smallest subnormal of ``dtype`` (float32 2**-150, float64 2**-1075)."""
    tiny = 2.0 ** -150 if np.dtype(dtype) == np.float32 else 2.0 ** -1075
    return float(n_terms) * float(n_roundings) * tiny


def read_array(group, name, *, dtype=None, ndim=None, max_elements):
    """Read dataset ``name`` of an HDF5 group, refusing absurd sizes before reading.

    Raises FormatError for a missing dataset, DecodeError for a size above
    ``max_elements``, a wrong dtype or ndim.
    """
    try:
        ds = group[name]
    except KeyError:
        raise FormatError(f"{group.name}: missing dataset {name!r}") from None
    size = int(np.prod(ds.shape)) if ds.shape is not None else 0
    if size > max_elements:
        raise DecodeError(f"{group.name}/{name}: declares {size} elements, over the limit "
                          f"{max_elements}")
    a = ds[()]
    a = np.asarray(a)
    if dtype is not None and a.dtype != np.dtype(dtype):
        raise DecodeError(f"{group.name}/{name}: dtype {a.dtype}, expected {np.dtype(dtype)}")
    if ndim is not None and a.ndim != ndim:
        raise DecodeError(f"{group.name}/{name}: {describe(a)}, expected {ndim} dimensions")
    return a


def check_weight_shape(value):
    """A stored ``weight_shape`` attribute as a tuple of non-negative ints."""
    try:
        shape = tuple(int(s) for s in value)
    except (TypeError, ValueError):
        raise DecodeError(f"invalid weight_shape {value!r}") from None
    if any(s < 0 for s in shape):
        raise DecodeError(f"invalid weight_shape {shape}")
    return shape


def check_int_attr(name, value, lo=0):
    try:
        return check_int(name, int(value), lo=lo)
    except (TypeError, ValueError, ParameterError):
        raise DecodeError(f"invalid {name} {value!r}") from None
