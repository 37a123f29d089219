"""Deep Compression pipeline (Han, Mao & Dally, ICLR 2016; FACTS.md §7.1).

prune (magnitude, per layer) -> share (per-layer 1-D k-means on the kept
weights, linear initialisation) -> relative sparse indices -> Huffman on
both streams (the paper's default; the index stream may instead use the
cheapest universal code of each layer, ``index_coding="universal"``, or the
WebGraph coding of the kept positions, ``index_coding="webgraph"``).
**Retraining is out of scope**: the paper retrains after pruning and
fine-tunes the centroids after sharing; refcomp stops at the one-shot
compression, so accuracy is that of the compressed weights without any
retraining.
"""

import numpy as np

from .._errors import ParameterError
from .._progress import Progress
from .._validate import as_float_array, check_choice, check_int
from ..prune._common import check_sparsity
from ..prune.magnitude import magnitude
from ..quantize.kmeans import INITS, kmeans
from ..sparse.relative import DEFAULT_VARIANT, VARIANTS
from .container import INDEX_CODINGS, DeepCompressed
from .size import size_report

__all__ = ["deep_compress", "compress_weight", "DEFAULT_SPARSITY", "DEFAULT_BITS"]

#: Default fraction of weights removed per layer.  The paper prunes per layer
#: (AlexNet 89% overall, LeNet 92%); 0.9 is the issue's ``--prune 0.9``.
DEFAULT_SPARSITY = 0.9
#: Shared-value bits per layer kind: 8 for conv (256 centroids) and 5 for fully
#: connected (32) layers, as for AlexNet (Han et al. 2016 §3, FACTS.md §7.1).
DEFAULT_BITS = {"conv2d": 8, "dense": 5, "lstm": 5, "gru": 5, "mgu": 5, "simple_rnn": 5}
#: Weights compressed per layer kind.  The paper covers conv and fully
#: connected layers; recurrent input/hidden matrices are an extension treated
#: as fully connected (5-bit sharing, 5-bit relative index).
_WEIGHTS = {"dense": ("W",), "conv2d": ("W",), "lstm": ("W_ih", "W_hh"),
            "gru": ("W_ih", "W_hh"), "mgu": ("W_ih", "W_hh"), "simple_rnn": ("W_ih", "W_hh")}
_KINDS = tuple(_WEIGHTS)
_INDEX_BITS = {k: 8 if k == "conv2d" else 5 for k in _KINDS}


def compress_weight(w, *, sparsity=DEFAULT_SPARSITY, bits=5, index_bits=5, huffman=True,
                    variant=DEFAULT_VARIANT, init="linear", max_iter=300, index_coding=None):
    """Deep-compress one weight array.

    Parameters
    ----------
    w : ndarray, float32 or float64, any shape, finite
    sparsity : float in [0, 1]
        Fraction removed by :func:`refcomp.prune.magnitude` (exactly
        ``round_half_even(sparsity * w.size)`` entries, smallest |w| first,
        ties to the lower flat index).
    bits : int in [1, 16]
        k = 2**bits shared values.
    index_bits : int in [1, 16]
        Relative-index width (paper: 8 conv, 5 fully connected).
    huffman : bool
        Huffman-code both streams (else fixed-width packing); the index
        stream follows ``index_coding`` when it is given.
    variant : {"reserved", "fig2"}
        Filler rule of :func:`refcomp.sparse.encode_relative`.
    init : str
        k-means initialisation (default "linear", the paper's best, §3.1).
    max_iter : int
        Lloyd iterations.
    index_coding : {"huffman", "fixed", "universal", "webgraph"} or None
        Coding of the index stream; None (default): as the value stream
        (``huffman``).  "universal": the cheapest of Elias gamma/delta,
        Rice and zeta_k for this weight's relative-index codes
        (:func:`refcomp.coding.choose_gap_code`), recorded in the stream.

    Returns
    -------
    DeepCompressed
        ``dequantize()`` equals, bit for bit, ``q.dequantize()`` at the kept
        positions and +0.0 elsewhere, where ``mask = magnitude(w,
        sparsity=sparsity)`` and ``q = kmeans(w[mask], bits=bits, init=init)``
        (k-means on the kept values only, in C order; its arithmetic is
        documented in :func:`refcomp.quantize.kmeans`).  A kept exact zero
        is an ordinary kept value.  The codebook keeps only the centroids
        in use (sorted, at most 2**bits).  When nothing is kept the codebook
        is empty and the streams hold no symbols.
    """
    as_float_array("w", w)
    check_sparsity(sparsity)
    check_int("bits", bits, lo=1, hi=16)
    check_choice("init", init, INITS)
    if index_coding is not None:
        check_choice("index_coding", index_coding, INDEX_CODINGS)
    if init in ("random", "random_tfmot", "kmeans++"):
        raise ParameterError(f"init={init!r} needs an rng; deep_compress uses deterministic "
                             "inits only (linear, density, density_tfmot, optimal)")
    mask = magnitude(w, sparsity=sparsity)
    kept = np.ascontiguousarray(w[mask])
    if kept.size:
        q = kmeans(kept, bits=bits, init=init, max_iter=max_iter)
        # Store only the centroids some kept weight uses (k-means leaves empty
        # cells when a layer has fewer distinct kept values than k): codes are
        # renumbered in ascending order, so every decoded value is unchanged.
        used, codes = np.unique(q.codes.reshape(-1), return_inverse=True)
        codebook = np.asarray(q.codebook)[used]
    else:
        codes, codebook = np.zeros(0, dtype=np.uint8), np.zeros(0, dtype=w.dtype)
    return DeepCompressed.encode(mask, codes, codebook, index_bits=index_bits,
                                 variant=variant, huffman=huffman, index_coding=index_coding)


def _per_layer(value, path, kind, default):
    """Option value for one layer: scalar, {path: v} / {kind: v} dict, or default."""
    if value is None:
        return default[kind] if isinstance(default, dict) else default
    if isinstance(value, dict):
        if path in value:
            return value[path]
        if kind in value:
            return value[kind]
        return default[kind] if isinstance(default, dict) else default
    return value


def deep_compress(model, *, sparsity=None, bits=None, huffman=True, index_bits=None,
                  variant=DEFAULT_VARIANT, init="linear", max_iter=300, kinds=_KINDS,
                  progress=False, index_coding=None):
    """Deep Compression of a model's dense, conv (and recurrent) weights, no retraining.

    Parameters
    ----------
    model : refcomp.Model
    sparsity : float in [0, 1] or dict, optional
        Fraction of each layer's weights pruned.  A dict maps a layer path
        (``"0"``, ``"3/0"``) or a kind (``"dense"``, ``"conv2d"``) to a
        value; missing layers take the default :data:`DEFAULT_SPARSITY` (0.9).
    bits : int in [1, 16] or dict, optional
        k-means bits per layer; default :data:`DEFAULT_BITS` (8 conv, 5 dense,
        the paper's AlexNet setting; 5 for recurrent matrices).
    huffman : bool, default True
        Huffman-code the value and index streams (the paper's third stage);
        False: fixed-width packing.
    index_bits : int in [1, 16] or dict, optional
        Relative-index width; default 8 for conv, 5 for dense and recurrent
        (paper §2).
    index_coding : {"huffman", "fixed", "universal", "webgraph"} or None
        Coding of the index stream; None (default): the same as the value
        stream (Huffman, the paper's choice, unless ``huffman=False``).
        "universal": per weight, the cheapest universal code
        (Elias gamma/delta, Rice k=0..62, zeta_k k=1..8, chosen by
        :func:`refcomp.coding.choose_gap_code`; codewords of at most 64
        bits) of the relative-index codes, fillers included; the code and
        its parameter are recorded in the stream header
        (:attr:`DeepCompressed.index_code`).  "webgraph": the Boldi-Vigna
        coding of each weight's kept positions, rows = the weight's first
        axis (:mod:`refcomp.coding.webgraph`, window 7, intervals of at least
        4, zeta_3), which replaces the relative indices.
    variant : {"reserved", "fig2"}
        Relative-index filler rule (see :mod:`refcomp.sparse.relative`).
    init : str
        k-means initialisation; "linear" (the paper's choice).
    max_iter : int
        Lloyd iterations per layer.
    kinds : tuple of str
        Layer kinds compressed: ``W`` of "dense" and "conv2d", ``W_ih`` and
        ``W_hh`` of "lstm", "gru", "mgu", "simple_rnn" (an extension: the
        paper has no recurrent layers; they take the fully connected
        defaults).  Biases and all other weights stay as they are (the
        paper compresses weights only).  Default: all of these kinds.
    progress : bool or None
        Progress bar on stderr: True, False (default), None = when stderr is
        a terminal.

    Returns
    -------
    (Model, SizeReport)
        The new model (the chosen weights of the chosen layers replaced by
        :class:`DeepCompressed`; everything else shared with ``model``) and
        its :func:`size_report`.  Each layer is independent
        (:func:`compress_weight`), so the result does not depend on layer
        order.  The model runs as is (``model(x)`` decodes the weights) and
        saves/loads bit-exactly with :func:`refcomp.save` / :func:`refcomp.load`.

    Notes
    -----
    Retraining (pruning with retraining, centroid fine-tuning) is out of
    scope: accuracy is that of the one-shot compressed weights.
    """
    from ..model import Model, materialize
    if not isinstance(model, Model):
        raise ParameterError(f"model must be a refcomp.Model, got {type(model).__name__}")
    check_choice("variant", variant, VARIANTS)
    if index_coding is not None:
        check_choice("index_coding", index_coding, INDEX_CODINGS)
    for k in kinds:
        check_choice("kinds", k, _KINDS)
    targets = [(p, l, n) for p, l in model.named_layers() if l.kind in kinds
               for n in _WEIGHTS[l.kind] if n in l.weights]
    known = {p for p, _, _ in targets} | set(kinds)
    for opt, value in (("sparsity", sparsity), ("bits", bits), ("index_bits", index_bits)):
        if isinstance(value, dict) and not set(value) <= known:
            raise ParameterError(f"{opt}: keys {sorted(set(value) - known, key=str)} are "
                                 f"neither compressed layer paths nor kinds "
                                 f"(paths {sorted({p for p, _, _ in targets})}, kinds "
                                 f"{list(kinds)})")
    bar = Progress(len(targets), "deep compress", enabled=progress)
    updates = {}
    for path, layer, wname in targets:
        w = materialize(layer.weights[wname])
        updates[(path, wname)] = compress_weight(
            w, sparsity=_per_layer(sparsity, path, layer.kind, DEFAULT_SPARSITY),
            bits=_per_layer(bits, path, layer.kind, DEFAULT_BITS),
            index_bits=_per_layer(index_bits, path, layer.kind, _INDEX_BITS),
            huffman=huffman, variant=variant, init=init, max_iter=max_iter,
            index_coding=index_coding)
        bar.update()
    out = model.replace_weights(updates) if updates else model.copy()
    return out, size_report(out)
