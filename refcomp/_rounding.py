"""Numbered rounding primitives: the one place where "round" is defined.

Every rounding mode used by refcomp is defined here twice, with identical
bits: a NumPy form (``half_even(x)`` ... on arrays) and a Numba scalar form
(``half_even_nb(v)`` ..., ``@numba.njit``) that kernels inline.  Both forms
take floating-point values (float32 or float64; the result has the same
dtype) and return floating-point values that are integers, so the caller
decides when and how to convert to an integer type.

All modes are exact: every intermediate (``x - floor(x)``, ``t + 1``) is
exactly representable, so no mode ever double-rounds.  In particular
``half_up`` is *not* ``floor(x + 0.5)``, which rounds 0.49999999999999994
to 1 because ``x + 0.5`` is itself rounded.

Modes (ties are values exactly halfway between two integers):

=============  =====================================================
half_even      ties to the even integer (IEEE RNE; NumPy ``rint``,
               ONNX, PyTorch ``nearbyint``)
half_away      ties away from zero (C ``round``, TFLite ``TfLiteRound``)
half_up        ties toward +inf (gemmlowp SRDHM, TFLite single rounding)
floor          toward -inf
stochastic     Gupta et al. 2015 eq. (1): floor(x) + 1 with probability
               x - floor(x), given a uniform draw u in [0, 1):
               floor(x) + (u < x - floor(x))
=============  =====================================================

NaN propagates (NaN in, NaN out); +-inf are returned unchanged; the sign
of zero follows ``floor``/``trunc``/``rint`` (so ``half_even(-0.4)`` is
``-0.0``).  Values with magnitude >= 2**52 (float64) or 2**23 (float32) are
already integers and are returned unchanged.
"""

import numba
import numpy as np

from ._errors import ParameterError

__all__ = ["MODES", "half_even", "half_away", "half_up", "floor", "stochastic",
           "round_mode", "half_even_nb", "half_away_nb", "half_up_nb", "floor_nb",
           "stochastic_nb", "MODE_CODES", "round_code_nb"]

#: Rounding mode names accepted by quantizers.
MODES = ("half_even", "half_away", "half_up", "floor", "stochastic")

#: Integer codes used to select a mode inside Numba kernels.
MODE_CODES = {name: i for i, name in enumerate(MODES)}


# -- NumPy forms ----------------------------------------------------------------
def half_even(x):
    """Round to nearest, ties to even (``np.rint``; exact)."""
    return np.rint(x)


def half_away(x):
    """Round to nearest, ties away from zero (exact; ``t + sign`` if |x - t| >= 1/2)."""
    t = np.trunc(x)
    # x - t is exact (same sign, |x - t| < 1, shares x's ulp grid).
    step = np.where(np.abs(x - t) >= 0.5, np.sign(x), np.zeros_like(x))
    return t + step


def half_up(x):
    """Round to nearest, ties toward +inf (exact; ``f + 1`` if x - f >= 1/2)."""
    f = np.floor(x)
    one = np.ones_like(f)
    return np.where(x - f >= 0.5, f + one, f)


def floor(x):
    """Round toward -inf (``np.floor``)."""
    return np.floor(x)


def stochastic(x, u):
    """Stochastic rounding with uniforms ``u`` (float64 in [0, 1), shape of x).

    Result ``floor(x) + (u < x - floor(x))``; the comparison is done in
    float64 (``x - floor(x)`` widened exactly), so P(up) = x - floor(x)
    exactly up to the 2**-53 granularity of ``u``.
    """
    f = np.floor(x)
    up = u < (x - f).astype(np.float64)
    return np.where(up, f + np.ones_like(f), f)


def round_mode(x, mode, u=None):
    """Apply the NumPy form of ``mode`` (a name from :data:`MODES`)."""
    if mode == "half_even":
        return half_even(x)
    if mode == "half_away":
        return half_away(x)
    if mode == "half_up":
        return half_up(x)
    if mode == "floor":
        return floor(x)
    if mode == "stochastic":
        if u is None:
            raise ParameterError("rounding='stochastic' needs uniforms (pass rng)")
        return stochastic(x, u)
    raise ParameterError(f"rounding must be one of {list(MODES)}, got {mode!r}")


# -- Numba scalar forms (inlined into kernels) ------------------------------------
@numba.njit(cache=True, inline="always")
def half_even_nb(v):
    return np.rint(v)


@numba.njit(cache=True, inline="always")
def half_away_nb(v):
    t = np.trunc(v)
    if abs(v - t) >= 0.5:
        return t + np.sign(v)
    return t


@numba.njit(cache=True, inline="always")
def half_up_nb(v):
    f = np.floor(v)
    if v - f >= 0.5:
        return f + 1
    return f


@numba.njit(cache=True, inline="always")
def floor_nb(v):
    return np.floor(v)


@numba.njit(cache=True, inline="always")
def stochastic_nb(v, u):
    f = np.floor(v)
    if u < np.float64(v - f):
        return f + 1
    return f


@numba.njit(cache=True, inline="always")
def round_code_nb(v, mode, u):
    """Dispatch on ``MODE_CODES``; ``u`` is used only by stochastic (code 4)."""
    if mode == 0:
        return half_even_nb(v)
    if mode == 1:
        return half_away_nb(v)
    if mode == 2:
        return half_up_nb(v)
    if mode == 3:
        return floor_nb(v)
    return stochastic_nb(v, u)
