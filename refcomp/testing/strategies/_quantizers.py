"""Strategies of quantizer parameters (keyword arguments of :mod:`refcomp.quantize`)."""

import numpy as np
from hypothesis import strategies as st

from ._arrays import weight_arrays

__all__ = ["affine_params", "uniform_params", "minifloat_params", "fixed_point_params",
           "quantizer_params", "affine_tie_cases", "NAMED_MINIFLOATS"]

#: (exp_bits, man_bits, special) of the named formats (FACTS.md §6).
NAMED_MINIFLOATS = {"bfloat16": (8, 7, "ieee"), "float16": (5, 10, "ieee"),
                    "float8_e4m3fn": (4, 3, "fn"), "float8_e5m2": (5, 2, "ieee")}

_DETERMINISTIC = ("half_even", "half_away", "half_up", "floor")


@st.composite
def affine_params(draw, *, ndim=None, max_bits=8, roundings=_DETERMINISTIC,
                  scale_ops=("divide", "reciprocal", "reciprocal_add_zp",
                             "reciprocal_fma_zp")):
    """Keyword arguments of :func:`refcomp.quantize.affine` (scale and zero point computed).

    Parameters
    ----------
    ndim : int, optional, keyword-only
        Rank of the tensor the parameters are for: ``axis`` is drawn from
        None (per tensor) and ``0 .. ndim-1`` (per channel); per tensor
        only when omitted.
    max_bits : int, keyword-only
        Bits drawn in ``[2, max_bits]``.
    roundings, scale_ops : keyword-only
        The named rounding modes and operation orders to draw from
        (FACTS.md §5.9: ONNX/ORT half-even division, TFLite half-away
        division, PyTorch half-even multiplication by the reciprocal ...).

    Returns
    -------
    SearchStrategy of dict
        ``bits, symmetric, narrow_range, signed, axis, rounding, scale_op``.

    Examples
    --------
    Your own round-half-even, divide-by-scale quantizer (ONNX
    QuantizeLinear's rule), given refcomp's scale and zero point::

        @given(weight_arrays((4, 16), specials=False),
               affine_params(ndim=2, roundings=("half_even",), scale_ops=("divide",)))
        def test_my_quantize_linear(w, kw):
            q = refcomp.quantize.affine(w, **kw)
            p = q.params
            mine = my_quantize_linear(w, p["scale"], p["zero_point"], axis=p["axis"],
                                      qmin=p["qmin"], qmax=p["qmax"])
            compare_quantized(mine, w, q).assert_ok()
    """
    symmetric = draw(st.booleans())
    return {"bits": draw(st.integers(2, max_bits)), "symmetric": symmetric,
            "narrow_range": draw(st.booleans()), "signed": draw(st.booleans()),
            "axis": None if ndim is None else draw(st.one_of(st.none(),
                                                             st.integers(0, ndim - 1))),
            "rounding": draw(st.sampled_from(tuple(roundings))),
            "scale_op": draw(st.sampled_from(tuple(scale_ops)))}


def uniform_params(*, max_bits=8):
    """Keyword arguments of :func:`refcomp.quantize.uniform`: ``{"bits", "grid"}``.

    Examples
    --------
    Your own uniform quantizer's cell indices (boundary cases apart)::

        @given(weight_arrays(specials=False), uniform_params())
        def test_my_uniform(w, kw):
            q = refcomp.quantize.uniform(w, **kw)
            compare_quantized(my_uniform(w, kw["bits"], grid=kw["grid"]), w, q).assert_ok()
    """
    return st.fixed_dictionaries({"bits": st.integers(1, max_bits),
                                  "grid": st.sampled_from(("range", "zero"))})


@st.composite
def minifloat_params(draw, *, named=True):
    """Keyword arguments of :func:`refcomp.quantize.minifloat`.

    The named formats of :data:`NAMED_MINIFLOATS` (bfloat16, float16,
    float8 e4m3fn and e5m2) and, unless ``named`` only, free ones
    (2-8 exponent bits, 1-10 mantissa bits, with or without subnormals,
    saturating or not).

    Returns
    -------
    SearchStrategy of dict
        ``exp_bits, man_bits, special, subnormals, saturate`` (and ``name``
        for a named format, to be removed before the call).

    Examples
    --------
    Your own float-format cast, as bit patterns (NaN, infinities,
    subnormals and saturation included)::

        @given(weight_arrays(subnormals=True, specials=True), minifloat_params())
        def test_my_minifloat(w, kw):
            kw.pop("name", None)
            q = refcomp.quantize.minifloat(w, **kw)
            compare_quantized(my_minifloat_bits(w, **kw), w, q).assert_ok()
    """
    if named and draw(st.booleans()):
        name = draw(st.sampled_from(sorted(NAMED_MINIFLOATS)))
        e, m, special = NAMED_MINIFLOATS[name]
        return {"name": name, "exp_bits": e, "man_bits": m, "special": special,
                "subnormals": True, "saturate": draw(st.booleans())}
    return {"exp_bits": draw(st.integers(2, 8)), "man_bits": draw(st.integers(1, 10)),
            "special": draw(st.sampled_from(("ieee", "fn"))),
            "subnormals": draw(st.booleans()), "saturate": draw(st.booleans())}


@st.composite
def fixed_point_params(draw, *, max_word_bits=16):
    """Keyword arguments of :func:`refcomp.quantize.fixed_point`:
    ``word_bits`` in [2, max_word_bits], ``frac_bits`` in [-4, word_bits + 4],
    ``rounding`` (a deterministic mode).

    Examples
    --------
    Your own saturating fixed-point conversion::

        @given(weight_arrays(specials=False), fixed_point_params())
        def test_my_fixed_point(w, kw):
            q = refcomp.quantize.fixed_point(w, **kw)
            compare_quantized(my_fixed_point(w, **kw), w, q).assert_ok()
    """
    wb = draw(st.integers(2, max_word_bits))
    return {"word_bits": wb, "frac_bits": draw(st.integers(-4, wb + 4)),
            "rounding": draw(st.sampled_from(_DETERMINISTIC))}


def quantizer_params():
    """``(name, kwargs)`` for one of refcomp's scalar quantizers: "affine", "uniform",
    "minifloat" or "fixed_point" (``getattr(refcomp.quantize, name)(w, **kwargs)``;
    drop a minifloat's ``name`` key first).

    Examples
    --------
    Your own library of quantizers, one per name, in one property::

        @given(weight_arrays(specials=False), quantizer_params())
        def test_my_quantizers(w, case):
            name, kw = case
            kw = {k: v for k, v in kw.items() if k != "name"}
            q = getattr(refcomp.quantize, name)(w, **kw)
            compare_quantized(my_quantizers[name](w, **kw), w, q).assert_ok()
    """
    return st.one_of(st.tuples(st.just("affine"), affine_params()),
                     st.tuples(st.just("uniform"), uniform_params()),
                     st.tuples(st.just("minifloat"), minifloat_params()),
                     st.tuples(st.just("fixed_point"), fixed_point_params()))


@st.composite
def affine_tie_cases(draw, *, max_size=64):
    """``(w, kwargs)`` for :func:`refcomp.quantize.affine` in which many values are exact ties.

    The scale is a power of two (``2**k``, k in [-10, 0]) and the zero point
    is drawn in the code range, so ``w = (m + 1/2) * scale`` is exact in
    float32 and so is ``w / scale``: every such element sits exactly on a
    cell boundary, where the rounding mode decides (half-even, half-away,
    half-up ...).  The rest are ordinary Gaussian values.

    Returns
    -------
    SearchStrategy of (numpy.ndarray float32 (n,), dict)
        kwargs ``bits=8, scale, zero_point, signed, rounding, scale_op``.

    Examples
    --------
    A TFLite-style port (round half away from zero) against refcomp's
    half-to-even codes: the ties it decides the other way are reported as
    ties, with its rule named, not as mismatches::

        @given(affine_tie_cases())
        def test_my_tflite_quantize_ties(case):
            w, kw = case
            q = refcomp.quantize.affine(w, **dict(kw, rounding="half_even"))
            mine = my_tflite_quantize(w, kw["scale"], kw["zero_point"], signed=kw["signed"])
            res = compare_quantized(mine, w, q)
            assert res.ok, res.report()
            assert "half_away" in res.tie_rules
    """
    signed = draw(st.booleans())
    qmin, qmax = (-128, 127) if signed else (0, 255)
    zp = draw(st.integers(qmin, qmax))
    scale = 2.0 ** draw(st.integers(-10, 0))
    n = draw(st.integers(2, max_size))
    m = np.asarray(draw(st.lists(st.integers(qmin - zp - 2, qmax - zp + 1), min_size=n,
                                 max_size=n)), np.float64)
    ties = ((m + 0.5) * scale).astype(np.float32)
    other = draw(weight_arrays((n,), scale=scale * 20, ties=False, zeros=True))
    pick = np.asarray(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    w = np.where(pick, ties, other).astype(np.float32)
    return w, {"bits": 8, "scale": scale, "zero_point": zp, "signed": signed,
               "rounding": draw(st.sampled_from(_DETERMINISTIC)),
               "scale_op": draw(st.sampled_from(("divide", "reciprocal")))}
