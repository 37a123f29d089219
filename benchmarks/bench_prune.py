"""Pruning speed: refcomp.prune vs what a PyTorch user would otherwise call.

Weights: the 1.18M-parameter Dense 9216->128 kernel of the Resmerita et al.
Table 3 CNN (seed 002) and a 3x3 conv 256->256 (590k), float32.

- unstructured magnitude at 90%: ``refcomp.prune.magnitude`` vs
  ``torch.nn.utils.prune.l1_unstructured`` (mask via topk);
- filter pruning (L2) at 50%: ``refcomp.prune.structured(level="filter")``
  vs ``torch.nn.utils.prune.ln_structured(n=2, dim=0)``;
- group proximal step: ``refcomp.prune.group_prox`` vs the eq. (1) one-liner
  in torch (``torch.linalg.vector_norm`` + ``clamp``);
- memory floor: ``np.copyto`` of the same array.

    python benchmarks/bench_prune.py [--repeat 3]
"""

import argparse
import numpy as np
import torch
import torch.nn.utils.prune as tprune

from refcomp.prune import group_prox, magnitude, structured

from bench_forward import timeit  # same warm-up + median helper (script directory on sys.path)


def torch_mask(prune_fn, w, **kw):
    lin = torch.nn.Module()
    lin.weight = torch.nn.Parameter(torch.from_numpy(w.copy()))
    prune_fn(lin, "weight", **kw)
    return lin.weight_mask


def torch_prox(w, tau):
    t = torch.from_numpy(w)
    n = torch.linalg.vector_norm(t.reshape(t.shape[0], -1), dim=1)
    s = torch.clamp(n - tau, min=0) / n
    return (t * s.reshape((-1,) + (1,) * (t.ndim - 1))).numpy()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    dense = (rng.standard_normal((128, 9216)) * 0.05).astype(np.float32)
    conv = (rng.standard_normal((256, 256, 3, 3)) * 0.05).astype(np.float32)
    rows = []
    for wname, w in (("dense 128x9216", dense), ("conv 256x256x3x3", conv)):
        floor = timeit(lambda: np.copyto(np.empty_like(w), w), args.repeat)
        r = timeit(lambda: magnitude(w, sparsity=0.9), args.repeat)
        t = timeit(lambda: torch_mask(tprune.l1_unstructured, w, amount=0.9), args.repeat)
        rows.append((wname, "magnitude 90%", r, t, floor))
        r = timeit(lambda: structured(w, level="filter", norm="l2", sparsity=0.5), args.repeat)
        t = timeit(lambda: torch_mask(tprune.ln_structured, w, amount=0.5, n=2, dim=0),
                   args.repeat)
        rows.append((wname, "filter L2 50%", r, t, floor))
        r = timeit(lambda: group_prox(w, 0.3, relative=True), args.repeat)
        t = timeit(lambda: torch_prox(w, 0.3), args.repeat)
        rows.append((wname, "group_prox", r, t, floor))
    print(f"{'weight':<18}{'operation':<16}{'refcomp ms':>11}{'torch ms':>10}{'ratio':>8}"
          f"{'floor ms':>10}")
    for wname, op, r, t, f in rows:
        print(f"{wname:<18}{op:<16}{r * 1e3:>11.2f}{t * 1e3:>10.2f}{r / t:>8.1f}{f * 1e3:>10.3f}")


if __name__ == "__main__":
    main()
