"""Build refcomp's shipped data, reference models and golden framework outputs.

Run from the repository root (CPU only, a few minutes)::

    /work/venv/bin/python data/build.py            # everything
    /work/venv/bin/python data/build.py --check    # rebuild in a temp dir, compare bytes

Needs scikit-learn (the data), torch==2.13.0 (training, ONNX export), keras 3
(exports run with KERAS_BACKEND=torch), onnx and onnxruntime: the ``build``
extra, ``pip install -e ".[build]"``, pins the versions data/README.md records.  Determinism:
fixed seeds, ``torch.use_deterministic_algorithms(True)``, one thread.
See data/README.md for the split rule, accuracies and reproducibility.
"""

import argparse
import filecmp
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import refcomp  # noqa: E402
from refcomp import convert  # noqa: E402

SPLIT_SEED = 20240917          # numpy default_rng seed of the split permutation
N_TEST, N_CALIB = 360, 200
TRAIN_SEED = 1234              # torch.manual_seed before building/training each model
MODELS = ("digits_mlp", "digits_cnn", "digits_lstm", "digits_gru", "digits_resnet")
HPARAMS = {  # epochs, learning rate (Adam), batch size
    "digits_mlp": (60, 1e-3, 32),
    "digits_cnn": (40, 1e-3, 32),
    "digits_lstm": (120, 3e-3, 32),
    "digits_gru": (120, 3e-3, 32),
    "digits_resnet": (40, 1e-3, 32),
}


# -- data ----------------------------------------------------------------------------
def make_splits():
    """sklearn digits / 16 as float32 (N, 8, 8); seeded permutation, first 360 test,
    next 200 calib, rest train; indices sorted within each split."""
    from sklearn.datasets import load_digits
    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)      # exact: values k/16, k in 0..16
    y = d.target.astype(np.int64)
    perm = np.random.default_rng(SPLIT_SEED).permutation(len(y))
    idx = {"test": np.sort(perm[:N_TEST]), "calib": np.sort(perm[N_TEST:N_TEST + N_CALIB]),
           "train": np.sort(perm[N_TEST + N_CALIB:])}
    return {k: (x[v], y[v], v) for k, v in idx.items()}


def write_split(path, x, y, index):
    import h5py
    with h5py.File(path, "w", track_order=False) as f:
        f.create_dataset("x", data=x)
        f.create_dataset("y", data=y)
        f.create_dataset("index", data=index.astype(np.int64))
        f.attrs["source"] = "sklearn.datasets.load_digits(); x = images / 16.0 (float32)"
        f.attrs["split_rule"] = (f"numpy.random.default_rng({SPLIT_SEED}).permutation(1797): "
                                 f"first {N_TEST} test, next {N_CALIB} calib, rest train; "
                                 "sorted within each split; 'index' = row in load_digits()")


# -- torch models --------------------------------------------------------------------
def torch_models():
    import torch
    from torch import nn

    class Reshape(nn.Module):
        def __init__(self, shape):
            super().__init__()
            self.shape = tuple(shape)

        def forward(self, x):
            return x.reshape((-1,) + self.shape)

    class Residual(nn.Module):
        def __init__(self, *body):
            super().__init__()
            self.body = nn.Sequential(*body)

        def forward(self, x):
            return x + self.body(x)

    class RNNHead(nn.Module):
        def __init__(self, cell, hidden=64):
            super().__init__()
            self.rnn = cell(8, hidden, batch_first=True)
            self.fc = nn.Linear(hidden, 10)

        def forward(self, x):
            _, h = self.rnn(x)
            h = h[0] if isinstance(h, tuple) else h
            return self.fc(h[-1])

    def block(c):
        return Residual(nn.Conv2d(c, c, 3, padding=1), nn.ReLU(), nn.Conv2d(c, c, 3, padding=1))

    return {
        "digits_mlp": lambda: nn.Sequential(nn.Flatten(), nn.Linear(64, 128), nn.ReLU(),
                                            nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10)),
        "digits_cnn": lambda: nn.Sequential(Reshape((1, 8, 8)), nn.Conv2d(1, 32, 3), nn.ReLU(),
                                            nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
                                            nn.Flatten(), nn.Linear(256, 128), nn.ReLU(),
                                            nn.Linear(128, 10)),
        "digits_lstm": lambda: RNNHead(nn.LSTM),
        "digits_gru": lambda: RNNHead(nn.GRU),
        "digits_resnet": lambda: nn.Sequential(Reshape((1, 8, 8)), nn.Conv2d(1, 16, 3, padding=1),
                                               nn.ReLU(), block(16), nn.ReLU(), block(16),
                                               nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                                               nn.Linear(256, 10)),
    }


def train(name, make, xtr, ytr):
    import torch
    torch.manual_seed(TRAIN_SEED)
    net = make()
    epochs, lr, bs = HPARAMS[name]
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(TRAIN_SEED)
    X, Y = torch.from_numpy(xtr), torch.from_numpy(ytr)
    loss_fn = torch.nn.CrossEntropyLoss()
    net.train()
    for _ in range(epochs):
        order = torch.randperm(len(Y), generator=gen)
        for s in range(0, len(Y), bs):
            b = order[s:s + bs]
            opt.zero_grad()
            loss_fn(net(X[b]), Y[b]).backward()
            opt.step()
    net.eval()
    if name == "digits_lstm":
        # Fold the two LSTM biases into b_ih (one float32 rounding) so that PyTorch,
        # Keras (one bias) and ONNX all run the very same weights as the shipped model.
        with torch.no_grad():
            net.rnn.bias_ih_l0 += net.rnn.bias_hh_l0
            net.rnn.bias_hh_l0.zero_()
    return net


# -- torch -> refcomp ----------------------------------------------------------------
def to_refcomp(name, net):
    from refcomp import Layer as RL
    sd = {k: v.detach().numpy().copy() for k, v in net.state_dict().items()}

    def dense(p):
        return RL("dense", name=p, weights={"W": sd[p + ".weight"], "b": sd[p + ".bias"]})

    def conv(p, pad):
        return RL("conv2d", name=p, attrs={"padding": pad},
                  weights={"W": sd[p + ".weight"], "b": sd[p + ".bias"]})

    relu = lambda n: RL("activation", name=n, attrs={"function": "relu"})  # noqa: E731
    if name == "digits_mlp":
        layers = [RL("flatten", name="flatten"), dense("1"), relu("relu1"), dense("3"),
                  relu("relu2"), dense("5")]
    elif name == "digits_cnn":
        layers = [RL("reshape", name="reshape", attrs={"shape": (1, 8, 8)}), conv("1", 0),
                  relu("relu1"), conv("3", 0), relu("relu2"),
                  RL("max_pool2d", name="pool", attrs={"size": 2}), RL("flatten", name="flatten"),
                  dense("7"), relu("relu3"), dense("9")]
    elif name in ("digits_lstm", "digits_gru"):
        kind = name.split("_")[1]
        w = {"W_ih": sd["rnn.weight_ih_l0"], "W_hh": sd["rnn.weight_hh_l0"],
             "b_ih": sd["rnn.bias_ih_l0"], "b_hh": sd["rnn.bias_hh_l0"]}
        attrs = {"return_sequences": False}
        if kind == "gru":
            attrs["reset_after"] = True   # PyTorch GRU formula
        layers = [RL(kind, name="rnn", attrs=attrs, weights=w), dense("fc")]
    elif name == "digits_resnet":
        def res(i):
            # names mirror the PyTorch module paths: refcomp.io.torch.to_state_dict(model)
            # gives the keys of net.state_dict()
            body = [conv(f"{i}.body.0", 1), relu("body.1"), conv(f"{i}.body.2", 1)]
            body[0].name, body[2].name = "body.0", "body.2"
            return RL("residual", name=str(i), layers=body)
        layers = [RL("reshape", name="reshape", attrs={"shape": (1, 8, 8)}), conv("1", 1),
                  relu("relu1"), res(3), relu("relu2"), res(5), relu("relu3"),
                  RL("max_pool2d", name="pool", attrs={"size": 2}), RL("flatten", name="flatten"),
                  dense("9")]
    return refcomp.Model(layers, name=name, input_shape=(8, 8))


# -- Keras export ----------------------------------------------------------------------
def to_keras(name, model):
    """Keras 3 model (channels_last) carrying exactly the refcomp weights."""
    import keras
    from keras import layers as K
    g = model.get_layer
    inp = keras.Input((8, 8), name="x")

    if name == "digits_mlp":
        ls = [K.Flatten(name="flatten"), K.Dense(128, activation="relu", name="dense1"),
              K.Dense(64, activation="relu", name="dense2"), K.Dense(10, name="logits")]
        km = keras.Sequential([inp] + ls, name=name)
        for kl, path in zip(ls[1:], ("1", "3", "5")):
            kl.set_weights(list(convert.dense_to_keras(g(path).w("W"), g(path).w("b"))))
    elif name == "digits_cnn":
        ls = [K.Reshape((8, 8, 1), name="reshape"),
              K.Conv2D(32, 3, activation="relu", name="conv1"),
              K.Conv2D(64, 3, activation="relu", name="conv2"),
              K.MaxPooling2D(2, name="pool"), K.Flatten(name="flatten"),
              K.Dense(128, activation="relu", name="dense1"), K.Dense(10, name="logits")]
        km = keras.Sequential([inp] + ls, name=name)
        ls[1].set_weights([convert.conv2d_to_keras(g("1").w("W")), g("1").w("b")])
        ls[2].set_weights([convert.conv2d_to_keras(g("3").w("W")), g("3").w("b")])
        ls[5].set_weights([convert.dense_to_keras_after_flatten(g("7").w("W"), (2, 2, 64)),
                           g("7").w("b")])
        ls[6].set_weights(list(convert.dense_to_keras(g("9").w("W"), g("9").w("b"))))
    elif name == "digits_lstm":
        rnn = g("0")
        ls = [K.LSTM(64, name="lstm"), K.Dense(10, name="logits")]
        km = keras.Sequential([inp] + ls, name=name)
        ls[0].set_weights(list(convert.lstm_to_keras(rnn.w("W_ih"), rnn.w("W_hh"), rnn.w("b_ih"),
                                                     rnn.w("b_hh"))))
        ls[1].set_weights(list(convert.dense_to_keras(g("1").w("W"), g("1").w("b"))))
    elif name == "digits_gru":
        rnn = g("0")
        ls = [K.GRU(64, reset_after=True, name="gru"), K.Dense(10, name="logits")]
        km = keras.Sequential([inp] + ls, name=name)
        ls[0].set_weights(list(convert.gru_to_keras(rnn.w("W_ih"), rnn.w("W_hh"), rnn.w("b_ih"),
                                                    rnn.w("b_hh"), reset_after=True)))
        ls[1].set_weights(list(convert.dense_to_keras(g("1").w("W"), g("1").w("b"))))
    elif name == "digits_resnet":
        def kconv(path, kname, act=None):
            c = K.Conv2D(16, 3, padding="same", activation=act, name=kname)
            c.build((None, 8, 8, 16 if path != "1" else 1))
            c.set_weights([convert.conv2d_to_keras(g(path).w("W")), g(path).w("b")])
            return c
        h = K.Reshape((8, 8, 1), name="reshape")(inp)
        h = kconv("1", "stem", "relu")(h)
        for blk, path in ((1, "3"), (2, "5")):
            f = kconv(path + "/0", f"block{blk}_conv1", "relu")(h)
            f = kconv(path + "/2", f"block{blk}_conv2")(f)
            h = K.Add(name=f"block{blk}_add")([h, f])
            h = K.Activation("relu", name=f"block{blk}_relu")(h)
        h = K.MaxPooling2D(2, name="pool")(h)
        h = K.Flatten(name="flatten")(h)
        d = K.Dense(10, name="logits")
        out = d(h)
        d.set_weights([convert.dense_to_keras_after_flatten(g("9").w("W"), (4, 4, 16)),
                       g("9").w("b")])
        km = keras.Model(inp, out, name=name)
    return km


# -- ONNX export -----------------------------------------------------------------------
def export_onnx(net, path):
    import torch
    torch.onnx.export(net, (torch.zeros(2, 8, 8),), str(path), dynamo=False,
                      input_names=["x"], output_names=["logits"], opset_version=17,
                      dynamic_axes={"x": {0: "N"}, "logits": {0: "N"}})


def run_onnx(path, x):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})[0]


# -- main ------------------------------------------------------------------------------
def versions():
    import h5py
    import keras
    import onnx
    import onnxruntime
    import sklearn
    import torch
    return {"python": sys.version.split()[0], "numpy": np.__version__, "torch": torch.__version__,
            "keras": keras.__version__, "keras_backend": os.environ["KERAS_BACKEND"],
            "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__,
            "scikit-learn": sklearn.__version__, "h5py": h5py.__version__,
            "refcomp": refcomp.__version__}


def build(out):
    import h5py
    import keras
    import torch
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    out = Path(out)
    (out / "golden").mkdir(parents=True, exist_ok=True)
    splits = make_splits()
    for k, (x, y, idx) in splits.items():
        write_split(out / f"digits_{k}.h5", x, y, idx)
    xtr, ytr, _ = splits["train"]
    xte, yte, _ = splits["test"]
    vers = versions()
    summary = {}
    for name, make in torch_models().items():
        net = train(name, make, xtr, ytr)
        with torch.no_grad():
            y_torch = net(torch.from_numpy(xte)).numpy()
        model = to_refcomp(name, net)
        y_ref = model(xte)
        acc_ref = float(np.mean(np.argmax(y_ref, 1) == yte))
        acc_torch = float(np.mean(np.argmax(y_torch, 1) == yte))
        epochs, lr, bs = HPARAMS[name]
        model.metadata = {
            "description": f"{name} trained on data/digits_train.h5 by data/build.py",
            "split_seed": SPLIT_SEED, "train_seed": TRAIN_SEED, "epochs": epochs, "lr": lr,
            "batch_size": bs, "optimizer": "Adam", "versions": vers,
            "test_accuracy": acc_ref, "test_accuracy_torch": acc_torch,
            "input": "x float32 (N, 8, 8) = digits / 16",
        }
        refcomp.save(model, out / f"{name}.h5")
        # framework exports
        g = out / "golden"
        km = to_keras(name, model)
        km.save(g / f"{name}_legacy.h5")
        km.save_weights(g / f"{name}.weights.h5")
        (g / f"{name}.config.json").write_text(json.dumps(
            {"module": "keras", "class_name": type(km).__name__, "config": km.get_config(),
             "registered_name": None}, sort_keys=True, indent=1) + "\n")
        y_keras = keras.ops.convert_to_numpy(km(xte, training=False))
        export_onnx(net, g / f"{name}.onnx")
        y_onnx = run_onnx(g / f"{name}.onnx", xte)
        with h5py.File(g / f"{name}_outputs.h5", "w") as f:
            for k, v in (("torch", y_torch), ("keras", y_keras), ("onnxruntime", y_onnx),
                         ("refcomp", y_ref)):
                ds = f.create_dataset(k, data=np.asarray(v, dtype=np.float32))
                ds.attrs["accuracy"] = float(np.mean(np.argmax(v, 1) == yte))
            f.attrs["input"] = "data/digits_test.h5 x"
            f.attrs["versions"] = json.dumps(vers, sort_keys=True)
        summary[name] = {k: float(np.mean(np.argmax(v, 1) == yte)) for k, v in
                         (("refcomp", y_ref), ("torch", y_torch), ("keras", y_keras),
                          ("onnxruntime", y_onnx))}
        summary[name]["max_abs_diff_vs_refcomp"] = {
            k: float(np.max(np.abs(v - y_ref))) for k, v in
            (("torch", y_torch), ("keras", y_keras), ("onnxruntime", y_onnx))}
        print(name, json.dumps(summary[name]), flush=True)
    (out / "golden" / "summary.json").write_text(json.dumps(
        {"accuracy": summary, "versions": vers}, sort_keys=True, indent=1) + "\n")
    return summary


def compare_trees(a, b):
    diffs = []
    for p in sorted(Path(a).rglob("*")):
        if p.is_file() and p.suffix in (".h5", ".onnx", ".json"):
            q = Path(b) / p.relative_to(a)
            if not q.exists() or not filecmp.cmp(p, q, shallow=False):
                diffs.append(str(p.relative_to(a)))
    return diffs


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(HERE))
    ap.add_argument("--check", action="store_true",
                    help="rebuild into a temporary directory and list files whose bytes differ")
    args = ap.parse_args()
    if args.check:
        with tempfile.TemporaryDirectory() as tmp:
            build(tmp)
            diffs = compare_trees(tmp, HERE)
        print("identical" if not diffs else "differ: " + ", ".join(diffs))
        return 1 if diffs else 0
    build(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
