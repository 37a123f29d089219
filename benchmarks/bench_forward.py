"""Forward-pass speed: refcomp fast/reference vs PyTorch CPU and ONNX Runtime.

Models: the MNIST CNN of Resmerita et al. Table 3 (seed 002: 28x28x1 input,
Conv 3x3 1->32, ReLU, Conv 3x3 32->64, ReLU, MaxPool 2, Flatten, Dense
9216->128, ReLU, Dense 128->10; 1.2M parameters) on 1000 random inputs,
an LSTM(8 -> 64) and a GRU(8 -> 64) over 1000 sequences of length 8.
All float32.  Prints the median of at least 3 calls (as many as fill
--min-time seconds, so the short recurrent calls get many samples), ratios
to ONNX Runtime, and the memory floor (np.copyto of the input batch); then
one "reference / ORT" line per model (the ratio the README quotes).

    python benchmarks/bench_forward.py [--batch 1000] [--repeat 3] [--min-time 1]
                                       [--models cnn,lstm,gru]
"""

import argparse
import io
import os

import refcomp    # first: it sets the thread-spin defaults before NumPy loads OpenBLAS
import numpy as np
from refcomp import Layer, Model
from _timing import timeit, timeit_for  # noqa: F401  (timeit: bench_prune)


def cnn(rng):
    r = lambda *s: (rng.standard_normal(s) * 0.05).astype(np.float32)
    return Model([
        Layer("reshape", attrs={"shape": (1, 28, 28)}),
        Layer("conv2d", weights={"W": r(32, 1, 3, 3), "b": r(32)}),
        Layer("activation", attrs={"function": "relu"}),
        Layer("conv2d", weights={"W": r(64, 32, 3, 3), "b": r(64)}),
        Layer("activation", attrs={"function": "relu"}),
        Layer("max_pool2d", attrs={"size": 2}),
        Layer("flatten"),
        Layer("dense", weights={"W": r(128, 9216), "b": r(128)}),
        Layer("activation", attrs={"function": "relu"}),
        Layer("dense", weights={"W": r(10, 128), "b": r(10)}),
    ], input_shape=(28, 28))


def lstm_model(rng):
    r = lambda *s: (rng.standard_normal(s) * 0.1).astype(np.float32)
    return Model([Layer("lstm", attrs={"return_sequences": False},
                        weights={"W_ih": r(256, 8), "W_hh": r(256, 64), "b_ih": r(256), "b_hh": r(256)}),
                  Layer("dense", weights={"W": r(10, 64), "b": r(10)})], input_shape=(8, 8))


def gru_model(rng):
    r = lambda *s: (rng.standard_normal(s) * 0.1).astype(np.float32)
    return Model([Layer("gru", attrs={"return_sequences": False},
                        weights={"W_ih": r(192, 8), "W_hh": r(192, 64), "b_ih": r(192), "b_hh": r(192)}),
                  Layer("dense", weights={"W": r(10, 64), "b": r(10)})], input_shape=(8, 8))


def torch_cnn(model):
    import torch
    nn = torch.nn
    t = lambda a: nn.Parameter(torch.from_numpy(a.copy()))
    net = nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.Conv2d(32, 64, 3), nn.ReLU(),
                        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(9216, 128), nn.ReLU(),
                        nn.Linear(128, 10)).eval()
    for idx, li in ((0, 1), (2, 3), (6, 7), (8, 9)):
        net[idx].weight = t(model.layers[li].weights["W"])
        net[idx].bias = t(model.layers[li].weights["b"])
    return net


class _TorchRNN:
    def __init__(self, model, kind="lstm"):
        import torch
        self.torch = torch
        lw = model.layers[0].weights
        self.lstm = (torch.nn.LSTM if kind == "lstm" else torch.nn.GRU)(8, 64, batch_first=True)
        self.kind = kind
        self.fc = torch.nn.Linear(64, 10)
        sd = {"weight_ih_l0": lw["W_ih"], "weight_hh_l0": lw["W_hh"], "bias_ih_l0": lw["b_ih"],
              "bias_hh_l0": lw["b_hh"]}
        self.lstm.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in sd.items()})
        dw = model.layers[1].weights
        self.fc.load_state_dict({"weight": torch.from_numpy(dw["W"].copy()),
                                 "bias": torch.from_numpy(dw["b"].copy())})

    def module(self):
        torch = self.torch
        lstm, fc, kind = self.lstm, self.fc, self.kind

        class M(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.lstm, self.fc = lstm, fc

            def forward(self, x):
                _, h = self.lstm(x)
                return self.fc((h[0] if kind == "lstm" else h)[0])
        return M().eval()


def ort_session(module, example):
    import onnxruntime as ort
    import torch
    buf = io.BytesIO()
    torch.onnx.export(module, (torch.from_numpy(example),), buf, input_names=["x"],
                      output_names=["y"], dynamic_axes={"x": {0: "n"}}, dynamo=False)
    so = ort.SessionOptions()
    return ort.InferenceSession(buf.getvalue(), so, providers=["CPUExecutionProvider"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3, help="minimum calls per candidate")
    ap.add_argument("--min-time", type=float, default=1.0,
                    help="seconds of calls per candidate (short calls get more than --repeat)")
    ap.add_argument("--models", default="cnn,lstm,gru", help="comma-separated subset")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    rows, summary = [], []
    models = (("cnn", cnn, (28, 28)), ("lstm", lstm_model, (8, 8)), ("gru", gru_model, (8, 8)))
    for name, build, shape in models:
        model = build(rng)     # built in this order whatever --models says: same weights
        if name not in args.models.split(","):
            continue
        x = rng.standard_normal((args.batch,) + shape).astype(np.float32)
        res = {}
        dst = np.empty_like(x)

        def measure(fn):
            return timeit_for(fn, args.min_time, args.repeat)

        res["np.copyto (floor)"] = measure(lambda: np.copyto(dst, x))
        res["refcomp fast"] = measure(lambda: model(x, precision="fast"))
        res["refcomp reference"] = measure(lambda: model(x, precision="reference"))
        try:
            import torch
            mod = torch_cnn(model) if name == "cnn" else _TorchRNN(model, name).module()
            xt = torch.from_numpy(x if name != "cnn" else x[:, None])
            with torch.no_grad():
                res["pytorch"] = measure(lambda: mod(xt))
                sess = ort_session(mod, xt.numpy()[:2])
                xo = xt.numpy()
                res["onnxruntime"] = measure(lambda: sess.run(None, {"x": xo}))
        except ImportError as exc:
            print(f"({name}: frameworks unavailable: {exc})")
        base = res.get("onnxruntime")
        for k, v in res.items():
            ratio = f"{v / base:8.2f}x ORT" if base else ""
            rows.append(f"{name:<5} {k:<20} {v * 1e3:10.2f} ms {ratio}")
        if base:
            summary.append(f"{name:<5} reference / ORT {res['refcomp reference'] / base:6.2f}   "
                           f"fast / ORT {res['refcomp fast'] / base:6.2f}")
    print(f"batch={args.batch}, median of >= {args.repeat} calls filling >= {args.min_time} s "
          f"per candidate; GOMP_SPINCOUNT="
          f"{os.environ.get('GOMP_SPINCOUNT')}, OPENBLAS_THREAD_TIMEOUT="
          f"{os.environ.get('OPENBLAS_THREAD_TIMEOUT')}")
    print("\n".join(rows))
    print(f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print("\n".join(summary))


if __name__ == "__main__":
    main()
