"""WebGraph-style coding of a sparsity pattern (Boldi & Vigna, "The WebGraph
Framework I: Compression Techniques", WWW 2004, §3; seed 001).

The kept positions of a pruned layer form a bipartite graph: row x of the
(rows, cols) matrix view is the adjacency list of x, its sorted column
indices.  Each list is coded as in BVGraph:

* **reference compression**: a row may copy from the row ``x - r`` of a
  window of the ``window`` previous rows, by *copy blocks*: alternating
  copy/skip run lengths over the reference list, the first a copy block
  (possibly empty), the last implicit;
* **intervals**: the maximal runs of at least ``min_interval`` consecutive
  columns among the remaining (extra) successors, as (left end, length);
* **residuals**: the other extras, as gaps, in zeta_k codes.

Code words (gamma = zeta_1, zeta_k, MSB-first bit order) are those of
:mod:`refcomp.coding.universal`; the per-row layout and the encoder's choices
(the cheapest reference, ties to the smallest; reference 0 = none) are in
:mod:`refcomp.coding._webgraph_kernels`.  Defaults are BVGraph's: window 7,
minimum interval length 4, zeta_3.  Deviation from WebGraph, by name: a
bipartite layer's row index says nothing about its columns, so the first
residual and the first interval start are coded from column 0
(``origin="zero"``, default) rather than WebGraph's ``int2nat(v - x)``
relative to the node (``origin="node"``, for square graphs).  No maximum
reference chain: rows are decoded in order, so chains cost nothing.

Stream (big-endian integers):

====== ===== ==================================================
offset size  field
====== ===== ==================================================
0      2     magic ``b"WG"``
2      1     version 1
3      1     origin: 0 zero, 1 node
4      2     window (0..65535; 0 = no references)
6      2     min_interval (0 = no intervals, else 2..65535)
8      1     zeta k (1..16)
9      8     rows
17     8     cols
25     8     nnz (total successors)
33     ...   the rows' code words, zero-padded to a byte
====== ===== ==================================================

Decoding checks every field: a declared size is refused before anything is
allocated (rows above the payload's bit count, since every row costs at
least one bit; nnz above ``rows * cols`` or ``max_nnz``), every code word is
bounded by the buffer, every value by its range (degree <= cols, reference
<= min(window, x), blocks inside the reference list, columns in [0, cols),
strictly increasing merged rows, total nnz), and trailing bytes or non-zero
padding are refused: any corruption raises :class:`refcomp.DecodeError` in
time linear in the stream and the declared sizes, never a hang.  Only
``rows`` sizes an allocation up front (one int64 per row, at most one row per
payload bit); ``nnz`` and ``cols`` are upper bounds that are checked but never
allocated: the entry buffers grow (doubling, capped at nnz) as entries are
decoded, so a stream that lies about its sizes fails after allocating about
twice what it really holds.  A valid stream may still expand a lot, since an
interval or a copied block costs O(log length) bits: pass ``max_nnz`` for
untrusted input.
"""

import numpy as np

from .._errors import DecodeError, DTypeError, ParameterError, ShapeError
from .._validate import check_int, describe
from . import _webgraph_kernels as _k
from . import _webgraph_twins as _t

__all__ = ["webgraph_encode", "webgraph_decode", "webgraph_encode_mask", "webgraph_decode_mask",
           "webgraph_sizes", "webgraph_params", "HEADER_BYTES", "ORIGINS", "DEFAULTS"]

HEADER_BYTES = 33
ORIGINS = ("zero", "node")
#: BVGraph's defaults: window 7, minimum interval length 4, zeta_3.
DEFAULTS = {"window": 7, "min_interval": 4, "zeta_k": 3}
_MAGIC = b"WG"
_MAX_NNZ = 1 << 31
_MAX_DIM = 1 << 62
_STATUS = {_k.TRUNCATED: "bit stream truncated", _k.BAD: "inconsistent value",
           _k.TOO_LARGE: "code word too large"}


def _check_params(window, min_interval, zeta_k, origin):
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 0:
        raise ParameterError(f"window must be an integer >= 0 (0: no reference "
                             f"compression), got {window!r}")
    check_int("window", window, lo=0, hi=65535)
    m = check_int("min_interval", min_interval, lo=0, hi=65535)
    if m == 1:
        raise ParameterError("min_interval must be 0 (no intervals) or >= 2, got 1")
    check_int("zeta_k", zeta_k, lo=1, hi=16)
    if origin not in ORIGINS:
        raise ParameterError(f"origin must be one of {ORIGINS}, got {origin!r}")
    return int(window), m, int(zeta_k), ORIGINS.index(origin)


def _check_csr(indptr, indices, n_cols):
    for name, a in (("indptr", indptr), ("indices", indices)):
        if not isinstance(a, np.ndarray) or a.ndim != 1 or a.dtype.kind not in "iu":
            raise DTypeError(f"{name} must be a 1-D integer ndarray, got {describe(a)}")
    n_cols = check_int("n_cols", n_cols, lo=0, hi=_MAX_DIM)
    if indptr.size < 1 or int(indptr[0]) != 0 or int(indptr[-1]) != indices.size \
            or np.any(np.diff(indptr.astype(np.int64)) < 0):
        raise ShapeError(f"indptr must start at 0, never decrease and end at len(indices)="
                         f"{indices.size}, got {describe(indptr)}")
    ind = indices.astype(np.int64)
    if ind.size:
        if int(ind.min()) < 0 or int(ind.max()) >= n_cols:
            raise ParameterError(f"indices must lie in [0, {n_cols})")
        step = np.diff(ind)
        starts = np.zeros(ind.size, dtype=bool)
        inner = indptr[1:-1].astype(np.int64)
        starts[inner[inner < ind.size]] = True
        if np.any((step <= 0) & ~starts[1:]):
            raise ParameterError("indices must increase strictly within each row")
    return indptr.astype(np.int64), ind, n_cols


def webgraph_encode(indptr, indices, n_cols, *, window=7, min_interval=4, zeta_k=3,
                    origin="zero", _twin=False):
    """Encode adjacency lists (CSR rows) with the Boldi-Vigna scheme (module doc).

    Parameters
    ----------
    indptr : 1-D integer ndarray (rows + 1,)
        Row r holds ``indices[indptr[r]:indptr[r+1]]``.
    indices : 1-D integer ndarray (nnz,)
        Columns, strictly increasing within each row, in [0, n_cols).
    n_cols : int >= 0
    window : int >= 0
        W: a row may copy from one of the W previous rows (0: none).
    min_interval : int, 0 or >= 2
        L_min: shortest run of consecutive columns coded as an interval (0: none).
    zeta_k : int in [1, 16]
        k of the residual gaps' zeta code.
    origin : {"zero", "node"}
        Reference point of the first residual and interval (module doc).

    Returns
    -------
    bytes : the 33-byte header, then the payload.  Exact integer arithmetic;
        the same bytes on every run (``_twin=True``: the Python transcription).
    """
    w, m, k, o = _check_params(window, min_interval, zeta_k, origin)
    indptr, ind, n_cols = _check_csr(indptr, indices, n_cols)
    payload, _ = (_t.encode_twin if _twin else _k.encode_kernel)(indptr, ind, w, m, k, o)
    head = (_MAGIC + bytes([1, o]) + w.to_bytes(2, "big") + m.to_bytes(2, "big") + bytes([k])
            + (indptr.size - 1).to_bytes(8, "big") + n_cols.to_bytes(8, "big")
            + ind.size.to_bytes(8, "big"))
    return head + payload.tobytes()


def webgraph_params(data):
    """Header fields of a stream: dict with window, min_interval, zeta_k, origin,
    rows, cols, nnz (no payload decoding; DecodeError for a bad header)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise DecodeError(f"data must be bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) < HEADER_BYTES or data[:2] != _MAGIC:
        raise DecodeError("not a WebGraph stream (bad magic or short header)")
    if data[2] != 1:
        raise DecodeError(f"unsupported WebGraph stream version {data[2]}")
    if data[3] >= len(ORIGINS):
        raise DecodeError(f"unknown origin code {data[3]}")
    p = {"origin": ORIGINS[data[3]], "window": int.from_bytes(data[4:6], "big"),
         "min_interval": int.from_bytes(data[6:8], "big"), "zeta_k": data[8],
         "rows": int.from_bytes(data[9:17], "big"), "cols": int.from_bytes(data[17:25], "big"),
         "nnz": int.from_bytes(data[25:33], "big")}
    if p["min_interval"] == 1 or not 1 <= p["zeta_k"] <= 16:
        raise DecodeError(f"invalid parameters min_interval={p['min_interval']}, "
                          f"zeta_k={p['zeta_k']}")
    return p


def _decode(data, max_nnz, twin):
    p = webgraph_params(data)
    payload = np.frombuffer(bytes(data), dtype=np.uint8, offset=HEADER_BYTES)
    rows, cols, nnz = p["rows"], p["cols"], p["nnz"]
    limit = _MAX_NNZ if max_nnz is None else min(_MAX_NNZ, int(max_nnz))
    if rows > 8 * payload.size:
        raise DecodeError(f"stream declares {rows} rows but holds {8 * payload.size} payload "
                          "bits (at least one per row)")
    if cols > _MAX_DIM or nnz > rows * cols or nnz > limit:
        raise DecodeError(f"stream declares {nnz} entries in a {rows} x {cols} pattern "
                          f"(at most {min(rows * cols, limit)} allowed)")
    st, end, row, indptr, indices = (_t.decode_twin if twin else _k.decode_kernel)(
        payload, rows, cols, nnz, p["window"], p["min_interval"], p["zeta_k"],
        ORIGINS.index(p["origin"]))
    if st != _k.OK:
        raise DecodeError(f"WebGraph stream: {_STATUS.get(st, 'corrupt')} at row {row} "
                          f"(bit {end} of {8 * payload.size})")
    total = 8 * payload.size
    if total - end >= 8:
        raise DecodeError(f"{(total - end) // 8} trailing bytes after the last row")
    if end < total and int(payload[-1]) & ((1 << (total - end)) - 1):
        raise DecodeError("non-zero padding bits after the last row")
    return indptr, indices, cols, end


def webgraph_decode(data, *, max_nnz=None, _twin=False):
    """Decode :func:`webgraph_encode` output.

    Parameters
    ----------
    data : bytes, bytearray or memoryview (anything else: DecodeError)
    max_nnz : int, optional
        Refuse streams declaring more entries (also capped at 2**31), before
        allocating.

    Returns
    -------
    (indptr, indices, n_cols) : int64 arrays of the rows, as encoded.

    Raises
    ------
    DecodeError
        Any malformed or inconsistent stream (module docstring).  Memory is
        O(rows + entries actually decoded): rows is checked against the payload
        size before allocating, and the declared nnz is never allocated up front.
    """
    indptr, indices, cols, _ = _decode(data, max_nnz, _twin)
    return indptr, indices, cols


def webgraph_sizes(data):
    """``(header_bits, payload_bits)`` of a valid stream (264 header bits; the
    final padding is ``8 * len(data) - header - payload``)."""
    return 8 * HEADER_BYTES, _decode(data, None, False)[3]


def _mask_rows(mask):
    if not isinstance(mask, np.ndarray) or mask.dtype != np.bool_:
        raise DTypeError(f"mask must be a numpy.ndarray of dtype bool, got {describe(mask)}")
    if mask.ndim == 0:
        raise ShapeError(f"mask must have at least one dimension, got {describe(mask)}")
    return mask.reshape(1, -1) if mask.ndim == 1 else mask.reshape(mask.shape[0], -1)


def webgraph_encode_mask(mask, **kwargs):
    """:func:`webgraph_encode` of a boolean keep-mask: rows are ``mask.shape[0]``
    and columns the other axes flattened in C order (a 1-D mask is one row);
    keyword arguments as :func:`webgraph_encode`."""
    m = _mask_rows(mask)
    rows, cols = np.nonzero(m)
    indptr = np.zeros(m.shape[0] + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=m.shape[0]), out=indptr[1:])
    return webgraph_encode(indptr, cols.astype(np.int64), m.shape[1], **kwargs)


def webgraph_decode_mask(data, *, shape=None, max_elements=1 << 31):
    """Boolean mask of a stream: (rows, cols), or ``shape`` (same number of
    elements, C order).  DecodeError when ``rows * cols`` exceeds
    ``max_elements`` or disagrees with ``shape``, before allocating; the
    entries are decoded (memory as :func:`webgraph_decode`, so a stream lying
    about nnz fails there) before the ``rows * cols`` mask is allocated."""
    p = webgraph_params(data)
    n = p["rows"] * p["cols"]
    if n > max_elements:
        raise DecodeError(f"stream declares a {p['rows']} x {p['cols']} pattern, more than "
                          f"{max_elements} elements")
    if shape is not None and int(np.prod(shape, dtype=object)) != n:
        raise DecodeError(f"stream holds a {p['rows']} x {p['cols']} pattern, not {shape}")
    indptr, indices, cols = webgraph_decode(data)
    m = np.zeros((p["rows"], cols), dtype=bool)
    m[np.repeat(np.arange(p["rows"]), np.diff(indptr)), indices] = True
    return m if shape is None else m.reshape(shape)
