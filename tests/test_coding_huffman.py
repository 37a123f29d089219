"""Canonical Huffman: optimality against independent references, round trips,
kernel twins, golden stream bytes, and bad input (DecodeError, quickly)."""
import heapq
import itertools

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import refcomp
from refcomp.coding import (MAX_SYMBOLS, canonical_codes, huffman_code_lengths, huffman_cost,
                            huffman_decode, huffman_encode, huffman_sizes)
from refcomp.coding import _alphabet, huffman as hm
from refcomp.kernels import huffman as hk
from refcomp.testing import assert_bits_equal

DTYPES = ["int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64"]


def naive_huffman_cost(counts):
    """Optimal prefix-code cost = sum of all merged weights (heapq, Python ints)."""
    h = [int(c) for c in counts if c > 0]
    if len(h) == 1:
        return h[0]
    heapq.heapify(h)
    cost = 0
    while len(h) > 1:
        a, b = heapq.heappop(h), heapq.heappop(h)
        cost += a + b
        heapq.heappush(h, a + b)
    return cost


def brute_limited_cost(counts, limit):
    """min sum(c*l) over all length vectors in [1, limit] with Kraft <= 1."""
    c = [int(x) for x in counts if x > 0]
    best = None
    for ls in itertools.product(range(1, limit + 1), repeat=len(c)):
        if sum(2.0 ** -l for l in ls) <= 1.0:
            v = sum(a * b for a, b in zip(c, ls))
            best = v if best is None else min(best, v)
    return best


def kraft(lengths):
    return sum(2 ** (64 - int(l)) for l in lengths if l) / 2 ** 64


def arrays(min_size=0, max_size=300):
    def build(dt, vals):
        info = np.iinfo(dt)
        return np.array([min(max(v, int(info.min)), int(info.max)) for v in vals], dtype=dt)
    ints = st.one_of(st.integers(-4, 4), st.integers(-2 ** 63, 2 ** 64 - 1))
    return st.builds(build, st.sampled_from(DTYPES), st.lists(ints, min_size=min_size,
                                                             max_size=max_size))


# ------------------------------------------------------------------ lengths

@given(st.lists(st.integers(0, 1000), min_size=1, max_size=40))
def test_huffman_cost_is_optimal(counts):
    c = np.array(counts, dtype=np.int64)
    ln = huffman_code_lengths(c)
    assert ln.dtype == np.uint8 and ln.shape == c.shape
    assert np.all((ln == 0) == (c == 0))
    present = int((c > 0).sum())
    if present:
        assert huffman_cost(c) == naive_huffman_cost(counts)
        assert kraft(ln) == (0.5 if present == 1 else 1.0)
    else:
        assert huffman_cost(c) == 0


@settings(max_examples=40)
@given(st.lists(st.integers(1, 200), min_size=2, max_size=6), st.integers(1, 5))
def test_package_merge_is_optimal(counts, limit):
    c = np.array(counts, dtype=np.int64)
    if len(counts) > 2 ** limit:
        with pytest.raises(refcomp.ParameterError):
            huffman_code_lengths(c, max_length=limit)
        return
    ln = huffman_code_lengths(c, max_length=limit)
    assert int(ln.max()) <= limit and kraft(ln) <= 1.0
    assert huffman_cost(c, max_length=limit) == brute_limited_cost(counts, limit)
    # package-merge itself (even when Huffman already fits the limit)
    order = np.lexsort((np.arange(c.size), c))
    pm = hm._package_merge(c[order], limit)
    assert int((pm * c[order]).sum()) == brute_limited_cost(counts, limit)


def test_tie_breaking_golden():
    # leaf before internal node on equal weight: min longest word
    assert huffman_code_lengths(np.array([2, 2, 2, 2, 4], np.int64)).tolist() == [3, 3, 2, 2, 2]
    assert huffman_code_lengths(np.array([1, 1, 2], np.int64)).tolist() == [2, 2, 1]
    assert huffman_code_lengths(np.array([0, 7, 0], np.int64)).tolist() == [0, 1, 0]
    assert huffman_code_lengths(np.array([1, 1, 1, 1], np.int64)).tolist() == [2, 2, 2, 2]
    fib = np.array([1, 1, 2, 3, 5, 8, 13, 21], np.int64)
    assert huffman_code_lengths(fib).tolist() == [7, 7, 6, 5, 4, 3, 2, 1]
    # limit 4: 4*(1+1+2+3) + 3*(5+8) + 2*(13+21) = 135 < 140 of [4]*6 + [3, 1]
    assert huffman_code_lengths(fib, max_length=4).tolist() == [4, 4, 4, 4, 3, 3, 2, 2]
    assert huffman_cost(fib, max_length=4) == 135 == brute_limited_cost(fib, 4)


def test_canonical_codes_golden_and_prefix_free():
    ln = np.array([2, 1, 3, 3, 0], np.uint8)
    assert canonical_codes(ln).tolist() == [0b10, 0b0, 0b110, 0b111, 0]
    rng = np.random.default_rng(1)
    c = rng.integers(0, 50, 60)
    ln = huffman_code_lengths(c)
    words = [format(int(w), "0%db" % l) for w, l in zip(canonical_codes(ln), ln) if l]
    for a, b in itertools.permutations(words, 2):
        assert not b.startswith(a)
    # canonical: ordered by (length, symbol) the words are increasing integers
    keyed = sorted((int(l), i, w) for i, (l, w) in enumerate(zip(ln, canonical_codes(ln))) if l)
    vals = [w << (64 - l) for l, _, w in keyed]
    assert vals == sorted(vals)


def test_bad_parameters():
    with pytest.raises(refcomp.ParameterError):
        huffman_code_lengths(np.array([1, -1], np.int64))
    with pytest.raises(refcomp.ParameterError):
        huffman_code_lengths(np.array([1, 1, 1], np.int64), max_length=1)
    with pytest.raises(refcomp.ParameterError):
        huffman_code_lengths(np.array([1, 1], np.int64), max_length=0)
    with pytest.raises(refcomp.ParameterError):
        huffman_code_lengths(np.array([2 ** 61, 2 ** 61], np.int64))
    with pytest.raises(refcomp.DTypeError):
        huffman_code_lengths(np.array([1.0, 2.0]))
    with pytest.raises(refcomp.DTypeError):
        huffman_encode([1, 2, 3])
    with pytest.raises(refcomp.DTypeError):
        huffman_encode(np.zeros((2, 2), np.int8))
    with pytest.raises(refcomp.DTypeError):
        huffman_encode(np.zeros(3, np.float32))


# ------------------------------------------------------------------ streams

def test_golden_stream():
    data = huffman_encode(np.array([0, 0, 0, 1, 2], np.uint8))
    # lengths 1,2,2 -> words 0, 10, 11; payload 0 0 0 10 11 + 1 zero pad = 0x16
    assert data == bytes.fromhex("524801 01 0000000000000005 00000003 00 00 02 68 16"
                                 .replace(" ", ""))
    assert huffman_sizes(data) == (8 * 20, 7)
    out = huffman_decode(data)
    assert out.dtype == np.uint8 and out.tolist() == [0, 0, 0, 1, 2]
    empty = huffman_encode(np.zeros(0, np.int16))
    assert empty == bytes.fromhex("52480102" + "00" * 8 + "00000000")
    assert huffman_decode(empty).dtype == np.int16 and huffman_sizes(empty) == (128, 0)
    one = huffman_encode(np.array([-3, -3, -3], np.int8))
    assert one == bytes.fromhex("52480100" "0000000000000003" "00000001" "fd" "00" "01" "80" "00")


@given(arrays())
def test_round_trip(x):
    data = huffman_encode(x)
    y = huffman_decode(data)
    assert_bits_equal(y, x)
    hb, pb = huffman_sizes(data)
    if x.size:
        _, counts = np.unique(x, return_counts=True)
        assert pb == naive_huffman_cost(counts)
    assert 0 <= 8 * len(data) - hb - pb < 8
    # kernel twins: identical bytes and outputs
    assert huffman_encode(x, _twin=True) == data
    assert_bits_equal(huffman_decode(data, _twin=True), x)


@settings(max_examples=20)
@given(arrays(min_size=1, max_size=200), st.integers(1, 8))
def test_round_trip_length_limited(x, limit):
    m = np.unique(x).size
    if m > 2 ** limit:
        with pytest.raises(refcomp.ParameterError):
            huffman_encode(x, max_length=limit)
        return
    data = huffman_encode(x, max_length=limit)
    assert_bits_equal(huffman_decode(data), x)
    assert int(hm._parse_header(data, None)["ln"].max()) <= limit


def test_long_codes_and_big_alphabet_twins():
    # Fibonacci counts: words up to 24 bits, past the 11-bit decoding table
    fib = [1, 1]
    while len(fib) < 25:
        fib.append(fib[-1] + fib[-2])
    rng = np.random.default_rng(0)
    x = rng.permutation(np.repeat(np.arange(25, dtype=np.int32) * 1000 - 7, fib))[:30000]
    data = huffman_encode(x)
    assert int(hm._parse_header(data, None)["ln"].max()) > hk.TABLE_BITS
    assert_bits_equal(huffman_decode(data), x)
    assert_bits_equal(huffman_decode(data, _twin=True), x)
    assert huffman_encode(x, _twin=True) == data
    big = rng.integers(-2 ** 31, 2 ** 31, 5000).astype(np.int64) * 3
    assert_bits_equal(huffman_decode(huffman_encode(big)), big)
    for dt in ("int8", "uint8", "int16", "uint16"):
        info = np.iinfo(dt)
        x = np.arange(info.min, info.max + 1).astype(dt)
        assert_bits_equal(huffman_decode(huffman_encode(x)), x)


def test_encode_kernel_twin_long_words():
    rng = np.random.default_rng(3)
    ln = rng.integers(1, 65, 300).astype(np.uint8)
    codes = np.array([int(rng.integers(0, 2 ** 63)) * 2 % (1 << int(l)) for l in ln], np.uint64)
    ranks = rng.integers(0, 300, 2000).astype(np.int64)
    total = int(ln[ranks].astype(np.int64).sum())
    a = np.zeros((total + 7) // 8, np.uint8)
    b = np.zeros_like(a)
    assert hk.encode_kernel(ranks, codes, ln, a) == hk.encode_twin(ranks, codes, ln, b) == total
    assert_bits_equal(a, b)
    bits = "".join(format(int(codes[r]), "0%db" % int(ln[r])) for r in ranks)
    bits += "0" * (-len(bits) % 8)
    assert a.tobytes() == int(bits, 2).to_bytes(len(bits) // 8, "big")


# ------------------------------------------------------------------ bad input

def _decodes_or_rejects(data):
    try:
        y = huffman_decode(data, max_symbols=10 ** 6)
    except refcomp.DecodeError:
        return False
    assert isinstance(y, np.ndarray) and y.ndim == 1
    return True


def test_random_bytes_rejected():
    rng = np.random.default_rng(5)
    for i in range(600):
        n = int(rng.integers(0, 80))
        body = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        prefix = [b"", b"RH", b"RH\x01", b"RH\x01" + bytes([i % 8])][i % 4]
        _decodes_or_rejects(prefix + body)


def test_truncated_and_mutated_streams():
    rng = np.random.default_rng(6)
    x = rng.integers(-20, 20, 3000).astype(np.int16)
    data = huffman_encode(x)
    for cut in range(len(data)):
        with pytest.raises(refcomp.DecodeError):
            huffman_decode(data[:cut])
    with pytest.raises(refcomp.DecodeError):
        huffman_decode(data + b"\x00")
    for _ in range(400):
        d = bytearray(data)
        for _ in range(int(rng.integers(1, 4))):
            d[int(rng.integers(0, min(len(d), 40)))] ^= 1 << int(rng.integers(0, 8))
        _decodes_or_rejects(bytes(d))
    for _ in range(200):     # payload mutations: a different but valid decoding is allowed
        d = bytearray(data)
        d[int(rng.integers(40, len(d)))] ^= 1 << int(rng.integers(0, 8))
        _decodes_or_rejects(bytes(d))


def test_declared_sizes_checked_before_allocating():
    data = bytearray(huffman_encode(np.arange(10, dtype=np.uint8)))
    huge = bytearray(data)
    huge[4:12] = (2 ** 63).to_bytes(8, "big")
    with pytest.raises(refcomp.DecodeError, match="at most"):
        huffman_decode(bytes(huge))
    huge[4:12] = (MAX_SYMBOLS // 2).to_bytes(8, "big")
    with pytest.raises(refcomp.DecodeError, match="cannot hold"):
        huffman_decode(bytes(huge))
    with pytest.raises(refcomp.DecodeError, match="at most 5"):
        huffman_decode(bytes(data), max_symbols=5)
    bad = bytearray(data)
    bad[12:16] = (2 ** 32 - 1).to_bytes(4, "big")
    with pytest.raises(refcomp.DecodeError):
        huffman_decode(bytes(bad))
    with pytest.raises(refcomp.DecodeError):   # single symbol: word '0' only, '1' invalid
        huffman_decode(huffman_encode(np.array([4], np.int8))[:-1] + b"\x80")
    with pytest.raises(refcomp.DecodeError):
        huffman_decode("not bytes")
    with pytest.raises(refcomp.DecodeError):   # alphabet running past the dtype range
        huffman_decode(bytes.fromhex("52480101" "0000000000000002" "00000002" "fe" "02" "01" "c0"
                                     "40"))


# ------------------------------------------------------------------ rANS (optional coder)

@given(arrays(), st.sampled_from([8, 12, 16]))
def test_rans_round_trip_and_twins(x, prec):
    if np.unique(x).size > 2 ** prec:
        return
    data = refcomp.coding.rans_encode(x, precision=prec)
    assert_bits_equal(refcomp.coding.rans_decode(data), x)
    assert refcomp.coding.rans_encode(x, precision=prec, _twin=True) == data
    assert_bits_equal(refcomp.coding.rans_decode(data, _twin=True), x)


@given(st.lists(st.integers(1, 10 ** 6), min_size=1, max_size=300), st.sampled_from([8, 10, 16]))
def test_rans_quantized_frequencies(counts, prec):
    from fractions import Fraction
    if len(counts) > 2 ** prec - (len(counts) == 1):
        with pytest.raises(refcomp.ParameterError):
            refcomp.coding.quantize_frequencies(np.array(counts, np.int64), prec)
        return
    f = refcomp.coding.quantize_frequencies(np.array(counts, np.int64), prec).tolist()
    t = 2 ** prec - (len(counts) == 1)
    assert sum(f) == t and min(f) >= 1
    total = sum(counts)
    # every f is within 1 of its exact share, unless bumped from 0 to 1 or trimmed after bumps
    bumped = sum(1 for c in counts if c * t < total)
    if not bumped:
        assert all(abs(Fraction(c * t, total) - fi) < 1 for c, fi in zip(counts, f))


def test_rans_golden_and_size():
    f = refcomp.coding.quantize_frequencies(np.array([3, 1, 1000], np.int64), 8)
    assert f.tolist() == [1, 1, 254]          # 0.76, 0.25 bumped to 1; 254.98 floored: sum 256
    f = refcomp.coding.quantize_frequencies(np.array([1, 1, 1, 1000], np.int64), 8)
    assert f.tolist() == [1, 1, 1, 253]       # 3 bumps, 255 trimmed in two rounds
    f = refcomp.coding.quantize_frequencies(np.array([1, 2, 3], np.int64), 8)
    assert f.tolist() == [43, 85, 128]        # 42.67, 85.33, 128: +1 to the largest remainder
    assert refcomp.coding.quantize_frequencies(np.array([5], np.int64), 8).tolist() == [255]
    rng = np.random.default_rng(2)
    x = rng.choice(8, 20000, p=[.5, .2, .1, .08, .05, .04, .02, .01]).astype(np.uint8)
    data = refcomp.coding.rans_encode(x, precision=12)
    h = _alphabet.parse_header(data, magic=b"RA", version=1, what="rANS", limit=10 ** 9,
                        vw_range=(8, 16), max_n=lambda nb: 1 << 60)
    freq = h["values"].astype(np.int64) + 1
    _, counts = np.unique(x, return_counts=True)
    cross = float(np.sum(counts * (12 - np.log2(freq))))   # ideal bits for these frequencies
    payload = 8 * (len(data) - h["hbytes"])
    assert cross <= payload <= cross + 64


def test_rans_bad_input():
    rng = np.random.default_rng(8)
    x = rng.integers(-9, 9, 2000).astype(np.int32)
    data = refcomp.coding.rans_encode(x)
    for cut in range(len(data)):
        with pytest.raises(refcomp.DecodeError):
            refcomp.coding.rans_decode(data[:cut])
    for _ in range(300):
        d = bytearray(data)
        d[int(rng.integers(0, len(d)))] ^= 1 << int(rng.integers(0, 8))
        try:
            y = refcomp.coding.rans_decode(bytes(d), max_symbols=10 ** 5)
            assert y.shape == x.shape
        except refcomp.DecodeError:
            pass
    for i in range(300):
        body = rng.integers(0, 256, int(rng.integers(0, 60)), dtype=np.uint8).tobytes()
        try:
            refcomp.coding.rans_decode(b"RA\x01" + bytes([i % 8]) + body, max_symbols=10 ** 5)
        except refcomp.DecodeError:
            pass
    with pytest.raises(refcomp.ParameterError):
        refcomp.coding.rans_encode(np.arange(300, dtype=np.int16), precision=8)
