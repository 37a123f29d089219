"""Keras 3 (torch backend) recurrent layers exported by ``model.export(format="onnx")``:
unrolled LSTM / GRU / SimpleRNN cells imported as one refcomp layer each, matched against ONNX
Runtime and Keras itself within refcomp's derived bound; the exports refcomp does not
model are refused by name."""

import os
import warnings

import numpy as np
import pytest

pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

from refcomp import FormatError  # noqa: E402
from refcomp.io import onnx as ronnx  # noqa: E402
from refcomp.testing.framework_bound import framework_error_bound  # noqa: E402

if keras.backend.backend() != "torch":
    pytest.skip("keras was imported with another backend", allow_module_level=True)

L = keras.layers

MODELS = {
    "lstm-last": (lambda: [L.LSTM(3), L.Dense(2)], [("lstm", False), ("dense", None)]),
    "lstm-seq": (lambda: [L.LSTM(3, return_sequences=True)], [("lstm", True)]),
    "gru-last": (lambda: [L.GRU(3), L.Dense(2)], [("gru", False), ("dense", None)]),
    "gru-seq": (lambda: [L.GRU(4, return_sequences=True), L.Flatten(), L.Dense(2)],
                [("gru", True), ("flatten", None), ("dense", None)]),
    "stacked": (lambda: [L.LSTM(4, return_sequences=True), L.GRU(3)],
                [("lstm", True), ("gru", False)]),
    "no-bias": (lambda: [L.GRU(3, use_bias=False, return_sequences=True),
                         L.LSTM(2, use_bias=False)], [("gru", True), ("lstm", False)]),
    "simple-last": (lambda: [L.SimpleRNN(3), L.Dense(2)],
                    [("simple_rnn", False), ("dense", None)]),
    "simple-seq": (lambda: [L.SimpleRNN(3, return_sequences=True, activation="relu"),
                            L.SimpleRNN(2, use_bias=False)],
                   [("simple_rnn", True), ("simple_rnn", False)]),
    "backwards": (lambda: [L.LSTM(3, go_backwards=True), L.Dense(2)],
                  [("lstm", False), ("dense", None)]),
    "bidirectional-lstm": (lambda: [L.Bidirectional(L.LSTM(3))], [("lstm", False)]),
    "bidirectional-gru": (lambda: [L.LSTM(4, return_sequences=True),
                                   L.Bidirectional(L.GRU(3, go_backwards=False))],
                          [("lstm", True), ("gru", False)]),
    "bidirectional-seq": (lambda: [L.Bidirectional(L.GRU(3, return_sequences=True)),
                                   L.Flatten(), L.Dense(2)],
                          [("gru", True), ("flatten", None), ("dense", None)]),
    "gru-reset-before": (lambda: [L.GRU(4, reset_after=False, return_sequences=True),
                                  L.GRU(3, reset_after=False, use_bias=False)],
                         [("gru", True), ("gru", False)]),
    "mixed": (lambda: [L.SimpleRNN(4, return_sequences=True), L.LSTM(3, return_sequences=True),
                       L.Flatten(), L.Dense(2)],
              [("simple_rnn", True), ("lstm", True), ("flatten", None), ("dense", None)]),
}


def _export(tmp_path, layers, seed=3):
    keras.utils.set_random_seed(seed)
    m = keras.Sequential([keras.Input((5, 4))] + layers)
    x = np.random.default_rng(seed).standard_normal((3, 5, 4)).astype(np.float32)
    m(x)
    path = tmp_path / "k.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m.export(str(path), format="onnx", verbose=False)
    return m, x, path


@pytest.mark.parametrize("name", sorted(MODELS))
def test_keras_recurrent_onnx_export_round_trip(tmp_path, name):
    make, kinds = MODELS[name]
    m, x, path = _export(tmp_path, make())
    model = ronnx.load(path)
    assert [(la.kind, la.attrs.get("return_sequences")) for la in model.layers] == kinds
    directions = [la.attrs.get("direction") for la in model.layers
                  if la.kind in ("lstm", "gru", "simple_rnn")]
    assert directions[-1] == {"backwards": "reverse", "bidirectional-lstm": "bidirectional",
                              "bidirectional-gru": "bidirectional",
                              "bidirectional-seq": "bidirectional"}.get(name, "forward")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    want = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    got = model(x)
    assert got.shape == want.shape
    bound = framework_error_bound(model, x)
    assert np.all(np.abs(got.astype(np.float64) - want) <= bound)
    ref = keras.ops.convert_to_numpy(m.predict(x, verbose=0))
    assert np.all(np.abs(got.astype(np.float64) - ref) <= bound)
    # the weights are Keras's own, permuted exactly (refcomp.convert)
    from refcomp import convert
    rec, imported = [], []
    for k in m.layers:
        if isinstance(k, L.Bidirectional):
            rec += [(k.forward_layer, ""), (k.backward_layer, "_reverse")]
        elif isinstance(k, (L.LSTM, L.GRU, L.SimpleRNN)):
            rec.append((k, ""))
    for la in model.layers:
        if la.kind in ("lstm", "gru", "simple_rnn"):
            imported += [la, la] if la.attrs["direction"] == "bidirectional" else [la]
    assert len(rec) == len(imported)
    for (k, suffix), r in zip(rec, imported):
        w = [np.asarray(keras.ops.convert_to_numpy(v)) for v in k.weights]
        if r.attrs["direction"] != "bidirectional":
            assert r.attrs["direction"] == ("reverse" if k.go_backwards else "forward")
        if r.kind == "simple_rnn":
            want_w = [w[0].T, w[1].T, w[2] if len(w) > 2 else None]
            assert r.attrs["activation"] == k.activation.__name__
        elif r.kind == "lstm":
            want_w = convert.lstm_from_keras(*w)
        else:
            want_w = convert.gru_from_keras(*w, reset_after=k.reset_after)
            assert r.attrs["reset_after"] == k.reset_after
        for n, v in zip(("W_ih", "W_hh", "b_ih"), want_w):
            n += suffix
            assert (v is None and r.w(n) is None) or np.array_equal(r.w(n), v)


@pytest.mark.parametrize("name,layers,match", [
    ("backwards_sequence", lambda: [L.LSTM(3, go_backwards=True, return_sequences=True)],
     r"graph output .* time-reversed sequence"),
    ("simple_rnn_backwards", lambda: [L.SimpleRNN(3, go_backwards=True)], r"op ReduceMax"),
    ("relu_cell", lambda: [L.LSTM(3, activation="relu")], r"op Mul\).*not the last state"),
])
def test_keras_recurrent_exports_not_modelled_are_refused_by_name(
        tmp_path, name, layers, match):
    _, _, path = _export(tmp_path, layers())
    with pytest.raises(FormatError, match=match if match.startswith("graph") else
                       r"node '[^']*' \(" + match):
        ronnx.load(path)
