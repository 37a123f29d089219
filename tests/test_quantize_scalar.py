"""Tests of uniform, affine, fixed point, power of two, binary/ternary and the rounding primitives."""

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, strategies as st
from hypothesis.extra.numpy import arrays

from refcomp import _rounding as R
from refcomp._errors import DTypeError, ParameterError, ShapeError
from refcomp.kernels import quantize as K
from refcomp.quantize import (Quantized, affine, binary, dynamic_fixed_point, fixed_point,
                              power_of_two, ternary, ternary_ttq, uniform, xnor)
from refcomp.testing import assert_bits_equal

h5py = pytest.importorskip("h5py")

finite32 = st.floats(-1e6, 1e6, width=32, allow_nan=False)
warr = arrays(np.float32, st.integers(1, 60), elements=finite32)


def roundtrip(q, tmp_path):
    with h5py.File(tmp_path / "q.h5", "w") as f:
        q.to_hdf5(f.create_group("q"))
    with h5py.File(tmp_path / "q.h5", "r") as f:
        r = Quantized.from_hdf5(f["q"])
    assert r == q
    assert_bits_equal(r.dequantize(), q.dequantize())


# -- rounding primitives ---------------------------------------------------------------
TIES = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 0.49999999999999994, -0.49999999999999994])


@pytest.mark.parametrize("mode,expected", [
    ("half_even", [-2, -2, -0.0, 0, 2, 2, 0, -0.0]),
    ("half_away", [-3, -2, -1, 1, 2, 3, 0, -0.0]),
    ("half_up", [-2, -1, 0, 1, 2, 3, 0, -0.0]),
    ("floor", [-3, -2, -1, 0, 1, 2, 0, -1]),
])
def test_rounding_golden_ties(mode, expected):
    got = R.round_mode(TIES, mode)
    assert np.array_equal(got, np.array(expected, dtype=np.float64))


def _exact_round(v, mode):
    f = Fraction(v)
    fl = math.floor(f)
    d = f - fl
    if mode == "floor":
        return fl
    if d != Fraction(1, 2):
        return fl + (d > Fraction(1, 2))
    if mode == "half_even":
        return fl + (fl % 2)
    if mode == "half_up":
        return fl + 1
    return fl + 1 if f > 0 else fl      # half_away


@given(arrays(np.float64, 20, elements=st.floats(-1e17, 1e17, allow_nan=False)))
def test_rounding_matches_fractions_and_numba(x):
    x = np.concatenate([x, np.floor(x) + 0.5])
    for mode in ("half_even", "half_away", "half_up", "floor"):
        got = R.round_mode(x, mode)
        assert [int(g) for g in got] == [_exact_round(v, mode) for v in x.tolist()]
        nb = np.array([R.round_code_nb(v, R.MODE_CODES[mode], 0.0) for v in x])
        assert np.array_equal(nb, got)


def test_stochastic_rounding_uses_u():
    x = np.array([0.25, 0.25, -1.75])
    u = np.array([0.1, 0.3, 0.2])
    assert np.array_equal(R.stochastic(x, u), [1.0, 0.0, -1.0])


# -- uniform -------------------------------------------------------------------------
def test_uniform_golden():
    w = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 3.999], dtype=np.float64)
    q = uniform(w, 2)                  # Δ = 1, cells [0,1) .. [3,4]
    assert q.codes.tolist() == [0, 1, 2, 3, 3, 3]
    assert q.dequantize().tolist() == [0.5, 1.5, 2.5, 3.5, 3.5, 3.5]
    z = uniform(np.array([-1.0, -0.25, 0.0, 1.0]), 2, grid="zero")   # Δ = 0.5, i in -2..2
    assert z.info["levels"] == 5 and z.bits == 3
    assert z.dequantize().tolist() == [-0.75, -0.25, 0.25, 1.25]


def test_uniform_constant_tensor():
    w = np.full((3, 4), -2.5, dtype=np.float32)
    for grid in ("range", "zero"):
        q = uniform(w, 3, grid=grid)
        assert not q.codes.any()
        assert_bits_equal(q.dequantize(), w)


@given(warr, st.integers(1, 8))
def test_uniform_properties(w, bits):
    q = uniform(w, bits)
    v = q.dequantize()
    assert v.dtype == w.dtype and q.codes.max() < 2 ** bits
    assert len(np.unique(v)) <= 2 ** bits
    d = q.params["delta"]
    ulp = np.spacing(np.abs(v)).astype(np.float64)   # final rounding to w.dtype
    assert np.all(np.abs(w.astype(np.float64) - v) <= d / 2 * (1 + 1e-12) + ulp)
    order = np.argsort(w, kind="stable")
    assert np.all(np.diff(v[order]) >= 0)                     # monotone
    naive = [min(math.floor((float(x) - q.params["theta_min"]) / d), 2 ** bits - 1)
             if d else 0 for x in w.tolist()]
    assert q.codes.tolist() == naive


def test_uniform_twin_and_hdf5(tmp_path):
    w = np.random.default_rng(3).standard_normal(200_000).astype(np.float32)
    q = uniform(w, 5)
    assert_bits_equal(q.codes, K.uniform_range_codes_twin(w, q.params["theta_min"],
                                                          q.params["delta"], 31, np.uint8))
    assert K.minmax_nonfinite(w) == K.minmax_nonfinite_twin(w)
    roundtrip(q, tmp_path)
    roundtrip(uniform(w[:100].astype(np.float64), 3, grid="zero"), tmp_path)


def test_uniform_bad_input():
    with pytest.raises(ParameterError, match="2 non-finite"):
        uniform(np.array([1.0, np.nan, np.inf]), 4)
    with pytest.raises(ShapeError):
        uniform(np.zeros(0, np.float32), 4)
    with pytest.raises(DTypeError):
        uniform(np.arange(4), 4)
    with pytest.raises(DTypeError):
        uniform([1.0, 2.0], 4)
    with pytest.raises(ParameterError):
        uniform(np.ones(3), 0)
    with pytest.raises(ParameterError):
        uniform(np.ones(3), 4, grid="middle")


# -- affine --------------------------------------------------------------------------
def test_affine_ties_each_mode():
    w = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 200.0, -200.0], dtype=np.float32)
    exp = {"half_even": [-2, -2, 0, 0, 2, 2, 127, -128],
           "half_away": [-3, -2, -1, 1, 2, 3, 127, -128],
           "half_up": [-2, -1, 0, 1, 2, 3, 127, -128],
           "floor": [-3, -2, -1, 0, 1, 2, 127, -128]}
    for mode, e in exp.items():
        q = affine(w, 8, scale=1.0, signed=True, rounding=mode)
        assert q.codes.dtype == np.int8 and q.codes.tolist() == e
    q = affine(w, 8, scale=1.0, signed=True, narrow_range=True)
    assert q.codes.min() == -127


def test_affine_divide_vs_reciprocal():
    # FACTS.md §5.8 example: x / s = 127.49999 -> 127, x * (1/s) = 127.5 -> 128
    w = np.array([0.273939937], dtype=np.float32)
    s = 0.00214854861
    assert affine(w, 8, scale=s, signed=False).codes[0] == 127
    assert affine(w, 8, scale=s, signed=False, scale_op="reciprocal").codes[0] == 128


def test_affine_against_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    w = (rng.standard_normal((16, 50)) * 3).astype(np.float32)
    w[0, :6] = np.array([0.5, 1.5, 2.5, -0.5, -1.5, 99.0]) * 0.05   # ties at scale 0.05
    for zp in (0, 128, 77):
        q = affine(w, 8, scale=0.05, zero_point=zp, scale_op="reciprocal")
        # quantize_per_tensor takes a float64 scale and may invert it before rounding to
        # float32: compare it away from ties only (row 0 holds the near-ties).
        tq = torch.quantize_per_tensor(torch.from_numpy(w), 0.05, zp, torch.quint8)
        assert np.array_equal(q.codes[1:], tq.int_repr().numpy()[1:])
        fq = torch.fake_quantize_per_tensor_affine(torch.from_numpy(w), 0.05, zp, 0, 255)
        assert_bits_equal(q.dequantize(), fq.numpy())
    scales = np.linspace(0.01, 0.2, 16)
    q = affine(w, 8, axis=0, scale=scales, zero_point=np.zeros(16, np.int64), signed=True,
               scale_op="reciprocal")
    tq = torch.quantize_per_channel(torch.from_numpy(w), torch.from_numpy(scales),
                                    torch.zeros(16, dtype=torch.int64), 0, torch.qint8)
    assert np.array_equal(q.codes, tq.int_repr().numpy())


def test_affine_against_onnxruntime():
    ort = pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper
    w = (np.random.default_rng(1).standard_normal(400) * 2).astype(np.float32)
    w[:4] = np.array([0.5, 1.5, 2.5, -2.5], np.float32) * np.float32(0.03)
    node = helper.make_node("QuantizeLinear", ["x", "s", "z"], ["y"])
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [400])],
                          [helper.make_tensor_value_info("y", TensorProto.UINT8, [400])],
                          [helper.make_tensor("s", TensorProto.FLOAT, [], [0.03]),
                           helper.make_tensor("z", TensorProto.UINT8, [], [100])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    y = sess.run(None, {"x": w})[0]
    assert np.array_equal(affine(w, 8, scale=0.03, zero_point=100).codes, y)


@given(arrays(np.float32, (4, 7), elements=finite32), st.booleans(), st.booleans())
def test_affine_properties(w, symmetric, narrow):
    q = affine(w, 8, symmetric=symmetric, narrow_range=narrow)
    p = q.params
    assert q.codes.min() >= p["qmin"] and q.codes.max() <= p["qmax"]
    v = q.dequantize()
    s = float(p["scale"][0])
    assert np.all(np.abs(v.astype(np.float64) - w) <= s * 0.5001 + 1e-30) or symmetric
    # idempotent on its own output (same scale / zero point)
    q2 = affine(v, 8, scale=p["scale"], zero_point=p["zero_point"], signed=p["signed"],
                narrow_range=narrow)
    assert np.array_equal(q2.codes, q.codes)
    # per channel equals per tensor channel by channel
    qc = affine(w, 8, symmetric=symmetric, narrow_range=narrow, axis=0)
    for c in range(4):
        assert np.array_equal(qc.codes[c], affine(w[c], 8, symmetric=symmetric,
                                                  narrow_range=narrow).codes)


def test_affine_twin_all_modes(tmp_path):
    rng = np.random.default_rng(5)
    w = (rng.standard_normal((3, 5, 70001)) * 4).astype(np.float32)
    x3 = np.ascontiguousarray(w).reshape(3, 5, -1)
    s = np.linspace(0.01, 0.05, 5).astype(np.float32)
    zp = np.arange(5, dtype=np.float64)
    u3 = rng.random(x3.shape)
    for mode in R.MODES:
        for rec in (False, True):
            a = K.affine_codes(x3, s, zp, -128, 127, mode, rec, u3, np.int8)
            b = K.affine_codes_twin(x3, s, zp, -128, 127, mode, rec, u3, np.int8)
            assert_bits_equal(a, b, mode)
    q = affine(w, 8, axis=1, rounding="stochastic", rng=np.random.default_rng(9))
    q2 = affine(w, 8, axis=1, rounding="stochastic", rng=np.random.default_rng(9))
    assert q == q2
    roundtrip(q, tmp_path)
    roundtrip(affine(w[0].astype(np.float64), 4, symmetric=True), tmp_path)


def test_affine_bad_input():
    w = np.ones((2, 3), np.float32)
    with pytest.raises(ParameterError):
        affine(w, 1)
    with pytest.raises(ParameterError, match="out of range"):
        affine(w, axis=2)
    with pytest.raises(ParameterError):
        affine(w, rounding="stochastic")
    with pytest.raises(ParameterError):
        affine(w, scale=-1.0)
    with pytest.raises(ParameterError):
        affine(w, scale=1.0, zero_point=300)
    with pytest.raises(ParameterError, match="1 non-finite"):
        affine(np.array([np.nan, 1.0], np.float32))
    with pytest.raises(DTypeError):
        affine(np.ones(3, np.int32))


# -- fixed point ------------------------------------------------------------------------
def test_fixed_point_golden():
    w = np.array([0.125, 0.375, -0.375, 100.0, -100.0, 0.1], dtype=np.float64)
    q = fixed_point(w, 8, 2)            # Q5.2: step 0.25, codes [-128, 127]
    assert q.codes.tolist() == [0, 2, -2, 127, -128, 0]
    assert q.dequantize().tolist() == [0.0, 0.5, -0.5, 31.75, -32.0, 0.0]
    assert fixed_point(w, 8, 2, rounding="half_away").codes.tolist()[:3] == [1, 2, -2]


def test_dynamic_fixed_point_rule(tmp_path):
    w = np.array([0.3, -2.9, 1.0], dtype=np.float32)   # ceil(log2 2.9) = 2 -> il = 3
    q = dynamic_fixed_point(w, 8)
    assert q.params["frac_bits"] == 5
    w2 = np.array([2.0, -1.0], dtype=np.float32)        # exact power: il = 2, 2.0 saturates
    q2 = dynamic_fixed_point(w2, 8)
    assert q2.params["frac_bits"] == 6 and q2.dequantize()[0] == 2 - 2 ** -6
    roundtrip(q, tmp_path)


# -- power of two -----------------------------------------------------------------------
def test_power_of_two_domains(tmp_path):
    w = np.array([1.4142, 1.4143, 1.5, 1.49, -3.0, 0.0, 2 ** -20], dtype=np.float64)
    ql = power_of_two(w, 4, domain="log", max_exp=2)
    qn = power_of_two(w, 4, domain="linear", max_exp=2)
    assert ql.dequantize().tolist() == [1, 2, 2, 2, -4, 0, 0]
    assert qn.dequantize().tolist() == [1, 1, 2, 1, -4, 0, 0]
    roundtrip(ql, tmp_path)
    assert len(np.unique(power_of_two(np.linspace(-5, 5, 101), 3).dequantize())) <= 7


# -- binary / ternary ----------------------------------------------------------------------
def test_binary_xnor_ternary(tmp_path):
    w = np.array([[0.0, -1.0, 2.0, -0.0], [0.5, 0.5, -0.5, 0.1]], dtype=np.float32)
    assert binary(w).dequantize().tolist() == [[1, -1, 1, 1], [1, 1, -1, 1]]
    xq = xnor(w)
    assert xq.params["alpha"].tolist() == [0.75, np.float32(0.4)]
    assert xnor(w, zero="keep").dequantize()[0].tolist() == [0, -0.75, 0.75, 0]
    roundtrip(xq, tmp_path)
    t = ternary(np.array([0.7, -0.71, 0.1, -1.0, 0.0], dtype=np.float64))
    # mean|w| = 0.502, Δ = 0.3514; α = mean(0.7, 0.71, 1.0)
    assert t.codes.tolist() == [2, 0, 1, 0, 1]
    assert t.dequantize()[0] == (0.7 + 0.71 + 1.0) / 3
    tt = ternary_ttq(np.array([0.04, 0.051, -0.2, 1.0], np.float32), 2.0, 0.5, t=0.05)
    assert tt.dequantize().tolist() == [0, 2.0, -0.5, 2.0]
    roundtrip(tt, tmp_path)
    with pytest.raises(ParameterError):
        ternary_ttq(w, -1.0, 1.0)
