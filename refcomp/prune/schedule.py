"""Gradual pruning schedule of Zhu & Gupta 2017, as in tfmot ``PolynomialDecay`` (FACTS.md §7.3)."""

import numpy as np

from .._errors import ParameterError
from .._validate import check_int
from ._common import check_sparsity

__all__ = ["polynomial_sparsity"]


def polynomial_sparsity(step, *, initial_sparsity, final_sparsity, begin_step, end_step,
                        power=3, frequency=100):
    """Target sparsity at ``step`` and whether the mask is updated at that step.

    Zhu & Gupta 2017, eq. (1): ``s_t = s_f + (s_i - s_f) * (1 - p)**power``
    with ``p = clip((step - begin_step) / (end_step - begin_step), 0, 1)``,
    as implemented by tfmot's ``PolynomialDecay`` (FACTS.md §7.3).

    Parameters
    ----------
    step : int >= 0
    initial_sparsity, final_sparsity : float in [0, 1]
    begin_step : int >= 0
    end_step : int >= begin_step
    power : int >= 1, default 3
    frequency : int >= 1, default 100

    Returns
    -------
    sparsity : numpy.float32
        Computed in float32 as tfmot does: ``p = float32(step - begin) /
        float32(end - begin)`` (one correctly rounded division), clipped to
        [0, 1]; ``q = 1 - p`` in float32; ``q**power`` evaluated in float64
        from the float32 ``q`` and rounded once (half-even) to float32 (what
        a correctly rounded ``powf`` returns); then ``(s_i - s_f) * q**power``
        and ``+ s_f``, each rounded to float32.  When ``end_step ==
        begin_step``, p is 1 for every step >= begin_step and 0 before
        (tfmot would divide by zero).
    prune : bool
        True iff ``begin_step <= step <= end_step`` and ``(step - begin_step)
        % frequency == 0`` (tfmot ``_should_prune_in_step``).  Feed
        ``sparsity`` to :func:`refcomp.prune.magnitude` (``keep_ties=True``
        for tfmot's exact masks) when ``prune`` is True.
    """
    step = check_int("step", step, lo=0)
    begin_step = check_int("begin_step", begin_step, lo=0)
    end_step = check_int("end_step", end_step, lo=0)
    if end_step < begin_step:
        raise ParameterError(f"end_step ({end_step}) must be >= begin_step ({begin_step})")
    power = check_int("power", power, lo=1)
    frequency = check_int("frequency", frequency, lo=1)
    si = np.float32(check_sparsity(initial_sparsity, "initial_sparsity"))
    sf = np.float32(check_sparsity(final_sparsity, "final_sparsity"))
    f32 = np.float32
    if end_step == begin_step:
        p = f32(1.0) if step >= begin_step else f32(0.0)
    else:
        p = f32(step - begin_step) / f32(end_step - begin_step)
        p = min(max(p, f32(0.0)), f32(1.0))
    q = f32(1.0) - f32(p)
    qp = f32(np.float64(q) ** power)
    sparsity = f32(f32(si - sf) * qp) + sf
    prune = begin_step <= step <= end_step and (step - begin_step) % frequency == 0
    return f32(sparsity), bool(prune)
