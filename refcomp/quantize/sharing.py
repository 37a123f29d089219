"""Deep Compression weight sharing (Han et al. 2016, §3): one k-means codebook per weight array."""

import numpy as np

from .._errors import ParameterError
from .._validate import check_int
from ._quantized import Quantized, narrowest_code_dtype
from .kmeans import MAX_BITS, kmeans

__all__ = ["share_weights", "SHARED_KINDS", "SHARED_WEIGHTS"]

#: Layer kind -> the weight arrays that are shared (each with its own codebook,
#: in this order); biases, batch-norm statistics and other weights are left alone.
SHARED_WEIGHTS = {
    "dense": ("W",),
    "conv2d": ("W",),
    "lstm": ("W_ih", "W_hh"),
    "gru": ("W_ih", "W_hh"),
    "mgu": ("W_ih", "W_hh"),
    "simple_rnn": ("W_ih", "W_hh"),
}
#: Layer kinds with shared weights.
SHARED_KINDS = tuple(SHARED_WEIGHTS)


def _share_one(W, bits, init, algorithm, max_iter, rng, pruned=None):
    """Shared :class:`Quantized` of the ndarray ``W``; ``pruned`` (bool, W's
    shape, optional) marks entries that must decode to exactly +0.0 besides
    the zeros of ``W``."""
    zero = W == 0
    if pruned is not None:
        zero |= pruned
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
    """Replace the weight matrices of every dense / conv2d / recurrent layer by k-means codebooks.

    Deep Compression (Han, Mao & Dally, ICLR 2016, §3, FACTS.md §7.1):
    weights are shared within a layer, never across layers, by 1-D k-means
    minimising Σ|w − c|² on the non-pruned weights; "linear" initialisation
    is the default because the paper finds it best.  Shared arrays (see
    :data:`SHARED_WEIGHTS`): ``W`` of dense and conv2d layers; ``W_ih`` and
    ``W_hh`` of lstm, gru, mgu and simple_rnn layers, each with its own
    codebook (the input and recurrent matrices have different ranges).
    Biases and all other weights are left untouched.

    Parameters
    ----------
    model : refcomp.Model
    bits : int in [1, 16]
        Code width; a layer gets at most ``2**bits`` codebook entries.
    init, algorithm, max_iter, rng :
        Passed to :func:`refcomp.quantize.kmeans` for every shared array
        (the same ``rng`` object is consumed layer after layer in
        ``named_layers()`` order, ``W_ih`` before ``W_hh`` within a
        recurrent layer).
    layers : iterable of str, optional
        Paths (as in ``model.named_layers()``, e.g. ``"3/0"``) or layer
        names to share; default every layer of a kind in
        :data:`SHARED_KINDS`.  Unknown entries, and entries naming a layer
        of another kind, are an error.

    Returns
    -------
    refcomp.Model
        A new model (``model.replace_weights``); the shared arrays are
        :class:`Quantized` with ``method="kmeans_shared"``, ``decoder=
        "codebook"``, ``dtype`` of the original weight; other weights are the
        same objects.

    Notes
    -----
    Pruned weights: an ndarray's zeros, and for a
    :class:`refcomp.prune.Masked` weight (from
    :func:`refcomp.prune.apply_masks`) the entries outside its mask plus
    any kept value equal to 0, so a ``Masked`` weight gives the same result
    as its dense array (``apply_masks(..., masked=False)``).  The result is
    a plain :class:`Quantized`: the mask is not kept as such, but every
    pruned entry has the code ``params["zero_code"]`` and no other entry
    has it.

    Pruned layers (any such zero, −0.0 included): the zeros are not
    clustered.  The non-zero weights get ``2**bits − 1`` centroids by
    :func:`kmeans`, and one code holds exactly 0.0 (``params["zero_code"]``,
    inserted before any centroid equal to 0.0 so the codebook stays
    sorted).  Every pruned weight decodes to +0.0 exactly, so the sparsity
    pattern is preserved; a −0.0 weight decodes to +0.0.  A non-zero weight
    may still decode to 0.0 if its cell mean rounds to 0.0.  Layers without
    zeros use all ``2**bits`` codes (``zero_code = -1``); an all-zero layer
    gets the one-entry codebook [0.0].  ``info["sse"]`` is the SSE of the
    non-zero weights (pruned weights contribute exactly 0).

    Already-compressed weights (other than ``Masked``) are refused rather
    than decoded and quantized again.
    """
    from ..prune.masked import Masked      # deferred: refcomp.prune imports refcomp.io
    bits = check_int("bits", bits, lo=1, hi=MAX_BITS)
    wanted = None if layers is None else set(layers)
    seen = set()
    mapping = {}
    for path, layer in model.named_layers():
        if layer.kind not in SHARED_WEIGHTS:
            continue
        if wanted is not None:
            hit = {path, layer.name} & wanted
            if not hit:
                continue
            seen |= hit
        for wname in SHARED_WEIGHTS[layer.kind]:
            W = layer.weights[wname]
            pruned = None
            if isinstance(W, Masked):
                W, pruned = W.values, ~W.mask
            elif not isinstance(W, np.ndarray):
                raise ParameterError(f"layer {path} ({layer.name!r}): {wname} is already "
                                     f"compressed ({type(W).__name__}); share_weights needs an "
                                     "ndarray or a Masked weight")
            mapping[(path, wname)] = _share_one(W, bits, init, algorithm, max_iter, rng, pruned)
    if wanted is not None and wanted - seen:
        raise ParameterError(f"share_weights: no layer of a shared kind "
                             f"({', '.join(SHARED_KINDS)}) with path or name in "
                             f"{sorted(wanted - seen)}")
    return model.replace_weights(mapping)
