"""Regression tests of the bugs the fuzz harness found (one per bug), and of the
resource limits (refcomp.io.limits, the command line's estimate before a forward pass)."""

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

import refcomp
from refcomp import FormatError, Layer, Model, ParameterError, ResourceLimitError
from refcomp.cli import main
from refcomp.io import _format, limits
from refcomp.data import default_data_dir

from _mutate import vlen_descriptors

GOLDEN = default_data_dir() / "golden"
ROOT = Path(__file__).resolve().parents[2]


def _peak_mib_in_child(code):
    """Run ``code`` in a fresh interpreter; its peak RSS increase (MiB) and stdout."""
    prog = ("import os\n"
            "def _hwm():\n"
            "    return int(next(l for l in open('/proc/self/status')"
            " if l.startswith('VmHWM')).split()[1]) // 1024\n"
            "import refcomp, h5py\n"
            "h0 = _hwm()\n" + code + "\nprint('PEAK', _hwm() - h0)\n")
    out = subprocess.run([sys.executable, "-c", prog], capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=120)
    assert out.returncode == 0, out.stderr
    peak = int(out.stdout.rsplit("PEAK", 1)[1])
    return peak, out.stdout


def _lying_vlen(src, dst):
    """``src`` with the high byte of its first variable-length string's length set."""
    data = bytearray(Path(src).read_bytes())
    off, length, size = vlen_descriptors(bytes(data))[0]
    assert length == size
    data[off + 3] ^= 0xB0            # declares ~2.9e9 bytes for a string of a few bytes
    Path(dst).write_bytes(bytes(data))
    return off


def test_vlen_string_length_lie_refused_before_libhdf5_allocates(tmp_path):
    """Was: libhdf5 allocated the declared ~2.9 GB (3012 MB peak, 13 s) before failing."""
    refcomp.save(Model([Layer("dense", weights={"W": np.ones((2, 3), np.float32)})],
                       input_shape=(3,)), tmp_path / "m.h5")
    off = _lying_vlen(tmp_path / "m.h5", tmp_path / "bad.h5")
    with pytest.raises(FormatError, match=f"variable-length value at byte {off} declares"):
        refcomp.load(tmp_path / "bad.h5")
    peak, out = _peak_mib_in_child(
        f"try:\n    refcomp.load({str(tmp_path / 'bad.h5')!r})\n"
        "except refcomp.FormatError as e:\n    print('REFUSED', e)")
    assert "REFUSED" in out and peak < 64, peak


def test_vlen_string_length_lie_in_keras_file(tmp_path):
    off = _lying_vlen(GOLDEN / "digits_mlp_legacy.h5", tmp_path / "k.h5")
    from refcomp.io import keras
    with pytest.raises(FormatError, match=f"k.h5: variable-length value at byte {off}"):
        keras.load(tmp_path / "k.h5")


def _keras_zip(path, config=None, weights=None):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("config.json", config or (GOLDEN / "digits_mlp.config.json").read_text())
        z.writestr("model.weights.h5", weights or (GOLDEN / "digits_mlp.weights.h5")
                   .read_bytes())


def test_keras_absurd_dataset_refused_before_reading(tmp_path):
    """Was: MemoryError (4 TiB) from a .weights.h5 declaring 2^40 elements."""
    w = tmp_path / "w.h5"
    shutil.copy(GOLDEN / "digits_mlp.weights.h5", w)
    with h5py.File(w, "r+") as f:
        name = next(n for n in ["layers/dense/vars/1"] if n in f)
        del f[name]
        f.create_dataset(name, shape=(1 << 40,), dtype=np.float32, chunks=(1 << 16,),
                         compression="gzip")
    _keras_zip(tmp_path / "m.keras", weights=w.read_bytes())
    from refcomp.io import keras
    with pytest.raises(FormatError, match=r"m.keras:.*declares 1099511627776 elements"):
        keras.load(tmp_path / "m.keras")


@pytest.mark.parametrize("edit", ["null-layer", "not-object", "bad-json"])
def test_keras_broken_config_names_the_file(tmp_path, edit):
    """Was: AttributeError / TypeError escaping from the config walk."""
    cfg = json.loads((GOLDEN / "digits_mlp.config.json").read_text())
    text = {"null-layer": lambda: (cfg["config"]["layers"].__setitem__(1, None),
                                   json.dumps(cfg))[1],
            "not-object": lambda: "[1, 2]", "bad-json": lambda: "{oops"}[edit]()
    _keras_zip(tmp_path / "m.keras", config=text)
    from refcomp.io import keras
    with pytest.raises(FormatError, match="m.keras"):
        keras.load(tmp_path / "m.keras")


def test_keras_weight_names_of_wrong_type(tmp_path):
    """Was: TypeError ('numpy.int64' object is not iterable)."""
    p = tmp_path / "k.h5"
    shutil.copy(GOLDEN / "digits_mlp_legacy.h5", p)
    with h5py.File(p, "r+") as f:
        g = f["model_weights"][next(iter(f["model_weights"]))]
        g.attrs["weight_names"] = 7
    from refcomp.io import keras
    with pytest.raises(FormatError, match="k.h5"):
        keras.load(p)


def _onnx_edit(tmp_path, edit):
    onnx = pytest.importorskip("onnx")
    from onnx import numpy_helper
    mp = onnx.load(GOLDEN / "digits_mlp.onnx")
    edit(mp, numpy_helper)
    p = tmp_path / "m.onnx"
    p.write_bytes(mp.SerializeToString())
    from refcomp.io import onnx as ro
    return ro, p


def test_onnx_initializer_inconsistent_shape(tmp_path):
    """Was: ValueError from numpy_helper.to_array (dims and data disagree)."""
    def edit(mp, nh):
        t = mp.graph.initializer[0]
        t.dims[0] += 1
    ro, p = _onnx_edit(tmp_path, edit)
    with pytest.raises(FormatError, match=r"m.onnx"):
        ro.load(p)


def test_onnx_absurd_initializer_refused_before_allocating(tmp_path):
    def edit(mp, nh):
        t = mp.graph.initializer[0]
        del t.dims[:]
        t.dims.extend([1 << 20, 1 << 20])
    ro, p = _onnx_edit(tmp_path, edit)
    with pytest.raises(FormatError, match=r"m.onnx: initializer .* declares 1099511627776"):
        ro.load(p)


def test_onnx_external_data_not_followed(tmp_path):
    def edit(mp, nh):
        t = mp.graph.initializer[0]
        t.data_location = 1
        e = t.external_data.add()
        e.key, e.value = "location", "/etc/passwd"
    ro, p = _onnx_edit(tmp_path, edit)
    with pytest.raises(FormatError, match="outside the file"):
        ro.load(p)


def test_torch_expanded_tensor_refused_before_copy():
    """Was: MemoryError (4 TiB) copying an expand()-ed view of a 1-element storage."""
    torch = pytest.importorskip("torch")
    from refcomp.io.torch import from_state_dict
    sd = {"0.weight": torch.zeros(1).expand(1 << 20, 1 << 20), "0.bias": torch.zeros(1 << 20)}
    with pytest.raises(FormatError, match="'0.weight' declares shape"):
        from_state_dict(sd, [{"kind": "dense", "key": "0"}])
    sd = {"0.weight": np.broadcast_to(np.float32(0), (300, 300)),
          "0.bias": np.zeros(300, np.float32)}
    with pytest.raises(FormatError, match="broadcast view"):
        from_state_dict(sd, [{"kind": "dense", "key": "0"}])


@pytest.mark.parametrize("entry", [{"kind": ["dense"]}, {"kind": {"a": 1}},
                                   {"kind": "residual", "key": "0", "layers": 5}])
def test_torch_malformed_spec_entry(entry):
    """Was: TypeError (unhashable type) from a spec entry of the wrong type."""
    from refcomp.io.torch import from_state_dict
    with pytest.raises(FormatError, match=r"spec\[0\]"):
        from_state_dict({}, [entry])


def test_torch_file_error_is_one_line(tmp_path):
    """Was: torch's several-line weights_only advice in the message."""
    pytest.importorskip("torch")
    p = tmp_path / "m.pt"
    p.write_bytes(b"PK\x03\x04 not a checkpoint")
    (tmp_path / "s.json").write_text("[]")
    with pytest.raises(FormatError) as e:
        refcomp.io.read_any(p, spec=tmp_path / "s.json")
    assert "\n" not in str(e.value) and str(p) in str(e.value)


# -- limits ----------------------------------------------------------------------------
def test_set_limits_round_trip_and_validation(tmp_path):
    old = limits.set_limits(max_bytes=1000)
    try:
        assert _format.MAX_TOTAL_BYTES == 1000 and limits.get_limits()["max_bytes"] == 1000
        p = tmp_path / "a.h5"
        refcomp.io.write_arrays(p, {"x": np.zeros(200, np.float64)})
        with pytest.raises(FormatError, match="MAX_TOTAL_BYTES"):
            refcomp.io.read_arrays(p)
    finally:
        limits.set_limits(**old)
    assert limits.get_limits() == old
    for bad in ({"max_bytes": 0}, {"max_bytes": 2.5}, {"max_bytes": True}, {"nope": 3}):
        with pytest.raises(ParameterError):
            limits.set_limits(**bad)


def test_environment_variables_set_the_limits():
    code = ("from refcomp.io import limits; print(limits.get_limits()['max_bytes'], "
            "limits.get_limits()['max_run_bytes'])")
    env = dict(os.environ, PYTHONPATH=str(ROOT), REFCOMP_MAX_BYTES="0x1000",
               REFCOMP_MAX_RUN_BYTES="12345")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.stdout.split() == ["4096", "12345"], out.stderr
    env["REFCOMP_MAX_BYTES"] = "lots"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode != 0 and "REFCOMP_MAX_BYTES" in out.stderr


def _padded(tmp_path, padding):
    m = Model([Layer("conv2d", attrs={"padding": padding},
                     weights={"W": np.ones((2, 1, 3, 3), np.float32)}), Layer("flatten")],
              input_shape=(1, 4, 4))
    refcomp.save(m, tmp_path / "pad.h5")
    refcomp.io.write_arrays(tmp_path / "x.h5", {"x": np.zeros((2, 1, 4, 4), np.float32)})
    return m


def test_run_refuses_an_impossible_forward_pass_before_allocating(tmp_path, capsys):
    """A huge but valid padding: the estimate (2.3 TiB for two samples) is refused
    with one line, before the forward pass, instead of an attempted allocation."""
    _padded(tmp_path, 100_000)
    rc = main(["run", str(tmp_path / "pad.h5"), str(tmp_path / "x.h5"), "-o",
               str(tmp_path / "y.h5")])
    err = capsys.readouterr().err
    assert rc == 1 and err.count("\n") == 1, err
    assert "forward pass of model" in err, err
    assert "(2, 200002, 200002)" in err or "(80001600008,)" in err, err
    assert "not started" in err and not (tmp_path / "y.h5").exists()


@pytest.mark.parametrize("command", ["eval", "study"])
def test_eval_and_study_refuse_an_impossible_forward_pass_first(command, tmp_path, capsys):
    """The same estimate as ``refcomp run`` before ``eval`` and ``study`` run a forward
    pass (they caught the MemoryError late, after trying to allocate)."""
    _padded(tmp_path, 100_000)
    refcomp.io.write_arrays(tmp_path / "xy.h5", {"x": np.zeros((2, 1, 4, 4), np.float32),
                                                 "y": np.zeros(2, np.int64)})
    argv = [command, str(tmp_path / "pad.h5"), "--data", str(tmp_path / "xy.h5")]
    if command == "study":
        argv += ["--out", str(tmp_path / "out"), "--quiet", "--methods", "uniform"]
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 1 and err.count("\n") == 1, err
    assert "forward pass of model" in err and "not started" in err, err
    assert not (tmp_path / "out").exists()


def test_run_budget_applies_to_the_input_and_the_forward_pass(tmp_path, capsys):
    m = _padded(tmp_path, 1)
    need = limits.forward_bytes(m, 2)[0]
    assert need == 2 * 8 * max(16 + 32, 32 + 32)     # (in + out) per sample, float64
    argv = ["run", str(tmp_path / "pad.h5"), str(tmp_path / "x.h5"), "-o",
            str(tmp_path / "y.h5")]
    old = limits.set_limits(max_run_bytes=need - 1)
    try:
        assert main(argv) == 1
        assert "max_run_bytes" in capsys.readouterr().err
        limits.set_limits(max_run_bytes=50)       # below the model's 72 declared bytes
        assert main(argv) == 1
        assert "the model" in capsys.readouterr().err
        limits.set_limits(max_run_bytes=100)      # the model fits, not the 128-byte input
        assert main(argv) == 1
        assert "the input" in capsys.readouterr().err
        limits.set_limits(max_run_bytes=need)
        assert main(argv) == 0
    finally:
        limits.set_limits(**old)
    with pytest.raises(ResourceLimitError):
        old = limits.set_limits(max_run_bytes=1)
        try:
            limits.check_fits(2, "two bytes")
        finally:
            limits.set_limits(**old)


def _encoded(label):
    sys.path.insert(0, str(ROOT / "tests"))
    from test_hdf5_corrupt import _model
    from _kinds import _encoded_weights
    m = _model()
    (lp, wn, w), = [(lp, wn, w) for k, lp, wn, w in _encoded_weights(m) if k == label]
    return m.replace_weights({(lp, wn): w})


@pytest.mark.parametrize("label, edit, named", [
    ("quantized-affine", lambda f: f["layers/0005/weights/W"].attrs.__setitem__(
        "code_dtype", "<f4"), "bad quantized attribute 'code_dtype'"),
    ("nnc", lambda f: f["layers/0005/weights/W"].attrs.__setitem__(
        "cabac_unary_length_minus1", ""), "bad nnc attribute 'cabac_unary_length_minus1'"),
    ("masked", lambda f: f["layers/0005/weights/W"].attrs.__setitem__("shape", [1 << 40, 4]),
     "'shape'"),
    ("deep_compressed", lambda f: f["layers/0005/weights/W"].attrs.__setitem__("crc32", 7),
     "attribute 'crc32'"),
    ("deep_compressed", lambda f: f["layers/0005/weights/W"].attrs.__setitem__(
        "index_bits", 1), "index_bits"),
    ("masked", lambda f: _truncate(f, "layers/0005/weights/W/mask"), "'mask' holds"),
    ("residual_quantized", lambda f: f["layers/0005/weights/W"].attrs.__setitem__(
        "n_stages", "x"), "bad residual_quantized attribute 'n_stages'"),
    ("csr", lambda f: f["layers/0005/weights/W"].attrs.__setitem__("weight_shape", 2.5),
     "bad csr attribute 'weight_shape'"),
])
def test_refusals_name_the_hdf5_item_at_fault(label, edit, named, tmp_path):
    """Issue 22: "model.h5:/layers/0005/weights/W: ..." and the attribute or dataset by name,
    in one line (the corpus checks the same on every structural mutation)."""
    p = tmp_path / "m.h5"
    refcomp.save(_encoded(label), p)
    with h5py.File(p, "r+") as f:
        edit(f)
    with pytest.raises(refcomp.RefcompError) as err:
        refcomp.load(p)
    msg = str(err.value)
    assert msg.startswith(f"{p}:/layers/0005/weights/W") and "\n" not in msg, msg
    assert named in msg, msg


def _truncate(f, name):
    data = f[name][()]
    del f[name]
    f.create_dataset(name, data=data[:1])
