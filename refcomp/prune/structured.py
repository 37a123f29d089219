"""Structured pruning masks at the granularities of Cheng et al. / Mao et al. (seed 002 §II).

Levels for a conv weight ``W`` (O, C/groups, kh, kw) (OIHW):

========== ============================================ ================
level      one group (removed together)                 groups
========== ============================================ ================
"fine"     one weight ``W[o, i, h, w]``                 O*C*kh*kw
"vector"   one kernel row ``W[o, i, h, :]``             O*C*kh
"kernel"   one 2-D kernel ``W[o, i, :, :]``             O*C
"filter"   one output channel ``W[o, :, :, :]``         O
"channel"  one input channel ``W[:, i, :, :]``          C/groups
"group"    one conv group ``W[g*O/G:(g+1)*O/G]``        G (``groups=``)
========== ============================================ ================

For a dense weight ``W`` (out, in): "fine" (one weight), "filter" (one row =
output neuron), "channel" (one column = input); "vector", "kernel" and
"group" have no meaning for a matrix and are refused.
"""

import numpy as np

from .._errors import ParameterError
from .._validate import as_float_array, check_choice, check_int, check_ndim
from ._common import check_sparsity, count_to_prune, fsum_rows, rank_prune
from .magnitude import check_finite_nan

__all__ = ["structured", "group_scores", "LEVELS", "NORMS"]

LEVELS = ("fine", "vector", "kernel", "filter", "channel", "group")
NORMS = ("l1", "l2", "fro")


def _groups_view(w, level, groups):
    """(G, m) float64 matrix whose rows are the groups, and a function mapping a
    per-group keep vector back to a mask of w's shape."""
    w64 = w.astype(np.float64)
    if w.ndim == 2:
        if level in ("vector", "kernel", "group"):
            raise ParameterError(f"level {level!r} needs a 4-D conv weight (OIHW); a dense "
                                 f"weight (out, in) has levels 'fine', 'filter', 'channel'")
    o = w.shape[0]
    if level == "fine":
        return w64.reshape(-1, 1), lambda k: k.reshape(w.shape)
    if level == "vector":
        return (w64.reshape(-1, w.shape[3]),
                lambda k: np.broadcast_to(k.reshape(w.shape[:3] + (1,)), w.shape).copy())
    if level == "kernel":
        return (w64.reshape(w.shape[0] * w.shape[1], -1),
                lambda k: np.broadcast_to(k.reshape(w.shape[:2] + (1, 1)), w.shape).copy())
    if level == "filter":
        return (w64.reshape(o, -1),
                lambda k: np.broadcast_to(k.reshape((o,) + (1,) * (w.ndim - 1)), w.shape).copy())
    if level == "channel":
        c = w.shape[1]
        rows = np.moveaxis(w64, 1, 0).reshape(c, -1)
        shape = (1, c) + (1,) * (w.ndim - 2)
        return rows, lambda k: np.broadcast_to(k.reshape(shape), w.shape).copy()
    # "group"
    if o % groups:
        raise ParameterError(f"groups={groups} must divide the {o} output channels")
    rows = w64.reshape(groups, -1)
    return rows, lambda k: np.broadcast_to(
        np.repeat(k, o // groups).reshape((o, 1, 1, 1)), w.shape).copy()


def group_scores(w, *, level, norm="l1", groups=1):
    """Norm of every group of ``w`` at ``level`` (float64, 1-D, group order as in
    the module table: C order of the leading indices).

    "l1": ``fsum(|w|)``; "l2" and "fro" (the same number: Frobenius norm of a
    3-D filter is the 2-norm of its flattened entries): ``sqrt(fsum(w*w))``.
    Each |w| and w*w is formed in float64 (exact for float32 input; w*w of
    float64 input is rounded half-even), summed exactly rounded and
    order-independent (Shewchuk partials, bit-identical to ``math.fsum``),
    and the square root is correctly rounded.
    """
    as_float_array("w", w)
    check_ndim("w", w, (2, 4))
    check_choice("level", level, LEVELS)
    check_choice("norm", norm, NORMS)
    groups = check_int("groups", groups, lo=1)
    check_finite_nan("w", w)
    rows, _ = _groups_view(w, level, groups)
    if norm == "l1":
        return fsum_rows(np.abs(rows))
    return np.sqrt(fsum_rows(rows * rows))


def structured(w, *, level, norm="l1", sparsity, groups=1):
    """Keep-mask removing whole groups of ``w`` with the smallest norms.

    Parameters
    ----------
    w : ndarray float32/float64, (out, in) dense or (O, C/groups, kh, kw) conv
    level : {"fine", "vector", "kernel", "filter", "channel", "group"}
        See the module table.
    norm : {"l1", "l2", "fro"}, default "l1"
        Group norm (see :func:`group_scores`); "fro" is the Frobenius norm
        of a 3-D filter, numerically the same as "l2".
    sparsity : float in [0, 1]
        Fraction of *groups* removed: exactly ``round_half_even(sparsity * G)``
        groups, product on the exact binary value of ``sparsity``.
    groups : int, default 1
        Number of conv groups (the layer's ``groups`` attribute); used only
        by ``level="group"``.

    Returns
    -------
    mask : bool ndarray of w's shape; a group is entirely True or entirely False.

    Notes
    -----
    Groups are ranked by norm ascending, ties by ascending group index
    (lower index removed first); "fine" with "l1" or "l2" is exactly
    :func:`refcomp.prune.magnitude` with its default tie rule.
    """
    scores = group_scores(w, level=level, norm=norm, groups=groups)
    s = check_sparsity(sparsity)
    _, back = _groups_view(w, level, check_int("groups", groups, lo=1))
    return back(rank_prune(scores, count_to_prune(s, scores.size)))
