"""Worked example: "Less is more" (seed 003) alternating PyTorch training with
refcomp's proximal-and-shrink step on a shipped digits model.

    python examples/less_is_more_torch.py --model mlp
    python examples/less_is_more_torch.py --model cnn --ratio 0.3

Each epoch trains the current (possibly already shrunk) network for one epoch
in PyTorch (Adam, cross-entropy, batch 32, the shipped train split); every
``--interval`` epochs, until ``--final`` epochs before the end, the weights go
back to a refcomp Model and ``refcomp.prune.less_is_more`` applies eq. (1)
with the relative threshold and removes the zeroed neurons; a new PyTorch
module of the smaller shape continues training.  The last ``--final`` epochs
train without reduction (seed 003 §4.7).  Accuracy is measured with the
refcomp reference forward pass on the test split.
"""

import argparse
from pathlib import Path

import torch
from torch import nn

import refcomp
from refcomp.data import load_split
from refcomp.prune import less_is_more

ROOT = Path(__file__).resolve().parents[1]


class Reshape(nn.Module):
    def __init__(self, shape):
        super().__init__()
        self.shape = shape

    def forward(self, x):
        return x.reshape((x.shape[0],) + self.shape)


def to_torch(model):
    """nn.Sequential of the same function (dense, conv2d NCHW, relu, pooling, flatten, reshape)."""
    mods = []
    for layer in model.layers:
        k, a = layer.kind, layer.attrs
        if k == "dense":
            W = layer.w("W")
            m = nn.Linear(W.shape[1], W.shape[0], bias="b" in layer.weights)
        elif k == "conv2d":
            W = layer.w("W")
            m = nn.Conv2d(W.shape[1], W.shape[0], W.shape[2:], stride=a["stride"],
                          padding=a["padding"], bias="b" in layer.weights)
        elif k == "activation" and a["function"] == "relu":
            m = nn.ReLU()
        elif k == "max_pool2d":
            m = nn.MaxPool2d(a["size"], a["stride"])
        elif k == "flatten":
            m = nn.Flatten()
        elif k == "reshape":
            m = Reshape(tuple(a["shape"]))
        else:
            raise SystemExit(f"layer kind {k!r} not handled by this example")
        if k in ("dense", "conv2d"):
            with torch.no_grad():
                m.weight.copy_(torch.from_numpy(layer.w("W")))
                if m.bias is not None:
                    m.bias.copy_(torch.from_numpy(layer.w("b")))
        mods.append(m)
    return nn.Sequential(*mods)


def from_torch(net, model):
    """Copy the trained parameters back into ``model`` (same structure)."""
    upd = {}
    for i, (m, layer) in enumerate(zip(net, model.layers)):
        if layer.kind in ("dense", "conv2d"):
            upd[(str(i), "W")] = m.weight.detach().numpy().copy()
            if m.bias is not None:
                upd[(str(i), "b")] = m.bias.detach().numpy().copy()
    return model.replace_weights(upd)


def accuracy(model, x, y):
    return float((model(x).argmax(1) == y).mean())


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="mlp", choices=["mlp", "cnn"])
    ap.add_argument("--ratio", type=float, default=0.2, help="relative threshold of eq. (1)")
    ap.add_argument("--interval", type=int, default=2, help="epochs between reductions")
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--final", type=int, default=10, help="last epochs without reduction")
    ap.add_argument("--lr", type=float, default=1e-3)
    args = ap.parse_args()

    torch.manual_seed(1234)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    xtr, ytr = load_split("train")
    xte, yte = load_split("test")
    model = refcomp.load(ROOT / "data" / f"digits_{args.model}.h5")
    start_params, start_acc = model.n_params(), accuracy(model, xte, yte)
    print(f"start: {start_params} parameters, test accuracy {start_acc:.4f}")
    gen = torch.Generator().manual_seed(1234)
    xt, yt = torch.from_numpy(xtr), torch.from_numpy(ytr)
    net = to_torch(model)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    for epoch in range(1, args.epochs + 1):
        net.train()
        for idx in torch.randperm(len(xt), generator=gen).split(32):
            opt.zero_grad()
            nn.functional.cross_entropy(net(xt[idx]), yt[idx]).backward()
            opt.step()
        model = from_torch(net, model)
        msg = ""
        if epoch % args.interval == 0 and epoch <= args.epochs - args.final:
            model, rep = less_is_more(model, args.ratio)
            widths = [r["neurons_after"] for r in rep["layers"]]
            msg = f"  reduced: widths {widths}, {rep['params_after']} parameters"
            net = to_torch(model)                    # new shapes: new module and optimizer
            opt = torch.optim.Adam(net.parameters(), lr=args.lr)
        print(f"epoch {epoch:3d}: test accuracy {accuracy(model, xte, yte):.4f}{msg}")
    end = model.n_params()
    print(f"end: {end} parameters ({100 * (1 - end / start_params):.1f}% reduction), "
          f"test accuracy {accuracy(model, xte, yte):.4f} (start {start_acc:.4f})")
    print(model.summary())


if __name__ == "__main__":
    main()
