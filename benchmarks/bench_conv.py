"""Speed and maximum error of every conv2d algorithm, as ratios to ONNX Runtime.

    python benchmarks/bench_conv.py [--quick]

Cases (one run): the two convolutions of the shipped digits CNN on the 360
test images, and a 56x56x64 -> 64, 3x3, padding 1 layer (batch 1).  For each
``conv2d(..., algorithm=A, precision=P)``: median time, time / ONNX Runtime,
maximum |y - exact| (exact: the reference direct convolution of the same
float32 values in float64, whose own error is ~1e-16 relative) and the
largest ratio of that error to the algorithm's derived bound
(``refcomp.layers.conv_bounds.conv2d_error_bound``).  Then the growth of
Winograd's error with the tile on every 3x3 convolution of the shipped
digits_cnn and digits_resnet (float32 "fast" and float64 "reference").
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import refcomp  # noqa: E402  (before NumPy: thread settings)
import numpy as np  # noqa: E402

from _timing import timeit_for  # noqa: E402
from refcomp.layers import conv2d  # noqa: E402
from refcomp.layers.conv_bounds import conv2d_error_bound  # noqa: E402

CASES = [("direct", "reference"), ("im2col", "reference"), ("im2col", "fast"),
         ("fft", "reference"), ("fft", "fast"), ("winograd2", "reference"),
         ("winograd2", "fast"), ("winograd4", "reference"), ("winograd4", "fast")]


def ort_conv(W, b, pads):
    """An ONNX Runtime session of one Conv node (NCHW, float32)."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper
    node = helper.make_node("Conv", ["x", "W", "b"], ["y"], pads=[pads, pads, pads, pads])
    graph = helper.make_graph(
        [node], "conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, None)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=[numpy_helper.from_array(W, "W"), numpy_helper.from_array(b, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    return ort.InferenceSession(model.SerializeToString(), so,
                                providers=["CPUExecutionProvider"])


def bench_case(name, x, W, b, pad, min_time):
    exact = conv2d(x.astype(np.float64), W.astype(np.float64), b.astype(np.float64),
                   padding=pad)
    print(f"\n== {name}: x {x.shape}, W {W.shape}, padding {pad}")
    t_ort = None
    try:
        sess = ort_conv(W, b, pad)
        y_ort = sess.run(None, {"x": x})[0]
        t_ort = timeit_for(lambda: sess.run(None, {"x": x}), min_time)
        print(f"{'onnxruntime':<24}{1e3 * t_ort:>10.2f} ms {'1.00':>8}x  max err "
              f"{np.abs(y_ort - exact).max():.3e}")
    except ImportError:
        print("onnxruntime not installed: times only")
    print(f"{'algorithm / precision':<24}{'time':>13}{'/ORT':>9}  {'max |y - exact|':>16}"
          f"{'err / bound':>13}")
    for alg, prec in CASES:
        def run(alg=alg, prec=prec):
            return conv2d(x, W, b, padding=pad, algorithm=alg, precision=prec)
        y = run()
        t = timeit_for(run, min_time, min_repeat=2)
        err = np.abs(y.astype(np.float64) - exact)
        bound = conv2d_error_bound(x, W, b, padding=pad, algorithm=alg, precision=prec)
        ratio = f"{t / t_ort:>8.2f}x" if t_ort else f"{'-':>9}"
        print(f"{alg + ' / ' + prec:<24}{1e3 * t:>10.2f} ms{ratio}  {err.max():>16.3e}"
              f"{(err / bound).max():>13.2e}")


def winograd_growth(x_test):
    print("\n== Winograd error growth with the tile (shipped models, 360 test images)")
    print(f"{'layer':<24}{'prec':<11}{'F(2x2) max err':>16}{'F(4x4) max err':>16}"
          f"{'F4/F2':>8}{'im2col err':>12}{'bound F4/F2':>13}")
    for name in ("digits_cnn", "digits_resnet"):
        m = refcomp.load(refcomp.data.default_data_dir() / f"{name}.h5")
        for path, layer in m.named_layers():
            if layer.kind != "conv2d":
                continue
            W, b, at = layer.w("W"), layer.w("b"), layer.attrs
            a = _input_of(m, path, x_test)
            ex = conv2d(a.astype(np.float64), W.astype(np.float64), b.astype(np.float64),
                        padding=at["padding"])
            for prec in ("fast", "reference"):
                errs, bounds = [], []
                for alg in ("winograd2", "winograd4", "im2col"):
                    y = conv2d(a, W, b, padding=at["padding"], algorithm=alg, precision=prec)
                    errs.append(np.abs(y.astype(np.float64) - ex).max())
                    bounds.append(conv2d_error_bound(a, W, b, padding=at["padding"],
                                                     algorithm=alg, precision=prec).max())
                g = errs[1] / errs[0] if errs[0] else float("nan")
                print(f"{name + ' ' + path:<24}{prec:<11}{errs[0]:>16.3e}{errs[1]:>16.3e}"
                      f"{g:>8.2f}{errs[2]:>12.3e}{bounds[1] / bounds[0]:>13.2f}")


def _input_of(model, path, x):
    from refcomp import Model
    parts = [int(p) for p in path.split("/")]
    seq, a = model.layers, x
    for depth, i in enumerate(parts):
        if i:
            a = Model(seq[:i])(a)
        if depth < len(parts) - 1:
            seq = seq[i].layers
    return a


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="shorter timing runs")
    args = ap.parse_args()
    min_time = 0.3 if args.quick else 1.0
    x_test, _ = refcomp.data.load_split("test")
    m = refcomp.load(refcomp.data.default_data_dir() / "digits_cnn.h5")
    a = m.forward_all(x_test)
    for path in ("1", "3"):
        layer = m.get_layer(path)
        inp = np.ascontiguousarray(a[int(path) - 1])
        bench_case(f"digits_cnn conv {path}", inp, layer.w("W"), layer.w("b"), 0, min_time)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 64, 56, 56)).astype(np.float32)
    W = (rng.standard_normal((64, 64, 3, 3)) / 24).astype(np.float32)
    b = rng.standard_normal(64).astype(np.float32)
    bench_case("56x56x64 -> 64, 3x3", x, W, b, 1, min_time)
    winograd_growth(x_test)


if __name__ == "__main__":
    main()
