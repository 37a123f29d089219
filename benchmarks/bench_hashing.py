"""Speed of the HashedNets forward passes (V never formed) against the dense layers.

    python benchmarks/bench_hashing.py [--quick]

Cases: the two convolutions and the dense layer of the shipped digits CNN
on the 360 test images, and a 28x28x32 -> 64, 3x3, padding 1 convolution
(batch 8), each hashed at compression 1/8 (string keys, the authors'
hash).  For each: median time of ``hashed_conv2d`` / ``hashed_linear``
(precision "reference" and "fast"), of refcomp's dense ``conv2d`` /
``dense`` on ``W.dequantize()`` (the same bits for "reference"), of
PyTorch's ``F.conv2d`` / ``F.linear`` on V (the tool a user would
otherwise pick), and the ``np.copyto`` memory floor of the output; ratios
to the dense reference.  The hashed pass recomputes the hashes of V's
entries on every call (it stores only the buckets), which the dense
passes do not pay.

The integer-key variant (``hash="integer"``: 12-byte integer keys instead
of the authors' decimal key strings, offered by name as the faster hash) is
timed in the same run: every hashed pass again with ``hash="integer"``,
with its speedup over the string keys, and the hash alone
(``HashedWeight.indices()``, the bucket and sign of every virtual weight of
a 1024 x 1024 weight) against the ``np.copyto`` floor of the tables it
writes.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import refcomp  # noqa: E402  (before NumPy: thread settings)
import numpy as np  # noqa: E402

from _timing import timeit_for  # noqa: E402
from refcomp.data import load_split  # noqa: E402
from refcomp.hashing import (HashedWeight, hash_compress, hashed_conv2d,  # noqa: E402
                             hashed_linear)
from refcomp.layers import conv2d, dense  # noqa: E402


def _row(name, t, ref):
    print(f"  {name:<34}{1e3 * t:>10.3f} ms {t / ref:>8.2f}x")


def _speedup(name, t_string, t_integer):
    # > 1: the integer keys are faster
    print(f"  {name:<34}{1e3 * t_integer:>10.3f} ms  time string / integer keys "
          f"{t_string / t_integer:.2f}x")


def bench_conv(name, x, W, pad, min_time):
    hw = hash_compress(W, max(1, W.size // 8), seed=1691)
    hi = hash_compress(W, max(1, W.size // 8), seed=1691, hash="integer")
    V = hw.dequantize()
    print(f"\n== {name}: x {x.shape}, W {W.shape}, padding {pad}, {hw.n_buckets} buckets")
    y_ref = conv2d(x, V, padding=pad)
    assert np.array_equal(hashed_conv2d(x, hw, padding=pad).view(np.uint32),
                          y_ref.view(np.uint32))
    ref = timeit_for(lambda: conv2d(x, V, padding=pad), min_time)
    _row("dense conv2d reference (V given)", ref, ref)
    t_ref = timeit_for(lambda: hashed_conv2d(x, hw, padding=pad), min_time)
    _row("hashed_conv2d reference", t_ref, ref)
    _row("dense conv2d fast", timeit_for(lambda: conv2d(x, V, padding=pad, precision="fast"),
                                         min_time), ref)
    t_fast = timeit_for(lambda: hashed_conv2d(x, hw, padding=pad, precision="fast"), min_time)
    _row("hashed_conv2d fast", t_fast, ref)
    _speedup("hashed_conv2d reference, integer", t_ref,
             timeit_for(lambda: hashed_conv2d(x, hi, padding=pad), min_time))
    _speedup("hashed_conv2d fast, integer", t_fast, timeit_for(
        lambda: hashed_conv2d(x, hi, padding=pad, precision="fast"), min_time))
    try:
        import torch
        import torch.nn.functional as F
        tx, tV = torch.from_numpy(x), torch.from_numpy(V)
        _row("torch F.conv2d (V given)", timeit_for(lambda: F.conv2d(tx, tV, padding=pad),
                                                    min_time), ref)
    except ImportError:
        print("  torch not installed")
    out = np.empty_like(y_ref)
    _row("np.copyto of the output (floor)", timeit_for(lambda: np.copyto(out, y_ref),
                                                       min_time), ref)


def bench_dense(name, x, W, min_time):
    hw = hash_compress(W, max(1, W.size // 8), seed=1691)
    hi = hash_compress(W, max(1, W.size // 8), seed=1691, hash="integer")
    V = hw.dequantize()
    print(f"\n== {name}: x {x.shape}, W {W.shape}, {hw.n_buckets} buckets")
    ref = timeit_for(lambda: dense(x, V), min_time)
    _row("dense reference (V given)", ref, ref)
    t_ref = timeit_for(lambda: hashed_linear(x, hw), min_time)
    _row("hashed_linear reference", t_ref, ref)
    t_fast = timeit_for(lambda: hashed_linear(x, hw, precision="fast"), min_time)
    _row("hashed_linear fast", t_fast, ref)
    _speedup("hashed_linear reference, integer", t_ref,
             timeit_for(lambda: hashed_linear(x, hi), min_time))
    _speedup("hashed_linear fast, integer", t_fast,
             timeit_for(lambda: hashed_linear(x, hi, precision="fast"), min_time))


def bench_hash_only(shape, min_time):
    """The hash alone: bucket and sign of every virtual weight, string vs integer keys."""
    print(f"\n== hash only: HashedWeight.indices() of a {shape} weight, 1/8 buckets")
    buckets = np.zeros(shape[0] * shape[1] // 8, np.float32)
    hs = HashedWeight(buckets, shape, seed=1691, hash="string")
    hi = HashedWeight(buckets, shape, seed=1691, hash="integer")
    t_s = timeit_for(hs.indices, min_time)
    idx, sgn = hi.indices()
    out_i, out_s = np.empty_like(idx), np.empty_like(sgn)
    floor = timeit_for(lambda: (np.copyto(out_i, idx), np.copyto(out_s, sgn)), min_time)
    _row("string keys (the authors')", t_s, t_s)
    t_i = timeit_for(hi.indices, min_time)
    _row("integer keys", t_i, t_s)
    _row("np.copyto of the two tables (floor)", floor, t_s)
    _speedup("integer keys (ratio)", t_s, t_i)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    min_time = 0.2 if args.quick else 1.0
    import numba
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; "
          f"numba threads {numba.get_num_threads()}")
    cnn = refcomp.load("data/digits_cnn.h5")
    x, _ = load_split("test")
    h = x.reshape(-1, 1, 8, 8).astype(np.float32)
    for layer in cnn.layers:
        if layer.kind == "conv2d":
            W = np.asarray(layer.weights["W"])
            pad = layer.attrs["padding"]
            bench_conv(f"digits_cnn {layer.name}", h, W, pad, min_time)
            h = conv2d(h, W, padding=pad, stride=layer.attrs["stride"])
    W = np.asarray([lay for lay in cnn.layers if lay.kind == "dense"][0].weights["W"])
    bench_dense("digits_cnn dense", np.random.default_rng(0).standard_normal(
        (360, W.shape[1])).astype(np.float32), W, min_time)
    rng = np.random.default_rng(1)
    bench_conv("28x28x32 -> 64, 3x3", rng.standard_normal((8, 32, 28, 28)).astype(np.float32),
               (rng.standard_normal((64, 32, 3, 3)) / 17).astype(np.float32), 1, min_time)
    bench_hash_only((1024, 1024), min_time)


if __name__ == "__main__":
    main()
