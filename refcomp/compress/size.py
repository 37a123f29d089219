"""Exact size accounting of a (compressed) model: :func:`size_report`.

Compression ratio (Resmerita et al., seed 002, eq. (19))::

    tau = initial size / size after compression

with both sizes in bits.  ``tau_i`` of layer i divides the layer's original
bits by its compressed bits (weights and biases together, theta_i of seed
002 eq. (7)); the network ``tau`` divides the sums over all layers (layers
left uncompressed count the same on both sides).  Table 4 of seed 002 also
gives, per layer, the network tau when *only* that layer is compressed:
``tau_net_i = sum_orig / (sum_orig - orig_i + comp_i)`` (column
``tau_net_i``).  All ratios are :func:`refcomp.metrics.compression_ratio`
on Python ints (one float64 division, correctly rounded).

Original size: every element at its dtype's width (32 bits per float32,
64 per float64), as seed 002 Table 3 counts float32 parameters.
Compressed size: the bits each representation actually stores, split into

* ``values``: the value stream (raw values, quantized codes, Huffman
  payload of the shared-value symbols);
* ``index``: where the values go (bitmap, CSR indices + indptr, relative
  index payload);
* ``codebook``: decoding tables (k-means codebook, quantizer parameters);
* ``headers``: stream headers written with the data (Huffman alphabets and
  code lengths, the 12-byte header of a universal-code stream) and the
  final-byte padding of each stream.

Each weight also names its index coding (``index_coding``: "huffman",
"fixed", the universal code of a Deep Compression index stream such as
"rice(k=3)", the WebGraph coding with its parameters such as
"webgraph(W=7,L=4,k=3)", "bitmap" for Masked, "csr"/"csc"; None without an
index), and
each layer lists them (``index_codings``, ``"W:rice(k=3)"``), next to the
``index`` bits they cost.

HDF5 metadata (attributes, chunk headers, checksums) is not counted.

Entropy bound: for a stream of n symbols with counts c_s, the empirical
Shannon bound is ``n*H = sum_s c_s * log2(n / c_s)`` bits (no order-0 code
spends less on that stream; Huffman spends less than ``n*H + n``).  Each
term is a float64 ``c * log2(n / c)`` (``n / c`` one rounding, ``log2`` from
libm) and the sum is ``math.fsum`` in ascending symbol order.  Symbols are
the stored codes; raw float values count as their bit patterns.
"""

import dataclasses
import math

import numpy as np

from .._errors import ParameterError
from ..metrics import compression_ratio

__all__ = ["size_report", "SizeReport", "WeightSize", "LayerSize", "entropy_bits",
           "weight_size"]


def entropy_bits(symbols):
    """Empirical order-0 Shannon bound ``sum_s c_s*log2(n/c_s)`` of a stream, in bits.

    Parameters
    ----------
    symbols : ndarray of integers (or bools), any shape (flattened)

    Returns
    -------
    float (0.0 for an empty stream or a single distinct symbol).  Arithmetic
    in the module docstring.
    """
    flat = np.asarray(symbols).reshape(-1)
    n = flat.size
    if n == 0:
        return 0.0
    _, counts = np.unique(flat, return_counts=True)
    return math.fsum(int(c) * math.log2(n / int(c)) for c in counts)


def _bit_patterns(a):
    """Unsigned view of float values (so -0.0 and NaN payloads are symbols too)."""
    a = np.ascontiguousarray(a)
    if a.dtype.kind == "f":
        return a.view(np.dtype(f"u{a.dtype.itemsize}"))
    return a


@dataclasses.dataclass(frozen=True)
class _Sizes:
    """Bit counts shared by weights and layers (entropy bounds None when n/a)."""
    n: int
    nnz: int
    original_bits: int
    values_bits: int
    index_bits: int
    codebook_bits: int
    header_bits: int
    values_entropy_bits: object
    index_entropy_bits: object

    @property
    def compressed_bits(self):
        return self.values_bits + self.index_bits + self.codebook_bits + self.header_bits

    @property
    def bits_per_weight(self):
        return self.compressed_bits / self.n if self.n else 0.0

    @property
    def bits_per_nonzero(self):
        return self.compressed_bits / self.nnz if self.nnz else math.inf

    @property
    def tau(self):
        return compression_ratio(self.original_bits, self.compressed_bits) \
            if self.compressed_bits else math.inf

    def as_dict(self):
        d = dataclasses.asdict(self)
        d.update(compressed_bits=self.compressed_bits, bits_per_weight=self.bits_per_weight,
                 bits_per_nonzero=self.bits_per_nonzero, tau=self.tau)
        return d


_SUMMED = ("n", "nnz", "original_bits", "values_bits", "index_bits", "codebook_bits",
           "header_bits")


@dataclasses.dataclass(frozen=True)
class WeightSize(_Sizes):
    """Size of one weight, in bits (fields of the base: n, nnz, original_bits,
    values_bits, index_bits, codebook_bits, header_bits, values_entropy_bits,
    index_entropy_bits; properties compressed_bits, bits_per_weight,
    bits_per_nonzero, tau).  ``index_coding``: str or None (module
    docstring)."""
    path: str
    kind: str
    weight: str
    encoding: str
    dtype: str
    index_coding: object = None


@dataclasses.dataclass(frozen=True)
class LayerSize(_Sizes):
    """Sums over the weights of one layer; ``tau`` is tau_i and ``tau_net`` the
    network tau when only this layer is compressed (seed 002 Table 4).
    ``index_codings``: ``"name:coding"`` of each weight with an index,
    comma-separated ("" when none)."""
    path: str
    kind: str
    encodings: str
    tau_net: float
    index_codings: str = ""


def _sum_optional(values):
    vals = [v for v in values if v is not None]
    return math.fsum(vals) if vals else None


@dataclasses.dataclass(frozen=True)
class SizeReport:
    """Per-weight and per-layer sizes of a model and the network tau (eq. 19)."""
    weights: tuple
    layers: tuple
    original_bits: int
    compressed_bits: int

    @property
    def tau(self):
        return compression_ratio(self.original_bits, self.compressed_bits) \
            if self.compressed_bits else math.inf

    def as_dict(self):
        return {"weights": [w.as_dict() for w in self.weights],
                "layers": [l.as_dict() for l in self.layers],
                "original_bits": self.original_bits, "compressed_bits": self.compressed_bits,
                "tau": self.tau}

    def to_markdown(self, *, per_weight=False):
        """A Markdown table: one row per layer (or per weight), then the network."""
        head = ("| layer | kind | encoding | index coding | params | non-zero | original | "
                "values | index | codebook | headers | compressed | bits/w | bits/nz | "
                "H(values) | H(index) | tau_i |" + ("" if per_weight else " tau_net_i |"))
        lines = [head, "|" + "---|" * (head.count("|") - 1)]
        rows = self.weights if per_weight else self.layers
        for r in rows:
            name = f"{r.path}/{r.weight}" if per_weight else r.path
            enc = r.encoding if per_weight else r.encodings
            icod = (r.index_coding or "-") if per_weight else (r.index_codings or "-")
            cells = [name, r.kind, enc, icod, r.n, r.nnz, r.original_bits, r.values_bits,
                     r.index_bits, r.codebook_bits, r.header_bits, r.compressed_bits,
                     _f(r.bits_per_weight), _f(r.bits_per_nonzero),
                     _f(r.values_entropy_bits, 0), _f(r.index_entropy_bits, 0), _f(r.tau)]
            if not per_weight:
                cells.append(_f(r.tau_net, 4))
            lines.append("| " + " | ".join(str(c) for c in cells) + " |")
        tot = [sum(getattr(r, k) for r in self.layers) for k in _SUMMED]
        n, nnz = tot[0], tot[1]
        cells = ["**network**", "", "", "", n, nnz, *tot[2:], self.compressed_bits,
                 _f(self.compressed_bits / n if n else 0.0),
                 _f(self.compressed_bits / nnz if nnz else math.inf),
                 _f(_sum_optional(r.values_entropy_bits for r in self.layers), 0),
                 _f(_sum_optional(r.index_entropy_bits for r in self.layers), 0),
                 _f(self.tau)]
        if not per_weight:
            cells.append(_f(self.tau, 4))
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
        return "\n".join(lines)


def _f(v, digits=3):
    if v is None:
        return "-"
    if isinstance(v, float) and math.isinf(v):
        return "inf"
    return f"{v:.{digits}f}"


def weight_size(w, *, path="", kind="", weight=""):
    """:class:`WeightSize` of one weight value.

    Accepted: ndarray (``encoding="raw"``, every element at its width),
    :class:`refcomp.quantize.Quantized` (codes at ``bits`` bits = values;
    its parameter arrays = codebook), :class:`refcomp.prune.Masked` (kept
    values; index = one bitmap bit per entry), :class:`refcomp.sparse.CSR` /
    ``CSC`` (data; index = 32-bit indices + 64-bit indptr; the index entropy
    bound covers the indices), :class:`DeepCompressed` (its streams, see
    :meth:`DeepCompressed.stream_sizes`), or any object with ``dequantize()``
    and ``stored_bits()`` (all counted as values, no entropy bound).
    """
    from ..prune.masked import Masked
    from ..quantize._quantized import Quantized
    from ..sparse.csr import CSC, CSR
    from .container import DeepCompressed
    if isinstance(w, np.ndarray):
        dense = w
    elif hasattr(w, "dequantize"):
        dense = w.dequantize()
    else:
        raise ParameterError(f"weight {path}/{weight} of type {type(w).__name__} has no size "
                      "rule (not an ndarray and no dequantize())")
    n = int(dense.size)
    common = dict(path=path, kind=kind, weight=weight, dtype=dense.dtype.name, n=n,
                  nnz=int(np.count_nonzero(dense)), original_bits=n * dense.dtype.itemsize * 8)
    width = dense.dtype.itemsize * 8

    def row(**fields):
        return WeightSize(**{**common, "values_entropy_bits": None,
                      "index_entropy_bits": None, **fields})
    if isinstance(w, np.ndarray):
        return row(encoding="raw", values_bits=n * width, index_bits=0, codebook_bits=0,
                   header_bits=0, values_entropy_bits=entropy_bits(_bit_patterns(w)))
    if isinstance(w, DeepCompressed):
        s = w.stream_sizes()
        val, idx = w.streams()
        enc = w.coding if w.index_coding == w.coding else f"{w.coding}/{w.index_coding}"
        return row(encoding=f"deep_compressed({enc})", index_coding=w.index_coding_label,
                   values_bits=s["values"],
                   index_bits=s["index"], codebook_bits=s["codebook"],
                   header_bits=s["values_header"] + s["index_header"],
                   values_entropy_bits=entropy_bits(val),
                   # the WebGraph stream codes positions, not index symbols:
                   # an order-0 bound of positions would mean nothing
                   index_entropy_bits=(None if w.index_coding == "webgraph"
                                       else entropy_bits(idx)))
    from ..quantize.nnc_weight import QP_BITS, NNCCoded
    if isinstance(w, NNCCoded):
        return row(encoding="nnc(%s)" % ("dq" if w.dq else "urq"),
                   values_bits=8 * len(w.payload), index_bits=0, codebook_bits=QP_BITS,
                   header_bits=0, values_entropy_bits=entropy_bits(w.levels.ravel()))
    if isinstance(w, Quantized):
        code_bits = w.codes.size * w.bits
        return row(encoding=f"quantized({w.method})", values_bits=code_bits,
                   index_bits=0, codebook_bits=w.stored_bits() - code_bits,
                   header_bits=0, values_entropy_bits=entropy_bits(w.codes))
    if isinstance(w, Masked):
        return row(encoding="masked", index_coding="bitmap", values_bits=w.n_kept * width,
                   index_bits=int(w.mask.size), codebook_bits=0, header_bits=0,
                   values_entropy_bits=entropy_bits(_bit_patterns(w.values[w.mask])),
                   index_entropy_bits=entropy_bits(w.mask))
    if isinstance(w, (CSR, CSC)):
        return row(encoding=w.format, index_coding=w.format,
                   values_bits=8 * int(w.data.nbytes),
                   index_bits=32 * int(w.indices.size) + 64 * int(w.indptr.size),
                   codebook_bits=0, header_bits=0,
                   values_entropy_bits=entropy_bits(_bit_patterns(w.data)),
                   index_entropy_bits=entropy_bits(w.indices))
    if hasattr(w, "stored_bits"):
        return row(encoding=type(w).__name__, values_bits=int(w.stored_bits()),
                   index_bits=0, codebook_bits=0, header_bits=0)
    raise ParameterError(f"weight {path}/{weight} of type {type(w).__name__} has no "
                         "stored_bits(); cannot count its size")


def size_report(model):
    """Size of every weight and layer of ``model`` and the compression ratio tau.

    Parameters
    ----------
    model : refcomp.Model
        Weights may be ndarrays, Quantized, Masked, CSR/CSC, DeepCompressed
        or other objects with ``dequantize()`` and ``stored_bits()``.

    Returns
    -------
    SizeReport
        ``weights``: one :class:`WeightSize` per weight in ``named_layers()``
        order (weights in layer-dict order); ``layers``: one
        :class:`LayerSize` per layer holding weights; ``original_bits``,
        ``compressed_bits`` (exact ints) and ``tau`` (eq. (19), see the
        module docstring).  ``to_markdown()`` and ``as_dict()`` render it.
    """
    from ..model import Model
    if not isinstance(model, Model):
        raise ParameterError(f"model must be a refcomp.Model, got {type(model).__name__}")
    weights, per_layer = [], []
    for path, layer in model.named_layers():
        rows = [weight_size(v, path=path, kind=layer.kind, weight=name)
                for name, v in layer.weights.items()]
        if rows:
            weights.extend(rows)
            per_layer.append((path, layer.kind, rows))
    orig = sum(w.original_bits for w in weights)
    comp = sum(w.compressed_bits for w in weights)
    layers = []
    for path, kind, rows in per_layer:
        sums = {k: sum(getattr(r, k) for r in rows) for k in _SUMMED}
        c_i = sums["values_bits"] + sums["index_bits"] + sums["codebook_bits"] + \
            sums["header_bits"]
        rest = orig - sums["original_bits"] + c_i
        layers.append(LayerSize(
            path=path, kind=kind, encodings=",".join(f"{r.weight}:{r.encoding}" for r in rows),
            index_codings=",".join(f"{r.weight}:{r.index_coding}" for r in rows
                                   if r.index_coding),
            values_entropy_bits=_sum_optional(r.values_entropy_bits for r in rows),
            index_entropy_bits=_sum_optional(r.index_entropy_bits for r in rows),
            tau_net=compression_ratio(orig, rest) if rest else math.inf, **sums))
    return SizeReport(tuple(weights), tuple(layers), orig, comp)
