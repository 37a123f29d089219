"""compare_quantized on the value-domain quantizers: posit, power of two, binary, ternary,
XNOR-Net, shared codebooks.

Golden cases are written out by hand (values exactly on, and within one
rounding of, a cell boundary).  The boundaries of refcomp.testing are
checked against refcomp's own encoders (a sibling implementation of the
same rule): the encoder switches codes exactly there.  The "other
frameworks" are independent NumPy formulas that break ties the other way,
or that are genuinely wrong.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import refcomp
from refcomp.kernels.quantize import posit_decode
from refcomp.testing import compare_quantized
from refcomp.testing._cells import ordered_cells, posit_value
from refcomp.testing.strategies import weight_arrays

Q = refcomp.quantize
f32 = np.float32


# -- posit ---------------------------------------------------------------------------------
@pytest.mark.parametrize("n,es", [(6, 0), (8, 0), (8, 1), (8, 2), (10, 3), (16, 1)])
def test_posit_value_matches_the_kernel_decoder(n, es):
    p = np.arange(1, 2 ** (n - 1), dtype=np.int64)
    assert np.array_equal(posit_value(p, n, es), posit_decode(p.astype(np.uint32), n, es))


@pytest.mark.parametrize("n,es", [(5, 0), (6, 1), (8, 0), (8, 1), (8, 2)])
def test_posit_boundaries_are_where_the_encoder_switches(n, es):
    # every pair of adjacent non-zero posits, both signs: the encoder gives the even
    # pattern at the boundary and the neighbour on each side one float64 step away
    half = 2 ** (n - 1)
    lo = np.concatenate([np.arange(1, half - 1), -np.arange(2, half)])       # signed ranks
    cells = ordered_cells(Q.posit(np.zeros(1), n, es), np.zeros(1))
    b = cells.boundary(lo, np.zeros(lo.size, np.int64))
    assert np.all(np.isfinite(b))

    def codes(x):
        c = Q.posit(x, n, es).codes.astype(np.int64)
        return np.where(c >= half, c - 2 * half, c)
    even = np.where(lo % 2 == 0, lo, lo + 1)
    assert np.array_equal(codes(b), even)
    assert np.array_equal(codes(np.nextafter(b, np.inf)), lo + 1)
    assert np.array_equal(codes(np.nextafter(b, -np.inf)), lo)


def test_posit_golden_geometric_boundary_tie_and_wrong_arithmetic_midpoint():
    # posit(8, 2): 0x7E = 2**20 and 0x7F = maxpos = 2**24; the 9-bit pattern 0xFD between
    # them has one exponent bit cut off: boundary 2**22, not the arithmetic 8.5 * 2**20
    w = np.array([2.0 ** 22, 3 * 2.0 ** 21, 2.0 ** 22 * (1 + 2 ** -23), 1.0], f32)
    q = Q.posit(w, 8, 2)
    assert q.codes.tolist() == [0x7E, 0x7F, 0x7F, 0x40]
    other = np.array([0x7F, 0x7E, 0x7E, 0x40])     # ties up; rounds by the arithmetic midpoint
    res = compare_quantized(other, w, q)
    assert res.ties.tolist() == [0] and res.mismatches.tolist() == [1]
    assert res.boundary.tolist() == [2]                 # one float32 step above 2**22
    assert res.tie_rules == ("half_away", "half_up") and res.refcomp_rule == "half_even"
    assert "boundary = 4194304.0" in res.report()


def test_posit_no_boundary_across_zero_or_nar():
    w = np.array([2.0 ** -30, -(2.0 ** -30), np.nan])
    q = Q.posit(w, 8, 0)                                 # -> +minpos, -minpos, NaR
    assert q.codes.tolist() == [1, 255, 128]
    res = compare_quantized(np.array([0, 0, 0]), w, q)  # flush to zero: not a rounding
    assert res.mismatches.tolist() == [0, 1, 2]


def _posit_ties(n, es, mags, signs):
    """Exact boundaries of posit(n, es): the odd patterns of posit(n + 1, es)."""
    p = 2 * np.asarray(mags, np.int64) + 1
    v = posit_decode(p.astype(np.uint32), n + 1, es)
    return np.where(signs, -v, v)


@settings(max_examples=40, deadline=None)
@given(st.sampled_from([(6, 0), (8, 0), (8, 1), (8, 2), (12, 1), (16, 1)]), st.data())
def test_posit_other_tie_rule_is_boundary_only_and_wrong_codes_are_mismatches(fmt, data):
    n, es = fmt
    half = 2 ** (n - 1)
    k = data.draw(st.integers(1, 12))
    mags = data.draw(st.lists(st.integers(1, half - 2), min_size=k, max_size=k))
    signs = data.draw(st.lists(st.booleans(), min_size=k, max_size=k))
    ties = _posit_ties(n, es, mags, signs)
    rest = data.draw(weight_arrays((16,), ties=False, zeros=True)).astype(np.float64)
    w = np.concatenate([ties, rest])
    q = Q.posit(w, n, es)
    c = q.codes.astype(np.int64)
    signed = np.where(c >= half, c - 2 * half, c)
    # the other implementation breaks ties to the odd pattern: the other neighbour of
    # the pair (lo, lo + 1) of signed patterns around each tie
    lo = np.where(np.array(signs), -(np.array(mags) + 1), np.array(mags))
    odd = signed.copy()
    odd[:k] = np.where(signed[:k] == lo, lo + 1, lo)
    other = np.where(odd < 0, odd + 2 * half, odd)
    res = compare_quantized(other, w, q)
    assert res.ok and res.boundary.size == 0
    assert set(res.ties.tolist()) == set(range(k))
    assert "half_even" not in res.tie_rules
    # a genuinely wrong code away from any boundary: two cells off
    bad = other.copy()
    j = k + 3
    bad[j] = (bad[j] + 2) % (2 * half) if bad[j] not in (half - 1, half - 2) else 1
    res = compare_quantized(bad, w, q)
    assert j in res.mismatches.tolist()


# -- power of two ----------------------------------------------------------------------------
def test_power_of_two_linear_golden_ties_toward_zero():
    # bits=4, max_exp=2: e_min = -4, magnitudes 2**-4 .. 2**2; 1.5 = midpoint of 1 and 2
    w = np.array([1.5, -1.5, 2.0 ** -5, 1.25, 2.75], f32)
    q = Q.power_of_two(w, 4, domain="linear", max_exp=2)
    assert q.codes.tolist() == [6, -6, 1, 5, 6]          # ties to the larger magnitude
    other = np.array([5, -5, 0, 5, 7])                   # ties toward zero; 2.75 -> 4: wrong
    res = compare_quantized(other, w, q)
    assert res.ties.tolist() == [0, 1, 2] and res.mismatches.tolist() == [4]
    assert res.tie_rules == ("half_toward_zero",) and res.refcomp_rule == "half_away"


def test_power_of_two_log_boundary_is_sqrt2_and_never_a_tie():
    s = np.nextafter(f32(np.sqrt(2.0)), f32(2))          # 1.41421366: the float32 above sqrt 2
    w = np.array([s, f32(np.sqrt(2.0)), 1.3, s * f32(2.0 ** -5)], f32)
    q = Q.power_of_two(w, 4, max_exp=2)                 # log domain
    assert q.codes.tolist() == [6, 5, 5, 1]
    other = np.array([5, 6, 6, 0])                       # log2 in float32; 1.3 -> 2 is wrong
    res = compare_quantized(other, w, q)
    assert res.boundary.tolist() == [0, 1, 3] and res.mismatches.tolist() == [2]
    assert res.ties.size == 0 and res.refcomp_rule is None


@pytest.mark.parametrize("domain", ["log", "linear"])
def test_power_of_two_boundaries_are_where_the_encoder_switches(domain):
    bits, emax = 5, 3
    L = 2 ** (bits - 1) - 1
    q = Q.power_of_two(np.ones(1), bits, domain=domain, max_exp=emax)
    cells = ordered_cells(q, np.ones(1))
    lo = np.arange(-L, L)
    b = cells.boundary(lo, np.zeros(lo.size, np.int64))

    def enc(x):
        return Q.power_of_two(x, bits, domain=domain, max_exp=emax).codes.astype(int)
    above, below = np.nextafter(b, np.inf), np.nextafter(b, -np.inf)
    assert np.array_equal(enc(above), np.where(lo >= 0, lo + 1, enc(above)))
    assert np.array_equal(enc(below), np.where(lo >= 0, lo, enc(below)))
    assert np.array_equal(enc(-above)[lo >= 0], -(lo[lo >= 0] + 1))
    if domain == "linear":                               # exact ties: larger magnitude
        assert np.array_equal(enc(b), np.where(lo >= 0, lo + 1, lo))


@settings(max_examples=40, deadline=None)
@given(weight_arrays(specials=False, ties=True), st.integers(2, 6))
def test_power_of_two_linear_other_tie_rule_only_ties(w, bits):
    w = w.astype(f32)
    q = Q.power_of_two(w, bits, domain="linear")
    emin = q.params["e_min"]
    L = 2 ** (bits - 1) - 1
    # independent: nearest power, ties toward the smaller magnitude (m > 1.5 strictly)
    a = np.abs(w.astype(np.float64))
    m, e = np.frexp(a)
    er = e - 1 + (2 * m > 1.5)
    er = np.minimum(er, emin + L - 1)
    j = np.where(er < emin, np.where(a > np.ldexp(1.0, emin - 1), 1, 0), er - emin + 1)
    j = np.where(a == 0, 0, j)
    other = np.where(np.signbit(w) & (j > 0), -j, j)
    res = compare_quantized(other, w, q)
    assert res.ok and res.boundary.size == 0, res.report()
    if res.ties.size:
        assert "half_toward_zero" in res.tie_rules and "half_away" not in res.tie_rules
    c = q.codes.astype(int).reshape(-1)
    far = np.flatnonzero((c != 0) & (np.abs(c) < L - 1))
    if far.size:
        bad = c.copy()
        bad[far[0]] += 2 * np.sign(bad[far[0]])
        assert far[0] in compare_quantized(bad.reshape(w.shape), w, q).mismatches


# -- binary, XNOR-Net, ternary ----------------------------------------------------------------
def test_binary_golden_zero_ties():
    w = np.array([0.0, -0.0, 0.5, -0.5, 3e-45], f32)
    q = Q.binary(w)
    assert q.codes.tolist() == [1, 1, 1, 0, 1]
    res = compare_quantized((w > 0).astype(np.uint8), w, q)          # 0 -> -1
    assert res.ok and res.ties.tolist() == [0, 1] and res.tie_rules == ("half_down",)
    res = compare_quantized((~np.signbit(w)).astype(np.uint8), w, q)  # the sign bit
    assert res.ok and res.ties.tolist() == [1] and res.tie_rules == ("sign_bit",)
    res = compare_quantized(np.array([1, 1, 0, 0, 1], np.uint8), w, q)
    assert res.mismatches.tolist() == [2]


def test_binary_float64_underflow_through_float32_is_a_boundary_case():
    w = np.array([1e-300, -1e-300, 1e-40], np.float64)
    q = Q.binary(w)
    other = (w.astype(f32) > 0).astype(np.uint8)          # float32 flushes 1e-300 to 0
    res = compare_quantized(other, w, q)
    assert res.ok and res.boundary.tolist() == [0] and res.ties.size == 0


def test_xnor_keep_zero_goes_to_plus_alpha_elsewhere():
    w = np.array([[0.0, 1.0, -2.0], [-0.0, 0.5, 0.25]], f32)
    q = Q.xnor(w, zero="keep")
    assert q.codes.tolist() == [[1, 2, 0], [1, 2, 2]]
    other = np.where(w >= 0, 2, 0)                        # zero="plus" behaviour
    res = compare_quantized(other, w, q)
    assert res.ok and res.ties.tolist() == [0, 3] and res.tie_rules == ("half_up",)
    assert res.refcomp_rule == "zero_kept"
    q1 = Q.xnor(w)                                        # zero="plus": 1-bit sign
    res = compare_quantized(np.where(np.signbit(w), 0, 1), w, q1)
    assert res.ok and res.ties.tolist() == [3] and res.tie_rules == ("sign_bit",)


def test_ternary_golden_ties_at_plus_minus_delta():
    # mean|w| = 6 / 6 = 1, delta_factor 0.5: Δ = 0.5 exactly, hit by ±0.5
    w = np.array([3.0, -1.0, 1.0, -0.5, 0.5, 0.0], f32)
    q = Q.ternary(w, delta_factor=0.5)
    assert q.info["delta"] == 0.5 and q.codes.tolist() == [2, 0, 2, 1, 1, 1]
    other = np.where(w >= 0.5, 2, np.where(w <= -0.5, 0, 1))     # non-strict comparisons
    res = compare_quantized(other, w, q)
    assert res.ok and res.ties.tolist() == [3, 4] and res.tie_rules == ("half_away",)
    assert res.refcomp_rule == "half_toward_zero"
    wrong = np.array([2, 0, 1, 1, 1, 1])                  # 1.0 -> 0: not near ±Δ
    assert compare_quantized(wrong, w, q).mismatches.tolist() == [2]


def test_ternary_threshold_computed_in_float32_is_a_boundary_case():
    rng = np.random.default_rng(5)
    w = rng.standard_normal(4096).astype(f32)
    q = Q.ternary(w)
    d = q.info["delta"]
    w[:2] = [np.nextafter(f32(d), f32(1)), -np.nextafter(f32(d), f32(1))]
    q = Q.ternary(w)
    d32 = f32(0.7) * (np.cumsum(np.abs(w), dtype=f32)[-1] / f32(w.size))   # sequential sum
    other = np.where(w > d32, 2, np.where(w < -d32, 0, 1))
    res = compare_quantized(other, w, q)
    assert res.ok, res.report()


def test_ternary_per_channel_and_ttq():
    w = np.array([[3.0, -1.0, 1.0, -0.5, 0.5, 0.0], [2.0, -2.0, 0.0, 0.0, 1.0, 1.0]], f32)
    q = Q.ternary(w, delta_factor=0.5, axis=0)           # Δ = 0.5 and 0.5
    other = np.where(w >= 0.5, 2, np.where(w <= -0.5, 0, 1))
    res = compare_quantized(other, w, q)
    assert res.ok and res.ties.tolist() == [3, 4] and res.tie_rules == ("half_away",)
    qt = Q.ternary_ttq(w, 0.5, 0.4, t=0.5)                # Δ = 0.5 * 3 = 1.5: no tie
    wrong = qt.codes.copy()
    wrong[0, 0] = 1
    assert compare_quantized(wrong, w, qt).mismatches.tolist() == [0]


@settings(max_examples=40, deadline=None)
@given(weight_arrays(specials=False, ties="always"), st.sampled_from([0.0, 0.5, 0.7, 1.0]))
def test_ternary_other_comparison_is_ties_only(w, factor):
    q = Q.ternary(w, delta_factor=factor)
    d = q.info["delta"]
    x = w.astype(np.float64)
    other = np.where(x >= d, 2, np.where(x <= -d, 0, 1))   # non-strict
    res = compare_quantized(other, w, q)
    assert res.ok and res.boundary.size == 0
    assert set(res.ties.tolist()) == set(np.flatnonzero((np.abs(x) == d).reshape(-1) & (
        other.reshape(-1) != q.codes.reshape(-1))).tolist())


@settings(max_examples=40, deadline=None)
@given(weight_arrays(specials=False, zeros="always"))
def test_binary_other_tie_rules_and_wrong_codes(w):
    q = Q.binary(w)
    res = compare_quantized((w > 0).astype(np.uint8), w, q)
    flat = w.reshape(-1)
    assert res.ok and set(res.ties.tolist()) == set(np.flatnonzero(flat == 0).tolist())
    if res.ties.size:
        assert "half_down" in res.tie_rules and "half_up" not in res.tie_rules
    if np.any((flat == 0) & ~np.signbit(flat)):           # +0.0 -> -1: not the sign bit
        assert res.tie_rules == ("half_down",)
    nz = np.flatnonzero(flat != 0)
    if nz.size:
        bad = q.codes.copy().reshape(-1)
        bad[nz[0]] ^= 1
        assert compare_quantized(bad.reshape(w.shape), w, q).mismatches.tolist() == [nz[0]]


# -- codebooks -----------------------------------------------------------------------------------
def test_kmeans_tie_rule_is_named_half_up():
    # cells {0, 1} -> 0.5, {2, 4, 4, 4} -> 3.5, {8, 8} -> 8: 2 = (0.5 + 3.5) / 2 goes up
    w = np.array([0, 1, 2, 4, 4, 4, 8, 8], f32)
    q = Q.kmeans(w, 3)
    assert q.params["codebook"].tolist() == [0.5, 3.5, 8.0] and q.codes[2] == 1
    book = q.params["codebook"].astype(np.float64)
    other = np.array([int(np.argmin(np.abs(book - v))) for v in w])  # argmin: ties down
    res = compare_quantized(other, w, q)
    assert res.ok and res.refcomp_rule == "half_up" and res.ties.tolist() == [2]
    assert "half_down" in res.tie_rules and "half_up" not in res.tie_rules


def test_shared_codebook_zero_code_is_not_a_cell():
    w = np.array([[0.0, 0.9, 1.0, -1.0, -0.9, 0.05, 0.0, 2.0]], f32)
    q = Q.share_weights(refcomp.Model([refcomp.Layer("dense", weights={"W": w})]), 2) \
        .layers[0].weights["W"]
    zc = q.params["zero_code"]
    assert zc >= 0 and q.codes[0, 0] == zc
    book = q.params["codebook"].astype(np.float64)
    keep = np.delete(np.arange(book.size), zc)
    other = keep[np.argmin(np.abs(w.reshape(-1, 1) - book[keep]), axis=1)].reshape(w.shape)
    res = compare_quantized(other, w, q)                 # a framework that does not prune
    assert res.mismatches.tolist() == [0, 6]
    assert compare_quantized(q.codes, w, q).ok


def test_decoders_without_analysis_compare_exactly():
    w = np.array([1.5, -1.5], f32)
    q = Q.from_codes(np.array([6, -6], np.int8), "power_of_two", e_min=-4)   # no domain
    res = compare_quantized(np.array([5, -5]), w, q)
    assert res.mismatches.tolist() == [0, 1]
