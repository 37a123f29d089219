"""HashedNets training (Chen et al. 2015): retrain the bucket values of a hashed
digits model in PyTorch and write it back as a refcomp model.

    python examples/hashednets_torch.py --model mlp --factor 8 --epochs 30
    python examples/hashednets_torch.py --model cnn --factor 16 -o cnn_hashed.h5

Every dense and conv weight W of the shipped model becomes a
:class:`refcomp.hashing.HashedWeight` of ceil(|W| / factor) buckets (the
authors' string keys, sign hash, seed 1691), initialised by least squares
(:func:`refcomp.hashing.hash_compress`).  In PyTorch each virtual weight is
``V = xi * w[h]`` gathered from the trainable bucket vector, so the gradient of
a bucket is the sum over its virtual weights of ``xi * dL/dV`` (the paper's
backward, without ``rescale_grad``); biases train too.  Training: Adam,
cross-entropy, batch 32, the shipped train split.  The trained buckets go back
into HashedWeight objects (same seed and keys), the model is saved, and the
accuracy is measured with refcomp's reference forward pass, which never
forms V.
"""

import argparse
from fractions import Fraction

import numpy as np
import torch
import torch.nn.functional as F

import refcomp
from refcomp.data import load_split
from refcomp.hashing import HashedWeight, hash_compress, n_buckets_for
from refcomp.metrics import accuracy


class HashedNet(torch.nn.Module):
    """The refcomp model's layers with hashed W (dense, conv2d, relu, pool, flatten, reshape)."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.buckets = torch.nn.ParameterList()
        self.biases = torch.nn.ParameterList()
        self.maps = []
        for layer in model.layers:
            if layer.kind in ("dense", "conv2d"):
                W = layer.weights["W"]
                idx, sgn = W.indices()
                self.maps.append((torch.from_numpy(idx), torch.from_numpy(sgn.astype(np.float32))))
                self.buckets.append(torch.nn.Parameter(torch.from_numpy(W.buckets.copy())))
                self.biases.append(torch.nn.Parameter(torch.from_numpy(layer.w("b").copy())))

    def forward(self, x):
        k = 0
        for layer in self.model.layers:
            a = layer.attrs
            if layer.kind in ("dense", "conv2d"):
                idx, sgn = self.maps[k]
                V = self.buckets[k][idx] * sgn
                if layer.kind == "dense":
                    x = F.linear(x, V, self.biases[k])
                else:
                    x = F.conv2d(x, V, self.biases[k], stride=a["stride"], padding=a["padding"])
                k += 1
            elif layer.kind == "activation" and a["function"] == "relu":
                x = F.relu(x)
            elif layer.kind == "max_pool2d":
                x = F.max_pool2d(x, a["size"], a["stride"])
            elif layer.kind == "flatten":
                x = x.reshape(x.shape[0], -1)
            elif layer.kind == "reshape":
                x = x.reshape((x.shape[0],) + tuple(a["shape"]))
            else:
                raise SystemExit(f"layer kind {layer.kind!r} not handled by this example")
        return x

    def to_refcomp(self):
        upd, k = {}, 0
        for i, layer in enumerate(self.model.layers):
            if layer.kind in ("dense", "conv2d"):
                W = layer.weights["W"]
                buckets = self.buckets[k].detach().numpy().astype(np.float32)
                upd[(str(i), "W")] = HashedWeight(buckets, W.shape, seed=W.seed, sign=W.sign,
                                                  hash=W.hash)
                upd[(str(i), "b")] = self.biases[k].detach().numpy().astype(np.float32)
                k += 1
        return self.model.replace_weights(upd)


def hashed(model, factor):
    upd = {}
    for path, layer in model.named_layers():
        if layer.kind in ("dense", "conv2d"):
            W = layer.weights["W"]
            upd[(path, "W")] = hash_compress(W, n_buckets_for(W.size, Fraction(1, factor)))
    return model.replace_weights(upd)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", choices=("mlp", "cnn"), default="mlp")
    ap.add_argument("--factor", type=int, default=8, help="|W| / buckets (compression 1/factor)")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("-o", "--output", default=None, help="write the trained model here")
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(2)
    model = refcomp.load(f"data/digits_{args.model}.h5")
    xtr, ytr = load_split("train")
    xte, yte = load_split("test")
    start = hashed(model, args.factor)
    print(f"float {accuracy(model(xte), yte):.4f}; hashed 1/{args.factor} (least squares, "
          f"no training) {accuracy(start(xte), yte):.4f}")
    net = HashedNet(start)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    X, Y = torch.from_numpy(xtr), torch.from_numpy(ytr)
    gen = torch.Generator().manual_seed(args.seed)
    for epoch in range(args.epochs):
        perm = torch.randperm(len(X), generator=gen)
        for s in range(0, len(X), 32):
            b = perm[s:s + 32]
            opt.zero_grad()
            F.cross_entropy(net(X[b]), Y[b]).backward()
            opt.step()
        if (epoch + 1) % 10 == 0 or epoch + 1 == args.epochs:
            trained = net.to_refcomp()
            print(f"epoch {epoch + 1}: test accuracy (refcomp reference, V never formed) "
                  f"{accuracy(trained(xte), yte):.4f}")
    trained = net.to_refcomp()
    with torch.no_grad():
        ours = trained(xte).astype(np.float64)
        theirs = net(torch.from_numpy(xte)).numpy().astype(np.float64)
    print(f"max |torch - refcomp| on the test logits: {np.abs(ours - theirs).max():.2e}")
    print(f"stored: {refcomp.compress.size_report(trained).compressed_bits} bits "
          f"(tau {refcomp.compress.size_report(trained).tau:.2f})")
    if args.output:
        refcomp.save(trained, args.output)
        back = refcomp.load(args.output)
        assert np.array_equal(back(xte), trained(xte))
        print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
