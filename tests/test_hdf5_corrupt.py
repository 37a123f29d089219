"""Malformed refcomp HDF5 files: FormatError/DecodeError naming the HDF5 path, never a raw
exception; the CLI prints one line and writes nothing.  Also declared-size budgets, the
format versions, float16 on save, index maps and single-weight files given to the CLI."""

import json
import os
import tracemalloc

import h5py
import numpy as np
import pytest

import refcomp
from refcomp import DecodeError, DTypeError, FormatError, Layer, Model, ParameterError, ShapeError
from refcomp.cli import main
from refcomp.io import _format  # owns the size limits (re-exported by refcomp.io.hdf5)
from refcomp.quantize import affine

f32 = np.float32
DATA = os.path.join(os.path.dirname(__file__), os.pardir, "data")


def _model(input_shape=(1, 4, 4)):
    """conv(1->3) relu residual[conv(3->2), index_map [0, 2]] pool flatten dense(12->5)."""
    rng = np.random.default_rng(0)
    r = lambda *s: rng.standard_normal(s).astype(f32)  # noqa: E731
    return Model([
        Layer("conv2d", attrs={"padding": 1}, weights={"W": r(3, 1, 3, 3), "b": r(3)}),
        Layer("activation", attrs={"function": "relu"}),
        Layer("residual", layers=[Layer("conv2d", attrs={"padding": 1},
                                        weights={"W": r(2, 3, 3, 3)})],
              weights={"index_map": np.array([0, 2], np.int64)}),
        Layer("max_pool2d"),
        Layer("flatten"),
        Layer("dense", weights={"W": r(5, 12), "b": r(5)}),
    ], name="corrupt-me", input_shape=input_shape)


def _x():
    return np.random.default_rng(1).standard_normal((2, 1, 4, 4)).astype(f32)


def _saved(tmp_path, model=None, name="m.h5"):
    p = tmp_path / name
    refcomp.save(_model() if model is None else model, p)
    return p


def _replace(group, name, **kw):
    """Replace member ``name`` of ``group`` by a new dataset (attribute encoding=raw)."""
    del group[name]
    ds = group.create_dataset(name, **kw)
    ds.attrs["encoding"] = "raw"
    return ds


def _vlen_attr(obj, name):
    """A variable-length integer sequence attribute (HDF5 class VLEN)."""
    data = np.empty(1, dtype=object)
    data[0] = np.arange(3, dtype=np.int32)
    del obj.attrs[name]
    obj.attrs.create(name, data=data, dtype=h5py.vlen_dtype(np.int32))


def _layers_dataset(f):
    del f["layers"]
    f["layers"] = np.zeros(3)


def _nested_link(f):
    f["layers/0002/layers"]["0001"] = f["layers"]        # a cycle back to /layers


def _shared_link(f):
    del f["layers/0005/weights/b"]
    f["layers/0005/weights"]["b"] = f["layers/0000/weights/b"]


def _null_dataspace(f):
    del f["layers/0005/weights/b"]
    f["layers/0005/weights"].create_dataset("b", data=h5py.Empty(f32)).attrs["encoding"] = "raw"


# (id, mutation, substrings the message must contain: the HDF5 path and the problem)
CASES = [
    ("version-abc", lambda f: f.attrs.__setitem__("format_version", "abc"),
     ["/: attribute 'format_version'", "not an integer"]),
    ("version-float", lambda f: f.attrs.__setitem__("format_version", 1.0), ["not an integer"]),
    ("version-3", lambda f: f.attrs.__setitem__("format_version", 3),
     ["unsupported format_version 3", "versions 1, 2"]),
    ("version-0", lambda f: f.attrs.__setitem__("format_version", 0),
     ["unsupported format_version 0"]),
    ("version-missing", lambda f: f.attrs.__delitem__("format_version"), ["format_version"]),
    ("format-array", lambda f: f.attrs.__setitem__("format", np.arange(3)),
     ["/: attribute 'format' must be a string"]),
    ("input-shape-float", lambda f: f.attrs.__setitem__("input_shape", [1.5, -3.0]),
     ["/: attribute 'input_shape'", "[1.5, -3.0]"]),
    ("input-shape-negative", lambda f: f.attrs.__setitem__("input_shape", np.array([1, -3, 4])),
     ["/: attribute 'input_shape'", "non-negative"]),
    ("input-shape-2d", lambda f: f.attrs.__setitem__("input_shape", np.ones((2, 2), np.int64)),
     ["/: attribute 'input_shape'"]),
    ("input-shape-wrong", lambda f: f.attrs.__setitem__("input_shape", np.array([1, 6, 6])),
     ["/layers/0005", "inconsistent model"]),
    ("layers-dataset", _layers_dataset, ["/layers: expected a group, found a dataset"]),
    ("layers-missing", lambda f: f.__delitem__("layers"), ["/layers: missing group"]),
    ("layer-dataset", lambda f: (f["layers"].__delitem__("0003"),
                                 f["layers"].create_dataset("0003", data=[1.0])),
     ["/layers/0003: expected a group"]),
    ("weights-dataset", lambda f: (f["layers/0000"].__delitem__("weights"),
                                   f["layers/0000"].create_dataset("weights", data=[1.0])),
     ["/layers/0000/weights: expected a group"]),
    ("gap", lambda f: f.move("layers/0004", "layers/0009"), ["/layers:", "without gaps"]),
    ("metadata-list", lambda f: f.attrs.__setitem__("metadata", "[1, 2]"),
     ["/: attribute 'metadata' must be a JSON object"]),
    ("metadata-not-json", lambda f: f.attrs.__setitem__("metadata", "{oops"),
     ["/: attribute 'metadata' is not valid JSON"]),
    ("metadata-int", lambda f: f.attrs.__setitem__("metadata", 7),
     ["/: attribute 'metadata' must be a string"]),
    ("kind-int", lambda f: f["layers/0001"].attrs.__setitem__("kind", 3),
     ["/layers/0001: attribute 'kind' must be a string"]),
    ("kind-unknown", lambda f: f["layers/0001"].attrs.__setitem__("kind", "attention"),
     ["/layers/0001: unknown layer kind 'attention'"]),
    ("attrs-list", lambda f: f["layers/0000"].attrs.__setitem__("attrs", "[1]"),
     ["/layers/0000: attribute 'attrs' must be a JSON object"]),
    ("attrs-unknown-key", lambda f: f["layers/0000"].attrs.__setitem__(
        "attrs", json.dumps({"strides": 2})), ["/layers/0000:", "unknown attribute 'strides'"]),
    ("attrs-huge-int", lambda f: f["layers/0000"].attrs.__setitem__(
        "attrs", json.dumps({"stride": 10 ** 30})), ["/layers/0000: attribute 'attrs' holds"]),
    ("attrs-bad-stride", lambda f: f["layers/0000"].attrs.__setitem__(
        "attrs", json.dumps({"stride": "abc"})), ["/layers/0000: inconsistent model", "stride"]),
    ("encoding-vlen", lambda f: _vlen_attr(f["layers/0000/weights/W"], "encoding"),
     ["/layers/0000/weights/W: attribute 'encoding' has an unsupported HDF5 datatype"]),
    ("encoding-missing", lambda f: f["layers/0000/weights/W"].attrs.__delitem__("encoding"),
     ["/layers/0000/weights/W: missing attribute 'encoding'"]),
    ("encoding-unknown", lambda f: f["layers/0000/weights/W"].attrs.__setitem__("encoding", "zstd"),
     ["/layers/0000/weights/W: unknown weight encoding 'zstd'"]),
    ("encoded-as-dataset", lambda f: f["layers/0000/weights/W"].attrs.__setitem__(
        "encoding", "quantized"), ["/layers/0000/weights/W: encoding 'quantized' needs a group"]),
    ("raw-as-group", lambda f: (f["layers/0005/weights"].__delitem__("b"),
                                f["layers/0005/weights"].create_group("b").attrs.__setitem__(
                                    "encoding", "raw")),
     ["/layers/0005/weights/b: encoding 'raw' needs a dataset"]),
    ("unexpected-weight", lambda f: f["layers/0005/weights"].move("b", "gamma"),
     ["/layers/0005/weights/gamma: unexpected weight"]),
    ("float16", lambda f: _replace(f["layers/0005/weights"], "W",
                                   data=np.zeros((5, 12), np.float16)),
     ["/layers/0005/weights/W: unsupported dtype float16"]),
    ("int-weight", lambda f: _replace(f["layers/0005/weights"], "b", data=np.zeros(5, np.int32)),
     ["/layers/0005/weights/b: unsupported dtype int32"]),
    ("compound", lambda f: _replace(f["layers/0005/weights"], "b",
                                    data=np.zeros(5, dtype=[("a", "<f4"), ("b", "<i4")])),
     ["/layers/0005/weights/b: dataset has an unsupported HDF5 datatype"]),
    ("vlen-dataset", lambda f: _replace(f["layers/0005/weights"], "b", shape=(5,),
                                        dtype=h5py.vlen_dtype(np.float32)),
     ["/layers/0005/weights/b: dataset has an unsupported HDF5 datatype"]),
    ("null-dataspace", _null_dataspace, ["/layers/0005/weights/b: dataset has a null dataspace"]),
    ("bias-wrong-length", lambda f: _replace(f["layers/0005/weights"], "b",
                                             data=np.zeros(4, f32)),
     ["/layers/0005/weights/b:", "expected (5,)"]),
    ("dtype-mismatch", lambda f: _replace(f["layers/0005/weights"], "b", data=np.zeros(5)),
     ["/layers/0005/weights/b: dtype float64 differs from float32 of /layers/0000/weights/W"]),
    ("nested-shape", lambda f: _replace(f["layers/0002/layers/0000/weights"], "W",
                                        data=np.zeros((2, 2, 3, 3), f32)),
     ["/layers/0002/layers/0000/weights/W: inconsistent model"]),
    ("index-map-2d", lambda f: _replace(f["layers/0002/weights"], "index_map",
                                        data=np.array([[0, 2]])),
     ["/layers/0002/weights/index_map:", "1 dimension"]),
    ("index-map-float", lambda f: _replace(f["layers/0002/weights"], "index_map",
                                           data=np.array([0.0, 2.0])),
     ["/layers/0002/weights/index_map: unsupported dtype float64"]),
    ("index-map-range", lambda f: _replace(f["layers/0002/weights"], "index_map",
                                           data=np.array([0, 7])),
     ["/layers/0002/weights/index_map:", "channel index 7, out of range", "3 channels"]),
    ("index-map-negative", lambda f: _replace(f["layers/0002/weights"], "index_map",
                                              data=np.array([-1, 2])),
     ["/layers/0002/weights/index_map:", "negative channel index -1"]),
    ("index-map-duplicate", lambda f: _replace(f["layers/0002/weights"], "index_map",
                                               data=np.array([2, 2])),
     ["/layers/0002/weights/index_map:", "channel index 2 more than once"]),
    ("soft-link", lambda f: (f["layers"].__delitem__("0003"),
                             f["layers"].__setitem__("0003", h5py.SoftLink("/layers/0001"))),
     ["/layers/0003: is a SoftLink", "hard links"]),
    ("external-link", lambda f: (f["layers"].__delitem__("0003"),
                                 f["layers"].__setitem__("0003", h5py.ExternalLink("x.h5", "/"))),
     ["/layers/0003: is a ExternalLink"]),
    ("cyclic-link", _nested_link, ["/layers/0002/layers/0001: links an HDF5 object already met"]),
    ("shared-link", _shared_link, ["/layers/0005/weights/b: links an HDF5 object already met"]),
]


def _mutated(tmp_path, mutation, base=None):
    p = _saved(tmp_path) if base is None else base
    with h5py.File(p, "r+") as f:
        mutation(f)
    return p


def _assert_clean_cli_failure(capsys, tmp_path, model_path, needle=None):
    """``refcomp info`` and ``refcomp run`` fail with one stderr line, no traceback, no output."""
    inp = tmp_path / "in.h5"
    with h5py.File(inp, "w") as f:
        f["x"] = _x()
    out = tmp_path / "out.h5"
    capsys.readouterr()
    for argv in (["info", str(model_path)], ["run", str(model_path), str(inp), "-o", str(out)]):
        assert main(argv) != 0
        captured = capsys.readouterr()
        err = captured.err
        assert err.count("\n") == 1 and err.startswith("refcomp: error: "), err
        assert "Traceback" not in err
        if needle is not None:
            assert needle in err
        assert not out.exists()
    assert sorted(os.listdir(tmp_path)) == sorted([model_path.name, "in.h5"])


@pytest.mark.parametrize("mutation,needles", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_malformed_file_names_path_and_problem(tmp_path, capsys, mutation, needles):
    p = _mutated(tmp_path, mutation)
    before = p.read_bytes()
    with pytest.raises(FormatError) as e:
        refcomp.load(p)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"{p}:"), msg
    for needle in needles:
        assert needle in msg, msg
    assert p.read_bytes() == before                                # read-only
    _assert_clean_cli_failure(capsys, tmp_path, p, needles[0])


def test_good_file_passes_every_check(tmp_path, capsys):
    p = _saved(tmp_path)
    m = refcomp.load(p)
    assert_equal = np.testing.assert_array_equal
    assert_equal(m(_x()), _model()(_x()))
    assert main(["info", str(p)]) == 0 and "residual" in capsys.readouterr().out


# -- random byte flips ----------------------------------------------------------------
def _flip_files(tmp_path, base, n, seed):
    data = base.read_bytes()
    for k in range(n):
        rng = np.random.default_rng([seed, k])
        b = bytearray(data)
        for _ in range(int(rng.integers(1, 4))):
            i = int(rng.integers(len(b)))
            b[i] ^= int(rng.integers(1, 256))
        p = tmp_path / f"flip{k}.h5"
        p.write_bytes(bytes(b))
        yield p


@pytest.mark.parametrize("quantized", [False, True], ids=["raw", "quantized"])
def test_random_byte_flips(tmp_path, capsys, quantized):
    m = _model()
    if quantized:
        m = m.replace_weights({("5", "W"): affine(m.get_layer("5").weights["W"], 4, axis=0)})
    base = _saved(tmp_path, m, name="base.h5")
    failures = 0
    for p in _flip_files(tmp_path, base, 150, seed=7 + quantized):
        try:
            refcomp.load(p)
        except (FormatError, DecodeError) as exc:
            failures += 1
            assert "\n" not in str(exc) and str(exc).startswith(str(p))
            capsys.readouterr()
            assert main(["info", str(p)]) == 1
            err = capsys.readouterr().err
            assert err.count("\n") == 1 and "Traceback" not in err
        p.unlink()
    assert failures > 10                 # most flips land in checked metadata or values


def test_corrupt_global_heap_refused_before_hdf5_walks_it(tmp_path, capsys):
    """A free-space object of size 0 in a global heap collection (where h5py keeps string
    attributes) sends the HDF5 library into an endless loop: refused beforehand."""
    p = _saved(tmp_path)
    data = bytearray(p.read_bytes())
    pos = data.find(b"GCOL")
    end = pos + int.from_bytes(data[pos + 8:pos + 16], "little")
    q = pos + 16
    while int.from_bytes(data[q:q + 2], "little") != 0:          # walk to the free space
        q += 16 + ((int.from_bytes(data[q + 8:q + 16], "little") + 7) & ~7)
    assert q + 16 <= end
    data[q + 8:q + 16] = bytes(8)
    p.write_bytes(bytes(data))
    with pytest.raises(FormatError, match=f"global heap collection at byte {pos}: object at "
                                          f"byte {q} declares 0 bytes"):
        refcomp.load(p)
    _assert_clean_cli_failure(capsys, tmp_path, p, "global heap")


# -- declared sizes -------------------------------------------------------------------
def _absurd_dense(tmp_path, **dataset_kw):
    """A small file whose dense layer declares a (32768, 65536) float64 weight (16 GiB)."""
    p = tmp_path / "absurd.h5"
    W = np.zeros((4, 8))
    refcomp.save(Model([Layer("dense", weights={"W": W, "b": np.zeros(4)})],
                       input_shape=(8,)), p)
    with h5py.File(p, "r+") as f:
        g = f["layers/0000/weights"]
        del g["W"], g["b"]
        ds = g.create_dataset("W", shape=(32768, 65536), dtype=np.float64, **dataset_kw)
        ds.attrs["encoding"] = "raw"
        if dataset_kw.get("compression"):
            ds[:64, :64] = 1.0                                   # one compressed chunk stored
        f.attrs["input_shape"] = np.array([65536])
    return p


@pytest.mark.parametrize("kw,needle", [
    ({}, "the file stores only 0 bytes"),                                      # contiguous
    ({"chunks": (256, 256), "fletcher32": True}, "the file stores only 0 bytes"),
    ({"chunks": (64, 64), "compression": "gzip"}, "may expand at most MAX_EXPANSION"),
], ids=["contiguous", "chunked", "compressed"])
def test_absurd_declared_size_fails_fast_with_tiny_memory(tmp_path, kw, needle):
    p = _absurd_dense(tmp_path, **kw)
    assert p.stat().st_size < 200_000
    tracemalloc.start()
    try:
        with pytest.raises(FormatError) as e:
            refcomp.load(p)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20, peak
    msg = str(e.value)
    assert "/layers/0000/weights/W: declares shape (32768, 65536) float64 (17179869184 bytes)" \
        in msg and needle in msg, msg


def test_total_budget_across_datasets(tmp_path, monkeypatch):
    p = _saved(tmp_path)
    monkeypatch.setattr(_format, "MAX_TOTAL_BYTES", 200)  # W of layer 0 (108 B) + b + ...
    with pytest.raises(FormatError, match=r"datasets of this file declare \d+ bytes in total"):
        refcomp.load(p)
    monkeypatch.setattr(_format, "MAX_TOTAL_BYTES", 1 << 32)
    monkeypatch.setattr(_format, "MAX_EXPANSION", 0)      # budget = 0 x file size
    with pytest.raises(FormatError, match="in total"):
        refcomp.load(p)


def test_encoded_weight_declaring_huge_decoded_size(tmp_path):
    """An encoded entry's shape x dtype counts before its reader runs (a masked weight
    declaring 16 GiB from a few bytes of mask)."""
    from refcomp.prune import Masked
    W = np.ones((5, 12), f32)
    m = _model().replace_weights({("5", "W"): Masked(W, W != 0)})
    p = _saved(tmp_path, m)
    with h5py.File(p, "r+") as f:
        f["layers/0005/weights/W"].attrs["shape"] = np.array([32768, 65536], np.int64)
        f["layers/0005/weights/W"].attrs["dtype"] = "<f8"
    tracemalloc.start()
    try:
        with pytest.raises(FormatError, match=r"/layers/0005/weights/W: the weights of this "
                                              r"file decode to more than MAX_TOTAL_BYTES"):
            refcomp.load(p)
        assert tracemalloc.get_traced_memory()[1] < 16 << 20
    finally:
        tracemalloc.stop()


def test_external_storage_and_oversized_chunks_refused(tmp_path):
    p = _saved(tmp_path)
    other = tmp_path / "other.bin"
    other.write_bytes(np.zeros(5, f32).tobytes())
    with h5py.File(p, "r+") as f:
        _replace(f["layers/0005/weights"], "b", shape=(5,), dtype=f32,
                 external=[(str(other), 0, 20)])
    with pytest.raises(FormatError, match="/layers/0005/weights/b: data stored outside"):
        refcomp.load(p)
    p = _saved(tmp_path, name="m2.h5")
    with h5py.File(p, "r+") as f:
        _replace(f["layers/0005/weights"], "b", shape=(5,), maxshape=(None,), dtype=f32,
                 chunks=(1 << 20,), data=np.zeros(5, f32))
    with pytest.raises(FormatError, match="/layers/0005/weights/b: chunks of"):
        refcomp.load(p)


def test_nesting_depth_limited(tmp_path, monkeypatch):
    inner = Layer("residual", layers=[Layer("activation", attrs={"function": "relu"})])
    m = Model([Layer("residual", layers=[Layer("residual", layers=[inner])])],
              input_shape=(3,))
    p = _saved(tmp_path, m)
    assert isinstance(refcomp.load(p), Model)
    monkeypatch.setattr(_format, "MAX_DEPTH", 1)
    with pytest.raises(FormatError, match="/layers/0000/layers/0000/layers: residual blocks "
                                          "nested deeper than MAX_DEPTH = 1"):
        refcomp.load(p)


def test_read_arrays_checks_declared_sizes(tmp_path, capsys):
    p = tmp_path / "x.h5"
    with h5py.File(p, "w") as f:
        f.create_dataset("x", shape=(1 << 15, 1 << 15), dtype=f32)     # 4 GiB, never written
    with pytest.raises(FormatError, match="x.h5:/x: declares shape"):
        refcomp.io.read_arrays(p)
    good = _saved(tmp_path)
    out = tmp_path / "y.h5"
    assert main(["run", str(good), str(p), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "declares shape" in err and not out.exists()


# -- format versions ------------------------------------------------------------------
def _version(p):
    with h5py.File(p, "r") as f:
        return int(f.attrs["format_version"])


def test_version_1_for_raw_models_2_for_encoded_weights(tmp_path):
    from refcomp.prune import Masked
    m = _model()
    assert _version(_saved(tmp_path, m, "raw.h5")) == 1
    W = m.get_layer("5").weights["W"]
    for name, w in (("q.h5", affine(W, 8)), ("masked.h5", Masked(W, np.abs(W) > 0.5))):
        p = _saved(tmp_path, m.replace_weights({("5", "W"): w}), name)
        assert _version(p) == 2
        back = refcomp.load(p)
        np.testing.assert_array_equal(back(_x()), m.replace_weights({("5", "W"): w})(_x()))
    q = tmp_path / "w.h5"
    refcomp.save(affine(W, 8), q)
    assert _version(q) == 2
    # a quantized residual sub-layer is found too
    W2 = m.get_layer("2/0").weights["W"]
    assert _version(_saved(tmp_path, m.replace_weights({("2/0", "W"): affine(W2, 8)}),
                           "nested.h5")) == 2


def test_reader_accepts_versions_1_and_2_only(tmp_path):
    W = _model().get_layer("5").weights["W"]
    for model in (_model(), _model().replace_weights({("5", "W"): affine(W, 8)})):
        p = _saved(tmp_path, model)
        for v in (1, 2):        # version 1 with encodings: files of earlier refcomp releases
            with h5py.File(p, "r+") as f:
                f.attrs["format_version"] = v
            assert isinstance(refcomp.load(p), Model)
        for v, needle in ((3, "unsupported format_version 3"), (-1, "format_version -1"),
                          (True, "not an integer"), ("2", "not an integer")):
            with h5py.File(p, "r+") as f:
                f.attrs["format_version"] = v
            with pytest.raises(FormatError, match=needle):
                refcomp.load(p)


def test_shipped_models_stay_version_1(tmp_path):
    src = os.path.join(DATA, "digits_mlp.h5")
    if not os.path.exists(src):
        pytest.skip("data/digits_mlp.h5 not shipped")
    assert _version(src) == 1
    p = _saved(tmp_path, refcomp.load(src))
    assert _version(p) == 1


# -- float16 and other unstorable dtypes --------------------------------------------
def test_save_refuses_float16_before_writing(tmp_path):
    m = _model()
    p = _saved(tmp_path)
    before = p.read_bytes()
    W16 = m.get_layer("5").weights["W"].astype(np.float16)
    bad = Model([Layer("dense", weights={"W": W16})])
    with pytest.raises(DTypeError, match=r"layer 0 \(dense 'dense'\): weight 'W' has dtype "
                                         r"float16; refcomp files store float32 or float64"):
        refcomp.save(bad, p)
    assert p.read_bytes() == before and os.listdir(tmp_path) == ["m.h5"]
    with pytest.raises(DTypeError, match="index_map"):
        refcomp.save(_float_index_model(), tmp_path / "new.h5")
    assert os.listdir(tmp_path) == ["m.h5"]
    with pytest.raises(ParameterError, match="metadata is not JSON"):
        refcomp.save(Model([], metadata={"x": object()}), tmp_path / "new.h5")
    assert os.listdir(tmp_path) == ["m.h5"]


def _float_index_model():
    m = Model([Layer("residual", layers=[], weights={"index_map": np.array([0, 1], np.int64)})])
    m.layers[0].weights["index_map"] = np.array([0.0, 1.0])    # bypasses Layer validation
    return m


# -- index maps -----------------------------------------------------------------------
def test_index_map_validation():
    conv = lambda o, i: Layer("conv2d", attrs={"padding": 1},  # noqa: E731
                              weights={"W": np.zeros((o, i, 3, 3), f32)})
    for idx, match in ((np.array([0, 0]), "channel index 0 more than once"),
                       (np.array([-1, 1]), "negative channel index -1"),
                       (np.array([[0, 1]]), "1 dimension"),
                       (np.array([0.0, 1.0]), "integer dtype"),
                       ([0, 1], "numpy integer array")):
        with pytest.raises(FormatError, match=match):
            Layer("residual", layers=[conv(2, 3)], weights={"index_map": idx})
    ok = Layer("residual", layers=[conv(2, 3)], weights={"index_map": np.array([2, 0])})
    Model([conv(3, 1), ok], input_shape=(1, 4, 4))
    far = Layer("residual", layers=[conv(2, 3)], weights={"index_map": np.array([0, 3])})
    # out of range: by the zero-batch forward pass, and statically without input_shape
    with pytest.raises(ShapeError, match=r"layer 1 \(residual .*channel index 3, out of range "
                                         r"for a shortcut of 3 channels"):
        Model([conv(3, 1), far], input_shape=(1, 4, 4))
    with pytest.raises(ShapeError, match="channel index 3, out of range"):
        Model([conv(3, 1), far])
    m = Model([conv(3, 1), ok], input_shape=(1, 4, 4))
    with pytest.raises(ShapeError, match="more than once"):
        m.replace_weights({("1", "index_map"): np.array([1, 1])})
    x = np.ones((1, 1, 4, 4), f32)
    np.testing.assert_array_equal(m(x), Model([conv(3, 1), ok])(x))


def test_model_rejects_bad_metadata_and_input_shape():
    with pytest.raises(ParameterError, match="metadata must be a dict"):
        Model([], metadata=[1, 2])
    for shape in ((1.5,), (-3,), (True, 2), "ab", 5):
        with pytest.raises(ParameterError, match="input_shape"):
            Model([], input_shape=shape)
    assert Model([], input_shape=(np.int64(2), 3.0)).input_shape == (2, 3)


def test_forward_errors_name_the_layer_and_weight():
    m = Model([Layer("flatten"), Layer("dense", name="fc", weights={
        "W": np.zeros((3, 4), f32), "b": np.zeros(3)})])
    with pytest.raises(DTypeError, match=r"layer 1 \(dense 'fc'\): b has dtype float64") as e:
        m(np.zeros((1, 2, 2), f32))
    assert e.value.layer_path == "1" and e.value.weight_name == "b"


# -- single-weight files given where a model is expected -------------------------------
def test_cli_refuses_single_weight_file(tmp_path, capsys):
    from refcomp.io import read_any
    from refcomp.io.hdf5 import load_model
    q = tmp_path / "q.h5"
    refcomp.save(affine(np.linspace(-1, 1, 12, dtype=f32), 4), q)
    assert not isinstance(refcomp.load(q), Model)                 # load returns the weight
    for fn in (load_model, lambda p: read_any(p), lambda p: read_any(p, fmt="refcomp")):
        with pytest.raises(FormatError, match="is a single-weight file .*expected a model"):
            fn(q)
    inp = tmp_path / "in.h5"
    with h5py.File(inp, "w") as f:
        f["x"] = np.zeros((1, 12), f32)
    out = tmp_path / "out.h5"
    capsys.readouterr()
    # info describes a single weight (it recognises every file kind); the
    # commands that need a model refuse it
    assert main(["info", str(q)]) == 0
    assert "single refcomp weight" in capsys.readouterr().out
    for argv in (["run", str(q), str(inp), "-o", str(out)],
                 ["eval", str(q)], ["convert", str(q), str(out)]):
        assert main(argv) == 1, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "is a single-weight file" in err, err
        assert not out.exists()


def test_compress_size_study_refuse_single_weight_file(tmp_path, capsys):
    q = tmp_path / "q.h5"
    refcomp.save(affine(np.linspace(-1, 1, 12, dtype=f32), 4), q)
    out = tmp_path / "out.h5"
    capsys.readouterr()
    for argv in (["compress", str(q), "--prune", "0.5", "-o", str(out)], ["size", str(q)],
                 ["study", str(q), "--out", str(tmp_path / "study")]):
        assert main(argv) == 1, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "is a single-weight file" in err, err
    assert not out.exists() and not (tmp_path / "study").exists()
