"""Tests of uniform, affine, fixed point, power of two, binary/ternary and the rounding primitives."""

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, strategies as st
from hypothesis.extra.numpy import arrays

from refcomp import _rounding as R
from refcomp._errors import DTypeError, ParameterError, RefcompError, ShapeError
from refcomp.kernels import quantize as K
from refcomp.quantize import (Quantized, affine, affine_params, binary, dynamic_fixed_point,
                              fixed_point, power_of_two, ternary, ternary_ttq, uniform, xnor)
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


def _near_ties(inv, ks):
    """float32 x with x·inv at, just above and just below k + 1/2 (ties before rounding)."""
    x = ((np.asarray(ks, np.float64) + 0.5) / np.float64(inv)).astype(np.float32)
    return np.concatenate([x, np.nextafter(x, np.float32(np.inf)),
                           np.nextafter(x, np.float32(-np.inf))])


def _torch_quiet():
    torch = pytest.importorskip("torch")
    import warnings
    warnings.filterwarnings("ignore", message=".*quantized tensor creation.*")
    return torch


def test_affine_torch_order_golden_and_fused_add():
    # The audit's example, checked by hand: torch adds the zero point before rounding.
    x = (np.array([0.5, 1.5, 2.5, -0.5, -1.5, 3.5]) * 0.05).astype(np.float32)
    assert affine(x, 8, scale=0.05, zero_point=77, scale_op="reciprocal").codes.tolist() == [
        77, 79, 79, 77, 75, 81]
    q = affine(x, 8, scale=0.05, zero_point=77, scale_op="torch")
    assert q.codes.tolist() == [78, 78, 80, 76, 76, 80]
    assert q.params["scale_op"] == "reciprocal_fma_zp"
    assert affine(x.reshape(1, -1), 8, axis=0, scale=0.05, zero_point=77,
                  scale_op="torch").params["scale_op"] == "reciprocal_add_zp"
    # fused vs two roundings: scale 0.0137 (inv = fl32(1/fl32(0.0137))) and x = -0.26715004
    # (float32 0xbe88c7e4), checked with Fractions: x·inv = -19.5000027 lies between -19.5 - 2**-18
    # and -19.5.  Fused: x·inv + 77 = 57.4999973 is below the float32 midpoint 57.5 - 2**-19
    # (float32 spacing 2**-18 there) -> 57.5 - 2**-18 -> 57.  Two roundings: fl32(x·inv) =
    # -19.5 - 2**-19, and -19.5 - 2**-19 + 77 is exactly that midpoint, which ties to the even
    # 57.5 -> rint -> 58.
    x1 = np.array([0xBE88C7E4], np.uint32).view(np.float32)
    inv = np.float32(1) / np.float32(0.0137)
    p = Fraction(float(x1[0])) * Fraction(float(inv))
    assert Fraction(-39, 2) - Fraction(1, 2 ** 18) < p < Fraction(-39, 2)
    assert p + 77 < Fraction(115, 2) - Fraction(1, 2 ** 19)
    p32 = Fraction(float(np.float32(float(p))))
    assert p32 == Fraction(-39, 2) - Fraction(1, 2 ** 19)
    assert p32 + 77 == Fraction(115, 2) - Fraction(1, 2 ** 19)
    kw = dict(scale=0.0137, zero_point=77)
    assert affine(x1, 8, scale_op="reciprocal_fma_zp", **kw).codes[0] == 57
    assert affine(x1, 8, scale_op="reciprocal_add_zp", **kw).codes[0] == 58
    assert affine(x1, 8, scale_op="reciprocal", **kw).codes[0] == 57     # 77 + rint(-19.5)


def _exact_torch_order(x, inv, zp, fused, qmin, qmax):
    """Naive loop on exact rationals: rint(fl32(x·inv + zp)) (fused) or
    rint(fl32(fl32(x·inv) + zp)), clamped."""
    out = []
    for v in x.tolist():
        p = Fraction(v) * Fraction(float(inv))
        if not fused:
            p = Fraction(float(np.float32(float(p))))      # product exact in float64, one rounding
        s = _fl32(p + zp)
        out.append(min(max(_exact_round(s, "half_even"), qmin), qmax))
    return out


def _fl32(fr):
    """Round a Fraction to the nearest float32, ties to even (exact, by integers)."""
    if fr == 0:
        return Fraction(0)
    sign = -1 if fr < 0 else 1
    a = abs(fr)
    e = a.numerator.bit_length() - a.denominator.bit_length()
    while Fraction(2) ** e > a:
        e -= 1
    while Fraction(2) ** (e + 1) <= a:
        e += 1
    q = Fraction(2) ** (max(e, -126) - 23)
    n = a / q
    fl = n.numerator // n.denominator
    r = n - fl
    if r > Fraction(1, 2) or (r == Fraction(1, 2) and fl % 2):
        fl += 1
    return sign * fl * q


def test_affine_torch_order_matches_exact_rationals():
    rng = np.random.default_rng(12)
    for scale in (0.05, 0.0137, 0.3):
        inv = np.float32(1) / np.float32(scale)
        x = np.concatenate([_near_ties(inv, rng.integers(-140, 140, 60)),
                            (rng.standard_normal(50) * 3).astype(np.float32)])
        for zp in (0, 3, 77, 128, 255):
            for op, fused in (("reciprocal_fma_zp", True), ("reciprocal_add_zp", False)):
                got = affine(x, 8, scale=scale, zero_point=zp, scale_op=op).codes.tolist()
                assert got == _exact_torch_order(x, inv, zp, fused, 0, 255), (scale, zp, op)


def test_affine_against_torch():
    torch = _torch_quiet()
    rng = np.random.default_rng(0)
    scales = np.array([0.05, 0.0137, 0.3, 0.00214854861, 0.11, 1e-3])
    inv = (np.float32(1) / scales.astype(np.float32)).astype(np.float32)
    # each row: exact ties of x·inv, the float32 neighbours on both sides, random values,
    # and saturating extremes
    rows = [np.concatenate([_near_ties(inv[c], rng.integers(-140, 140, 120)),
                            (rng.standard_normal(37) * 3).astype(np.float32),
                            np.array([1e6, -1e6, 0.0, -0.0], np.float32)]) for c in range(6)]
    w = np.stack(rows)
    for zps, signed, tdt in ((np.array([77, 3, 128, 0, 201, 254]), False, torch.quint8),
                             (np.array([-51, 3, 0, -128, 101, 1]), True, torch.qint8)):
        qmin, qmax = (-128, 127) if signed else (0, 255)
        for c in range(6):                       # per tensor: odd and even zero points
            s, z = float(scales[c]), int(zps[c])
            tq = torch.quantize_per_tensor(torch.from_numpy(w[c]), s, z, tdt).int_repr().numpy()
            q = affine(w[c], 8, scale=s, zero_point=z, signed=signed, scale_op="torch")
            assert np.array_equal(q.codes, tq), (c, z)
            # fake quant rounds first and adds the zero point after: "reciprocal"
            fq = torch.fake_quantize_per_tensor_affine(torch.from_numpy(w[c]), s, z, qmin, qmax)
            qr = affine(w[c], 8, scale=s, zero_point=z, signed=signed, scale_op="reciprocal")
            assert_bits_equal(qr.dequantize(), fq.numpy())
        # per channel, on axis 0 and on axis 1
        for axis, x in ((0, w), (1, np.ascontiguousarray(w.T))):
            tq = torch.quantize_per_channel(torch.from_numpy(x), torch.from_numpy(scales),
                                            torch.from_numpy(zps), axis, tdt)
            q = affine(x, 8, axis=axis, scale=scales, zero_point=zps, signed=signed,
                       scale_op="torch")
            assert np.array_equal(q.codes, tq.int_repr().numpy()), axis
            fq = torch.fake_quantize_per_channel_affine(
                torch.from_numpy(x), torch.from_numpy(scales.astype(np.float32)),
                torch.from_numpy(zps).int(), axis, qmin, qmax)
            qr = affine(x, 8, axis=axis, scale=scales, zero_point=zps, signed=signed,
                        scale_op="reciprocal")
            assert_bits_equal(qr.dequantize(), fq.numpy())
    # the default order and the torch order really differ on these rows (odd zero point)
    assert not np.array_equal(affine(w[0], 8, scale=0.05, zero_point=77,
                                     scale_op="reciprocal").codes,
                              affine(w[0], 8, scale=0.05, zero_point=77,
                                     scale_op="torch").codes)


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
        for op in (False, True, K.OP_RECIPROCAL_ADD_ZP, K.OP_RECIPROCAL_FMA_ZP):
            a = K.affine_codes(x3, s, zp, -128, 127, mode, op, u3, np.int8)
            b = K.affine_codes_twin(x3, s, zp, -128, 127, mode, op, u3, np.int8)
            assert_bits_equal(a, b, (mode, op))
    # float64: the fused multiply-add against exact rationals (small sample: slow twin)
    x64 = np.concatenate([(rng.standard_normal(300) * 4),
                          (np.arange(-40, 40) + 0.5) * 0.03]).reshape(1, 1, -1)
    inv64 = np.array([1 / 0.03])
    for op in (K.OP_RECIPROCAL_ADD_ZP, K.OP_RECIPROCAL_FMA_ZP):
        for zp64 in (0.0, 77.0, -3.0):
            a = K.affine_codes(x64, inv64, np.array([zp64]), -128, 127, "half_even", op, None,
                               np.int8)
            b = K.affine_codes_twin(x64, inv64, np.array([zp64]), -128, 127, "half_even", op,
                                    None, np.int8)
            assert_bits_equal(a, b, (op, zp64))
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


def test_power_of_two_e_max_stays_in_the_max_exp_range(tmp_path):
    """A computed e_max is never below -1000 (the range max_exp accepts): tiny float64
    weights clamp it to -1000, and passing it back as max_exp reproduces the codes."""
    w = np.array([5e-324, -1e-310, 2.0 ** -1010, 0.0, -0.0], dtype=np.float64)
    for bits in (2, 5, 8):
        for domain in ("log", "linear"):
            q = power_of_two(w, bits, domain=domain)
            assert q.info["e_max"] == -1000
            assert q.params["e_min"] == -1000 - ((1 << (bits - 1)) - 1) + 1
            q2 = power_of_two(w, bits, domain=domain, max_exp=q.info["e_max"])
            assert np.array_equal(q2.codes, q.codes)
            v = q.dequantize()
            assert np.all(np.abs(v) <= 2.0 ** -1000) and not np.any(v[3:])
    q = power_of_two(w, 8)                        # e_min = -1126: every value representable
    assert q.dequantize().tolist() == [2.0 ** -1074, -(2.0 ** -1030), 2.0 ** -1010, 0.0, 0.0]
    assert power_of_two(w, 2).dequantize().tolist() == [0.0] * 5   # only +-2**-1000 exists
    roundtrip(q, tmp_path)
    # just below the clamp nothing changes: e_max = -999 is the rounded exponent of max|w|
    assert power_of_two(np.array([2.0 ** -999]), 3).info["e_max"] == -999
    # above the range: a documented ParameterError instead of an e_max max_exp refuses
    assert power_of_two(np.array([2.0 ** 1000]), 3).info["e_max"] == 1000
    for big in (2.0 ** 1001, 1e308, -np.finfo(np.float64).max):
        with pytest.raises(ParameterError, match="above 1000"):
            power_of_two(np.array([1.0, big]), 4)
    with pytest.raises(ParameterError, match="max_exp"):
        power_of_two(w, 4, max_exp=-1001)


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


# -- binary / ternary on 2-D and 4-D weights (naive loops on exact rationals) -------------
def _naive_mean_abs(vals):
    """fsum-then-divide, independently: the exactly rounded float64 of Σ|v|, / n in float64."""
    return float(sum(Fraction(abs(v)) for v in vals)) / len(vals) if vals else 0.0


def _naive_ternary(flat, delta_factor=0.7):
    delta = delta_factor * _naive_mean_abs(flat)
    codes = [2 if v > delta else 0 if v < -delta else 1 for v in flat]
    alpha = _naive_mean_abs([abs(v) for v in flat if abs(v) > delta])
    return codes, delta, alpha


def _slices(w, axis):
    return [np.take(w, i, axis=axis).reshape(-1).tolist() for i in range(w.shape[axis])]


@pytest.mark.parametrize("dt", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(8, 5), (4, 3, 3, 3), (6, 2, 1, 5)])
def test_ternary_and_xnor_multidim(dt, shape):
    rng = np.random.default_rng(len(shape) * 10 + shape[0])
    w = (rng.standard_normal(shape) * rng.choice([0.1, 1.0, 5.0], shape)).astype(dt)
    w.reshape(-1)[:3] = [0.0, -0.0, w.reshape(-1)[5]]          # zeros and a repeated value
    # ternary per tensor (the authors' per-layer rule)
    t = ternary(w)
    codes, delta, alpha = _naive_ternary(w.reshape(-1).tolist())
    assert t.codes.shape == shape and t.codes.reshape(-1).tolist() == codes
    assert t.info["delta"] == delta and t.info["alpha"] == alpha
    cb = np.array([-alpha, 0.0, alpha]).astype(dt)
    assert_bits_equal(t.dequantize(), cb[np.array(codes)].reshape(shape))
    # ternary per channel on every axis: each slice by the per-tensor rule
    for axis in range(len(shape)):
        tc = ternary(w, axis=axis)
        assert tc.decoder == "sign_scale" and tc.codes.shape == shape
        moved = np.moveaxis(tc.codes, axis, 0)
        vals = np.moveaxis(tc.dequantize(), axis, 0)
        for i, sl in enumerate(_slices(w, axis)):
            c, d, a = _naive_ternary(sl)
            assert moved[i].reshape(-1).tolist() == c
            assert tc.info["delta"][i] == d and tc.info["alpha"][i] == a
            ref = ternary(np.ascontiguousarray(np.take(w, i, axis=axis)))
            assert_bits_equal(vals[i], ref.dequantize())
    # xnor: one α for the tensor, and per output filter (axis 0) / per other axis
    for axis in (None,) + tuple(range(len(shape))):
        xq = xnor(w, axis=axis)
        groups = [w.reshape(-1).tolist()] if axis is None else _slices(w, axis)
        alphas = np.array([_naive_mean_abs(g) for g in groups]).astype(dt)
        assert_bits_equal(xq.params["alpha"], alphas)
        sign = np.where(w >= 0, 1.0, -1.0).astype(dt)
        a = alphas.reshape(()) if axis is None else alphas.reshape(
            [-1 if i == axis else 1 for i in range(len(shape))])
        assert_bits_equal(xq.dequantize(), (sign * a).astype(dt))
        keep = xnor(w, axis=axis, zero="keep").dequantize()
        assert_bits_equal(keep, (np.sign(w).astype(dt) * a).astype(dt) + dt(0.0))


def test_ternary_per_channel_bad_axis():
    with pytest.raises(ParameterError, match="out of range"):
        ternary(np.ones((2, 3), np.float32), axis=2)


# -- affine_params ---------------------------------------------------------------------------
def test_affine_params_hand_values():
    # [-1, 3] uint8: scale 4/255, zero point 64 (1/scale = 63.75)
    s, z = affine_params(-1.0, 3.0, 8, dtype=np.float64)
    assert (s, z) == (4 / 255, 64)
    assert affine_params(-1.0, 3.0, 8, dtype=np.float64, rule="tflite") == (4 / 255, 64)
    # a zero-point tie, -lo/scale = 2.5: half-even (refcomp, PyTorch) 2, half-away (TFLite) 3
    assert affine_params(-1.0, 101.0, 8, dtype=np.float64) == (0.4, 2)
    assert affine_params(-1.0, 101.0, 8, dtype=np.float64, rule="tflite") == (0.4, 3)
    # range widened to contain 0; positive-only range puts zp at qmin
    assert affine_params(2.0, 4.0, 8, dtype=np.float64) == (4 / 255, 0)
    assert affine_params(-4.0, -2.0, 8, dtype=np.float64, rule="tflite") == (4 / 255, 255)
    # symmetric int8: TFLite weights (narrow) max/127, PyTorch max/127.5
    assert affine_params(-0.5, 2.54, 8, symmetric=True, narrow_range=True) == (
        float(np.float32(2.54 / 127)), 0)
    assert affine_params(-0.5, 2.55, 8, symmetric=True) == (float(np.float32(2.55 / 127.5)), 0)
    assert affine_params(-1.0, 1.0, 8, symmetric=True, signed=False)[1] == 128
    # degenerate ranges: refcomp scale 1, TFLite (0, 0), PyTorch eps
    assert affine_params(0.0, 0.0, 8) == (1.0, 0)
    assert affine_params(0.0, 0.0, 8, rule="tflite") == (0.0, 0)
    assert affine_params(0.0, 0.0, 8, rule="pytorch") == (2.0 ** -23, 0)
    # PyTorch in float32: fl32(fl32(4) / 255) and qmin - rint(fl32(-1 / scale)) = 64
    s, z = affine_params(-1.0, 3.0, 8, rule="pytorch")
    assert s == float(np.float32(4) / np.float32(255)) and z == 64
    # per channel: arrays in, arrays out
    s, z = affine_params(np.array([-1.0, 0.0]), np.array([3.0, 2.0]), 8)
    assert s.dtype == np.float32 and z.dtype == np.int32 and z.tolist() == [64, 0]


def test_affine_params_reproduces_affine():
    rng = np.random.default_rng(21)
    for dt in (np.float32, np.float64):
        w = (rng.standard_normal((5, 40)) * [[0.01], [1], [30], [2], [0.5]] + 0.3).astype(dt)
        for kw in ({}, {"symmetric": True}, {"symmetric": True, "narrow_range": True},
                   {"signed": True}, {"symmetric": True, "signed": False}):
            q = affine(w, 8, **kw)
            s, z = affine_params(float(w.min()), float(w.max()), 8, dtype=dt, **kw)
            assert (s, z) == (float(q.params["scale"][0]), int(q.params["zero_point"][0]))
            assert affine(w, 8, scale=s, zero_point=z, **kw) == q
            qc = affine(w, 4, axis=0, **kw)
            s, z = affine_params(w.min(axis=1), w.max(axis=1), 4, dtype=dt, **kw)
            assert_bits_equal(s, qc.params["scale"])
            assert_bits_equal(z, qc.params["zero_point"])


def test_affine_params_against_torch_observers():
    torch = pytest.importorskip("torch")
    from torch.ao.quantization import MinMaxObserver, PerChannelMinMaxObserver
    rng = np.random.default_rng(5)
    n = 400
    lo = (-np.abs(rng.standard_normal(n)) * 10.0 ** rng.uniform(-5, 3, n)).astype(np.float32)
    hi = (np.abs(rng.standard_normal(n)) * 10.0 ** rng.uniform(-5, 3, n)).astype(np.float32)
    lo[:20], hi[20:40] = 0.0, 0.0
    lo[40:60] = hi[40:60] * 0.25                                  # positive-only ranges
    # zero-point ties: -lo/scale = k + 1/2 for scale = (hi - lo)/255
    k = rng.integers(1, 254, 40)
    lo[60:100] = -(k + 0.5).astype(np.float32)
    hi[60:100] = (255 - k - 0.5).astype(np.float32)
    cases = [(torch.quint8, False, 8, None), (torch.qint8, False, 8, None),
             (torch.quint8, True, 8, None), (torch.qint8, True, 8, None),
             (torch.quint8, False, 4, (0, 15)), (torch.qint8, True, 4, (-8, 7))]
    for tdt, sym, bits, qr in cases:
        signed = tdt == torch.qint8
        kw = {} if qr is None else {"quant_min": qr[0], "quant_max": qr[1]}
        ob = PerChannelMinMaxObserver(
            ch_axis=0, dtype=tdt, qscheme=torch.per_channel_symmetric if sym
            else torch.per_channel_affine, **kw)
        ob(torch.from_numpy(np.stack([lo, hi], axis=1)))
        ts, tz = ob.calculate_qparams()
        s, z = affine_params(lo, hi, bits, symmetric=sym, signed=signed, rule="pytorch")
        assert_bits_equal(s, ts.numpy())
        assert np.array_equal(z, tz.numpy()), (tdt, sym, bits)
        for i in range(0, n, 37):                              # the per-tensor observer too
            o1 = MinMaxObserver(dtype=tdt, qscheme=torch.per_tensor_symmetric if sym
                                else torch.per_tensor_affine, **kw)
            o1(torch.tensor([lo[i], hi[i]]))
            t1, z1 = o1.calculate_qparams()
            assert affine_params(float(lo[i]), float(hi[i]), bits, symmetric=sym,
                                 signed=signed, rule="pytorch") == (float(t1[0]), int(z1[0]))


def test_affine_params_bad_input():
    for args, kw in (((1.0, 0.0), {}), ((np.nan, 1.0), {}), ((-1.0, np.inf), {}),
                     ((-1.0, 1.0), {"rule": "gemm"}), ((-1.0, 1.0), {"bits": 1}),
                     ((-1.0, 1.0), {"rule": "tflite", "symmetric": True}),
                     ((-1.0, 1.0), {"rule": "pytorch", "dtype": np.float64}),
                     (("a", 1.0), {})):
        with pytest.raises(RefcompError):
            affine_params(*args, **kw)
    with pytest.raises(ShapeError):
        affine_params(np.zeros(3), np.ones(2))
    with pytest.raises(DTypeError):
        affine_params(-1.0, 1.0, dtype=np.int8)
