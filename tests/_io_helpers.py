"""Helpers shared by the import tests (test_io_keras/onnx/torch, test_models_golden)."""

import numpy as np
import pytest

from refcomp.data import default_data_dir, load_split
from refcomp.testing import assert_bits_equal

DATA = default_data_dir()
G = DATA / "golden"
MODELS = ("digits_mlp", "digits_cnn", "digits_lstm", "digits_gru", "digits_resnet")


@pytest.fixture(scope="module")
def xte():
    """The test-split inputs (360, 8, 8) float32 (import this fixture into a test module)."""
    return load_split("test")[0]


def assert_same_model(a, b):
    """Same layer kinds in the same tree order and bit-identical weights."""
    la, lb = list(a.named_layers()), list(b.named_layers())
    assert [l.kind for _, l in la] == [l.kind for _, l in lb]
    for (_, x), (_, y) in zip(la, lb):
        assert sorted(x.weights) == sorted(y.weights)
        for k in x.weights:
            assert_bits_equal(x.w(k), y.w(k))


def ulps_tolerance(ref):
    """Stated tolerance for framework outputs: 64 float32 ulps of the largest |output|.

    Why: the frameworks accumulate in float32 in their own order (BLAS, oneDNN,
    MLAS), each layer within gamma_n * sum|x w| (FACTS.md §8) with n <= 576
    products, compounded over up to 8 layers; refcomp's reference accumulates
    in float64 and rounds once per layer.  Measured differences on the shipped
    models are <= 9 ulps; 64 ulps stays ~1000x below the smallest top-2 logit
    gap of every shipped model (>= 0.03), so it cannot hide an argmax change.
    """
    return 64 * float(np.spacing(np.float32(np.max(np.abs(ref)))))
