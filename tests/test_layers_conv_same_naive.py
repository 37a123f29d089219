"""conv2d / conv1d ``padding="same_lower"`` / ``"same_upper"`` / ``"same"`` (ONNX ``auto_pad``
SAME_LOWER / SAME_UPPER) against the independent float64 loop of ``tests/naive.py``.

The pads are resolved here from ONNX Conv's text, per spatial axis and independently of
refcomp: ``out = ceil(L / s)``, total padding ``max(0, (out - 1) s + (k - 1) d + 1 - L)``,
the odd pixel at the beginning for SAME_LOWER and at the end for SAME_UPPER ("same" is
refcomp's alias of SAME_UPPER).  refcomp's reference mode sums in float64 from +0.0 in the
loop's order with exact products of float32 data, so the loop rounded once (half-even) to
the input dtype must equal it bit for bit.  Both parities of the total padding, strides,
dilations and groups are drawn; the layer API and the ``Model`` layer kind are both checked.
"""

import numpy as np
import pytest
from hypothesis import given, note, settings, strategies as st

import refcomp
import refcomp.layers as L
from refcomp.testing import assert_bits_equal
from refcomp.testing.strategies import weight_arrays

import naive

STYLES = ("same", "same_upper", "same_lower")


def _same_pads(style, length, k, s, d):
    out = -(-length // s)
    total = max(0, (out - 1) * s + (k - 1) * d + 1 - length)
    small, big = total // 2, total - total // 2
    return (big, small) if style == "same_lower" else (small, big)


@st.composite
def _configs(draw, spatial):
    g = draw(st.integers(1, 3))
    c, o = g * draw(st.integers(1, 2)), g * draw(st.integers(1, 2))
    size = tuple(draw(st.integers(1, 7)) for _ in range(spatial))
    kernel = tuple(draw(st.integers(1, 4)) for _ in range(spatial))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(spatial))
    dil = tuple(draw(st.integers(1, 3)) for _ in range(spatial))
    return dict(N=draw(st.integers(1, 2)), C=c, O=o, groups=g, size=size, kernel=kernel,
                stride=stride, dilation=dil, bias=draw(st.booleans()),
                style=draw(st.sampled_from(STYLES)))


def _draw_arrays(data, cfg, dtype):
    x = data.draw(weight_arrays((cfg["N"], cfg["C"], *cfg["size"]), dtype=dtype), label="x")
    W = data.draw(weight_arrays((cfg["O"], cfg["C"] // cfg["groups"], *cfg["kernel"]),
                                dtype=dtype), label="W")
    b = data.draw(weight_arrays((cfg["O"],), dtype=dtype), label="b") if cfg["bias"] else None
    return x, W, b


@settings(max_examples=60, deadline=None)
@given(_configs(2), st.sampled_from([np.float32, np.float64]), st.data())
def test_conv2d_same_styles_reference_bits(cfg, dtype, data):
    x, W, b = _draw_arrays(data, cfg, dtype)
    pads = tuple(_same_pads(cfg["style"], n, k, s, d) for n, k, s, d in
                 zip(cfg["size"], cfg["kernel"], cfg["stride"], cfg["dilation"]))
    note(f"pads {pads}")
    want = naive.conv2d(x, W, b, cfg["stride"], pads, cfg["dilation"],
                        cfg["groups"]).astype(dtype)
    assert want.shape[2:] == tuple(-(-n // s) for n, s in zip(cfg["size"], cfg["stride"]))
    got = L.conv2d(x, W, b, stride=cfg["stride"], padding=cfg["style"],
                   dilation=cfg["dilation"], groups=cfg["groups"])
    assert_bits_equal(got, want)
    # the same attributes as a Model layer (what the ONNX importer builds)
    weights = {"W": W} if b is None else {"W": W, "b": b}
    layer = refcomp.Layer("conv2d", weights=weights,
                          attrs={"stride": cfg["stride"], "padding": cfg["style"],
                                 "dilation": cfg["dilation"], "groups": cfg["groups"]})
    assert_bits_equal(refcomp.Model([layer])(x), want)


@settings(max_examples=60, deadline=None)
@given(_configs(1), st.sampled_from([np.float32, np.float64]), st.data())
def test_conv1d_same_styles_reference_bits(cfg, dtype, data):
    x, W, b = _draw_arrays(data, cfg, dtype)
    (k,), (s,), (d,), (n,) = cfg["kernel"], cfg["stride"], cfg["dilation"], cfg["size"]
    lo, hi = _same_pads(cfg["style"], n, k, s, d)
    want = naive.conv2d(x[:, :, None, :], W[:, :, None, :], b, (1, s), ((0, 0), (lo, hi)),
                        (1, d), cfg["groups"])[:, :, 0, :].astype(dtype)
    assert want.shape[2] == -(-n // s)
    got = L.conv1d(x, W, b, stride=s, padding=cfg["style"], dilation=d, groups=cfg["groups"])
    assert_bits_equal(got, want)


@pytest.mark.parametrize("style,want_pads", [("same_lower", ((1, 0), (2, 1))),
                                             ("same_upper", ((0, 1), (1, 2)))])
def test_conv2d_odd_total_padding_side_by_hand(style, want_pads):
    # H = 4, kh = 2: total 1; W = 5, kw = 4: total 3 -> SAME_LOWER (1, 0), (2, 1)
    assert tuple(_same_pads(style, n, k, 1, 1) for n, k in ((4, 2), (5, 4))) == want_pads
    x = np.arange(20, dtype=np.float32).reshape(1, 1, 4, 5)
    W = np.ones((1, 1, 2, 4), np.float32)
    want = naive.conv2d(x, W, None, (1, 1), want_pads, (1, 1), 1).astype(np.float32)
    assert_bits_equal(L.conv2d(x, W, padding=style), want)
    other = "same_upper" if style == "same_lower" else "same_lower"
    assert not np.array_equal(L.conv2d(x, W, padding=other), want)
