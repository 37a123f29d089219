"""The compressed-weight protocol, the encoding registry, layer-level study
methods and the import layering (docs/ARCHITECTURE.md).

The end-to-end test defines a new compressed weight type *here*, outside the
package, registers it through the public registry, and shows that it is
saved and loaded by ``refcomp.save``/``load``, run by ``Model`` forward
passes through its ``linear`` hook, and swept by ``refcomp study`` through
a layer-level method, with no file of refcomp edited.
"""

import math
import os
import shutil
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

import refcomp
from refcomp import FormatError, Layer, Model, ParameterError, ShapeError
from refcomp.study import CompressedLayer, register_method, run_study
from refcomp.study.registry import _METHODS, get_method
from refcomp.testing import assert_bits_equal
from refcomp.weights import (CompressedWeight, encoding_class, register_encoding,
                             registered_encodings, unregister_encoding)
from refcomp.weights._h5util import write_dataset

ROOT = Path(__file__).resolve().parents[1]
f32 = np.float32


# -- a compressed weight type defined outside refcomp ---------------------------------
class RowSigns(CompressedWeight):
    """W[o, i] = scale[o] * sign[o, i]: one bit per weight plus one float per row.

    ``dequantize``: ``scale[o] * sign`` in the weight dtype (exact: sign is
    +-1).  ``linear`` hook: per output, the exactly rounded sum
    (``math.fsum``) of ``x[n, i] * sign[o, i]`` (exact products), times
    ``scale[o]`` in float64 (one rounding), plus ``b[o]`` in float64 (one
    rounding), then one rounding to x's dtype.
    """

    __slots__ = ("signs", "scale")
    encoding = "test_row_signs"
    calls = 0

    def __init__(self, signs, scale):
        self.signs = np.asarray(signs, dtype=np.int8)
        self.scale = np.asarray(scale)

    @classmethod
    def from_dense(cls, W):
        scale = np.mean(np.abs(W.astype(np.float64)), axis=1).astype(W.dtype)
        return cls(np.where(W >= 0, 1, -1), scale)

    @property
    def shape(self):
        return self.signs.shape

    @property
    def dtype(self):
        return self.scale.dtype

    def dequantize(self):
        return self.scale[:, None] * self.signs.astype(self.dtype)

    def stored_bits(self):
        return self.signs.size + self.scale.size * self.scale.dtype.itemsize * 8

    def to_hdf5(self, group):
        group.attrs["encoding"] = self.encoding
        write_dataset(group, "signs", self.signs)
        write_dataset(group, "scale", self.scale)

    @classmethod
    def from_hdf5(cls, group, *, max_elements=1 << 31):
        return cls(group["signs"][()], group["scale"][()])

    def linear(self, x, b=None, *, precision="reference"):
        type(self).calls += 1
        x64 = x.astype(np.float64)
        out = np.empty((x.shape[0], self.signs.shape[0]), dtype=np.float64)
        for n in range(x.shape[0]):
            for o in range(self.signs.shape[0]):
                acc = math.fsum(x64[n] * self.signs[o])
                acc = acc * float(self.scale[o])
                out[n, o] = acc if b is None else acc + float(b[o])
        return out.astype(x.dtype)


@pytest.fixture
def row_signs():
    register_encoding(RowSigns.encoding, RowSigns)
    RowSigns.calls = 0
    yield RowSigns
    unregister_encoding(RowSigns.encoding)


def _mlp(seed=0, n_in=6, hidden=5, n_out=3):
    rng = np.random.default_rng(seed)
    r = lambda *s: (rng.standard_normal(s) * 0.5).astype(f32)   # noqa: E731
    return Model([Layer("dense", weights={"W": r(hidden, n_in), "b": r(hidden)}),
                  Layer("activation", attrs={"function": "relu"}),
                  Layer("dense", weights={"W": r(n_out, hidden), "b": r(n_out)})],
                 name="mlp", input_shape=(n_in,))


def _row_signs_reference(x, W_obj, b):
    """Ground truth of the hook: exact rational sums, then the stated roundings."""
    out = np.empty((x.shape[0], W_obj.signs.shape[0]), dtype=x.dtype)
    for n in range(x.shape[0]):
        for o in range(W_obj.signs.shape[0]):
            exact = sum((Fraction(float(v)) * int(s) for v, s in zip(x[n], W_obj.signs[o])),
                        Fraction(0))
            acc = float(exact) * float(W_obj.scale[o])
            out[n, o] = acc + float(b[o])
    return out


def test_new_type_saves_loads_and_runs_through_its_hook(tmp_path, row_signs):
    model = _mlp()
    W0 = model.get_layer("0").weights["W"]
    q = row_signs.from_dense(W0)
    qm = model.replace_weights({("0", "W"): q})    # checked by a zero-batch forward pass
    x = np.random.default_rng(1).standard_normal((7, 6)).astype(f32)

    row_signs.calls = 0
    y = qm(x)
    assert row_signs.calls == 1                    # the forward pass used the hook
    h = np.maximum(_row_signs_reference(x, q, model.get_layer("0").weights["b"]), 0)
    expect = refcomp.layers.dense(h, model.get_layer("2").weights["W"],
                                  model.get_layer("2").weights["b"])
    assert_bits_equal(y, expect)
    qm(x, precision="fast")
    assert row_signs.calls == 2                    # both precisions

    path = tmp_path / "m.h5"
    refcomp.save(qm, path)
    back = refcomp.load(path)
    w = back.get_layer("0").weights["W"]
    assert isinstance(w, row_signs)
    assert np.array_equal(w.signs, q.signs) and w.scale.tobytes() == q.scale.tobytes()
    assert_bits_equal(back(x), y)
    # a single weight file as well
    refcomp.save(q, tmp_path / "w.h5")
    assert_bits_equal(refcomp.load(tmp_path / "w.h5").dequantize(), q.dequantize())
    # size accounting through the protocol
    rep = refcomp.compress.size_report(qm)
    assert rep.weights[0].compressed_bits == q.stored_bits()
    assert "test_row_signs" in registered_encodings()
    assert encoding_class("test_row_signs") is row_signs

    # unregistered again: the file names an encoding nobody can read
    unregister_encoding(row_signs.encoding)
    with pytest.raises(FormatError, match=r"/layers/0000/weights/W: unknown weight encoding "
                                          r"'test_row_signs'") as err:
        refcomp.load(path)
    assert str(path) in str(err.value)
    with pytest.raises(FormatError, match=r"/weight: unknown weight encoding 'test_row_signs'"):
        refcomp.load(tmp_path / "w.h5")


def test_hook_input_is_validated_by_the_layer_and_its_output_checked(row_signs):
    q = row_signs.from_dense(np.ones((4, 3), f32))
    with pytest.raises(ShapeError, match="x has 5 features but W expects 3"):
        refcomp.layers.dense(np.ones((2, 5), f32), q)
    with pytest.raises(refcomp.DTypeError):
        refcomp.layers.dense(np.ones((2, 3), np.float64), q)
    assert row_signs.calls == 0                    # refused before the hook ran

    class Broken(row_signs):
        __slots__ = ()

        def linear(self, x, b=None, *, precision="reference"):
            return np.zeros((x.shape[0], 99), x.dtype)
    with pytest.raises(ShapeError, match="linear hook of Broken returned shape"):
        refcomp.layers.dense(np.ones((2, 3), f32), Broken(q.signs, q.scale))


def test_type_without_hook_is_decoded():
    m = _mlp()
    W = m.get_layer("2").weights["W"]
    q = refcomp.quantize.uniform(W, bits=3)
    assert q.linear is None                        # Quantized has no compute hook
    x = np.random.default_rng(2).standard_normal((4, 6)).astype(f32)
    h = m.forward_all(x)[1]
    assert_bits_equal(m.replace_weights({("2", "W"): q})(x),
                      refcomp.layers.dense(h, q.dequantize(), m.get_layer("2").weights["b"]))


def test_layer_method_sweeps_the_new_type(row_signs):
    def signs_method(layer, value):
        W = layer.weights["W"]
        obj = row_signs.from_dense(W)
        weights = {"W": obj}
        bits = obj.stored_bits()
        for name in layer.names:
            if name != "W":
                weights[name] = layer.weights[name].copy()
                bits += weights[name].size * 32
        return CompressedLayer(weights, bits, obj)

    register_method("test_row_signs", signs_method, label="RS", values=(1,), level="layer")
    try:
        model = _mlp()
        rng = np.random.default_rng(3)
        x = rng.standard_normal((20, 6)).astype(f32)
        y = rng.integers(0, 3, 20)
        res = run_study(model, x, y, methods=("test_row_signs",), bits=(1,),
                        adaptive_bits=(1,), progress=False)
        assert row_signs.calls > 0                 # the evaluation ran the hook
        whole = [r for r in res["runs"] if r["experiment"] == "whole"]
        assert len(whole) == 1
        n_bits = sum(l.weights["W"].size + l.weights["W"].shape[0] * 32 + l.weights["b"].size * 32
                     for l in (model.get_layer("0"), model.get_layer("2")))
        assert whole[0]["size_bits"] == n_bits
        # the same accuracy as the model with the decoded weights put in by hand
        qm = model.replace_weights({(p, "W"): row_signs.from_dense(model.get_layer(p).weights["W"])
                                    for p in ("0", "2")})
        assert whole[0]["accuracy"] == refcomp.metrics.accuracy(qm(x), y)
    finally:
        _METHODS.pop("test_row_signs", None)


# -- registry errors ---------------------------------------------------------------------
def test_registration_errors(row_signs):
    class Other(row_signs):
        __slots__ = ()
    with pytest.raises(ParameterError, match="already registered.*replace=True"):
        register_encoding("test_row_signs", Other)
    register_encoding("test_row_signs", Other, replace=True)
    assert encoding_class("test_row_signs") is Other
    register_encoding("test_row_signs", row_signs, replace=True)
    register_encoding("test_row_signs", row_signs)            # same definition again: fine
    with pytest.raises(ParameterError, match="built-in encoding"):
        register_encoding("quantized", Other)
    with pytest.raises(ParameterError, match="reserved"):
        register_encoding("raw", Other)
    with pytest.raises(ParameterError, match="encoding name"):
        register_encoding("a/b", Other)

    class NoSize:                                  # duck-typed, one method missing
        shape, dtype = (1,), np.dtype(f32)

        def dequantize(self):
            return np.zeros(1, f32)

        def to_hdf5(self, group):
            pass

        @classmethod
        def from_hdf5(cls, group, *, max_elements=0):
            return cls()
    with pytest.raises(ParameterError, match="lacks the protocol method.*stored_bits"):
        register_encoding("test_nosize", NoSize)

    class Abstract(CompressedWeight):              # subclass leaving methods abstract
        def dequantize(self):
            return None
    with pytest.raises(ParameterError, match="from_hdf5.*stored_bits.*to_hdf5"):
        register_encoding("test_abstract", Abstract)
    assert "test_nosize" not in registered_encodings()

    class Duck(NoSize):                            # complete duck type: a virtual subclass
        def stored_bits(self):
            return 32
    register_encoding("test_duck", Duck)
    try:
        assert isinstance(Duck(), CompressedWeight)
    finally:
        unregister_encoding("test_duck")


def test_builtin_types_follow_the_protocol():
    from refcomp.compress import DeepCompressed
    from refcomp.prune import Masked
    from refcomp.quantize import ProductQuantized, Quantized, ResidualQuantized
    from refcomp.sparse import CSC, CSR
    for name, cls in (("quantized", Quantized), ("masked", Masked), ("csr", CSR), ("csc", CSC),
                      ("product_quantized", ProductQuantized),
                      ("residual_quantized", ResidualQuantized),
                      ("deep_compressed", DeepCompressed)):
        assert issubclass(cls, CompressedWeight) and cls.encoding == name
        assert encoding_class(name) is cls
    assert CSR.linear is not None and CSR.conv2d is not None
    # the public names of refcomp 0.1 keep working
    assert refcomp.io.register_encoding is register_encoding
    assert refcomp.quantize.Quantized is Quantized and refcomp.sparse.CSR is CSR


# -- study method interface ----------------------------------------------------------------
def test_flat_methods_through_the_layer_adapter_give_the_same_bits():
    from refcomp.study.evaluate import find_units, layer_view, theta_of
    model = _mlp(4)
    for unit in find_units(model):
        view = layer_view(model, unit)
        assert_bits_equal(view.theta(), theta_of(model, unit))
        for name in ("uniform", "kmeans", "magnitude"):
            m = get_method(name)
            value = m.values[0]
            flat = m.apply(view.theta(), value)
            res = m.compress_layer(view, value)
            assert res.bits == flat.bits
            assert_bits_equal(np.concatenate([res.weights[n].reshape(-1) for n in view.names]),
                              flat.decoded)
        with pytest.raises(ValueError, match="read-only"):
            view.weights["W"][0, 0] = 1.0          # methods cannot modify the model


def test_layer_method_results_are_checked():
    model = _mlp(5)
    x = np.zeros((3, 6), f32)
    y = np.zeros(3, int)

    def wrong_names(layer, value):
        return CompressedLayer({"W": layer.weights["W"]}, 1)

    def wrong_shape(layer, value):
        return CompressedLayer({n: np.zeros(3, f32) for n in layer.names}, 1)

    def flat_result(layer, value):
        return refcomp.study.Compressed(layer.theta(), 1)

    try:
        for fn, err, msg in ((wrong_names, ShapeError, "expected exactly"),
                             (wrong_shape, ShapeError, "of shape"),
                             (flat_result, ParameterError, "must return a CompressedLayer")):
            register_method("test_bad_layer", fn, values=(1,), level="layer")
            with pytest.raises(err, match=msg):
                run_study(model, x, y, methods=("test_bad_layer",), bits=(1,),
                          experiments=("whole",), progress=False)
        with pytest.raises(ParameterError, match="only level='layer'"):
            register_method("test_bad_layer", wrong_names, needs=("model",))
        with pytest.raises(ParameterError, match="unknown need"):
            register_method("test_bad_layer", wrong_names, level="layer", needs=("gpu",))
        with pytest.raises(ParameterError, match="level must be"):
            register_method("test_bad_layer", wrong_names, level="model")
    finally:
        _METHODS.pop("test_bad_layer", None)


def test_obd_and_structured_layer_methods():
    from refcomp.data import load_split
    from refcomp.prune import obd, structured
    model = refcomp.load(ROOT / "data" / "digits_mlp.h5")
    x, y = load_split("test")
    cal = load_split("calib")
    with pytest.raises(ParameterError, match="'obd' need.*calibration"):
        run_study(model, x, y, methods=("obd",), experiments=("whole",), progress=False)
    res = run_study(model, x[:50], y[:50], methods=("obd", "structured"),
                    experiments=("per_layer",), progress=False, calibration=cal)
    assert res["settings"]["calibration"] == {"n": 200}
    assert res["settings"]["levels"] == {"obd": "layer", "structured": "layer"}
    rows = {(r["method"], r["unit"], r["value"]): r for r in res["runs"]}
    # one hand check of each against the pruning functions they wrap
    layer = model.get_layer("1") if model.get_layer("0").kind != "dense" else model.get_layer("0")
    path = "1" if model.get_layer("0").kind != "dense" else "0"
    W = layer.weights["W"]
    _, masks = obd(model, *cal, sparsity=0.5, scope="layer", masked=False)
    kept = int(np.count_nonzero(masks[(path, "W")]))
    n_b = layer.weights["b"].size
    assert rows[("obd", "FC 1", 50)]["size_bits"] == kept * 32 + W.size + n_b * 32
    mask = structured(W, level="filter", sparsity=0.5)
    rows_kept = int(mask.any(axis=1).sum())
    assert rows[("structured", "FC 1", 50)]["size_bits"] == \
        rows_kept * W.shape[1] * 32 + W.shape[0] + rows_kept * 32


# -- import layering ---------------------------------------------------------------------------
def _lint_imports(cwd, pythonpath):
    exe = shutil.which("lint-imports", path=os.path.dirname(sys.executable)) or \
        shutil.which("lint-imports")
    if exe is None:
        pytest.skip("import-linter is not installed")
    env = dict(os.environ, PYTHONPATH=str(pythonpath))
    return subprocess.run([exe, "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_import_contracts_hold():
    res = _lint_imports(ROOT, ROOT)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "BROKEN" not in res.stdout


def test_import_contracts_catch_a_layer_importing_an_algorithm(tmp_path):
    shutil.copytree(ROOT / "refcomp", tmp_path / "refcomp",
                    ignore=shutil.ignore_patterns("__pycache__"))
    dense = tmp_path / "refcomp" / "layers" / "dense.py"
    dense.write_text(dense.read_text() + "\nfrom .. import sparse as _sparse  # noqa\n")
    res = _lint_imports(tmp_path, tmp_path)
    assert res.returncode != 0
    assert "refcomp.layers is not allowed to import refcomp.sparse" in res.stdout
    assert "BROKEN" in res.stdout
