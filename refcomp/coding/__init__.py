"""Entropy and universal codes: canonical Huffman (with package-merge length
limit), rANS, and the universal integer codes for index gaps (Elias gamma and
delta, Golomb-Rice, zeta_k of WebGraph), and the WebGraph (Boldi-Vigna) coding of
adjacency lists (:mod:`refcomp.coding.webgraph`), and exact distance labels of a
network's connectivity graph (:mod:`refcomp.coding.distance_labels`).  Stream layouts:
docs/coding.md."""

from .distance_labels import DistanceLabels, layer_graph, pruned_landmark_labels
from .huffman import (MAX_SYMBOLS, canonical_codes, huffman_code_lengths, huffman_cost,
                      huffman_decode, huffman_encode, huffman_sizes)
from .rans import max_decodable, quantize_frequencies, rans_decode, rans_encode
from .universal import choose_gap_code, code_length, decode_ints, encode_ints, universal_sizes
from .webgraph import (webgraph_decode, webgraph_decode_mask, webgraph_encode,
                       webgraph_encode_mask, webgraph_sizes)

__all__ = ["choose_gap_code", "code_length", "decode_ints", "encode_ints", "universal_sizes",
           "MAX_SYMBOLS", "canonical_codes", "huffman_code_lengths", "huffman_cost",
           "huffman_decode", "huffman_encode", "huffman_sizes",
           "max_decodable", "quantize_frequencies", "rans_decode", "rans_encode",
           "webgraph_encode", "webgraph_decode", "webgraph_encode_mask", "webgraph_decode_mask",
           "webgraph_sizes", "DistanceLabels", "layer_graph", "pruned_landmark_labels"]
