"""Numba kernels of integer-only inference, each with a NumPy twin of identical bits.

Every kernel works on a contiguous (A, C, B) view whose middle axis C is
the channel axis of the per-channel parameters (C = 1 per tensor), the
layout :func:`refcomp.quantize._scalar_common.as_3d` produces.  Integer
arithmetic is done in int64, where every intermediate of the int32
definitions below is exact; results are written to the caller's output
dtype after an explicit clamp, so no conversion ever wraps silently.

Fixed point (gemmlowp ``fixedpoint.h``, TFLite ``common.h``; FACTS.md §5.3-5.4)
------------------------------------------------------------------------------
* ``srdhm(a, b)``: ``SaturatingRoundingDoublingHighMul``: INT32_MAX when
  a = b = INT32_MIN, else ``trunc_toward_zero((a*b + nudge) / 2**31)`` with
  nudge = 2**30 if a*b >= 0 else 1 - 2**30 (round to nearest, ties toward
  +inf).
* ``rdbpot(x, e)``: ``RoundingDivideByPOT``: ``(x >> e) + (rem > thr)`` with
  rem = x & (2**e - 1), thr = (2**e - 1) >> 1 plus 1 if x < 0 (round to
  nearest, ties away from zero); ``>>`` is arithmetic.
* double rounding (TFLite's default build): left = max(shift, 0), right =
  max(-shift, 0), ``rdbpot(srdhm(x * 2**left, m), right)``.  ``x * 2**left``
  must fit int32 (the C++ code multiplies in int32; overflow is undefined
  there): elements where it does not are counted, not computed.
* single rounding (``TFLITE_SINGLE_ROUNDING``): ``(x*m + 2**(30 - shift)) >>
  (31 - shift)`` in int64 (one rounding, ties toward +inf); a result outside
  int32 (TFLite DCHECK) is counted.
* ruy double rounding (what TFLite's optimized x86 kernels run through ruy):
  ``srdhm(x * 2**left, m)`` as above, then a rounding right shift with ties
  toward +inf, ``(v + 2**(right - 1)) >> right``, instead of gemmlowp's ties
  away from zero (the two differ only on negative ties).

``variant`` selects the definition: 0 gemmlowp double, 1 single, 2 ruy.

The requantizing kernels add the output zero point and clamp to [lo, hi]
(both int64) after that; they return the number of elements outside the
definition domain, which the public functions turn into an error.

Float requantization (ONNX Runtime MLAS, PyTorch FBGEMM; FACTS.md §5.6-5.8)
--------------------------------------------------------------------------
* float32 (``"onnx"``, ``"torch"``): ``v = fl32(fl32(acc) [+ bterm[c]]) *
  M[c]`` rounded to float32 after each operation (RNE; the int32 -> float32
  conversion rounds half to even beyond 2**24), then ``rint`` (half even),
  clamp to [lo - zp, hi - zp] in float32 (exact: small integers), + zp.
* float64 (``"onnx_reference"``, the ``onnx`` package): ``w = fl64(fl64(acc
  * M[c]) + zp)``, ``rint`` (half even), clamp to [lo, hi].  The zero point
  is added *before* rounding, as the reference does.
* float64, ties away (``"tflite_float64"``, LiteRT's reference
  FULLY_CONNECTED): ``round_half_away(fl64(acc * M[c])) + zp``, clamp.

Private module: inputs are validated by :mod:`refcomp.integer`.
"""

import numba
import numpy as np

from ._threads import run_serial_below

__all__ = ["mbqm_requant", "mbqm_requant_twin", "float32_requant", "float32_requant_twin",
           "float64_requant", "float64_requant_twin", "srdhm", "srdhm_twin", "rdbpot",
           "rdbpot_twin", "INT32_MIN", "INT32_MAX"]

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1
# Below this many elements one thread is faster (thread launch and wake-up on a loaded host
# dominate); the results do not depend on the thread count (independent elements).
_PAR_MIN = 1 << 22


def _run(kernel, n, *args):
    """Call a prange kernel, single-threaded for small n (results are identical)."""
    return run_serial_below(_PAR_MIN, kernel, n, *args)


# -- scalar fixed-point primitives (inlined) ---------------------------------------
@numba.njit(cache=True, inline="always")
def _srdhm_nb(a, b):
    if a == b and a == INT32_MIN:
        return np.int64(INT32_MAX)
    ab = np.int64(a) * np.int64(b)
    nudge = np.int64(1 << 30) if ab >= 0 else np.int64(1 - (1 << 30))
    v = ab + nudge
    # C++ integer division truncates toward zero; >> floors, so mirror it.
    if v >= 0:
        return v >> 31
    return -((-v) >> 31)


@numba.njit(cache=True, inline="always")
def _rdbpot_nb(x, e):
    mask = (np.int64(1) << e) - 1
    rem = x & mask
    thr = (mask >> 1) + (np.int64(1) if x < 0 else np.int64(0))
    return (x >> e) + (np.int64(1) if rem > thr else np.int64(0))


@numba.njit(cache=True, inline="always")
def _mbqm_nb(x, m, shift, variant):
    """(result, ok) of MultiplyByQuantizedMultiplier; ok False outside the domain."""
    if variant == 1:
        total = 31 - shift
        r = (x * m + (np.int64(1) << (total - 1))) >> total
        return r, INT32_MIN <= r <= INT32_MAX
    left = shift if shift > 0 else 0
    right = -shift if shift < 0 else 0
    xl = x << left
    if xl < INT32_MIN or xl > INT32_MAX:
        return np.int64(0), False
    h = _srdhm_nb(xl, m)
    if variant == 2:
        if right == 0:
            return h, True
        return (h + (np.int64(1) << (right - 1))) >> right, True
    return _rdbpot_nb(h, right), True


# -- elementwise primitives on flat int64 arrays -------------------------------------
@numba.njit(cache=True)
def _srdhm_kernel(a, b, out):
    for i in range(a.size):
        out[i] = _srdhm_nb(a[i], b[i])


@numba.njit(cache=True)
def _rdbpot_kernel(x, e, out):
    for i in range(x.size):
        out[i] = _rdbpot_nb(x[i], e[i])


def srdhm(a, b):
    """SaturatingRoundingDoublingHighMul of flat int64 arrays (int32 values) -> int64."""
    out = np.empty(a.size, np.int64)
    _srdhm_kernel(a, b, out)
    return out


def srdhm_twin(a, b):
    ab = a * b                                      # |a*b| <= 2**62: exact in int64
    v = ab + np.where(ab >= 0, np.int64(1 << 30), np.int64(1 - (1 << 30)))
    q = np.where(v >= 0, v >> 31, -((-v) >> 31))    # truncation toward zero
    return np.where((a == b) & (a == INT32_MIN), np.int64(INT32_MAX), q)


def rdbpot(x, e):
    """RoundingDivideByPOT of flat int64 arrays (x int32 values, 0 <= e <= 31) -> int64."""
    out = np.empty(x.size, np.int64)
    _rdbpot_kernel(x, e, out)
    return out


def rdbpot_twin(x, e):
    mask = (np.int64(1) << e) - 1
    thr = (mask >> 1) + (x < 0).astype(np.int64)
    return (x >> e) + ((x & mask) > thr).astype(np.int64)


# -- fixed-point requantization -----------------------------------------------------
@numba.njit(cache=True, parallel=True)
def _mbqm_kernel(acc3, mult, shift, variant, zp, lo, hi, out3):
    a_len, c_len, b_len = acc3.shape
    bad = np.zeros(a_len * c_len, np.int64)
    for t in numba.prange(a_len * c_len):
        a = t // c_len
        c = t - a * c_len
        m = np.int64(mult[c])
        s = np.int64(shift[c])
        for j in range(b_len):
            r, ok = _mbqm_nb(np.int64(acc3[a, c, j]), m, s, variant)
            if not ok:
                bad[t] += 1
                r = np.int64(0)
            r += zp
            r = r if r > lo else lo
            r = r if r < hi else hi
            out3[a, c, j] = r
    return bad.sum()


def mbqm_requant(acc3, mult, shift, variant, zp, lo, hi, out_dtype):
    """clamp(MBQM(acc, mult[c], shift[c]) + zp, lo, hi) -> (codes of out_dtype, n_bad)."""
    out = np.empty(acc3.shape, out_dtype)
    bad = _run(_mbqm_kernel, acc3.size, acc3, mult, shift, int(variant), np.int64(zp),
               np.int64(lo), np.int64(hi), out)
    return out, int(bad)


def mbqm_requant_twin(acc3, mult, shift, variant, zp, lo, hi, out_dtype):
    x = acc3.astype(np.int64)
    m = mult.astype(np.int64).reshape(1, -1, 1)
    s = shift.astype(np.int64).reshape(1, -1, 1)
    if variant == 1:
        total = 31 - s
        r = (x * m + (np.int64(1) << (total - 1))) >> total
        ok = (r >= INT32_MIN) & (r <= INT32_MAX)
    else:
        left = np.maximum(s, 0)
        right = np.maximum(-s, 0)
        xl = x << left
        ok = (xl >= INT32_MIN) & (xl <= INT32_MAX)
        xl = np.where(ok, xl, 0)
        x_b, m_b = np.broadcast_arrays(xl, m)
        hm = srdhm_twin(x_b.reshape(-1), m_b.reshape(-1)).reshape(x_b.shape)
        rb = np.broadcast_to(right, hm.shape)
        if variant == 2:
            half = np.where(rb > 0, np.int64(1) << np.maximum(rb - 1, 0), 0)
            r = (hm + half) >> rb
        else:
            r = rdbpot_twin(hm, rb)
    r = np.where(ok, r, 0) + np.int64(zp)
    return np.clip(r, lo, hi).astype(out_dtype), int(np.count_nonzero(~ok))


# -- float requantization ---------------------------------------------------------------
@numba.njit(cache=True, parallel=True)
def _f32_kernel(acc3, mult, bterm, has_bias, zp, lo, hi, out3):
    a_len, c_len, b_len = acc3.shape
    zf = np.float32(zp)
    lof = np.float32(lo - zp)
    hif = np.float32(hi - zp)
    for t in numba.prange(a_len * c_len):
        a = t // c_len
        c = t - a * c_len
        m = mult[c]
        bt = bterm[c] if has_bias else np.float32(0.0)
        row = acc3[a, c]
        orow = out3[a, c]
        for j in range(b_len):
            f = np.float32(row[j])
            if has_bias:
                f = np.float32(f + bt)
            v = np.rint(np.float32(f * m))
            v = v if v > lof else lof
            v = v if v < hif else hif
            orow[j] = np.int64(v) + np.int64(zf)


def float32_requant(acc3, mult, bterm, zp, lo, hi, out_dtype):
    """float32 requantization (ORT MLAS / FBGEMM) of an int32 (A, C, B) array."""
    out = np.empty(acc3.shape, out_dtype)
    has_bias = bterm is not None
    bt = bterm if has_bias else np.zeros(1, np.float32)
    _run(_f32_kernel, acc3.size, acc3, mult, bt, has_bias, np.int64(zp), np.int64(lo),
         np.int64(hi), out)
    return out


def float32_requant_twin(acc3, mult, bterm, zp, lo, hi, out_dtype):
    f = acc3.astype(np.float32)                     # int32 -> float32, RNE
    if bterm is not None:
        f = f + bterm.reshape(1, -1, 1)             # float32 + float32 -> float32
    v = np.rint(f * mult.reshape(1, -1, 1))
    v = np.clip(v, np.float32(lo - zp), np.float32(hi - zp))
    return (v.astype(np.int64) + np.int64(zp)).astype(out_dtype)


@numba.njit(cache=True, parallel=True)
def _f64_kernel(acc3, mult, zp, lo, hi, away, out3):
    a_len, c_len, b_len = acc3.shape
    zf = np.float64(zp)
    lof = np.float64(lo)
    hif = np.float64(hi)
    for t in numba.prange(a_len * c_len):
        a = t // c_len
        c = t - a * c_len
        m = mult[c]
        row = acc3[a, c]
        orow = out3[a, c]
        for j in range(b_len):
            p = np.float64(row[j]) * m
            if away:
                # round half away from zero of the exact float64 product (t + sign
                # when |p - t| >= 1/2; p - t is exact)
                tr = np.trunc(p)
                if abs(p - tr) >= 0.5:
                    tr += np.sign(p)
                v = tr + zf
            else:
                v = np.rint(p + zf)
            v = v if v > lof else lof
            v = v if v < hif else hif
            orow[j] = np.int64(v)


def float64_requant(acc3, mult64, zp, lo, hi, out_dtype, *, away=False):
    """float64 requantization: ONNX reference (``away=False``: zero point added before
    rint) or LiteRT reference FC (``away=True``: half away, then the zero point)."""
    out = np.empty(acc3.shape, out_dtype)
    _run(_f64_kernel, acc3.size, acc3, mult64, np.int64(zp), np.int64(lo), np.int64(hi),
         bool(away), out)
    return out


def float64_requant_twin(acc3, mult64, zp, lo, hi, out_dtype, *, away=False):
    v = acc3.astype(np.float64) * mult64.reshape(1, -1, 1)
    if away:
        t = np.trunc(v)
        r = t + np.where(np.abs(v - t) >= 0.5, np.sign(v), 0.0) + np.float64(zp)
    else:
        r = np.rint(v + np.float64(zp))
    return np.clip(r, float(lo), float(hi)).astype(out_dtype)
