"""Keras import from the committed golden files (h5py + json only; Keras not needed).

Keras-dependent extras (layers absent from the shipped models) need keras
(the ``frameworks`` extra installs Keras 3 on Python >= 3.11) and are skipped
without it.  Keras runs on the torch backend: this module sets
``KERAS_BACKEND=torch`` before anything imports keras (the variable is read
once, at keras's first import).
"""

import json
import os
import shutil
import zipfile

os.environ["KERAS_BACKEND"] = "torch"      # before any keras import (no TensorFlow here)

import h5py
import numpy as np
import pytest

import refcomp
from refcomp import convert
from refcomp._errors import FormatError
from refcomp.io import keras as rk
from refcomp.testing import assert_bits_equal
from refcomp.testing.framework_bound import framework_error_bound

from _io_helpers import (DATA, G, MODELS, assert_same_model,
                         ulps_tolerance, xte)  # noqa: F401 (fixture)



def keras_golden(model):
    with h5py.File(G / f"{model}_outputs.h5", "r") as f:
        return f["keras"][()]


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("kind", ["legacy", "weights"])
def test_import_equals_shipped_model_and_matches_keras(model, kind, xte):
    path = G / (f"{model}_legacy.h5" if kind == "legacy" else f"{model}.weights.h5")
    km = rk.load(path)
    shipped = refcomp.load(DATA / f"{model}.h5")
    # Keras -> refcomp (NCHW) recovers the shipped weights bit for bit (the LSTM was
    # built with b_hh = 0, so Keras's single bias loses nothing).
    assert_same_model(km, shipped)
    y = km(xte)
    assert_bits_equal(y, shipped(xte))
    g = keras_golden(model)
    assert np.array_equal(np.argmax(y, 1), np.argmax(g, 1))
    assert np.max(np.abs(y - g)) <= ulps_tolerance(y)


@pytest.mark.parametrize("model", ["digits_cnn", "digits_resnet"])
def test_nhwc_layout_matches_keras(model, xte):
    km = rk.load(G / f"{model}_legacy.h5", layout="NHWC")
    assert any(l.attrs.get("layout") == "NHWC" for _, l in km.named_layers())
    y = km(xte)
    g = keras_golden(model)
    assert np.array_equal(np.argmax(y, 1), np.argmax(g, 1))
    assert np.max(np.abs(y - g)) <= ulps_tolerance(y)
    # NCHW and NHWC imports are different arrangements of the same arithmetic
    assert np.max(np.abs(y - rk.load(G / f"{model}_legacy.h5")(xte))) <= ulps_tolerance(y)


def test_keras_zip(tmp_path, xte):
    p = tmp_path / "m.keras"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("config.json", (G / "digits_gru.config.json").read_text())
        z.writestr("metadata.json", json.dumps({"keras_version": "3.15.1"}))
        z.write(G / "digits_gru.weights.h5", "model.weights.h5")
    assert_same_model(rk.load(p), refcomp.load(DATA / "digits_gru.h5"))


def test_weights_only_needs_config(tmp_path):
    shutil.copy(G / "digits_mlp.weights.h5", tmp_path / "m.weights.h5")
    with pytest.raises(FormatError, match="needs its model config"):
        rk.load(tmp_path / "m.weights.h5")
    cfg = json.loads((G / "digits_mlp.config.json").read_text())
    m = rk.load(tmp_path / "m.weights.h5", config=cfg)
    assert_same_model(m, refcomp.load(DATA / "digits_mlp.h5"))


def _tf2_copy(src, dst):
    """Rewrite a legacy file with tf.keras 2 weight names (``kernel:0``) and version."""
    with h5py.File(src, "r") as fi, h5py.File(dst, "w") as fo:
        for k, v in fi.attrs.items():
            fo.attrs[k] = v
        fo.attrs["keras_version"] = "2.15.0"
        mw = fo.create_group("model_weights")
        for k, v in fi["model_weights"].attrs.items():
            mw.attrs[k] = v
        for lname in fi["model_weights"]:
            gi = fi["model_weights"][lname]
            go = mw.create_group(lname)
            names = []
            for wn in gi.attrs["weight_names"]:
                wn = wn.decode() if isinstance(wn, bytes) else wn
                new = f"{lname}/{wn.split('/')[-1]}:0"
                go.create_dataset(new, data=gi[wn][()])
                names.append(new.encode())
            go.attrs["weight_names"] = np.array(names, dtype="S") if names else \
                np.zeros(0, "S1")


def test_tf_keras2_naming(tmp_path):
    _tf2_copy(G / "digits_lstm_legacy.h5", tmp_path / "tf2.h5")
    m = rk.load(tmp_path / "tf2.h5")
    assert_same_model(m, refcomp.load(DATA / "digits_lstm.h5"))
    assert m.metadata["keras_version"] == "2.15.0"


def test_legacy_weights_only_root(tmp_path):
    with h5py.File(G / "digits_mlp_legacy.h5", "r") as fi, \
            h5py.File(tmp_path / "w.h5", "w") as fo:
        for k, v in fi["model_weights"].attrs.items():
            fo.attrs[k] = v
        for name in fi["model_weights"]:
            fi.copy(fi["model_weights"][name], fo, name=name)
    m = rk.load(tmp_path / "w.h5", config=str(G / "digits_mlp.config.json"))
    assert_same_model(m, refcomp.load(DATA / "digits_mlp.h5"))


# -- Keras-layout arrays -> refcomp -> Keras-layout arrays -----------------------------
def _legacy_arrays(model):
    out = {}
    with h5py.File(G / f"{model}_legacy.h5", "r") as f:
        mw = f["model_weights"]
        for lname in mw:
            names = [n.decode() if isinstance(n, bytes) else n
                     for n in mw[lname].attrs["weight_names"]]
            if names:
                out[lname] = [mw[lname][n][()] for n in names]
    return out


def test_keras_layout_round_trip_bit_exact():
    for model in MODELS:
        arrays = _legacy_arrays(model)
        m = rk.load(G / f"{model}_legacy.h5")
        by_name = {l.name: l for _, l in m.named_layers()}
        for lname, ws in arrays.items():
            layer = by_name[lname]
            if layer.kind == "dense":
                if lname == "dense1" and model == "digits_cnn":
                    back = [convert.dense_to_keras_after_flatten(layer.w("W"), (2, 2, 64))]
                elif lname == "logits" and model == "digits_resnet":
                    back = [convert.dense_to_keras_after_flatten(layer.w("W"), (4, 4, 16))]
                else:
                    back = [convert.dense_to_keras(layer.w("W"))[0]]
                back.append(layer.w("b"))
            elif layer.kind == "conv2d":
                back = [convert.conv2d_to_keras(layer.w("W")), layer.w("b")]
            elif layer.kind == "lstm":
                back = list(convert.lstm_to_keras(*(layer.w(k) for k in
                                                    ("W_ih", "W_hh", "b_ih", "b_hh"))))
            else:
                back = list(convert.gru_to_keras(*(layer.w(k) for k in
                                                   ("W_ih", "W_hh", "b_ih", "b_hh")),
                                                 reset_after=True))
            assert len(back) == len(ws)
            for a, b in zip(back, ws):
                assert_bits_equal(a, b)


# -- bad inputs -------------------------------------------------------------------------
def _with_config(tmp_path, model, edit):
    """A copy of a legacy file whose model_config was changed by ``edit(cfg)``."""
    dst = tmp_path / f"{model}_edited.h5"
    shutil.copy(G / f"{model}_legacy.h5", dst)
    with h5py.File(dst, "r+") as f:
        cfg = json.loads(f.attrs["model_config"])
        edit(cfg)
        f.attrs["model_config"] = json.dumps(cfg)
    return dst


def test_unsupported_layer_names_layer_and_class(tmp_path):
    def edit(cfg):
        cfg["config"]["layers"][2]["class_name"] = "LayerNormalization"
    p = _with_config(tmp_path, "digits_mlp", edit)
    with pytest.raises(FormatError, match=r"'dense1' of class 'LayerNormalization'"):
        rk.load(p)


@pytest.mark.parametrize("option,value,match", [
    ("recurrent_activation", "hard_sigmoid", "recurrent_activation"),
    ("return_state", True, "return_state"),
    ("go_backwards", True, "go_backwards"),
])
def test_unsupported_rnn_options(tmp_path, option, value, match):
    def edit(cfg):
        cfg["config"]["layers"][1]["config"][option] = value
    with pytest.raises(FormatError, match=match):
        rk.load(_with_config(tmp_path, "digits_lstm", edit))


def test_unsupported_activation_and_channels_first(tmp_path):
    def act(cfg):
        cfg["config"]["layers"][2]["config"]["activation"] = "gelu"
    with pytest.raises(FormatError, match="gelu"):
        rk.load(_with_config(tmp_path, "digits_mlp", act))

    def cf(cfg):
        cfg["config"]["layers"][2]["config"]["data_format"] = "channels_first"
    with pytest.raises(FormatError, match="channels_first"):
        rk.load(_with_config(tmp_path, "digits_cnn", cf))


def test_projection_shortcut_rejected(tmp_path):
    def edit(cfg):
        layers = cfg["config"]["layers"]
        add = next(l for l in layers if l["class_name"] == "Add")
        conv2 = next(l for l in layers if l["config"]["name"] == "block1_conv2")
        # conv2 reads the stem; the Add joins conv1(stem) and conv2(stem): no identity path
        conv2["inbound_nodes"][0]["args"][0]["config"]["keras_history"][0] = "stem"
        add["inbound_nodes"][0]["args"][0][0]["config"]["keras_history"][0] = "block1_conv1"
    with pytest.raises(FormatError, match="identity"):
        rk.load(_with_config(tmp_path, "digits_resnet", edit))


def test_truncated_and_garbage_files(tmp_path):
    data = (G / "digits_cnn_legacy.h5").read_bytes()
    (tmp_path / "t.h5").write_bytes(data[: len(data) // 2])
    with pytest.raises(FormatError):
        rk.load(tmp_path / "t.h5")
    (tmp_path / "g.h5").write_bytes(b"not hdf5 at all")
    with pytest.raises(FormatError, match="not a readable Keras file"):
        rk.load(tmp_path / "g.h5")
    with pytest.raises(FormatError, match="no such file"):
        rk.load(tmp_path / "missing.h5")


def test_weight_count_mismatch(tmp_path):
    dst = tmp_path / "w.h5"
    shutil.copy(G / "digits_mlp_legacy.h5", dst)
    with h5py.File(dst, "r+") as f:
        g = f["model_weights"]["dense1"]
        names = [n if isinstance(n, bytes) else n.encode() for n in g.attrs["weight_names"]]
        g.attrs["weight_names"] = np.array(names + names[-1:], dtype="S")
    with pytest.raises(FormatError, match="'dense1' .Dense.: 3 weight arrays"):
        rk.load(dst)
    with h5py.File(dst, "r+") as f:
        f["model_weights"]["dense1"].attrs["weight_names"] = np.array([b"dense1/kernel:0"])
    with pytest.raises(FormatError, match="listed in weight_names but missing"):
        rk.load(dst)


def test_cli_convert_writes_nothing_on_error(tmp_path):
    from refcomp.cli import main

    def edit(cfg):
        cfg["config"]["layers"][1]["class_name"] = "Conv1D"
    bad = _with_config(tmp_path, "digits_mlp", edit)
    out = tmp_path / "out.h5"
    assert main(["convert", str(bad), str(out)]) == 1
    assert not out.exists() and not [p for p in os.listdir(tmp_path) if p.startswith(".refcomp")]
    assert main(["convert", str(G / "digits_cnn_legacy.h5"), str(out)]) == 0
    assert_same_model(refcomp.load(out), refcomp.load(DATA / "digits_cnn.h5"))


# -- layers not in the shipped models (need keras to create the files) -----------------
def test_more_layers_against_keras(tmp_path):
    keras = pytest.importorskip("keras")
    assert keras.backend.backend() == "torch", "keras was imported before KERAS_BACKEND was set"
    from keras import layers as K
    rng = np.random.default_rng(0)
    inp = keras.Input((8, 8, 2))
    h = K.Conv2D(4, 3, strides=2, padding="same", activation="tanh")(inp)
    h = K.BatchNormalization(epsilon=1e-3)(h)
    h = K.AveragePooling2D(2, strides=1, padding="same")(h)
    h = K.MaxPooling2D(2)(h)
    h = K.Flatten()(h)
    h = K.Dropout(0.5)(h)
    h = K.Dense(6, activation="sigmoid")(h)
    h = K.Softmax()(h)
    m1 = keras.Model(inp, h)
    bn = m1.layers[2]
    bn.set_weights([rng.uniform(0.5, 2, 4).astype(np.float32) for _ in range(4)])
    inp2 = keras.Input((5, 3))
    s = K.SimpleRNN(7, return_sequences=True)(inp2)
    s = K.GRU(6, reset_after=False, return_sequences=True)(s)
    s = K.LSTM(5)(s)
    s = K.Dense(4, activation="softmax")(s)
    m2 = keras.Model(inp2, s)
    for km, shape in ((m1, (8, 8, 2)), (m2, (5, 3))):
        x = rng.standard_normal((16,) + shape).astype(np.float32)
        km.save(tmp_path / "k.h5")
        ref = keras.ops.convert_to_numpy(km(x, training=False))
        for layout in ("NHWC", "NCHW"):
            m = rk.load(tmp_path / "k.h5", layout=layout)
            xin = np.ascontiguousarray(x.transpose(0, 3, 1, 2)) if (layout == "NCHW" and
                                                                    x.ndim == 4) else x
            # Tolerance: framework_error_bound derives, per output, twice the first-order
            # float32 error bound (gamma_{n+1} sum|w x| per dot product, one rounding per
            # elementwise op, exp/tanh/sigmoid within 4 ulps) propagated through the layers:
            # Keras and refcomp each lie within half of it from the exact result.
            assert np.all(np.abs(m(xin) - ref) <= framework_error_bound(m, xin))


def test_weights_file_without_name_attributes(tmp_path):
    """Keras < 3.6 wrote no ``name`` on ``vars``: groups are found by Keras's
    snake_case naming in layer order (input_layer, conv2d, conv2d_1, ...)."""
    dst = tmp_path / "old.weights.h5"
    shutil.copy(G / "digits_resnet.weights.h5", dst)
    with h5py.File(dst, "r+") as f:
        def strip(name, obj):
            if "name" in obj.attrs:
                del obj.attrs["name"]
        f.visititems(strip)
    m = rk.load(dst, config=str(G / "digits_resnet.config.json"))
    assert_same_model(m, refcomp.load(DATA / "digits_resnet.h5"))
