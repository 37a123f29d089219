"""Determinism matrix (issue 22): recorded outputs reproduced bit for bit.

.ci/run runs this file (marker ``determinism``) once per configuration --
NUMBA_DISABLE_JIT=1, NUMBA_NUM_THREADS=1, NUMBA_NUM_THREADS=2, OMP_NUM_THREADS=1 --
together with the kernel-twin and thread tests, and the README test command runs it
in the default configuration.  Every configuration must give:

- the reference-mode logits of the five shipped models equal to the ``refcomp``
  outputs recorded in data/golden/<model>_outputs.h5 (under NUMBA_DISABLE_JIT=1,
  8 samples spread over the split for all but the MLP: see NOJIT_SAMPLES);
- the runs.csv of a small recorded study (SMALL_STUDY below) with the SHA-256
  recorded here (the default ``refcomp study`` runs.csv, 7c2a07b4..., is checked
  by the slow test at the end, in the default configuration only);
- k-means codebooks and codes, and Huffman code lengths, unchanged when the input
  order is shuffled (both are defined on the multiset of values).
"""

import hashlib
import os

import h5py
import numpy as np
import pytest

import refcomp
from refcomp.coding.huffman import (huffman_code_lengths, huffman_cost, huffman_decode,
                                    huffman_encode)
from refcomp.data import default_data_dir, load_split
from refcomp.quantize import kmeans

pytestmark = pytest.mark.determinism

DATA = default_data_dir()
NOJIT = os.environ.get("NUMBA_DISABLE_JIT", "0") not in ("", "0")

#: A study small enough for NUMBA_DISABLE_JIT=1, and the SHA-256 of its runs.csv.
SMALL_STUDY = dict(model="digits_mlp", samples=120, methods=("uniform", "kmeans"), bits=(2, 3),
                   adaptive_bits=(2, 3), experiments=("per_layer", "whole", "adaptive"))
SMALL_STUDY_SHA256 = "5803508400f8767931008d3c0e8d43cbb4ab2eaf7d1e8a269547eb4a41ba1f63"
#: ``refcomp study`` with every default (digits_cnn, uniform + kmeans, bits 1-8).
DEFAULT_STUDY_SHA256 = "7c2a07b4f333b4edf09ff467073b8ef7bdf6726972ab610742649add441c6548"

#: The five shipped models, checked in every configuration.
MODELS = ("digits_mlp", "digits_cnn", "digits_lstm", "digits_gru", "digits_resnet")
#: Samples of the 360-sample test split checked under NUMBA_DISABLE_JIT: all of them
#: for the MLP; for the others (interpreted, 1-2.5 s per sample for the CNN and the
#: ResNet, about 0.4 s for the LSTM and 0.3 s for the GRU on this machine under load),
#: every 45th sample, 8 spread over the split (each sample's reference output depends
#: on that sample alone, so the subset is compared with the same rows of the record).
#: With the JIT on, the whole split for every model.
NOJIT_SAMPLES = {"digits_mlp": slice(None)}
NOJIT_DEFAULT_SAMPLES = slice(None, None, 45)


def _bits(a):
    a = np.ascontiguousarray(a)
    return a.dtype.str, a.shape, hashlib.sha256(a.tobytes()).hexdigest()


@pytest.mark.parametrize("model", MODELS)
def test_reference_outputs_match_recorded_golden_bits(model):
    x, _ = load_split("test")
    with h5py.File(DATA / "golden" / f"{model}_outputs.h5", "r") as f:
        recorded = f["refcomp"][()]
    rows = NOJIT_SAMPLES.get(model, NOJIT_DEFAULT_SAMPLES) if NOJIT else slice(None)
    x, recorded = np.ascontiguousarray(x[rows]), recorded[rows]
    assert x.shape[0] >= 8
    y = refcomp.load(DATA / f"{model}.h5")(x, precision="reference")
    assert _bits(y) == _bits(recorded)


def _study_csv(spec, **kw):
    from refcomp.study.report import _csv_text
    from refcomp.study.run import run_study
    x, y = load_split("test")
    n = spec["samples"]
    res = run_study(refcomp.load(DATA / f"{spec['model']}.h5"), x[:n], y[:n],
                    methods=spec["methods"], bits=spec["bits"],
                    adaptive_bits=spec["adaptive_bits"], experiments=spec["experiments"],
                    progress=False, **kw)
    return _csv_text(res["runs"]).encode()


def test_small_study_runs_csv_matches_recorded_sha256():
    got = hashlib.sha256(_study_csv(SMALL_STUDY)).hexdigest()
    assert got == SMALL_STUDY_SHA256


def test_kmeans_does_not_depend_on_input_order():
    rng = np.random.default_rng(22)
    w = rng.standard_normal(3000 if NOJIT else 20_000).astype(np.float32)
    w[:500] = w[500:1000]                    # repeated values
    for shuffle_seed in range(2):
        perm = np.random.default_rng(shuffle_seed).permutation(w.size)
        for init in ("linear", "density") if NOJIT else ("linear", "density", "optimal"):
            a = kmeans(w, bits=4, init=init)
            b = kmeans(w[perm], bits=4, init=init)
            assert _bits(a.params["codebook"]) == _bits(b.params["codebook"])
            assert np.array_equal(a.codes[perm], b.codes)
            assert a.info["sse"] == b.info["sse"] and a.info["n_iter"] == b.info["n_iter"]


def _naive_huffman_lengths(counts):
    """Independent ground truth: the documented two-queue construction in plain
    Python (leaves by (count, symbol); on equal weight the leaf queue first)."""
    from collections import deque
    leaves = deque((int(c), [s]) for s, c in sorted(enumerate(counts), key=lambda t: (t[1], t[0]))
                   if c)
    if len(leaves) == 1:
        return {leaves[0][1][0]: 1}
    depth, inner = {m[0]: 0 for _, m in leaves}, deque()

    def take():
        if inner and (not leaves or inner[0][0] < leaves[0][0]):
            return inner.popleft()
        return leaves.popleft()
    while len(leaves) + len(inner) > 1:
        (wa, ma), (wb, mb) = take(), take()
        for s in ma + mb:
            depth[s] += 1
        inner.append((wa + wb, ma + mb))
    return depth


def _naive_canonical_payload(stream, lengths):
    """Canonical words (RFC 1951 3.2.2) of ``lengths`` {symbol: length}, the stream
    coded MSB-first and zero-padded, as bytes (Python ints and strings only)."""
    words, code, prev = {}, -1, 0
    for s in sorted(lengths, key=lambda s: (lengths[s], s)):
        code = (code + 1) << (lengths[s] - prev)
        words[s], prev = format(code, f"0{lengths[s]}b"), lengths[s]
    bits = "".join(words[int(v)] for v in stream)
    bits += "0" * (-len(bits) % 8)
    return int(bits, 2).to_bytes(len(bits) // 8, "big") if bits else b""


def _tied_stream():
    """A stream whose counts tie deliberately: ten symbols of count 5, ten of 7,
    eight of 1, three of 12, plus a geometric tail (ties there too)."""
    rng = np.random.default_rng(7)
    counts = np.array([5] * 10 + [7] * 10 + [1] * 8 + [12] * 3 + [0, 40, 40, 3], np.int64)
    counts = np.concatenate([counts, np.bincount(rng.geometric(0.3, 400))[1:]])
    return np.repeat(np.arange(counts.size, dtype=np.int16), counts), counts


def test_huffman_code_lengths_follow_the_documented_tie_rule():
    s, counts = _tied_stream()
    naive = _naive_huffman_lengths(counts)
    got = huffman_code_lengths(counts)
    assert {int(i): int(got[i]) for i in np.flatnonzero(got)} == naive
    # the rule, read on the result: among equal counts a smaller symbol is never shorter
    for c in np.unique(counts[counts > 0]):
        tied = got[np.flatnonzero(counts == c)]
        assert np.all(np.diff(tied.astype(int)) <= 0), (c, tied)


@pytest.mark.parametrize("max_length", [None, 6])
def test_huffman_code_lengths_and_bytes_do_not_depend_on_symbol_order(max_length):
    """Shuffled streams (several seeds) and shuffled construction of the frequency
    table give the same code lengths, the same stream header and, for the same symbol
    sequence, the same canonical-code bytes as an independent encoder."""
    s, counts = _tied_stream()
    ref = huffman_code_lengths(counts, max_length=max_length)
    lengths = {int(i): int(ref[i]) for i in np.flatnonzero(ref)}
    assert sum(2.0 ** -l for l in lengths.values()) <= 1.0       # Kraft
    enc_ref = huffman_encode(s, max_length=max_length)
    nbytes = (huffman_cost(counts, max_length=max_length) + 7) // 8
    head_ref = enc_ref[:len(enc_ref) - nbytes]
    assert enc_ref[len(head_ref):] == _naive_canonical_payload(s, lengths)
    for seed in range(5):
        perm = np.random.default_rng(seed).permutation(s.size)
        t = s[perm]
        # frequency table filled in a shuffled symbol order (e.g. from a dict)
        table = {}
        for v in t.tolist():
            table[v] = table.get(v, 0) + 1
        c = np.zeros(counts.size, np.int64)
        for k in np.random.default_rng(100 + seed).permutation(list(table)):
            c[k] = table[int(k)]
        assert np.array_equal(c, counts)
        got = huffman_code_lengths(c, max_length=max_length)
        assert _bits(got) == _bits(ref)
        enc = huffman_encode(t, max_length=max_length)
        # same header (alphabet, lengths); the payload is the shuffled sequence coded
        # with the reference words, byte for byte
        assert enc[:len(head_ref)] == head_ref and len(enc) == len(enc_ref)
        assert enc[len(head_ref):] == _naive_canonical_payload(t, lengths)
        assert np.array_equal(huffman_decode(enc), t)


@pytest.mark.slow
@pytest.mark.skipif(NOJIT, reason="minutes with the JIT off; the small study covers it")
def test_default_study_runs_csv_matches_recorded_sha256(tmp_path):
    from refcomp.cli import main
    out = tmp_path / "out"
    assert main(["study", "--out", str(out), "--quiet", "--no-plots"]) == 0
    assert hashlib.sha256((out / "runs.csv").read_bytes()).hexdigest() == DEFAULT_STUDY_SHA256
