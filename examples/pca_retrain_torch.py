"""Seed 004 §3.2 (Fernandez Brillet et al.): retrain only the PCA coordinates
with PyTorch, the basis and the mean frozen, and write the result back to a
refcomp model.

    python examples/pca_retrain_torch.py --model cnn --energy 0.7
    python examples/pca_retrain_torch.py --model resnet --energy 0.6 \
        --epochs 20 --out resnet_pca60_retrained.h5

Steps: :func:`refcomp.decompose.pca_model` at the energy threshold on every
conv2d and dense layer; a PyTorch module whose decomposed layers compute
``W = coords @ basis + mean`` in the graph (the paper's Fig. 3: basis and
mean are buffers, coords the only ``nn.Parameter``; every bias and every
other weight frozen too); Adam on cross-entropy over the shipped training
split; the trained coordinates rounded to float32 and stored back as
:class:`refcomp.decompose.PCAWeight` (same basis and mean).  Accuracies are
refcomp's reference forward on the test split: original, PCA, PCA + this
retraining, and PCA + the closed-form least-squares refit
(:func:`refcomp.decompose.refit_coordinates`) for comparison.
"""

import argparse
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import refcomp
from refcomp.data import load_split
from refcomp.decompose import PCAWeight, param_count, pca_model, refit_coordinates

ROOT = Path(__file__).resolve().parents[1]


class Mirror(nn.Module):
    """The refcomp model's forward pass in PyTorch (kinds of the digits models)."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.coords = nn.ParameterDict()
        self.frozen = {}
        for path, layer in model.named_layers():
            for name, w in layer.weights.items():
                key = f"{path}:{name}".replace("/", "_")
                if isinstance(w, PCAWeight):
                    self.coords[key] = nn.Parameter(torch.from_numpy(w.coords.copy()))
                    self.register_buffer(key + "_basis", torch.from_numpy(w.basis.copy()))
                    self.register_buffer(key + "_mean", torch.from_numpy(w.mean.copy()))
                elif name != "index_map":
                    self.register_buffer(key, torch.from_numpy(np.asarray(w).copy()))

    def weight(self, path, layer, name):
        key = f"{path}:{name}".replace("/", "_")
        if key in self.coords:            # reconstruction inside the graph (paper Fig. 3)
            w = self.coords[key] @ getattr(self, key + "_basis") + getattr(self, key + "_mean")
            return w.reshape(layer.weights[name].weight_shape)
        return getattr(self, key, None)

    def run(self, seq, x, prefix):
        for i, layer in enumerate(seq):
            path, k, a = f"{prefix}{i}", layer.kind, layer.attrs
            if k == "dense":
                x = F.linear(x, self.weight(path, layer, "W"), self.weight(path, layer, "b"))
            elif k == "conv2d":
                x = F.conv2d(x, self.weight(path, layer, "W"), self.weight(path, layer, "b"),
                             stride=a["stride"], padding=a["padding"], dilation=a["dilation"],
                             groups=a["groups"])
            elif k == "activation" and a["function"] == "relu":
                x = torch.relu(x)
            elif k == "max_pool2d":
                x = F.max_pool2d(x, a["size"], a["stride"])
            elif k == "flatten":
                x = x.flatten(1)
            elif k == "reshape":
                x = x.reshape((x.shape[0],) + tuple(a["shape"]))
            elif k == "residual" and "index_map" not in layer.weights:
                x = x + self.run(layer.layers, x, path + "/")
            else:
                raise SystemExit(f"layer kind {k!r} not handled by this example")
        return x

    def forward(self, x):
        return self.run(self.model.layers, x, "")

    def to_refcomp(self):
        """The refcomp model with the trained coordinates (rounded to float32)."""
        mapping = {}
        for path, layer in self.model.named_layers():
            w = layer.weights.get("W")
            key = f"{path}:W".replace("/", "_")
            if isinstance(w, PCAWeight):
                coords = self.coords[key].detach().numpy().astype(w.dtype)
                mapping[(path, "W")] = PCAWeight(w.basis, coords, w.mean, w.weight_shape,
                                                 forward=w.forward)
        return self.model.replace_weights(mapping)


def accuracy(model, x, y):
    return float(np.mean(np.argmax(model(x), axis=1) == y))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="cnn", choices=("cnn", "resnet", "mlp"))
    ap.add_argument("--energy", type=float, default=0.7)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="write the retrained refcomp model here")
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(2)
    model = refcomp.load(ROOT / "data" / f"digits_{args.model}.h5")
    xtr, ytr = load_split("train")
    xc, _ = load_split("calib")
    xt, yt = load_split("test")
    mp = pca_model(model, args.energy, layers="all")
    net = Mirror(mp)
    opt = torch.optim.Adam(net.coords.parameters(), lr=args.lr)
    X, Y = torch.from_numpy(xtr), torch.from_numpy(ytr)
    gen = torch.Generator().manual_seed(args.seed)
    for epoch in range(args.epochs):
        perm = torch.randperm(X.shape[0], generator=gen)
        total = 0.0
        for s in range(0, X.shape[0], 32):
            idx = perm[s:s + 32]
            loss = F.cross_entropy(net(X[idx]), Y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss) * idx.numel()
        print(f"epoch {epoch + 1:>3}: train loss {total / X.shape[0]:.4f}")
    retrained = net.to_refcomp()
    refit = refit_coordinates(mp, xc, original=model)
    print(f"\ndigits_{args.model}, energy {100 * args.energy:g} %: P {param_count(model):,} -> "
          f"{param_count(mp):,} (G = {param_count(model) / param_count(mp):.2f})")
    print(f"  original              {100 * accuracy(model, xt, yt):.2f} %")
    print(f"  PCA                   {100 * accuracy(mp, xt, yt):.2f} %")
    print(f"  PCA + torch retrain   {100 * accuracy(retrained, xt, yt):.2f} %  (coords only, "
          f"{args.epochs} epochs)")
    print(f"  PCA + LS refit        {100 * accuracy(refit, xt, yt):.2f} %  (refit_coordinates)")
    if args.out:
        refcomp.save(retrained, args.out)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
