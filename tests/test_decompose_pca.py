"""PCA of filters (seed 004 §3): energy rule, identities, factorized passes,
file round trips, the model-level metrics P/G/A/ER and bad input."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import refcomp
from refcomp import DTypeError, Layer, Model, ParameterError, ShapeError
from refcomp.decompose import (PCAWeight, energy_rank, network_metrics, param_count,
                               pca_filters, pca_model)
from refcomp.layers import conv2d, dense
from refcomp.testing import assert_bits_equal

U32 = 2.0 ** -24


# -- the energy rule on hand-built spectra -------------------------------------------
@pytest.mark.parametrize("spectrum, energy, q", [
    ([9.0, 1.0], 0.9, 1),                  # 0.9 read as 9/10: exactly enough
    ([9.0, 1.0], 0.91, 2),
    ([4.0, 3.0, 2.0, 1.0], 0.7, 2),        # 7 >= 7
    ([4.0, 3.0, 2.0, 1.0], 1.0, 4),
    ([3.0, 1.0, 0.0, 0.0], 1.0, 2),        # trailing zeros are never needed
    ([1.0, 1.0, 1.0, 1.0], 0.5, 2),        # ties: not extended over equal eigenvalues
    ([2.0, 2.0, 1.0], 0.5, 2),
    ([1.0, 1.0, 1.0, 1.0], 0.26, 2),
    ([1.0, 1.0, 1.0, 1.0], 0.25, 1),
    ([0.0, 0.0, 0.0], 0.5, 0),             # zero spectrum: no component
    ([0.0, 0.0, 0.0], 1.0, 0),
    ([100.0, 1e-3, 1e-9], 0.99, 1),        # one dominant component
    ([100.0, 1e-3, 1e-9], 1.0, 3),
    ([5.0], 0.01, 1),
])
def test_energy_rank_hand_spectra(spectrum, energy, q):
    assert energy_rank(np.array(spectrum), energy) == q


def test_energy_rank_fraction_exact():
    from fractions import Fraction
    assert energy_rank([2.0, 1.0], Fraction(2, 3)) == 1
    assert energy_rank([2.0, 1.0], Fraction(2, 3) + Fraction(1, 10 ** 30)) == 2


@pytest.mark.parametrize("energy", [0, 0.0, -0.1, 1.0000001, 2, float("nan"), float("inf"),
                                    True, "0.5", None])
def test_energy_out_of_range(energy):
    W = np.ones((4, 3), np.float32)
    with pytest.raises(ParameterError, match="energy"):
        energy_rank([1.0, 0.5], energy)
    if energy is not None:
        with pytest.raises(ParameterError, match="energy"):
            pca_filters(W, energy=energy)


def test_energy_rank_bad_spectrum():
    for bad in ([1.0, 2.0], [1.0, -1.0], [np.nan], [[1.0]]):
        with pytest.raises(ParameterError):
            energy_rank(np.array(bad), 0.5)


# -- the decomposition against an independent eigendecomposition -----------------------
def _conv_weight(rng, n=12, c=3, k=3, dtype=np.float32):
    return rng.standard_normal((n, c, k, k)).astype(dtype)


def test_pca_matches_covariance_eigh():
    rng = np.random.default_rng(1)
    W = _conv_weight(rng, 20, 2, 3, np.float64)
    w = pca_filters(W, n_components=5)
    X = W.reshape(20, -1)
    mu = X.mean(axis=0)
    C = (X - mu).T @ (X - mu)
    lam, V = np.linalg.eigh(C)
    lam, V = lam[::-1], V[:, ::-1]
    np.testing.assert_allclose(w.info["eigenvalues"], lam[:min(20, 18)], rtol=1e-9,
                               atol=1e-9 * lam[0])
    np.testing.assert_allclose(w.mean, mu, rtol=1e-14)
    for q in range(5):          # same direction; sign: largest |entry| positive
        v = V[:, q] * np.sign(V[np.argmax(np.abs(V[:, q])), q])
        np.testing.assert_allclose(w.basis[q], v, atol=1e-9)
        assert w.basis[q][np.argmax(np.abs(w.basis[q]))] > 0
    np.testing.assert_allclose(w.coords, (X - mu) @ w.basis.T, atol=1e-12)


def test_pca_matches_sklearn():
    sk = pytest.importorskip("sklearn.decomposition")
    rng = np.random.default_rng(2)
    W = rng.standard_normal((30, 16)).astype(np.float64)
    w = pca_filters(W, n_components=6)
    ref = sk.PCA(n_components=6, svd_solver="full").fit(W)
    np.testing.assert_allclose(w.info["eigenvalues"][:6], ref.explained_variance_ * 29,
                               rtol=1e-10)
    for q in range(6):
        c = ref.components_[q]
        c = c * np.sign(c[np.argmax(np.abs(c))])
        np.testing.assert_allclose(w.basis[q], c, atol=1e-10)


def test_full_rank_identity_within_bound():
    rng = np.random.default_rng(3)
    for shape in ((12, 3, 3, 3), (40, 9), (5, 2, 3, 3)):
        W = rng.standard_normal(shape).astype(np.float32)
        n, d = shape[0], int(np.prod(shape[1:]))
        w = pca_filters(W, n_components=min(n, d))
        R = np.abs(w.coords.astype(np.float64)) @ np.abs(w.basis.astype(np.float64)) \
            + np.abs(w.mean.astype(np.float64))
        err = np.abs(w.dequantize().astype(np.float64) - W).reshape(n, d)
        # three stored roundings (coords, basis, mean), the float64 sum and the
        # final rounding, plus LAPACK's orthogonality error (float64, far below)
        bound = 4 * U32 * R + 2 * U32 * np.abs(W.reshape(n, d)) + 1e-10 * np.abs(W).max()
        assert np.all(err <= bound)
        assert w.mse < 1e-12


def test_identical_filters_zero_spectrum():
    W = np.tile(np.arange(9, dtype=np.float32).reshape(1, 1, 3, 3), (6, 1, 1, 1))
    w = pca_filters(W, energy=0.5)
    assert w.n_components == 0 and w.stored_params() == 9
    assert_bits_equal(w.dequantize(), W)
    x = np.ones((2, 1, 5, 5), np.float32)
    assert_bits_equal(conv2d(x, w), conv2d(x, W))
    assert_bits_equal(w.forward_conv2d(x, forward="factorized"), conv2d(x, W))


def test_one_dominant_component():
    rng = np.random.default_rng(4)
    v = rng.standard_normal(27)
    a = np.arange(1, 11, dtype=np.float64)
    X = a[:, None] * v[None, :] + 1e-4 * rng.standard_normal((10, 27))
    w = pca_filters(X.reshape(10, 3, 3, 3), energy=0.99)
    assert w.n_components == 1
    assert w.info["eigenvalues"][0] > 1e4 * w.info["eigenvalues"][1]


def test_stored_count_and_bits():
    rng = np.random.default_rng(5)
    W = _conv_weight(rng, 16, 4, 3)
    w = pca_filters(W, n_components=7)
    n, q, d = 16, 7, 36
    assert w.stored_params() == n * q + q * d + d
    assert w.stored_bits() == (n * q + q * d + d) * 32
    assert w.weight_shape == W.shape and w.dtype == np.float32
    assert w.dequantize().shape == W.shape
    mse = np.mean((w.dequantize().astype(np.float64) - W) ** 2)
    assert math.isclose(w.mse, mse, rel_tol=1e-12)
    ws = [pca_filters(W, n_components=q).mse for q in range(1, 17)]
    assert all(b <= a for a, b in zip(ws, ws[1:]))    # more components, lower MSE


def test_dequantize_documented_order():
    rng = np.random.default_rng(6)
    W = _conv_weight(rng, 10, 2, 3)
    w = pca_filters(W, n_components=4)
    acc = np.zeros((10, 18))
    for q in range(4):                    # sequential over q, float64, then + mean
        acc = acc + w.coords[:, q:q + 1].astype(np.float64) * w.basis[q:q + 1].astype(np.float64)
    acc = acc + w.mean.astype(np.float64)
    assert_bits_equal(w.dequantize(), acc.astype(np.float32).reshape(W.shape))


# -- forward passes -------------------------------------------------------------------
def _exact_conv_ld(x, W_exact, b, stride, pads, dilation, groups):
    """Naive loops in long double (80-bit on x86): the real result within ~1e-19."""
    xp = np.pad(x.astype(np.longdouble), ((0, 0), (0, 0)) + pads)
    n, c, h, wd = xp.shape
    o, cg, kh, kw = W_exact.shape
    oh = (h - dilation * (kh - 1) - 1) // stride + 1
    ow = (wd - dilation * (kw - 1) - 1) // stride + 1
    og = o // groups
    y = np.zeros((n, o, oh, ow), np.longdouble)
    for oo in range(o):
        g = oo // og
        for i in range(kh):
            for j in range(kw):
                r0, c0 = i * dilation, j * dilation
                patch = xp[:, g * cg:(g + 1) * cg, r0:r0 + (oh - 1) * stride + 1:stride,
                           c0:c0 + (ow - 1) * stride + 1:stride]
                y[:, oo] += np.einsum("nchw,c->nhw", patch, W_exact[oo, :, i, j])
        if b is not None:
            y[:, oo] += b[oo]
    return y


@given(n_out=st.integers(1, 8), cg=st.integers(1, 3), k=st.integers(1, 3),
       groups=st.integers(1, 2), stride=st.integers(1, 2), dil=st.integers(1, 2),
       pad=st.integers(0, 2), q_frac=st.floats(0.1, 1.0), seed=st.integers(0, 2 ** 31))
def test_conv_passes_within_bounds(n_out, cg, k, groups, stride, dil, pad, q_frac, seed):
    rng = np.random.default_rng(seed)
    o = n_out * groups
    W = rng.standard_normal((o, cg, k, k)).astype(np.float32)
    x = rng.standard_normal((2, cg * groups, 7, 6)).astype(np.float32)
    b = rng.standard_normal(o).astype(np.float32)
    q = max(1, int(q_frac * min(o, cg * k * k)))
    w = pca_filters(W, n_components=q)
    kw = dict(stride=stride, padding=pad, dilation=dil, groups=groups)
    W_exact = (w.coords.astype(np.longdouble) @ w.basis.astype(np.longdouble)
               + w.mean.astype(np.longdouble)).reshape(W.shape)
    exact = _exact_conv_ld(x, W_exact, b, stride, ((pad, pad), (pad, pad)), dil, groups)
    rec = w.forward_conv2d(x, b, forward="reconstruct", **kw)
    assert_bits_equal(rec, conv2d(x, w.dequantize(), b, **kw))
    assert_bits_equal(conv2d(x, w, b, **kw), rec)           # the hook, default forward
    for fw in ("reconstruct", "factorized"):
        for prec in ("reference", "fast"):
            y = w.forward_conv2d(x, b, forward=fw, precision=prec, **kw)
            assert y.dtype == np.float32 and y.shape == rec.shape
            bound = w.error_bound(x, b, forward=fw, precision=prec, **kw)
            err = np.abs(y.astype(np.longdouble) - exact)
            assert np.all(err <= bound * (1 + 1e-9)), (fw, prec, float((err / bound).max()))
            both = bound + w.error_bound(x, b, **kw)
            assert np.all(np.abs(y.astype(np.float64) - rec) <= both)


def test_dense_passes_and_nhwc():
    rng = np.random.default_rng(7)
    W = rng.standard_normal((24, 50)).astype(np.float32)
    x = rng.standard_normal((9, 50)).astype(np.float32)
    b = rng.standard_normal(24).astype(np.float32)
    w = pca_filters(W, energy=0.8)
    rec = dense(x, w, b)
    assert_bits_equal(rec, dense(x, w.dequantize(), b))
    exact = (x.astype(np.longdouble) @ (w.coords.astype(np.longdouble)
                                        @ w.basis.astype(np.longdouble)
                                        + w.mean.astype(np.longdouble)).T + b)
    for fw in ("reconstruct", "factorized"):
        for prec in ("reference", "fast"):
            y = w.forward_linear(x, b, forward=fw, precision=prec)
            assert np.all(np.abs(y - exact) <= w.error_bound(x, b, forward=fw, precision=prec))
    assert_bits_equal(dense(x, w.with_forward("factorized"), b),
                      w.forward_linear(x, b, forward="factorized"))
    Wc = rng.standard_normal((6, 3, 3, 3)).astype(np.float32)
    wc = pca_filters(Wc, n_components=2, forward="factorized")
    xc = rng.standard_normal((2, 5, 5, 3)).astype(np.float32)
    y = conv2d(xc, wc, None, padding="same", layout="NHWC")
    y_nchw = conv2d(np.ascontiguousarray(xc.transpose(0, 3, 1, 2)), wc, None, padding="same")
    assert_bits_equal(y, np.ascontiguousarray(y_nchw.transpose(0, 2, 3, 1)))


def test_float64_weights():
    rng = np.random.default_rng(8)
    W = rng.standard_normal((8, 2, 3, 3))
    x = rng.standard_normal((1, 2, 6, 6))
    w = pca_filters(W, n_components=8)
    y1 = w.forward_conv2d(x, forward="factorized")
    y0 = conv2d(x, W)
    assert y1.dtype == np.float64
    np.testing.assert_allclose(y1, y0, atol=1e-12)


# -- files ------------------------------------------------------------------------------------
def test_save_load_round_trip(tmp_path):
    rng = np.random.default_rng(9)
    m = refcomp.load(refcomp.data.default_data_dir() / "digits_cnn.h5")
    mp = pca_model(m, 0.8, layers="all", forward="factorized")
    refcomp.save(mp, tmp_path / "m.h5")
    back = refcomp.load(tmp_path / "m.h5")
    x = rng.random((5, 8, 8)).astype(np.float32)
    assert_bits_equal(back(x), mp(x))
    for p, layer in mp.named_layers():
        w = layer.weights.get("W")
        if isinstance(w, PCAWeight):
            w2 = back.get_layer(p).weights["W"]
            assert isinstance(w2, PCAWeight) and w2.forward == "factorized"
            for a in ("basis", "coords", "mean"):
                assert_bits_equal(getattr(w2, a), getattr(w, a))
    single = pca_filters(rng.standard_normal((4, 7)).astype(np.float32), n_components=2)
    refcomp.save(single, tmp_path / "w.h5")
    assert_bits_equal(refcomp.load(tmp_path / "w.h5").dequantize(), single.dequantize())


def test_load_inconsistent_group(tmp_path):
    import h5py
    w = pca_filters(np.random.default_rng(10).standard_normal((5, 6)).astype(np.float32),
                    n_components=2)
    with h5py.File(tmp_path / "g.h5", "w") as f:
        g = f.create_group("w")
        w.to_hdf5(g)
        g.attrs["n_components"] = 3
    with h5py.File(tmp_path / "g.h5", "r") as f:
        with pytest.raises(refcomp.DecodeError, match="inconsistent"):
            PCAWeight.from_hdf5(f["w"])
    with h5py.File(tmp_path / "g.h5", "a") as f:
        f["w"].attrs["n_components"] = 2
        f["w"].attrs["forward"] = "sideways"
    with h5py.File(tmp_path / "g.h5", "r") as f:
        with pytest.raises(refcomp.DecodeError, match="forward"):
            PCAWeight.from_hdf5(f["w"])
    with h5py.File(tmp_path / "g.h5", "a") as f:
        f["w"].attrs["forward"] = "factorized"
    with h5py.File(tmp_path / "g.h5", "r") as f:
        assert PCAWeight.from_hdf5(f["w"]).forward == "factorized"
        with pytest.raises(refcomp.DecodeError, match="limit"):
            PCAWeight.from_hdf5(f["w"], max_elements=3)


# -- model level: P, G, A, ER -----------------------------------------------------------------
def _small_model(rng):
    conv = Layer("conv2d", name="c", weights={
        "W": rng.standard_normal((4, 1, 3, 3)).astype(np.float32),
        "b": rng.standard_normal(4).astype(np.float32)})
    fc = Layer("dense", name="d", weights={
        "W": rng.standard_normal((3, 16)).astype(np.float32),
        "b": rng.standard_normal(3).astype(np.float32)})
    return Model([Layer("reshape", attrs={"shape": [1, 6, 6]}), conv,
                  Layer("activation", attrs={"function": "relu"}), Layer("max_pool2d"),
                  Layer("flatten"), fc], input_shape=(6, 6))


def test_param_count_gain_er_by_hand():
    rng = np.random.default_rng(11)
    m = _small_model(rng)
    assert param_count(m) == 4 * 9 + 4 + 3 * 16 + 3 == 91
    mp = pca_model(m, 1.0)                       # conv only: 4 filters, rank 3 after centring
    w = mp.get_layer("1").weights["W"]
    assert w.n_components == 3
    assert param_count(mp) == (4 * 3 + 3 * 9 + 9) + 4 + 48 + 3 == 103
    mq = pca_model(m, 1.0, layers="all")         # dense rows: 3 rows of 16, rank 2
    assert param_count(mq) == 48 + 4 + (3 * 2 + 2 * 16 + 16) + 3 == 109
    x = rng.random((40, 6, 6)).astype(np.float32)
    y = rng.integers(0, 3, 40)
    r = network_metrics(m, mq, x, y)
    a0 = np.mean(np.argmax(m(x), axis=1) == y)
    a1 = np.mean(np.argmax(mq(x), axis=1) == y)
    assert r["P"] == 109 and r["P_orig"] == 91 and r["G"] == 91 / 109
    assert r["A_orig"] == a0 and r["A"] == a1
    assert r["ER"] == pytest.approx(100 * (a0 - a1) / a0, abs=1e-12)
    assert network_metrics(m, m, x, y)["ER"] == 0.0


def test_pca_model_layers_choice():
    rng = np.random.default_rng(12)
    m = _small_model(rng)
    assert isinstance(pca_model(m, 0.5).get_layer("1").weights["W"], PCAWeight)
    assert isinstance(pca_model(m, 0.5).get_layer("5").weights["W"], np.ndarray)
    only = pca_model(m, 0.5, layers=["5"])
    assert isinstance(only.get_layer("5").weights["W"], PCAWeight)
    assert isinstance(only.get_layer("1").weights["W"], np.ndarray)
    with pytest.raises(ParameterError, match="no layer"):
        pca_model(m, 0.5, layers=["9"])
    with pytest.raises(ParameterError, match="activation"):
        pca_model(m, 0.5, layers=["2"])
    with pytest.raises(ParameterError):
        pca_model(m, 0.5, layers="everything")


def test_shipped_model_energy_sweep_monotone_params():
    m = refcomp.load(refcomp.data.default_data_dir() / "digits_resnet.h5")
    ps = [param_count(pca_model(m, e)) for e in (1.0, 0.9, 0.7, 0.5)]
    assert all(b < a for a, b in zip(ps, ps[1:]))


# -- bad input ---------------------------------------------------------------------------------
def test_bad_input():
    W = np.ones((4, 2, 3, 3), np.float32)
    with pytest.raises(ParameterError, match="exactly one"):
        pca_filters(W)
    with pytest.raises(ParameterError, match="exactly one"):
        pca_filters(W, energy=0.5, n_components=1)
    for q in (0, 5, -1):
        with pytest.raises(ParameterError, match=r"n_components must be in \[1, 4\]"):
            pca_filters(W, n_components=q)
    with pytest.raises(ParameterError, match="integer"):
        pca_filters(W, n_components=1.5)
    with pytest.raises(ShapeError, match="dimensions"):
        pca_filters(np.ones((2, 3, 4), np.float32), energy=0.5)
    with pytest.raises(DTypeError, match="dtype"):
        pca_filters(np.ones((2, 3), np.int32), energy=0.5)
    with pytest.raises(ShapeError, match="empty"):
        pca_filters(np.ones((0, 3), np.float32), energy=0.5)
    bad = W.copy()
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(ParameterError, match="non-finite"):
        pca_filters(bad, energy=0.5)
    w = pca_filters(W.reshape(4, 18) + np.arange(18, dtype=np.float32), n_components=1)
    with pytest.raises(ParameterError, match="forward"):
        w.forward_linear(np.ones((1, 18), np.float32), forward="sideways")
    with pytest.raises(ShapeError):
        dense(np.ones((1, 17), np.float32), w)
    with pytest.raises(ParameterError, match="dense"):
        w.forward_conv2d(np.ones((1, 18, 3, 3), np.float32))
