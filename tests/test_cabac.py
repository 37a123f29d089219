"""DeepCABAC (refcomp.coding.cabac) and NNC quantizers: engine against an
independent big-int model, twins, round trips, trellis optimality, the
NNCCoded weight type, the CLI and the study method.  Interoperability with
NNCodec itself: tests/test_cabac_nnc.py."""
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import refcomp
from refcomp.coding.cabac import TRANS, decode_levels, encode_levels, scan_positions
from refcomp.coding.cabac.engine import decode_bins, encode_bins
from refcomp.quantize import NNCCoded, nnc_levels, nnc_quantize, nnc_step_size
from refcomp.quantize import _nnc_kernels as QK

import _cabac_ref


def _bin_sequence(rng, n, n_ctx, max_ep=24):
    kinds = (rng.random(n) < 0.25).astype(np.int64)
    ctxs = rng.integers(0, n_ctx, n).astype(np.int64)
    nbits = np.where(kinds == 1, rng.integers(0, max_ep + 1, n), 0).astype(np.int64)
    p = rng.random(n_ctx) ** 3                      # some very skewed models
    ctx_bits = (rng.random(n) < p[ctxs]).astype(np.int64)
    ep_bits = rng.integers(0, 1 << 62, n, dtype=np.int64) & ((np.int64(1) << nbits) - 1)
    vals = np.where(kinds == 1, ep_bits, ctx_bits).astype(np.int64)
    eco = rng.integers(0, 9, n_ctx).astype(np.int64)
    return kinds, ctxs, vals, nbits, eco


def dq_levels(k, scan_order=0):
    """Valid dependent-quantization levels whose coded values are ``k``."""
    order, _ = scan_positions(k.shape, scan_order)
    flat = k.ravel().astype(np.int64)
    out = np.zeros_like(flat)
    s = 0
    for i in order:
        v = int(flat[i])
        out[i] = 2 * v - ((s & 1) if v > 0 else -(s & 1)) if v else 0
        s = int(TRANS[s, v & 1])
    return out.reshape(k.shape).astype(np.int32)


# ----------------------------------------------------------------- engine
@pytest.mark.parametrize("seed", range(12))
def test_engine_matches_bigint_model_and_round_trips(seed):
    rng = np.random.default_rng(seed)
    seq = _bin_sequence(rng, int(rng.integers(0, 3000)), int(rng.integers(1, 40)))
    data = encode_bins(*seq)
    assert data == _cabac_ref.encode(*seq)
    kinds, ctxs, vals, nbits, eco = seq
    np.testing.assert_array_equal(decode_bins(data, kinds, ctxs, nbits, eco), vals)


def test_engine_carry_and_long_runs():
    # long runs of the most probable symbol, then LPS bursts: carries through
    # buffered 0xFF bytes
    rng = np.random.default_rng(7)
    for p in (0.999, 0.5, 0.001):
        n = 20000
        kinds = np.zeros(n, np.int64)
        ctxs = np.zeros(n, np.int64)
        vals = (rng.random(n) < p).astype(np.int64)
        nbits = np.zeros(n, np.int64)
        eco = np.array([2], np.int64)
        data = encode_bins(kinds, ctxs, vals, nbits, eco)
        assert data == _cabac_ref.encode(kinds, ctxs, vals, nbits, eco)
        np.testing.assert_array_equal(decode_bins(data, kinds, ctxs, nbits, eco), vals)


@pytest.mark.parametrize("seed", range(4))
def test_engine_twin(seed):
    rng = np.random.default_rng(100 + seed)
    seq = _bin_sequence(rng, 1500, 9, max_ep=32)
    data = encode_bins(*seq)
    assert encode_bins(*seq, twin=True) == data
    kinds, ctxs, vals, nbits, eco = seq
    np.testing.assert_array_equal(decode_bins(data, kinds, ctxs, nbits, eco, twin=True), vals)


# ------------------------------------------------------------------ layer
SHAPES = [(1,), (5,), (7, 3), (20, 9), (3, 4, 5), (33, 40), (17, 8, 3, 3)]


@pytest.mark.parametrize("dq", [False, True])
@pytest.mark.parametrize("scan_order", [0, 1, 3])
@pytest.mark.parametrize("shape", SHAPES)
def test_layer_round_trip_and_twin(shape, scan_order, dq):
    rng = np.random.default_rng(hash((shape, scan_order, dq)) & 0xFFFF)
    k = np.round(rng.laplace(0, 4, size=shape)).astype(np.int32)
    k[rng.random(shape) < 0.01] = 5000          # exercises the Exp-Golomb remainder
    lv = dq_levels(k, scan_order) if dq else k
    for param_opt in (True, False):
        data = encode_levels(lv, dq=dq, scan_order=scan_order, param_opt=param_opt)
        assert encode_levels(lv, dq=dq, scan_order=scan_order, param_opt=param_opt,
                             twin=True) == data
        got = decode_levels(data, shape, dq=dq, scan_order=scan_order)
        assert got.dtype == np.int32 and got.shape == lv.shape
        np.testing.assert_array_equal(got, lv)
        np.testing.assert_array_equal(
            decode_levels(data, shape, dq=dq, scan_order=scan_order, twin=True), lv)


@settings(max_examples=40)
@given(st.lists(st.integers(-(1 << 30), 1 << 30), min_size=1, max_size=60),
       st.integers(0, 12), st.booleans(), st.booleans())
def test_layer_round_trip_property(vals, unary_minus1, dq, general):
    k = np.array(vals, dtype=np.int64)
    k = np.clip(k, -(1 << 29), 1 << 29).astype(np.int32)
    lv = dq_levels(k) if dq else k
    lv = lv.reshape(1, -1) if len(vals) % 2 else lv
    opts = dict(dq=dq, cabac_unary_length_minus1=unary_minus1,
                general_profile_idc=int(general))
    data = encode_levels(lv, **opts)
    np.testing.assert_array_equal(decode_levels(data, lv.shape, **opts), lv)


def test_extreme_levels():
    lv = np.array([[(1 << 31) - 3, -((1 << 31) - 3), 0, 1]], dtype=np.int32)
    data = encode_levels(lv, dq=False)
    np.testing.assert_array_equal(decode_levels(data, lv.shape, dq=False), lv)


def test_scan_positions_block():
    order, reset = scan_positions((10, 12), 1)
    assert sorted(order.tolist()) == list(range(120))
    # first block: rows 0..7 of columns 0..7, then columns 8..11
    assert order[:9].tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 12]
    assert order[64:68].tolist() == [8, 9, 10, 11]
    assert np.flatnonzero(reset).tolist() == [95]
    o0, r0 = scan_positions((10,), 2)
    assert o0.tolist() == list(range(10)) and not r0.any()


def test_dq_parity_is_checked():
    with pytest.raises(refcomp.ParameterError, match="quantizer"):
        encode_levels(np.array([1, 0], dtype=np.int32), dq=True)   # state 0 is Q0: even


# -------------------------------------------------------------- quantizer
def test_step_size_golden():
    # qp_density 2: step = (4 + (qp & 3)) * 2**((qp >> 2) - 2)
    assert nnc_step_size(0) == 1.0
    assert nnc_step_size(-38) == np.float32(6 * 2.0 ** -12)
    assert nnc_step_size(-4) == 0.5
    assert nnc_step_size(5, 0) == 32.0
    assert nnc_step_size(3, 1) == np.float32(3.0)
    with pytest.raises(refcomp.ParameterError):
        nnc_step_size(10 ** 6)
    with pytest.raises(refcomp.ParameterError):
        nnc_step_size(-4000, 0)


def test_uniform_quantizer_half_away():
    w = np.array([0.5, -0.5, 1.5, -2.5, 0.49999997, 3.0], dtype=np.float32)
    np.testing.assert_array_equal(nnc_levels(w, qp=0, dq=False), [1, -1, 2, -3, 0, 3])


def _dist(w, lv, step):
    return float(np.sum((w.astype(np.float64) / float(step) - lv.astype(np.float64)) ** 2))


def _greedy_dq(w, step):
    """Plain dependent quantization: nearest level of the state's quantizer."""
    out, s = [], 0
    for x in (w.astype(np.float64) / float(step)).ravel():
        if s & 1:   # Q1: 0 and odd multiples
            cand = [0] + [2 * m + 1 for m in range(int(np.floor((x - 1) / 2)) - 1,
                                                   int(np.floor((x - 1) / 2)) + 3)]
        else:       # Q0: even multiples
            cand = [2 * m for m in range(int(np.floor(x / 2)) - 1, int(np.floor(x / 2)) + 3)]
        q = min(cand, key=lambda c: ((x - c) ** 2, abs(c)))
        v = (q + ((s & 1) if q > 0 else -(s & 1))) // 2 if q else 0
        out.append(q)
        s = int(TRANS[s, v & 1])
    return np.array(out, dtype=np.int32).reshape(w.shape)


@pytest.mark.parametrize("seed", range(6))
def test_trellis_no_worse_than_plain_dq(seed):
    rng = np.random.default_rng(seed)
    w = (rng.standard_normal((13, 11)) * 0.05).astype(np.float32)
    qp = int(rng.integers(-40, -20))
    step = nnc_step_size(qp)
    lv = nnc_levels(w, qp=qp, dq=True)
    greedy = _greedy_dq(w, step)
    encode_levels(greedy, dq=True)          # a valid path of the same machine
    encode_levels(lv, dq=True)
    assert _dist(w, lv, step) <= _dist(w, greedy, step) * (1 + 1e-12)


def _rd_cost(w, lv, step, lam, dq=True):
    # J = D + lambda R: D in step**2 units, R the real payload bits (NNCodec's bytes)
    return _dist(w, lv, step) + lam * 8 * len(encode_levels(lv, dq=dq))


@pytest.mark.parametrize("seed", range(4))
def test_rate_distortion_trellis_beats_greedy_dq(seed):
    """With lambda_scale s > 0 the trellis minimises D + lambda R with lambda = s * 4 ln(2)/6
    * 0.7 bits per step**2 (module docstring of refcomp.quantize.nnc) on estimated rates.
    Measured with the real payload bits on Laplacian weights, it is never worse than the
    greedy path of the same 8-state machine (360 of 360 cases: 40 tensors x 3 qp x 3 s);
    it is *not* always better than the uniform quantizer or the lambda = 0 trellis at the
    same qp (their J is lower in 131 and 147 of those 360 cases; by 5 % at most for the
    latter), since its rates are NNCodec's estimates with NNCodec's quirks (docs/nnc.md)."""
    rng = np.random.default_rng(seed)
    w = rng.laplace(0, 0.02, [(64, 64), (200,), (30, 17), (8, 8, 3, 3)][seed]).astype(np.float32)
    for qp in (-40, -32, -26):
        step = nnc_step_size(qp)
        greedy = _greedy_dq(w, step)
        for s in (0.25, 1.0, 4.0):
            lam = s * 4 * np.log(2) / 6 * 0.7
            lv = nnc_levels(w, qp=qp, dq=True, lambda_scale=s)
            assert _rd_cost(w, lv, step, lam) <= _rd_cost(w, greedy, step, lam), (qp, s)


def test_rate_distortion_trellis_exception():
    # the documented exception, pinned: a lambda = 0 trellis path with a lower real J
    w = np.random.default_rng(0).laplace(0, 0.02, (64, 64)).astype(np.float32)
    step, s = nnc_step_size(-40), 1.0
    lam = s * 4 * np.log(2) / 6 * 0.7
    j_rd = _rd_cost(w, nnc_levels(w, qp=-40, dq=True, lambda_scale=s), step, lam)
    j_0 = _rd_cost(w, nnc_levels(w, qp=-40, dq=True), step, lam)
    assert j_0 < j_rd < 1.01 * j_0


@pytest.mark.parametrize("seed", range(3))
def test_trellis_twin(seed):
    rng = np.random.default_rng(seed)
    w = (rng.standard_normal(500) * [0.01, 1, 100][seed]).astype(np.float64)
    g = 1.0 / float(nnc_step_size(-30 + 20 * seed))
    out = np.empty(w.size, dtype=np.int32)
    QK.tcq_kernel(w, g, 1.0, QK.BRANCHES, out)
    twin = QK.tcq_twin(w, g, 1.0)
    assert out.dtype == twin.dtype and out.shape == twin.shape
    assert np.array_equal(out.view(np.uint32), twin.view(np.uint32))


@pytest.mark.parametrize("dq", [False, True])
def test_rate_distortion_twin(dq):
    rng = np.random.default_rng(11)
    w = (rng.standard_normal(400) * 0.1).astype(np.float64)
    out = np.empty(w.size, dtype=np.int32)
    if dq:
        QK.tcq_rd_kernel(w, 40.0, 5000.0, 10, QK.BRANCHES, out)
        tw = QK.tcq_rd_twin(w, 40.0, 5000.0, 10)
    else:
        QK.urq_rd_kernel(w, 40.0, 5000.0, 10, out)
        tw = QK.urq_rd_twin(w, 40.0, 5000.0, 10)
    assert np.array_equal(out.view(np.uint32), tw.view(np.uint32))


def test_rate_distortion_spends_fewer_bits():
    rng = np.random.default_rng(12)
    w = (rng.laplace(0, 0.02, (64, 64))).astype(np.float32)
    for dq in (False, True):
        sizes = [len(encode_levels(nnc_levels(w, qp=-34, dq=dq, lambda_scale=lam), dq=dq))
                 for lam in (0.0, 1.0, 4.0)]
        assert sizes[0] > sizes[1] > sizes[2]


def test_quantizer_bad_input():
    with pytest.raises(refcomp.RefcompError):
        nnc_levels(np.ones(3), qp=0)                     # float64
    with pytest.raises(refcomp.ParameterError):
        nnc_levels(np.array([np.nan], np.float32), qp=0)
    with pytest.raises(refcomp.ParameterError, match="overflow"):
        nnc_levels(np.array([1e30], np.float32), qp=-40)
    with pytest.raises(refcomp.ParameterError):
        nnc_levels(np.ones(3, np.float32), qp=0, lambda_scale=-1.0)
    with pytest.raises(refcomp.ParameterError):
        nnc_levels(np.ones(3, np.float32), qp=0, lambda_scale=float("nan"))


# -------------------------------------------------------- weight and tools
def test_nnc_weight_hdf5_round_trip(tmp_path):
    m = refcomp.load("data/digits_cnn.h5")
    from refcomp.compress.nnc import nnc_compress
    out, rep = nnc_compress(m, qp=-20)
    path = tmp_path / "m.h5"
    refcomp.save(out, str(path))
    back = refcomp.load(str(path))
    for (p, l), (_, l2) in zip(out.named_layers(), back.named_layers()):
        for name, w in l.weights.items():
            assert isinstance(w, NNCCoded) and w == l2.weights[name]
            assert np.array_equal(w.dequantize().view(np.uint32),
                                  l2.weights[name].dequantize().view(np.uint32))
    # exact bit account: payload bytes + 32-bit qp per tensor
    total = sum(8 * len(w.payload) + 32 for _, l in out.named_layers()
                for w in l.weights.values())
    assert rep.compressed_bits == total


def test_nnc_weight_dequantize_rule():
    w = np.array([[0.3, -0.7], [1.2, 0.0]], dtype=np.float32)
    c = nnc_quantize(w, qp=-8, dq=False)
    np.testing.assert_array_equal(c.levels, np.round(w / np.float32(0.25)).astype(np.int32))
    np.testing.assert_array_equal(c.dequantize(), np.float32(0.25) * c.levels.astype(np.float32))


def test_cli_compress_nnc(tmp_path):
    out = tmp_path / "o.h5"
    r = subprocess.run([sys.executable, "-m", "refcomp", "compress", "data/digits_cnn.h5",
                        "-o", str(out), "--codec", "nnc", "--qp", "-24", "--quiet"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "bits" in r.stdout and out.exists()
    r = subprocess.run([sys.executable, "-m", "refcomp", "compress", "data/digits_cnn.h5",
                        "-o", str(tmp_path / "p.h5"), "--codec", "nnc", "--qp", "99999"],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "Traceback" not in r.stderr and "qp" in r.stderr


def test_study_method_nnc():
    from refcomp.study.registry import get_method
    meth = get_method("nnc")
    theta = np.random.default_rng(0).standard_normal(300).astype(np.float32) * 0.1
    res = meth.func(theta, 30)
    assert res.decoded.shape == theta.shape and res.decoded.dtype == theta.dtype
    assert res.bits == 8 * len(res.obj.payload) + 32
