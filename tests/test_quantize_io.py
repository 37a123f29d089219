"""refcomp.save / refcomp.load of a single Quantized: bit-exact round trip of every method,
atomic write, read-only load, and the errors of a malformed file (docs/FORMAT.md)."""

import os
import stat

import numpy as np
import pytest

import refcomp
from refcomp import DecodeError, FormatError, Layer, Model, ParameterError, RefcompError
from refcomp.quantize import (Quantized, affine, binary, dynamic_fixed_point, fixed_point,
                              kmeans, kmeans_optimal, minifloat, posit, power_of_two, ternary,
                              ternary_ttq, to_bfloat16, to_float16, to_float8_e4m3fn,
                              to_float8_e5m2, uniform, xnor)
from refcomp.testing import assert_bits_equal

h5py = pytest.importorskip("h5py")


def _methods(w):
    """Every scalar quantizer, with its variants that store different parameters."""
    w4 = w.reshape(4, 3, 2, -1)                          # OIHW
    specials = np.concatenate([w[:5], np.array([np.nan, -np.inf, np.inf, -0.0], w.dtype)])
    return {
        "uniform": uniform(w, 4), "uniform_zero": uniform(w, 3, grid="zero"),
        "uniform_const": uniform(np.full(5, -1.25, w.dtype), 3),
        "affine": affine(w, 8), "affine_sym4": affine(w, 4, symmetric=True),
        "affine_axis": affine(w4, 8, axis=0, narrow_range=True, signed=True),
        "affine_torch": affine(w, 8, scale=0.05, zero_point=77, scale_op="torch"),
        "affine_torch_axis": affine(w4, 8, axis=1, scale_op="torch"),
        "affine_stochastic": affine(w, 6, rounding="stochastic", rng=np.random.default_rng(3)),
        "affine_16": affine(w, 16, rounding="half_away", scale_op="reciprocal"),
        "fixed_point": fixed_point(w, 12, 7), "fixed_point_neg": fixed_point(w, 4, -1),
        "dynamic_fixed_point": dynamic_fixed_point(w, 8),
        "minifloat": minifloat(specials, 4, 3, special="fn"),
        "minifloat_nosub": minifloat(w, 3, 2, subnormals=False, bias=2),
        "bfloat16": to_bfloat16(specials), "float16": to_float16(specials),
        "float8_e4m3fn": to_float8_e4m3fn(specials), "float8_e5m2": to_float8_e5m2(specials),
        "float16_empty": to_float16(np.zeros((0, 3), w.dtype)),
        "posit8": posit(specials, 8, 0), "posit16": posit(w, 16, 1), "posit32": posit(w, 32, 2),
        "posit_odd": posit(w, 11, 3),
        "power_of_two": power_of_two(w, 5), "power_of_two_lin": power_of_two(w, 3, domain="linear"),
        "binary": binary(w4), "xnor": xnor(w4), "xnor_none": xnor(w4, axis=None),
        "xnor_keep": xnor(w4, axis=2, zero="keep"),
        "ternary": ternary(w4), "ternary_axis": ternary(w4, axis=0),
        "ternary_ttq": ternary_ttq(w, 0.5, 0.25),
        "kmeans": kmeans(w, bits=3), "kmeans_optimal": kmeans_optimal(w, 5),
    }


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_every_method_round_trips_bit_exactly(tmp_path, dt):
    w = (np.random.default_rng(4).standard_normal(96) * 2).astype(dt)
    w[[3, 40]] = [0.0, -0.0]
    path = tmp_path / "q.h5"
    for name, q in _methods(w).items():
        refcomp.save(q, path)
        r = refcomp.load(path)
        assert isinstance(r, Quantized) and r == q, name
        assert r.codes.dtype == q.codes.dtype and r.codes.shape == q.codes.shape, name
        assert_bits_equal(r.dequantize(), q.dequantize(), name)
        with h5py.File(path, "r") as f:
            # an encoded weight needs format version 2 (version 1 holds raw datasets only)
            assert f.attrs["format"] == "refcomp-weight" and f.attrs["format_version"] == 2
            assert f["weight"].attrs["encoding"] == "quantized"
            assert f["weight"].attrs["decoder"] == q.decoder
            # codes are bit-packed at q.bits bits each
            assert f["weight/codes"].size == (q.codes.size * q.bits + 7) // 8
    assert os.listdir(tmp_path) == ["q.h5"]                   # no temporary files left


def test_models_still_save_and_load(tmp_path):
    w = np.random.default_rng(1).standard_normal((3, 5)).astype(np.float32)
    m = Model([Layer("dense", weights={"W": affine(w, 8, axis=0, scale_op="torch"),
                                       "b": np.zeros(3, np.float32)})], input_shape=(5,))
    refcomp.save(m, tmp_path / "m.h5")
    m2 = refcomp.load(tmp_path / "m.h5")
    assert isinstance(m2, Model)
    assert m2.layers[0].weights["W"] == m.layers[0].weights["W"]
    x = np.random.default_rng(2).standard_normal((2, 5)).astype(np.float32)
    assert_bits_equal(m2(x), m(x))


class _Failing:
    def to_hdf5(self, group):
        group.attrs["encoding"] = "quantized"
        raise RuntimeError("disk full")


class _Unregistered:
    def to_hdf5(self, group):
        group.attrs["encoding"] = "no-such-encoding"


def test_write_is_atomic(tmp_path):
    w = np.linspace(-1, 1, 20, dtype=np.float32)
    path = tmp_path / "q.h5"
    refcomp.save(affine(w, 8), path)
    before = path.read_bytes()
    with pytest.raises(RuntimeError, match="disk full"):
        refcomp.save(_Failing(), path)
    with pytest.raises(FormatError, match="no-such-encoding"):
        refcomp.save(_Unregistered(), path)
    assert path.read_bytes() == before                      # the old file is untouched
    assert os.listdir(tmp_path) == ["q.h5"]                 # and no temporary remains
    assert refcomp.load(path) == affine(w, 8)
    for bad in (w, [1, 2], Layer("flatten"), Quantized):
        with pytest.raises(ParameterError):
            refcomp.save(bad, path)


def test_load_is_read_only(tmp_path):
    q = posit(np.linspace(-3, 3, 17), 8, 0)
    path = tmp_path / "q.h5"
    refcomp.save(q, path)
    os.chmod(path, stat.S_IRUSR)                              # read-only file
    try:
        before, mtime = path.read_bytes(), os.stat(path).st_mtime_ns
        assert refcomp.load(path) == q
        assert refcomp.load(str(path)) == q
        assert path.read_bytes() == before and os.stat(path).st_mtime_ns == mtime
    finally:
        os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)


def _edit(path, fn):
    with h5py.File(path, "a") as f:
        fn(f)


def test_malformed_weight_files(tmp_path):
    q = affine(np.random.default_rng(0).standard_normal(50).astype(np.float32), 8)
    path = tmp_path / "q.h5"

    def fresh():
        refcomp.save(q, path)
        return path

    cases = [
        (lambda f: f.attrs.__setitem__("format", "refcomp-other"), FormatError, "format"),
        (lambda f: f.attrs.__setitem__("format_version", 3), FormatError, "format_version 3"),
        (lambda f: f.__delitem__("weight"), FormatError, "/weight"),
        (lambda f: f["weight"].attrs.__setitem__("encoding", "bogus"), FormatError, "bogus"),
        (lambda f: f["weight"].attrs.__delitem__("encoding"), FormatError, "encoding"),
        (lambda f: f["weight"].attrs.__setitem__("decoder", "bogus"), FormatError, "decoder"),
        (lambda f: f["weight"].__delitem__("params"), FormatError, "params"),
        (lambda f: f["weight"].attrs.__setitem__("bits", 99), DecodeError, "bits"),
    ]
    for edit, exc, match in cases:
        _edit(fresh(), edit)
        with pytest.raises(exc, match=match):
            refcomp.load(path)

    def truncate(f):                                         # codes stream too short
        data = f["weight/codes"][()]
        del f["weight/codes"]
        f["weight"].create_dataset("codes", data=data[:10])
    _edit(fresh(), truncate)
    with pytest.raises(DecodeError, match="bytes"):
        refcomp.load(path)
    # a flipped byte in the checksummed codes dataset
    fresh()
    with h5py.File(path, "r") as f:
        off = f["weight/codes"].id.get_chunk_info(0).byte_offset
    raw = bytearray(path.read_bytes())
    raw[off + 3] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(FormatError):
        refcomp.load(path)
    path.write_bytes(b"not an hdf5 file")
    with pytest.raises(FormatError, match="not a readable HDF5"):
        refcomp.load(path)
    with pytest.raises(FormatError, match="no such file"):
        refcomp.load(tmp_path / "missing.h5")
    assert issubclass(FormatError, RefcompError) and issubclass(DecodeError, RefcompError)
