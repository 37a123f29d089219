"""Sparse products: refcomp.sparse.spmv / spmm vs scipy.sparse CSR.

Matrices 9216x128 and 4096x4096 (rows x cols), float32, 90% and 99% of the
entries zero (uniformly random positions, seed 0); the vector case
``A @ x`` and the batch case ``A @ X`` with X (cols, 64).  refcomp
accumulates every output in float64 in column order (one rounding, bit-exact
for any thread count); scipy accumulates in float32.  Each is timed on 1 and
2 threads (``numba.set_num_threads``; scipy.sparse is single-threaded).
Memory floor: ``np.copyto`` of the CSR arrays (data, indices, indptr).

    python benchmarks/bench_sparse.py [--min-time 0.3]
"""

import argparse

import numba
import numpy as np
import scipy.sparse as sp

from refcomp.sparse import CSR, spmm, spmv

from _timing import timeit_for  # warm-up + median helper (script directory on sys.path)


def bench(fn, min_time):
    """Median of at least 5 calls (about ``min_time`` seconds) after a warm-up."""
    return timeit_for(fn, min_time, 5)


def make(rows, cols, sparsity, rng):
    W = rng.standard_normal((rows, cols)).astype(np.float32)
    W[rng.random((rows, cols)) < sparsity] = 0
    return W


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--min-time", type=float, default=0.3)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    max_threads = numba.config.NUMBA_NUM_THREADS
    print(f"numba threads available: {max_threads}; times are medians in microseconds")
    head = (f"{'matrix':>10} {'sparsity':>8} {'op':>9} {'nnz':>8} {'floor':>8} {'scipy':>9} "
            f"{'ref 1T':>9} {'ref 2T':>9} {'1T/scipy':>9} {'2T/scipy':>9}")
    print(head)
    print("-" * len(head))
    for rows, cols in ((9216, 128), (4096, 4096)):
        for sparsity in (0.9, 0.99):
            W = make(rows, cols, sparsity, rng)
            A = CSR.from_dense(W)
            S = sp.csr_matrix(W)
            S.indices = S.indices.astype(np.int32)
            arrays = (A.data, A.indices, A.indptr)
            dst = [np.empty_like(a) for a in arrays]
            floor = bench(lambda: [np.copyto(d, a) for d, a in zip(dst, arrays)], args.min_time)
            x = rng.standard_normal(cols).astype(np.float32)
            X = rng.standard_normal((cols, 64)).astype(np.float32)
            for op, arg, ours in (("spmv", x, spmv), ("spmm x64", X, spmm)):
                t_sp = bench(lambda: S @ arg, args.min_time)
                res = {}
                for th in (1, 2):
                    if th > max_threads:
                        continue
                    numba.set_num_threads(th)
                    res[th] = bench(lambda: ours(A, arg), args.min_time)
                numba.set_num_threads(max_threads)
                err = np.max(np.abs(ours(A, arg).astype(np.float64) - (S @ arg)))
                r2 = res.get(2, float("nan"))
                print(f"{rows}x{cols:<5} {sparsity:>8.2f} {op:>9} {A.nnz:>8} "
                      f"{floor * 1e6:>8.1f} {t_sp * 1e6:>9.1f} {res[1] * 1e6:>9.1f} "
                      f"{r2 * 1e6:>9.1f} {t_sp / res[1]:>8.2f}x {t_sp / r2:>8.2f}x"
                      f"   (max |ref - scipy| {err:.2e})")


if __name__ == "__main__":
    main()
