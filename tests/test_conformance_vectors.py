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
LAYER_FILES = ("dense", "conv2d", "conv1d", "max_pool2d", "avg_pool2d", "max_pool", "avg_pool",
               "batch_norm", "activation", "shape", "residual", "lstm", "gru", "mgu",
               "simple_rnn")
QUANT_FILES = ("uniform", "affine", "fixed_point", "minifloat", "posit", "power_of_two",
               "binary", "kmeans", "product", "share_weights", "nnc", "qdq")


def _generator():
    spec = importlib.util.spec_from_file_location("conformance_generate", DIR / "generate.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_regenerating_gives_identical_bytes(tmp_path):
    names = _generator().generate(tmp_path)
    shipped = sorted(p.name for p in DIR.glob("*.h5"))
    assert names == shipped == sorted([f"{k}.h5" for k in LAYER_FILES]
                                      + [f"quant_{q}.h5" for q in QUANT_FILES])
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
    with h5py.File(DIR / "conv1d.h5", "r") as f:                # as conv2d with one row
        for g in _cases(f):
            L = g["layers/0000"]
            lo, hi = (int(v) for v in L.attrs["pads"])
            W = L["W"][()]
            y = naive.conv2d(g["x"][()][:, :, None, :], W[:, :, None, :],
                             L["b"][()] if "b" in L else np.zeros(W.shape[0], np.float32),
                             (1, int(L.attrs["stride"][0])), ((0, 0), (lo, hi)),
                             (1, int(L.attrs["dilation"][0])), int(L.attrs["groups"]))[:, :, 0]
            err = np.abs(y - g["y_reference"][()])
            assert np.all(err <= 1e-6 * g["bound"][()])


def test_minifloat_file_holds_the_fnuz_and_float4_formats():
    with h5py.File(DIR / "quant_minifloat.h5", "r") as f:
        calls = {g.attrs["call"].decode(): g for g in _cases(f)}
        fmt = {c: (int(g["params"].attrs["exp_bits"]), int(g["params"].attrs["man_bits"]),
                   int(g["params"].attrs["bias"]), g["params"].attrs["special"].decode())
               for c, g in calls.items()}
        assert fmt["to_float8_e4m3fnuz(w)"] == (4, 3, 8, "fnuz")
        assert fmt["to_float8_e5m2fnuz(w, saturate=True)"] == (5, 2, 16, "fnuz")
        assert fmt["to_float4_e2m1(w)"] == (2, 1, 1, "finite")
        d = calls["to_float4_e2m1(w)"]["dequantized"][()]
        # E2M1's values, written out: 0, 0.5, 1, 1.5, 2, 3, 4, 6 and their negatives
        assert set(np.abs(d).ravel().tolist()) <= {0, 0.5, 1, 1.5, 2, 3, 4, 6}
        for c in ("to_float8_e4m3fnuz(w)", "to_float8_e5m2fnuz(w, saturate=True)"):
            d = calls[c]["dequantized"][()]
            assert not np.any(np.signbit(d) & (d == 0))            # FNUZ has no -0


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


def test_share_weights_codes_are_nearest_centroids_and_zeros_keep_the_zero_code():
    # written out: pruned (zero) weights take params/zero_code, whose codebook entry is
    # exactly 0.0; every other weight takes a nearest centroid of the other entries
    # (the assignment a converged Lloyd iteration ends with), all in float64
    with h5py.File(DIR / "quant_share_weights.h5", "r") as f:
        cases = _cases(f)
        assert len(cases) == 3
        for g in cases:
            w, c = g["w"][()].astype(np.float64), g["codes"][()].astype(np.int64)
            cb = g["params/codebook"][()].astype(np.float64)
            zc = int(g["params"].attrs["zero_code"])
            assert g.attrs["decoder"] == b"codebook" and g.attrs["method"] == b"kmeans_shared"
            assert cb.size <= 2 ** int(g.attrs["bits"]) and np.all(np.diff(cb) >= 0)
            zero = w == 0
            if zc >= 0:
                assert cb[zc] == 0 and np.all(c[zero] == zc) and np.all(c[~zero] != zc)
            else:
                assert not zero.any()
            others = np.delete(np.arange(cb.size), zc) if zc >= 0 else np.arange(cb.size)
            dist = np.abs(w[~zero][:, None] - cb[others][None, :])
            assert np.all(np.abs(w[~zero] - cb[c[~zero]]) == dist.min(axis=1))
            np.testing.assert_array_equal(g["dequantized"][()], cb[c].astype(np.float32))
        assert [int(g["params"].attrs["zero_code"]) >= 0 for g in cases] == [True, True, False]


def test_every_quantizer_file_decodes_to_its_dequantized_values():
    from refcomp.weights import encoding_class
    for path in sorted(DIR.glob("quant_*.h5")):
        with h5py.File(path, "r") as f:
            for g in _cases(f):
                if path.name == "quant_qdq.h5":       # ONNX codes: no refcomp encoding
                    assert "encoded" not in g
                    continue
                enc = g["encoded"]
                cls = encoding_class(enc.attrs["encoding"])
                got = cls.from_hdf5(enc).dequantize()
                d = g["dequantized"][()]
                assert got.dtype == d.dtype and np.array_equal(
                    got.view(np.uint32), d.view(np.uint32)), (path.name, g.name)


def _qdq_types():
    return {"int8": (-128, 127), "uint8": (0, 255), "int4": (-8, 7), "uint4": (0, 15),
            "int2": (-2, 1), "uint2": (0, 3)}


def test_qdq_codes_and_dequantized_match_a_naive_loop():
    """ONNX QuantizeLinear / DequantizeLinear written element by element from the
    operator text: the scale of an element is the tensor's, its index along axis,
    or its block's (index // block_size); v = float32(x) / float32(scale) in float32;
    rint (ties to even) + zero point, saturated; dequantized = float32((q - zp) * s)
    (the product of a small integer and a float32 is exact in float64)."""
    with h5py.File(DIR / "quant_qdq.h5", "r") as f:
        kinds = set()
        for g in _cases(f):
            w, s, codes = g["w"][()], g["scale"][()], g["codes"][()]
            zp = g["zero_point"][()] if "zero_point" in g else np.zeros_like(s, np.int64)
            t = g.attrs["output_type"].decode()
            axis, bs = int(g.attrs["axis"]), int(g.attrs["block_size"])
            lo, hi = _qdq_types()[t]
            kinds.add((t, "blocked" if bs else "axis" if s.ndim == 1 and s.size > 1
                       else "tensor"))
            deq = g["dequantized"][()]
            assert w.dtype == s.dtype == deq.dtype == np.float32
            for idx in np.ndindex(w.shape):
                if bs:
                    j = list(idx)
                    j[axis] //= bs
                    sc, z = s[tuple(j)], zp[tuple(j)]
                elif s.ndim == 1 and s.size > 1:
                    sc, z = s[idx[axis]], zp[idx[axis]]
                else:
                    sc, z = s.reshape(-1)[0], np.asarray(zp).reshape(-1)[0]
                v = float(np.float32(w[idx]) / np.float32(sc))
                q = min(max(round(v) + int(z), lo), hi)        # round(): ties to even
                assert int(codes[idx]) == q, (g.name, idx)
                d = np.float32((q - int(z)) * float(sc))
                assert deq[idx].view(np.uint32) == d.view(np.uint32), (g.name, idx)
    assert {k[0] for k in kinds} >= {"int4", "uint4", "int2", "uint2"}
    assert {k[1] for k in kinds} == {"tensor", "axis", "blocked"}


def _nnc_step(qp, d):
    from fractions import Fraction
    k = 1 << d
    return Fraction(k + (qp & (k - 1))) * Fraction(2) ** ((qp >> d) - d)


def test_nnc_levels_follow_the_standard_rules():
    """Step from the standard's qp mapping (exact fractions); uniform levels by
    NNCodec's rule round_half_away(float32(float32(1 / step) * w)); every case's
    reconstruction is float32(step * level) of its stored levels."""
    with h5py.File(DIR / "quant_nnc.h5", "r") as f:
        seen = set()
        for g in _cases(f):
            qp, d = int(g.attrs["qp"]), int(g.attrs["qp_density"])
            step = g["step"][()]
            assert step.dtype == np.float32 and float(step) == _nnc_step(qp, d)
            w, lv, deq = g["w"][()], g["levels"][()], g["dequantized"][()]
            assert lv.dtype == np.int32 and lv.shape == w.shape == deq.shape
            recon = (step * lv.astype(np.float32)).astype(np.float32)
            assert np.array_equal(deq.view(np.uint32), recon.view(np.uint32)), g.name
            dq = bool(g.attrs["dq"])
            seen.add(dq)
            if dq:
                # the trellis never moves a weight further than one step from w / step
                assert np.all(np.abs(lv - w.astype(np.float64) / float(step)) <= 2), g.name
                continue
            inv = np.float32(1) / step
            for x, got in zip(w.ravel(), lv.ravel()):
                t = float(np.float32(inv * np.float32(x)))
                want = int(abs(t) + 0.5) * (1 if t >= 0 else -1)   # half away from zero
                assert got == want, (g.name, x)
        assert seen == {True, False}
        ties = f["case0000"]["w"][()][-1] / float(f["case0000"]["step"][()])
        assert np.all(ties % 1 == 0.5)          # exact ties of step 2**-5: away from zero


def test_nnc_vectors_match_nncodec():
    import _nnc
    if _nnc.nnc_python()[0] is None:
        pytest.skip(_nnc.nnc_python()[1])
    with h5py.File(DIR / "quant_nnc.h5", "r") as f:
        cases = [g for g in _cases(f) if int(g.attrs["dq_states"]) == 8]
        items = [_nnc.quant_item(g["w"][()], qp=int(g.attrs["qp"]), dq=bool(g.attrs["dq"]),
                                 qp_density=int(g.attrs["qp_density"]),
                                 scan_order=int(g.attrs["scan_order"])) for g in cases]
        refs = _nnc.call_batch(items)
        assert len(cases) == 5
        for g, (reply, ref) in zip(cases, refs):
            np.testing.assert_array_equal(g["levels"][()], ref, err_msg=g.name)


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
    others = sorted(p.name for p in DIR.glob("*.h5")
                    if p.name not in ("dense.h5", "conv2d.h5", "quant_affine.h5"))
    assert lines[-1].endswith(f"0 failed, {1 + len(others)} skipped")
    assert " 0 passed" not in lines[-1]
    skipped = [line.split()[1] for line in lines if line.startswith("SKIP")
               and line.split()[2] == "-"]                     # a whole file skipped
    assert skipped == others and {"conv1d.h5", "max_pool.h5", "avg_pool.h5"} <= set(skipped)
    assert sum(line.startswith("PASS dense.h5") for line in lines) == 4
    assert sum(line.startswith("PASS conv2d.h5") for line in lines) == 6
    assert sum(line.startswith("PASS quant_affine.h5") for line in lines) == 5
