"""Python-int scalar definitions of the integer primitives: the tests' ground truth.

Written from the C++ sources' text (gemmlowp fixedpoint.h, TFLite quantization_util.cc and
common.h; FACTS.md §5.2-5.4) with Python's unbounded ints and exact fractions, independently of
refcomp's kernels.
"""

import math
from fractions import Fraction

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1


def c_div(a, b):
    """C++ integer division: truncation toward zero."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def srdhm(a, b):
    if a == b == INT32_MIN:
        return INT32_MAX
    ab = a * b
    nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
    return c_div(ab + nudge, 1 << 31)


def rdbpot(x, e):
    assert 0 <= e <= 31
    mask = (1 << e) - 1
    rem = x & mask                      # Python & on negative ints: two's complement, infinite
    thr = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> e) + (1 if rem > thr else 0)


def mbqm_double(x, m, shift):
    left, right = max(shift, 0), max(-shift, 0)
    xl = x * (1 << left)
    if not INT32_MIN <= xl <= INT32_MAX:
        return None                     # undefined in the C++ int32 code
    return rdbpot(srdhm(xl, m), right)


def mbqm_ruy(x, m, shift):
    """ruy's x86 kernels: SRDHM, then a rounding right shift with ties toward +inf."""
    left, right = max(shift, 0), max(-shift, 0)
    xl = x * (1 << left)
    if not INT32_MIN <= xl <= INT32_MAX:
        return None
    h = srdhm(xl, m)
    return (h + (1 << (right - 1))) >> right if right else h


def mbqm_single(x, m, shift):
    total = 31 - shift
    r = (x * m + (1 << (total - 1))) >> total
    return r if INT32_MIN <= r <= INT32_MAX else None


def round_half_away_fraction(f):
    f = Fraction(f)
    fl = math.floor(f)
    d = f - fl
    if d > Fraction(1, 2) or (d == Fraction(1, 2) and f > 0):
        return fl + 1
    return fl


def round_half_even_fraction(f):
    f = Fraction(f)
    fl = math.floor(f)
    d = f - fl
    if d > Fraction(1, 2) or (d == Fraction(1, 2) and fl % 2 == 1):
        return fl + 1
    return fl


def quantize_multiplier(real, single=False):
    if real == 0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = round_half_away_fraction(Fraction(q) * (1 << 31))
    if q_fixed == 1 << 31:
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    if single and shift > 30:
        return INT32_MAX, 30
    return q_fixed, shift


def fl(v, p):
    """Exact value v (Fraction) rounded to the nearest binary float with a p-bit
    significand, ties to even (no exponent limits: the tests stay in the normal range)."""
    v = Fraction(v)
    if v == 0:
        return Fraction(0)
    sign = -1 if v < 0 else 1
    a = abs(v)
    e = a.numerator.bit_length() - a.denominator.bit_length()
    if Fraction(2) ** e > a:
        e -= 1
    # a in [2**e, 2**(e+1)): the grid spacing is 2**(e - p + 1)
    ulp = Fraction(2) ** (e - p + 1)
    return sign * round_half_even_fraction(a / ulp) * ulp


def fl32(v):
    return fl(v, 24)


def fl64(v):
    return fl(v, 53)


def requant_ref(acc, s_in, s_out, zp, mode, lo, hi, bias=None, per_channel=False):
    """One element of refcomp.integer.requantize, from the runtimes' written definitions.

    acc int, s_in float (exact product, float64), s_out float (a float32 value), zp int.
    """
    if mode in ("tflite_double", "tflite_single", "tflite_ruy"):
        single = mode == "tflite_single"
        m, sh = quantize_multiplier(s_in / s_out, single)   # double division, as TFLite
        f = {"tflite_double": mbqm_double, "tflite_single": mbqm_single,
             "tflite_ruy": mbqm_ruy}[mode]
        r = f(acc, m, sh)
        assert r is not None
        r += zp
    elif mode == "tflite_float64":
        real = fl64(Fraction(s_in) / Fraction(s_out))       # TFLite's double real multiplier
        r = round_half_away_fraction(fl64(acc * real)) + zp
    else:
        M = fl32(fl32(Fraction(s_in)) / Fraction(s_out))
        if mode == "onnx_reference":
            w = fl64(fl64(acc * M) + zp)
            r = round_half_even_fraction(w)
        else:
            f = fl32(acc)
            if bias is not None:
                a = fl32(Fraction(s_in))
                if per_channel:
                    bt = fl32(Fraction(bias) / a)
                else:
                    bt = fl32(Fraction(bias) * fl32(fl64(1 / a)))
                f = fl32(f + bt)
            r = round_half_even_fraction(fl32(f * M)) + zp
    return min(max(r, lo), hi)


def xnnpack_add(a, s1, z1, b, s2, z2, so, zo):
    """XNNPACK int8 addition as measured (refcomp.integer.ops.add_q, mode "xnnpack"),
    with exact fractions for the float32 ratios."""
    ra, rb = fl32(Fraction(s1) / Fraction(so)), fl32(Fraction(s2) / Fraction(so))
    mx = max(ra, rb)
    e = mx.numerator.bit_length() - mx.denominator.bit_length()
    if Fraction(2) ** e > mx:
        e -= 1
    shift = 20 - e
    ma = round_half_even_fraction(ra * 2 ** shift)
    mb = round_half_even_fraction(rb * 2 ** shift)
    acc = (1 << (shift - 1)) - ma * z1 - mb * z2 + a * ma + b * mb
    return (acc >> shift) + zo
