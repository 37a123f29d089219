"""Integer inference speed: refcomp's integer forward pass against ONNX Runtime, in one run.

1. The shipped digits CNN quantized with ``refcomp.integer.quantize_model(mode="onnx")``
   (int8 activations, per-channel int8 weights) on the 360-image test split (and a batch of
   ``--batch`` random digits-shaped inputs): ``refcomp.integer.run`` (pure integer pipeline)
   and the float forward pass through the IntegerLinear hooks, against ONNX Runtime running
   ``refcomp.integer.onnx_export.to_onnx(form="qlinear")`` of the same integer model (one
   intra-op thread and the default thread count).  Outputs are checked bit for bit.
   Target: refcomp within 10x of ONNX Runtime.
2. XNOR-popcount binary dense layer (``refcomp.integer.xnor_dense``) against the float dense
   layer (``refcomp.layers.dense``, both precisions) at 4096 x 4096.

    python benchmarks/bench_integer.py [--batch 4096] [--min-time 1]
"""

import argparse

import refcomp    # first: it sets the thread-spin defaults before NumPy loads OpenBLAS
import numpy as np
from _timing import timeit_for

from refcomp.data import load_split
from refcomp.integer import XnorLinear, quantize_model, run
from refcomp.integer.onnx_export import to_onnx
from refcomp.layers import dense


def _ort(model, threads):
    import onnxruntime as ort
    so = ort.SessionOptions()
    if threads:
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(to_onnx(model, form="qlinear").SerializeToString(), so,
                                providers=["CPUExecutionProvider"])


def bench_cnn(batch, min_time):
    xc, _ = load_split("calib")
    xt, _ = load_split("test")
    rng = np.random.default_rng(0)
    xb = (rng.integers(0, 17, (batch, 8, 8)) / 16.0).astype(np.float32)
    print(f"digits CNN, mode onnx, refcomp {refcomp.__version__}")
    print(f"{'activations, input':<24}{'refcomp run':>12}{'refcomp hooks':>15}"
          f"{'ORT 1 thread':>14}{'ORT default':>13}{'ratio (1 thr)':>15}  bit-identical")
    for dt, label, x in (("int8", "test (360)", xt), ("uint8", "test (360)", xt),
                         ("int8", f"random ({batch})", xb), ("uint8", f"random ({batch})", xb)):
        qm = quantize_model(refcomp.load("data/digits_cnn.h5"), xc, mode="onnx", act_dtype=dt)
        label = f"{dt}, {label}"
        ours = run(qm, x)
        s1, sd = _ort(qm, 1), _ort(qm, 0)
        want = s1.run(None, {"x": x})[0]
        same = (np.array_equal(ours.view(np.uint32), want.view(np.uint32))
                and np.array_equal(qm(x).view(np.uint32), want.view(np.uint32)))
        t_run = timeit_for(lambda: run(qm, x), min_time)
        t_hook = timeit_for(lambda: qm(x), min_time)
        t_o1 = timeit_for(lambda: s1.run(None, {"x": x}), min_time)
        t_od = timeit_for(lambda: sd.run(None, {"x": x}), min_time)
        print(f"{label:<24}{t_run * 1e3:>9.1f} ms{t_hook * 1e3:>12.1f} ms{t_o1 * 1e3:>11.2f} ms"
              f"{t_od * 1e3:>10.2f} ms{t_run / t_o1:>14.1f}x  {same}")


def bench_xnor(n, min_time):
    rng = np.random.default_rng(1)
    W = rng.standard_normal((n, n)).astype(np.float32)
    x = rng.standard_normal((64, n)).astype(np.float32)
    w = XnorLinear.from_float(W)
    wf = w.dequantize()
    t_x = timeit_for(lambda: w.linear(x), min_time)
    t_r = timeit_for(lambda: dense(x, wf), min_time)
    t_f = timeit_for(lambda: dense(x, wf, precision="fast"), min_time)
    print(f"\nXNOR-popcount dense {n}x{n}, batch 64: xnor {t_x * 1e3:.1f} ms, float dense "
          f"reference {t_r * 1e3:.1f} ms, float dense fast (BLAS) {t_f * 1e3:.1f} ms; weights "
          f"{w.stored_bits() // 8} B packed vs {wf.nbytes} B float32")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=4096)
    p.add_argument("--min-time", type=float, default=1.0)
    p.add_argument("--xnor", type=int, default=4096)
    a = p.parse_args()
    bench_cnn(a.batch, a.min_time)
    bench_xnor(a.xnor, a.min_time)


if __name__ == "__main__":
    main()
