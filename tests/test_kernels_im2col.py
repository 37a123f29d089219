"""Fast-convolution data-movement kernels against their NumPy twins (identical bits)."""

import numpy as np
import pytest

from refcomp.kernels.im2col import (im2col_nchw, im2col_nchw_twin, scatter_nchw,
                                    scatter_nchw_twin)
from refcomp.testing import assert_bits_equal


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("stride, dilation", [((1, 1), (1, 1)), ((2, 1), (1, 2)), ((3, 2), (2, 1))])
def test_im2col_twin(dtype, stride, dilation):
    rng = np.random.default_rng(1)
    xp = rng.standard_normal((5, 6, 11, 9)).astype(dtype)
    xp[0, 0, 0, 0] = -0.0
    xp[1, 2, 3, 4] = np.nan
    kh, kw = 3, 2
    oh = (11 - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (9 - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    for n0, n1, c0, cg in [(0, 5, 0, 6), (1, 4, 2, 3)]:
        a = im2col_nchw(xp, n0, n1, c0, cg, kh, kw, stride, dilation, oh, ow)
        b = im2col_nchw_twin(xp, n0, n1, c0, cg, kh, kw, stride, dilation, oh, ow)
        assert_bits_equal(a, b)
        # independent definition of one element
        assert a[1, oh - 1, 0, 2, 1, cg - 1].view(a.dtype.str.replace("f", "u")) == \
            xp[n0 + 1, c0 + cg - 1, (oh - 1) * stride[0] + 2 * dilation[0],
               dilation[1]].view(a.dtype.str.replace("f", "u"))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("with_bias", [False, True])
def test_scatter_twin(dtype, with_bias):
    rng = np.random.default_rng(2)
    res = rng.standard_normal((6, 3 * 4 * 5)).astype(dtype)
    res[0, 0] = -0.0
    bias = rng.standard_normal(10).astype(dtype) if with_bias else None
    outs = []
    for f in (scatter_nchw, scatter_nchw_twin):
        out = np.full((4, 10, 4, 5), 7, dtype=dtype)
        f(res, out, bias, 1, 3)
        outs.append(out)
    assert_bits_equal(outs[0], outs[1])
    ref = res.reshape(6, 3, 4, 5)[4, 2, 2, 3] + (bias[3 + 4] if with_bias else 0)
    assert outs[0][1 + 2, 3 + 4, 2, 3] == ref and outs[0][0, 0, 0, 0] == 7


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k, s", [((2, 2), (2, 2)), ((3, 2), (1, 2)), ((2, 3), (3, 1))])
def test_max_pool_twin_nan_and_signed_zeros(dtype, k, s):
    from refcomp.kernels.pool import max_pool_nchw, max_pool_nchw_twin
    rng = np.random.default_rng(3)
    xp = rng.integers(-2, 3, size=(3, 2, 9, 8)).astype(dtype)      # many ties
    xp[xp == 0] = np.where(rng.random(int((xp == 0).sum())) < 0.5, -0.0, 0.0)
    xp[0, 0, 1, 1] = np.nan
    xp[1, 1, 0, 0] = -np.nan
    xp[2, 0, 4, :] = -np.inf
    oh, ow = (9 - k[0]) // s[0] + 1, (8 - k[1]) // s[1] + 1
    a = max_pool_nchw(xp, k[0], k[1], s[0], s[1], oh, ow)
    assert_bits_equal(a, max_pool_nchw_twin(xp, k[0], k[1], s[0], s[1], oh, ow))
    # independent definition: the first maximum in row-major window order
    win = xp[2, 1, 0:k[0], 0:k[1]].ravel()
    first = win[np.flatnonzero(win == win.max())[0]]
    assert a[2, 1, 0, 0].tobytes() == first.tobytes()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_inplace_twin_and_fused_forward(dtype):
    # In-place ReLU kernel vs its twin and vs layers.relu, with -0.0, ±NaN and ±inf;
    # then the fast forward (where it is fused after dense/conv2d) vs running the
    # layers one by one.
    from refcomp import Layer, Model, layers as L
    from refcomp.kernels.elementwise import relu_inplace, relu_inplace_twin
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 70001)).astype(dtype)
    x[0, :6] = [-0.0, 0.0, np.nan, -np.nan, np.inf, -np.inf]
    a, b = relu_inplace(x.copy()), relu_inplace_twin(x.copy())
    assert_bits_equal(a, b)
    assert_bits_equal(a, L.relu(x))
    assert_bits_equal(relu_inplace(x.copy()[:, ::2]), L.relu(x[:, ::2]))   # strided fallback
    m = Model([Layer("conv2d", weights={"W": rng.standard_normal((4, 2, 3, 3)).astype(dtype)}),
               Layer("activation", attrs={"function": "relu"}), Layer("flatten"),
               Layer("dense", weights={"W": rng.standard_normal((5, 4 * 6 * 6)).astype(dtype)}),
               Layer("activation", attrs={"function": "relu"})], input_shape=(2, 8, 8))
    xin = rng.standard_normal((7, 2, 8, 8)).astype(dtype)
    keep = xin.copy()
    y = m(xin, precision="fast")
    assert_bits_equal(y, m.forward_all(xin, precision="fast")[-1])
    assert_bits_equal(xin, keep)                                          # input untouched
