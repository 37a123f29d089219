"""Bits per non-zero of the connectivity of pruned layers under each index coding
(README table): bitmap, Deep Compression relative indices + Huffman, universal
gap codes, WebGraph (BVGraph defaults W=7, L_min=4, zeta_3, and the best zeta_k
in 1..8).

Cases: the W weights of the shipped MLP and CNN pruned per layer by
magnitude (50 %, 90 %) and structurally (filters / input channels, 50 % and
90 % removed), and a 4096 x 4096 Gaussian layer pruned at 90 % by magnitude
and by input channels.  Totals are summed over a model's W weights (bits /
non-zeros); every figure is the byte length of the stream times 8.

Usage: ``python examples/webgraph_report.py [--models digits_mlp ...] [--no-large]``
(default: both models and the 4096 x 4096 layer, the README table).
"""

import argparse

import numpy as np

import refcomp
from refcomp.compress import index_costs
from refcomp.prune import magnitude, structured

CODINGS = ("bitmap", "relative+huffman", "gap", "webgraph")
MODELS = ("digits_mlp", "digits_cnn")


def _masks(model, how, s):
    out = []
    for _, layer in model.named_layers():
        if layer.kind in ("dense", "conv2d"):
            W = layer.weights["W"]
            out.append(magnitude(W, sparsity=s) if how == "magnitude"
                       else structured(W, level=how, sparsity=s))
    return out


def _row(label, masks):
    bits = dict.fromkeys(CODINGS, 0)
    nnz = 0
    best = 0
    for m in masks:
        c = index_costs(m)
        nnz += c["nnz"]
        for k in CODINGS:
            bits[k] += c["bits"][k]
        best += min(index_costs(m, webgraph_params={"zeta_k": k})["bits"]["webgraph"]
                    for k in range(1, 9))
    cells = [f"{bits[k] / nnz:.2f}" for k in CODINGS] + [f"{best / nnz:.2f}"]
    return f"| {label} | {nnz} | " + " | ".join(cells) + " |"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    ap.add_argument("--no-large", action="store_true", help="skip the 4096 x 4096 layer")
    args = ap.parse_args(argv)
    print("| case | non-zeros | bitmap | relative + Huffman | gap codes | WebGraph | "
          "WebGraph, best zeta_k |")
    print("|---|---|---|---|---|---|---|")
    for name in args.models:
        model = refcomp.load(f"data/{name}.h5")
        for how, s in (("magnitude", 0.5), ("magnitude", 0.9), ("filter", 0.5),
                       ("channel", 0.5), ("channel", 0.9)):
            print(_row(f"{name}, {how} {int(100 * s)} %", _masks(model, how, s)))
    if args.no_large:
        return
    W = np.random.default_rng(0).standard_normal((4096, 4096)).astype(np.float32)
    print(_row("4096 x 4096 Gaussian, magnitude 90 %", [magnitude(W, sparsity=0.9)]))
    print(_row("4096 x 4096 Gaussian, channel 90 %", [structured(W, level="channel",
                                                                  sparsity=0.9)]))


if __name__ == "__main__":
    main()
