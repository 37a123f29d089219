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
from refcomp.compress.nnc import nnc_compress
from refcomp.quantize import NNCCoded, nnc_levels, nnc_quantize

import _nnc
from test_cabac import dq_levels


@pytest.fixture(scope="module", autouse=True)
def _reference():
    py, why = _nnc.nnc_python()
    if py is None:
        warnings.warn(why, pytest.PytestWarning)
        pytest.skip(why)


def _model_weights(names=("digits_cnn", "digits_mlp")):
    out = []
    for name in names:
        m = refcomp.load("data/%s.h5" % name)
        for p, l in m.named_layers():
            for wn, w in l.weights.items():
                if isinstance(w, np.ndarray) and w.dtype == np.float32:
                    out.append(("%s/%s/%s" % (name, p, wn), w))
    return out


MODEL_WEIGHTS = _model_weights()


def _largest_of_each(names):
    # per model, its largest tensor of each rank (1-D ones are biases: the non-weight qp)
    picked = []
    for name in names:
        ws = _model_weights((name,))
        for nd in sorted({w.ndim for _, w in ws}):
            picked.append(max((t for t in ws if t[1].ndim == nd), key=lambda t: t[1].size))
    return picked


#: digits_lstm's W_hh (256, 64) and b_hh, digits_gru's W_hh (192, 64) and b_hh,
#: digits_resnet's conv W (16, 16, 3, 3), dense W (10, 256) and a conv bias: seven tensors,
#: two bridge processes per qp (tests/_nnc.call_batch).
MORE_WEIGHTS = _largest_of_each(("digits_lstm", "digits_gru", "digits_resnet"))


def _check_levels_and_bytes(weights, qp):
    # NNCodec's quantLayer, encodeLayer and decodeLayer against refcomp's on each tensor
    # (ndim >= 2 at qp, 1-D at qp - 37: NNCodec's default non-weight qp -75 for qp -38),
    # plain and dependent; two bridge processes in all (tests/_nnc.call_batch)
    cases = [(name, w, qp if w.ndim >= 2 else qp - 37, dq)
             for name, w in weights for dq in (True, False)]
    refs = _nnc.call_batch([_nnc.quant_item(w, qp=q, dq=dq) for _, w, q, dq in cases])
    mine = []
    for (name, w, q, dq), (reply, ref) in zip(cases, refs):
        assert reply["qp"] == q, name
        lv = nnc_levels(w, qp=q, dq=dq)
        np.testing.assert_array_equal(lv, ref, err_msg="%s dq=%s" % (name, dq))
        mine.append((lv, encode_levels(lv, dq=dq)))
    items = []
    for (_, _, _, dq), (lv, data) in zip(cases, mine):
        items += [_nnc.encode_item(lv, dq=dq), _nnc.decode_item(data, lv.shape, dq=dq)]
    out = _nnc.call_batch(items)
    for i, ((name, _, _, dq), (lv, data)) in enumerate(zip(cases, mine)):
        assert out[2 * i][1] == data, "%s dq=%s" % (name, dq)
        reply, got = out[2 * i + 1]
        np.testing.assert_array_equal(got, lv, err_msg="%s dq=%s" % (name, dq))
        assert reply["bytes_read"] == len(data)


@pytest.mark.parametrize("qp", [-38, -20])
def test_shipped_models_levels_and_bytes(qp):
    """Every float32 weight of digits_cnn and digits_mlp: NNCodec's quantLayer gives
    refcomp's levels, encodeLayer refcomp's bytes, decodeLayer reads refcomp's payload back
    to the levels, consuming all of it."""
    _check_levels_and_bytes(MODEL_WEIGHTS, qp)


@pytest.mark.parametrize("qp", [-38, -20])
def test_recurrent_and_residual_models_levels_and_bytes(qp):
    """The same checks on digits_lstm, digits_gru and digits_resnet (MORE_WEIGHTS)."""
    _check_levels_and_bytes(MORE_WEIGHTS, qp)


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
    cases = [(name, w, dq) for name, w in MODEL_WEIGHTS[:8] for dq in (True, False)]
    refs = _nnc.call_batch([_nnc.quant_item(w, qp=-24, dq=dq, lambda_scale=lam)
                            for _, w, dq in cases])
    for (name, w, dq), (_, ref) in zip(cases, refs):
        np.testing.assert_array_equal(nnc_levels(w, qp=-24, dq=dq, lambda_scale=lam), ref,
                                      err_msg=name)


def test_qp_density_and_large_block_scans():
    """qp_density 0, 1, 3 (the step's other granularities) with block scans 3 and 4 (32 and
    64 square; 70 rows make several block rows): NNCodec's quantLayer (URQ, and the trellis
    at lambda_scale 0 and 1) gives refcomp's levels, encodeLayer refcomp's bytes, and
    dequantLayer the bits of NNCCoded.dequantize() (refcomp decoding its own payload).
    NNCodec's decodeLayer reads block scans only with entry points, so it is not run here."""
    rng = np.random.default_rng(25)
    w = rng.laplace(0.0, 0.03, (70, 90)).astype(np.float32)
    w[rng.random(w.shape) < 0.2] = 0.0
    cases = [(d, -(7 << d) - 1, scan, dq, lam) for d in (0, 1, 3) for scan in (3, 4)
             for dq, lam in ((False, 0.0), (True, 0.0), (True, 1.0))]
    refs = _nnc.call_batch([_nnc.quant_item(w, qp=qp, qp_density=d, dq=dq, lambda_scale=lam,
                                            scan_order=scan)
                            for d, qp, scan, dq, lam in cases])
    coded = []
    for case, (reply, ref) in zip(cases, refs):
        d, qp, scan, dq, lam = case
        assert reply["qp"] == qp
        c = nnc_quantize(w, qp=qp, qp_density=d, dq=dq, scan_order=scan, lambda_scale=lam)
        np.testing.assert_array_equal(c.levels, ref, err_msg=str(case))
        back = NNCCoded(c.payload, w.shape, qp=qp, qp_density=d, dq=dq, scan_order=scan)
        np.testing.assert_array_equal(back.levels, c.levels, err_msg=str(case))
        coded.append(back)
    items = []
    for (d, qp, scan, dq, _), c in zip(cases, coded):
        items += [_nnc.encode_item(c.levels, dq=dq, scan_order=scan),
                  _nnc.dequant_item(c.levels, qp=qp, qp_density=d, scan_order=scan)]
    out = _nnc.call_batch(items)
    for i, (case, c) in enumerate(zip(cases, coded)):
        assert out[2 * i][1] == c.payload, str(case)
        deq = out[2 * i + 1][1]
        assert deq.dtype == np.float32 and deq.shape == w.shape
        assert np.array_equal(c.dequantize().view(np.uint32), deq.view(np.uint32)), str(case)


def test_dequantize_matches_nncodec_decompress():
    """NNCodec's whole compress + decompress of digits_gru's tensors at qp -30 (its other
    defaults: non-weight qp -75, dependent quantization) gives, bit for bit, the tensors of
    refcomp's nnc_compress at the same qp (NNCCoded.dequantize())."""
    m = refcomp.load("data/digits_gru.h5")
    params, names = {}, {}
    for i, (p, l) in enumerate(m.named_layers()):
        for wn, w in l.weights.items():
            params["t%d_%s" % (i, wn)] = w
            names["t%d_%s" % (i, wn)] = (p, wn)
    bitstream, dec = _nnc.nnc_compress(params, qp=-30)
    assert sorted(dec) == sorted(names)
    out, rep = nnc_compress(m, qp=-30)
    for k, (p, wn) in names.items():
        c = out.get_layer(p).weights[wn]
        assert isinstance(c, NNCCoded) and c.qp == (-30 if c.levels.ndim >= 2 else -75)
        mine = c.dequantize()
        assert mine.dtype == dec[k].dtype == np.float32 and mine.shape == dec[k].shape
        assert np.array_equal(mine.view(np.uint32), dec[k].view(np.uint32)), k
    # the same payloads: NNCodec's bitstream is refcomp's plus its high-level syntax
    assert len(bitstream) > (rep.compressed_bits + 7) // 8


def test_decode_nncodec_payload():
    rng = np.random.default_rng(3)
    w = (rng.standard_normal((64, 50)) * 0.05).astype(np.float32)
    lv = nnc_levels(w, qp=-30, dq=True)
    data = _nnc.nnc_encode(lv, dq=True)
    np.testing.assert_array_equal(decode_levels(data, lv.shape, dq=True), lv)
