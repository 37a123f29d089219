"""Strategies of float32-exact values and weight tensors."""

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ..._errors import ParameterError

__all__ = ["float32_values", "weight_arrays", "FEATURES"]

#: Values of the corner-case options of :func:`weight_arrays`.
FEATURES = (False, True, "always")

_SMALLEST_SUBNORMAL32 = 2.0 ** -149


def float32_values(*, max_magnitude=1e4, allow_subnormal=False, allow_special=False):
    """Scalars exactly representable in float32, as Python floats.

    Parameters
    ----------
    max_magnitude : float, keyword-only
        Largest finite magnitude drawn (rounded down to float32).
    allow_subnormal : bool, keyword-only
        Also draw float32 subnormals (magnitudes below 2**-126).
    allow_special : bool, keyword-only
        Also draw NaN, +inf and -inf.

    Returns
    -------
    SearchStrategy of float
        ``hypothesis.strategies.floats(width=32, ...)``: every value is a
        float32 (so ``numpy.float32(v) == v``), signed zeros included.

    Examples
    --------
    A property of your own float32 rounding, which must agree with
    refcomp's bfloat16 codes::

        @given(float32_values(allow_subnormal=True, allow_special=True))
        def test_my_bf16(v):
            mine = my_to_bfloat16_bits(v)
            ref = refcomp.quantize.to_bfloat16(np.float32([v])).codes[0]
            assert mine == ref
    """
    m = float(np.float32(max_magnitude))
    return st.floats(min_value=None if allow_special else -m,
                     max_value=None if allow_special else m, width=32,
                     allow_nan=allow_special, allow_infinity=allow_special,
                     allow_subnormal=allow_subnormal)


def _feature(name, value):
    if value not in FEATURES:
        raise ParameterError(f"{name} must be False, True or 'always', got {value!r}")
    if value == "always":
        return st.just(True)
    return st.booleans() if value else st.just(False)


@st.composite
def _weights(draw, shape, distribution, scale, ties, zeros, subnormals, specials, dtype):
    if shape is None:
        shape = draw(hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=6))
    elif isinstance(shape, st.SearchStrategy):
        shape = draw(shape)
    shape = tuple(int(s) for s in shape)
    dist = draw(st.sampled_from(("gaussian", "laplacian"))) if distribution is None \
        else distribution
    if scale is None:
        # realistic initialisation / trained scales: 2**-10 .. 2**3
        scale = draw(st.sampled_from((1.0, 1.5))) * 2.0 ** draw(st.integers(-10, 3))
    seed = draw(st.integers(0, 2 ** 32 - 1))
    rng = np.random.default_rng(seed)
    if dist == "gaussian":
        w = rng.normal(0.0, scale, shape)
    elif dist == "laplacian":
        w = rng.laplace(0.0, scale / np.sqrt(2.0), shape)       # standard deviation = scale
    else:
        raise ParameterError(f"distribution must be 'gaussian', 'laplacian' or None, "
                             f"got {dist!r}")
    w = w.astype(dtype)
    flat = w.reshape(-1)
    n = flat.size
    free = list(rng.permutation(n))           # positions not yet given a corner case

    def take(k):
        out = np.array(free[:k], np.intp)
        del free[:k]
        return out
    if draw(_feature("ties", ties)) and n >= 2:
        # snap a fraction to a coarse grid (many equal values), and make one
        # exact tie in magnitude with the opposite sign (magnitude pruning's case)
        frac = draw(st.sampled_from((0.25, 0.5, 1.0)))
        step = dtype(scale / 4)
        pick = rng.random(n) < frac
        # np.round rounds half to even; any rule would do (only equal values are
        # wanted), but the drawn data must be the same on every host.
        flat[pick] = (np.round(flat[pick] / step) * step).astype(dtype)
        i, j = take(2)
        flat[j] = -flat[i]
    if draw(_feature("zeros", zeros)) and free:
        idx = take(max(1, n // 8))
        flat[idx] = dtype(0.0)
        flat[idx[: (idx.size + 1) // 2]] = dtype(-0.0)
    if draw(_feature("subnormals", subnormals)) and free:
        idx = take(max(1, n // 16))
        tiny = np.finfo(dtype).smallest_subnormal
        mant = rng.integers(1, 2 ** 10, idx.size)
        flat[idx] = (mant * tiny * rng.choice([-1, 1], idx.size)).astype(dtype)
    if draw(_feature("specials", specials)) and free:
        idx = take(max(1, n // 16))
        flat[idx] = rng.choice(np.array([np.nan, np.inf, -np.inf], dtype), idx.size)
    return flat.reshape(shape)


def weight_arrays(shape=None, *, distribution=None, scale=None, ties=True, zeros=True,
                  subnormals=False, specials=False, dtype=np.float32):
    """Weight tensors of realistic values with the corner cases compression meets.

    Parameters
    ----------
    shape : tuple of int or SearchStrategy of tuples, optional
        Drawn (1 to 4 axes of 1 to 6) when omitted.
    distribution : {"gaussian", "laplacian"} or None, keyword-only
        None draws either.  Values ``N(0, scale**2)`` or Laplace with the
        standard deviation ``scale``, from a ``numpy.random.Generator``
        seeded by a drawn integer (hence deterministic per example), then
        rounded (RNE) to ``dtype``: every value is exactly a ``dtype`` value.
    scale : float, optional
        Standard deviation; drawn from ``{1, 1.5} * 2**k``, k in [-10, 3],
        when omitted (from initialisation scales to trained outliers).
    ties, zeros, subnormals, specials : {False, True, "always"}, keyword-only
        Corner cases: False never, True in some examples (drawn), "always"
        in every example when the array has room (each corner case takes
        its own positions, in the order below: a 16-element array holds all
        four).

        * ties: a fraction (1/4, 1/2 or all) of the entries snapped to the
          grid ``scale/4`` (many equal values, k-means' and quantizers' ties)
          plus one pair of entries ``w[j] = -w[i]`` (equal magnitudes:
          magnitude pruning's ties);
        * zeros: ``max(1, n/8)`` entries set to exact zeros, half of them
          ``-0.0``;
        * subnormals: ``max(1, n/16)`` entries set to ``±m * smallest
          subnormal``, ``m < 2**10``;
        * specials: ``max(1, n/16)`` entries set to NaN, +inf or -inf.
    dtype : numpy.float32 or numpy.float64, keyword-only

    Returns
    -------
    SearchStrategy of numpy.ndarray

    Examples
    --------
    Your own symmetric int8 quantizer against refcomp's codes, ties and
    boundary cases reported separately::

        @given(weight_arrays(specials=False))
        def test_my_int8(w):
            q = refcomp.quantize.affine(w, 8, symmetric=True, narrow_range=True)
            mine = my_quantize_int8(w, q.params["scale"][0])
            compare_quantized(mine, w, q).assert_ok()
    """
    dtype = np.dtype(dtype).type
    if dtype not in (np.float32, np.float64):
        raise ParameterError(f"dtype must be float32 or float64, got {np.dtype(dtype)}")
    return _weights(shape, distribution, scale, ties, zeros, subnormals, specials, dtype)
