"""refcomp.prune group sparsity: group_prox (seed 003 eq. (1)) and less_is_more."""

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, strategies as st
from hypothesis.extra import numpy as hnp

import refcomp
from refcomp.data import load_split
from refcomp.prune import group_norms, group_prox, less_is_more
from refcomp.testing import assert_bits_equal, model_error_bound

DATA = Path(__file__).resolve().parents[1] / "data"
X_TEST, Y_TEST = load_split("test")

MATS = hnp.arrays(np.float32, st.tuples(st.integers(1, 6), st.integers(1, 5)),
                  elements=st.sampled_from([0.0, 1.0, -1.0, 0.5, 2.0, -3.0, 0.25]))


def prox_definition(W, tau, groups, relative):
    """Eq. (1) neuron by neuron, in Python floats (float64)."""
    G = W if groups == "outputs" else W.T
    norms = [math.sqrt(math.fsum(float(v) * float(v) for v in row)) for row in G]
    thr = tau * max(norms) if relative else tau
    out = np.zeros(G.shape, dtype=W.dtype)
    keep = []
    for j, row in enumerate(G):
        n = norms[j]
        t = max(n - thr, 0.0)
        keep.append(n > thr)
        if t > 0:
            s = t / n
            out[j] = [W.dtype.type(float(v) * s) for v in row]
    return (out if groups == "outputs" else out.T), np.array(keep)


@given(MATS, st.sampled_from([0.0, 0.3, 1.0, 2.5]), st.sampled_from(["outputs", "inputs"]))
def test_prox_absolute_matches_definition(W, tau, groups):
    got = group_prox(W, tau, groups=groups)
    want, keep = prox_definition(W, tau, groups, False)
    assert_bits_equal(got, want)
    # LIMutils absolute_reduce: keep_output = neurons with norm > threshold
    nz = np.any(got != 0, axis=1 if groups == "outputs" else 0)
    assert np.array_equal(nz, keep & (group_norms(W, groups=groups) > 0))


def limutils_relative_keep(W, ratio, groups):
    """LIMutils relative_reduce (seed 003 appendix A): keep_output = norm > ratio * max
    norm, the norms of rows (outputs) or columns (inputs) computed here in Python."""
    G = W if groups == "outputs" else W.T
    norms = [math.sqrt(math.fsum(float(v) * float(v) for v in row)) for row in G]
    thr = ratio * max(norms)
    return np.array([n > thr for n in norms])


@given(MATS, st.sampled_from([0.0, 0.2, 0.5, 0.9]), st.sampled_from(["outputs", "inputs"]))
def test_prox_relative_matches_definition_and_keeps_largest(W, ratio, groups):
    got = group_prox(W, ratio, groups=groups, relative=True)
    want, keep = prox_definition(W, ratio, groups, True)
    assert_bits_equal(got, want)
    norms = group_norms(W, groups=groups)
    # the kept set is exactly LIMutils' relative keep set (zero groups stay zero)
    nz = np.any(got != 0, axis=1 if groups == "outputs" else 0)
    limkeep = limutils_relative_keep(W, ratio, groups)
    assert np.array_equal(keep, limkeep)
    assert np.array_equal(nz, limkeep & (norms > 0))
    if norms.max() > 0:
        j = int(np.argmax(norms))                              # largest neuron survives
        assert np.any((got[j] if groups == "outputs" else got[:, j]) != 0)


def test_prox_relative_inputs_golden():
    # columns with norms 5, 1, 0 ("renversé" variant), ratio 0.3 -> tau 1.5
    W = np.array([[3.0, 0.6, 0.0], [4.0, 0.8, -0.0]], dtype=np.float32)
    out = group_prox(W, 0.3, groups="inputs", relative=True)
    assert_bits_equal(out, np.array([[2.1, 0, 0], [2.8, 0, 0]], dtype=np.float32))
    assert limutils_relative_keep(W, 0.3, "inputs").tolist() == [True, False, False]


def test_prox_golden_and_conv_frobenius():
    W = np.array([[3.0, 4.0], [0.6, 0.8], [-0.0, 0.0]], dtype=np.float32)   # norms 5, 1, 0
    out = group_prox(W, 2.0)
    assert_bits_equal(out, np.array([[1.8, 2.4], [0, 0], [0, 0]], dtype=np.float32))
    assert_bits_equal(group_prox(W, 0.0), np.where(W == 0, np.float32(0), W))
    assert_bits_equal(group_prox(W, 0.5, relative=True)[0], np.array([1.5, 2.0], np.float32))
    C = np.zeros((2, 2, 1, 2))
    C[0] = [[[1.0, 2.0]], [[2.0, 4.0]]]                        # Frobenius 5
    C[1] = 0.1
    out = group_prox(C, 1.0)
    np.testing.assert_allclose(out[0], C[0] * 0.8, rtol=0, atol=1e-15)
    assert not out[1].any()


@pytest.mark.parametrize("name,ratio", [("mlp", 0.5), ("cnn", 0.5), ("resnet", 0.7)])
def test_less_is_more_on_shipped(name, ratio):
    m = refcomp.load(DATA / f"digits_{name}.h5")
    r, rep = less_is_more(m, ratio)
    assert rep["params_before"] == m.n_params() and rep["params_after"] == r.n_params()
    assert rep["params_after"] < rep["params_before"]
    assert rep["reduction_pct"] == 100.0 * (1 - r.n_params() / m.n_params())
    for row in rep["layers"]:
        assert row["neurons_after"] == r.get_layer(row["path"]).weights["W"].shape[0]
    # the reduced model computes what the thresholded (prox'd) model computes
    upd = {}
    for row in rep["layers"]:
        layer = m.get_layer(row["path"])
        upd[(row["path"], "W")] = group_prox(layer.weights["W"], ratio, relative=True)
        if row["path"] in rep["unfolded"]:          # dropped with their bias (LIMutils)
            b = layer.weights["b"].copy()
            b[rep["unfolded"][row["path"]]] = 0
            upd[(row["path"], "b")] = b
    prox = m.replace_weights(upd)
    # several layers get folded biases: a comparison across layers, so the
    # FACTS.md §8 per-layer bound is propagated (refcomp.testing.model_error_bound)
    b, bound = model_error_bound(prox, X_TEST[:100])
    assert np.all(np.abs(r(X_TEST[:100]) - b) <= bound)
    if name == "resnet":
        assert any("index_map" in l.weights for l in r.layers if l.kind == "residual")


def test_less_is_more_reversed_and_layers_subset():
    m = refcomp.load(DATA / "digits_mlp.h5")
    r, rep = less_is_more(m, 0.6, groups="inputs", layers=["3", "5"])
    assert [row["path"] for row in rep["layers"]] == ["3", "5"]
    assert r.get_layer("1").weights["W"].shape[0] < 128       # producers of zeroed columns gone
    r1, rep1 = less_is_more(m, 0.4, layers=["1"])
    assert r1.get_layer("3").weights["W"].shape[0] == 64
    assert r1.get_layer("1").weights["W"].shape[0] == rep1["layers"][0]["neurons_after"]


def test_group_bad_input():
    W = np.ones((3, 2), dtype=np.float32)
    with pytest.raises(refcomp.ParameterError, match=r"\[0, 1\)"):
        group_prox(W, 1.0, relative=True)
    with pytest.raises(refcomp.ParameterError, match=">= 0"):
        group_prox(W, -1.0)
    with pytest.raises(refcomp.ParameterError, match="groups"):
        group_prox(W, 0.1, groups="rows")
    with pytest.raises(refcomp.ShapeError):
        group_prox(np.ones((2, 2, 2), np.float32), 0.1)
    with pytest.raises(refcomp.ParameterError, match="non-finite"):
        group_prox(np.array([[np.inf]], np.float32), 0.1)
    m = refcomp.load(DATA / "digits_mlp.h5")
    with pytest.raises(refcomp.ParameterError, match="removes every neuron"):
        less_is_more(m, 1e6, relative=False)


def test_less_is_more_limutils_drop_semantics():
    m = refcomp.load(DATA / "digits_mlp.h5")
    r, rep = less_is_more(m, 0.5, fold_bias=False)
    upd = {}
    for row in rep["layers"]:
        layer = m.get_layer(row["path"])
        W = group_prox(layer.weights["W"], 0.5, relative=True)
        b = layer.weights["b"].copy()
        b[~np.any(W != 0, axis=1)] = 0                 # the neuron goes with its bias
        upd[(row["path"], "W")], upd[(row["path"], "b")] = W, b
    assert np.array_equal(r(X_TEST), m.replace_weights(upd)(X_TEST))


def test_less_is_more_refuses_output_layer_unless_opted_in():
    m = refcomp.load(DATA / "digits_mlp.h5")
    with pytest.raises(refcomp.ParameterError, match="output layer.*allow_output_layer"):
        less_is_more(m, 0.9, layers=["5"])
    with pytest.raises(refcomp.ParameterError, match="output layer"):
        less_is_more(m, 0.9, layers=["1", "5"])
    r, rep = less_is_more(m, 0.9, layers=["5"], allow_output_layer=True)
    assert r(X_TEST[:5]).shape[1] == rep["layers"][0]["neurons_after"] < 10
    # groups="inputs" on the output layer narrows its inputs, not the model outputs
    r, rep = less_is_more(m, 0.6, groups="inputs", layers=["5"])
    assert r(X_TEST[:5]).shape == (5, 10)
    assert r.get_layer("3").weights["W"].shape[0] == rep["layers"][0]["neurons_after"] < 64
    # layers inside residual bodies are not output layers
    res = refcomp.load(DATA / "digits_resnet.h5")
    less_is_more(res, 0.5, layers=["5/2"])
    lstm = refcomp.load(DATA / "digits_lstm.h5")
    with pytest.raises(refcomp.ParameterError, match="output layer"):
        less_is_more(lstm, 0.5, layers=["1"])
