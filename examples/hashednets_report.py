"""HashedNets without retraining on the shipped MLP and CNN: accuracy against
the compression factor (README table).

Every dense and conv weight W is replaced by a hashed weight of
ceil(|W| / factor) buckets fitted by least squares
(:func:`refcomp.hashing.hash_compress`: the authors' string keys, sign hash,
seed 1691); biases stay in float32.  tau is seed 002 eq. (19) on the whole
network (biases counted at 32 bits on both sides, the seed at 32 bits).

Usage: ``python examples/hashednets_report.py [--models digits_mlp ...]`` (prints a
Markdown table; default both models, the README table).
"""

import argparse
from fractions import Fraction

import refcomp
from refcomp.compress import size_report
from refcomp.data import load_split
from refcomp.hashing import hash_compress, n_buckets_for
from refcomp.metrics import accuracy

FACTORS = (1, 2, 4, 8, 16, 32, 64)
MODELS = ("digits_mlp", "digits_cnn")


def hashed_model(model, factor, *, hash="string", sign=True):
    """``model`` with every dense/conv W hashed into ceil(|W| / factor) buckets."""
    mapping = {}
    for path, layer in model.named_layers():
        if layer.kind in ("dense", "conv2d"):
            W = layer.weights["W"]
            nb = n_buckets_for(W.size, Fraction(1, factor))
            mapping[(path, "W")] = hash_compress(W, nb, hash=hash, sign=sign)
    return model.replace_weights(mapping)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    models = ap.parse_args(argv).models
    x, y = load_split("test")
    rows = {}
    for name in models:
        model = refcomp.load(f"data/{name}.h5")
        for f in FACTORS:
            if f == 1:
                rows.setdefault(name, []).append((accuracy(model(x), y), 1.0))
                continue
            hm = hashed_model(model, f)
            rows[name].append((accuracy(hm(x), y), size_report(hm).tau))
    head = "| model | " + " | ".join("float" if f == 1 else f"1/{f}" for f in FACTORS) + " |"
    print(head)
    print("|" + "---|" * (len(FACTORS) + 1))
    for name, cells in rows.items():
        print(f"| {name} | " + " | ".join(f"{100 * a:.1f} % (τ {t:.1f})" for a, t in cells)
              + " |")


if __name__ == "__main__":
    main()
