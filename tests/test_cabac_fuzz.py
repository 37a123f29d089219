"""Bad input to the DeepCABAC decoder and the NNC quantizer/weight: truncated and
corrupted payloads, lying lengths, absurd qp.  Every case ends in DecodeError,
ParameterError or FormatError (or, for a corrupted but well-formed stream,
levels of the declared shape): never a hang, a crash or an allocation beyond
what the payload can hold.  (Issue 25; meant to join tests/fuzz/.)"""
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import refcomp
from refcomp.coding.cabac import decode_levels, encode_levels
from refcomp.coding.cabac.layer import max_levels_for
from refcomp.quantize import nnc_levels, nnc_quantize

from test_cabac import dq_levels

_W = (np.random.default_rng(0).standard_normal((24, 30)) * 0.05).astype(np.float32)
_LV = nnc_levels(_W, qp=-30, dq=True)
_DATA = encode_levels(_LV, dq=True)


def _decode_or_error(data, shape, **opts):
    try:
        out = decode_levels(data, shape, **opts)
    except refcomp.DecodeError:
        return None
    assert out.shape == tuple(shape) and out.dtype == np.int32
    return out


def test_every_truncation_is_refused():
    for cut in range(len(_DATA)):
        with pytest.raises(refcomp.DecodeError):
            decode_levels(_DATA[:cut], _LV.shape, dq=True)


def test_trailing_bytes_refused():
    with pytest.raises(refcomp.DecodeError, match="trailing"):
        decode_levels(_DATA + b"\x00", _LV.shape, dq=True)


@settings(max_examples=200)
@given(st.integers(0, len(_DATA) - 1), st.integers(1, 255), st.booleans())
def test_corrupted_byte(pos, xor, twin):
    data = bytearray(_DATA)
    data[pos] ^= xor
    _decode_or_error(bytes(data), _LV.shape, dq=True, twin=twin)


@settings(max_examples=200)
@given(st.binary(min_size=0, max_size=64), st.sampled_from([(1,), (7,), (5, 9), (300, 2)]),
       st.booleans(), st.integers(0, 4))
def test_random_bytes(data, shape, dq, scan_order):
    if len(data) < 2:
        with pytest.raises(refcomp.DecodeError):
            decode_levels(data, shape, dq=dq, scan_order=scan_order)
        return
    _decode_or_error(data, shape, dq=dq, scan_order=scan_order)


def test_lying_shape_refused_before_allocation():
    tracemalloc.start()
    try:
        with pytest.raises(refcomp.DecodeError, match="holds at most"):
            decode_levels(_DATA, (1 << 29, 2), dq=True)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


def test_all_zero_stream_bound():
    # the cheapest levels (all zero, skewed contexts) stay within max_levels_for
    lv = np.zeros((1000, 1000), np.int32)
    data = encode_levels(lv, dq=True)
    assert lv.size <= max_levels_for(len(data))
    np.testing.assert_array_equal(decode_levels(data, lv.shape, dq=True), lv)


def test_wrong_dq_or_shape_gives_error_or_levels():
    for opts in (dict(dq=False), dict(dq=True, cabac_unary_length_minus1=3),
                 dict(dq=True, scan_order=1)):
        _decode_or_error(_DATA, _LV.shape, **opts)
    _decode_or_error(_DATA, (30, 24), dq=True)
    _decode_or_error(_DATA, (10,), dq=True)


@pytest.mark.parametrize("kw", [dict(qp=10 ** 9), dict(qp=-10 ** 9), dict(qp=0, qp_density=99),
                                dict(qp=2 ** 40), dict(qp=-4000), dict(qp=4000)])
def test_absurd_qp(kw):
    with pytest.raises(refcomp.ParameterError):
        nnc_levels(_W, **kw)


def test_bad_levels_refused():
    with pytest.raises(refcomp.ParameterError):
        encode_levels(np.array([2 ** 31 - 1], np.int32), dq=False)
    with pytest.raises(refcomp.ParameterError):
        encode_levels(np.array([1.0], np.float32), dq=False)
    with pytest.raises(refcomp.RefcompError):
        encode_levels(np.zeros((0, 3), np.int32), dq=False)
    with pytest.raises(refcomp.ParameterError):
        encode_levels(dq_levels(np.ones(4, np.int32)), dq=True, scan_order=7)


def test_nnc_weight_corrupt_hdf5(tmp_path):
    import h5py
    m = refcomp.load("data/digits_cnn.h5")
    c = nnc_quantize(m.get_layer("7").weights["W"], qp=-20)
    m2 = m.replace_weights({("7", "W"): c})
    path = tmp_path / "m.h5"
    refcomp.save(m2, str(path))
    with h5py.File(path, "r") as f:
        names = []
        f.visititems(lambda n, o: names.append(n) if getattr(o, "attrs", {}).get(
            "encoding") == "nnc" else None)
    grp = names[0]
    cases = [("attr", "qp", np.int64(10 ** 9)), ("attr", "shape", np.array([1 << 40], np.int64)),
             ("attr", "dq", np.int8(5)), ("attr", "scan_order", np.int64(9)),
             ("payload", None, b"\x00\x01"), ("payload", None, c.payload[:-3])]
    for i, (kind, key, value) in enumerate(cases):
        p = tmp_path / ("c%d.h5" % i)
        p.write_bytes(path.read_bytes())
        with h5py.File(p, "r+") as f:
            g = f[grp]
            if kind == "attr":
                g.attrs[key] = value
            else:
                del g["payload"]
                g.create_dataset("payload", data=np.frombuffer(value, np.uint8))
        with pytest.raises((refcomp.FormatError, refcomp.DecodeError)):
            refcomp.load(str(p))
