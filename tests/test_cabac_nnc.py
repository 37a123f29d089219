"""Interoperability with NNCodec 2.1.3 (the MPEG NNC reference software).

NNCodec runs in its own venv (tools/make_nnc_venv.sh; .ci/run builds it and
sets $REFCOMP_NNC_PYTHON) and is called through tests/_nnc_bridge.py.  When
that venv is unavailable every test here skips with a warning, and pytest's
terminal summary says so (tests/conftest.py).
"""
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import refcomp
from refcomp.coding.cabac import decode_levels, encode_levels
from refcomp.quantize import nnc_levels

import _nnc
from test_cabac import dq_levels


@pytest.fixture(scope="module", autouse=True)
def _reference():
    py, why = _nnc.nnc_python()
    if py is None:
        warnings.warn(why, pytest.PytestWarning)
        pytest.skip(why)


def _model_weights():
    out = []
    for name in ("digits_cnn", "digits_mlp"):
        m = refcomp.load("data/%s.h5" % name)
        for p, l in m.named_layers():
            for wn, w in l.weights.items():
                if isinstance(w, np.ndarray) and w.dtype == np.float32:
                    out.append(("%s/%s/%s" % (name, p, wn), w))
    return out


MODEL_WEIGHTS = _model_weights()


@pytest.mark.parametrize("qp", [-38, -20])
def test_shipped_models_levels_and_bytes(qp):
    # one bridge call per tensor and option: NNCodec's quantLayer, encodeLayer
    # and decodeLayer against refcomp's, on every float32 weight of two models
    for name, w in MODEL_WEIGHTS:
        q = qp if w.ndim >= 2 else qp - 37
        for dq in (True, False):
            ref, used_qp = _nnc.nnc_quantize(w, qp=q, dq=dq)
            assert used_qp == q
            lv = nnc_levels(w, qp=q, dq=dq)
            np.testing.assert_array_equal(lv, ref, err_msg=name)
            data = encode_levels(lv, dq=dq)
            assert data == _nnc.nnc_encode(lv, dq=dq), name
            got, used = _nnc.nnc_decode(data, lv.shape, dq=dq)
            np.testing.assert_array_equal(got, lv, err_msg=name)
            assert used == len(data)


_SHAPES = st.sampled_from([(1,), (9,), (4, 5), (16, 17), (3, 2, 3, 3), (40, 9)])


@settings(max_examples=25, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(_SHAPES, st.integers(0, 2**32 - 1), st.sampled_from([0.3, 2.0, 40.0, 3e4]),
       st.booleans(), st.sampled_from([0, 1, 2]), st.booleans(), st.integers(0, 12))
def test_hypothesis_levels_bytes_match(shape, seed, scale, dq, scan_order, param_opt, unary):
    rng = np.random.default_rng(seed)
    k = np.round(rng.laplace(0, scale, size=shape)).astype(np.int32)
    lv = dq_levels(k, scan_order) if dq else k
    opts = dict(dq=dq, scan_order=scan_order, cabac_unary_length_minus1=unary)
    data = encode_levels(lv, param_opt=param_opt, **opts)
    assert data == _nnc.nnc_encode(lv, param_opt=param_opt, **opts)
    if scan_order == 0:    # NNCodec's decodeLayer reads block scans only with entry points
        got, used = _nnc.nnc_decode(data, shape, **opts)
        np.testing.assert_array_equal(got, lv)
        assert used == len(data)


@settings(max_examples=25, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(_SHAPES, st.integers(0, 2**32 - 1), st.sampled_from([1e-3, 0.05, 1.0, 50.0]),
       st.integers(-60, 0), st.booleans(), st.sampled_from([0, 1]),
       st.sampled_from([0.0, 0.0, 0.25, 1.0, 3.3]))
def test_hypothesis_quantizer_match(shape, seed, scale, qp, dq, scan_order, lam):
    rng = np.random.default_rng(seed)
    w = (rng.standard_normal(shape) * scale).astype(np.float32)
    w[rng.random(shape) < 0.1] = 0.0
    try:
        lv = nnc_levels(w, qp=qp, dq=dq, scan_order=scan_order, lambda_scale=lam)
    except refcomp.ParameterError:
        return          # refcomp refuses int32 overflow; NNCodec would raise qp
    ref, used_qp = _nnc.nnc_quantize(w, qp=qp, dq=dq, scan_order=scan_order, lambda_scale=lam)
    assert used_qp == qp
    np.testing.assert_array_equal(lv, ref)


@pytest.mark.parametrize("lam", [0.5, 2.0])
def test_rate_distortion_quantizers_shipped_weights(lam):
    for name, w in MODEL_WEIGHTS[:8]:
        for dq in (True, False):
            ref, _ = _nnc.nnc_quantize(w, qp=-24, dq=dq, lambda_scale=lam)
            np.testing.assert_array_equal(nnc_levels(w, qp=-24, dq=dq, lambda_scale=lam), ref,
                                          err_msg=name)


def test_decode_nncodec_payload():
    rng = np.random.default_rng(3)
    w = (rng.standard_normal((64, 50)) * 0.05).astype(np.float32)
    lv = nnc_levels(w, qp=-30, dq=True)
    data = _nnc.nnc_encode(lv, dq=True)
    np.testing.assert_array_equal(decode_levels(data, lv.shape, dq=True), lv)
