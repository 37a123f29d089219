"""Tests of refcomp.compress: size accounting, DeepCompressed container, deep_compress, CLI."""

import math

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import refcomp
from refcomp import DecodeError, FormatError, ParameterError
from refcomp.compress import (DeepCompressed, compress_weight, deep_compress, entropy_bits,
                              size_report, weight_size)
from refcomp.prune import magnitude
from refcomp.prune.masked import Masked
from refcomp.quantize.kmeans import kmeans
from refcomp.sparse import CSR
from refcomp.testing import assert_bits_equal


def _has_huffman():
    import refcomp.coding as c
    return hasattr(c, "huffman_encode")


CODINGS = ["fixed", pytest.param("huffman", marks=pytest.mark.skipif(
    not _has_huffman(), reason="refcomp.coding.huffman not available yet"))]


def _expected(w, sparsity, bits):
    """Prune + share computed independently through Masked and Quantized."""
    mask = magnitude(w, sparsity=sparsity)
    m = Masked(w, mask)
    out = m.dequantize()
    if mask.any():
        q = kmeans(np.ascontiguousarray(w[mask]), bits=bits)
        out[mask] = q.dequantize()
    return out, mask


def _tiny_model(rng, dtype=np.float32):
    L = refcomp.Layer
    layers = [L("dense", weights={"W": rng.standard_normal((12, 6)).astype(dtype),
                                  "b": rng.standard_normal(12).astype(dtype)}),
              L("activation", attrs={"function": "relu"}),
              L("dense", weights={"W": rng.standard_normal((4, 12)).astype(dtype),
                                  "b": rng.standard_normal(4).astype(dtype)})]
    return refcomp.Model(layers, name="tiny", input_shape=(6,))


# -- entropy bound -----------------------------------------------------------------------
def test_entropy_bits_against_scipy():
    scipy_stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(1)
    s = rng.integers(0, 7, size=500)
    _, c = np.unique(s, return_counts=True)
    assert entropy_bits(s) == pytest.approx(500 * scipy_stats.entropy(c, base=2), rel=1e-12)
    assert entropy_bits(np.zeros(10, np.int64)) == 0.0
    assert entropy_bits(np.zeros(0, np.int64)) == 0.0
    assert entropy_bits(np.array([0, 1, 0, 1])) == 4.0          # 4 symbols of 1 bit


# -- hand-counted sizes ------------------------------------------------------------------
def test_weight_size_hand_counts():
    w = np.arange(6, dtype=np.float32).reshape(2, 3)
    r = weight_size(w)
    assert (r.original_bits, r.values_bits, r.compressed_bits, r.nnz) == (192, 192, 192, 5)
    assert r.tau == 1.0
    q = kmeans(w, bits=2)                                   # 6 codes x 2 bits + 4 x 32 codebook
    r = weight_size(q)
    assert (r.values_bits, r.codebook_bits, r.compressed_bits) == (12, 128, 140)
    assert r.tau == 192 / 140
    mask = np.array([[True, False, False], [False, False, True]])
    r = weight_size(Masked(w, mask))                        # 2 kept x 32 + 6 bitmap bits
    assert (r.values_bits, r.index_bits, r.compressed_bits) == (64, 6, 70)
    assert r.index_entropy_bits == pytest.approx(2 * math.log2(3) + 4 * math.log2(1.5))
    r = weight_size(CSR.from_dense(w, mask=mask))           # 2 x 32 data, 2 x 32 + 3 x 64 index
    assert (r.values_bits, r.index_bits) == (64, 256)


def test_deep_container_hand_count_reserved():
    # positions 0, 6, 7 of 8; index_bits 2 -> filler code 3 advances 3 (variant reserved):
    # gaps 1, 6, 1 -> entries [0], [3 (filler), 2], [0]
    mask = np.array([1, 0, 0, 0, 0, 0, 1, 1], dtype=bool).reshape(2, 4)
    cb = np.array([-1.5, 2.0], dtype=np.float32)
    dc = DeepCompressed.encode(mask, np.array([1, 0, 1], np.uint8), cb, index_bits=2,
                               huffman=False)
    assert dc.n_entries == 4 and dc.n_values == 3
    _, idx = dc.streams()
    assert idx.tolist() == [0, 3, 2, 0]
    assert dc.index_stream.tolist() == [0b00_11_10_00]
    assert dc.values_stream.tolist() == [0b101_00000]      # 3 one-bit codes, MSB first
    s = dc.stream_sizes()
    assert s == {"values": 3, "values_header": 5, "index": 8, "index_header": 0,
                 "codebook": 64}
    want = np.array([2.0, 0, 0, 0, 0, 0, -1.5, 2.0], np.float32).reshape(2, 4)
    assert_bits_equal(dc.dequantize(), want)
    r = weight_size(dc)
    assert (r.original_bits, r.compressed_bits, r.header_bits, r.nnz) == (256, 80, 5, 3)
    assert r.tau == 3.2
    assert r.index_entropy_bits == pytest.approx(2 * 1 + 1 * 2 + 1 * 2)
    assert np.array_equal(dc.mask, mask)


def test_deep_container_hand_count_fig2():
    # fig2: code = diff - 1 (diffs 1..4), fillers advance 4: gap 6 -> filler, code 1;
    # the value stream has one symbol per entry, filler = symbol k = 2 (width 2 bits)
    mask = np.array([1, 0, 0, 0, 0, 0, 1, 1], dtype=bool)
    cb = np.array([-1.5, 2.0], dtype=np.float32)
    dc = DeepCompressed.encode(mask, np.array([1, 0, 1], np.uint8), cb, index_bits=2,
                               variant="fig2", huffman=False)
    val, idx = dc.streams()
    assert idx.tolist() == [0, 3, 1, 0] and val.tolist() == [1, 2, 0, 1]
    assert dc.values_stream.tolist() == [0b01_10_00_01]
    assert_bits_equal(dc.dequantize(), np.array([2.0, 0, 0, 0, 0, 0, -1.5, 2.0], np.float32))
    assert dc.n_real == 3


def test_size_report_network_tau_hand_count():
    rng = np.random.default_rng(0)
    model = _tiny_model(rng)
    rep = size_report(model)                                # uncompressed: tau 1
    assert rep.original_bits == rep.compressed_bits == 32 * (72 + 12 + 48 + 4)
    assert rep.tau == 1.0 and len(rep.layers) == 2
    w0 = model.layers[0].weights["W"]
    q = kmeans(w0, bits=1)                                  # 72 x 1 + 2 x 32
    m2 = model.replace_weights({("0", "W"): q})
    rep = size_report(m2)
    orig = 32 * 136
    comp = orig - 32 * 72 + 72 + 64
    assert (rep.original_bits, rep.compressed_bits) == (orig, comp)
    assert rep.tau == orig / comp
    l0 = rep.layers[0]
    assert l0.compressed_bits == 72 + 64 + 32 * 12
    assert l0.tau == (32 * 84) / (72 + 64 + 32 * 12)
    assert l0.tau_net == orig / comp                        # only layer 0 compressed
    assert rep.layers[1].tau_net == 1.0
    md = rep.to_markdown()
    assert "**network**" in md and md.count("\n") == 4
    d = rep.as_dict()
    assert d["compressed_bits"] == comp and len(d["weights"]) == 4
    assert "0/W" in rep.to_markdown(per_weight=True)


# -- container round trips ---------------------------------------------------------------
@pytest.mark.parametrize("coding", CODINGS)
@settings(max_examples=25)
@given(seed=st.integers(0, 2**32 - 1), rows=st.integers(1, 9), cols=st.integers(1, 40),
       sparsity=st.sampled_from([0.0, 0.3, 0.9, 0.99, 1.0]), bits=st.integers(1, 6),
       index_bits=st.integers(1, 8), variant=st.sampled_from(["reserved", "fig2"]),
       f64=st.booleans())
def test_container_matches_masked_quantized(coding, seed, rows, cols, sparsity, bits,
                                            index_bits, variant, f64):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((rows, cols)).astype(np.float64 if f64 else np.float32)
    w[rng.random(w.shape) < 0.1] = 0.0                      # kept exact zeros
    want, mask = _expected(w, sparsity, bits)
    dc = compress_weight(w, sparsity=sparsity, bits=bits, index_bits=index_bits,
                         variant=variant, huffman=coding == "huffman")
    assert dc.coding == coding
    assert_bits_equal(dc.dequantize(), want)
    assert np.array_equal(dc.mask, mask)
    s = dc.stream_sizes()
    assert s["values"] + s["values_header"] + s["index"] + s["index_header"] == \
        8 * (dc.values_stream.size + dc.index_stream.size)
    again = DeepCompressed(shape=dc.shape, dtype=dc.dtype, codebook=dc.codebook.copy(),
                           index_bits=dc.index_bits, variant=dc.variant, coding=dc.coding,
                           n_entries=dc.n_entries, n_values=dc.n_values,
                           values_stream=dc.values_stream.copy(),
                           index_stream=dc.index_stream.copy(), crc32=dc.crc32)
    assert again == dc


def _naive_fixed_decode(dc):
    """Transcription of the fixed-width stream layout with Python ints and bit strings."""
    bits_v = "".join(f"{b:08b}" for b in dc.values_stream.tolist())
    bits_i = "".join(f"{b:08b}" for b in dc.index_stream.tolist())
    k, b = dc.k, dc.index_bits
    wv = max(1, (k - 1).bit_length())
    out = [0.0] * math.prod(dc.shape)
    pos, vi = -1, 0
    for e in range(dc.n_entries):
        code = int(bits_i[e * b:(e + 1) * b], 2)
        if code == 2**b - 1:                                # reserved filler
            pos += 2**b - 1
            continue
        pos += code + 1
        out[pos] = dc.codebook[int(bits_v[vi * wv:(vi + 1) * wv], 2)]
        vi += 1
    return np.array(out, dtype=dc.dtype).reshape(dc.shape)


def test_fixed_stream_layout_naive():
    rng = np.random.default_rng(3)
    w = rng.standard_normal((7, 33)).astype(np.float32)
    for ib in (1, 3, 5):
        dc = compress_weight(w, sparsity=0.8, bits=3, index_bits=ib, huffman=False)
        assert_bits_equal(dc.dequantize(), _naive_fixed_decode(dc))


@pytest.mark.parametrize("coding", CODINGS)
def test_deep_compress_model_save_load(tmp_path, coding):
    rng = np.random.default_rng(5)
    model = _tiny_model(rng)
    cm, rep = deep_compress(model, sparsity={"0": 0.5, "dense": 0.75}, bits=3,
                            huffman=coding == "huffman")
    for path, s in (("0", 0.5), ("2", 0.75)):
        w = model.get_layer(path).weights["W"]
        want, _ = _expected(w, s, 3)
        assert_bits_equal(cm.get_layer(path).weights["W"].dequantize(), want)
        assert cm.get_layer(path).weights["b"] is model.get_layer(path).weights["b"]
    assert cm.get_layer("0").weights["W"].index_bits == 5      # paper default for dense
    x = rng.standard_normal((3, 6)).astype(np.float32)
    y = cm(x)
    p = tmp_path / "c.h5"
    refcomp.save(cm, p)
    back = refcomp.load(p)
    for path in ("0", "2"):
        assert back.get_layer(path).weights["W"] == cm.get_layer(path).weights["W"]
    assert_bits_equal(back(x), y)
    assert size_report(back).as_dict() == rep.as_dict()
    assert rep.tau > 1


def test_deep_compress_defaults_and_bad_input():
    rng = np.random.default_rng(6)
    L = refcomp.Layer
    model = refcomp.Model([L("conv2d", weights={"W": rng.standard_normal((4, 2, 3, 3))
                                                .astype(np.float32)}),
                           L("flatten"),
                           L("dense", weights={"W": rng.standard_normal((3, 16))
                                               .astype(np.float32)})],
                          input_shape=(2, 4, 4))
    cm, rep = deep_compress(model, huffman=False)
    conv, dense = cm.get_layer("0").weights["W"], cm.get_layer("2").weights["W"]
    assert (conv.index_bits, dense.index_bits) == (8, 5)
    # only used centroids are stored: the distinct decoded kept values
    for dc in (conv, dense):
        assert np.array_equal(dc.codebook, np.unique(dc.dequantize()[dc.mask]))
    assert conv.k == 7 and dense.k == 5                     # 7 and 5 kept weights
    assert conv.mask.sum() == 72 - round(0.9 * 72)
    with pytest.raises(ParameterError):
        deep_compress(model, sparsity=1.5)
    with pytest.raises(ParameterError):
        deep_compress(model, bits=0)
    with pytest.raises(ParameterError):
        deep_compress(model, variant="paper")
    with pytest.raises(ParameterError):
        deep_compress(np.zeros(3))
    with pytest.raises(ParameterError, match="neither"):
        deep_compress(model, bits={"7": 3})                 # no such compressed layer


def test_empty_and_all_pruned():
    w = np.ones((2, 2), np.float32)
    dc = compress_weight(w, sparsity=1.0, bits=2, huffman=False)
    assert dc.k == 0 and dc.n_entries == 0
    assert_bits_equal(dc.dequantize(), np.zeros((2, 2), np.float32))
    assert weight_size(dc).compressed_bits == 0


# -- corrupt input -----------------------------------------------------------------------
def _fields(dc):
    return dict(shape=dc.shape, dtype=dc.dtype, codebook=dc.codebook.copy(),
                index_bits=dc.index_bits, variant=dc.variant, coding=dc.coding,
                index_coding=dc.index_coding, n_entries=dc.n_entries, n_values=dc.n_values,
                values_stream=dc.values_stream.copy(), index_stream=dc.index_stream.copy(),
                crc32=dc.crc32)


def _flip_bits_and_check(dc, w, stream, trials, rng):
    """Flip one random bit of ``stream`` per trial: the CRC-32 must catch it; with the
    checksum dropped, the decoder must reject the stream or return a consistent
    weight, never crash or over-read."""
    for _ in range(trials):
        f = _fields(dc)
        s = f[stream]
        s[rng.integers(s.size)] ^= np.uint8(1 << int(rng.integers(8)))
        with pytest.raises(DecodeError):
            DeepCompressed(**f)
        f.pop("crc32")
        try:
            out = DeepCompressed(**f).dequantize()
        except DecodeError:
            continue
        assert out.shape == w.shape and out.dtype == w.dtype


@pytest.mark.parametrize("coding", CODINGS)
def test_corrupt_streams_raise(coding):
    rng = np.random.default_rng(7)
    w = rng.standard_normal((16, 20)).astype(np.float32)
    dc = compress_weight(w, sparsity=0.7, bits=4, index_bits=3, huffman=coding == "huffman")
    for stream in ("values_stream", "index_stream"):
        _flip_bits_and_check(dc, w, stream, 40, rng)
        f = _fields(dc)
        f[stream] = f[stream][:-1]
        f.pop("crc32")
        with pytest.raises(DecodeError):                    # truncated
            DeepCompressed(**f)
    bad = [dict(n_entries=10**6), dict(n_values=dc.n_values + 1), dict(index_bits=17),
           dict(coding="zip"), dict(dtype=np.int32), dict(shape=(-1, 20)),
           dict(codebook=dc.codebook.astype(np.float64))]
    for change in bad:
        f = _fields(dc)
        f.pop("crc32")
        f.update(change)
        with pytest.raises((DecodeError, FormatError)):
            DeepCompressed(**f)


def test_corrupt_file_raises(tmp_path):
    rng = np.random.default_rng(8)
    cm, _ = deep_compress(_tiny_model(rng), sparsity=0.5, bits=2, huffman=False)
    p = tmp_path / "c.h5"
    refcomp.save(cm, p)
    with h5py.File(p, "r+") as f:                          # rewrite (valid HDF5 checksum)
        g = f["layers/0000/weights/W"]
        v = g["values"][()]
        v[0] ^= 0x80
        g["values"][...] = v
    with pytest.raises(DecodeError):
        refcomp.load(p)
    refcomp.save(cm, p)
    with h5py.File(p, "r+") as f:
        f["layers/0000/weights/W"].attrs["n_entries"] = 10**12
    with pytest.raises(FormatError):
        refcomp.load(p)
    refcomp.save(cm, p)
    with h5py.File(p, "r+") as f:
        del f["layers/0000/weights/W/index"]
    with pytest.raises(FormatError):
        refcomp.load(p)


# -- CLI -----------------------------------------------------------------------------------
def test_cli_compress_and_size(tmp_path, capsys):
    from refcomp.cli import main
    rng = np.random.default_rng(9)
    src, out = tmp_path / "m.h5", tmp_path / "out.h5"
    refcomp.save(_tiny_model(rng), src)
    args = [str(src), "-o", str(out), "--prune", "0.5", "--kmeans", "3", "--index-bits", "4",
            "--quiet"]
    if not _has_huffman():
        args.append("--no-huffman")
    assert main(["compress", *args]) == 0
    assert "tau =" in capsys.readouterr().out
    m = refcomp.load(out)
    dc = m.get_layer("0").weights["W"]
    assert isinstance(dc, DeepCompressed) and dc.index_bits == 4 and dc.k <= 8
    assert main(["size", str(out)]) == 0
    text = capsys.readouterr().out
    assert "**network**" in text and "deep_compressed" in text
    assert main(["size", str(out), "--json"]) == 0
    import json
    assert json.loads(capsys.readouterr().out)["tau"] == size_report(m).tau
    # prune only (Masked), composable with --no-prune elsewhere
    assert main(["compress", str(src), "-o", str(out), "--no-kmeans", "--prune", "0.5"]) == 2
    assert "exists; pass --force" in capsys.readouterr().err
    assert main(["compress", str(src), "-o", str(out), "--no-kmeans", "--prune", "0.5",
                 "--force"]) == 0
    assert isinstance(refcomp.load(out).get_layer("0").weights["W"], Masked)
    capsys.readouterr()


@pytest.mark.parametrize("argv, code", [
    (["compress", "MISSING.h5", "-o", "x.h5"], 1),
    (["compress", "SRC", "-o", "x.h5", "--prune", "1.5"], 2),
    (["compress", "SRC", "-o", "x.h5", "--prune", "abc"], 2),
    (["compress", "SRC", "-o", "x.h5", "--no-kmeans", "--huffman"], 2),
    (["compress", "SRC", "-o", "x.h5", "--prune", "0.5", "--kmeans", "0"], 1),
    (["compress", "SRC", "-o", "x.h5"], 2),                      # --prune must be chosen
    (["compress", "SRC", "-o", "SRC", "--prune", "0.5"], 2),     # output = input
    (["size", "MISSING.h5"], 1),
])
def test_cli_errors_one_line(tmp_path, capsys, argv, code):
    from refcomp.cli import main
    src = tmp_path / "m.h5"
    refcomp.save(_tiny_model(np.random.default_rng(1)), src)
    argv = [str(tmp_path / a) if a in ("MISSING.h5", "x.h5") else str(src) if a == "SRC"
            else a for a in argv]
    assert main(argv) == code
    err = capsys.readouterr().err.strip()
    assert err.startswith("refcomp: error:") and "\n" not in err


def test_study_method_deep():
    from refcomp.study.registry import get_method
    theta = np.random.default_rng(10).standard_normal(300).astype(np.float32)
    c = get_method("deep").func(theta, 3)
    want, _ = _expected(theta, 0.9, 3)
    assert_bits_equal(c.decoded, want)
    assert c.bits == weight_size(c.obj).compressed_bits == c.obj.stored_bits()


def test_deep_compress_recurrent_and_kinds():
    rng = np.random.default_rng(11)
    L = refcomp.Layer
    model = refcomp.Model([L("gru", attrs={"return_sequences": False},
                             weights={"W_ih": rng.standard_normal((12, 3)).astype(np.float32),
                                      "W_hh": rng.standard_normal((12, 4)).astype(np.float32)}),
                           L("dense", weights={"W": rng.standard_normal((2, 4))
                                               .astype(np.float32)})],
                          input_shape=(5, 3))
    cm, _ = deep_compress(model, sparsity=0.5, bits=2, huffman=False)
    for name in ("W_ih", "W_hh"):
        want, _ = _expected(model.get_layer("0").weights[name], 0.5, 2)
        assert_bits_equal(cm.get_layer("0").weights[name].dequantize(), want)
    cm(rng.standard_normal((2, 5, 3)).astype(np.float32))
    cm, _ = deep_compress(model, sparsity=0.5, bits=2, huffman=False, kinds=("dense",))
    assert isinstance(cm.get_layer("0").weights["W_ih"], np.ndarray)
    with pytest.raises(ParameterError):
        deep_compress(model, kinds=("batch_norm",))


def test_progress_bar(capsys):
    deep_compress(_tiny_model(np.random.default_rng(12)), sparsity=0.5, bits=2,
                  huffman=False, progress=True)
    err = capsys.readouterr().err
    assert "deep compress" in err and "2/2" in err


@pytest.mark.skipif(not _has_huffman(), reason="refcomp.coding.huffman not available yet")
def test_huffman_streams_cost_optimal():
    from test_coding_huffman import naive_huffman_cost   # heapq, Python ints
    rng = np.random.default_rng(13)
    w = rng.standard_normal((40, 50)).astype(np.float32)
    dc = compress_weight(w, sparsity=0.8, bits=4, index_bits=4, huffman=True)
    val, idx = dc.streams()
    s = dc.stream_sizes()
    for sym, payload in ((val, s["values"]), (idx, s["index"])):
        _, counts = np.unique(sym, return_counts=True)
        assert payload == naive_huffman_cost(counts)
        assert entropy_bits(sym) <= payload < entropy_bits(sym) + sym.size
    fixed = compress_weight(w, sparsity=0.8, bits=4, index_bits=4, huffman=False)
    assert_bits_equal(fixed.dequantize(), dc.dequantize())
    assert fixed.streams()[0].tolist() == val.tolist()


# -- index coding: universal codes for the relative-index stream ---------------------------
def _golden_model():
    rng = np.random.default_rng(20)
    L = refcomp.Layer
    return refcomp.Model([L("conv2d", weights={"W": rng.standard_normal((8, 3, 3, 3))
                                               .astype(np.float32),
                                               "b": rng.standard_normal(8).astype(np.float32)}),
                          L("flatten"),
                          L("dense", weights={"W": rng.standard_normal((10, 8 * 4 * 4))
                                              .astype(np.float32)})],
                         input_shape=(3, 6, 6))


def test_default_index_coding_sizes_unchanged():
    """The default (Huffman on both streams, the paper's) and fixed width write the
    same streams and sizes as before index_coding existed (values recorded then)."""
    import hashlib
    want = {True: (8192, [(514, 207, 2048, 551), (2075, 1264, 768, 509)], "b0201bd8e9ec0f01"),
            False: (9400, [(516, 688, 2048, 4), (2560, 2560, 768, 0)], "71f5b177ac5a0830")}
    for huffman, (bits, rows, digest) in want.items():
        cm, rep = deep_compress(_golden_model(), sparsity=0.6, huffman=huffman)
        assert rep.compressed_bits == bits
        got = [(w.values_bits, w.index_bits, w.codebook_bits, w.header_bits)
               for w in rep.weights if w.weight == "W"]
        assert got == rows
        h = hashlib.sha256()
        for p in ("0", "2"):
            dc = cm.get_layer(p).weights["W"]
            assert dc.index_coding == dc.coding == ("huffman" if huffman else "fixed")
            assert dc.index_code is None
            h.update(dc.values_stream.tobytes())
            h.update(dc.index_stream.tobytes())
        assert h.hexdigest()[:16] == digest
        assert [w.index_coding for w in rep.weights] == \
            ["huffman" if huffman else "fixed", None, "huffman" if huffman else "fixed"]


@pytest.mark.parametrize("huffman", [True, False])
@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), rows=st.integers(1, 9), cols=st.integers(1, 60),
       sparsity=st.sampled_from([0.0, 0.5, 0.9, 0.99, 1.0]), bits=st.integers(1, 5),
       index_bits=st.integers(1, 16), variant=st.sampled_from(["reserved", "fig2"]))
def test_universal_index_stream_exact(huffman, seed, rows, cols, sparsity, bits, index_bits,
                                      variant):
    from refcomp.coding import choose_gap_code, code_length, decode_ints
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((rows, cols)).astype(np.float32)
    kw = dict(sparsity=sparsity, bits=bits, index_bits=index_bits, variant=variant,
              huffman=huffman)
    ref = compress_weight(w, **kw)
    dc = compress_weight(w, index_coding="universal", **kw)
    assert (dc.coding, dc.index_coding) == (ref.coding, "universal")
    assert_bits_equal(dc.dequantize(), ref.dequantize())
    assert np.array_equal(dc.values_stream, ref.values_stream)      # value stream untouched
    val, idx = dc.streams()
    assert np.array_equal(idx, ref.streams()[1]) and np.array_equal(val, ref.streams()[0])
    s = dc.stream_sizes()
    if idx.size == 0:
        assert dc.index_stream.size == 0 and dc.index_code is None and s["index"] == 0
        return
    code, k, total = choose_gap_code(idx, max_length=64)
    assert dc.index_code == (code, k)
    assert np.array_equal(decode_ints(dc.index_stream.tobytes()), idx)
    assert s["index"] == total == sum(code_length(int(x), code, k) for x in idx)
    assert s["index_header"] == 8 * dc.index_stream.size - total
    assert 96 <= s["index_header"] < 96 + 8
    assert max(code_length(int(x), code, k) for x in idx) <= 64
    assert s["values"] + s["values_header"] + s["index"] + s["index_header"] == \
        8 * (dc.values_stream.size + dc.index_stream.size)
    again = DeepCompressed(**_fields(dc))
    assert again == dc and again.index_coding == "universal"
    assert again != ref


def test_universal_index_coding_save_load_and_report(tmp_path):
    rng = np.random.default_rng(21)
    model = _golden_model()
    cm, rep = deep_compress(model, sparsity=0.6, index_coding="universal")
    ref, ref_rep = deep_compress(model, sparsity=0.6)
    p = tmp_path / "u.h5"
    refcomp.save(cm, p)
    with h5py.File(p, "r") as f:
        assert f["layers/0000/weights/W"].attrs["index_coding"] == "universal"
        assert f["layers/0000/weights/W"].attrs["coding"] == "huffman"
    back = refcomp.load(p)
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    assert_bits_equal(back(x), ref(x))
    labels = []
    for path in ("0", "2"):
        dc = back.get_layer(path).weights["W"]
        assert dc == cm.get_layer(path).weights["W"]
        assert_bits_equal(dc.dequantize(), ref.get_layer(path).weights["W"].dequantize())
        code, k = dc.index_code
        labels.append(code if code in ("gamma", "delta") else f"{code}(k={k})")
        assert dc.index_coding_label == labels[-1]
    back_rep = size_report(back)
    assert back_rep.as_dict() == rep.as_dict()
    ws = [w for w in rep.weights if w.weight == "W"]
    assert [w.index_coding for w in ws] == labels
    assert [w.encoding for w in ws] == ["deep_compressed(huffman/universal)"] * 2
    for w, r in zip(ws, (w for w in ref_rep.weights if w.weight == "W")):
        dc = cm.get_layer(w.path).weights["W"]
        assert w.index_bits == dc.stream_sizes()["index"]
        assert (w.values_bits, w.codebook_bits) == (r.values_bits, r.codebook_bits)
        assert w.index_entropy_bits == r.index_entropy_bits
    assert [l.index_codings for l in rep.layers] == [f"W:{labels[0]}", f"W:{labels[1]}"]
    md = rep.to_markdown()
    assert "| index coding |" in md and f"| W:{labels[0]} |" in md
    assert f"| {labels[1]} |" in rep.to_markdown(per_weight=True)


def test_file_without_index_coding_attribute(tmp_path):
    """Files written before index_coding existed: the index stream uses ``coding``."""
    for huffman in (True, False):
        cm, _ = deep_compress(_tiny_model(np.random.default_rng(22)), sparsity=0.5, bits=2,
                              huffman=huffman)
        p = tmp_path / "old.h5"
        refcomp.save(cm, p)
        with h5py.File(p, "r+") as f:
            del f["layers/0000/weights/W"].attrs["index_coding"]
        dc = refcomp.load(p).get_layer("0").weights["W"]
        assert dc == cm.get_layer("0").weights["W"] and dc.index_coding == dc.coding


def test_universal_index_corrupt_and_bad_fields(tmp_path):
    rng = np.random.default_rng(23)
    w = rng.standard_normal((16, 30)).astype(np.float32)
    dc = compress_weight(w, sparsity=0.8, bits=3, index_bits=6, index_coding="universal")
    _flip_bits_and_check(dc, w, "index_stream", 60, rng)
    f = _fields(dc)
    f.pop("crc32")
    f["index_coding"] = "huffman"                           # a universal stream read as Huffman
    with pytest.raises(DecodeError):
        DeepCompressed(**f)
    f["index_coding"] = "zip"
    with pytest.raises(FormatError):
        DeepCompressed(**f)
    with pytest.raises(ParameterError):
        compress_weight(w, index_coding="elias")
    with pytest.raises(ParameterError):
        deep_compress(_tiny_model(rng), index_coding="elias")
    cm, _ = deep_compress(_tiny_model(rng), sparsity=0.5, bits=2, index_coding="universal")
    p = tmp_path / "u.h5"
    refcomp.save(cm, p)
    with h5py.File(p, "r+") as fh:
        fh["layers/0000/weights/W"].attrs["index_coding"] = "rle"
    with pytest.raises(FormatError):
        refcomp.load(p)


def test_cli_index_coding(tmp_path, capsys):
    from refcomp.cli import main
    src, out = tmp_path / "m.h5", tmp_path / "out.h5"
    refcomp.save(_tiny_model(np.random.default_rng(24)), src)
    assert main(["compress", str(src), "-o", str(out), "--prune", "0.5", "--kmeans", "3",
                 "--index-coding", "universal", "--quiet"]) == 0
    m = refcomp.load(out)
    dc = m.get_layer("0").weights["W"]
    assert dc.index_coding == "universal" and dc.coding == "huffman"
    capsys.readouterr()
    assert main(["size", str(out)]) == 0
    text = capsys.readouterr().out
    assert "index coding" in text and dc.index_coding_label in text
    assert main(["compress", str(src), "-o", str(out), "--no-huffman", "--index-coding",
                 "universal", "--quiet", "--prune", "0.9", "--force"]) == 0
    dc = refcomp.load(out).get_layer("0").weights["W"]
    assert (dc.coding, dc.index_coding) == ("fixed", "universal")
    capsys.readouterr()


@pytest.mark.parametrize("extra", [["--index-bits", "4"], ["--variant", "fig2"],
                                   ["--variant", "reserved"], ["--index-coding", "universal"]])
def test_cli_no_kmeans_refuses_index_options(tmp_path, capsys, extra):
    from refcomp.cli import main
    src = tmp_path / "m.h5"
    refcomp.save(_tiny_model(np.random.default_rng(1)), src)
    assert main(["compress", str(src), "-o", str(tmp_path / "x.h5"), "--no-kmeans",
                 "--prune", "0.5", *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("refcomp: error:") and "\n" not in err and extra[0] in err
    assert not (tmp_path / "x.h5").exists()
