"""Knowledge distillation (Hinton et al. 2015): train a small digits MLP from the
shipped CNN, with refcomp's loss and closed-form gradient inside a PyTorch loop.

    python examples/distill_torch.py --hidden 16 --epochs 60 -o student.h5

The teacher's logits on the train split come from refcomp's reference
forward pass of ``data/digits_cnn.h5`` (53,002 parameters).  The student is an
MLP 64 -> hidden -> 10 (ReLU).  Its loss is
:func:`refcomp.distill.distillation_loss` (alpha T^2 KL + (1 - alpha) CE), run
as a ``torch.autograd.Function`` whose backward is
:func:`refcomp.distill.distillation_grad`: PyTorch differentiates only the
student, refcomp supplies the loss gradient.  For comparison the same student
is trained on the labels alone (alpha = 0).  The trained student is written as
a refcomp model; accuracies are measured with refcomp's reference forward pass
on the test split.
"""

import argparse

import numpy as np
import torch

import refcomp
from refcomp.data import load_split
from refcomp.distill import distillation_grad, distillation_loss
from refcomp.metrics import accuracy


class Distill(torch.autograd.Function):
    """loss = refcomp.distill.distillation_loss(z, teacher, y); dz = distillation_grad."""

    @staticmethod
    def forward(ctx, z, teacher, labels, temperature, alpha):
        zs = z.detach().double().numpy()
        ctx.grad = distillation_grad(zs, teacher, labels, temperature=temperature, alpha=alpha)
        loss = distillation_loss(zs, teacher, labels, temperature=temperature, alpha=alpha)
        return z.new_tensor(loss)

    @staticmethod
    def backward(ctx, g):
        return (g * torch.from_numpy(ctx.grad).to(g.dtype)), None, None, None, None


def student_model(net):
    f32 = np.float32
    W1, b1 = net[0].weight.detach().numpy().astype(f32), net[0].bias.detach().numpy().astype(f32)
    W2, b2 = net[2].weight.detach().numpy().astype(f32), net[2].bias.detach().numpy().astype(f32)
    return refcomp.Model([refcomp.Layer("flatten"),
                          refcomp.Layer("dense", weights={"W": W1, "b": b1}),
                          refcomp.Layer("activation", attrs={"function": "relu"}),
                          refcomp.Layer("dense", weights={"W": W2, "b": b2})],
                         name="digits_student", input_shape=(8, 8))


def train(xtr, ytr, teacher, *, hidden, epochs, temperature, alpha, seed, lr):
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(64, hidden), torch.nn.ReLU(),
                              torch.nn.Linear(hidden, 10))
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    X = torch.from_numpy(xtr.reshape(len(xtr), -1))
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        perm = torch.randperm(len(X), generator=gen).numpy()
        for s in range(0, len(X), 32):
            b = perm[s:s + 32]
            opt.zero_grad()
            loss = Distill.apply(net(X[b]), teacher[b], ytr[b], temperature, alpha)
            loss.backward()
            opt.step()
    return student_model(net)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hidden", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--temperature", type=float, default=4.0)
    ap.add_argument("--alpha", type=float, default=0.9)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("-o", "--output", default=None)
    args = ap.parse_args()
    torch.set_num_threads(2)
    teacher_model = refcomp.load("data/digits_cnn.h5")
    xtr, ytr = load_split("train")
    xte, yte = load_split("test")
    teacher = teacher_model(xtr).astype(np.float64)       # reference forward, once
    print(f"teacher digits_cnn: {teacher_model.n_params()} parameters, test accuracy "
          f"{accuracy(teacher_model(xte), yte):.4f}")
    kw = dict(hidden=args.hidden, epochs=args.epochs, temperature=args.temperature,
              seed=args.seed, lr=args.lr)
    hard = train(xtr, ytr, teacher, alpha=0.0, **kw)
    soft = train(xtr, ytr, teacher, alpha=args.alpha, **kw)
    print(f"student MLP 64-{args.hidden}-10: {soft.n_params()} parameters")
    print(f"  labels only (alpha 0):                test accuracy {accuracy(hard(xte), yte):.4f}")
    print(f"  distilled (T {args.temperature}, alpha {args.alpha}): test accuracy "
          f"{accuracy(soft(xte), yte):.4f}")
    if args.output:
        refcomp.save(soft, args.output)
        print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
