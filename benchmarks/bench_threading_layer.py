"""Cost of the fork-safe Numba threading layer (README "Reliability").

refcomp asks Numba for its ``forksafe`` layer (TBB where installed, else the
workqueue layer) instead of GNU OpenMP, which breaks ``fork()``.  This runs the
same threaded kernels in one subprocess per layer (the layer is fixed once per
process) and prints the median times, the ratio and the np.copyto floor of the
data each kernel reads.  Results are checked bit-identical across layers.

    PYTHONPATH=. python benchmarks/bench_threading_layer.py
"""

import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

CHILD = r"""
import hashlib, json, sys
sys.path.insert(0, %(here)r)
import numpy as np
import refcomp, numba
from refcomp.data import default_data_dir, load_split
from refcomp.quantize import kmeans
from refcomp.sparse import CSR
from refcomp.sparse.ops import spmm
from _timing import timeit_for

x, _ = load_split("test")
cnn = refcomp.load(default_data_dir() / "digits_cnn.h5")
rng = np.random.default_rng(0)
W = rng.standard_normal((2048, 2048)).astype(np.float32)
A = CSR.from_dense(W * (np.abs(W) > 1.0))
X = rng.standard_normal((2048, 256)).astype(np.float32)
w = rng.standard_normal(1 << 20).astype(np.float32)
cases = {
    "spmm 2048x2048 (32%% dense) @ 2048x256": (lambda: spmm(A, X), X.nbytes + A.data.nbytes),
    "fast forward digits_cnn, 360 samples": (lambda: cnn(x, precision="fast"), x.nbytes),
    "reference forward digits_cnn, 360 samples": (lambda: cnn(x), x.nbytes),
    "k-means 4 bits, 2**20 float32": (lambda: kmeans(w, bits=4).dequantize(), w.nbytes),
}
out = {}
for name, (fn, nbytes) in cases.items():
    r = fn()
    src = np.zeros(nbytes // 4, np.float32); dst = np.empty_like(src)
    out[name] = dict(t=timeit_for(fn, 1.0), floor=timeit_for(lambda: np.copyto(dst, src), 0.2),
                     sha=hashlib.sha256(np.ascontiguousarray(r).tobytes()).hexdigest())
out["layer"] = numba.threading_layer()
out["threads"] = numba.get_num_threads()
print(json.dumps(out))
"""


def run(layer):
    env = dict(os.environ, NUMBA_THREADING_LAYER=layer)
    p = subprocess.run([sys.executable, "-c", CHILD % {"here": HERE}], env=env,
                       capture_output=True, text=True, check=True)
    return json.loads(p.stdout.strip().splitlines()[-1])


def main():
    res = {layer: run(layer) for layer in ("omp", "forksafe")}
    omp, safe = res["omp"], res["forksafe"]
    print(f"layers: {omp['layer']} vs {safe['layer']} (refcomp's default), "
          f"{safe['threads']} threads, load {os.getloadavg()[0]:.1f}")
    print(f"{'kernel':<44}{'omp ms':>9}{safe['layer'] + ' ms':>15}{'ratio':>8}"
          f"{'copyto ms':>11}  bits")
    for name in omp:
        if name in ("layer", "threads"):
            continue
        a, b = omp[name], safe[name]
        same = "identical" if a["sha"] == b["sha"] else "DIFFER"
        print(f"{name:<44}{1e3 * a['t']:>9.2f}{1e3 * b['t']:>15.2f}{b['t'] / a['t']:>8.2f}"
              f"{1e3 * a['floor']:>11.3f}  {same}")


if __name__ == "__main__":
    main()
