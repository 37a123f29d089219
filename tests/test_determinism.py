"""Determinism matrix (issue 22): recorded outputs reproduced bit for bit.

.ci/run runs this file (marker ``determinism``) once per configuration --
NUMBA_DISABLE_JIT=1, NUMBA_NUM_THREADS=1, NUMBA_NUM_THREADS=2, OMP_NUM_THREADS=1 --
together with the kernel-twin and thread tests, and the README test command runs it
in the default configuration.  Every configuration must give:

- the reference-mode logits of the five shipped models equal to the ``refcomp``
  outputs recorded in data/golden/<model>_outputs.h5;
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
from refcomp.coding.huffman import huffman_code_lengths, huffman_cost, huffman_encode
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

#: Models whose reference forward is checked under NUMBA_DISABLE_JIT (the others
#: take tens of seconds to minutes interpreted); all five otherwise.
MODELS = ("digits_mlp",) if NOJIT else (
    "digits_mlp", "digits_cnn", "digits_lstm", "digits_gru", "digits_resnet")


def _bits(a):
    a = np.ascontiguousarray(a)
    return a.dtype.str, a.shape, hashlib.sha256(a.tobytes()).hexdigest()


@pytest.mark.parametrize("model", MODELS)
def test_reference_outputs_match_recorded_golden_bits(model):
    x, _ = load_split("test")
    with h5py.File(DATA / "golden" / f"{model}_outputs.h5", "r") as f:
        recorded = f["refcomp"][()]
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


def test_huffman_code_lengths_do_not_depend_on_symbol_order():
    rng = np.random.default_rng(7)
    s = rng.geometric(0.2, 50_000).astype(np.int16)
    s[::97] = 300                            # ties between counts
    counts = np.bincount(s)
    ref = huffman_code_lengths(counts)
    ref_limited = huffman_code_lengths(counts, max_length=8)
    for seed in range(3):
        t = s[np.random.default_rng(seed).permutation(s.size)]
        c = np.bincount(t)
        assert _bits(huffman_code_lengths(c)) == _bits(ref)
        assert _bits(huffman_code_lengths(c, max_length=8)) == _bits(ref_limited)
        enc, enc_ref = huffman_encode(t), huffman_encode(s)
        # same header (alphabet, lengths) and payload size; the payload itself
        # follows the symbol order
        cost = huffman_cost(counts)
        assert len(enc) == len(enc_ref) and enc[:len(enc) - (cost + 7) // 8] == \
            enc_ref[:len(enc_ref) - (cost + 7) // 8]


@pytest.mark.slow
@pytest.mark.skipif(NOJIT, reason="minutes with the JIT off; the small study covers it")
def test_default_study_runs_csv_matches_recorded_sha256(tmp_path):
    from refcomp.cli import main
    out = tmp_path / "out"
    assert main(["study", "--out", str(out), "--quiet", "--no-plots"]) == 0
    assert hashlib.sha256((out / "runs.csv").read_bytes()).hexdigest() == DEFAULT_STUDY_SHA256
