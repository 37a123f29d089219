"""XNOR-Net binary layers: bit packing and XNOR-popcount against their twins; the integer
dot equals the float product of the sign matrices; conv padding; HDF5; bad input."""

import math

import numpy as np
import pytest

import refcomp
from refcomp import DTypeError, Layer, Model, ParameterError
from refcomp.integer import XnorLinear, binary_dot, xnor_conv2d, xnor_dense
from refcomp.kernels import xnor as K
from refcomp.layers import conv2d
from refcomp.testing import assert_bits_equal

RNG = np.random.default_rng(30)


def _sign(a):
    return np.where(a >= 0, 1.0, -1.0)


def test_pack_and_popcount_twin():
    for n in (1, 63, 64, 65, 200):
        b = RNG.random((7, n)) < 0.5
        assert_bits_equal(K.pack_rows(b), K.pack_rows_twin(b))
        a = K.pack_rows(b)
        w = K.pack_rows(RNG.random((5, n)) < 0.5)
        assert_bits_equal(K.xnor_dot(a, w, n), K.xnor_dot_twin(a, w, n))
        m = K.pack_rows(RNG.random((7, n)) < 0.8)
        assert_bits_equal(K.xnor_dot(a, w, n, m), K.xnor_dot_twin(a, w, n, m))


@pytest.mark.parametrize("n", [1, 64, 100, 257])
def test_binary_dot_is_the_product_of_signs(n):
    x = RNG.standard_normal((9, n)).astype(np.float32)
    W = RNG.standard_normal((6, n)).astype(np.float32)
    x[:3, 0] = [0.0, -0.0, 1e-45]                  # sign(0) = +1, -0.0 included
    got = binary_dot(x, W)
    want = _sign(x).astype(np.float64) @ _sign(W).T.astype(np.float64)
    assert got.dtype == np.int32 and np.array_equal(got, want.astype(np.int32))


def test_dense_output_formula():
    x = RNG.standard_normal((4, 70)).astype(np.float32)
    W = RNG.standard_normal((3, 70)).astype(np.float32)
    b = RNG.standard_normal(3).astype(np.float32)
    for scale in (False, True):
        y = xnor_dense(x, W, b, input_scale=scale)
        dot = _sign(x) @ _sign(W).T
        alpha = np.array([math.fsum(np.abs(r).astype(np.float64).tolist()) / 70 for r in W],
                         np.float64).astype(np.float32).astype(np.float64)
        want = dot * alpha
        if scale:
            beta = np.array([math.fsum(np.abs(r).astype(np.float64).tolist()) / 70 for r in x])
            want = want * beta[:, None]
        assert_bits_equal(y, (want + b.astype(np.float64)).astype(np.float32))


@pytest.mark.parametrize("stride,padding,dilation", [(1, 0, 1), (1, 1, 1), (2, 1, 1), (1, 2, 2)])
def test_conv_dot_is_the_float_conv_of_signs(stride, padding, dilation):
    x = RNG.standard_normal((2, 5, 7, 7)).astype(np.float32)
    W = RNG.standard_normal((4, 5, 3, 3)).astype(np.float32)
    w = XnorLinear.from_float(W)
    ones = XnorLinear(w.bits, np.ones(4, np.float32), W.shape)        # alpha 1: y = dot
    got = ones.conv2d(x, stride=stride, padding=padding, dilation=dilation)
    want = conv2d(_sign(x), _sign(W), stride=stride, padding=padding, dilation=dilation)
    assert np.array_equal(got.astype(np.float64), want)               # exact integers
    y = xnor_conv2d(x, W, stride=stride, padding=padding, dilation=dilation, input_scale=True)
    assert y.shape == want.shape and y.dtype == np.float32


def test_model_hooks_and_hdf5(tmp_path):
    W1 = RNG.standard_normal((16, 64)).astype(np.float32)
    m = Model([Layer("flatten"), Layer("dense", weights={"W": XnorLinear.from_float(W1)})],
              input_shape=(8, 8))
    x = RNG.standard_normal((5, 8, 8)).astype(np.float32)
    y = m(x)
    assert_bits_equal(y, xnor_dense(x.reshape(5, -1), W1))
    refcomp.save(m, tmp_path / "x.h5")
    back = refcomp.load(tmp_path / "x.h5")
    assert_bits_equal(back(x), y)
    w = back.layers[1].weights["W"]
    assert w.stored_bits() == 16 * 64 + 16 * 32
    assert_bits_equal(w.dequantize(), (_sign(W1) * w.alpha[:, None]).astype(np.float32))


def test_xnor_bad_input():
    x = np.zeros((2, 8), np.float32)
    with pytest.raises(DTypeError):
        xnor_dense(x.astype(np.float64), np.zeros((3, 8), np.float32))
    x[0, 0] = np.nan
    with pytest.raises(ParameterError, match="NaN"):
        xnor_dense(x, np.zeros((3, 8), np.float32))
    w = XnorLinear.from_float(np.ones((4, 2, 3, 3), np.float32))
    with pytest.raises(ParameterError, match="groups"):
        w.conv2d(np.zeros((1, 4, 5, 5), np.float32), groups=2)
