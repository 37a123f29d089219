"""Fused multiply-add for Numba kernels, with an interpreted stand-in.

``fma(a, b, c)`` is ``a*b + c`` rounded once (LLVM ``llvm.fma``: always
fused, in software when the CPU has no FMA instruction).  Kernels use it
where the fused result is the documented one (the affine quantizer's
``OP_RECIPROCAL_FMA_ZP``), or where it provably equals the unfused one:
when ``a`` and ``b`` are float64 conversions of float32 values, ``a*b`` is
exact in float64 (24 + 24 <= 53 significand bits, no overflow or
underflow), so ``fma(a, b, c) == c + a*b`` bit for bit and only saves an
instruction.  Under ``NUMBA_DISABLE_JIT=1`` an intrinsic cannot run;
:func:`fma_interpreted` (exact rational arithmetic) replaces it.
"""

from fractions import Fraction

import numba
import numpy as np
from numba.core import types as _nbtypes
from numba.extending import intrinsic

__all__ = ["fma", "fma_interpreted", "madd"]


@intrinsic
def fma(typingctx, a, b, c):
    """Fused multiply-add a*b + c with one rounding (LLVM ``llvm.fma``: always fused,
    in software when the CPU has no FMA instruction)."""
    if not (isinstance(a, _nbtypes.Float) and a == b and b == c):
        return None

    def codegen(context, builder, signature, args):
        return builder.fma(*args)

    return a(a, b, c), codegen


def fma_interpreted(a, b, c):
    """Interpreted stand-in for :func:`fma` (``NUMBA_DISABLE_JIT=1``,
    where an intrinsic cannot run): a*b + c exactly (``fractions``), rounded
    once, half to even, to the dtype of ``a``; non-finite operands follow
    IEEE through float64 (a*b is exact there for float32, so inf/NaN results
    agree with a fused operation)."""
    t = type(a)
    if not (np.isfinite(a) and np.isfinite(b) and np.isfinite(c)):
        with np.errstate(all="ignore"):
            return t(np.float64(a) * np.float64(b) + np.float64(c))
    exact = Fraction(float(a)) * Fraction(float(b)) + Fraction(float(c))
    if exact == 0:
        # An exact zero keeps IEEE's sign rule; here a*b == -c is representable,
        # so the unfused float64 operations give the same signed zero.
        return t(np.float64(a) * np.float64(b) + np.float64(c))
    with np.errstate(over="ignore"):
        r = t(float(exact))                       # correctly rounded to float64, then t
    if not np.isfinite(r):
        return r
    # float(exact) -> float32 may double-round: settle with exact comparisons.
    lo = r if Fraction(float(r)) <= exact else np.nextafter(r, t(-np.inf))
    hi = np.nextafter(lo, t(np.inf))
    if not np.isfinite(hi):
        return lo
    dl, dh = exact - Fraction(float(lo)), Fraction(float(hi)) - exact
    if dl < dh:
        return lo
    if dh < dl:
        return hi
    return lo if int(np.asarray(lo).view(np.uint32 if t is np.float32 else np.uint64)) % 2 == 0 \
        else hi


if numba.config.DISABLE_JIT:
    fma = fma_interpreted          # noqa: F811  (the intrinsic cannot be interpreted)



@numba.njit(cache=True, inline="always")
def madd(a, b, c, fused):
    """``c + a*b``, with one rounding (an FMA) when ``fused`` is set.

    Callers set ``fused`` only when a and b are float64 conversions of
    float32 values: a*b is then exact, so the fused result equals the two
    separate operations bit for bit and saves an instruction.  The flag is
    loop invariant; LLVM unswitches loops on it.
    """
    if fused:
        return fma(a, b, c)
    return c + a * b


if numba.config.DISABLE_JIT:
    def madd(a, b, c, fused):      # noqa: F811  (interpreted: the plain operations,
        return c + a * b           # equal to the FMA whenever fused may be set)
