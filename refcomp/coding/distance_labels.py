"""Exact distance labelling (2-hop cover) of a network's connectivity graph.

Seed 001 lists distance labelling among the algorithms-community methods:
"prétraiter le graphe en stockant des informations pour chaque sommet afin
que les requêtes de plus court chemin puissent être traitées rapidement".
This module implements the exact scheme of Pruned Landmark Labeling
(Akiba, Iwata & Yoshida, SIGMOD 2013, Algorithm 1 for unweighted graphs
and its §4.4 Dijkstra variant for weighted ones):

* vertices are ranked (default: degree descending, ties by ascending
  vertex id; or a given order);
* for each vertex ``r`` in rank order, a Dijkstra search from ``r`` adds the
  pair ``(r, d(r, u))`` to the label of every vertex ``u`` it settles,
  *except* that it prunes ``u`` (does not label it nor expand it) when the
  labels built so far already answer ``query(r, u) <= d`` (2-hop cover
  property, Akiba et al. Lemma 4.2: the result is a correct and minimal
  canonical labelling for that order);
* ``query(u, v) = min over hubs h in L(u) ∩ L(v) of d(u, h) + d(h, v)``,
  by a merge of the two labels (sorted by hub rank), or -1 when u and v
  are not connected.

The graph is undirected with non-negative *integer* edge lengths, so every
distance is an exact Python / int64 integer (no rounding anywhere); the
heap pops (distance, vertex) in lexicographic order, so the labels are
identical on every run and machine.

The connectivity graph of a dense network (:func:`layer_graph`) has one
vertex per neuron (inputs of layer 0, then each layer's outputs) and one
edge per non-zero weight ``W[o, i]`` of layer ``l`` between input neuron i
and output neuron o.  Lengths: ``"hops"`` (1 per edge: BFS distances, the
number of connections between two neurons), or ``"log"``: ``round(scale *
log2(m / |w|))`` with ``m`` the largest |w| of the whole network, an
integer approximation of minus the log of the path's weight product up to
a constant per edge (in a layered network, paths between two given layers
have the same number of edges, so the shortest path is the strongest one,
up to the quantization of the logarithms).
"""

import heapq
import math

import numpy as np

from .._errors import ParameterError, ShapeError
from .._validate import describe

__all__ = ["DistanceLabels", "pruned_landmark_labels", "layer_graph"]


class DistanceLabels:
    """Labels of :func:`pruned_landmark_labels` (read-only arrays).

    Attributes
    ----------
    n : int, vertices
    rank : int64 (n,), rank of each vertex (0 = first hub)
    offsets : int64 (n + 1,), label of vertex u is entries offsets[u]:offsets[u+1]
    hubs : int64, hub ranks of the entries (increasing within a label)
    dists : int64, distance from the vertex to the hub of each entry
    """

    def __init__(self, n, rank, offsets, hubs, dists):
        self.n = int(n)
        self.rank, self.offsets, self.hubs, self.dists = rank, offsets, hubs, dists
        for a in (rank, offsets, hubs, dists):
            a.setflags(write=False)

    def _label(self, u):
        a, b = self.offsets[u], self.offsets[u + 1]
        return self.hubs[a:b], self.dists[a:b]

    def _check_vertex(self, name, u):
        if isinstance(u, bool) or not isinstance(u, (int, np.integer)) or not 0 <= u < self.n:
            raise ParameterError(f"{name} must be a vertex in [0, {self.n}), got {u!r}")
        return int(u)

    def query(self, u, v):
        """Exact distance between vertices u and v (int), -1 if they are not connected."""
        u, v = self._check_vertex("u", u), self._check_vertex("v", v)
        hu, du = self._label(u)
        hv, dv = self._label(v)
        common, iu, iv = np.intersect1d(hu, hv, assume_unique=True, return_indices=True)
        if common.size == 0:
            return -1
        return int(np.min(du[iu] + dv[iv]))

    def size_report(self):
        """Storage of the labels against the alternatives, in bits.

        Returns
        -------
        dict
            ``entries`` (total label entries), ``mean_label`` (entries per
            vertex), ``max_label``, ``label_bits`` (each entry a hub rank of
            ceil(log2 n) bits and a distance of ceil(log2(max d + 1)) bits,
            plus n offsets of ceil(log2(entries + 1)) bits), and
            ``matrix_bits`` (the n (n - 1) / 2 distances of a triangular
            all-pairs table at the same distance width, the alternative that
            answers a query with one read).
        """
        n, e = self.n, int(self.hubs.size)
        hub_bits = max(1, math.ceil(math.log2(max(n, 2))))
        dmax = int(self.dists.max()) if e else 0
        d_bits = max(1, math.ceil(math.log2(dmax + 1))) if dmax else 1
        off_bits = max(1, math.ceil(math.log2(e + 1)))
        sizes = np.diff(self.offsets)
        return {"vertices": n, "entries": e, "mean_label": e / n if n else 0.0,
                "max_label": int(sizes.max()) if n else 0,
                "label_bits": e * (hub_bits + d_bits) + n * off_bits,
                "matrix_bits": n * (n - 1) // 2 * d_bits}


def _check_graph(n, u, v, lengths):
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ParameterError(f"n must be an int >= 0, got {n!r}")
    u, v = np.asarray(u), np.asarray(v)
    for name, a in (("u", u), ("v", v)):
        if a.ndim != 1 or a.dtype.kind not in "iu":
            raise ShapeError(f"{name} must be a 1-D integer array, got {describe(a)}")
    if u.shape != v.shape:
        raise ShapeError(f"u and v must have one shape, got {describe(u)} and {describe(v)}")
    if u.size and (min(u.min(), v.min()) < 0 or max(u.max(), v.max()) >= n):
        raise ParameterError(f"edge endpoints must be vertices in [0, {n})")
    if lengths is None:
        lengths = np.ones(u.shape, np.int64)
    lengths = np.asarray(lengths)
    if lengths.shape != u.shape or lengths.dtype.kind not in "iu":
        raise ShapeError(f"lengths must be integers of the shape of u, got {describe(lengths)}")
    if lengths.size and lengths.min() < 0:
        raise ParameterError("edge lengths must be >= 0")
    return int(n), u.astype(np.int64), v.astype(np.int64), lengths.astype(np.int64)


def pruned_landmark_labels(n, u, v, lengths=None, *, order=None):
    """Exact 2-hop distance labels of an undirected graph (module docstring).

    Parameters
    ----------
    n : int, number of vertices
    u, v : 1-D integer arrays, the edges (u[k], v[k]); parallel edges keep
        the shortest, self-loops are ignored
    lengths : 1-D integer array >= 0, optional (default 1 per edge)
    order : 1-D integer array, optional
        A permutation of range(n): vertices in hub order.  Default: degree
        (distinct neighbours) descending, ties by ascending vertex id.

    Returns
    -------
    DistanceLabels

    Raises
    ------
    ParameterError, ShapeError
        Endpoints outside [0, n), negative or non-integer lengths,
        mismatched shapes, an order that is not a permutation.
    """
    n, u, v, w = _check_graph(n, u, v, lengths)
    adj = [dict() for _ in range(n)]
    for a, b, c in zip(u.tolist(), v.tolist(), w.tolist()):
        if a == b:
            continue
        if c < adj[a].get(b, c + 1):
            adj[a][b] = c
            adj[b][a] = c
    if order is None:
        order = sorted(range(n), key=lambda x: (-len(adj[x]), x))
    else:
        order = [int(x) for x in np.asarray(order).reshape(-1)]
        if sorted(order) != list(range(n)):
            raise ParameterError("order must be a permutation of range(n)")
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(n)
    hubs = [[] for _ in range(n)]            # hub ranks, increasing (roots in rank order)
    dist = [[] for _ in range(n)]
    for r_rank, root in enumerate(order):
        # the root's label as a dict for the pruning test
        root_lab = dict(zip(hubs[root], dist[root]))
        best = {root: 0}
        heap = [(0, root)]
        while heap:
            d, x = heapq.heappop(heap)
            if d > best.get(x, d):
                continue
            # prune: an earlier hub h already gives d(root, h) + d(h, x) <= d
            if any(root_lab.get(h, d + 1) + dh <= d for h, dh in zip(hubs[x], dist[x])):
                continue
            hubs[x].append(r_rank)
            dist[x].append(d)
            for y, c in adj[x].items():
                nd = d + c
                if nd < best.get(y, nd + 1):
                    best[y] = nd
                    heapq.heappush(heap, (nd, y))
    sizes = np.array([len(h) for h in hubs], np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    flat_h = np.array([x for h in hubs for x in h], np.int64)
    flat_d = np.array([x for dd in dist for x in dd], np.int64)
    return DistanceLabels(n, rank, offsets, flat_h, flat_d)


def layer_graph(weights, *, length="hops", scale=4):
    """The connectivity graph of a chain of dense layers, for :func:`pruned_landmark_labels`.

    Parameters
    ----------
    weights : sequence of 2-D float arrays, W_l (out_l, in_l) with in_{l+1} = out_l
        (a pruned model's dense weights; zeros are absent connections)
    length : {"hops", "log"}, keyword-only
        "hops": 1 per edge.  "log": ``round_half_even(scale * log2(m / |w|))``
        with m the largest |w| over all layers (>= 0; see the module docstring).
    scale : int >= 1, keyword-only (for "log"): resolution, steps per factor of 2

    Returns
    -------
    (n, u, v, lengths, layer_offsets)
        Vertices ``layer_offsets[l] + j`` are neuron j of layer boundary l
        (0 = the first layer's inputs); u, v, lengths int64 per non-zero weight.
    """
    if length not in ("hops", "log"):
        raise ParameterError(f"length must be 'hops' or 'log', got {length!r}")
    if isinstance(scale, bool) or not isinstance(scale, (int, np.integer)) or scale < 1:
        raise ParameterError(f"scale must be an int >= 1, got {scale!r}")
    ws = [np.asarray(W) for W in weights]
    if not ws:
        raise ParameterError("weights must hold at least one layer")
    for i, W in enumerate(ws):
        if W.ndim != 2 or W.dtype.kind != "f":
            raise ShapeError(f"weights[{i}] must be a 2-D float array (out, in), got "
                             f"{describe(W)}")
        if not np.all(np.isfinite(W)):
            raise ParameterError(f"weights[{i}] holds non-finite values")
        if i and W.shape[1] != ws[i - 1].shape[0]:
            raise ShapeError(f"weights[{i}] takes {W.shape[1]} inputs but weights[{i - 1}] "
                             f"has {ws[i - 1].shape[0]} outputs")
    sizes = [ws[0].shape[1]] + [W.shape[0] for W in ws]
    layer_offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    m = max(float(np.max(np.abs(W))) if W.size else 0.0 for W in ws)
    us, vs, ls = [], [], []
    for i, W in enumerate(ws):
        o, j = np.nonzero(W)
        us.append(layer_offsets[i] + j)
        vs.append(layer_offsets[i + 1] + o)
        if length == "hops":
            ls.append(np.ones(o.size, np.int64))
        else:
            # libm log2 per element (not NumPy's SIMD loop): the same integers everywhere
            a = np.abs(W[o, j]).astype(np.float64).tolist()
            ls.append(np.rint(np.array([scale * math.log2(m / x) for x in a],
                                       np.float64)).astype(np.int64))
    return (int(layer_offsets[-1]), np.concatenate(us).astype(np.int64),
            np.concatenate(vs).astype(np.int64), np.concatenate(ls), layer_offsets)
