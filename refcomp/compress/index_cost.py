"""What the connectivity of a pruned weight costs under each index coding:
:func:`index_costs` (bits per non-zero, headers included).

The codings compared, each on the kept positions of a boolean mask:

* ``bitmap``: one bit per entry (:class:`refcomp.prune.Masked`);
* ``relative+huffman``: Deep Compression's relative indices (Han et al.
  2016 §2, :func:`refcomp.sparse.encode_relative`, variant "reserved",
  ``index_bits`` wide, fillers included) as a canonical Huffman stream
  (:func:`refcomp.coding.huffman_encode`), the index stream of
  :class:`refcomp.compress.DeepCompressed` by default;
* ``gap``: the flat C-order positions as gaps (the first position, then
  ``p_i - p_{i-1} - 1``) in their cheapest universal code
  (:func:`refcomp.coding.choose_gap_code`, an
  :func:`refcomp.coding.encode_ints` stream);
* ``webgraph``: the Boldi-Vigna coding of the (shape[0], rest) rows
  (:func:`refcomp.coding.webgraph.webgraph_encode_mask`, its parameters).

Every figure is the exact byte length of the stream that coding writes,
times 8 (headers and final padding included), so the numbers are what a
file would hold; for the bitmap, ``mask.size`` bits.
"""

import numpy as np

from .._errors import DTypeError
from .._validate import check_int, describe
from ..coding import choose_gap_code, encode_ints, huffman_encode
from ..coding.webgraph import webgraph_encode_mask
from ..sparse.relative import encode_relative

__all__ = ["index_costs", "CODINGS"]

CODINGS = ("bitmap", "relative+huffman", "gap", "webgraph")


def index_costs(mask, *, index_bits=None, webgraph_params=None):
    """Exact index bits of ``mask`` under each coding of the module docstring.

    Parameters
    ----------
    mask : ndarray of bool, ndim >= 1
    index_bits : int in [1, 16], optional
        Relative-index width; default the paper's 8 for a 4-D (conv) mask, 5
        otherwise (Han et al. §2).
    webgraph_params : dict, optional
        ``window``, ``min_interval``, ``zeta_k``, ``origin`` (default BVGraph's).

    Returns
    -------
    dict
        ``{"nnz": int, "bits": {coding: int}, "bits_per_nonzero": {coding: float}}``
        (``bits / nnz`` as one float64 division; ``inf`` when nnz is 0),
        plus ``"gap_code"``: the universal code chosen, e.g. ``"zeta(k=2)"``.
    """
    if not isinstance(mask, np.ndarray) or mask.dtype != np.bool_ or mask.ndim == 0:
        raise DTypeError(f"mask must be a bool ndarray with at least one axis, got "
                         f"{describe(mask)}")
    if index_bits is None:
        index_bits = 8 if mask.ndim == 4 else 5
    index_bits = check_int("index_bits", index_bits, lo=1, hi=16)
    flat = mask.reshape(-1)
    nnz = int(np.count_nonzero(flat))
    rel = encode_relative(flat, index_bits=index_bits, variant="reserved")
    pos = np.flatnonzero(flat).astype(np.int64)
    gaps = np.diff(pos, prepend=-1) - 1 if pos.size else pos
    code, k, _ = choose_gap_code(gaps, max_length=64)
    bits = {"bitmap": int(mask.size),
            "relative+huffman": 8 * len(huffman_encode(rel.diffs.astype(np.uint16))),
            "gap": 8 * len(encode_ints(gaps, code=code, k=k)),
            "webgraph": 8 * len(webgraph_encode_mask(mask, **(webgraph_params or {})))}
    per = {c: (b / nnz if nnz else float("inf")) for c, b in bits.items()}
    label = code if code in ("gamma", "delta") else f"{code}(k={k})"
    return {"nnz": nnz, "bits": bits, "bits_per_nonzero": per, "gap_code": label}
