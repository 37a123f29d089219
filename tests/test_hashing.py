"""HashedNets: xxHash32 against the xxhash package, the authors' keys, the hashed
weight type (hooks, HDF5), least-squares fitting, the study method."""

import math
import struct

import h5py
import numba
import numpy as np
import pytest
from hypothesis import given, strategies as st

import refcomp
from refcomp import DTypeError, FormatError, ParameterError, ShapeError
from refcomp.hashing import (HashedWeight, bucket_indices, hash_compress, hashed_conv2d,
                             hashed_linear, int_key, n_buckets_for, string_key, xxh32)
from refcomp.hashing import _kernels as K
from refcomp.hashing.fit import bucket_means, bucket_means_twin
from refcomp.layers import conv2d, dense
from refcomp.testing import assert_bits_equal, dot_error_bound

xxhash = pytest.importorskip("xxhash")


# ---------------------------------------------------------------- xxHash32 and keys

@given(st.binary(max_size=80), st.integers(0, 2**32 - 1))
def test_xxh32_matches_xxhash_package(data, seed):
    want = xxhash.xxh32_intdigest(data, seed=seed)
    assert xxh32(data, seed) == want
    assert K.xxh32_bytes(data, seed) == want


def test_xxh32_kernel_twin_every_length():
    rng = np.random.default_rng(1)
    for n in range(0, 70):
        data = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        seed = int(rng.integers(0, 2**32))
        assert K.xxh32_bytes(data, seed) == xxh32(data, seed)


def test_string_key_is_the_authors_layout():
    # str(i) str(i+1) str(i+2) "_" str(j) str(j+1) str(j+2) suffix, 1-based
    assert string_key(1, 1, b"idxW") == b"123_123idxW"
    assert string_key(10, 99, b"xi_W") == b"101112_99100101xi_W"
    assert int_key(3, 5, 1) == struct.pack("<III", 3, 5, 1)


def test_buckets_and_signs_match_xxhash_package_string_keys():
    n_out, n_in, nb = 7, 13, 11
    idx, sgn = bucket_indices((n_out, n_in), nb)           # seed 1691, sign, string keys
    for o in range(n_out):
        for i in range(n_in):
            i1, j1 = o + 1, i + 1
            key = f"{i1}{i1 + 1}{i1 + 2}_{j1}{j1 + 1}{j1 + 2}".encode()
            h = xxhash.xxh32_intdigest(key + b"idxW", seed=1691) % nb + 1      # authors: 1-based
            xi = (xxhash.xxh32_intdigest(key + b"xi_W", seed=1691) % 2 + 1) * 2 - 3
            assert idx[o, i] == h - 1
            assert sgn[o, i] == xi


def test_buckets_match_xxhash_package_integer_keys():
    idx, sgn = bucket_indices((5, 9), 6, seed=7, hash="integer")
    for o in range(5):
        for i in range(9):
            h = xxhash.xxh32_intdigest(struct.pack("<III", o + 1, i + 1, 0), seed=7)
            s = xxhash.xxh32_intdigest(struct.pack("<III", o + 1, i + 1, 1), seed=7)
            assert idx[o, i] == h % 6 and sgn[o, i] == (1 if s % 2 else -1)


def test_no_sign_means_all_plus_one():
    _, sgn = bucket_indices((4, 6), 3, sign=False)
    assert np.all(sgn == 1)


def test_large_indices_keys_match():
    # multi-digit indices cross the 16-byte stripe boundary of XXH32
    idx, _ = bucket_indices((1200, 3), 97)
    for o in (998, 999, 1199):
        for i in range(3):
            key = f"{o + 1}{o + 2}{o + 3}_{i + 1}{i + 2}{i + 3}idxW".encode()
            assert idx[o, i] == xxhash.xxh32_intdigest(key, seed=1691) % 97


@pytest.mark.parametrize("mode", [0, 1])
@pytest.mark.parametrize("sign", [True, False])
def test_hash_table_twin(mode, sign):
    a = K.hash_table(9, 23, 17, 1691, mode, sign)
    b = K.hash_table_twin(9, 23, 17, 1691, mode, sign)
    assert_bits_equal(a[0], b[0])
    assert_bits_equal(a[1], b[1])


# ---------------------------------------------------------------- products

def _hw(shape, nb, dtype=np.float32, seed=1691, mode="string", sign=True, rs=0):
    rng = np.random.default_rng(rs)
    return HashedWeight(rng.standard_normal(nb).astype(dtype), shape, seed=seed, sign=sign,
                        hash=mode)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mode", [0, 1])
def test_hashed_matmul_twin(dtype, mode):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((5, 19)).astype(dtype)
    buckets = rng.standard_normal(13).astype(dtype)
    a = K.hashed_matmul(x, buckets, 8, 1691, mode, True)
    b = K.hashed_matmul_twin(x, buckets, 8, 1691, mode, True)
    assert_bits_equal(a, b)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_hashed_conv_twin(dtype):
    rng = np.random.default_rng(3)
    xp = rng.standard_normal((2, 4, 9, 8)).astype(dtype)
    buckets = rng.standard_normal(11).astype(dtype)
    for groups, stride, dil in ((1, (1, 1), (1, 1)), (2, (2, 1), (1, 2))):
        a = K.hashed_conv(xp, buckets, 6, 4 // groups, 3, 2, groups, stride, dil, 5, 0, True)
        b = K.hashed_conv_twin(xp, buckets, 6, 4 // groups, 3, 2, groups, stride, dil, 5, 0,
                               True)
        assert_bits_equal(a, b)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mode", ["string", "integer"])
def test_linear_reference_equals_dense_of_V_bits(dtype, mode):
    rng = np.random.default_rng(4)
    W = _hw((17, 29), 40, dtype, mode=mode)
    x = rng.standard_normal((6, 29)).astype(dtype)
    b = rng.standard_normal(17).astype(dtype)
    V = W.dequantize()
    assert_bits_equal(dense(x, W, b), dense(x, V, b))
    assert_bits_equal(hashed_linear(x, W), dense(x, V))


def test_linear_fast_within_bound_and_deterministic():
    rng = np.random.default_rng(5)
    W = _hw((31, 200), 64)
    x = rng.standard_normal((9, 200)).astype(np.float32)
    b = rng.standard_normal(31).astype(np.float32)
    V = W.dequantize()
    fast = dense(x, W, b, precision="fast")
    ref = dense(x, V, b)
    err = np.abs(fast.astype(np.float64) - ref)
    assert np.all(err <= dot_error_bound("dense", x, V, b))
    assert_bits_equal(fast, dense(x, W, b, precision="fast"))


def test_linear_thread_count_does_not_change_bits():
    rng = np.random.default_rng(6)
    W = _hw((40, 33), 50)
    x = rng.standard_normal((5, 33)).astype(np.float32)
    old = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = hashed_linear(x, W), hashed_linear(x, W, precision="fast")
        numba.set_num_threads(old)
        many = hashed_linear(x, W), hashed_linear(x, W, precision="fast")
    finally:
        numba.set_num_threads(old)
    assert_bits_equal(one[0], many[0])
    assert_bits_equal(one[1], many[1])


@pytest.mark.parametrize("kw", [dict(), dict(stride=2, padding=1),
                                dict(dilation=2, padding="same"), dict(layout="NHWC"),
                                dict(groups=2, padding=((1, 0), (0, 2)))])
def test_conv_reference_equals_conv_of_V_bits(kw):
    rng = np.random.default_rng(7)
    groups = kw.get("groups", 1)
    W = _hw((6, 4 // groups, 3, 3), 30)
    x = rng.standard_normal((2, 4, 8, 7)).astype(np.float32)
    if kw.get("layout") == "NHWC":
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    b = rng.standard_normal(6).astype(np.float32)
    assert_bits_equal(conv2d(x, W, b, **kw), conv2d(x, W.dequantize(), b, **kw))
    fast = conv2d(x, W, b, precision="fast", **kw)
    ref = conv2d(x, W.dequantize(), b, **kw)
    attrs = {"stride": kw.get("stride", 1), "padding": kw.get("padding", 0),
             "dilation": kw.get("dilation", 1), "groups": groups,
             "layout": kw.get("layout", "NCHW")}
    bound = dot_error_bound("conv2d", x, W.dequantize(), b, attrs)
    assert np.all(np.abs(fast.astype(np.float64) - ref) <= bound)


def test_nonfinite_input_propagates_like_dense():
    W = _hw((3, 4), 2)
    x = np.array([[np.inf, 0, 1, 2]], np.float32)
    assert_bits_equal(np.isnan(dense(x, W)), np.isnan(dense(x, W.dequantize())))


def test_hooks_refuse_bad_input():
    W = _hw((3, 4), 2)
    with pytest.raises(ShapeError, match="features"):
        hashed_linear(np.zeros((2, 5), np.float32), W)
    with pytest.raises(DTypeError):
        hashed_linear(np.zeros((2, 4), np.float64), W)
    with pytest.raises(ShapeError):
        dense(np.zeros((2, 5), np.float32), W)
    with pytest.raises(ParameterError, match="HashedWeight"):
        hashed_linear(np.zeros((2, 4), np.float32), np.zeros((3, 4), np.float32))


# ---------------------------------------------------------------- fitting

def test_bucket_means_twin():
    rng = np.random.default_rng(8)
    w = rng.standard_normal(500)
    idx = rng.integers(0, 37, 500)
    sgn = np.where(rng.random(500) < 0.5, -1, 1).astype(np.int8)
    assert_bits_equal(bucket_means(w, idx, sgn, 40), bucket_means_twin(w, idx, sgn, 40))


def test_hash_compress_is_the_least_squares_fit():
    rng = np.random.default_rng(9)
    W = rng.standard_normal((12, 10)).astype(np.float32)
    H = hash_compress(W, 17)
    idx, sgn = H.indices()
    for b in range(17):
        sel = idx == b
        if not sel.any():
            assert H.buckets[b] == 0 and not np.signbit(H.buckets[b])
            continue
        exact = math.fsum((sgn[sel] * W[sel].astype(np.float64)).tolist()) / int(sel.sum())
        assert abs(float(H.buckets[b]) - exact) <= 2 ** -23 * abs(exact) + 1e-12
    # any change of a bucket value increases the squared error
    err = float(np.sum((H.dequantize().astype(np.float64) - W) ** 2))
    for b in range(3):
        for d in (1e-3, -1e-3):
            B = H.buckets.copy()
            B[b] += np.float32(d)
            H2 = HashedWeight(B, W.shape)
            assert float(np.sum((H2.dequantize().astype(np.float64) - W) ** 2)) > err


def test_hash_compress_with_as_many_buckets_as_collisions_allow_is_exact_when_injective():
    # a weight whose virtual entries all share one value and sign pattern
    H = hash_compress(np.full((4, 5), 0.5, np.float32), 1, sign=False)
    assert_bits_equal(H.dequantize(), np.full((4, 5), 0.5, np.float32))


def test_n_buckets_for():
    assert n_buckets_for(64, 0.125) == 8
    assert n_buckets_for(100, 1 / 64) == 2
    assert n_buckets_for(5, 1.0) == 5
    for bad in (0, -0.5, 1.5, "x", True):
        with pytest.raises(ParameterError):
            n_buckets_for(10, bad)


@pytest.mark.parametrize("bad", [0, -3, True, 2.0])
def test_bucket_count_below_one_refused(bad):
    with pytest.raises(ParameterError, match="n_buckets"):
        hash_compress(np.ones((3, 3), np.float32), bad)
    with pytest.raises(ParameterError):
        HashedWeight(np.zeros(0, np.float32), (3, 3))


def test_hash_compress_bad_input():
    with pytest.raises(ParameterError, match="non-finite"):
        hash_compress(np.array([[1, np.nan]], np.float32), 1)
    with pytest.raises(ShapeError):
        hash_compress(np.ones(5, np.float32), 2)
    with pytest.raises(DTypeError):
        hash_compress(np.ones((2, 2), np.int32), 2)
    with pytest.raises(ParameterError, match="seed"):
        hash_compress(np.ones((2, 2), np.float32), 2, seed=-1)
    with pytest.raises(ParameterError, match="hash"):
        hash_compress(np.ones((2, 2), np.float32), 2, hash="md5")


# ---------------------------------------------------------------- storage and models

def test_hdf5_stores_only_seed_and_buckets(tmp_path):
    W = hash_compress(np.random.default_rng(10).standard_normal((8, 6)).astype(np.float32), 5,
                      seed=12345, hash="integer")
    model = refcomp.Model([refcomp.Layer("dense", weights={"W": W})], input_shape=(6,))
    path = tmp_path / "h.h5"
    refcomp.save(model, path)
    back = refcomp.load(path)
    Wb = back.get_layer("0").weights["W"]
    assert Wb == W and isinstance(Wb, HashedWeight)
    x = np.ones((2, 6), np.float32)
    assert_bits_equal(back(x), model(x))
    with h5py.File(path, "r") as f:
        found = []
        f.visititems(lambda n, o: found.append(n) if isinstance(o, h5py.Dataset) else None)
        assert [n for n in found if "buckets" in n] and all("buckets" in n for n in found)
    assert W.stored_bits() == 5 * 32 + 32


def test_hdf5_corrupt_fields_are_format_errors(tmp_path):
    W = hash_compress(np.ones((4, 4), np.float32), 3)
    with h5py.File(tmp_path / "w.h5", "w") as f:
        W.to_hdf5(f.create_group("w"))
    for edit in ("drop", "dtype", "hash", "shape"):
        with h5py.File(tmp_path / "w.h5", "r+") as f:
            g = f["w"]
            if edit == "drop":
                del g["buckets"]
            elif edit == "dtype":
                g.attrs["dtype"] = "<f8"
            elif edit == "hash":
                g.attrs["hash"] = "sha1"
            else:
                g.attrs["shape"] = np.array([1 << 20, 1 << 20])
            with pytest.raises(FormatError):
                HashedWeight.from_hdf5(g)
        with h5py.File(tmp_path / "w.h5", "w") as f:
            W.to_hdf5(f.create_group("w"))


def test_study_method_hashed_runs_on_the_mlp():
    from refcomp.data import load_split
    from refcomp.study import run_study
    model = refcomp.load("data/digits_mlp.h5")
    x, y = load_split("test")
    res = run_study(model, x[:60], y[:60], methods=("hashed",), experiments=("whole",),
                    progress=False)
    taus = [r["tau"] for r in res["runs"]]
    assert [r["value"] for r in res["runs"]] == [50, 25, 12.5, 6.25, 3.125, 1.5625]
    assert taus == sorted(taus) and 1.9 < taus[0] < 2.0 and taus[-1] > 30


def test_hashed_weight_pickles_for_worker_processes():
    import pickle
    W = hash_compress(np.random.default_rng(11).standard_normal((5, 7)).astype(np.float32), 4)
    back = pickle.loads(pickle.dumps(W))
    assert back == W
    x = np.ones((2, 7), np.float32)
    assert_bits_equal(dense(x, back), dense(x, W))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_hashed_kernels_twin_across_channel_blocks(dtype):
    """More outputs than one block of K.CONV_BLOCK (and a partial last block per group):
    the blocked kernels keep the twin's bits."""
    rng = np.random.default_rng(8)
    buckets = rng.standard_normal(13).astype(dtype)
    n_out = 2 * K.CONV_BLOCK + 5
    x = rng.standard_normal((3, 23)).astype(dtype)
    for mode in (0, 1):
        assert_bits_equal(K.hashed_matmul(x, buckets, n_out, 1691, mode, True),
                          K.hashed_matmul_twin(x, buckets, n_out, 1691, mode, True))
    xp = rng.standard_normal((2, 4, 6, 5)).astype(dtype)
    for groups in (1, 2):
        o = 2 * (K.CONV_BLOCK + 3)
        a = K.hashed_conv(xp, buckets, o, 4 // groups, 2, 2, groups, (1, 2), (2, 1), 7, 1,
                          True)
        b = K.hashed_conv_twin(xp, buckets, o, 4 // groups, 2, 2, groups, (1, 2), (2, 1), 7,
                               1, True)
        assert_bits_equal(a, b)
