"""refcomp.coding.distance_labels: exact 2-hop labels (pruned landmark labeling), checked
against BFS / Dijkstra (scipy.sparse.csgraph, an independent implementation) on random
graphs and on the connectivity graphs of the shipped MLP, dense and magnitude-pruned."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import shortest_path

import refcomp
from refcomp import ParameterError, ShapeError
from refcomp.coding.distance_labels import layer_graph, pruned_landmark_labels
from refcomp.prune import magnitude


def _all_pairs(n, u, v, w):
    keep = u != v
    u, v, w = u[keep], v[keep], w[keep]
    # parallel edges: keep the shortest (csgraph would add duplicates of a COO matrix)
    best = {}
    for a, b, c in zip(u.tolist(), v.tolist(), w.tolist()):
        k = (min(a, b), max(a, b))
        best[k] = min(best.get(k, c), c)
    if not best:
        d = np.full((n, n), np.inf)
        np.fill_diagonal(d, 0)
        return d
    a = np.array([k[0] for k in best])
    b = np.array([k[1] for k in best])
    c = list(best.values())
    # zero-length edges: csgraph drops explicit zeros, so shift every length by one unit of
    # a scale no path can reach and subtract the hop count afterwards
    big = n + 1
    c = np.asarray(c, np.int64) * big + 1
    m = coo_matrix((c.astype(np.float64), (a, b)), shape=(n, n)).tocsr()
    d = shortest_path(m, directed=False, method="D")
    return np.where(np.isinf(d), np.inf, np.floor(d / big))


def _check_all(labels, d):
    n = d.shape[0]
    for x in range(n):
        for y in range(n):
            q = labels.query(x, y)
            assert (q == -1 and np.isinf(d[x, y])) or q == d[x, y], (x, y, q, d[x, y])


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 14), st.integers(0, 40), st.integers(0, 2 ** 32 - 1), st.booleans())
def test_queries_equal_dijkstra_on_random_graphs(n, m, seed, weighted):
    rng = np.random.default_rng(seed)
    u, v = rng.integers(0, n, m), rng.integers(0, n, m)
    w = rng.integers(0, 5, m) if weighted else None
    labels = pruned_landmark_labels(n, u, v, w)
    _check_all(labels, _all_pairs(n, u, v, np.ones(m, np.int64) if w is None else w))


def test_path_and_star_hand_checked():
    # path 0-1-2-3 with lengths 1, 2, 3: d(0, 3) = 6; vertex 1 and 2 have degree 2
    lab = pruned_landmark_labels(4, np.array([0, 1, 2]), np.array([1, 2, 3]),
                                 np.array([1, 2, 3]))
    assert lab.query(0, 3) == 6 and lab.query(3, 1) == 5 and lab.query(2, 2) == 0
    # a star: the centre is the first hub and every label holds at most two entries
    n = 9
    star = pruned_landmark_labels(n, np.zeros(n - 1, np.int64), np.arange(1, n))
    assert star.rank[0] == 0 and np.diff(star.offsets).max() == 2
    assert star.query(3, 7) == 2
    assert star.size_report()["entries"] == 1 + 2 * (n - 1)


def test_disconnected_and_deterministic():
    u, v = np.array([0, 2]), np.array([1, 3])
    a = pruned_landmark_labels(5, u, v)
    assert a.query(0, 2) == -1 and a.query(4, 4) == 0 and a.query(0, 1) == 1
    b = pruned_landmark_labels(5, u, v)
    for x, y in ((a.hubs, b.hubs), (a.dists, b.dists), (a.offsets, b.offsets)):
        assert np.array_equal(x, y)


@pytest.mark.parametrize("length", ["hops", "log"])
def test_shipped_mlp_connectivity_graph(length):
    """The pruned MLP's graph (inputs, hidden layers, outputs): every query of a sample of
    pairs equals Dijkstra's, and the labels are smaller than the all-pairs table."""
    mlp = refcomp.load("data/digits_mlp.h5")
    Ws = [np.asarray(lay.weights["W"]) for lay in mlp.layers if lay.kind == "dense"]
    Ws = [np.where(magnitude(W, sparsity=0.9), W, 0).astype(W.dtype) for W in Ws]
    n, u, v, w, offs = layer_graph(Ws, length=length)
    assert n == offs[-1] == Ws[0].shape[1] + sum(W.shape[0] for W in Ws)
    lab = pruned_landmark_labels(n, u, v, w)
    d = _all_pairs(n, u, v, w)
    rng = np.random.default_rng(0)
    for x, y in rng.integers(0, n, (400, 2)):
        q = lab.query(int(x), int(y))
        assert (q == -1 and np.isinf(d[x, y])) or q == d[x, y]
    rep = lab.size_report()
    assert rep["label_bits"] < rep["matrix_bits"]


def test_layer_graph_lengths():
    W1 = np.array([[1.0, 0.0], [0.5, -0.25]], np.float32)
    n, u, v, w, offs = layer_graph([W1], length="log", scale=1)
    assert n == 4 and list(offs) == [0, 2, 4]
    # edges (input j -> output o): (0->2, |1|), (0->3, 0.5), (1->3, 0.25): log2(1/|w|)
    assert sorted(zip(u.tolist(), v.tolist(), w.tolist())) == [(0, 2, 0), (0, 3, 1), (1, 3, 2)]


def test_bad_input():
    with pytest.raises(ParameterError, match="vertices in"):
        pruned_landmark_labels(2, np.array([0]), np.array([2]))
    with pytest.raises(ParameterError, match=">= 0"):
        pruned_landmark_labels(2, np.array([0]), np.array([1]), np.array([-1]))
    with pytest.raises(ShapeError, match="integers"):
        pruned_landmark_labels(2, np.array([0]), np.array([1]), np.array([0.5]))
    with pytest.raises(ParameterError, match="permutation"):
        pruned_landmark_labels(2, np.array([0]), np.array([1]), order=[0, 0])
    lab = pruned_landmark_labels(2, np.array([0]), np.array([1]))
    with pytest.raises(ParameterError, match="vertex"):
        lab.query(0, 5)
    with pytest.raises(ShapeError, match="inputs"):
        layer_graph([np.ones((2, 3), np.float32), np.ones((2, 3), np.float32)])
    with pytest.raises(ParameterError, match="non-finite"):
        layer_graph([np.array([[np.nan]], np.float32)])
    with pytest.raises(ParameterError, match="length"):
        layer_graph([np.ones((1, 1), np.float32)], length="euclid")
