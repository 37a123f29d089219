"""Optimal Brain Damage: saliency, Gauss-Newton Hessian diagonal, exact diagonal, obd."""

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

import refcomp
from refcomp import Layer, Model
from refcomp.data import load_split
from refcomp.prune import hessian_diagonal, obd, obd_saliency
from refcomp.prune.masked import Masked

DATA = Path(__file__).resolve().parents[1] / "data"


def test_saliency_definition():
    w = np.array([1.5, -2.0, 0.0, 3.0], dtype=np.float32)
    h = np.array([2.0, 0.5, 7.0, -1.0], dtype=np.float32)
    s = obd_saliency(w, h)
    assert s.dtype == np.float64
    assert s.tolist() == [float(Fraction(2) * Fraction(1.5) ** 2 / 2), 1.0, 0.0, -4.5]
    with pytest.raises(refcomp.ShapeError):
        obd_saliency(w, h[:3])


def tiny_mlp(act):
    rng = np.random.default_rng(4)
    return Model([Layer("dense", weights={"W": rng.normal(size=(4, 3)), "b": rng.normal(size=4)}),
                  Layer("activation", attrs={"function": act}),
                  Layer("dense", weights={"W": rng.normal(size=(3, 4)), "b": rng.normal(size=3)})],
                 input_shape=(3,))


def naive_gn(model, x, y):
    """Gauss-Newton diagonal back-propagation written with explicit loops."""
    W1, b1 = model.layers[0].weights["W"], model.layers[0].weights["b"]
    W2, b2 = model.layers[2].weights["W"], model.layers[2].weights["b"]
    act = model.layers[1].attrs["function"]
    N = x.shape[0]
    h1 = np.zeros_like(W1)
    h2 = np.zeros_like(W2)
    for n in range(N):
        u = [sum(W1[i, j] * x[n, j] for j in range(3)) + b1[i] for i in range(4)]
        if act == "tanh":
            a = [np.tanh(v) for v in u]
            d = [1 - np.tanh(v) ** 2 for v in u]
        else:
            a = [max(v, 0.0) for v in u]
            d = [1.0 if v > 0 else 0.0 for v in u]
        z = [sum(W2[k, i] * a[i] for i in range(4)) + b2[k] for k in range(3)]
        e = [np.exp(v - max(z)) for v in z]
        p = [v / sum(e) for v in e]
        hz = [pk * (1 - pk) / N for pk in p]
        for k in range(3):
            for i in range(4):
                h2[k, i] += hz[k] * a[i] ** 2
        for i in range(4):
            ha = sum(W2[k, i] ** 2 * hz[k] for k in range(3))
            for j in range(3):
                h1[i, j] += d[i] ** 2 * ha * x[n, j] ** 2
    return h1, h2


@pytest.mark.parametrize("act", ["tanh", "relu"])
def test_gauss_newton_diagonal_vs_naive_loops(act):
    m = tiny_mlp(act)
    rng = np.random.default_rng(9)
    x = rng.normal(size=(6, 3))
    y = rng.integers(0, 3, size=6)
    h = hessian_diagonal(m, x, y)
    h1, h2 = naive_gn(m, x, y)
    np.testing.assert_allclose(h[("0", "W")], h1, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(h[("2", "W")], h2, rtol=1e-12, atol=1e-15)
    # the last layer's Gauss-Newton diagonal is its exact Hessian diagonal
    ex = hessian_diagonal(m, x, y, exact=True)
    np.testing.assert_allclose(h[("2", "W")], ex[("2", "W")], rtol=1e-6, atol=1e-10)
    np.testing.assert_allclose(h[("2", "b")], ex[("2", "b")], rtol=1e-6, atol=1e-10)


def test_exact_diagonal_vs_torch_on_tiny_cnn():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    W1 = rng.normal(size=(3, 2, 3, 3)) * 0.5
    b1 = rng.normal(size=3) * 0.1
    W2 = rng.normal(size=(3, 3 * 2 * 2)) * 0.5
    b2 = rng.normal(size=3) * 0.1
    m = Model([Layer("conv2d", weights={"W": W1, "b": b1}, attrs={"padding": 1}),
               Layer("activation", attrs={"function": "tanh"}),
               Layer("avg_pool2d", attrs={"size": 2}),
               Layer("flatten"),
               Layer("dense", weights={"W": W2, "b": b2})], input_shape=(2, 4, 4))
    x = rng.normal(size=(4, 2, 4, 4))
    y = rng.integers(0, 3, size=4)
    ex = hessian_diagonal(m, x, y, exact=True)
    gn = hessian_diagonal(m, x, y)

    def loss(w1, bb1, w2, bb2):
        z = torch.nn.functional.conv2d(torch.tensor(x), w1, bb1, padding=1).tanh()
        z = torch.nn.functional.avg_pool2d(z, 2).flatten(1) @ w2.T + bb2
        return torch.nn.functional.cross_entropy(z, torch.tensor(y))
    params = tuple(torch.tensor(v) for v in (W1, b1, W2, b2))
    H = torch.autograd.functional.hessian(loss, params)
    for i, key in enumerate([("0", "W"), ("0", "b"), ("4", "W"), ("4", "b")]):
        k = params[i].numel()
        d = torch.diagonal(H[i][i].reshape(k, k)).numpy().reshape(params[i].shape)
        np.testing.assert_allclose(ex[key], d, rtol=1e-5, atol=1e-9)
        if key[0] == "4":
            np.testing.assert_allclose(gn[key], d, rtol=1e-10, atol=1e-14)


def test_gn_on_residual_and_pool_is_finite_and_deterministic():
    m = refcomp.load(DATA / "digits_resnet.h5")
    x, y = load_split("calib")
    h1 = hessian_diagonal(m, x[:40], y[:40])
    h2 = hessian_diagonal(m, x[:40], y[:40])
    assert set(h1) == {(p, w) for p in ("1", "3/0", "3/2", "5/0", "5/2", "9") for w in "Wb"}
    for k in h1:
        assert h1[k].tobytes() == h2[k].tobytes()
        assert np.all(h1[k] >= 0)                       # Gauss-Newton: a sum of squares


@pytest.mark.parametrize("name", ["mlp", "gru"])
def test_obd_prunes_exact_count_and_lowest_saliency(name):
    m = refcomp.load(DATA / f"digits_{name}.h5")
    x, y = load_split("calib")
    h = hessian_diagonal(m, x, y)
    pm, masks = obd(m, x, y, sparsity=0.7, hessian=h)
    total = sum(v.size for v in masks.values())
    assert sum(int((~v).sum()) for v in masks.values()) == round(Fraction(0.7) * total)
    sal_kept, sal_gone = [], []
    for k, mk in masks.items():
        s = obd_saliency(m.get_layer(k[0]).weights["W"], h[k])
        sal_kept.append(s[mk])
        sal_gone.append(s[~mk])
        assert isinstance(pm.get_layer(k[0]).weights["W"], Masked)
    assert np.concatenate(sal_gone).max() <= np.concatenate(sal_kept).min()
    pl, ml = obd(m, x, y, sparsity=0.5, hessian=h, scope="layer")
    for v in ml.values():
        assert int((~v).sum()) == round(Fraction(0.5) * v.size)


def test_obd_bad_input():
    m = tiny_mlp("relu")
    x = np.zeros((2, 3))
    with pytest.raises(refcomp.DTypeError, match="y must be an integer"):
        hessian_diagonal(m, x, np.zeros(2))
    with pytest.raises(refcomp.ShapeError, match="one label per sample"):
        hessian_diagonal(m, x, np.zeros(3, dtype=np.int64))
    with pytest.raises(refcomp.ParameterError, match="labels"):
        hessian_diagonal(m, x, np.array([0, 5]))
    with pytest.raises(refcomp.ParameterError, match="sparsity"):
        obd(m, x, np.array([0, 1]), sparsity=1.2)
    with pytest.raises(refcomp.ParameterError, match="scope"):
        obd(m, x, np.array([0, 1]), sparsity=0.2, scope="net")


def test_hessian_same_bits_for_any_thread_count():
    import numba
    m = refcomp.load(DATA / "digits_cnn.h5")
    x, y = load_split("calib")
    old = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        h1 = hessian_diagonal(m, x[:30], y[:30])
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        h2 = hessian_diagonal(m, x[:30], y[:30])
    finally:
        numba.set_num_threads(old)
    assert all(h1[k].tobytes() == h2[k].tobytes() for k in h1)


def test_gauss_newton_conv_stride_padding_vs_naive_loops():
    rng = np.random.default_rng(12)
    W1, b1 = rng.normal(size=(3, 2, 2, 2)), rng.normal(size=3)
    W2, b2 = rng.normal(size=(4, 3, 3, 3)) * 0.5, rng.normal(size=4)
    W3, b3 = rng.normal(size=(3, 16)) * 0.5, rng.normal(size=3)
    m = Model([Layer("conv2d", weights={"W": W1, "b": b1}),
               Layer("activation", attrs={"function": "relu"}),
               Layer("conv2d", weights={"W": W2, "b": b2}, attrs={"stride": 2, "padding": 1}),
               Layer("flatten"),
               Layer("dense", weights={"W": W3, "b": b3})], input_shape=(2, 5, 5))
    x = rng.normal(size=(3, 2, 5, 5))
    y = np.array([0, 2, 1])
    h = hessian_diagonal(m, x, y)
    N = 3
    hW1, hW2 = np.zeros_like(W1), np.zeros_like(W2)
    for n in range(N):
        u1 = np.zeros((3, 4, 4))
        for o in range(3):
            for p in range(4):
                for q in range(4):
                    u1[o, p, q] = b1[o] + sum(W1[o, c, i, j] * x[n, c, p + i, q + j]
                                              for c in range(2) for i in range(2)
                                              for j in range(2))
        a1 = np.maximum(u1, 0)
        a1p = np.pad(a1, ((0, 0), (1, 1), (1, 1)))
        u2 = np.zeros((4, 2, 2))
        for o in range(4):
            for p in range(2):
                for q in range(2):
                    u2[o, p, q] = b2[o] + sum(W2[o, c, i, j] * a1p[c, 2 * p + i, 2 * q + j]
                                              for c in range(3) for i in range(3)
                                              for j in range(3))
        z = W3 @ u2.reshape(-1) + b3
        pr = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
        hz = pr * (1 - pr) / N
        hu2 = ((W3 ** 2).T @ hz).reshape(4, 2, 2)
        ha1p = np.zeros((3, 6, 6))
        for o in range(4):
            for p in range(2):
                for q in range(2):
                    for c in range(3):
                        for i in range(3):
                            for j in range(3):
                                hW2[o, c, i, j] += hu2[o, p, q] * a1p[c, 2 * p + i, 2 * q + j] ** 2
                                ha1p[c, 2 * p + i, 2 * q + j] += W2[o, c, i, j] ** 2 * hu2[o, p, q]
        hu1 = ha1p[:, 1:5, 1:5] * (u1 > 0)
        for o in range(3):
            for p in range(4):
                for q in range(4):
                    for c in range(2):
                        for i in range(2):
                            for j in range(2):
                                hW1[o, c, i, j] += hu1[o, p, q] * x[n, c, p + i, q + j] ** 2
    np.testing.assert_allclose(h[("2", "W")], hW2, rtol=1e-12, atol=1e-16)
    np.testing.assert_allclose(h[("0", "W")], hW1, rtol=1e-12, atol=1e-16)


def test_backward_routing_matches_torch_gradients_residual_pool_bn():
    """The backward pass shared by both modes (square=False) against autograd:
    residual with index map, max pooling with padding, batch norm, sigmoid."""
    torch = pytest.importorskip("torch")
    import importlib
    O = importlib.import_module("refcomp.prune.obd")
    rng = np.random.default_rng(3)
    Wa, ba = rng.normal(size=(4, 2, 3, 3)) * 0.5, rng.normal(size=4)
    Wb, bb = rng.normal(size=(2, 4, 3, 3)) * 0.5, rng.normal(size=2)
    g, be = rng.uniform(0.5, 2, 4), rng.normal(size=4)
    mu, var = rng.normal(size=4), rng.uniform(0.5, 2, 4)
    Wd, bd = rng.normal(size=(3, 4 * 3 * 3)), rng.normal(size=3)
    m = Model([
        Layer("conv2d", weights={"W": Wa, "b": ba}, attrs={"padding": 1}),
        Layer("batch_norm", weights={"gamma": g, "beta": be, "mean": mu, "var": var}),
        Layer("residual", weights={"index_map": np.array([1, 3])}, layers=[
            Layer("conv2d", weights={"W": Wb, "b": bb}, attrs={"padding": 1}),
            Layer("activation", attrs={"function": "sigmoid"})]),
        Layer("max_pool2d", attrs={"size": 2, "padding": 1}),
        Layer("flatten"),
        Layer("dense", weights={"W": Wd, "b": bd})], input_shape=(2, 4, 4))
    x = rng.normal(size=(3, 2, 4, 4))
    y = np.array([2, 0, 1])
    seq, x64, stop = O._prepare(m, x, y)
    grads = O._grad_or_gn(seq, x64, y, stop, False)
    T = {k: torch.tensor(v, requires_grad=True) for k, v in
         dict(Wa=Wa, ba=ba, Wb=Wb, bb=bb, Wd=Wd, bd=bd).items()}
    F = torch.nn.functional
    h = F.conv2d(torch.tensor(x), T["Wa"], T["ba"], padding=1)
    h = F.batch_norm(h, torch.tensor(mu), torch.tensor(var), torch.tensor(g), torch.tensor(be),
                     eps=1e-5)
    f = torch.sigmoid(F.conv2d(h, T["Wb"], T["bb"], padding=1))
    h = h.clone()
    h[:, [1, 3]] = h[:, [1, 3]] + f
    h = F.max_pool2d(h, 2, padding=1).flatten(1)
    F.cross_entropy(h @ T["Wd"].T + T["bd"], torch.tensor(y)).backward()
    for key, name in [(("0", "W"), "Wa"), (("0", "b"), "ba"), (("2/0", "W"), "Wb"),
                      (("2/0", "b"), "bb"), (("5", "W"), "Wd"), (("5", "b"), "bd")]:
        np.testing.assert_allclose(grads[key], T[name].grad.numpy(), rtol=1e-10, atol=1e-13)
