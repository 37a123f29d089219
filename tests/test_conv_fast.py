"""conv2d(algorithm=...): im2col, FFT and Winograd against direct convolution
within their derived bounds; Winograd's transforms in exact arithmetic."""

import random
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import refcomp
from refcomp import ParameterError
from refcomp.layers import conv2d
from refcomp.layers._conv_winograd import winograd_matrices
from refcomp.layers.conv_bounds import conv2d_error_bound
from refcomp.testing import assert_bits_equal


@pytest.mark.parametrize("m", [2, 4])
def test_winograd_matrices_exact_2d(m):
    """Y = A^T[(G g G^T) * (B^T d B)]A equals the direct 2-D correlation exactly."""
    bt, g, at = winograd_matrices(m, exact=True)
    a = m + 2
    rnd = random.Random(m)
    d = [[Fraction(rnd.randint(-20, 20), rnd.randint(1, 9)) for _ in range(a)] for _ in range(a)]
    w = [[Fraction(rnd.randint(-20, 20), rnd.randint(1, 9)) for _ in range(3)] for _ in range(3)]

    def mm(A, B):
        return [[sum(A[i][k] * B[k][j] for k in range(len(B))) for j in range(len(B[0]))]
                for i in range(len(A))]

    def tr(A):
        return [list(r) for r in zip(*A)]
    U = mm(mm(g, w), tr(g))
    V = mm(mm(bt, d), tr(bt))
    Y = mm(mm(at, [[U[i][j] * V[i][j] for j in range(a)] for i in range(a)]), tr(at))
    direct = [[sum(d[r + i][c + j] * w[i][j] for i in range(3) for j in range(3))
               for c in range(m)] for r in range(m)]
    assert Y == direct


def _check(x, W, b, alg, prec, **kw):
    ref = conv2d(x, W, b, **kw)
    y = conv2d(x, W, b, algorithm=alg, precision=prec, **kw)
    assert y.dtype == x.dtype and y.shape == ref.shape
    bound = conv2d_error_bound(x, W, b, algorithm=alg, precision=prec, **kw) + \
        conv2d_error_bound(x, W, b, **kw)
    err = np.abs(y.astype(np.float64) - ref)
    assert np.all(err <= bound), (alg, prec, float(np.max(err / bound)))
    return err, bound


@given(n=st.integers(1, 2), cg=st.integers(1, 4), og=st.integers(1, 4), groups=st.integers(1, 2),
       h=st.integers(3, 11), w=st.integers(3, 11), kh=st.integers(1, 4), kw=st.integers(1, 4),
       stride=st.integers(1, 3), dil=st.integers(1, 2), pad=st.integers(0, 2),
       alg=st.sampled_from(["im2col", "fft"]), prec=st.sampled_from(["reference", "fast"]),
       seed=st.integers(0, 2 ** 31))
def test_im2col_fft_against_direct(n, cg, og, groups, h, w, kh, kw, stride, dil, pad, alg, prec,
                                   seed):
    if h + 2 * pad < (kh - 1) * dil + 1 or w + 2 * pad < (kw - 1) * dil + 1:
        return
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, cg * groups, h, w)).astype(np.float32)
    W = rng.standard_normal((og * groups, cg, kh, kw)).astype(np.float32)
    b = rng.standard_normal(og * groups).astype(np.float32)
    _check(x, W, b, alg, prec, stride=stride, padding=pad, dilation=dil, groups=groups)


@given(n=st.integers(1, 2), c=st.integers(1, 5), o=st.integers(1, 5), h=st.integers(3, 13),
       w=st.integers(3, 13), pad=st.sampled_from([0, 1, 2, "same"]),
       m=st.sampled_from(["winograd", "winograd2", "winograd4"]),
       prec=st.sampled_from(["reference", "fast"]), layout=st.sampled_from(["NCHW", "NHWC"]),
       seed=st.integers(0, 2 ** 31))
def test_winograd_against_direct(n, c, o, h, w, pad, m, prec, layout, seed):
    rng = np.random.default_rng(seed)
    shape = (n, c, h, w) if layout == "NCHW" else (n, h, w, c)
    x = (rng.standard_normal(shape) * 4).astype(np.float32)
    W = rng.standard_normal((o, c, 3, 3)).astype(np.float32)
    b = rng.standard_normal(o).astype(np.float32)
    _check(x, W, b, m, prec, padding=pad, layout=layout)


def test_float64_and_groups_and_compressed():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 4, 9, 9))
    W = rng.standard_normal((6, 2, 3, 3))
    for alg in ("fft", "winograd", "winograd4", "im2col"):
        for prec in ("reference", "fast"):
            err, bound = _check(x, W, None, alg, prec, groups=2, padding=1)
            assert bound.max() < 1e-8
    q = refcomp.quantize.uniform(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), bits=4)
    x32 = rng.standard_normal((1, 3, 6, 6)).astype(np.float32)
    assert_bits_equal(conv2d(x32, q, algorithm="fft"),
                      conv2d(x32, q.dequantize(), algorithm="fft"))


def test_shipped_cnn_every_algorithm_within_bound():
    m = refcomp.load(refcomp.data.default_data_dir() / "digits_cnn.h5")
    x, _ = refcomp.data.load_split("test")
    a = m.forward_all(x[:50])
    for path in ("1", "3"):
        layer = m.get_layer(path)
        inp = x[:50].reshape(50, 1, 8, 8) if path == "1" else a[int(path) - 1]
        W, b = layer.w("W"), layer.w("b")
        for alg in ("im2col", "fft", "winograd", "winograd4"):
            for prec in ("reference", "fast"):
                _check(inp, W, b, alg, prec)


def test_deterministic_bits():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 12, 12)).astype(np.float32)
    W = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    for alg in ("fft", "winograd4"):
        for prec in ("reference", "fast"):
            assert_bits_equal(conv2d(x, W, algorithm=alg, precision=prec),
                              conv2d(x, W, algorithm=alg, precision=prec))


def test_bad_input():
    x = np.ones((1, 2, 8, 8), np.float32)
    W = np.ones((3, 2, 3, 3), np.float32)
    with pytest.raises(ParameterError, match="algorithm must be one of"):
        conv2d(x, W, algorithm="strassen")
    with pytest.raises(ParameterError, match="3x3 kernel, stride 1 and dilation 1"):
        conv2d(x, np.ones((3, 2, 5, 5), np.float32), algorithm="winograd")
    with pytest.raises(ParameterError, match="stride 1"):
        conv2d(x, W, stride=2, algorithm="winograd4")
    with pytest.raises(ParameterError, match="dilation"):
        conv2d(x, W, dilation=2, algorithm="winograd")
    with pytest.raises(ParameterError, match="direct"):
        conv2d(x, W, algorithm="direct", precision="fast")
    with pytest.raises(refcomp.ShapeError):
        conv2d(x, np.ones((3, 3, 3, 3), np.float32), algorithm="fft")
    with pytest.raises(ParameterError, match="algorithm"):
        conv2d_error_bound(x, W, algorithm="winograd8")
