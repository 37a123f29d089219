"""refcomp.testing.compare_quantized: boundary cases apart, tie rules named.

The "other implementations" are written here independently (NumPy formulas
of TFLite's and PyTorch's rules, FACTS.md §5.5, §5.8), or are the real
thing (torch.quantize_per_tensor, ml_dtypes casts).
"""

import numpy as np
import pytest
from hypothesis import given, settings

import refcomp
from refcomp import ParameterError, ShapeError
from refcomp.testing import compare_quantized
from refcomp.testing.strategies import affine_tie_cases

f32 = np.float32


def _ties(scale, zp_range=20):
    k = np.arange(-zp_range, zp_range)
    return ((k + 0.5) * scale).astype(f32)


def test_tflite_half_away_ties_are_named_not_counted():
    s = 2.0 ** -4
    rng = np.random.default_rng(0)
    w = np.concatenate([_ties(s), rng.standard_normal(60).astype(f32)])
    q = refcomp.quantize.affine(w, 8, scale=s, zero_point=3, signed=True)   # half-even
    t = w / f32(s)                                                          # TFLite: divide,
    other = np.clip(np.sign(t) * np.floor(np.abs(t) + f32(0.5)) + 3, -128, 127)  # half away
    res = compare_quantized(other.astype(np.int8), w, q)
    assert res.ok and res.mismatches.size == 0
    assert res.ties.size == 20 and res.tie_rules == ("half_away",)
    assert "breaks ties consistently with: half_away" in res.report()
    assert res.refcomp_rule == "half_even"


def test_reciprocal_near_tie_is_a_boundary_case():
    # FACTS.md §5.8: src * (1/scale) = 127.5 -> 128, src / scale = 127.49999 -> 127
    w = np.array([0.273939937, 0.1], f32)
    s = f32(0.00214854861)
    q = refcomp.quantize.affine(w, 8, scale=float(s), zero_point=0, signed=False)
    other = np.rint(w * (f32(1) / s)).astype(np.uint8)                       # PyTorch's rule
    assert int(q.codes[0]) == 127 and int(other[0]) == 128
    res = compare_quantized(other, w, q)
    assert res.ok and res.boundary.tolist() == [0] and res.ties.size == 0
    other[1] += 1                                                            # a real error
    res = compare_quantized(other, w, q)
    assert not res.ok and res.mismatches.tolist() == [1]
    with pytest.raises(AssertionError, match=r"mismatch at \(1,\): w = 0.1"):
        res.assert_ok()


def test_codes_two_cells_apart_are_mismatches():
    w = np.array([0.5, 1.5, 2.5], f32)
    q = refcomp.quantize.affine(w, 8, scale=1.0, zero_point=0, signed=True)
    res = compare_quantized(np.array([0, 2, 4], np.int8), w, q)           # 2.5 -> 4: no
    assert res.mismatches.tolist() == [2] and res.ties.size == 0
    assert "half_even" in res.tie_rules and "half_away" not in res.tie_rules  # ties decided alike


@pytest.mark.filterwarnings("ignore:torch.quantize_per_tensor:UserWarning")
def test_torch_quantize_per_tensor_conforms():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    s = 2.0 ** -5
    w = np.concatenate([_ties(s, 60), rng.standard_normal(500).astype(f32)])
    q = refcomp.quantize.affine(w, 8, scale=s, zero_point=7, signed=False)
    t = torch.quantize_per_tensor(torch.from_numpy(w), s, 7, torch.quint8)
    res = compare_quantized(t.int_repr().numpy(), w, q)
    assert res.ok, res.report()
    if res.ties.size:          # zp = 7 is odd: the ties go the other way (FACTS.md §5.8)
        assert res.tie_rules == ("half_even_after_zp",)


@settings(max_examples=40)
@given(affine_tie_cases())
def test_every_rounding_mode_is_identified_from_its_ties(case):
    w, kw = case
    kw = dict(kw, rounding="half_even")
    q = refcomp.quantize.affine(w, **kw)
    # the other implementation: exact half-up ties (toward +inf), written independently
    qmin, qmax = (-128, 127) if kw["signed"] else (0, 255)
    t = w.astype(np.float64) / kw["scale"]
    other = np.clip(np.floor(t + 0.5) + kw["zero_point"], qmin, qmax).astype(np.int64)
    res = compare_quantized(other, w, q)
    assert res.ok, res.report()
    exact = (t - np.floor(t)) == 0.5
    inside = (np.floor(t) + kw["zero_point"] >= qmin) & (np.floor(t) + 1 + kw["zero_point"] <= qmax)
    if (exact & inside).any():
        assert "half_up" in res.tie_rules


def test_bfloat16_casts_conform_and_truncation_does_not():
    ml = pytest.importorskip("ml_dtypes")
    rng = np.random.default_rng(2)
    w = rng.standard_normal(1000).astype(f32)
    # exact midpoints between neighbouring bfloat16 values: 1 + 2**-8 (tie to even 1.0)
    w[:4] = np.array([1 + 2 ** -8, 1 + 3 * 2 ** -8, -(1 + 2 ** -8), 2.0 ** -130], f32)
    q = refcomp.quantize.to_bfloat16(w)
    assert compare_quantized(w.astype(ml.bfloat16).view(np.uint16), w, q).ok
    trunc = (w.view(np.uint32) >> 16).astype(np.uint16)
    res = compare_quantized(trunc, w, q)
    assert res.mismatches.size > 300                     # truncation is not a rounding issue
    up = q.codes.astype(np.int64)
    up[0] += 1                                           # the tie 1 + 2**-8 rounded up
    res = compare_quantized(up.astype(np.uint16), w, q)
    # w[0] went up (odd pattern), w[1] up (even) and w[2] = -(1 + 2**-8) to -1 (even,
    # toward zero): only "round ties up in value" explains all three
    assert res.ok and res.ties.tolist() == [0] and res.tie_rules == ("half_up",)


def test_uniform_in_float32_differs_only_at_boundaries():
    rng = np.random.default_rng(3)
    w = rng.standard_normal(5000).astype(f32)
    q = refcomp.quantize.uniform(w, 4)
    p = q.params
    lo, d = f32(p["theta_min"]), f32(p["delta"])
    other = np.minimum(np.floor((w - lo) / d), 15).astype(np.uint8)       # all in float32
    res = compare_quantized(other, w, q)
    assert res.ok, res.report()


def test_kmeans_codebook_nearest_with_upper_ties():
    w = np.array([0.0, 1.0, 0.5, 0.25, 0.75, 1.0, 0.0, 0.5], f32)
    q = refcomp.quantize.kmeans(w, 2)
    book = q.params["codebook"]
    other = np.array([int(np.argmin(np.abs(book - v)[::-1])) for v in w])
    other = len(book) - 1 - other                         # argmin from the top: ties upward
    res = compare_quantized(other, w, q)
    assert res.ok


def test_errors():
    w = np.zeros(3, f32)
    q = refcomp.quantize.affine(w + 1, 8)
    with pytest.raises(ShapeError, match="one shape"):
        compare_quantized(np.zeros(2, np.int8), w, q)
    with pytest.raises(ParameterError, match="integers"):
        compare_quantized(np.zeros(3, f32), w, q)
