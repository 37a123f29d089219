"""data/conformance: regenerating gives identical bytes, the files follow
docs/CONFORMANCE.md, independent implementations pass them, and the C consumer
of examples/c_conformance passes on the shipped vectors."""

import importlib.util
import os
import shutil
import subprocess
from pathlib import Path

import h5py
import numpy as np
import pytest

import naive

ROOT = Path(__file__).resolve().parents[1]
DIR = ROOT / "data" / "conformance"
LAYER_FILES = ("dense", "conv2d", "max_pool2d", "avg_pool2d", "batch_norm", "activation",
               "shape", "residual", "lstm", "gru", "mgu", "simple_rnn")


def _generator():
    spec = importlib.util.spec_from_file_location("conformance_generate", DIR / "generate.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_regenerating_gives_identical_bytes(tmp_path):
    names = _generator().generate(tmp_path)
    shipped = sorted(p.name for p in DIR.glob("*.h5"))
    assert names == shipped
    for n in names:
        assert (tmp_path / n).read_bytes() == (DIR / n).read_bytes(), n


def test_small():
    assert sum(p.stat().st_size for p in DIR.glob("*.h5")) < 600_000


def _cases(f):
    return [f[f"case{i:04d}"] for i in range(int(f.attrs["n_cases"]))]


@pytest.mark.parametrize("kind", LAYER_FILES)
def test_layer_files_follow_the_schema(kind):
    with h5py.File(DIR / f"{kind}.h5", "r") as f:
        assert f.attrs["schema"] == b"refcomp-conformance" and f.attrs["schema_version"] == 1
        assert f.attrs["kind"] == kind.encode() and f.attrs["seed"] > 0
        for key in ("refcomp_version", "numpy_version", "h5py_version", "hdf5_version"):
            assert f.attrs[key]
        for g in _cases(f):
            ref, bound, y32 = g["y_reference"][()], g["bound"][()], g["y_float32"][()]
            assert ref.dtype == np.float64 and bound.dtype == np.float64
            assert y32.dtype == np.float32 and ref.shape == bound.shape == y32.shape
            assert np.all(bound > 0) and np.all(np.abs(y32 - ref) <= bound)
            assert int(g.attrs["n_layers"]) == len(g["layers"])


def test_dense_and_conv_vectors_match_naive_loops():
    # tests/naive.py: plain Python float64 loops, the same real computation
    with h5py.File(DIR / "dense.h5", "r") as f:
        for g in _cases(f):
            L = g["layers/0000"]
            y = naive.dense(g["x"][()], L["W"][()], L["b"][()] if "b" in L else None)
            np.testing.assert_array_equal(y, g["y_reference"][()])
    with h5py.File(DIR / "conv2d.h5", "r") as f:
        for g in _cases(f):
            L = g["layers/0000"]
            x, nhwc = g["x"][()], L.attrs["layout"] == b"NHWC"
            t, b, le, r = (int(v) for v in L.attrs["pads"])
            y = naive.conv2d(x.transpose(0, 3, 1, 2) if nhwc else x, L["W"][()], L["b"][()],
                             tuple(L.attrs["stride"]), ((t, b), (le, r)),
                             tuple(L.attrs["dilation"]), int(L.attrs["groups"]))
            if nhwc:
                y = y.transpose(0, 2, 3, 1)
            err = np.abs(y - g["y_reference"][()])
            assert np.all(err <= 1e-6 * g["bound"][()])


def test_affine_codes_match_an_independent_formula():
    with h5py.File(DIR / "quant_affine.h5", "r") as f:
        for g in _cases(f):
            p = g["params"]
            if p.attrs["scale_op"] != b"divide":
                continue
            w, s, zp = g["w"][()], p["scale"][()], p["zero_point"][()]
            axis = int(p.attrs["axis"]) if "axis" in p.attrs else None
            if axis is not None:
                s, zp = s.reshape(-1, 1), zp.reshape(-1, 1)
            t = w / s                                                    # float32 division
            r = np.rint(t) if p.attrs["rounding"] == b"half_even" else \
                np.sign(t) * np.floor(np.abs(t.astype(np.float64)) + 0.5)
            q = np.clip(r + zp, p.attrs["qmin"], p.attrs["qmax"])
            np.testing.assert_array_equal(q, g["codes"][()])
            assert g["near_boundary"].dtype == np.uint8


def test_every_quantizer_file_decodes_to_its_dequantized_values():
    from refcomp.weights import encoding_class
    for path in sorted(DIR.glob("quant_*.h5")):
        with h5py.File(path, "r") as f:
            for g in _cases(f):
                enc = g["encoded"]
                cls = encoding_class(enc.attrs["encoding"])
                got = cls.from_hdf5(enc).dequantize()
                d = g["dequantized"][()]
                assert got.dtype == d.dtype and np.array_equal(
                    got.view(np.uint32), d.view(np.uint32)), (path.name, g.name)


def _c_toolchain():
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None or shutil.which("make") is None:
        return None
    ok = subprocess.run(["pkg-config", "--exists", "hdf5"], capture_output=True).returncode == 0 \
        if shutil.which("pkg-config") else False
    return cc if ok or os.path.exists("/usr/include/hdf5.h") else None


def test_c_consumer_passes_on_the_shipped_vectors(tmp_path):
    if _c_toolchain() is None:
        pytest.skip("needs a C compiler, make and the HDF5 C library (libhdf5-dev)")
    src = ROOT / "examples" / "c_conformance"
    for name in ("conformance.c", "Makefile"):
        shutil.copy(src / name, tmp_path / name)
    build = subprocess.run(["make", "-s", "conformance"], cwd=tmp_path, capture_output=True,
                           text=True)
    assert build.returncode == 0, build.stderr
    res = subprocess.run([str(tmp_path / "conformance"), str(DIR)], capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    lines = res.stdout.splitlines()
    assert lines[-1].endswith("0 failed, 1 skipped") and " 0 passed" not in lines[-1]
    assert sum(line.startswith("PASS dense.h5") for line in lines) == 4
    assert sum(line.startswith("PASS conv2d.h5") for line in lines) == 6
    assert sum(line.startswith("PASS quant_affine.h5") for line in lines) == 5
