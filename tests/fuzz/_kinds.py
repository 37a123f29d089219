"""Input kinds of the fuzz harness: a valid base per kind, a mutator, a reader, and the
check of a result the reader accepted.

``KINDS[name]`` is a :class:`Kind`.  ``prepare(work)`` builds the valid inputs once
(reusing the shipped models and golden framework files of ``data/``, and the model
of ``tests/test_hdf5_corrupt.py``); ``make(rng, base, work)`` writes one mutated case
and returns ``(input, how)`` where ``input`` is a path (a file reader) or bytes/objects
(a decoder); ``read(input, base)`` runs the reader; ``same(result, base)`` says
whether an accepted result equals the unmutated one (False: a benign change the format
cannot detect, e.g. a weight value changed where no checksum covers it) and raises
AssertionError when the result is not a valid one (e.g. a model whose forward pass fails).
"""

import io
import json
import os
import shutil
import sys
import zipfile
from pathlib import Path

import numpy as np

import refcomp
from refcomp.data import default_data_dir

from _mutate import (mutate_bytes, mutate_h5, mutate_json_text, mutate_json_value, pick,
                     vlen_length, HUGE)

DATA = default_data_dir()
GOLDEN = DATA / "golden"
TESTS = Path(__file__).resolve().parents[1]


class Kind:
    def __init__(self, name, prepare, make, read, same, files=True):
        self.name, self.prepare, self.make, self.read, self.same = name, prepare, make, read, same
        # the input is a file path (hash-checked, named in errors); what a refusal must
        # name of the mutated item, per kind: _summary.names_target_of
        self.files = files


def _h5py():
    import h5py
    return h5py


def _x_for(model):
    shape = model.input_shape
    return np.random.default_rng(0).standard_normal((2,) + tuple(shape)).astype(np.float32)


def _model_same(m, base):
    """A loaded model: the forward pass works (RefcompError allowed), same output as base?"""
    assert isinstance(m, refcomp.Model), type(m)
    ref, x = base["model"], base["x"]
    try:
        y = m(x)
    except refcomp.RefcompError:
        return False
    yr = ref(x)
    return y.shape == yr.shape and np.array_equal(y.view(np.uint8), yr.view(np.uint8))


def _h5_case(rng, src, work, ext=".h5", byte_share=0.35):
    """Copy ``src`` to the case file and mutate it (structure, or bytes)."""
    h5py = _h5py()
    dst = Path(work) / f"case{ext}"
    r = rng.random()
    if r < byte_share:
        data = Path(src).read_bytes()
        data, how = (vlen_length if rng.random() < 0.25 else mutate_bytes)(rng, data)
        dst.write_bytes(data)
        return dst, how
    shutil.copyfile(src, dst)
    with h5py.File(dst, "r+") as f:
        how = _edit(rng, f, h5py)
        if rng.random() < 0.15:
            how += "+" + _edit(rng, f, h5py)
    return dst, how


def _edit(rng, f, h5py):
    try:
        return mutate_h5(rng, f, h5py)
    except (ValueError, KeyError, TypeError, OSError) as exc:   # an edit h5py refuses
        return f"edit-refused-by-h5py({type(exc).__name__})"


# -- refcomp model format ---------------------------------------------------------------
def _encoded_weights(m):
    """``[(label, layer path, weight name, weight)]``: one weight of ``m`` (the model of
    tests/test_hdf5_corrupt.py) stored with each registered encoding (the Quantized
    decoders affine, k-means, posit, minifloat and XNOR; integer_linear: the integer
    digits MLP, below), so that every encoding's reader is mutated."""
    from refcomp.compress import DeepCompressed
    from refcomp.decompose.cp import cp
    from refcomp.decompose.pca import pca_filters
    from refcomp.decompose.svd import svd_compress
    from refcomp.decompose.tucker import tucker2
    from refcomp.hashing.weight import HashedWeight
    from refcomp.integer.xnor import XnorLinear
    from refcomp.prune.masked import Masked
    from refcomp.quantize import affine, kmeans, minifloat, posit, xnor
    from refcomp.quantize.nnc_weight import nnc_quantize
    from refcomp.quantize.product import product_quantize
    from refcomp.quantize.residual import residual_quantize
    from refcomp.sparse import CSC, CSR
    wd, wc = m.get_layer("5").weights["W"], m.get_layer("0").weights["W"]
    rng = np.random.default_rng(23)
    mask = np.abs(wd) > 0.5
    codebook = np.sort(rng.standard_normal(4)).astype(np.float32)
    dense = [("quantized-affine", affine(wd, 4, axis=0)), ("quantized-kmeans", kmeans(wd, bits=3)),
             ("quantized-posit", posit(wd, 8, 1)), ("quantized-minifloat", minifloat(wd, 4, 3)),
             ("quantized-xnor", xnor(wd)), ("masked", Masked(wd * mask, mask)),
             ("csr", CSR.from_dense(wd, mask=mask)), ("csc", CSC.from_dense(wd, mask=mask)),
             ("product_quantized", product_quantize(wd, n_subspaces=2, k=4, rng=rng)),
             ("residual_quantized", residual_quantize(wd, n_stages=2, k=4, rng=rng)),
             ("deep_compressed", DeepCompressed.encode(
                 mask, rng.integers(0, 4, int(mask.sum())), codebook, index_bits=3,
                 huffman=True)),
             ("svd", svd_compress(wd, rank=2)),
             ("hashed", HashedWeight(rng.standard_normal(16).astype(np.float32), wd.shape)),
             ("nnc", nnc_quantize(wd, qp=-20)), ("nnc-dq4", nnc_quantize(wd, qp=-20, dq_states=4)),
             ("xnor_packed", XnorLinear.from_float(wd))]
    conv = [("tucker2", tucker2(wc, (2, 1))), ("cp", cp(wc, 2, rng=rng)),
            ("pca", pca_filters(wc, n_components=2))]
    return [(k, "5", "W", w) for k, w in dense] + [(k, "0", "W", w) for k, w in conv]


def _prep_model(work):
    sys.path.insert(0, str(TESTS))
    from test_hdf5_corrupt import _model
    from refcomp.data import load_split
    from refcomp.integer import quantize_model
    from refcomp.weights import registered_encodings
    m = _model()
    models = [("raw", m), ("digits_lstm", refcomp.load(DATA / "digits_lstm.h5")),
              ("integer_linear", quantize_model(refcomp.load(DATA / "digits_mlp.h5"),
                                                load_split("calib")[0][:64], mode="onnx"))]
    models += [(label, m.replace_weights({(lp, wn): w}))
               for label, lp, wn, w in _encoded_weights(m)]
    bases = []
    for i, (label, mod) in enumerate(models):
        p = Path(work) / f"base{i}.h5"
        refcomp.save(mod, p)
        bases.append({"path": p, "model": mod, "x": _x_for(mod), "label": label})
    covered = {b["label"].split("-")[0] for b in bases}
    assert set(registered_encodings()) <= covered, set(registered_encodings()) - covered
    return bases


def _make_model(rng, bases, work):
    b = pick(rng, bases)
    p, how = _h5_case(rng, b["path"], work)
    return (p, b), f"[{b['label']}] {how}"


def _read_model(inp, bases):
    return refcomp.load(inp[0])


def _same_model(m, inp):
    return _model_same(m, inp[1])


# -- plain-array files ------------------------------------------------------------------
def _prep_arrays(work):
    rng = np.random.default_rng(3)
    arrays = {"w": rng.standard_normal((4, 6)).astype(np.float32), "i": np.arange(7),
              "g/b": np.float64(2.5) * np.ones(3), "s": np.array([b"ab", b"cd"])}
    p = Path(work) / "arrays.h5"
    refcomp.io.write_arrays(p, arrays, attrs={"note": "fuzz", "n": 3})
    return {"path": p, "arrays": refcomp.io.read_arrays(p)}


def _make_arrays(rng, base, work):
    p, how = _h5_case(rng, base["path"], work)
    return (p, base), how


def _read_arrays(inp, base):
    return refcomp.io.read_arrays(inp[0])


def _same_arrays(out, inp):
    assert isinstance(out, dict)
    ref = inp[1]["arrays"]
    return out.keys() == ref.keys() and all(
        isinstance(out[k], np.ndarray) and out[k].dtype == ref[k].dtype
        and np.array_equal(out[k], ref[k]) for k in ref)


# -- Keras --------------------------------------------------------------------------------
def _prep_keras(work):
    out = []
    for name in ("digits_mlp", "digits_cnn", "digits_gru", "digits_resnet"):
        m = refcomp.load(DATA / f"{name}.h5")
        out.append({"name": name, "model": m, "x": _x_for(m),
                    "legacy": GOLDEN / f"{name}_legacy.h5",
                    "weights": GOLDEN / f"{name}.weights.h5",
                    "config": (GOLDEN / f"{name}.config.json").read_text()})
    for b in out:
        z = Path(work) / f"{b['name']}.keras"
        with zipfile.ZipFile(z, "w") as zf:
            zf.writestr("config.json", b["config"])
            zf.writestr("metadata.json", json.dumps({"keras_version": "3.15.1"}))
            zf.write(b["weights"], "model.weights.h5")
        b["zip"] = z
    return out


def _make_keras_legacy(rng, bases, work):
    b = pick(rng, bases)
    if rng.random() < 0.2:          # broken model_config JSON
        dst = Path(work) / "case.h5"
        shutil.copyfile(b["legacy"], dst)
        h5py = _h5py()
        with h5py.File(dst, "r+") as f:
            text = f.attrs["model_config"]
            text = text.decode() if isinstance(text, bytes) else text
            new, how = mutate_json_text(rng, text)
            f.attrs["model_config"] = new
        return (dst, b), f"[{b['name']}] model_config-" + how
    p, how = _h5_case(rng, b["legacy"], work)
    return (p, b), f"[{b['name']}] {how}"


def _make_keras_weights(rng, bases, work):
    """A Keras 3 .weights.h5 with its config.json beside it (broken, or the weights)."""
    b = pick(rng, bases)
    cfg = Path(work) / "case.config.json"
    if rng.random() < 0.3:
        text, how = mutate_json_text(rng, b["config"])
        cfg.write_text(text)
        dst = Path(work) / "case.weights.h5"
        shutil.copyfile(b["weights"], dst)
        return (dst, b), f"[{b['name']}] config-" + how
    cfg.write_text(b["config"])
    p, how = _h5_case(rng, b["weights"], work, ext=".weights.h5")
    return (p, b), f"[{b['name']}] {how}"


def _make_keras_zip(rng, bases, work):
    b = pick(rng, bases)
    dst = Path(work) / "case.keras"
    r = rng.random()
    if r < 0.3:
        data, how = mutate_bytes(rng, b["zip"].read_bytes())
        dst.write_bytes(data)
        return (dst, b), f"[{b['name']}] zip-" + how
    members = {"config.json": b["config"].encode(),
               "metadata.json": json.dumps({"keras_version": "3.15.1"}).encode(),
               "model.weights.h5": b["weights"].read_bytes()}
    if r < 0.55:
        text, how = mutate_json_text(rng, b["config"])
        members["config.json"] = text.encode()
    elif r < 0.65:
        victim = pick(rng, sorted(members))
        del members[victim]
        how = f"missing-{victim}"
    elif r < 0.7:
        members["metadata.json"] = pick(rng, (b"{", b"[]", b'{"keras_version": 7}'))
        how = "metadata"
    else:
        tmp = Path(work) / "inner.h5"
        tmp.write_bytes(members["model.weights.h5"])
        tmp, how = _h5_case(rng, tmp, work, ext=".inner.h5")
        members["model.weights.h5"] = tmp.read_bytes()
        how = "weights-" + how
    with zipfile.ZipFile(dst, "w") as zf:
        for k, v in members.items():
            zf.writestr(k, v)
    return (dst, b), f"[{b['name']}] {how}"


def _read_keras(inp, bases):
    from refcomp.io import keras
    return keras.load(inp[0])


def _same_keras(m, inp):
    return _model_same(m, inp[1])


# -- ONNX ------------------------------------------------------------------------------
def _prep_onnx(work):
    out = []
    for name in ("digits_mlp", "digits_cnn", "digits_gru", "digits_resnet"):
        p = GOLDEN / f"{name}.onnx"
        from refcomp.io import onnx as ro
        m = ro.load(p)
        out.append({"path": p, "bytes": p.read_bytes(), "model": m, "x": _x_for(m)})
    return out


def _mutate_onnx_graph(rng, data):
    import onnx
    from onnx import numpy_helper
    mp = onnx.load_from_string(data)
    g = mp.graph
    ops = ["op", "drop-init", "reshape-init", "absurd-init", "dtype-init", "nan-init",
           "attr", "drop-input", "io-shape", "opset", "drop-node", "rewire"]
    op = pick(rng, ops)
    if op == "op":
        n = pick(rng, g.node)
        ops = ("NonMaxSuppression", "FooBar", "Loop", "Einsum", "Conv", "Gemm", "MatMul",
               "Relu", "Add")
        old, n.op_type = n.op_type, pick(rng, ops)
        how = f"op:{old}->{n.op_type}"
    elif op in ("drop-init", "reshape-init", "absurd-init", "dtype-init", "nan-init") \
            and len(g.initializer):
        i = int(rng.integers(len(g.initializer)))
        t = g.initializer[i]
        arr = numpy_helper.to_array(t)
        if op == "drop-init":
            del g.initializer[i]
        elif op == "reshape-init":
            new = pick(rng, (arr.reshape(-1), arr[None], arr.reshape(-1)[:max(0, arr.size - 1)]))
            g.initializer[i].CopyFrom(numpy_helper.from_array(new, t.name))
        elif op == "absurd-init":
            del t.dims[:]
            t.dims.extend(pick(rng, ([1 << 40], [1 << 20, 1 << 20], [1 << 31, 3])))
        elif op == "dtype-init":
            t.data_type = pick(rng, (2, 3, 6, 7, 10, 11, 16, 9, 8, 99))
        else:
            if arr.dtype.kind == "f" and arr.size:
                arr = arr.copy()
                arr.reshape(-1)[int(rng.integers(arr.size))] = pick(rng, (np.nan, np.inf))
                g.initializer[i].CopyFrom(numpy_helper.from_array(arr, t.name))
        how = f"{op}:{t.name}"
    elif op == "attr" and any(len(n.attribute) for n in g.node):
        n = pick(rng, [n for n in g.node if len(n.attribute)])
        a = pick(rng, n.attribute)
        if a.type == onnx.AttributeProto.INT:
            a.i = pick(rng, (-1, 0, 1 << 40, 3, 99))
        elif a.type == onnx.AttributeProto.INTS:
            del a.ints[:]
            a.ints.extend(pick(rng, ([], [1 << 40, 1], [-1, -1, -1, -1], [0, 0], [5])))
        elif a.type == onnx.AttributeProto.FLOAT:
            a.f = pick(rng, (float("nan"), float("inf"), -1.0, 0.0))
        elif a.type == onnx.AttributeProto.STRING:
            a.s = pick(rng, (b"", b"zzz", b"\xff"))
        else:
            a.type = onnx.AttributeProto.INT
        how = f"attr:{n.op_type}.{a.name}"
    elif op == "drop-input":
        n = pick(rng, g.node)
        if len(n.input):
            del n.input[int(rng.integers(len(n.input)))]
        how = f"drop-input:{n.op_type}"
    elif op == "io-shape":
        vi = pick(rng, list(g.input) + list(g.output))
        dims = vi.type.tensor_type.shape.dim
        if len(dims):
            d = dims[int(rng.integers(len(dims)))]
            d.dim_value = pick(rng, (0, 1, 7, 1 << 40))
        how = f"io-shape:{vi.name}"
    elif op == "opset":
        mp.opset_import[0].version = pick(rng, (1, 5, 99, 10 ** 6))
        how = "opset"
    elif op == "drop-node":
        del g.node[int(rng.integers(len(g.node)))]
        how = "drop-node"
    else:
        n = pick(rng, g.node)
        if len(n.input):
            n.input[int(rng.integers(len(n.input)))] = pick(
                rng, [o for m in g.node for o in m.output] + ["nowhere"])
        how = f"rewire:{n.op_type}"
    return mp.SerializeToString(), how


def _make_onnx(rng, bases, work):
    b = pick(rng, bases)
    dst = Path(work) / "case.onnx"
    if rng.random() < 0.35:
        data, how = mutate_bytes(rng, b["bytes"])
    else:
        data, how = _mutate_onnx_graph(rng, b["bytes"])
    dst.write_bytes(data)
    return (dst, b), how


def _read_onnx(inp, bases):
    from refcomp.io import onnx as ro
    return ro.load(inp[0])


# -- quantized ONNX (QDQ and QLinear forms) -------------------------------------------
def _prep_qdq(work):
    from refcomp.data import load_split
    from refcomp.integer import load_qdq, quantize_model
    from refcomp.integer.onnx_export import to_onnx
    xc = load_split("calib")[0][:64]
    out = []
    for name, dt, form in (("digits_mlp", "uint8", "qdq"), ("digits_cnn", "int8", "qlinear")):
        qm = quantize_model(refcomp.load(DATA / f"{name}.h5"), xc, mode="onnx", act_dtype=dt)
        p = Path(work) / f"{name}_{form}.onnx"
        p.write_bytes(to_onnx(qm, form=form).SerializeToString())
        m = load_qdq(p)
        out.append({"path": p, "bytes": p.read_bytes(), "model": m, "x": _x_for(m)})
    return out


def _read_qdq(inp, bases):
    from refcomp.integer import load_qdq
    return load_qdq(inp[0])


def _same_qdq(m, inp):
    """The loaded integer model runs (RefcompError allowed): same output bits as the base?"""
    from refcomp.integer import IntegerLinear, run
    assert isinstance(m, refcomp.Model), type(m)
    assert all(isinstance(l.weights["W"], IntegerLinear) for _, l in m.named_layers()
               if l.kind in ("dense", "conv2d"))
    ref, x = inp[1]["model"], inp[1]["x"]
    try:
        y = run(m, x)
    except refcomp.RefcompError:
        return False
    yr = run(ref, x)
    return y.shape == yr.shape and np.array_equal(y.view(np.uint8), yr.view(np.uint8))


# -- PyTorch state dicts --------------------------------------------------------------
def _prep_torch(work):
    sys.path.insert(0, str(TESTS))
    from test_io_torch import SPECS
    from refcomp.io.torch import to_state_dict
    out = []
    for name in ("digits_mlp", "digits_cnn", "digits_lstm"):
        m = refcomp.load(DATA / f"{name}.h5")
        import torch
        sd = {k: torch.from_numpy(np.array(v)) for k, v in to_state_dict(m).items()}
        p = Path(work) / f"{name}.pt"
        torch.save(sd, p)
        spec = Path(work) / f"{name}.spec.json"
        spec.write_text(json.dumps(SPECS[name]))
        out.append({"name": name, "model": m, "x": _x_for(m), "sd": sd, "spec": SPECS[name],
                    "pt": p, "spec_path": spec})
    return out


def _mutate_sd(rng, sd):
    import torch
    sd = dict(sd)
    key = pick(rng, sorted(sd))
    t = sd[key]
    op = pick(rng, ("drop", "extra", "reshape", "dtype", "nan", "not-tensor", "empty", "absurd"))
    if op == "drop":
        del sd[key]
    elif op == "extra":
        sd[key + "x"] = t.clone()
    elif op == "reshape":
        sd[key] = pick(rng, (t.reshape(-1), t[None], t.reshape(-1)[:-1] if t.numel() else t))
    elif op == "dtype":
        sd[key] = t.to(pick(rng, (torch.float16, torch.bfloat16, torch.int32, torch.int64,
                                  torch.complex64, torch.bool, torch.float64, torch.uint8)))
    elif op == "nan":
        t = torch.as_tensor(t).clone().reshape(-1)
        if t.numel():
            t[int(rng.integers(t.numel()))] = pick(rng, (float("nan"), float("inf")))
        sd[key] = t.reshape(sd[key].shape)
    elif op == "not-tensor":
        sd[key] = pick(rng, (None, 3, "w", [1.0, 2.0], t.numpy()))
    elif op == "empty":
        sd[key] = torch.zeros((0,) + tuple(t.shape[1:]))
    else:   # a tensor whose declared shape is absurd but whose storage is tiny (expand)
        sd[key] = torch.zeros(1).expand(pick(rng, ((1 << 40,), (1 << 20, 1 << 20))))
    return sd, f"sd-{op}:{key}"


def _make_torch_sd(rng, bases, work):
    b = pick(rng, bases)
    if rng.random() < 0.25:
        spec, how = mutate_json_value(rng, b["spec"])
        return (b["sd"], spec, b), "spec-" + how
    sd, how = _mutate_sd(rng, b["sd"])
    return (sd, b["spec"], b), how


def _read_torch_sd(inp, bases):
    from refcomp.io.torch import from_state_dict
    sd, spec, b = inp
    return from_state_dict(sd, spec, input_shape=b["model"].input_shape)


def _make_torch_pt(rng, bases, work):
    b = pick(rng, bases)
    dst = Path(work) / "case.pt"
    data, how = mutate_bytes(rng, b["pt"].read_bytes())
    dst.write_bytes(data)
    return (dst, b), how


def _read_torch_pt(inp, bases):
    from refcomp.io import read_any
    return read_any(inp[0], fmt="torch", spec=inp[1]["spec_path"],
                    input_shape=inp[1]["model"].input_shape)


def _same_torch(m, inp):
    return _model_same(m, inp[-1])


# -- Deep Compression containers -------------------------------------------------------
def _prep_container(work):
    from refcomp.compress import DeepCompressed
    rng = np.random.default_rng(5)
    out = []
    for i, (coding, index_coding, variant) in enumerate([
            ("huffman", None, "reserved"), ("fixed", None, "fig2"),
            ("huffman", "universal", "reserved"), ("fixed", "webgraph", "reserved")]):
        mask = rng.random((12, 20)) < 0.3
        codebook = np.sort(rng.standard_normal(6)).astype(np.float32)
        codes = rng.integers(0, 6, int(mask.sum()))
        w = DeepCompressed.encode(mask, codes, codebook, index_bits=3, variant=variant,
                                  huffman=coding == "huffman", index_coding=index_coding)
        p = Path(work) / f"dc{i}.h5"
        refcomp.save(w, p)
        out.append({"path": p, "weight": w, "dense": w.dequantize()})
    return out


def _make_container(rng, bases, work):
    b = pick(rng, bases)
    p, how = _h5_case(rng, b["path"], work, byte_share=0.4)
    return (p, b), how


def _read_container(inp, bases):
    w = refcomp.load(inp[0])
    return w, w.dequantize()


def _same_container(out, inp):
    w, dense = out
    ref = inp[1]["dense"]
    return dense.dtype == ref.dtype and np.array_equal(dense, ref)


# -- bitstreams -------------------------------------------------------------------------
def _symbols(rng, n):
    return pick(rng, (rng.integers(-5, 6, n).astype(np.int8),
                      rng.geometric(0.3, n).astype(np.uint16),
                      (rng.integers(0, 3, n) * 1000).astype(np.int64)))


def _stream_kind(name, encode, decode):
    def prep(work):
        rng = np.random.default_rng(11)
        out = []
        for n in (0, 1, 7, 300):
            v = _symbols(rng, n)
            out.append({"values": v, "data": encode(v, rng)})
        return out

    def make(rng, bases, work):
        b = pick(rng, bases[1:] if rng.random() < 0.9 else bases)
        data, how = mutate_bytes(rng, b["data"])
        return (data, b), how

    def read(inp, bases):
        return decode(inp[0])

    def same(out, inp):
        ref = inp[1]["values"]
        assert isinstance(out, np.ndarray) and out.ndim == 1
        return out.dtype == ref.dtype and np.array_equal(out, ref)
    return Kind(name, prep, make, read, same, files=False)


def _huffman_kind():
    from refcomp.coding import huffman_decode, huffman_encode
    return _stream_kind("huffman", lambda v, rng: huffman_encode(v), huffman_decode)


def _rans_kind():
    from refcomp.coding import rans_decode, rans_encode
    return _stream_kind("rans", lambda v, rng: rans_encode(v), rans_decode)


def _universal_kind():
    from refcomp.coding import decode_ints, encode_ints

    def enc(v, rng):
        code = pick(rng, ("gamma", "delta", "rice", "zeta"))
        return encode_ints(np.abs(v.astype(np.int64)), code=code, k=2)

    def dec(data):
        return decode_ints(data)
    k = _stream_kind("universal", enc, dec)
    inner_prep = k.prepare

    def prep(work):
        out = inner_prep(work)
        for b in out:          # the decoder returns uint64
            b["values"] = np.abs(b["values"].astype(np.int64)).astype(np.uint64)
        return out
    k.prepare = prep
    return k


def _webgraph_kind(mask):
    from refcomp.coding import webgraph
    name = "webgraph-mask" if mask else "webgraph"

    def prep(work):
        rng = np.random.default_rng(13)
        out = []
        for shape, p in (((1, 1), 0.5), ((6, 9), 0.3), ((40, 50), 0.2), ((20, 30), 0.0)):
            m = rng.random(shape) < p
            data = webgraph.webgraph_encode_mask(m)
            out.append({"mask": m, "data": data})
        return out

    def make(rng, bases, work):
        b = pick(rng, bases)
        data, how = mutate_bytes(rng, b["data"])
        return (data, b), how

    def read(inp, bases):
        if mask:
            return webgraph.webgraph_decode_mask(inp[0])
        return webgraph.webgraph_decode(inp[0])

    def same(out, inp):
        m = inp[1]["mask"]
        if mask:
            assert isinstance(out, np.ndarray) and out.dtype == bool and out.ndim == 2
            return out.shape == m.shape and np.array_equal(out, m)
        indptr, indices, cols = out
        assert indptr.ndim == 1 and indices.ndim == 1 and int(indptr[-1]) == indices.size
        return cols == m.shape[1] and np.array_equal(np.flatnonzero(m) % max(1, m.shape[1]),
                                                     indices)
    return Kind(name, prep, make, read, same, files=False)


def _relative_kind():
    from refcomp.sparse import decode_relative, encode_relative

    def prep(work):
        rng = np.random.default_rng(17)
        out = []
        for shape, p, bits, variant in (((50,), 0.1, 3, "reserved"), ((8, 30), 0.05, 2, "fig2"),
                                        ((4, 4), 0.9, 4, "reserved")):
            m = (rng.random(shape) < p).reshape(-1)
            r = encode_relative(m, index_bits=bits, variant=variant)
            out.append({"mask": m, "rel": r, "bits": bits, "variant": variant,
                        "diffs": np.asarray(r.diffs), "size": m.size,
                        "ref": decode_relative(np.asarray(r.diffs), index_bits=bits,
                                               variant=variant, size=m.size)})
        return out

    def make(rng, bases, work):
        b = pick(rng, bases)
        diffs, size, bits = b["diffs"].copy(), b["size"], b["bits"]
        op = pick(rng, ("value", "truncate", "extend", "size", "bits", "dtype", "bytes"))
        if op == "value" and diffs.size:
            diffs[int(rng.integers(diffs.size))] = int(rng.integers(0, 1 << min(16, bits + 2)))
        elif op == "truncate":
            diffs = diffs[:int(rng.integers(0, diffs.size + 1))]
        elif op == "extend":
            diffs = np.concatenate([diffs, rng.integers(0, 1 << bits, int(rng.integers(1, 9)))
                                    .astype(diffs.dtype)])
        elif op == "size":
            size = pick(rng, (0, 1, size - 1, size + 1, 1 << 40, -1))
        elif op == "bits":
            bits = pick(rng, (0, 1, bits + 1, 17, 64))
        elif op == "dtype":
            diffs = diffs.astype(pick(rng, (np.uint64, np.int64, np.uint8, np.float32)))
        else:
            raw, _ = mutate_bytes(rng, diffs.tobytes())
            diffs = np.frombuffer(raw[:len(raw) // diffs.itemsize * diffs.itemsize],
                                  dtype=diffs.dtype).copy()
        return (diffs, size, bits, b), op

    def read(inp, bases):
        diffs, size, bits, b = inp
        return decode_relative(diffs, index_bits=bits, variant=b["variant"], size=size)

    def same(out, inp):
        pos, filler = out
        ref = inp[-1]["ref"]
        assert pos.dtype == np.int64 and filler.dtype == bool
        return np.array_equal(pos, ref[0]) and np.array_equal(filler, ref[1])
    return Kind("relative-index", prep, make, read, same, files=False)


def _cabac_kind():
    """DeepCABAC levels (refcomp.coding.cabac): random level tensors coded with random
    options; the decoder is given the declared shape and options, which may lie."""
    from refcomp.coding.cabac import decode_levels, encode_levels
    from refcomp.quantize import nnc_levels

    def prep(work):
        rng = np.random.default_rng(19)
        out = []
        for shape, scale, qp in (((1,), 0.1, -20), ((7,), 0.3, -24), ((24, 30), 0.05, -30),
                                 ((8, 3, 3, 3), 0.2, -28), ((40, 50), 0.01, -16)):
            w = (rng.standard_normal(shape) * scale).astype(np.float32)
            dq = bool(rng.random() < 0.7)
            opts = {"dq": dq, "scan_order": int(rng.integers(0, 5)),
                    "cabac_unary_length_minus1": int(pick(rng, (0, 3, 10, 31))),
                    "general_profile_idc": int(rng.integers(0, 2))}
            lv = nnc_levels(w, qp=qp, dq=dq, scan_order=opts["scan_order"])
            out.append({"levels": lv, "opts": opts, "data": encode_levels(lv, **opts)})
        # the 4-state machine (dq_states=4, issue 25's named variant): its own contexts
        # and level mapping, so its streams are bases of their own
        for shape, scale, qp in (((9, 11), 0.1, -26), ((3, 4, 5), 0.4, -22)):
            w = (rng.standard_normal(shape) * scale).astype(np.float32)
            opts = {"dq": True, "dq_states": 4, "scan_order": 0,
                    "cabac_unary_length_minus1": 10, "general_profile_idc": 1}
            lv = nnc_levels(w, qp=qp, dq=True, dq_states=4)
            out.append({"levels": lv, "opts": opts, "data": encode_levels(lv, **opts)})
        return out

    def make(rng, bases, work):
        b = pick(rng, bases)
        shape, opts = b["levels"].shape, dict(b["opts"])
        data, how = b["data"], []
        r = rng.random()
        if r < 0.7:
            data, h = mutate_bytes(rng, data)
            how.append(h)
        if r >= 0.5:
            n = b["levels"].size
            shape = pick(rng, ((n,), shape[::-1], (n + 1,), (max(1, n - 1),), (1 << 29, 2),
                               (1 << 20, 1 << 20), (n, 1, 1), (int(rng.integers(1, 4096)),),
                               (1, n), (3, int(rng.integers(1, 2000)))))
            how.append(f"shape{shape}")
        if rng.random() < 0.2:
            key = pick(rng, sorted(opts))
            opts[key] = {"dq": not opts["dq"], "scan_order": int(rng.integers(0, 5)),
                         "cabac_unary_length_minus1": int(rng.integers(0, 32)),
                         "general_profile_idc": 1 - opts["general_profile_idc"],
                         "dq_states": 12 - opts.get("dq_states", 8)}[key]
            how.append(f"opt-{key}")
        return (data, shape, opts, b), "+".join(how) or "none"

    def read(inp, bases):
        data, shape, opts, _ = inp
        return decode_levels(data, shape, **opts)

    def same(out, inp):
        _, shape, _, b = inp
        ref = b["levels"]
        assert isinstance(out, np.ndarray) and out.dtype == np.int32
        assert out.shape == tuple(shape), (out.shape, shape)
        return out.shape == ref.shape and np.array_equal(out, ref)
    return Kind("cabac-levels", prep, make, read, same, files=False)


def _kinds():
    ks = [Kind("refcomp-model", _prep_model, _make_model, _read_model, _same_model),
          Kind("plain-arrays", _prep_arrays, lambda r, b, w: _make_arrays(r, b, w),
               _read_arrays, _same_arrays),
          Kind("keras-legacy-h5", _prep_keras, _make_keras_legacy, _read_keras, _same_keras),
          Kind("keras-weights-h5", _prep_keras, _make_keras_weights, _read_keras, _same_keras),
          Kind("keras-zip", _prep_keras, _make_keras_zip, _read_keras, _same_keras),
          Kind("onnx", _prep_onnx, _make_onnx, _read_onnx, _same_keras),
          Kind("qdq-onnx", _prep_qdq, _make_onnx, _read_qdq, _same_qdq),
          Kind("torch-state-dict", _prep_torch, _make_torch_sd, _read_torch_sd, _same_torch,
               files=False),
          Kind("torch-pt-file", _prep_torch, _make_torch_pt, _read_torch_pt, _same_torch),
          Kind("deep-compressed", _prep_container, _make_container, _read_container,
               _same_container),
          _huffman_kind(), _rans_kind(), _universal_kind(), _webgraph_kind(False),
          _webgraph_kind(True), _relative_kind(), _cabac_kind()]
    return {k.name: k for k in ks}


KIND_NAMES = ("refcomp-model", "plain-arrays", "keras-legacy-h5", "keras-weights-h5",
              "keras-zip", "onnx", "torch-state-dict", "torch-pt-file", "deep-compressed",
              "huffman", "rans", "universal", "webgraph", "webgraph-mask", "relative-index",
              "qdq-onnx", "cabac-levels")


def get_kind(name):
    return _kinds()[name]


def case_path(inp):
    """The file of a file-reader case (first element of the input tuple), or None."""
    if isinstance(inp, tuple) and isinstance(inp[0], (str, os.PathLike)):
        return Path(inp[0])
    if isinstance(inp, Path):
        return inp
    return None


__all__ = ["KIND_NAMES", "get_kind", "case_path", "HUGE", "io"]
