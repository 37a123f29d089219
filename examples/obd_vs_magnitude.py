"""OBD vs magnitude pruning on the shipped digits models, without retraining.

    python examples/obd_vs_magnitude.py [--models mlp cnn ...]

For every shipped model and sparsity: the dense/conv weights (``W`` only,
biases kept) are pruned by Optimal Brain Damage saliency (Gauss-Newton
Hessian diagonal of the mean cross-entropy on the train split) and by |w|,
each ranked globally (one ranking over all layers) and per layer (the same
fraction in every layer).  Prints a Markdown table of test accuracy
(refcomp reference forward pass, 360 test samples).
"""

import argparse
from pathlib import Path

import refcomp
from refcomp.data import load_split
from refcomp.prune import (apply_masks, global_magnitude, hessian_diagonal, magnitude, obd,
                           prunable_weights)

ROOT = Path(__file__).resolve().parents[1]
SPARSITIES = (0.5, 0.7, 0.8, 0.9, 0.95)
MODELS = ("mlp", "cnn", "resnet", "lstm", "gru")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS),
                    help="shipped models to run (default: all, the docs/prune.md table)")
    models = ap.parse_args(argv).models
    xtr, ytr = load_split("train")
    xte, yte = load_split("test")
    print("| model | sparsity | OBD global | OBD per layer | magnitude global | "
          "magnitude per layer |")
    print("|---|---|---|---|---|---|")
    for name in models:
        m = refcomp.load(ROOT / "data" / f"digits_{name}.h5")
        acc0 = float((m(xte).argmax(1) == yte).mean())
        print(f"| {name} | 0 | {acc0:.4f} | | | |")
        h = hessian_diagonal(m, xtr, ytr)
        ws = {k: v for k, v in prunable_weights(m).items() if k in h}
        for s in SPARSITIES:
            accs = []
            for scope in ("global", "layer"):
                pm, _ = obd(m, xtr, ytr, sparsity=s, hessian=h, scope=scope)
                accs.append(pm)
            accs.append(apply_masks(m, global_magnitude(ws, s)))
            accs.append(apply_masks(m, {k: magnitude(v, sparsity=s) for k, v in ws.items()}))
            cells = " | ".join(f"{float((a(xte).argmax(1) == yte).mean()):.4f}" for a in accs)
            print(f"| {name} | {s} | {cells} |")


if __name__ == "__main__":
    main()
