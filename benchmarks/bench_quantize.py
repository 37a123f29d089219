"""Time refcomp.quantize.uniform / affine against np.copyto, the NumPy expression and torch.

Run:  python benchmarks/bench_quantize.py [--sizes 1180000 100000000]
Prints best-of-3 wall times and ratios to np.copyto (the memory floor).
"""

import argparse
import time

import numpy as np

from refcomp.quantize import affine, uniform


def best(f, reps=3):
    f()
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t)
    return min(ts)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[1_180_000, 100_000_000])
    args = ap.parse_args()
    for n in args.sizes:
        w = np.random.default_rng(0).standard_normal(n, dtype=np.float32)
        dst = np.empty_like(w)
        floor = best(lambda: np.copyto(dst, w))
        scale = np.float32(0.02)

        def np_uniform():
            lo, hi = float(w.min()), float(w.max())
            d = (hi - lo) / 256
            return np.minimum(np.floor((w.astype(np.float64) - lo) / d), 255).astype(np.uint8)

        def np_affine():
            return np.clip(np.rint(w / scale) + 128, 0, 255).astype(np.uint8)

        rows = [("np.copyto (floor)", floor),
                ("refcomp uniform 8b", best(lambda: uniform(w, 8))),
                ("numpy uniform expr", best(np_uniform)),
                ("refcomp affine given scale", best(lambda: affine(w, 8, scale=0.02, zero_point=128))),
                ("refcomp affine computed", best(lambda: affine(w, 8))),
                ("numpy affine expr", best(np_affine))]
        try:
            import torch
            t = torch.from_numpy(w)
            rows.append(("torch.quantize_per_tensor", best(
                lambda: torch.quantize_per_tensor(t, 0.02, 128, torch.quint8))))
            rows.append(("torch.fake_quantize_per_tensor_affine", best(
                lambda: torch.fake_quantize_per_tensor_affine(t, 0.02, 128, 0, 255))))
        except ImportError:
            pass
        print(f"n = {n:,} float32")
        for name, tm in rows:
            print(f"  {name:40s} {tm * 1e3:9.2f} ms  {tm / floor:6.2f}x copyto")


if __name__ == "__main__":
    main()
