"""Truncated SVD, Tucker-2 and CP: optimality / tensorly comparison, factorized
passes within their bounds, file round trips, bad input."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import refcomp
from refcomp import Layer, Model, ParameterError
from refcomp.decompose import (CPWeight, SVDWeight, TuckerWeight, cp, svd_compress, tucker2)
from refcomp.decompose.cp import cp_init
from refcomp.layers import conv2d, dense
from refcomp.testing import assert_bits_equal

U32 = 2.0 ** -24


# -- SVD ---------------------------------------------------------------------------------
def test_svd_eckart_young():
    scipy_linalg = pytest.importorskip("scipy.linalg")
    rng = np.random.default_rng(0)
    W = rng.standard_normal((30, 45)).astype(np.float32)
    s_ref = scipy_linalg.svdvals(W.astype(np.float64))
    for r in (1, 5, 17, 30):
        w = svd_compress(W, rank=r)
        opt = np.sqrt(np.sum(s_ref[r:] ** 2))
        err = np.linalg.norm(w.dequantize().astype(np.float64) - W)
        # stored factors: three roundings of each term plus the final one
        R = np.abs(w.left.astype(np.float64)) @ np.abs(w.right.astype(np.float64))
        slack = np.linalg.norm(4 * U32 * R) + 1e-9 * opt
        assert err <= opt + slack
        assert err >= opt - 1e-6 * np.linalg.norm(W)     # nobody beats Eckart-Young
        assert w.stored_params() == r * (30 + 45)
    np.testing.assert_allclose(svd_compress(W, rank=3).info["singular_values"], s_ref,
                               rtol=1e-12)


def test_svd_energy_and_full_rank():
    W = np.diag([3.0, 2.0, 1.0]).astype(np.float64)       # s^2 = 9, 4, 1 of sum 14
    from fractions import Fraction
    assert svd_compress(W, energy=Fraction(9, 14)).rank == 1
    assert svd_compress(W, energy=9 / 14).rank == 2     # 0.6428571428571429 > 9/14
    assert svd_compress(W, energy=Fraction(13, 14)).rank == 2
    assert svd_compress(W, energy=1.0).rank == 3
    rng = np.random.default_rng(1)
    A = rng.standard_normal((8, 6))
    np.testing.assert_allclose(svd_compress(A, rank=6).dequantize(), A, atol=1e-13)


def test_svd_passes_within_bounds():
    rng = np.random.default_rng(2)
    W = rng.standard_normal((20, 33)).astype(np.float32)
    x = rng.standard_normal((7, 33)).astype(np.float32)
    b = rng.standard_normal(20).astype(np.float32)
    w = svd_compress(W, rank=6)
    exact = x.astype(np.longdouble) @ (w.left.astype(np.longdouble)
                                       @ w.right.astype(np.longdouble)).T + b
    assert_bits_equal(dense(x, w, b), dense(x, w.dequantize(), b))
    for fw in ("reconstruct", "factorized"):
        for prec in ("reference", "fast"):
            y = w.forward_linear(x, b, forward=fw, precision=prec)
            assert np.all(np.abs(y - exact) <= w.error_bound(x, b, forward=fw, precision=prec))


# -- Tucker-2 and CP against tensorly -------------------------------------------------------
@pytest.mark.parametrize("n_iter", [0, 1, 4])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_tucker2_no_worse_than_tensorly(n_iter, dtype):
    tl = pytest.importorskip("tensorly")
    from tensorly.decomposition import partial_tucker
    rng = np.random.default_rng(3)
    W = rng.standard_normal((12, 6, 3, 3)).astype(dtype)
    ranks = (5, 3)
    w = tucker2(W, ranks, n_iter=n_iter)
    (core, factors), _ = partial_tucker(W.astype(np.float64), rank=list(ranks), modes=[0, 1],
                                        n_iter_max=n_iter, init="svd", tol=0)
    ref = np.linalg.norm(tl.tenalg.multi_mode_dot(core, factors, modes=[0, 1]) - W)
    ours = np.linalg.norm(w.dequantize().astype(np.float64) - W)
    R = np.abs(w._abs_weight64())
    slack = np.linalg.norm(6 * np.finfo(dtype).eps / 2 * R) + 1e-12 * np.linalg.norm(W)
    assert ours <= ref + slack
    assert w.stored_params() == 12 * 5 + 6 * 3 + 5 * 3 * 9


@pytest.mark.parametrize("n_iter", [1, 5, 20])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_cp_no_worse_than_tensorly(n_iter, dtype):
    tl = pytest.importorskip("tensorly")
    from tensorly.decomposition import parafac
    rng = np.random.default_rng(4)
    W = rng.standard_normal((10, 6, 3, 3)).astype(dtype)
    init = cp_init(W.astype(np.float64), 7, np.random.default_rng(5))
    w = cp(W, 7, rng=np.random.default_rng(5), n_iter_max=n_iter)
    kt = parafac(W.astype(np.float64), 7, n_iter_max=n_iter, tol=0,
                 init=tl.cp_tensor.CPTensor((None, [f.copy() for f in init])))
    ref = np.linalg.norm(tl.cp_to_tensor(kt) - W)
    ours = np.linalg.norm(w.dequantize().astype(np.float64) - W)
    R = w._abs_weight64()
    slack = np.linalg.norm(8 * np.finfo(dtype).eps / 2 * R) + 1e-9 * np.linalg.norm(W)
    assert ours <= ref + slack
    assert w.stored_params() == 7 * (10 + 6 + 3 + 3)


def test_tucker2_full_rank_identity_and_hooi_monotone():
    rng = np.random.default_rng(6)
    W = rng.standard_normal((6, 4, 3, 3))
    np.testing.assert_allclose(tucker2(W, (6, 4)).dequantize(), W, atol=1e-12)
    errs = [tucker2(W, (3, 2), n_iter=k).info["rel_error"] for k in range(5)]
    assert all(b <= a + 1e-12 for a, b in zip(errs, errs[1:]))


def test_cp_exact_rank_one():
    a, b, c, d = (np.arange(1.0, n + 1) for n in (4, 3, 3, 2))
    W = np.einsum("t,s,i,j->tsij", a, b, c, d)
    w = cp(W, 1, rng=np.random.default_rng(0), n_iter_max=5)
    np.testing.assert_allclose(w.dequantize(), W, rtol=1e-12)


# -- factorized passes --------------------------------------------------------------------
@given(t=st.integers(1, 6), s=st.integers(1, 4), kh=st.integers(1, 3), kw=st.integers(1, 3),
       stride=st.integers(1, 2), dil=st.integers(1, 2), pad=st.integers(0, 2),
       kind=st.sampled_from(["tucker2", "cp"]), seed=st.integers(0, 2 ** 31))
def test_tucker_cp_passes_within_bounds(t, s, kh, kw, stride, dil, pad, kind, seed):
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((t, s, kh, kw)).astype(np.float32)
    x = rng.standard_normal((2, s, 7, 8)).astype(np.float32)
    b = rng.standard_normal(t).astype(np.float32)
    if kind == "tucker2":
        w = tucker2(W, (max(1, min(t // 2, s * kh * kw)), max(1, min(s // 2, t * kh * kw))),
                    n_iter=1)
    else:
        w = cp(W, 3, rng=rng, n_iter_max=3)
    kw_ = dict(stride=stride, padding=pad, dilation=dil)
    rec = conv2d(x, w, b, **kw_)
    assert_bits_equal(rec, conv2d(x, w.dequantize(), b, **kw_))
    for fw in ("reconstruct", "factorized"):
        for prec in ("reference", "fast"):
            y = w.forward_conv2d(x, b, forward=fw, precision=prec, **kw_)
            both = w.error_bound(x, b, forward=fw, precision=prec, **kw_) + \
                w.error_bound(x, b, **kw_)
            assert np.all(np.abs(y.astype(np.float64) - rec) <= both), (fw, prec)


def test_factorized_pass_exact_in_float64():
    """Long-double check of one pass against the exact real reconstruction."""
    rng = np.random.default_rng(7)
    W = rng.standard_normal((5, 3, 3, 3)).astype(np.float32)
    x = rng.standard_normal((1, 3, 6, 6)).astype(np.float32)
    w = tucker2(W, (2, 2))
    K = w._reconstruct64(*[a.astype(np.longdouble) for a in (w.core, w.u_out, w.u_in)])
    exact = np.zeros((1, 5, 4, 4), np.longdouble)
    for i in range(3):
        for j in range(3):
            exact += np.einsum("chw,oc->ohw", x[0, :, i:i + 4, j:j + 4].astype(np.longdouble),
                               K[:, :, i, j])[None]
    y = w.forward_conv2d(x, forward="factorized")
    assert np.all(np.abs(y - exact) <= w.error_bound(x, forward="factorized"))


# -- files and bad input ----------------------------------------------------------------
def test_round_trips(tmp_path):
    rng = np.random.default_rng(8)
    conv = Layer("conv2d", attrs={"padding": 1}, weights={
        "W": rng.standard_normal((6, 2, 3, 3)).astype(np.float32),
        "b": rng.standard_normal(6).astype(np.float32)})
    conv2 = Layer("conv2d", weights={"W": rng.standard_normal((4, 6, 3, 3)).astype(np.float32)})
    fc = Layer("dense", weights={"W": rng.standard_normal((3, 16)).astype(np.float32)})
    m = Model([conv, Layer("activation", attrs={"function": "relu"}), conv2,
               Layer("flatten"), fc], input_shape=(2, 4, 4))
    mc = m.replace_weights({
        ("0", "W"): tucker2(conv.weights["W"], (3, 2), forward="factorized"),
        ("2", "W"): cp(conv2.weights["W"], 4, rng=rng, n_iter_max=3),
        ("4", "W"): svd_compress(fc.weights["W"], rank=2, forward="factorized")})
    refcomp.save(mc, tmp_path / "m.h5")
    back = refcomp.load(tmp_path / "m.h5")
    x = rng.standard_normal((3, 2, 4, 4)).astype(np.float32)
    assert_bits_equal(back(x), mc(x))
    for path, cls in (("0", TuckerWeight), ("2", CPWeight), ("4", SVDWeight)):
        w, w2 = mc.get_layer(path).weights["W"], back.get_layer(path).weights["W"]
        assert isinstance(w2, cls) and w2.forward == w.forward
        assert_bits_equal(w2.dequantize(), w.dequantize())
        assert w2.stored_bits() == w.stored_bits()


def test_bad_input():
    rng = np.random.default_rng(9)
    C = rng.standard_normal((6, 4, 3, 3)).astype(np.float32)
    D = rng.standard_normal((5, 7)).astype(np.float32)
    for r in (0, 6, -2):
        with pytest.raises(ParameterError, match=r"rank must be in \[1, 5\]"):
            svd_compress(D, rank=r)
    with pytest.raises(ParameterError, match="exactly one"):
        svd_compress(D)
    with pytest.raises(ParameterError, match="energy"):
        svd_compress(D, energy=0.0)
    with pytest.raises(ParameterError, match="conv weight"):
        svd_compress(C, rank=2)
    with pytest.raises(ParameterError, match=r"ranks\[0\] must be in \[1, 6\]"):
        tucker2(C, (7, 2))
    with pytest.raises(ParameterError, match=r"ranks\[1\] must be in \[1, 4\]"):
        tucker2(C, (2, 0))
    with pytest.raises(ParameterError, match="pair"):
        tucker2(C, 3)
    with pytest.raises(ParameterError, match="dense"):
        tucker2(D, (2, 2))
    with pytest.raises(ParameterError, match="rng"):
        cp(C, 3, rng=None)
    with pytest.raises(ParameterError, match="rank must be in"):
        cp(C, 0, rng=rng)
    with pytest.raises(ParameterError, match="n_iter_max"):
        cp(C, 2, rng=rng, n_iter_max=-1)
    w = tucker2(C, (2, 2), forward="factorized")
    with pytest.raises(ParameterError, match="groups=1"):
        conv2d(np.ones((1, 8, 5, 5), np.float32), w, groups=2)
    with pytest.raises(ParameterError, match="forward"):
        w.with_forward("sideways")
