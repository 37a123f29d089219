"""Deep Compression weight sharing: one 1-D k-means codebook per layer (Han et al. 2016, §3)."""

import numpy as np

from .._errors import ParameterError
from .._validate import check_int
from ._quantized import Quantized, narrowest_code_dtype
from .kmeans import MAX_BITS, kmeans

__all__ = ["share_weights", "SHARED_KINDS"]

#: Layer kinds whose weight "W" is shared.
SHARED_KINDS = ("dense", "conv2d")


def _share_one(W, bits, init, algorithm, max_iter, rng):
    zero = W == 0
    n_zero = int(np.count_nonzero(zero))
    if n_zero == 0:
        q = kmeans(W, bits=bits, init=init, algorithm=algorithm, max_iter=max_iter, rng=rng)
        return Quantized(q.codes, bits=bits, method="kmeans_shared", decoder="codebook",
                         params=dict(q.params, zero_code=-1), dtype=W.dtype,
                         info=dict(q.info, n_zero=0))
    if n_zero == W.size:
        codes = np.zeros(W.shape, np.uint8)
        return Quantized(codes, bits=bits, method="kmeans_shared", decoder="codebook",
                         params={"codebook": np.zeros(1, W.dtype), "init": init,
                                 "algorithm": algorithm, "max_iter": max_iter, "zero_code": 0},
                         dtype=W.dtype, info={"sse": 0.0, "n_zero": n_zero, "k": 1})
    q = kmeans(W[~zero], k=(1 << bits) - 1, bits=bits, init=init, algorithm=algorithm,
               max_iter=max_iter, rng=rng)
    cb = q.codebook
    # The zero code goes before any centroid equal to 0.0, keeping the codebook sorted.
    zc = int(np.searchsorted(cb, 0.0, side="left"))
    codebook = np.concatenate([cb[:zc], np.zeros(1, W.dtype), cb[zc:]])
    nz_codes = q.codes.astype(np.int64)
    codes = np.full(W.shape, zc, np.int64)
    codes[~zero] = nz_codes + (nz_codes >= zc)
    codes = codes.astype(narrowest_code_dtype(0, codebook.size - 1))
    params = dict(q.params, codebook=codebook, zero_code=zc)
    return Quantized(codes, bits=bits, method="kmeans_shared", decoder="codebook",
                     params=params, dtype=W.dtype, info=dict(q.info, n_zero=n_zero))


def share_weights(model, bits, *, init="linear", layers=None, algorithm="lloyd",
                  max_iter=300, rng=None):
    """Replace the ``W`` of every dense / conv2d layer by a per-layer k-means codebook.

    Deep Compression (Han, Mao & Dally, ICLR 2016, §3, FACTS.md §7.1):
    weights are shared within a layer, never across layers, by 1-D k-means
    minimising Σ|w − c|² on the non-pruned weights; "linear" initialisation
    is the default because the paper finds it best.

    Parameters
    ----------
    model : refcomp.Model
    bits : int in [1, 16]
        Code width; a layer gets at most ``2**bits`` codebook entries.
    init, algorithm, max_iter, rng :
        Passed to :func:`refcomp.quantize.kmeans` for every layer (the same
        ``rng`` object is consumed layer after layer in ``named_layers()``
        order).
    layers : iterable of str, optional
        Paths (as in ``model.named_layers()``, e.g. ``"3/0"``) or layer
        names to share; default every dense / conv2d layer.  Unknown
        entries are an error.

    Returns
    -------
    refcomp.Model
        A new model (``model.replace_weights``); the shared ``W`` are
        :class:`Quantized` with ``method="kmeans_shared"``, ``decoder=
        "codebook"``, ``dtype`` of the original weight; other weights are the
        same objects.

    Notes
    -----
    Pruned layers (any ``W == 0``, −0.0 included): the zeros are not
    clustered.  The non-zero weights get ``2**bits − 1`` centroids by
    :func:`kmeans`, and one code holds exactly 0.0 (``params["zero_code"]``,
    inserted before any centroid equal to 0.0 so the codebook stays
    sorted).  Every pruned weight decodes to +0.0 exactly, so the sparsity
    pattern is preserved; a −0.0 weight decodes to +0.0.  A non-zero weight
    may still decode to 0.0 if its cell mean rounds to 0.0.  Layers without
    zeros use all ``2**bits`` codes (``zero_code = -1``); an all-zero layer
    gets the one-entry codebook [0.0].  ``info["sse"]`` is the SSE of the
    non-zero weights (pruned weights contribute exactly 0).

    Already-compressed weights (not ndarrays) are refused rather than
    decoded and quantized again.
    """
    bits = check_int("bits", bits, lo=1, hi=MAX_BITS)
    wanted = None if layers is None else set(layers)
    seen = set()
    mapping = {}
    for path, layer in model.named_layers():
        if layer.kind not in SHARED_KINDS:
            continue
        if wanted is not None:
            hit = {path, layer.name} & wanted
            if not hit:
                continue
            seen |= hit
        W = layer.weights["W"]
        if not isinstance(W, np.ndarray):
            raise ParameterError(f"layer {path} ({layer.name!r}): W is already compressed "
                                 f"({type(W).__name__}); share_weights needs an ndarray")
        mapping[(path, "W")] = _share_one(W, bits, init, algorithm, max_iter, rng)
    if wanted is not None and wanted - seen:
        raise ParameterError(f"share_weights: no dense/conv2d layer with path or name in "
                             f"{sorted(wanted - seen)}")
    return model.replace_weights(mapping)
