"""Time refcomp.quantize.uniform / affine against np.copyto, the NumPy expression and torch.

Run:  python benchmarks/bench_quantize.py [--sizes 1180000 100000000] [--rounds 7]

Every round times each candidate once (interleaved, so a burst of load from
other processes hits all of them alike); the figure is the minimum over the
rounds after one warm-up call.  Ratios: to ``np.copyto`` of the same array
into a preallocated float32 buffer (the memory floor), to the NumPy
expression computing the same codes, and to torch where it has an
equivalent.  refcomp allocates its uint8 codes on every call (fresh pages);
the copyto floor does not.
"""

import argparse
import time
import warnings

import numpy as np

from refcomp.quantize import affine, uniform


def run(cands, rounds):
    for f in cands.values():
        f()
    best = {k: float("inf") for k in cands}
    for _ in range(rounds):
        for k, f in cands.items():
            t = time.perf_counter()
            f()
            best[k] = min(best[k], time.perf_counter() - t)
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[1_180_000, 100_000_000])
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    try:
        import torch
        warnings.filterwarnings("ignore", message=".*quantize_per_tensor.*")
    except ImportError:
        torch = None
    for n in args.sizes:
        w = np.random.default_rng(0).standard_normal(n, dtype=np.float32)
        dst = np.empty_like(w)
        scale = np.float32(0.02)

        def np_uniform():
            lo, hi = float(w.min()), float(w.max())
            d = (hi - lo) / 256
            return np.minimum(np.floor((w.astype(np.float64) - lo) / d), 255).astype(np.uint8)

        def np_affine():
            return np.clip(np.rint(w / scale) + 128, 0, 255).astype(np.uint8)

        cands = {
            "np.copyto (floor)": lambda: np.copyto(dst, w),
            "refcomp uniform 8b": lambda: uniform(w, 8),
            "numpy uniform expr": np_uniform,
            "refcomp affine given scale": lambda: affine(w, 8, scale=0.02, zero_point=128),
            "refcomp affine computed": lambda: affine(w, 8),
            "numpy affine expr": np_affine,
        }
        if torch is not None:
            t = torch.from_numpy(w)

            def torch_uniform():
                lo, hi = torch.aminmax(t)
                lo, hi = float(lo), float(hi)
                d = (hi - lo) / 256
                return torch.clamp(torch.floor((t.double() - lo) / d), max=255).to(torch.uint8)

            cands["torch uniform expr"] = torch_uniform
            cands["torch.quantize_per_tensor"] = lambda: torch.quantize_per_tensor(
                t, 0.02, 128, torch.quint8)
            cands["torch.fake_quantize_per_tensor_affine"] = (
                lambda: torch.fake_quantize_per_tensor_affine(t, 0.02, 128, 0, 255))
        best = run(cands, args.rounds)
        floor = best["np.copyto (floor)"]
        print(f"n = {n:,} float32, min of {args.rounds} rounds")
        for name, tm in best.items():
            print(f"  {name:40s} {tm * 1e3:9.2f} ms  {tm / floor:6.2f}x copyto")
        pairs = [("refcomp uniform 8b", "numpy uniform expr"),
                 ("refcomp uniform 8b", "torch uniform expr"),
                 ("refcomp affine given scale", "numpy affine expr"),
                 ("refcomp affine given scale", "torch.quantize_per_tensor"),
                 ("refcomp affine given scale", "torch.fake_quantize_per_tensor_affine")]
        for a, b in pairs:
            if a in best and b in best:
                print(f"  {b} / {a}: {best[b] / best[a]:.2f}x")


if __name__ == "__main__":
    main()
