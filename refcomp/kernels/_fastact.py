"""Branch-free sigmoid and tanh of bounded error, for the rounding test of the
reference recurrent cells.

The reference LSTM/GRU cells (:mod:`refcomp.kernels.rnn_tiled`) define their
bits through the platform libm (``exp``, ``tanh``: one call per gate per
element, 11 and 23 ns, about 80 % of the reference LSTM's time).  The
states are stored in float32, so the libm's last bits only matter when the
float64 state lies very close to a float32 rounding boundary.  The cells
therefore first evaluate a row with the functions below (no calls, no
branches: the loop compiles to vector code), together with a bound ``B``
on the distance between that float64 result and the libm-based one, and
keep it only if ``float32(v - B) == float32(v + B)``.  Rounding to nearest
is monotone, so every float64 value in ``[v - B, v + B]``, the libm-based
one included, then rounds to the same float32: the stored bits are the
reference bits.  Otherwise (about 1 element in 10**4, and every zero,
non-finite or out-of-range case) the row is evaluated again with libm, as
before (Ziv's strategy for correctly rounded functions).

Accuracy (relative, over the arguments accepted; measured against mpmath in
``tests/test_kernels_fastact.py``: worst 2**-50.0 for tanh, 2**-50.8 for
the sigmoid; claimed with margin):

- :func:`fast_sigmoid` within ``2**-49`` of the true logistic function
  ``z`` for ``v >= SIGMOID_MIN`` (+inf included), and for ``v >= 0`` also
  within ``2**-49 (1 - z) + 2**-52`` (so ``1 - z`` keeps its accuracy up to
  the rounding of ``z`` itself);
- :func:`fast_tanh` within ``2**-49`` of the true tanh for every non-NaN
  argument (relative also near 0, and the sign of a zero kept);
- libm's ``exp`` and ``tanh`` are assumed within ``2**-48`` of the true
  values, 16 ulps (glibc documents at most 1 ulp for ``exp`` and 2 for
  ``tanh``; measured 2**-51.6 here).  The reference sigmoid, ``1/(1+e)``
  or ``e/(1+e)`` with ``e`` from libm and two more roundings, is then
  within ``2**-47.9 z``, and within ``2**-48 (1 - z) + 2**-52`` for v >= 0.

So ``|fast - libm| <= 2**-47 |a|`` per activation ``a`` (and ``<= 2**-47
(1 - z) + 2**-51`` for a sigmoid ``z >= 1/2``), and the callers'
bounds (:data:`MARGIN` times the magnitudes the error propagates through,
derived in :mod:`refcomp.kernels.rnn_tiled`) hold with a factor of about 15
to spare.

Method: ``exp(-w)`` for ``w`` in ``[0, 700]`` (clamped beyond, where the
sigmoid is 1 and tanh +-1 to far below an ulp) as ``2**-k (1 + q)``,
``k = round(w / ln 2)``, ``r = (w - k ln2_hi) - k ln2_lo`` (Cody & Waite),
``q = expm1(-r)`` by the Taylor polynomial of degree 12 in Horner form
(truncation < ``2**-52`` relative for ``|r| <= ln 2 / 2``), and ``2**-k``
as a product of exact powers of two selected by the bits of ``k``.  Then,
with ``s = 2**-k`` and ``s q`` exact:

    sigmoid(v) = 1 / ((1 + s) + s q)              v >= 0, w = |v|
    sigmoid(v) = (s + s q) / ((1 + s) + s q)      v < 0,  w = |v|
    tanh(v) = copysign(((1 - s) - s q) / ((1 + s) + s q), v),  w = 2|v|

(``1 - s`` is exact: no cancellation error, so tanh's relative accuracy
holds near 0).  All float64, each operation rounded to nearest even, no
FMA contraction.

Outside those ranges (NaN included) the functions return finite values of
no meaning; callers test :func:`sigmoid_in_range` / :func:`tanh_in_range`
and fall back.  Private kernel helpers, inlined; no calls, so the loops
that use them vectorize.
"""

import math

import numba

__all__ = ["fast_sigmoid", "fast_tanh", "sigmoid_in_range", "tanh_in_range", "SIGMOID_MIN",
           "MARGIN"]

#: Smallest sigmoid argument: below it exp(v) would need w > _W_MAX (the
#: clamp), where the relative accuracy is lost (exp(-700) is near the
#: bottom of the normal range).
SIGMOID_MIN = -700.0
#: Scale of the callers' bounds: ``B = MARGIN * (sum of the magnitudes the
#: error propagates through)``, about 15x the derived 2**-45.9.
MARGIN = 2.0 ** -42

# ln 2 split so that k * _LN2_HI is exact for k < 2**32 (32 trailing zero
# bits); _LN2_LO = ln 2 - _LN2_HI rounded to float64 (computed with mpmath).
_LN2_HI = 0.6931467056274414          # 0x1.62e42p-1
_LN2_LO = 4.7493250390316726e-07
_INV_LN2 = 1.4426950408889634
_W_MAX = 700.0

# 1/j! rounded to float64, j = 2..12 (the Taylor coefficients of exp).
_C2 = 0.5
_C3 = 0.16666666666666666
_C4 = 0.041666666666666664
_C5 = 0.008333333333333333
_C6 = 0.001388888888888889
_C7 = 0.0001984126984126984
_C8 = 2.48015873015873e-05
_C9 = 2.7557319223985893e-06
_C10 = 2.755731922398589e-07
_C11 = 2.505210838544172e-08
_C12 = 2.08767569878681e-09


@numba.njit(cache=True, inline="always")
def _exp_parts(w):
    # exp(-w) = scale * (1 + q) for w >= 0 (clamped to _W_MAX): scale = 2**-k
    # exactly, q = expm1(-r) with a relative error of a few ulps (so that
    # 1 - exp(-w) = -q keeps its relative accuracy when k = 0).  The
    # comparison sends NaN to _W_MAX: the integer conversion never sees a
    # NaN (LLVM's fptosi of NaN is poison).
    w = w if w <= _W_MAX else _W_MAX
    k = int(w * _INV_LN2 + 0.5)                   # 0 .. 1010; w >= 0: truncation = floor
    kf = float(k)
    s = kf * _LN2_HI - w + kf * _LN2_LO           # -r, |s| <= ln2/2 + tiny; -w when k = 0
    p = _C12
    p = p * s + _C11
    p = p * s + _C10
    p = p * s + _C9
    p = p * s + _C8
    p = p * s + _C7
    p = p * s + _C6
    p = p * s + _C5
    p = p * s + _C4
    p = p * s + _C3
    p = p * s + _C2
    p = p * s + 1.0
    # 2**-k from the bits of k (k <= 1010): a product of exact powers of two,
    # never below the normal range.
    scale = ((0.5 if k & 1 else 1.0) * (0.25 if k & 2 else 1.0)
             * (0.0625 if k & 4 else 1.0) * (0.00390625 if k & 8 else 1.0)
             * (1.52587890625e-05 if k & 16 else 1.0)
             * (2.3283064365386963e-10 if k & 32 else 1.0)
             * (5.421010862427522e-20 if k & 64 else 1.0)
             * (2.938735877055719e-39 if k & 128 else 1.0)
             * (8.636168555094445e-78 if k & 256 else 1.0)
             * (7.458340731200207e-155 if k & 512 else 1.0))
    return scale, p * s


@numba.njit(cache=True, inline="always")
def fast_sigmoid(v):
    """Logistic function, float64, within 2**-49 relative of the true value
    (module docstring); only for ``v >= SIGMOID_MIN``."""
    scale, q = _exp_parts(abs(v))
    # scale * q is exact and 1 + scale exact for k <= 52: one rounding each.
    sq = scale * q
    return (1.0 if v >= 0.0 else scale + sq) / ((1.0 + scale) + sq)


@numba.njit(cache=True, inline="always")
def fast_tanh(v):
    """tanh, float64, within 2**-49 relative of the true value, sign of zero
    kept (module docstring); any non-NaN argument."""
    scale, q = _exp_parts(2.0 * abs(v))
    # 1 -/+ exp(-2|v|) as (1 -/+ scale) -/+ scale * q: 1 - scale is exact
    # (k >= 1; 0 when k = 0, leaving -q exactly), as are scale * q and, for
    # k <= 52, 1 + scale: one rounding each, no cancellation error.
    sq = scale * q
    num = (1.0 - scale) - sq
    return math.copysign(num / ((1.0 + scale) + sq), v)     # llvm.copysign: no call


@numba.njit(cache=True, inline="always")
def sigmoid_in_range(v):
    """True for ``v >= SIGMOID_MIN`` (+inf included; False for NaN)."""
    return v >= SIGMOID_MIN


@numba.njit(cache=True, inline="always")
def tanh_in_range(v):
    """True unless ``v`` is NaN (tanh saturates: every other value is accepted)."""
    return v == v
