"""refcomp.prune masks: magnitude, global_magnitude, structured, schedule, Masked, apply_masks."""

import ctypes
import ctypes.util
import math
import platform
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
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


TIE_VALUES = st.sampled_from([0.0, -0.0, 1.0, -1.0, 2.0, -2.0, 0.5])


@given(st.lists(hnp.arrays(st.sampled_from([np.float32, np.float64]),
                           hnp.array_shapes(min_dims=1, max_dims=3, max_side=4),
                           elements=TIE_VALUES), min_size=1, max_size=4),
       SPARSITY, st.booleans())
def test_global_magnitude_ties_vs_naive_ranking(arrays, s, keep_ties):
    weights = {f"layer{i}": a for i, a in enumerate(arrays)}
    got = global_magnitude(weights, s, keep_ties=keep_ties)
    # independent ranking: (|w|, position in the concatenation), Python floats
    flat = [abs(float(v)) for a in arrays for v in a.reshape(-1)]
    n = len(flat)
    if keep_ties:
        k = max(int(np.rint(np.float32(n) * (np.float32(1) - np.float32(s)))), 1) if n else 0
        thr = sorted(flat, reverse=True)[k - 1] if n else 0.0
        keep = [v >= thr for v in flat]
    else:
        order = sorted(range(n), key=lambda i: (flat[i], i))
        removed = set(order[:round(Fraction(s) * n)])
        keep = [i not in removed for i in range(n)]
    start = 0
    for key, a in weights.items():
        assert got[key].shape == a.shape and got[key].dtype == np.bool_
        assert got[key].reshape(-1).tolist() == keep[start:start + a.size]
        start += a.size


def _naive_groups(shape, level, groups):
    """Index tuples of every group at ``level`` for a weight of ``shape``, in group order."""
    if len(shape) == 2:
        o, i = shape
        return {"fine": [(a, b) for a in range(o) for b in range(i)],
                "filter": [(a,) for a in range(o)],
                "channel": [(slice(None), b) for b in range(i)]}[level]
    o, c, h, w = shape
    per = o // groups
    return {"fine": [(a, b, y, x) for a in range(o) for b in range(c) for y in range(h)
                     for x in range(w)],
            "vector": [(a, b, y) for a in range(o) for b in range(c) for y in range(h)],
            "kernel": [(a, b) for a in range(o) for b in range(c)],
            "filter": [(a,) for a in range(o)],
            "channel": [(slice(None), b) for b in range(c)],
            "group": [(slice(g * per, (g + 1) * per),) for g in range(groups)]}[level]


@st.composite
def structured_case(draw):
    if draw(st.booleans()):
        shape = (draw(st.integers(1, 5)), draw(st.integers(1, 5)))
        level = draw(st.sampled_from(["fine", "filter", "channel"]))
        groups = 1
    else:
        groups = draw(st.sampled_from([1, 2, 3]))
        shape = (groups * draw(st.integers(1, 3)),) + tuple(draw(st.integers(1, 3))
                                                            for _ in range(3))
        level = draw(st.sampled_from(["fine", "vector", "kernel", "filter", "channel",
                                      "group"]))
    w = draw(hnp.arrays(st.sampled_from([np.float32, np.float64]), shape, elements=TIE_VALUES))
    return w, level, groups


@given(structured_case(), st.sampled_from(["l1", "l2", "fro"]), SPARSITY)
def test_structured_ties_vs_naive_ranking(case, norm, s):
    w, level, groups = case
    got = structured(w, level=level, norm=norm, sparsity=s, groups=groups)
    slices = _naive_groups(w.shape, level, groups)
    vals = [[float(v) for v in np.asarray(w[sl]).reshape(-1)] for sl in slices]
    if norm == "l1":
        norms = [math.fsum(abs(v) for v in g) for g in vals]
    else:
        norms = [math.sqrt(math.fsum(v * v for v in g)) for g in vals]
    # ranked by norm, ties by group index; round_half_even(s * G) groups removed
    order = sorted(range(len(slices)), key=lambda g: (norms[g], g))
    removed = set(order[:round(Fraction(s) * len(slices))])
    want = np.ones(w.shape, dtype=bool)
    for g in removed:
        want[slices[g]] = False
    assert np.array_equal(got, want)


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


# -- polynomial_sparsity against tfmot ------------------------------------------------
_LIBM = ctypes.CDLL(ctypes.util.find_library("m"))
_LIBM.powf.restype = ctypes.c_float
_LIBM.powf.argtypes = [ctypes.c_float, ctypes.c_float]


def tfmot_emulation(step, si, sf, begin, end, power, freq, mode):
    """tfmot PolynomialDecay.__call__ written out in numpy float32 scalar ops.

    Independent of refcomp: tfmot's source order (pruning_schedule.py), every
    tensor float32; ``si - sf`` is a Python (float64) subtraction converted to
    a float32 constant.  "eager": RealDiv and the C library's powf (what the
    Pow kernel calls, through std::pow(float, float); glibc's is not always
    correctly rounded).  "graph": what Grappler makes of it on the CPU: the
    division by a constant becomes a multiplication by its float32 reciprocal,
    pow(x, 3) becomes (c * x) * Square(x) once the constant factor is pushed
    down, 2 -> Square, 1 -> Identity, 0.5 -> Sqrt, 0 -> ones.
    """
    f = np.float32
    x = f(step - begin)                         # Cast(int64 -> float32)
    n = f(end - begin)                          # Python int -> float32 constant
    with np.errstate(divide="ignore", invalid="ignore"):     # end == begin: as TF, x / 0
        ratio = x / n if mode == "eager" else x * (f(1) / n)
    p = np.minimum(f(1.0), np.maximum(f(0.0), ratio))
    q = f(1) - p
    c = f(si - sf)
    e = f(power)
    if mode == "graph" and e == 3:
        t = (c * q) * (q * q)
    elif mode == "graph" and e == 2:
        t = c * (q * q)
    elif mode == "graph" and e == 1:
        t = c * q
    elif mode == "graph" and e == 0.5:
        t = c * np.sqrt(q)
    elif mode == "graph" and e == 0:
        t = c
    else:
        t = c * f(_LIBM.powf(q, e))
    s = t + f(sf)
    prune = begin <= step <= end and (step - begin) % freq == 0
    return s, prune


# Values returned by tfmot 0.8.1 (TensorFlow 2.21, CPU), eagerly and inside a
# tf.function: (initial, final, begin, end, step, power, frequency,
# eager float32 as hex, eager prune, graph float32 as hex, graph prune).
TFMOT_GOLDEN = [
    (0.2, 0.0, 0, 10000, 6405, 3.0, 100, '0x1.307e140000000p-7', 0, '0x1.307e160000000p-7', 0),
    (0.99, 0.3333333333333333, 0, 100, 30, 3.0, 1,
     '0x1.1dfce40000000p-1', 1, '0x1.1dfce60000000p-1', 1),
    (0.99, 0.5, 7, 1007, 563, 2, 10, '0x1.31751e0000000p-1', 0, '0x1.31751c0000000p-1', 0),
    (0.123456789, 0.3, 0, 1000, 3, 3, 10, '0x1.0015760000000p-3', 0, '0x1.0015780000000p-3', 0),
    (0.123456789, 0.0, 100, 4421, 1747, 3, 10,
     '0x1.df5d6a0000000p-6', 0, '0x1.df5d6c0000000p-6', 0),
    (0.8, 0.123456789, 0, 10, 9, 1, 100, '0x1.8765460000000p-3', 0, '0x1.8765400000000p-3', 0),
    (0.0, 0.2, 0, 1000, 691, 1, 100, '0x1.1b089a0000000p-3', 0, '0x1.1b089c0000000p-3', 0),
    (0.1, 0.3, 100, 433, 191, 1, 10, '0x1.3cbb940000000p-3', 0, '0x1.3cbb960000000p-3', 0),
    (0.5, 0.0, 7, 77784, 70717, 3, 100, '0x1.894c400000000p-12', 0, '0x1.894c720000000p-12', 0),
    (0.123456789, 0.8, 7, 107, 104, 0.3, 10, '0x1.209f900000000p-1', 0, '0x1.209f8c0000000p-1', 0),
    (0.95, 0.2, 100, 1100, 464, 0.3, 1, '0x1.b5a6520000000p-1', 1, '0x1.b5a6500000000p-1', 1),
    (0.0, 0.123456789, 0, 77777, 31724, 0.5, 1,
     '0x1.d241480000000p-6', 1, '0x1.d241400000000p-6', 1),
    (0.2, 0.0, 7, 77784, 25343, 3, 10, '0x1.f633f40000000p-5', 0, '0x1.f633fe0000000p-5', 0),
    (0.3333333333333333, 0.0, 7, 1007, 935, 3, 100,
     '0x1.04eb680000000p-13', 0, '0x1.04eb3e0000000p-13', 0),
    (0.95, 0.123456789, 20, 4341, 674, 3, 100,
     '0x1.41dc940000000p-1', 0, '0x1.41dc960000000p-1', 0),
    (0.8, 0.5, 0, 10000, 1563, 3, 10, '0x1.5c3f660000000p-1', 0, '0x1.5c3f680000000p-1', 0),
    (0.99, 0.2, 0, 1000, 801, 3, 10, '0x1.a659a60000000p-3', 0, '0x1.a659a40000000p-3', 0),
    (0.0, 0.99, 7, 1007, 989, 1.7, 1, '0x1.fa54f60000000p-1', 1, '0x1.fa54f80000000p-1', 1),
    (0.3333333333333333, 0.0, 7, 10007, 7066, 3, 100,
     '0x1.15da240000000p-7', 0, '0x1.15da300000000p-7', 0),
    (0.95, 0.1, 7, 4328, 1883, 3, 10, '0x1.0416e40000000p-2', 0, '0x1.0416e60000000p-2', 0),
    (0.1, 0.3, 7, 10007, 2013, 3, 1, '0x1.9528060000000p-3', 1, '0x1.9528080000000p-3', 1),
    (0.3333333333333333, 0.3, 20, 4341, 1588, 2, 10,
     '0x1.410e380000000p-2', 0, '0x1.410e360000000p-2', 0),
    (0.2, 0.95, 20, 120, 63, 4, 100, '0x1.bddd6e0000000p-1', 0, '0x1.bddd6c0000000p-1', 0),
    (0.1, 0.0, 0, 333, 315, 5, 100, '0x1.8c66160000000p-25', 0, '0x1.8c65880000000p-25', 0),
    (0.123456789, 0.0, 0, 1000, 616, 1.7, 1, '0x1.8d76d40000000p-6', 1, '0x1.8d76ce0000000p-6', 1),
    (0.2, 0.0, 0, 1000, 248, 3, 100, '0x1.5c5f460000000p-4', 0, '0x1.5c5f440000000p-4', 0),
    (0.5, 0.1, 7, 340, 282, 1.7, 10, '0x1.ed905a0000000p-4', 0, '0x1.ed90560000000p-4', 0),
    (0.9, 0.0, 7, 10007, 6783, 3, 100, '0x1.ee23160000000p-6', 0, '0x1.ee232a0000000p-6', 0),
    (0.3, 0.9, 7, 107, 53, 2.5, 10, '0x1.8af9080000000p-1', 0, '0x1.8af9060000000p-1', 0),
    (0.123456789, 0.0, 0, 10000, 5849, 1, 1, '0x1.a3d0900000000p-5', 1, '0x1.a3d0940000000p-5', 1),
    (0.1, 0.0, 0, 1000, 456, 1.7, 10, '0x1.2302980000000p-5', 0, '0x1.2302960000000p-5', 0),
    (0.3625226310834419, 0.5727336407663058, 9, 59362, 3068, 3, 49,
     '0x1.92d1d40000000p-2', 0, '0x1.92d1d00000000p-2', 0),
    (0.29754111245929526, 0.9252597609406018, 943, 57127, 22125, 2, 10,
     '0x1.5cfef80000000p-1', 0, '0x1.5cfefa0000000p-1', 0),
    (0.32104729382835073, 0.4493395498970207, 245, 95836, 21636, 2, 43,
     '0x1.7cf82c0000000p-2', 0, '0x1.7cf82e0000000p-2', 0),
    (0.5313918571260952, 0.466893682721265, 713, 11766, 7733, 1, 4,
     '0x1.f632aa0000000p-2', 1, '0x1.f632ac0000000p-2', 1),
    (0.030174062607279735, 0.11444036314412422, 576, 73323, 24674, 3, 42,
     '0x1.6d857e0000000p-4', 0, '0x1.6d857c0000000p-4', 0),
    (0.8014514004008733, 0.9890680208101712, 768, 97410, 26379, 3, 19,
     '0x1.d443240000000p-1', 0, '0x1.d443220000000p-1', 0),
    (0.5140513864760642, 0.04989079049332165, 430, 31604, 9309, 3, 18,
     '0x1.c1e8360000000p-3', 0, '0x1.c1e8340000000p-3', 0),
    (0.4671702506692473, 0.08449480255356893, 285, 78712, 61932, 3, 26,
     '0x1.6971600000000p-4', 0, '0x1.69715e0000000p-4', 0),
    (0.06252896643684061, 0.0037921917457802655, 578, 27758, 19148, 3, 8,
     '0x1.72e36e0000000p-8', 0, '0x1.72e3680000000p-8', 0),
    (0.9, 0.5, 20, 30, 25, 0.5, 1, '0x1.90d0c40000000p-1', 1, '0x1.90d0c40000000p-1', 1),
    (0.25148626743460933, 0.5908075565460597, 603, 61651, 53068, 0.5, 37,
     '0x1.dab3a80000000p-2', 0, '0x1.dab3a80000000p-2', 0),
    (0.8, 0.95, 20, 353, 270, 0.3, 100, '0x1.b3c6ce0000000p-1', 0, '0x1.b3c6ce0000000p-1', 0),
    (0.0, 0.3333333333333333, 0, 10000, 6694, 5, 100,
     '0x1.53fc3e0000000p-2', 0, '0x1.53fc3e0000000p-2', 0),
    (0.8, 0.123456789, 7, 107, 58, 0, 100, '0x1.99999a0000000p-1', 0, '0x1.99999a0000000p-1', 0),
    (0.3386813982305031, 0.14235016204737436, 990, 45658, 18242, 3, 48,
     '0x1.8080c40000000p-3', 0, '0x1.8080c40000000p-3', 0),
    (0.32706832516685874, 0.012321453851924824, 598, 81760, 21981, 1, 34,
     '0x1.f4023a0000000p-3', 0, '0x1.f4023a0000000p-3', 0),
    (0.19159216095232684, 0.15507967934373865, 95, 44101, 10050, 2.2061584271072805, 48,
     '0x1.6811cc0000000p-3', 0, '0x1.6811cc0000000p-3', 0),
    (0.2536200175832849, 0.9296216868805653, 972, 99250, 47846, 1, 27,
     '0x1.26eede0000000p-1', 0, '0x1.26eede0000000p-1', 0),
    (0.9, 0.95, 0, 1, 5, 5, 1, '0x1.e666660000000p-1', 0, '0x1.e666660000000p-1', 0),
    (0.9, 0.7, 7, 14, 2, 1, 10, '0x1.cccccc0000000p-1', 0, '0x1.cccccc0000000p-1', 0),
    (0.5131374278465402, 0.9652253793438803, 718, 73802, 12519, 0, 24,
     '0x1.06b9f40000000p-1', 0, '0x1.06b9f40000000p-1', 0),
    (0.1, 0.99, 20, 27, 15, 0.3, 100, '0x1.9999a00000000p-4', 0, '0x1.9999a00000000p-4', 0),
    (0.26958703279515406, 0.77419878134593, 888, 66795, 48244, 3, 49,
     '0x1.86a0d80000000p-1', 0, '0x1.86a0d80000000p-1', 0),
    (0.36527834693271094, 0.928562630327826, 704, 3554, 3460, 3, 43,
     '0x1.db69ea0000000p-1', 0, '0x1.db69ea0000000p-1', 0),
    (0.7476937683323388, 0.5084994193230494, 724, 90808, 75971, 3, 2,
     '0x1.04e61c0000000p-1', 0, '0x1.04e61c0000000p-1', 0),
    (0.5, 0.2, 0, 77777, 32829, 4, 100, '0x1.de21920000000p-3', 0, '0x1.de21920000000p-3', 0),
    (0.1420368001508167, 0.6807001154043076, 800, 3253, 990, 3, 25,
     '0x1.07f25c0000000p-2', 0, '0x1.07f25c0000000p-2', 0),
    (0.7, 0.1, 0, 10, 2, 0.3, 10, '0x1.5282220000000p-1', 0, '0x1.5282220000000p-1', 0),
    (0.7, 0.95, 0, 1, -5, 3, 100, '0x1.6666660000000p-1', 0, '0x1.6666660000000p-1', 0),
    (0.08185894364554543, 0.4224390146425572, 533, 1495, 994, 3, 20,
     '0x1.7f50ec0000000p-2', 0, '0x1.7f50ec0000000p-2', 0),
    (0.3, 0.9, 7, 10007, 949, 2.5, 10, '0x1.b9d4c80000000p-2', 0, '0x1.b9d4c80000000p-2', 0),
    (0.5, 0.7, 0, 333, 45, 5, 100, '0x1.34d9ac0000000p-1', 0, '0x1.34d9ac0000000p-1', 0),
    (0.3333333333333333, 0.5, 0, 10000, 198, 0.3, 100,
     '0x1.565aac0000000p-2', 0, '0x1.565aac0000000p-2', 0),
    (0.1, 0.0, 100, 101, 98, 2, 100, '0x1.99999a0000000p-4', 0, '0x1.99999a0000000p-4', 0),
    (0.9, 0.0, 100, 103, 106, 2.5, 1, '0x0.0p+0', 0, '0x0.0p+0', 0),
    (0.21742820838405644, 0.6585232163101421, 608, 41749, 6785, 0, 12,
     '0x1.bd4b000000000p-3', 0, '0x1.bd4b000000000p-3', 0),
    (0.2, 0.95, 20, 23, 16, 0, 100, '0x1.9999980000000p-3', 0, '0x1.9999980000000p-3', 0),
    (0.45822126177677763, 0.5838657375493204, 799, 48942, 20185, 2, 22,
     '0x1.13fc8e0000000p-1', 0, '0x1.13fc8e0000000p-1', 0),
    (0.123456789, 0.2, 7, 10, 8, 3, 10, '0x1.6b27080000000p-3', 0, '0x1.6b27080000000p-3', 0),
    (0.2, 0.8, 10, 10, 9, 3, 1, '0x1.9999980000000p-3', 0, '0x1.9999980000000p-3', 0),
    (0.2, 0.8, 10, 10, 11, 3, 1, '0x1.99999a0000000p-1', 0, '0x1.99999a0000000p-1', 0),
    (0.2, 0.8, 0, 100, -1, 3, 1, '0x1.9999980000000p-3', 0, '0x1.9999980000000p-3', 0),
    (0.2, 0.8, 5, 100, -7, 3, 2, '0x1.9999980000000p-3', 0, '0x1.9999980000000p-3', 0),
    (0.1, 0.95, 0, 33554435, 16777217, 3, 100,
     '0x1.affffe0000000p-1', 0, '0x1.affffe0000000p-1', 0),
    (0.1, 0.95, 3, 67108864, 33554433, 2.5, 100,
     '0x1.99777e0000000p-1', 0, '0x1.99777e0000000p-1', 0),
    (0.0, 0.5, 0, 10, 3, 0.5, 1, '0x1.4e85300000000p-4', 1, '0x1.4e85300000000p-4', 1),
    (0.0, 0.5, 0, 10, 3, 0, 1, '0x0.0p+0', 1, '0x0.0p+0', 1),
    (0.0, 0.5, 0, 10, 3, 1, 1, '0x1.3333340000000p-3', 1, '0x1.3333340000000p-3', 1),
    (0.0, 0.5, 0, 10, 3, 2, 1, '0x1.051eb80000000p-2', 1, '0x1.051eb80000000p-2', 1),
    (0.5, 0.9, 0, 1000, 532, 3, 100, '0x1.b7ceac0000000p-1', 0, '0x1.b7ceac0000000p-1', 0),
]


# More tfmot values, at inputs where glibc's powf (2.36) is not correctly rounded
# (TensorFlow returns glibc's bits; so does polynomial_sparsity, calling the same powf).
TFMOT_GOLDEN_GLIBC_POWF = [
    (0.015067638706325437, 0.4981815931795096, 980069, 1158613, 998600, 0.5, 7,
     '0x1.4e71100000000p-5', 0, '0x1.4e71000000000p-5', 0),
    (0.03246335558286362, 0.15770637101614737, 327427, 7813639, 1044061, 0.5, 7,
     '0x1.3c48500000000p-5', 0, '0x1.3c48540000000p-5', 0),
    (0.20172560271607398, 0.7830985999083792, 608723, 6581268, 3371139, 0.6201987258870547, 7,
     '0x1.8cd3920000000p-2', 0, '0x1.8cd3920000000p-2', 0),
    (0.13380591441144296, 0.2559442191786717, 895994, 5578950, 1064504, 3.4073170691110883, 7,
     '0x1.2f65c40000000p-3', 0, '0x1.2f65c40000000p-3', 0),
    (0.7855734290998228, 0.0037240902333385284, 138769, 2053672, 827171, 2, 7,
     '0x1.4c42ae0000000p-2', 0, '0x1.4c42ac0000000p-2', 0),
    (0.036857519045963794, 0.778710581038373, 231167, 1345908, 646627, 0.5, 7,
     '0x1.8776b80000000p-3', 0, '0x1.8776c00000000p-3', 0),
    (0.42447896195574264, 0.6232678718385648, 435073, 9940055, 898780, 2, 7,
     '0x1.c60b280000000p-2', 0, '0x1.c60b2a0000000p-2', 0),
    (0.8915731171669503, 0.5973925091293353, 512765, 7924446, 6713406, 0.2340682368423037, 7,
     '0x1.946e6e0000000p-1', 0, '0x1.946e6e0000000p-1', 0),
    (0.6522174032249478, 0.8373945998820567, 263244, 9199795, 6424273, 0.4559459296644155, 7,
     '0x1.751d740000000p-1', 1, '0x1.751d740000000p-1', 1),
    (0.6196368470100377, 0.0773094654513059, 117368, 9888259, 2138398, 0.5, 7,
     '0x1.1ee00e0000000p-1', 0, '0x1.1ee00c0000000p-1', 0),
    (0.0058116450121658, 0.19401714250359947, 287381, 1831652, 776286, 0.7088758954089585, 7,
     '0x1.9c3de00000000p-5', 0, '0x1.9c3de00000000p-5', 0),
    (0.053749941314234606, 0.5689986739554985, 468782, 6589663, 2116827, 0.5, 7,
     '0x1.0741f80000000p-3', 1, '0x1.0741fc0000000p-3', 1),
    (0.25419620265167797, 0.9245746968556112, 958823, 4759744, 1146685, 2, 7,
     '0x1.467a4c0000000p-2', 0, '0x1.467a500000000p-2', 0),
    (0.9085757844038302, 0.36741130890872475, 131559, 6586267, 526134, 7, 7,
     '0x1.6e493a0000000p-1', 0, '0x1.6e493a0000000p-1', 0),
    (0.6330369159205065, 0.895863841828775, 419829, 10379205, 2417230, 0.5, 7,
     '0x1.525d000000000p-1', 1, '0x1.525d020000000p-1', 1),
    (0.12827789104580078, 0.38184370537982404, 856805, 6789137, 2553362, 0.5, 7,
     '0x1.5735460000000p-3', 0, '0x1.5735480000000p-3', 0),
    (0.12249185476383595, 0.8642835443018774, 276874, 9116717, 342588, 7, 7,
     '0x1.482d000000000p-3', 0, '0x1.482d000000000p-3', 0),
    (0.9628193404537205, 0.1132152103848435, 525884, 3359768, 623563, 4, 7,
     '0x1.b404f20000000p-1', 0, '0x1.b404f20000000p-1', 0),
]


@pytest.mark.parametrize("case", TFMOT_GOLDEN + [
    pytest.param(c, marks=pytest.mark.skipif(platform.libc_ver()[0] != "glibc",
                                             reason="glibc powf bits"))
    for c in TFMOT_GOLDEN_GLIBC_POWF])
def test_polynomial_schedule_matches_tfmot_golden(case):
    si, sf, b, e, step, power, freq, eager, pe, graph, pg = case
    for mode, want, wprune in (("eager", eager, pe), ("graph", graph, pg)):
        s, prune = polynomial_sparsity(step, initial_sparsity=si, final_sparsity=sf,
                                       begin_step=b, end_step=e, power=power,
                                       frequency=freq, mode=mode)
        assert s.dtype == np.float32
        assert_bits_equal(s, np.float32(float.fromhex(want)), mode)
        assert prune is bool(wprune)
        assert_bits_equal(s, tfmot_emulation(step, si, sf, b, e, power, freq, mode)[0], mode)


def test_polynomial_schedule_audit_example():
    # tfmot subtracts the Python floats (float64) then casts: 0.85899866, while
    # float32(0.5) - float32(0.9) would give 0.8589987
    for mode in ("graph", "eager"):
        s, prune = polynomial_sparsity(532, initial_sparsity=0.5, final_sparsity=0.9,
                                       begin_step=0, end_step=1000, mode=mode)
        assert s == np.float32(0.85899866) and not prune
    f = np.float32
    q = f(1) - f(532) / f(1000)
    assert f((f(0.5) - f(0.9)) * f(float(q) ** 3)) + f(0.9) != np.float32(0.85899866)


SPARS = st.one_of(st.sampled_from([0.0, 0.1, 0.5, 0.8, 0.9, 0.95, 0.99, 1 / 3]),
                  st.floats(0, 1, exclude_max=True))
POWERS = st.one_of(st.sampled_from([0, 0.5, 1, 2, 3, 3.0, 4, 2.5]), st.floats(0, 8),
                   st.integers(0, 9))


@given(SPARS, SPARS, st.integers(0, 10 ** 6), st.integers(1, 10 ** 6), st.integers(-50, 10 ** 6),
       POWERS, st.integers(1, 300), st.sampled_from(["graph", "eager"]))
@settings(max_examples=400)
def test_polynomial_schedule_vs_tfmot_emulation(si, sf, begin, length, offset, power, freq,
                                               mode):
    end = begin + length
    step = begin + offset % (length + 100) - 50       # before, inside and after the range
    s, prune = polynomial_sparsity(step, initial_sparsity=si, final_sparsity=sf,
                                   begin_step=begin, end_step=end, power=power,
                                   frequency=freq, mode=mode)
    want, wprune = tfmot_emulation(step, si, sf, begin, end, power, freq, mode)
    assert_bits_equal(s, want)
    assert prune == wprune


def test_polynomial_schedule_edges():
    kw = dict(initial_sparsity=0.2, final_sparsity=0.8)
    # negative steps (tfmot's pruning step starts at -1): p clipped to 0, no pruning
    s, prune = polynomial_sparsity(-1, begin_step=0, end_step=100, **kw)
    assert s == np.float32(np.float32(0.2 - 0.8) + np.float32(0.8)) and not prune
    # end == begin: tfmot gives NaN at step == begin (0/0); here the p = 1 value
    assert polynomial_sparsity(9, begin_step=10, end_step=10, **kw)[0] == \
        polynomial_sparsity(-1, begin_step=0, end_step=100, **kw)[0]
    assert polynomial_sparsity(10, begin_step=10, end_step=10, **kw) == \
        (polynomial_sparsity(11, begin_step=10, end_step=10, **kw)[0], True)
    # steps beyond 2**24: int64 -> float32 rounded to nearest even
    s, _ = polynomial_sparsity(2 ** 24 + 1, begin_step=0, end_step=2 ** 25 + 3, **kw)
    assert_bits_equal(s, tfmot_emulation(2 ** 24 + 1, 0.2, 0.8, 0, 2 ** 25 + 3, 3, 100,
                                         "graph")[0])
    # a float power (tfmot casts it to float32)
    s, _ = polynomial_sparsity(30, begin_step=0, end_step=100, power=2.5, mode="eager", **kw)
    assert s == np.float32(np.float32(0.2 - 0.8) * np.float32(_LIBM.powf(0.7, 2.5))
                           + np.float32(0.8))


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
    kw = dict(begin_step=0, end_step=10)
    for si, sf in ((1.0, 0.5), (0.5, 1.0), (-0.1, 0.5), (0.5, float("nan")), (True, 0.5)):
        with pytest.raises(refcomp.ParameterError, match="sparsity"):   # tfmot: [0, 1)
            polynomial_sparsity(3, initial_sparsity=si, final_sparsity=sf, **kw)
    for power in (-1, -0.5, float("inf"), float("nan"), "3", True):
        with pytest.raises(refcomp.ParameterError, match="power"):
            polynomial_sparsity(3, initial_sparsity=0, final_sparsity=0.5, power=power, **kw)
    with pytest.raises(refcomp.ParameterError, match="mode"):
        polynomial_sparsity(3, initial_sparsity=0, final_sparsity=0.5, mode="xla", **kw)
    with pytest.raises(refcomp.ParameterError, match="begin_step"):
        polynomial_sparsity(3, initial_sparsity=0, final_sparsity=0.5, begin_step=-1,
                            end_step=10)
    with pytest.raises(refcomp.ParameterError, match="step"):
        polynomial_sparsity(2.0, initial_sparsity=0, final_sparsity=0.5, **kw)


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
