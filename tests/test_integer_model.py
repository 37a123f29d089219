"""quantize_model on the shipped models: the TFLite int8 spec, the hook path equals the pure
integer pipeline (exact boundary), HDF5 round trip, refusals."""

import json
import subprocess
import sys

import numpy as np
import pytest

import refcomp
from refcomp import DTypeError, FormatError, Layer, Model, ParameterError, ShapeError
from refcomp.data import load_split
from refcomp.integer import IntegerLinear, quantize_model, run, run_codes
from refcomp.integer.requantize import MODES
from refcomp.testing import assert_bits_equal


@pytest.fixture(scope="module")
def data():
    xc, _ = load_split("calib")
    xt, yt = load_split("test")
    return xc, xt[:120], yt[:120]


@pytest.fixture(scope="module")
def models():
    return {n: refcomp.load(f"data/digits_{n}.h5") for n in ("mlp", "cnn", "resnet")}


def test_spec_of_the_quantized_cnn(models, data):
    qm = quantize_model(models["cnn"], data[0])
    meta = qm.metadata["integer"]
    assert meta["mode"] == "tflite_double" and meta["act_dtype"] == "int8"
    for path, layer in qm.named_layers():
        if layer.kind in ("dense", "conv2d"):
            w = layer.weights["W"]
            assert isinstance(w, IntegerLinear) and "b" not in layer.weights
            assert w.codes.dtype == np.int8 and w.codes.min() >= -127      # narrow range
            assert w.w_scale.shape == (w.codes.shape[0],)                 # per output channel
            assert w.bias.dtype == np.int32
            orig = models["cnn"].get_layer(path)
            # weight scale max|W_c| / 127 rounded to float32
            amax = np.abs(orig.w("W").reshape(w.codes.shape[0], -1)).max(axis=1)
            assert np.array_equal(w.w_scale, (amax.astype(np.float64) / 127).astype(np.float32))
            # int32 bias of scale fl32(s_in * s_w)
            bs = np.float32(w.in_scale) * w.w_scale
            assert np.all(np.abs(w.bias * bs.astype(np.float64) - orig.w("b")) <= bs / 2 + 1e-12)
    # fused ReLU: the conv followed by relu clamps at its output zero point
    w1 = qm.get_layer("1").weights["W"]
    assert w1.act_min == w1.out_zero_point and w1.act_max == 127
    assert qm.get_layer("9").weights["W"].act_min == -128              # logits: no clamp


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_hook_path_equals_integer_pipeline(models, data, name, mode):
    """The float forward pass through IntegerLinear hooks (quantize -> int -> dequantize at
    every layer boundary) equals the pure integer pipeline bit for bit."""
    xc, xt, yt = data
    qm = quantize_model(models[name], xc, mode=mode)
    assert_bits_equal(qm(xt), run(qm, xt))
    acc_f = np.mean(np.argmax(models[name](xt), 1) == yt)
    acc_q = np.mean(np.argmax(run(qm, xt), 1) == yt)
    assert acc_q >= acc_f - 0.02


def test_resnet_integer_pipeline_and_float_adds(models, data):
    xc, xt, yt = data
    qm = quantize_model(models["resnet"], xc, mode="tflite_single")
    assert set(qm.metadata["integer"]["add"]) == {"3", "5"}
    q, s, z = run_codes(qm, xt)
    assert q.dtype == np.int8 and (s, z) == (qm.metadata["integer"]["output"]["scale"],
                                             qm.metadata["integer"]["output"]["zero_point"])
    # The hook path adds the two dequantized branches in float: not the integer ADD, so the
    # logits may differ; the integer pipeline is the definition.
    assert np.mean(np.argmax(run(qm, xt), 1) == yt) >= 0.95


@pytest.mark.parametrize("calibration", ["percentile", "entropy", "mse"])
def test_other_calibrations(models, data, calibration):
    xc, xt, yt = data
    qm = quantize_model(models["mlp"], xc[:64], calibration=calibration,
                        weights="per_tensor_symmetric")
    assert qm.get_layer("1").weights["W"].w_scale.shape == (1,)
    assert np.mean(np.argmax(run(qm, xt), 1) == yt) > 0.8


def test_hdf5_round_trip(models, data, tmp_path):
    xc, xt, _ = data
    for mode in ("tflite_double", "torch"):
        qm = quantize_model(models["cnn"], xc, mode=mode)
        path = tmp_path / f"cnn_{mode}.h5"
        refcomp.save(qm, path)
        back = refcomp.load(path)
        assert back.metadata["integer"] == json.loads(json.dumps(qm.metadata["integer"]))
        for (p, a), (_, b) in zip(qm.named_layers(), back.named_layers()):
            if a.kind in ("dense", "conv2d"):
                wa, wb = a.weights["W"], b.weights["W"]
                for f in ("codes", "w_scale", "bias", "bias_float"):
                    va, vb = getattr(wa, f), getattr(wb, f)
                    assert (va is None and vb is None) or np.array_equal(va, vb)
                assert (wa.in_scale, wa.in_zero_point, wa.out_scale, wa.out_zero_point,
                        wa.act_min, wa.act_max, wa.mode) == \
                       (wb.in_scale, wb.in_zero_point, wb.out_scale, wb.out_zero_point,
                        wb.act_min, wb.act_max, wb.mode)
        assert_bits_equal(run(back, xt), run(qm, xt))
    # a fresh interpreter loads the file without importing refcomp.integer first
    code = ("import sys, refcomp; m = refcomp.load(sys.argv[1]); "
            "print(type(m.layers[1].weights['W']).__name__)")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "cnn_torch.h5")],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "IntegerLinear"


def test_quantize_model_refusals(models, data):
    xc = data[0]
    lstm = refcomp.load("data/digits_lstm.h5")
    with pytest.raises(ParameterError, match="layer 0 \\(lstm 'rnn'\\) is a recurrent layer"):
        quantize_model(lstm, xc)
    with pytest.raises(ParameterError, match="unsupported bit width"):
        quantize_model(models["mlp"], xc, bits=4)
    with pytest.raises(ShapeError, match="x_calib"):
        quantize_model(models["mlp"], xc[:, :4])
    with pytest.raises(DTypeError, match="x_calib"):
        quantize_model(models["mlp"], xc.astype(np.float64))
    with pytest.raises(ParameterError, match="calibration"):
        quantize_model(models["mlp"], xc, calibration="kl")
    with pytest.raises(ParameterError, match="mode"):
        quantize_model(models["mlp"], xc, mode="tflite")
    bn = Model([Layer("flatten"), Layer("batch_norm", weights={
        k: np.ones(64, np.float32) for k in ("gamma", "beta", "mean", "var")})],
        input_shape=(8, 8))
    with pytest.raises(ParameterError, match="fold batch normalization"):
        quantize_model(bn, xc)
    sm = Model(list(models["mlp"].layers) + [Layer("activation", attrs={"function": "softmax"})],
               input_shape=(8, 8))
    with pytest.raises(ParameterError, match="softmax"):
        quantize_model(sm, xc)


def test_run_refusals(models, data):
    xc, xt, _ = data
    with pytest.raises(FormatError, match="not an integer model"):
        run(models["mlp"], xt)
    qm = quantize_model(models["mlp"], xc)
    with pytest.raises(ShapeError):
        run(qm, xt[:, :4])
    with pytest.raises(DTypeError):
        run(qm, xt.astype(np.float64))
    bad = xt.copy()
    bad[0, 0, 0] = np.inf
    with pytest.raises(ParameterError, match="non-finite"):
        run(qm, bad)
    # a layer receiving parameters it was not made for
    mixed = qm.replace_weights({("3", "W"): models["mlp"].get_layer("3").weights["W"]})
    with pytest.raises(FormatError, match="not quantized"):
        run(mixed, xt)
