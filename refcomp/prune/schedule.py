"""Gradual pruning schedule of Zhu & Gupta 2017, as in tfmot ``PolynomialDecay`` (FACTS.md §7.3)."""

import ctypes
import ctypes.util
import math
import numbers

import numpy as np

from .._errors import ParameterError
from .._validate import check_choice, check_int

__all__ = ["polynomial_sparsity", "MODES"]

#: Evaluation contexts of tfmot's schedule that :func:`polynomial_sparsity` reproduces.
MODES = ("graph", "eager")

_I64_MIN, _I64_MAX = -(2 ** 63), 2 ** 63 - 1
_F32 = np.float32


def _int_to_f32(n):
    """float32 nearest to the integer ``n``, ties to even (C's int64 -> float conversion)."""
    a = abs(n)
    if a < 2 ** 24:
        return _F32(n)
    shift = a.bit_length() - 24
    q, r = divmod(a, 1 << shift)
    half = 1 << (shift - 1)
    if r > half or (r == half and q & 1):
        q += 1
    return _F32(math.copysign(math.ldexp(float(q), shift), n))


def _check_tfmot_sparsity(value, name):
    # tfmot PruningSchedule._validate_sparsity: ``0.0 <= sparsity < 1.0``
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ParameterError(f"{name} must be a real number in [0, 1), got {value!r}")
    v = float(value)
    if not 0.0 <= v < 1.0:      # also rejects NaN
        raise ParameterError(f"{name} must be in [0, 1) as tfmot requires (a sparsity of 1 "
                             f"would remove every weight), got {value!r}")
    return v


def _check_power(power):
    if isinstance(power, bool) or not isinstance(power, numbers.Real):
        raise ParameterError(f"power must be a real number >= 0, got {power!r}")
    p = float(power)
    if not 0.0 <= p < math.inf:     # also rejects NaN
        raise ParameterError(f"power must be finite and >= 0, got {power!r} (tfmot does not "
                             "check it, but a negative or non-finite power gives sparsities "
                             "outside [0, 1] or NaN there)")
    return _F32(p)


_POWF = []


def _powf(q, e):
    """float32 ``powf(q, e)`` of the platform C library (what TensorFlow's Pow kernel
    calls on the CPU, through ``std::pow(float, float)``); the correctly rounded
    value (float64 pow rounded once) when no C ``powf`` can be loaded."""
    if not _POWF:
        fn = None
        for name in (ctypes.util.find_library("m"), ctypes.util.find_library("c"), "msvcrt"):
            if not name:
                continue
            try:
                fn = getattr(ctypes.CDLL(name), "powf")
            except (OSError, AttributeError):
                continue
            fn.restype = ctypes.c_float
            fn.argtypes = [ctypes.c_float, ctypes.c_float]
            break
        _POWF.append(fn)
    fn = _POWF[0]
    if fn is None:
        return _F32(math.pow(float(q), float(e)))
    return _F32(fn(float(q), float(e)))        # both float32 values pass exactly


def _scaled_pow_f32(c, q, pf, mode):
    """``c * (1 - p) ** power`` as tfmot's schedule computes it (see polynomial_sparsity)."""
    if mode == "graph":
        # Grappler's arithmetic optimizer (ConvertPowStage, node on the CPU)
        # turns Pow with a constant exponent 2 into Square, 3 into
        # Mul(x, Square(x)), 1 into Identity, 0.5 into Sqrt, 0 into ones;
        # for 3 the constant factor is then pushed into the inner product:
        # (c * q) * (q * q).
        if pf == 3:
            return _F32(_F32(c * q) * _F32(q * q))
        if pf == 2:
            return _F32(c * _F32(q * q))
        if pf == 1:
            return _F32(c * q)
        if pf == 0.5:
            return _F32(c * _F32(np.sqrt(q)))
        if pf == 0:
            return c
    # Pow kernel: C powf(q, pf).
    return _F32(c * _powf(q, pf))


def polynomial_sparsity(step, *, initial_sparsity, final_sparsity, begin_step, end_step,
                        power=3, frequency=100, mode="graph"):
    """Target sparsity at ``step`` and whether the mask is updated at that step.

    Zhu & Gupta 2017, eq. (1): ``s_t = s_f + (s_i - s_f) * (1 - p)**power``
    with ``p = clip((step - begin_step) / (end_step - begin_step), 0, 1)``,
    bit for bit as tfmot's ``PolynomialDecay.__call__`` computes it
    (``pruning_schedule.py``, FACTS.md §7.3).

    Parameters
    ----------
    step : int (int64 range)
        The training step; negative values are allowed (tfmot's pruning step
        starts at -1): ``p`` is then clipped to 0 and no pruning happens.
    initial_sparsity, final_sparsity : float in [0, 1)
        Converted to Python floats (float64), as tfmot receives them.  1.0
        is refused, as tfmot's ``_validate_sparsity`` refuses it.
    begin_step : int >= 0
    end_step : int >= begin_step
        (tfmot refuses ``end_step = -1`` for this schedule, and so does this.)
    power : real >= 0, default 3
        Any finite non-negative real (an int or a float, as in tfmot).  It is
        rounded to float32 first (tfmot passes it to ``tf.math.pow`` next to
        a float32 tensor).  Deliberate difference: tfmot does not validate
        ``power``; a negative or non-finite one is refused here because it
        gives sparsities outside [0, 1] (or NaN) there.
    frequency : int >= 1, default 100
    mode : {"graph", "eager"}, default "graph"
        "graph": the value tfmot's schedule takes inside a ``tf.function`` on
        the CPU, e.g. in Keras ``fit`` (where pruning happens), after
        TensorFlow's graph optimizer (Grappler) rewrote it: the division by the
        constant ``end_step - begin_step`` becomes a multiplication by its
        float32 reciprocal (constant folding, ``ReduceDivToReciprocalMul``)
        and ``pow`` with a constant exponent of 3, 2, 1, 0.5 or 0 becomes
        ``q * (q * q)``, ``q * q``, ``q``, ``sqrt(q)`` or 1 (arithmetic
        optimizer, ``ConvertPowStage``, CPU nodes only).  "eager": tfmot
        called eagerly (``run_eagerly=True`` or a direct call): true
        division and ``powf``.  A schedule placed on a GPU (no ``pow``
        rewrite, CUDA ``powf``) is not reproduced.

    Returns
    -------
    sparsity : numpy.float32
        Every operation in float32, rounded half-even, in tfmot's order:

        1. ``d = float32(step - begin_step)``, ``n = float32(end_step -
           begin_step)`` (the int64 differences rounded to nearest float32);
        2. ``p = d / n`` ("eager", one correctly rounded division) or
           ``p = d * float32(1 / n)`` ("graph"); then ``p = min(1, max(0, p))``;
        3. ``q = float32(1 - p)``; ``c = float32(initial_sparsity -
           final_sparsity)``: the difference of the two Python floats in
           float64, then rounded to float32 (not the difference of their
           float32 roundings);
        4. ``t = c * q ** float32(power)``: in "graph" mode, for power 3
           ``float32(float32(c * q) * float32(q * q))`` (Grappler's
           ``x * Square(x)`` with the constant ``c`` then pushed into the
           first factor), for 2 ``float32(c * float32(q * q))``, for 1
           ``float32(c * q)``, for 0.5 ``float32(c * sqrt(q))`` (correctly
           rounded sqrt), for 0 ``c``; otherwise (and always in "eager"
           mode) ``float32(c * powf(q, float32(power)))`` with the ``powf``
           of the platform's C library, called through ``ctypes``, since
           TensorFlow's Pow kernel calls it (``std::pow(float, float)``).
           glibc's ``powf`` is not correctly rounded (on glibc 2.36 about 1
           result in 10**4 is off by one ulp, and TensorFlow returns those
           same bits); where no C ``powf`` can be loaded the correctly
           rounded value (float64 ``pow`` rounded once) is used;
        5. ``sparsity = float32(t + float32(final_sparsity))``.

        Checked bit for bit against tfmot 0.8.1 on TensorFlow 2.21 (CPU,
        glibc 2.36), eagerly and in a ``tf.function``, on about 730 random
        and edge cases (about 100 of them are golden values in
        ``tests/test_prune_masks.py``).

        When ``end_step == begin_step`` tfmot divides by zero: before
        ``begin_step`` it returns the ``p = 0`` value, after it the ``p = 1``
        value, and at ``step == begin_step`` (0/0) a NaN sparsity with
        ``prune = True``.  Here ``p`` is 1 for ``step >= begin_step``: at
        ``begin_step`` the result is the ``p = 1`` value (deliberate
        difference: no NaN target).
    prune : bool
        True iff ``begin_step <= step <= end_step`` and ``(step - begin_step)
        % frequency == 0`` (floor modulo, tfmot ``_should_prune_in_step``).
        Feed ``sparsity`` to :func:`refcomp.prune.magnitude`
        (``keep_ties=True`` for tfmot's exact masks) when ``prune`` is True.

    Raises
    ------
    ParameterError
        Sparsity outside [0, 1) or not a real number, ``begin_step < 0``,
        ``end_step < begin_step``, ``frequency < 1``, a negative or
        non-finite ``power``, a step outside int64, an unknown ``mode``.
    """
    step = check_int("step", step, lo=_I64_MIN, hi=_I64_MAX)
    begin_step = check_int("begin_step", begin_step, lo=0, hi=_I64_MAX)
    end_step = check_int("end_step", end_step, lo=0, hi=_I64_MAX)
    if end_step < begin_step:
        raise ParameterError(f"end_step ({end_step}) must be >= begin_step ({begin_step})")
    frequency = check_int("frequency", frequency, lo=1)
    pf = _check_power(power)
    check_choice("mode", mode, MODES)
    si = _check_tfmot_sparsity(initial_sparsity, "initial_sparsity")
    sf = _check_tfmot_sparsity(final_sparsity, "final_sparsity")
    diff = step - begin_step
    if not _I64_MIN <= diff <= _I64_MAX:
        raise ParameterError(f"step - begin_step ({diff}) overflows int64")
    if end_step == begin_step:
        p = _F32(1.0) if step >= begin_step else _F32(0.0)
    else:
        d = _int_to_f32(diff)
        n = _int_to_f32(end_step - begin_step)
        p = _F32(d / n) if mode == "eager" else _F32(d * _F32(_F32(1.0) / n))
        p = min(_F32(1.0), max(_F32(0.0), p))
    q = _F32(_F32(1.0) - p)
    c = _F32(si - sf)
    sparsity = _F32(_scaled_pow_f32(c, q, pf, mode) + _F32(sf))
    prune = begin_step <= step <= end_step and diff % frequency == 0
    return sparsity, bool(prune)
