"""Bad inputs give clear refcomp errors of the right class; nothing is written."""

import os

import h5py
import numpy as np
import pytest

import refcomp
import refcomp.layers as L
from refcomp import DTypeError, FormatError, Layer, Model, ParameterError, ShapeError
from refcomp.cli import main

f32 = np.float32


def test_dense_shape_errors_name_both_shapes():
    with pytest.raises(ShapeError) as e:
        L.dense(np.zeros((2, 3), f32), np.zeros((4, 5), f32))
    assert "(2, 3)" in str(e.value) and "(4, 5)" in str(e.value)
    with pytest.raises(ShapeError):
        L.dense(np.zeros((2, 3, 1), f32), np.zeros((4, 3), f32))
    with pytest.raises(ShapeError, match="b must have shape"):
        L.dense(np.zeros((2, 3), f32), np.zeros((4, 3), f32), np.zeros(5, f32))


def test_dtype_errors_never_cast():
    with pytest.raises(DTypeError):
        L.dense(np.zeros((2, 3), np.int32), np.zeros((4, 3), np.int32))
    with pytest.raises(DTypeError, match="dtype"):
        L.dense(np.zeros((2, 3), f32), np.zeros((4, 3), np.float64))
    with pytest.raises(DTypeError):
        L.relu([1.0, 2.0])
    assert issubclass(DTypeError, TypeError) and issubclass(ShapeError, ValueError)


def test_conv_and_pool_errors():
    with pytest.raises(ShapeError, match="input channels"):
        L.conv2d(np.zeros((1, 3, 5, 5), f32), np.zeros((2, 2, 3, 3), f32))
    with pytest.raises(ShapeError, match="groups"):
        L.conv2d(np.zeros((1, 3, 5, 5), f32), np.zeros((2, 1, 3, 3), f32), groups=2)
    with pytest.raises(ShapeError, match="smaller than the dilated kernel"):
        L.conv2d(np.zeros((1, 1, 2, 2), f32), np.zeros((1, 1, 3, 3), f32))
    with pytest.raises(ParameterError):
        L.conv2d(np.zeros((1, 1, 5, 5), f32), np.zeros((1, 1, 3, 3), f32), padding="full")
    with pytest.raises(ParameterError):
        L.conv2d(np.zeros((1, 1, 5, 5), f32), np.zeros((1, 1, 3, 3), f32), stride=0)
    with pytest.raises(ParameterError):
        L.conv2d(np.zeros((1, 1, 5, 5), f32), np.zeros((1, 1, 3, 3), f32), layout="CHWN")
    with pytest.raises(ShapeError):
        L.max_pool2d(np.zeros((1, 1, 4, 4), f32), 2, padding=2)
    with pytest.raises(ParameterError):
        L.dense(np.zeros((1, 1), f32), np.zeros((1, 1), f32), precision="exact")


def test_rnn_shape_errors():
    x = np.zeros((2, 3, 4), f32)
    with pytest.raises(ShapeError, match="W_ih"):
        L.lstm(x, np.zeros((8, 5), f32), np.zeros((8, 2), f32))
    with pytest.raises(ShapeError, match="W_hh"):
        L.gru(x, np.zeros((6, 4), f32), np.zeros((6, 3), f32))
    with pytest.raises(ShapeError, match="h0"):
        L.gru(x, np.zeros((6, 4), f32), np.zeros((6, 2), f32), h0=np.zeros((3, 2), f32))


def _model():
    rng = np.random.default_rng(0)
    return Model([Layer("flatten"), Layer("dense", weights={"W": rng.standard_normal((3, 4)).astype(f32),
                                                           "b": np.zeros(3, f32)})],
                 input_shape=(2, 2))


def test_model_construction_errors():
    with pytest.raises(ShapeError, match="layer 1"):
        Model([Layer("flatten"), Layer("dense", weights={"W": np.zeros((3, 5), f32)})],
              input_shape=(2, 2))
    with pytest.raises(FormatError, match="missing weight"):
        Layer("dense")
    with pytest.raises(ParameterError, match="unknown attribute"):
        Layer("conv2d", attrs={"strides": 2}, weights={"W": np.zeros((1, 1, 1, 1), f32)})
    with pytest.raises(ParameterError):
        Layer("transformer")
    with pytest.raises(ShapeError, match="x must have shape"):
        _model()(np.zeros((1, 3, 3), f32))


def test_corrupt_files(tmp_path):
    good = tmp_path / "m.h5"
    refcomp.save(_model(), good)
    data = good.read_bytes()
    cases = {"trunc.h5": data[: len(data) // 2], "text.h5": b"not hdf5 at all\n" * 10,
             "empty.h5": b""}
    with h5py.File(good) as f:                      # flip one byte inside W's stored values
        off = f["layers/0001/weights/W"].id.get_chunk_info(0).byte_offset
    cases["flip.h5"] = data[:off + 3] + bytes([data[off + 3] ^ 0x10]) + data[off + 4:]
    for name, content in cases.items():
        p = tmp_path / name
        p.write_bytes(content)
        with pytest.raises(FormatError):
            refcomp.load(p)
    with pytest.raises(FormatError, match="no such file"):
        refcomp.load(tmp_path / "missing.h5")


def _mutate(tmp_path, fn):
    p = tmp_path / "mut.h5"
    refcomp.save(_model(), p)
    with h5py.File(p, "r+") as f:
        fn(f)
    return p


@pytest.mark.parametrize("mutation,match", [
    (lambda f: f["layers/0001/weights"].__delitem__("W"), "missing dataset 'W'"),
    (lambda f: f.attrs.__setitem__("format_version", 99), "unsupported format_version"),
    (lambda f: f.attrs.__setitem__("format", "other"), "format"),
    (lambda f: f["layers/0001"].attrs.__setitem__("kind", "attention"), "unknown layer kind"),
    (lambda f: f["layers/0001/weights/W"].attrs.__setitem__("encoding", "zstd"), "unknown weight encoding"),
    (lambda f: (f["layers/0001/weights"].__delitem__("b"),
                f["layers/0001/weights"].create_dataset("b", data=np.zeros(3, np.int32)).attrs.__setitem__("encoding", "raw")),
     "unsupported dtype"),
    (lambda f: (f["layers/0001/weights"].__delitem__("W"),
                f["layers/0001/weights"].create_dataset("W", data=np.zeros((3, 5), f32)).attrs.__setitem__("encoding", "raw")),
     "inconsistent model"),
    (lambda f: f["layers/0000"].attrs.__setitem__("attrs", "{not json"), "JSON"),
    (lambda f: f.move("layers/0001", "layers/0005"), "without gaps"),
])
def test_invalid_model_files(tmp_path, mutation, match):
    p = _mutate(tmp_path, mutation)
    with pytest.raises(FormatError, match=match) as e:
        refcomp.load(p)
    assert "\n" not in str(e.value)


def test_absurd_declared_size_refused_before_reading(tmp_path, monkeypatch):
    from refcomp.io import _format                  # owns the limits refcomp.io.hdf5 re-exports
    p = tmp_path / "m.h5"
    refcomp.save(_model(), p)
    monkeypatch.setattr(_format, "MAX_ELEMENTS", 5)
    with pytest.raises(FormatError, match="declares 12 elements"):
        refcomp.load(p)


def test_load_is_read_only_and_save_atomic(tmp_path, monkeypatch):
    p = tmp_path / "m.h5"
    refcomp.save(_model(), p)
    os.chmod(p, 0o444)
    before = p.read_bytes()
    refcomp.load(p)
    assert p.read_bytes() == before
    os.chmod(p, 0o644)

    class Boom(Exception):
        pass

    from refcomp.io import _h5write                 # the writing module of refcomp.io.hdf5

    def boom(group, layer):
        raise Boom()
    monkeypatch.setattr(_h5write, "_write_layer", boom)
    with pytest.raises(Boom):
        refcomp.save(_model(), p)
    assert p.read_bytes() == before                         # old file untouched
    assert [q.name for q in tmp_path.iterdir()] == ["m.h5"]  # no temp left


def test_cli_errors_one_line_and_nothing_written(tmp_path, capsys):
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"garbage")
    out = tmp_path / "out.h5"
    assert main(["run", str(bad), str(bad), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("refcomp: error:")
    assert not out.exists()
    good = tmp_path / "m.h5"
    refcomp.save(_model(), good)
    inp = tmp_path / "in.h5"
    with h5py.File(inp, "w") as f:
        f["x"] = np.zeros((2, 3, 3), f32)
    assert main(["run", str(good), str(inp), "-o", str(out)]) == 1
    assert "x must have shape" in capsys.readouterr().err
    assert not out.exists()
    assert main(["info"]) == 2
    assert capsys.readouterr().err.count("\n") == 1
