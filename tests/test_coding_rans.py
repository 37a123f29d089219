"""rANS decoder: the declared symbol count is bounded by the frequency table
and the payload size (and by ``max_symbols``) before anything is allocated."""
import time
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import refcomp
from refcomp.coding import _alphabet, max_decodable, rans_decode, rans_encode
from refcomp.coding.rans import DEFAULT_MAX_SYMBOLS


def _table(data):
    h = _alphabet.parse_header(data, magic=b"RA", version=1, what="rANS", limit=1 << 40,
                               vw_range=(8, 16), max_n=lambda nb: 1 << 60)
    freq = h["values"].astype(np.int64) + 1
    return len(data) - h["hbytes"], int(freq.max()), h["vw"]


def _streams():
    rng = np.random.default_rng(4)
    for prec in (8, 12, 16):
        for n in (1, 2, 7, 100, 5000, 200_000):
            yield prec, np.zeros(n, np.uint8)                               # one symbol
            yield prec, (rng.random(n) < 1e-3).astype(np.uint8)             # very skewed
            yield prec, rng.integers(0, 32, n).astype(np.uint8)             # ~uniform
            yield prec, rng.choice(4, n, p=[.9, .05, .03, .02]).astype(np.int16)


def test_bound_holds_for_valid_streams_and_is_tight():
    for prec, x in _streams():
        data = rans_encode(x, precision=prec)
        nbytes, fmax, vw = _table(data)
        bound = max_decodable(nbytes, fmax, vw)
        assert x.size <= bound
        assert np.array_equal(rans_decode(data), x)
        if x.size >= 5000 and np.unique(x).size == 32:
            assert bound <= 1.15 * x.size + 64          # ~uniform: log2(M / f_max) is tight


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 5), min_size=1, max_size=3000), st.sampled_from([8, 11, 16]))
def test_bound_holds_hypothesis(vals, prec):
    x = np.array(vals, np.uint8)
    data = rans_encode(x, precision=prec)
    assert x.size <= max_decodable(*_table(data))
    assert np.array_equal(rans_decode(data), x)


def _with_count(data, n):
    return data[:4] + n.to_bytes(8, "big") + data[12:]


def _fails_small_and_fast(data, **kw):
    tracemalloc.start()
    t = time.process_time()
    try:
        with pytest.raises(refcomp.DecodeError):
            rans_decode(data, **kw)
        elapsed = time.process_time() - t
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert elapsed < 2.0, elapsed          # CPU seconds: a hang guard, not a benchmark
    assert peak < (1 << 20), peak                       # < 1 MiB allocated on the way
    return peak


def test_corrupt_declared_length_fails_fast_with_small_memory():
    rng = np.random.default_rng(1)
    rans_decode(rans_encode(np.arange(4, dtype=np.uint8)))      # compile outside timing
    cases = [rans_encode(rng.integers(0, 32, 40).astype(np.uint8), precision=16),
             rans_encode(np.zeros(50, np.uint8), precision=16),          # one symbol
             rans_encode((rng.random(300) < 0.01).astype(np.uint8), precision=16),
             rans_encode(rng.integers(0, 3, 1000).astype(np.int32), precision=8)]
    for data in cases:
        nbytes, fmax, prec = _table(data)
        bound = max_decodable(nbytes, fmax, prec)
        for n in (bound + 1, 10 * bound, 10 ** 7, DEFAULT_MAX_SYMBOLS + 1, 2 ** 40):
            _fails_small_and_fast(_with_count(data, n))
            _fails_small_and_fast(_with_count(data, n), max_symbols=None)
    # a 25-byte stream: before, any n up to (8*payload+32)*2**prec (4.2M symbols, 34 MB of
    # int64) was allocated before decoding
    small = rans_encode(np.zeros(3, np.uint8), precision=16)
    assert len(small) == 25
    _fails_small_and_fast(_with_count(small, 4_000_000), max_symbols=None)


def test_max_symbols_cap_for_nearly_free_symbols():
    # a one-symbol table makes each symbol cost ~1.44 / 2**16 bit: 200000 symbols fit in
    # a few bytes; max_symbols (default 2**28) bounds what such a stream can declare
    x = np.zeros(200_000, np.uint8)
    data = rans_encode(x, precision=16)
    assert len(data) < 40
    assert np.array_equal(rans_decode(data), x)
    with pytest.raises(refcomp.DecodeError):
        rans_decode(data, max_symbols=199_999)
    assert np.array_equal(rans_decode(data, max_symbols=200_000), x)
    nbytes, fmax, prec = _table(data)
    assert max_decodable(nbytes, fmax, prec) < DEFAULT_MAX_SYMBOLS
    # a 1 KiB one-symbol stream may hold more than 2**28 symbols by the bound alone
    assert max_decodable(1024, 2 ** 16 - 1, 16) > DEFAULT_MAX_SYMBOLS
    _fails_small_and_fast(_with_count(data, DEFAULT_MAX_SYMBOLS + 1) + bytes(1000))


def test_random_headers_small_memory():
    rng = np.random.default_rng(9)
    good = rans_encode(rng.integers(0, 16, 64).astype(np.uint8), precision=12)
    for i in range(200):
        m = bytearray(good)
        m[4:12] = int(rng.integers(0, 2 ** 62)).to_bytes(8, "big")
        if i % 2:
            m[int(rng.integers(12, len(m)))] ^= 1 << int(rng.integers(0, 8))
        try:
            rans_decode(bytes(m), max_symbols=None)
        except refcomp.DecodeError:
            pass
