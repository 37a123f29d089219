"""1-D k-means speed and SSE: refcomp Lloyd / optimal vs scikit-learn and SciPy.

Data: 1.18M float32 weights drawn from N(0, 0.05²) and Laplace(0, 0.035),
plus the trained weights shipped in ``data/*.h5`` (all dense/conv/recurrent
weights concatenated; as many as there are).  For k = 2, 16, 256:

* refcomp ``kmeans(w, k, init=...)`` with "linear", "density" and
  "kmeans++" (Lloyd to convergence, max 300 iterations),
* refcomp ``kmeans_optimal(w, k)`` (skipped when k·m exceeds its table cap),
* scikit-learn ``KMeans(k, n_init=1, algorithm="lloyd")`` with the same linear
  centroids, and with its default greedy k-means++ (max_iter 300, tol 1e-4),
* SciPy ``kmeans2(w, <same linear centroids>, minit="matrix")`` (its default
  10 iterations; it has no convergence test).

SSE is recomputed for every method in float64 from its centroids and labels.
Times are the minimum of ``--repeat`` runs (1 for the slow external runs at
k = 256).  Prints time and SSE ratios to refcomp Lloyd (linear init), and the memory
floor (np.copyto of the same array).

    python benchmarks/bench_kmeans.py [--n 1180000] [--repeat 3] [--ks 2,16,256]
"""

import argparse
import glob
import os
import time

import numpy as np

import refcomp
from refcomp.quantize import kmeans, kmeans_optimal
from refcomp.quantize.kmeans_optimal import MAX_TABLE


def timed(fn, repeat):
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return float(min(times)), out          # min: least disturbed by the shared machine


def sse(x64, centers, labels):
    d = x64 - np.asarray(centers, np.float64).reshape(-1)[labels]
    return float(np.dot(d, d))


def trained_weights():
    root = os.path.join(os.path.dirname(__file__), "..", "data")
    parts = []
    for path in sorted(glob.glob(os.path.join(root, "digits_*.h5"))):
        try:
            model = refcomp.load(path)
        except Exception:                       # data sets, not models
            continue
        for _, layer in model.named_layers():
            for name, w in layer.weights.items():
                if name.startswith("W") and isinstance(w, np.ndarray):
                    parts.append(w.astype(np.float32).reshape(-1))
    return np.concatenate(parts) if parts else None


def linear_init(x, k):
    lo, hi = float(x.min()), float(x.max())
    c = lo + np.arange(k) * ((hi - lo) / max(k - 1, 1))
    c[-1] = hi
    return c.astype(x.dtype)


def run(name, x, ks, repeat):
    from scipy.cluster.vq import kmeans2
    from sklearn.cluster import KMeans
    x64 = x.astype(np.float64)
    floor, _ = timed(lambda: np.copyto(np.empty_like(x), x), 5)
    m = np.unique(x).size
    print(f"\n== {name}: n={x.size} float32, distinct={m}, memory floor (np.copyto) "
          f"{floor * 1e3:.2f} ms")
    print(f"{'k':>4} {'method':<24} {'time s':>9} {'x refcomp':>10} {'SSE':>14} "
          f"{'SSE/refcomp':>12} {'iters':>6}")
    for k in ks:
        slow = 1 if k >= 256 else repeat
        rows = []
        t, q = timed(lambda: kmeans(x, k), repeat)
        ref_t, ref_sse = t, sse(x64, q.codebook, q.codes.astype(np.intp))
        rows.append(("refcomp lloyd linear", t, ref_sse, q.info["n_iter"]))
        t, q = timed(lambda: kmeans(x, k, init="density"), repeat)
        rows.append(("refcomp lloyd density", t, sse(x64, q.codebook, q.codes.astype(np.intp)),
                     q.info["n_iter"]))
        t, q = timed(lambda: kmeans(x, k, init="kmeans++", rng=np.random.default_rng(0)), repeat)
        rows.append(("refcomp lloyd kmeans++", t, sse(x64, q.codebook, q.codes.astype(np.intp)),
                     q.info["n_iter"]))
        if k * m <= MAX_TABLE:
            t, q = timed(lambda: kmeans_optimal(x, k), slow)
            rows.append(("refcomp optimal", t, sse(x64, q.codebook, q.codes.astype(np.intp)), ""))
        else:
            rows.append(("refcomp optimal", None, None, "skip"))
        init = linear_init(x, k).reshape(-1, 1)
        t, km = timed(lambda: KMeans(k, n_init=1, algorithm="lloyd", init=init)
                      .fit(x.reshape(-1, 1)), slow)
        rows.append(("sklearn lloyd linear", t, sse(x64, km.cluster_centers_, km.labels_),
                     km.n_iter_))
        t, km = timed(lambda: KMeans(k, n_init=1, algorithm="lloyd", random_state=0)
                      .fit(x.reshape(-1, 1)), slow)
        rows.append(("sklearn lloyd k-means++", t, sse(x64, km.cluster_centers_, km.labels_),
                     km.n_iter_))
        t, (cen, lab) = timed(lambda: kmeans2(x.reshape(-1, 1), init.copy(), minit="matrix"),
                              slow)
        rows.append(("scipy kmeans2 (10 it)", t, sse(x64, cen, lab), 10))
        for label, t, s, it in rows:
            if t is None:
                print(f"{k:>4} {label:<24} {'skipped (k*m > table cap)':>36}")
                continue
            print(f"{k:>4} {label:<24} {t:>9.3f} {t / ref_t:>10.1f} {s:>14.6g} "
                  f"{s / ref_sse:>12.6f} {it!s:>6}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_180_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--ks", default="2,16,256")
    a = ap.parse_args()
    ks = [int(v) for v in a.ks.split(",")]
    rng = np.random.default_rng(0)
    kmeans(rng.standard_normal(100).astype(np.float32), 4)           # JIT warm-up
    kmeans_optimal(rng.standard_normal(100).astype(np.float32), 4)
    data = {"gaussian": (rng.standard_normal(a.n) * 0.05).astype(np.float32),
            "laplacian": rng.laplace(scale=0.035, size=a.n).astype(np.float32)}
    real = trained_weights()
    if real is not None:
        data["trained (data/*.h5)"] = real
    for name, x in data.items():
        run(name, x, ks, a.repeat)


if __name__ == "__main__":
    main()
