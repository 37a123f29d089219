"""Numba kernels of the scalar quantizers, each with a twin of identical bits.

Element-wise operations are independent, so the parallel kernels split the
flat array into fixed chunks (``prange``); the result does not depend on the
thread count.  The only reduction, min/max, is exact in any order: it is
taken on the IEEE bit patterns viewed as integers (``_scan_bits``), which
vectorises without fastmath and detects NaN/Inf in the same read.  Signed
zeros are normalised by the callers (``+ 0.0``) before they become
parameters.  Inner loops run on a slice of their chunk (indices from 0, no
wraparound checks) so LLVM vectorises them.

Twins:

* ``minmax_nonfinite`` / ``uniform_range_codes`` / ``affine_codes`` have
  vectorised NumPy twins (suffix ``_twin``) written independently of the
  loop form.
* The affine orders that add the zero point before rounding (``OP_*``) have
  NumPy twins too; the fused multiply-add (``llvm.fma`` in the kernel) is
  twinned by :func:`fma_twin`, an exact float64 TwoSum construction for
  float32 and exact rationals for float64.
* The bit-level format encoders (minifloat, posit) are written once as a
  plain-Python scalar function (``*_py``); the kernel is that function
  compiled by Numba (``*_nb``) and the twin runs it interpreted on Python
  floats and ints.  The test asserts that compiled and interpreted
  execution give the same bits.

Private module: inputs are already validated, contiguous, and of the
documented dtype.
"""

import math

import numba
import numpy as np

from .._rounding import round_code_nb, round_mode, MODES
from ._fma import fma as _fma_nb
from ._threads import run_serial_below

__all__ = ["minmax_nonfinite", "minmax_nonfinite_twin",
           "uniform_range_codes", "uniform_range_codes_twin",
           "affine_codes", "affine_codes_twin", "fma_twin",
           "OP_DIVIDE", "OP_RECIPROCAL", "OP_RECIPROCAL_ADD_ZP", "OP_RECIPROCAL_FMA_ZP",
           "minifloat_encode", "minifloat_encode_twin", "minifloat_encode_py",
           "SPECIAL_IEEE", "SPECIAL_FN", "SPECIAL_FNUZ", "SPECIAL_FINITE",
           "posit_encode", "posit_encode_twin", "posit_encode_py",
           "posit_decode", "posit_decode_twin", "posit_decode_py"]

_CHUNK = 1 << 16
# Below this size one thread is faster: on a loaded machine the parallel
# launch waits for descheduled workers (measured 24 ms vs 1.2 ms at 1.18M).
_PAR_MIN = 1 << 23


def _run(kernel, n, *args):
    """Call a prange kernel, single-threaded for small n (results are identical)."""
    return run_serial_below(_PAR_MIN, kernel, n, *args)


# -- min / max and finiteness: one read of the array --------------------------------
# Float comparisons do not vectorise without fastmath (NaN breaks the
# reassociation of a min reduction), so the scan works on the IEEE bit
# patterns viewed as integers, where min/max are exact, associative and
# vectorise.  For finite values:
#   * non-negative floats order like their bits as signed integers;
#   * negative floats have the sign bit set, so as unsigned integers the
#     largest pattern is the most negative value, and as signed integers
#     (all < 0) the smallest pattern is the negative value closest to 0.
# Hence, with smin, smax (signed view) and umax (unsigned view):
#   max = smax if smax >= 0 else smin;   min = umax if smin < 0 else smin.
# NaN/Inf have all exponent bits set: a positive one makes smax >= EXP, a
# negative one makes umax >= SIGN|EXP; finite values never reach either.
@numba.njit(cache=True, inline="always")
def _scan_bits(bc, uc):
    smin = bc[0]
    smax = bc[0]
    umax = uc[0]
    for i in range(bc.size):
        smin = min(smin, bc[i])
        smax = max(smax, bc[i])
        umax = max(umax, uc[i])
    return smin, smax, umax


@numba.njit(cache=True, parallel=True)
def _scan_kernel(bits, ubits):
    n = bits.size
    nchunks = (n + _CHUNK - 1) // _CHUNK
    smins = np.empty(nchunks, bits.dtype)
    smaxs = np.empty(nchunks, bits.dtype)
    umaxs = np.empty(nchunks, ubits.dtype)
    for c in numba.prange(nchunks):
        start = c * _CHUNK
        stop = min(start + _CHUNK, n)
        r = _scan_bits(bits[start:stop], ubits[start:stop])
        smins[c] = r[0]
        smaxs[c] = r[1]
        umaxs[c] = r[2]
    return smins.min(), smaxs.max(), umaxs.max()


def _bit_views(a):
    """Signed and unsigned integer views of a contiguous float32/float64 array."""
    if a.dtype == np.float32:
        return a.view(np.int32), a.view(np.uint32)
    return a.view(np.int64), a.view(np.uint64)


def _range_from_bits(dtype, smin, smax, umax):
    """(min, max) as Python floats from the scan, or None if a NaN/Inf was seen."""
    dtype = np.dtype(dtype)
    nb = dtype.itemsize * 8
    sign = 1 << (nb - 1)
    expo = (1 << (nb - 1)) - (1 << (nb - (12 if nb == 64 else 9)))   # 0x7F800000 / 0x7FF0...
    smin, smax, umax = int(smin), int(smax), int(umax)
    if smax >= expo or umax >= sign | expo:
        return None
    sdt = np.int32 if nb == 32 else np.int64
    udt = np.uint32 if nb == 32 else np.uint64
    hi = np.array(smax if smax >= 0 else smin, dtype=sdt).view(dtype)
    lo = np.array(umax, dtype=udt).view(dtype) if smin < 0 else np.array(smin, dtype=sdt).view(dtype)
    return float(lo), float(hi)


def minmax_nonfinite(flat):
    """(min, max, count of NaN/Inf) of a non-empty contiguous 1-D float array.

    min/max are over the finite values (exact; a zero extreme may come back
    as either signed zero: callers normalise with ``+ 0.0``).  One integer
    scan of the bit patterns; only when it saw a NaN/Inf (an error for every
    caller) are they counted and the finite extremes taken with NumPy.
    """
    r = _range_from_bits(flat.dtype, *_run(_scan_kernel, flat.size, *_bit_views(flat)))
    if r is not None:
        return r[0], r[1], 0
    fin = np.isfinite(flat)
    bad = int(flat.size - np.count_nonzero(fin))
    if bad == flat.size:
        return float("inf"), float("-inf"), bad
    vals = flat[fin]
    return float(vals.min()), float(vals.max()), bad


def minmax_nonfinite_twin(flat):
    fin = np.isfinite(flat)
    bad = int(flat.size - np.count_nonzero(fin))
    vals = flat[fin].astype(np.float64)
    if vals.size == 0:
        return float("inf"), float("-inf"), bad
    return float(vals.min()), float(vals.max()), bad


# -- uniform (grid="range") ---------------------------------------------------------
# Chunks are sliced before the inner loop: indices then start at 0, so the
# loop needs no negative-index wraparound and LLVM vectorises it.
@numba.njit(cache=True, parallel=True)
def _uniform_range_kernel(x, tmin, delta, top, out):
    n = x.size
    nchunks = (n + _CHUNK - 1) // _CHUNK
    for c in numba.prange(nchunks):
        start = c * _CHUNK
        stop = min(start + _CHUNK, n)
        xc = x[start:stop]
        oc = out[start:stop]
        for i in range(xc.size):
            q = np.floor((np.float64(xc[i]) - tmin) / delta)
            q = top if q > top else q
            oc[i] = q


def uniform_range_codes(flat, tmin, delta, top, code_dtype):
    """codes = min(floor((float64(x) - tmin) / delta), top); needs delta > 0, x >= tmin."""
    out = np.empty(flat.size, dtype=code_dtype)
    _run(_uniform_range_kernel, flat.size, flat, float(tmin), float(delta), float(top), out)
    return out


def uniform_range_codes_twin(flat, tmin, delta, top, code_dtype):
    q = np.floor((flat.astype(np.float64) - tmin) / delta)
    return np.minimum(q, float(top)).astype(code_dtype)


# -- affine -----------------------------------------------------------------------
#: Operation orders of the affine kernel (argument ``op``; ``False``/``True``
#: are accepted for 0/1).  ``s`` is the per-channel operand (the scale for
#: OP_DIVIDE, its reciprocal rounded to the input dtype otherwise), ``zp``
#: the zero point; every operation is in the input dtype with RNE.
#:   OP_DIVIDE              r = rounding(x / s) + zp
#:   OP_RECIPROCAL          r = rounding(x * s) + zp
#:   OP_RECIPROCAL_ADD_ZP   r = rounding(fl(fl(x * s) + zp))     (two roundings)
#:   OP_RECIPROCAL_FMA_ZP   r = rounding(fl(x * s + zp))         (fused, one rounding)
#: then r is clamped to [qmin, qmax].
OP_DIVIDE, OP_RECIPROCAL, OP_RECIPROCAL_ADD_ZP, OP_RECIPROCAL_FMA_ZP = 0, 1, 2, 3



@numba.njit(cache=True, inline="always")
def _affine_half_even(xr, orow, s, zf, lo, hi, use_recip):
    # The default mode, branch-free and in the input dtype so LLVM
    # vectorises it at full width.  It computes clamp(rint(v), qmin - zp,
    # qmax - zp) + zp, which equals the documented clamp(rint(v) + zp,
    # qmin, qmax) in float64 when |qmin|, |qmax| <= 2**(p-1) (p = 24 for
    # float32; checked by the caller): every integer involved (bounds,
    # differences, sums) is then exact in the input dtype, and rint(v) + zp
    # could only round in float64 beyond 2**53, far outside the clamp.
    # NaN (from a NaN/Inf input, seen only by the fused scan, whose caller
    # then raises) becomes qmin, so the integer conversion is always defined.
    if use_recip:
        for j in range(xr.size):
            r = np.rint(xr[j] * s)
            r = r if r > lo else lo
            r = r if r < hi else hi
            orow[j] = r + zf
    else:
        for j in range(xr.size):
            r = np.rint(xr[j] / s)
            r = r if r > lo else lo
            r = r if r < hi else hi
            orow[j] = r + zf


@numba.njit(cache=True, parallel=True)
def _affine_kernel(x3, scale, zp, zpx, lox, hix, qmin, qmax, mode, fast, op, u3, out3, scan,
                   b3, ub3):
    a_len, c_len, b_len = x3.shape
    nb = (b_len + _CHUNK - 1) // _CHUNK
    ntasks = a_len * c_len * nb
    stoch = mode == 4
    smins = np.zeros(ntasks, b3.dtype)
    smaxs = np.zeros(ntasks, b3.dtype)
    umaxs = np.zeros(ntasks, ub3.dtype)
    for t in numba.prange(ntasks):
        a = t // (c_len * nb)
        rest = t - a * (c_len * nb)
        c = rest // nb
        start = (rest - c * nb) * _CHUNK
        stop = min(start + _CHUNK, b_len)
        s = scale[c]
        z = zp[c]
        zx = zpx[c]
        xr = x3[a, c, start:stop]
        orow = out3[a, c, start:stop]
        if fast:
            _affine_half_even(xr, orow, s, zx, lox[c], hix[c], op == 1)
        else:
            for j in range(xr.size):
                u = u3[a, c, start + j] if stoch else 0.0
                if op == 0:
                    r = np.float64(round_code_nb(xr[j] / s, mode, u)) + z
                elif op == 1:
                    r = np.float64(round_code_nb(xr[j] * s, mode, u)) + z
                elif op == 2:
                    p = xr[j] * s                      # rounded to the input dtype
                    r = np.float64(round_code_nb(p + zx, mode, u))
                else:
                    r = np.float64(round_code_nb(_fma_nb(xr[j], s, zx), mode, u))
                # NaN-absorbing clamp, as in _affine_half_even.
                r = r if r > qmin else qmin
                orow[j] = r if r < qmax else qmax
        if scan:
            # Same chunk again while it is still in cache: the finiteness
            # check and the range cost no second read from memory.
            r3 = _scan_bits(b3[a, c, start:stop], ub3[a, c, start:stop])
            smins[t] = r3[0]
            smaxs[t] = r3[1]
            umaxs[t] = r3[2]
    return smins.min(), smaxs.max(), umaxs.max()


def affine_codes(x3, scale_or_inv, zp, qmin, qmax, mode, op, u3, code_dtype, *, scan=False):
    """Codes of the affine quantizer on a contiguous (A, C, B) view.

    ``scale_or_inv`` (C,) has the dtype of ``x3`` and holds the scale
    (``op=OP_DIVIDE`` or ``False``: v = x / s) or its precomputed
    reciprocal (``OP_RECIPROCAL`` or ``True``: v = x * inv;
    ``OP_RECIPROCAL_ADD_ZP`` / ``OP_RECIPROCAL_FMA_ZP``: the zero point is
    added before rounding, see the OP_* table above); ``zp`` (C,) float64
    integers with |zp| <= 2**16 (exact in the input dtype); ``u3`` float64
    uniforms of shape ``x3.shape`` (stochastic mode) or ``None``.
    Per element, OP_DIVIDE / OP_RECIPROCAL: r = round_mode(v) + zp
    (float64, exact); the other two: r = round_mode(v + zp) with the
    addition in the input dtype; r is clamped to [qmin, qmax] and
    converted to ``code_dtype``.

    ``scan=True`` also returns, from the same pass, ``(min, max)`` of
    ``x3`` as Python floats (as :func:`minmax_nonfinite`), or ``None`` if
    ``x3`` holds a NaN/Inf (the codes are then meaningless): the result is
    ``(codes, range_or_None)``.
    """
    out = np.empty(x3.shape, dtype=code_dtype)
    m = MODES.index(mode)
    op = int(op)
    if u3 is None:
        u3 = np.zeros((1, 1, 1), np.float64)
    if scan:
        b3, ub3 = _bit_views(x3)
    else:
        b3, ub3 = np.zeros((1, 1, 1), np.int32), np.zeros((1, 1, 1), np.uint32)
    dt = x3.dtype
    zpx, lox, hix = zp.astype(dt), (float(qmin) - zp).astype(dt), (float(qmax) - zp).astype(dt)
    fast = m == 0 and op < 2 and max(-qmin, qmax) <= 2 ** np.finfo(dt).nmant
    res = _run(_affine_kernel, x3.size, x3, scale_or_inv, zp, zpx, lox, hix, float(qmin),
               float(qmax), m, fast, op, u3, out, bool(scan), b3, ub3)
    if not scan:
        return out
    return out, _range_from_bits(x3.dtype, *res)


def _fma32_twin(x, s, z):
    """float32 fl(x*s + z) with one rounding, from float64 pieces (NumPy, vectorised).

    The product of two float32 is exact in float64; p + z is summed in
    float64 and its exact error recovered by TwoSum.  Rounding the float64
    sum to float32 is then correct except when the sum lands exactly on a
    float32 midpoint, where the sign of the error decides the direction.
    """
    p = x.astype(np.float64) * s.astype(np.float64)
    z = np.broadcast_to(z.astype(np.float64), p.shape)
    with np.errstate(over="ignore", invalid="ignore"):
        sm = p + z
        bb = sm - p
        err = (p - (sm - bb)) + (z - bb)
        r = sm.astype(np.float32)
        below = np.where(r.astype(np.float64) > sm, np.nextafter(r, np.float32(-np.inf)), r)
        above = np.nextafter(below, np.float32(np.inf))
        tie = (below.astype(np.float64) + above.astype(np.float64) == 2 * sm) & (below != above)
    r = np.where(tie & (err > 0), above, r)
    r = np.where(tie & (err < 0), below, r)
    return r


def fma_twin(x, s, z):
    """fl(x*s + z) with one rounding in ``x.dtype`` (float32: :func:`_fma32_twin`;
    float64: exact rational arithmetic element by element, slow)."""
    if x.dtype == np.float32:
        return _fma32_twin(x, s, z)
    from fractions import Fraction
    xb, sb, zb = np.broadcast_arrays(x, s.astype(np.float64), z.astype(np.float64))
    out = np.empty(xb.shape, np.float64)
    for i, (a, b, c) in enumerate(zip(xb.reshape(-1).tolist(), sb.reshape(-1).tolist(),
                                      zb.reshape(-1).tolist())):
        if not all(np.isfinite([a, b, c])):
            out.reshape(-1)[i] = a * b + c
            continue
        try:
            out.reshape(-1)[i] = float(Fraction(a) * Fraction(b) + Fraction(c))
        except OverflowError:
            out.reshape(-1)[i] = a * b + c      # beyond float64: the product overflows too
    return out


def affine_codes_twin(x3, scale_or_inv, zp, qmin, qmax, mode, op, u3, code_dtype):
    op = int(op)
    s = scale_or_inv.reshape(1, -1, 1)
    z = zp.reshape(1, -1, 1)
    if op == OP_DIVIDE:
        r = round_mode(x3 / s, mode, u3).astype(np.float64) + z
    elif op == OP_RECIPROCAL:
        r = round_mode(x3 * s, mode, u3).astype(np.float64) + z
    elif op == OP_RECIPROCAL_ADD_ZP:
        r = round_mode((x3 * s) + z.astype(x3.dtype), mode, u3).astype(np.float64)
    else:
        r = round_mode(fma_twin(x3, s, z), mode, u3).astype(np.float64)
    return np.clip(r, float(qmin), float(qmax)).astype(code_dtype)


# -- minifloat encoding ---------------------------------------------------------------
#: ``special`` codes of :func:`minifloat_encode_py` (refcomp.quantize.minifloat.SPECIALS).
SPECIAL_IEEE, SPECIAL_FN, SPECIAL_FNUZ, SPECIAL_FINITE = 0, 1, 2, 3


def minifloat_encode_py(v, man_bits, exp_bits, bias, subnormals, saturate, special, trunc):
    """Bit pattern (int) of the float64 ``v`` in the minifloat format.

    One rounding from the exact value: to nearest, ties to even mantissa
    (``trunc`` False) or toward zero (``trunc`` True); overflow is decided
    after rounding.  ``special`` (an int, a bool is accepted for 0/1):

    * 0 "ieee": top exponent reserved (inf: zero mantissa; NaN otherwise);
    * 1 "fn" (OCP E4M3FN): no inf, only S.1..1.1..1 is NaN;
    * 2 "fnuz": no inf, no -0, the single NaN is the pattern 1.0..0.0;
      every other pattern is a number (top exponent included); a result
      that rounds to zero is +0;
    * 3 "finite" (OCP E2M1): every pattern is a number, -0 kept, no NaN
      (callers refuse NaN input); overflow and inf saturate.

    Toward zero, a finite overflow gives max (IEEE 754 roundTowardZero);
    an infinite input is still inf (IEEE, not saturating) or NaN (no inf).
    """
    special = int(special)
    sign = 1 if math.copysign(1.0, v) < 0.0 else 0
    sbit = sign << (exp_bits + man_bits)
    top_exp = (1 << exp_bits) - 1
    man_all = (1 << man_bits) - 1
    emin = 1 - bias
    if special == 1:
        nan_pat = (top_exp << man_bits) | man_all
        emax = top_exp - bias
        max_man = man_all - 1
    elif special == 0:
        nan_pat = (top_exp << man_bits) | (1 << (man_bits - 1))
        emax = top_exp - 1 - bias
        max_man = man_all
    else:
        nan_pat = 1 << (exp_bits + man_bits)        # fnuz: 1.0..0.0 (finite: unused)
        emax = top_exp - bias
        max_man = man_all
    max_pat = (((emax + bias) << man_bits) | max_man)
    maxfin = math.ldexp(float(max_man + (1 << man_bits)), emax - man_bits)
    if special == 2:
        over = nan_pat                               # fnuz: NaN, no sign
    elif special == 3:
        over = sbit | max_pat                        # finite: saturation is the only choice
    elif special == 1:
        over = sbit | nan_pat
    else:
        over = sbit | (top_exp << man_bits)          # ieee: inf
    if v != v:
        if special == 2:
            return nan_pat
        if special == 3:
            return sbit
        return sbit | nan_pat
    a = abs(v)
    if a == math.inf:
        if saturate:
            return sbit | max_pat
        return over
    zero = 0 if special == 2 else sbit
    if a == 0.0:
        return zero
    e = math.frexp(a)[1] - 1          # a in [2**e, 2**(e+1))
    if e < emin:
        qexp = emin - man_bits if subnormals else emin
    else:
        qexp = e - man_bits
    if trunc:
        n = float(math.floor(math.ldexp(a, -qexp)))   # exact scaling, one rounding to zero
    else:
        n = np.rint(math.ldexp(a, -qexp))      # exact scaling, one RNE rounding
    r = math.ldexp(n, qexp)
    if r > maxfin:
        if saturate or trunc:
            return sbit | max_pat
        return over
    if r == 0.0:
        return zero
    e2 = math.frexp(r)[1] - 1
    if e2 < emin:
        return sbit | int(math.ldexp(r, man_bits - emin))
    man = int(math.ldexp(r, man_bits - e2)) - (1 << man_bits)
    return sbit | ((e2 + bias) << man_bits) | man


_minifloat_encode_nb = numba.njit(cache=True)(minifloat_encode_py)


@numba.njit(cache=True, parallel=True)
def _minifloat_kernel(x, man_bits, exp_bits, bias, subnormals, saturate, special, trunc, out):
    n = x.size
    nchunks = (n + _CHUNK - 1) // _CHUNK
    for c in numba.prange(nchunks):
        start = c * _CHUNK
        stop = min(start + _CHUNK, n)
        for i in range(start, stop):
            out[i] = _minifloat_encode_nb(np.float64(x[i]), man_bits, exp_bits, bias,
                                          subnormals, saturate, special, trunc)


def minifloat_encode(flat, man_bits, exp_bits, bias, subnormals, saturate, special, code_dtype,
                     trunc=False):
    """Bit patterns (``code_dtype``) of a 1-D float32/float64 array."""
    out = np.empty(flat.size, dtype=code_dtype)
    _run(_minifloat_kernel, flat.size, flat, int(man_bits), int(exp_bits), int(bias),
         bool(subnormals), bool(saturate), int(special), bool(trunc), out)
    return out


def minifloat_encode_twin(flat, man_bits, exp_bits, bias, subnormals, saturate, special,
                          code_dtype, trunc=False):
    vals = [minifloat_encode_py(float(v), man_bits, exp_bits, bias, subnormals, saturate,
                                int(special), bool(trunc))
            for v in flat.tolist()]
    return np.array(vals, dtype=np.int64).astype(code_dtype)


# -- posit ------------------------------------------------------------------------
def posit_encode_py(v, nbits, es):
    """Bit pattern (int in [0, 2**nbits)) of the float64 ``v`` as posit(nbits, es).

    NaN/inf -> NaR; 0 -> 0.  |v| is written as the infinite bit string
    regime | es exponent bits | 52 fraction bits; the first nbits-1 bits are
    kept and rounded to nearest, ties to the even pattern, using all
    remaining bits (so ties and carries act on the bit pattern, carrying
    into the exponent and regime).  Results are clamped to [minpos, maxpos]
    (never 0, never NaR).  Negative values are the two's complement.
    """
    mask = (1 << nbits) - 1
    nar = 1 << (nbits - 1)
    if v != v or abs(v) == math.inf:
        return nar
    if v == 0.0:
        return 0
    a = abs(v)
    m, e = math.frexp(a)
    scale = e - 1                             # a = 2**scale * (1 + f)
    frac = int(math.ldexp(m, 53)) - (1 << 52)  # 52 fraction bits, exact
    k = scale >> es                            # floor division by 2**es
    ee = scale - (k << es)
    maxpos = (1 << (nbits - 1)) - 1
    regime = 0
    if k >= 0:
        rlen = k + 2
        if rlen > nbits - 1:
            p = maxpos
        else:
            regime = ((1 << (k + 1)) - 1) << 1    # k+1 ones then a zero
            p = -1
    else:
        rlen = 1 - k
        if rlen > nbits - 1:
            p = 1
        else:
            regime = 1                           # -k zeros then a one
            p = -1
    if p == -1:
        avail = nbits - 1 - rlen
        body = (ee << 52) | frac                 # es + 52 bits
        drop = es + 52 - avail
        kept = body >> drop
        rem = body - (kept << drop)
        half = 1 << (drop - 1)
        p = (regime << avail) | kept
        if rem > half or (rem == half and (p & 1) == 1):
            p += 1
        if p > maxpos:
            p = maxpos
        if p == 0:
            p = 1
    if v < 0.0:
        p = (-p) & mask
    return p


_posit_encode_nb = numba.njit(cache=True)(posit_encode_py)


def posit_decode_py(p, nbits, es):
    """Exact float64 value of the posit pattern ``p`` (NaR -> NaN)."""
    mask = (1 << nbits) - 1
    nar = 1 << (nbits - 1)
    p = p & mask
    if p == 0:
        return 0.0
    if p == nar:
        return math.nan
    neg = p >= nar
    if neg:
        p = (-p) & mask
    # Regime: run of identical bits starting at bit nbits-2.
    pos = nbits - 2
    first = (p >> pos) & 1
    run = 0
    while pos >= 0 and ((p >> pos) & 1) == first:
        run += 1
        pos -= 1
    k = run - 1 if first == 1 else -run
    pos -= 1                                   # skip the terminating bit
    ebits = 0
    e = 0
    while ebits < es:
        e <<= 1
        if pos >= 0:
            e |= (p >> pos) & 1
            pos -= 1
        ebits += 1
    fbits = pos + 1 if pos >= 0 else 0
    f = p & ((1 << fbits) - 1)
    val = math.ldexp(float((1 << fbits) + f), int((k << es) + e - fbits))
    return -val if neg else val


_posit_decode_nb = numba.njit(cache=True)(posit_decode_py)


@numba.njit(cache=True, parallel=True)
def _posit_encode_kernel(x, nbits, es, out):
    n = x.size
    nchunks = (n + _CHUNK - 1) // _CHUNK
    for c in numba.prange(nchunks):
        start = c * _CHUNK
        stop = min(start + _CHUNK, n)
        for i in range(start, stop):
            out[i] = _posit_encode_nb(np.float64(x[i]), nbits, es)


@numba.njit(cache=True, parallel=True)
def _posit_decode_kernel(codes, nbits, es, out):
    n = codes.size
    nchunks = (n + _CHUNK - 1) // _CHUNK
    for c in numba.prange(nchunks):
        start = c * _CHUNK
        stop = min(start + _CHUNK, n)
        for i in range(start, stop):
            out[i] = _posit_decode_nb(np.int64(codes[i]), nbits, es)


def posit_encode(flat, nbits, es, code_dtype):
    out = np.empty(flat.size, dtype=code_dtype)
    _run(_posit_encode_kernel, flat.size, flat, int(nbits), int(es), out)
    return out


def posit_encode_twin(flat, nbits, es, code_dtype):
    return np.array([posit_encode_py(float(v), nbits, es) for v in flat.tolist()],
                    dtype=np.int64).astype(code_dtype)


def posit_decode(codes, nbits, es):
    """float64 values of a 1-D array of posit patterns."""
    out = np.empty(codes.size, dtype=np.float64)
    _run(_posit_decode_kernel, codes.size, codes, int(nbits), int(es), out)
    return out


def posit_decode_twin(codes, nbits, es):
    return np.array([posit_decode_py(int(c), nbits, es) for c in codes.tolist()],
                    dtype=np.float64)
