"""Static rANS coder (range asymmetric numeral systems, Duda 2013).

An optional alternative to canonical Huffman for the Deep Compression
streams (issue 7): it codes close to the entropy instead of paying up to one
bit per symbol for integer code lengths.  Measured gain on 5-bit k-means
codes of Gaussian weights: see docs/coding.md.

Frequency quantisation (:func:`quantize_frequencies`, deterministic, exact
integers).  With ``M = 2**precision``, ``N = sum(counts)`` and ``m`` present
symbols, the target total is ``T = M`` (``T = M - 1`` when ``m == 1``, so
that every symbol costs a little and slot ``M - 1`` is left unassigned):

1. ``f_i = max(1, floor(c_i * T / N))``;
2. if ``sum f < T``: +1 to the ``T - sum f`` symbols with the largest
   remainders ``c_i * T mod N``, ties to the smaller symbol;
3. while ``sum f > T`` (only from the ``max(1, .)`` bumps): one round
   subtracts 1 from each of the ``sum f - T`` symbols with the largest
   ``f_i`` among ``f_i > 1``, ordered by ``(f_i descending, symbol)``.

Coder: 32-bit state in ``[2**23, 2**31)``, byte-wise renormalisation,
symbols encoded in reverse order (kernels in ``_rans_kernels.py``).  The
encoder starts from ``x = 2**23``; the decoder checks that it ends there
with every byte consumed, which rejects most corruptions.

Stream: the header of :mod:`refcomp.coding._alphabet` with magic ``b"RA"``,
version 1 and per-symbol values ``f_i - 1`` at ``vw = precision`` bits, then
the rANS bytes: the final encoder state (4 bytes big-endian), then the
renormalisation bytes in decoding order.

Decoder memory bound (:func:`max_decodable`).  With ``L = 2**23``, ``f_max``
the largest frequency and ``P`` the rANS bytes (state included), the
potential ``(x + 1) * 256**R`` (``R`` = bytes not yet read) is at most
``2**(8P)`` at the start and below ``2**(8P + 1)`` after the first step
(from any 32-bit state: ``x' + 1 <= f * (floor(x / M) + 1) <= x + M``), never
grows when a byte is read (``(256 x + b) + 1 <= 256 (x + 1)``) and, since
every later step starts from ``x >= L``, shrinks in every later step by at
least the factor ``rho = f_max / M + (M - f_max + 1) / L < 1`` (a step maps
``x`` to ``x' = x - (M - f) * floor(x / M) - cum < x * f / M + M - f``).
A valid stream ends at ``x = L`` with ``R = 0`` (potential ``L + 1 >
2**23``), so it holds fewer than ``1 + (8P - 22) / log2(1 / rho)`` symbols:
about ``8P / log2(M / f_max)``, the minimum cost of ``log2(M / f_max)`` bits
per symbol.  The decoder rejects a larger declared ``n`` before allocating
anything.  A (nearly) single-symbol table makes symbols almost free
(``f_max = M - 1`` costs about ``1.44 / M`` bit), so the bound alone would
let 25 bytes declare millions of symbols: :func:`rans_decode` also caps ``n`` at ``max_symbols``
(default :data:`DEFAULT_MAX_SYMBOLS` = 2**28, checked first; pass a larger
value to decode a longer stream).  Output memory is then at most
``4 * min(n_max, max_symbols)`` bytes of int32 ranks plus the result.
"""
import math

import numpy as np

from .._errors import DecodeError, ParameterError
from .._validate import check_int
from . import _rans_kernels as _k
from ._alphabet import check_symbols, parse_header, symbol_alphabet, write_header

__all__ = ["rans_encode", "rans_decode", "quantize_frequencies", "max_decodable",
           "MAX_SYMBOLS", "DEFAULT_MAX_SYMBOLS"]

#: Largest symbol count a stream may declare.
MAX_SYMBOLS = 1 << 40
#: Default ``max_symbols`` of :func:`rans_decode` (2**28 symbols).
DEFAULT_MAX_SYMBOLS = 1 << 28
_MAGIC = b"RA"
_VERSION = 1


def quantize_frequencies(counts, precision):
    """Quantised frequencies (int64, sum ``2**precision`` or ``2**precision - 1``
    for one symbol), rule in the module docstring.  ``counts``: int64 > 0."""
    c = [int(v) for v in counts]
    m, big_n = len(c), sum(c)
    t = (1 << precision) - (1 if m == 1 else 0)
    if m > t:
        raise ParameterError("%d distinct symbols do not fit precision %d" % (m, precision))
    f = [max(1, ci * t // big_n) for ci in c]
    d = t - sum(f)
    if d > 0:
        order = sorted(range(m), key=lambda i: (-(c[i] * t % big_n), i))
        for i in order[:d]:
            f[i] += 1
    while d < 0:
        order = sorted((i for i in range(m) if f[i] > 1), key=lambda i: (-f[i], i))
        for i in order[:-d]:
            f[i] -= 1
        d = t - sum(f)
    return np.array(f, dtype=np.int64)


def rans_encode(symbols, *, precision=14, _twin=False):
    """rANS-code a 1-D integer array (int8..uint64) into bytes.

    Parameters
    ----------
    symbols : ndarray of int, shape (n,)
    precision : int in [8, 16]
        log2 of the frequency total M; at most M distinct symbols.

    Returns
    -------
    bytes
        Layout in the module docstring; decode with :func:`rans_decode`.
    """
    check_symbols(symbols, MAX_SYMBOLS)
    check_int("precision", precision, lo=8, hi=16)
    n = symbols.size
    if n == 0:
        return write_header(_MAGIC, _VERSION, symbols.dtype, 0, None, None, 0)
    alpha, counts, ranks = symbol_alphabet(symbols)
    freq = quantize_frequencies(counts, precision)
    cum = np.cumsum(freq) - freq
    head = write_header(_MAGIC, _VERSION, symbols.dtype, n, alpha,
                        (freq - 1).astype(np.uint64), precision)
    buf = np.zeros(2 * n + 4, dtype=np.uint8)
    p = (_k.encode_twin if _twin else _k.encode_kernel)(ranks, freq, cum, precision, buf)
    return head + buf[p:].tobytes()


def max_decodable(nbytes, f_max, precision):
    """Largest symbol count a valid stream can hold (bound in the module docstring).

    Parameters
    ----------
    nbytes : int
        rANS bytes after the header (the 4-byte state included).
    f_max : int
        Largest quantised frequency, ``1 <= f_max < 2**precision``.
    precision : int in [8, 16]

    Returns
    -------
    int
        ``1 + floor((8 * nbytes - 22) / log2(1 / rho)) + 1`` (one symbol of
        margin for the float64 logarithm, computed with ``log1p`` on the
        exact ``1 - rho``); 0 when ``nbytes < 4``.
    """
    if nbytes < 4:
        return 0
    big_m, big_l = 1 << precision, _k.RANS_L
    gap = (big_m - f_max) * (big_l - big_m) - big_m      # (1 - rho) * M * L, exact, > 0
    lg = -math.log1p(-gap / (big_m * big_l)) / math.log(2.0)
    return 2 + int((8 * nbytes - 22) / (lg * (1.0 - 1e-9)))


def rans_decode(data, *, max_symbols=DEFAULT_MAX_SYMBOLS, _twin=False):
    """Decode a :func:`rans_encode` stream; same values and dtype.

    Parameters
    ----------
    data : bytes, bytearray or memoryview
        Anything else raises :class:`refcomp.DecodeError`.
    max_symbols : int or None
        Reject streams declaring more symbols, before anything is allocated
        (default 2**28; ``None`` means :data:`MAX_SYMBOLS`).

    Returns
    -------
    ndarray, shape (n,), of the encoded dtype

    Raises
    ------
    DecodeError
        Any malformed stream: header checks of :mod:`._alphabet`, ``n >
        max_symbols``, frequencies not summing to ``M`` (``M - 1`` for one
        symbol), ``n`` above :func:`max_decodable` for the payload size and
        the largest frequency (checked before allocating), truncated bytes,
        an unassigned slot, or a final state / position other than the
        encoder's start.  Work is O(n); memory ``4 n`` bytes of ranks plus
        the result.
    """
    limit = MAX_SYMBOLS if max_symbols is None else min(MAX_SYMBOLS, int(max_symbols))
    h = parse_header(data, magic=_MAGIC, version=_VERSION, what="rANS", limit=limit,
                     vw_range=(8, 16), max_n=lambda nb: (8 * nb + 32) << 16)
    if h["n"] == 0:
        return np.zeros(0, dtype=h["dtype"])
    prec, m, n = h["vw"], h["m"], h["n"]
    freq = h["values"].astype(np.int64) + 1
    big_m = 1 << prec
    if int(freq.sum()) != big_m - (1 if m == 1 else 0):
        raise DecodeError("rANS frequencies do not sum to 2**%d" % prec)
    hb = h["hbytes"]
    nmax = max_decodable(len(h["data"]) - hb, int(freq.max()), prec)
    if n > nmax:
        raise DecodeError("%d rANS bytes with a largest frequency of %d/2**%d hold at most "
                          "%d symbols, %d declared" % (len(h["data"]) - hb, int(freq.max()),
                                                       prec, nmax, n))
    cum = np.cumsum(freq) - freq
    slot_rank = np.full(big_m, -1, dtype=np.int64)
    slot_rank[:int(freq.sum())] = np.repeat(np.arange(m), freq)
    buf = np.frombuffer(h["data"], dtype=np.uint8)
    out = np.empty(n, dtype=np.int32)          # ranks < m <= 2**16
    status, end, x = (_k.decode_twin if _twin else _k.decode_kernel)(
        buf, hb, n, slot_rank, freq, cum, prec, out)
    if status == 1:
        raise DecodeError("rANS stream truncated")
    if status == 2:
        raise DecodeError("rANS state points to an unassigned slot")
    if x != _k.RANS_L or end != len(buf):
        raise DecodeError("rANS stream does not end in the initial state (corrupt or trailing bytes)")
    return h["alpha"][out]
