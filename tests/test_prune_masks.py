"""refcomp.prune masks: magnitude, global_magnitude, structured, schedule, Masked, apply_masks."""

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, strategies as st
from hypothesis.extra import numpy as hnp

import refcomp
from refcomp import Layer, Model
from refcomp.prune import (Masked, apply_masks, global_magnitude, magnitude,
                           polynomial_sparsity, prunable_weights, structured)
from refcomp.data import load_split
from refcomp.testing import assert_bits_equal

DATA = Path(__file__).resolve().parents[1] / "data"

TIES = hnp.arrays(np.float32, hnp.array_shapes(min_dims=1, max_dims=3, max_side=6),
                  elements=st.sampled_from([0.0, -0.0, 1.0, -1.0, 2.0, -2.0, 0.5, np.inf]))
SPARSITY = st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.7, 0.9, 1.0, 1 / 3])


def naive_mask(w, sparsity):
    flat = [abs(float(v)) for v in w.reshape(-1)]
    n_prune = round(Fraction(sparsity) * len(flat))          # half-even, exact
    order = sorted(range(len(flat)), key=lambda i: (flat[i], i))
    keep = [True] * len(flat)
    for i in order[:n_prune]:
        keep[i] = False
    return np.array(keep, dtype=bool).reshape(w.shape)


@given(TIES, SPARSITY)
def test_magnitude_exact_count_and_tie_rule(w, s):
    m = magnitude(w, sparsity=s)
    assert m.dtype == np.bool_ and m.shape == w.shape
    assert np.array_equal(m, naive_mask(w, s))


@given(TIES, SPARSITY)
def test_magnitude_keep_ties_tfmot(w, s):
    m = magnitude(w, sparsity=s, keep_ties=True)
    a = np.abs(w).reshape(-1)
    k = max(int(np.rint(np.float32(a.size) * (np.float32(1) - np.float32(s)))), 1)
    thr = sorted(a.tolist(), reverse=True)[k - 1]
    assert np.array_equal(m.reshape(-1), a >= thr)
    assert m.sum() >= k                     # ties kept: never sparser than asked


def test_magnitude_golden_ties_and_rounding():
    w = np.array([1.0, -1.0, 1.0, 0.5, -0.0], dtype=np.float32)
    # 0.5 * 5 = 2.5 -> 2 (half-even): -0.0 (|0|) then 0.5 removed
    assert magnitude(w, sparsity=0.5).tolist() == [True, True, True, False, False]
    # the float 0.7 is 0.69999999999999995559...: 0.7 * 5 < 3.5 -> 3 removed:
    # 0, 0.5, then the first 1.0 by index
    assert magnitude(w, sparsity=0.7).tolist() == [False, True, True, False, False]
    w7 = np.array([1, 1, 1, 1, 1, 1, 1], dtype=np.float64)      # 0.5 * 7 = 3.5 -> 4
    assert magnitude(w7, sparsity=0.5).tolist() == [False] * 4 + [True] * 3
    # tfmot: k = round(5 * 0.3) = 2, threshold 1.0, all three 1.0's kept
    assert magnitude(w, sparsity=0.7, keep_ties=True).tolist() == [True, True, True, False,
                                                                    False]
    assert magnitude(w, threshold=0.5).tolist() == [True, True, True, False, False]
    assert magnitude(w, threshold=0.0).tolist() == [True, True, True, True, False]


def test_global_magnitude_ranks_across_layers():
    a = np.array([3.0, 1.0], dtype=np.float32)
    b = np.array([[1.0, 2.0], [0.5, 1.0]], dtype=np.float64)
    m = global_magnitude({"a": a, "b": b}, 0.5)       # 3 of 6 removed: 0.5, a's 1, b's first 1
    assert m["a"].tolist() == [True, False]
    assert m["b"].tolist() == [[False, True], [False, True]]
    both = global_magnitude({"a": a, "b": b}, 0.5, keep_ties=True)
    assert both["b"].tolist() == [[True, True], [False, True]]


@pytest.mark.parametrize("level,expect_groups", [("fine", 48), ("vector", 16), ("kernel", 8),
                                                 ("filter", 4), ("channel", 2), ("group", 2)])
def test_structured_levels_remove_whole_slices(level, expect_groups):
    rng = np.random.default_rng(1)
    w = rng.normal(size=(4, 2, 2, 3)).astype(np.float32)
    for norm in ("l1", "l2", "fro"):
        m = structured(w, level=level, norm=norm, sparsity=0.5, groups=2)
        # expected slices by naive loops
        slices = {"fine": [(o, i, h, k) for o in range(4) for i in range(2) for h in range(2)
                           for k in range(3)],
                  "vector": [(o, i, h, slice(None)) for o in range(4) for i in range(2)
                             for h in range(2)],
                  "kernel": [(o, i) for o in range(4) for i in range(2)],
                  "filter": [(o,) for o in range(4)],
                  "channel": [(slice(None), i) for i in range(2)],
                  "group": [(slice(0, 2),), (slice(2, 4),)]}[level]
        assert len(slices) == expect_groups
        p = 1 if norm == "l1" else 2
        norms = [float(np.sum(np.abs(w[s].astype(np.float64)) ** p)) for s in slices]
        kept = [bool(m[s].all()) for s in slices]
        assert all(m[s].all() or not m[s].any() for s in slices)     # whole groups
        assert kept.count(False) == round(Fraction(0.5) * expect_groups)
        worst_kept = min(n for n, k in zip(norms, kept) if k)
        assert all(n <= worst_kept for n, k in zip(norms, kept) if not k)


def test_structured_dense_rows_columns_and_ties():
    w = np.array([[1, 1], [0, 2], [1, 1]], dtype=np.float32)
    assert structured(w, level="filter", sparsity=1 / 3).tolist() == [[False, False],
                                                                      [True, True],
                                                                      [True, True]]
    assert structured(w, level="channel", sparsity=0.5).tolist() == [[False, True]] * 3
    assert np.array_equal(structured(w, level="fine", sparsity=0.5),
                          magnitude(w, sparsity=0.5))
    with pytest.raises(refcomp.ParameterError, match="level 'kernel' needs a 4-D"):
        structured(w, level="kernel", sparsity=0.5)


def test_polynomial_schedule_golden():
    kw = dict(initial_sparsity=0.0, final_sparsity=0.8, begin_step=0, end_step=100)
    s, prune = polynomial_sparsity(50, **kw)
    assert s.dtype == np.float32 and s == np.float32(0.7) and prune is False
    assert polynomial_sparsity(0, **kw) == (np.float32(0.0), True)
    assert polynomial_sparsity(100, **kw) == (np.float32(0.8), True)
    s, prune = polynomial_sparsity(1000, **kw)
    assert s == np.float32(0.8) and prune is False          # after end_step: no pruning
    s, prune = polynomial_sparsity(40, initial_sparsity=0.5, final_sparsity=0.9, begin_step=20,
                                   end_step=120, power=2, frequency=10)
    assert prune and abs(float(s) - (0.9 + (0.5 - 0.9) * 0.8 ** 2)) < 1e-7
    assert polynomial_sparsity(45, initial_sparsity=0.5, final_sparsity=0.9, begin_step=20,
                               end_step=120, frequency=10)[1] is False


@given(st.integers(0, 300), st.integers(0, 50), st.integers(0, 200), st.integers(1, 4),
       st.integers(1, 30))
def test_polynomial_schedule_vs_float64_formula(step, begin, length, power, freq):
    end = begin + length
    s, prune = polynomial_sparsity(step, initial_sparsity=0.1, final_sparsity=0.95,
                                   begin_step=begin, end_step=end, power=power, frequency=freq)
    p = 1.0 if length == 0 and step >= begin else (
        0.0 if length == 0 else min(max((step - begin) / length, 0.0), 1.0))
    want = 0.95 + (0.1 - 0.95) * (1 - p) ** power
    assert abs(float(s) - want) <= 4e-7
    assert prune == (begin <= step <= end and (step - begin) % freq == 0)


def small_model():
    rng = np.random.default_rng(3)
    return Model([Layer("dense", weights={"W": rng.normal(size=(5, 4)).astype(np.float32),
                                          "b": rng.normal(size=5).astype(np.float32)}),
                  Layer("activation", attrs={"function": "relu"}),
                  Layer("dense", weights={"W": rng.normal(size=(3, 5)).astype(np.float32)})],
                 input_shape=(4,))


def test_masked_roundtrip_and_apply(tmp_path):
    m = small_model()
    w = m.layers[0].weights["W"].copy()
    w[0, 0] = -0.0
    w[1, 1] = np.nan
    mask = np.ones(w.shape, dtype=bool)
    mask[2] = False
    mk = Masked(w, mask)
    d = mk.dequantize()
    assert d.dtype == np.float32 and np.signbit(d[0, 0]) and np.isnan(d[1, 1])
    assert_bits_equal(d[2], np.zeros(4, np.float32))           # +0.0 exactly
    assert mk.stored_bits() == 20 + 16 * 32
    pm = apply_masks(m, {("0", "W"): mask, "2": m.layers[2].weights["W"] > 0})
    assert isinstance(pm.layers[0].weights["W"], Masked)
    p = tmp_path / "masked.h5"
    refcomp.save(pm, p)
    back = refcomp.load(p)
    for path in ("0", "2"):
        assert back.get_layer(path).weights["W"] == pm.get_layer(path).weights["W"]
    x = np.random.default_rng(0).normal(size=(7, 4)).astype(np.float32)
    assert_bits_equal(back(x), pm(x))
    plain = apply_masks(m, {("0", "W"): mask}, masked=False)
    assert_bits_equal(plain.layers[0].weights["W"], pm.layers[0].weights["W"].dequantize())
    assert list(prunable_weights(m)) == [("0", "W"), ("2", "W")]


def test_masked_from_shipped_model_roundtrip(tmp_path):
    m = refcomp.load(DATA / "digits_cnn.h5")
    pm = apply_masks(m, global_magnitude(prunable_weights(m), 0.9))
    refcomp.save(pm, tmp_path / "p.h5")
    back = refcomp.load(tmp_path / "p.h5")
    x = load_split("test")[0][:50]
    assert_bits_equal(back(x), pm(x))
    assert (tmp_path / "p.h5").stat().st_size < 0.5 * 212008


def test_bad_input():
    w = np.ones((3, 3), dtype=np.float32)
    for s in (-0.1, 1.5, float("nan"), True, "0.5"):
        with pytest.raises(refcomp.ParameterError, match="sparsity"):
            magnitude(w, sparsity=s)
    with pytest.raises(refcomp.ParameterError, match="exactly one"):
        magnitude(w)
    with pytest.raises(refcomp.DTypeError):
        magnitude(w.tolist(), sparsity=0.5)
    with pytest.raises(refcomp.DTypeError):
        magnitude(w.astype(np.int32), sparsity=0.5)
    with pytest.raises(refcomp.ParameterError, match="NaN"):
        magnitude(np.array([np.nan], np.float32), sparsity=0.5)
    with pytest.raises(refcomp.ParameterError, match="level"):
        structured(w, level="block", sparsity=0.5)
    with pytest.raises(refcomp.ParameterError, match="norm"):
        structured(w, level="fine", norm="linf", sparsity=0.5)
    m = small_model()
    with pytest.raises(refcomp.ShapeError, match="shape"):
        apply_masks(m, {"0": np.ones((4, 5), dtype=bool)})
    with pytest.raises(refcomp.ParameterError, match="bool"):
        apply_masks(m, {"0": np.ones((5, 4), dtype=np.int8)})
    with pytest.raises(refcomp.ParameterError, match="no weight"):
        apply_masks(m, {("0", "gamma"): np.ones((5, 4), dtype=bool)})
    with pytest.raises(refcomp.ShapeError):
        Masked(w, np.ones((3,), dtype=bool))
    with pytest.raises(refcomp.ParameterError, match="end_step"):
        polynomial_sparsity(0, initial_sparsity=0, final_sparsity=0.5, begin_step=10,
                            end_step=5)
    with pytest.raises(refcomp.ParameterError, match="frequency"):
        polynomial_sparsity(0, initial_sparsity=0, final_sparsity=0.5, begin_step=0,
                            end_step=5, frequency=0)


ROWS = hnp.arrays(np.float64, st.tuples(st.integers(1, 5), st.integers(0, 40)),
                  elements=st.one_of(st.floats(allow_nan=False, allow_infinity=False),
                                     st.sampled_from([1e308, -1e308, 1.0, 1e-300, 2.0 ** -1074,
                                                      1e16, -1e16, 0.5, -0.0])))


@given(ROWS)
def test_fsum_kernel_twin_bits(a):
    from refcomp.prune._kernels import fsum_rows, fsum_rows_twin
    pos = np.abs(a)
    assert_bits_equal(fsum_rows(pos), fsum_rows_twin(pos))
    try:
        want = fsum_rows_twin(a)
    except OverflowError:
        return
    if np.isfinite(want).all():
        assert_bits_equal(fsum_rows(a), want)
