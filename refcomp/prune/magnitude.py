"""Magnitude pruning masks (Han et al. 2015; seed 000 "élagage par seuil", seed 001).

A mask is a boolean array of the weight's shape, True = keep.
"""

import numpy as np

from .._errors import ParameterError, ShapeError
from .._validate import as_float_array, describe
from ._common import check_sparsity, count_to_prune, rank_prune

__all__ = ["magnitude", "global_magnitude"]


def _tfmot_keep_count(n, sparsity):
    # tfmot pruning_impl._update_mask: k = max(round(float32(size) * (1 - s)), 1)
    # with every step in float32 and TF's round = half to even.
    f32 = np.float32
    k = np.rint(f32(n) * (f32(1.0) - f32(sparsity)))
    return max(int(k), 1)


def magnitude(w, *, sparsity=None, threshold=None, keep_ties=False, at_threshold="remove"):
    """Keep-mask of the largest-magnitude entries of ``w``.

    Parameters
    ----------
    w : ndarray, float32 or float64, any shape, no NaN (Inf allowed)
    sparsity : float in [0, 1], optional
        Fraction of entries to remove.  Exactly ``n_prune =
        round_half_even(sparsity * w.size)`` entries are removed, the product
        taken on the exact binary value of ``sparsity`` (``fractions.Fraction``),
        so 0.5 of 5 entries removes 2 and 0.5 of 7 removes 4.
    threshold : float >= 0, optional
        Instead of ``sparsity``: keep exactly the entries with ``|w| > threshold``
        (strict, so ``threshold=0`` removes only zeros).  |w| and the
        threshold are compared in float64 (exact for both dtypes).
    at_threshold : {"remove", "keep"}, default "remove"
        What happens to an entry with ``|w| == threshold`` exactly.
        "remove" (default, today's rule, Han et al.'s "below or equal"):
        kept iff ``|w| > threshold``.  "keep": kept iff ``|w| >=
        threshold``, seed 000's literal reading ("supprimer les poids
        inférieurs à un certain seuil": only weights *below* the threshold
        are removed).  The two differ only on exact ties.
    keep_ties : bool, default False
        With ``sparsity``: reproduce tfmot's rule (Zhu & Gupta 2017 as in
        ``pruning_impl._update_mask``, FACTS.md §7.3): ``k = max(round_half_even(
        float32(n) * (1 - float32(sparsity))), 1)`` computed in float32; the
        threshold is the k-th largest |w| and every entry with ``|w| >=
        threshold`` is kept, so ties at the cut are all kept and the result
        can be denser than requested (never sparser).

    Returns
    -------
    mask : ndarray of bool, shape of ``w``

    Notes
    -----
    Default tie rule (``keep_ties=False``): entries are ranked by |w|
    ascending, ties broken by ascending flat (C-order) index; the first
    ``n_prune`` are removed.  Among equal magnitudes the entry with the
    lower flat index is therefore removed first.  -0.0 and +0.0 are equal
    magnitudes.  Exactly one of ``sparsity`` and ``threshold`` is required.
    """
    as_float_array("w", w)
    check_finite_nan("w", w)
    if (sparsity is None) == (threshold is None):
        raise ParameterError("give exactly one of sparsity= and threshold=")
    a = np.abs(w).reshape(-1).astype(np.float64)
    if threshold is not None:
        if keep_ties:
            raise ParameterError("keep_ties applies to sparsity=, not threshold=")
        t = float(threshold)
        if not t >= 0.0:
            raise ParameterError(f"threshold must be >= 0, got {threshold!r}")
        if at_threshold not in ("remove", "keep"):
            raise ParameterError(f"at_threshold must be 'remove' or 'keep', got "
                                 f"{at_threshold!r}")
        return (a >= t if at_threshold == "keep" else a > t).reshape(w.shape)
    if at_threshold != "remove":
        raise ParameterError("at_threshold applies to threshold=, not sparsity=")
    s = check_sparsity(sparsity)
    n = a.size
    if keep_ties:
        if n == 0:
            return np.ones(w.shape, dtype=bool)
        k = _tfmot_keep_count(n, s)
        thr = np.sort(a)[n - k]                     # k-th largest |w|
        return (a >= thr).reshape(w.shape)
    return rank_prune(a, count_to_prune(s, n)).reshape(w.shape)


def check_finite_nan(name, w):
    """Reject NaN (a NaN magnitude has no rank); Inf is an ordinary large value."""
    if np.isnan(w).any():
        raise ParameterError(f"{name} contains NaN, which has no magnitude rank; "
                             f"{describe(w)}")


def global_magnitude(weights_by_layer, sparsity, *, keep_ties=False):
    """Keep-masks ranking the magnitudes of several arrays together.

    Parameters
    ----------
    weights_by_layer : dict key -> ndarray (float32/float64, no NaN)
        Any hashable keys, e.g. ``(path, "W")`` as used by
        :func:`refcomp.prune.apply_masks`; dtypes may differ.
    sparsity : float in [0, 1]
        Exactly ``round_half_even(sparsity * total)`` entries are removed
        overall (``total`` = sum of sizes).
    keep_ties : bool
        tfmot's tie-inclusive rule applied to the concatenation (see
        :func:`magnitude`).

    Returns
    -------
    dict key -> bool mask (shape of each array)

    Notes
    -----
    The arrays are concatenated in the dict's iteration order, each
    flattened in C order; |w| is compared in float64 (exact).  Ties are
    broken by position in that concatenation: earlier layer first, then
    lower flat index.
    """
    if not isinstance(weights_by_layer, dict) or not weights_by_layer:
        raise ParameterError("weights_by_layer must be a non-empty dict key -> ndarray")
    for k, w in weights_by_layer.items():
        as_float_array(f"weights_by_layer[{k!r}]", w)
        check_finite_nan(f"weights_by_layer[{k!r}]", w)
    flat = np.concatenate([np.abs(w).reshape(-1).astype(np.float64)
                           for w in weights_by_layer.values()])
    s = check_sparsity(sparsity)
    if keep_ties:
        if flat.size == 0:
            keep = np.ones(0, dtype=bool)
        else:
            k = _tfmot_keep_count(flat.size, s)
            keep = flat >= np.sort(flat)[flat.size - k]
    else:
        keep = rank_prune(flat, count_to_prune(s, flat.size))
    out, start = {}, 0
    for k, w in weights_by_layer.items():
        out[k] = keep[start:start + w.size].reshape(w.shape)
        start += w.size
    return out


def check_mask(name, mask, shape):
    """A bool ndarray of the given shape (shared by apply_masks and friends)."""
    if not isinstance(mask, np.ndarray) or mask.dtype != np.bool_:
        raise ParameterError(f"{name} must be a numpy.ndarray of dtype bool, got "
                             f"{describe(mask)}")
    if mask.shape != tuple(shape):
        raise ShapeError(f"{name} must have shape {tuple(shape)} (the weight's), got "
                         f"{describe(mask)}")
    return mask
