"""Layers against real PyTorch (torch==2.13.0) in float64."""

import numpy as np
import pytest

import refcomp.layers as L

torch = pytest.importorskip("torch")
F = torch.nn.functional
RNG = np.random.default_rng(99)


def t(a):
    return torch.from_numpy(np.ascontiguousarray(a))


def close(a, b):
    np.testing.assert_allclose(a, b.detach().numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("stride,padding,dilation,groups", [
    (1, 0, 1, 1), (2, 1, 1, 1), ((1, 2), (2, 0), (2, 1), 1), (1, 1, 1, 3), (1, 2, 2, 6),
    (1, "same", 1, 1), (1, "same", 2, 3)])
def test_conv2d(stride, padding, dilation, groups):
    x = RNG.standard_normal((2, 6, 9, 10))
    W = RNG.standard_normal((12, 6 // groups, 3, 3))
    b = RNG.standard_normal(12)
    ours = L.conv2d(x, W, b, stride=stride, padding=padding, dilation=dilation, groups=groups)
    theirs = F.conv2d(t(x), t(W), t(b), stride=stride, padding=padding, dilation=dilation,
                      groups=groups)
    close(ours, theirs)


def test_same_padding_stride2_matches_tf_rule_via_explicit_pad():
    x = RNG.standard_normal((1, 2, 8, 8))
    W = RNG.standard_normal((3, 2, 3, 3))
    ours = L.conv2d(x, W, stride=2, padding="same")
    # TF SAME for in=8, k=3, s=2: out=4, total pad=1 -> (0 before, 1 after)
    theirs = F.conv2d(F.pad(t(x), (0, 1, 0, 1)), t(W), stride=2)
    close(ours, theirs)


@pytest.mark.parametrize("k,s,p", [(2, 2, 0), (3, 2, 1), (3, 1, 1), ((2, 3), (1, 2), (1, 1))])
def test_pools(k, s, p):
    x = RNG.standard_normal((2, 3, 9, 8))
    close(L.max_pool2d(x, k, stride=s, padding=p), F.max_pool2d(t(x), k, s, p))
    close(L.avg_pool2d(x, k, stride=s, padding=p), F.avg_pool2d(t(x), k, s, p))
    close(L.avg_pool2d(x, k, stride=s, padding=p, count_include_pad=False),
          F.avg_pool2d(t(x), k, s, p, count_include_pad=False))


def test_lstm_multi_step_with_states():
    N, T, Fe, H = 3, 6, 5, 7
    m = torch.nn.LSTM(Fe, H, batch_first=True).double()
    x = RNG.standard_normal((N, T, Fe))
    h0, c0 = RNG.standard_normal((N, H)), RNG.standard_normal((N, H))
    out, (h, c) = m(t(x), (t(h0)[None], t(c0)[None]))
    p = {k: v.detach().numpy() for k, v in m.state_dict().items()}
    ours, (oh, oc) = L.lstm(x, p["weight_ih_l0"], p["weight_hh_l0"], p["bias_ih_l0"],
                            p["bias_hh_l0"], h0=h0, c0=c0)
    close(ours, out)
    close(oh, h[0])
    close(oc, c[0])


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_recurrent_fast_against_torch(kind, dtype):
    # precision="fast" against torch.nn.LSTM / GRU / RNN in the same dtype
    N, T, Fe, H = 5, 7, 4, 6
    m = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[kind](
        Fe, H, batch_first=True)
    m = m.double() if dtype == np.float64 else m.float()
    x = RNG.standard_normal((N, T, Fe)).astype(dtype)
    h0, c0 = (RNG.standard_normal((N, H)).astype(dtype) for _ in range(2))
    p = {k: v.detach().numpy() for k, v in m.state_dict().items()}
    args = (x, p["weight_ih_l0"], p["weight_hh_l0"], p["bias_ih_l0"], p["bias_hh_l0"])
    with torch.no_grad():
        if kind == "lstm":
            out, (h, c) = m(t(x), (t(h0)[None], t(c0)[None]))
            ours, st = L.lstm(*args, h0=h0, c0=c0, precision="fast")
            pairs = ((ours, out), (st[0], h[0]), (st[1], c[0]))
        else:
            out, h = m(t(x), t(h0)[None])
            fn = L.gru if kind == "gru" else L.simple_rnn
            ours, st = fn(*args, h0=h0, precision="fast")
            pairs = ((ours, out), (st[0], h[0]))
    tol = 1e-12 if dtype == np.float64 else 3e-6
    for a, b in pairs:
        np.testing.assert_allclose(a, b.numpy(), rtol=tol, atol=tol)


def test_gru_multi_step_with_state():
    N, T, Fe, H = 3, 6, 5, 7
    m = torch.nn.GRU(Fe, H, batch_first=True).double()
    x = RNG.standard_normal((N, T, Fe))
    h0 = RNG.standard_normal((N, H))
    out, h = m(t(x), t(h0)[None])
    p = {k: v.detach().numpy() for k, v in m.state_dict().items()}
    ours, (oh,) = L.gru(x, p["weight_ih_l0"], p["weight_hh_l0"], p["bias_ih_l0"],
                        p["bias_hh_l0"], h0=h0)
    close(ours, out)
    close(oh, h[0])


def test_rnn_and_activations():
    m = torch.nn.RNN(4, 5, batch_first=True).double()
    x = RNG.standard_normal((2, 3, 4))
    out, _ = m(t(x))
    p = {k: v.detach().numpy() for k, v in m.state_dict().items()}
    close(L.simple_rnn(x, p["weight_ih_l0"], p["weight_hh_l0"], p["bias_ih_l0"], p["bias_hh_l0"])[0],
          out)
    v = RNG.standard_normal((4, 50)) * 4
    close(L.sigmoid(v), torch.sigmoid(t(v)))
    close(L.tanh(v), torch.tanh(t(v)))
    close(L.softmax(v), torch.softmax(t(v), -1))
    close(L.hard_sigmoid(v), F.hardsigmoid(t(v)))
    close(L.relu(v), torch.relu(t(v)))


def test_batch_norm_eval():
    bn = torch.nn.BatchNorm2d(4).double().eval()
    with torch.no_grad():
        bn.weight.uniform_(0.5, 2)
        bn.bias.uniform_(-1, 1)
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
    x = RNG.standard_normal((2, 4, 3, 3))
    p = {k: v.detach().numpy() for k, v in bn.state_dict().items()}
    close(L.batch_norm(x, p["weight"], p["bias"], p["running_mean"], p["running_var"], eps=1e-5),
          bn(t(x)))
