"""Distillation: softened softmax, Hinton et al.'s loss with T^2, and its closed-form
gradient against naive Python loops and finite differences."""

import math

import numpy as np
import pytest
from hypothesis import given, strategies as st

from refcomp import ParameterError, ShapeError
from refcomp.distill import distillation_grad, distillation_loss, log_softmax, softmax


def _naive_loss(s, t, y, T, alpha):
    total = 0.0
    for n in range(s.shape[0]):
        def sm(z, temp):
            e = [math.exp(v / temp - max(z) / temp) for v in z]
            return [v / math.fsum(e) for v in e]
        p, q, q1 = sm(t[n].tolist(), T), sm(s[n].tolist(), T), sm(s[n].tolist(), 1.0)
        kl = math.fsum(pi * math.log(pi / qi) for pi, qi in zip(p, q) if pi > 0)
        total += alpha * T * T * kl + (1 - alpha) * -math.log(q1[y[n]])
    return total / s.shape[0]


def _batch(rs=0, n=5, c=7, dtype=np.float64):
    rng = np.random.default_rng(rs)
    return (rng.standard_normal((n, c)).astype(dtype) * 3, rng.standard_normal((n, c)).astype(dtype) * 3,
            rng.integers(0, c, n))


@pytest.mark.parametrize("T", [1.0, 2.0, 4.5, 20.0])
@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0])
def test_loss_matches_naive_loops(T, alpha):
    s, t, y = _batch()
    assert math.isclose(distillation_loss(s, t, y, temperature=T, alpha=alpha),
                        _naive_loss(s, t, y, T, alpha), rel_tol=1e-12, abs_tol=1e-14)


def test_softmax_rows_and_temperature():
    z = np.array([[1.0, 2.0, 3.0], [1000.0, 1000.0, -1000.0]], np.float32)
    p = softmax(z, temperature=2.0)
    assert p.dtype == np.float64 and np.allclose(p.sum(axis=1), 1.0, atol=1e-15)
    assert np.allclose(p[0], np.exp(np.array([1, 2, 3]) / 2) / np.exp(np.array([1, 2, 3]) / 2).sum())
    assert p[1, 0] == p[1, 1] and p[1, 2] == 0.0
    assert np.all(np.isfinite(log_softmax(z, temperature=0.5)))
    # a higher temperature gives a softer distribution (Hinton et al. §2)
    assert softmax(z[:1], temperature=10.0).max() < softmax(z[:1], temperature=1.0).max()


def test_loss_zero_when_student_equals_teacher_and_alpha_one():
    s, _, y = _batch(1)
    assert abs(distillation_loss(s, s.copy(), y, temperature=3.0, alpha=1.0)) < 1e-15


@given(st.floats(0.5, 8.0), st.floats(0.0, 1.0), st.integers(0, 50))
def test_gradient_matches_finite_differences(T, alpha, rs):
    s, t, y = _batch(rs, n=3, c=5)
    g = distillation_grad(s, t, y, temperature=T, alpha=alpha)
    h = 1e-6
    for n in range(s.shape[0]):
        for c in range(s.shape[1]):
            sp, sm_ = s.copy(), s.copy()
            sp[n, c] += h
            sm_[n, c] -= h
            fd = (distillation_loss(sp, t, y, temperature=T, alpha=alpha)
                  - distillation_loss(sm_, t, y, temperature=T, alpha=alpha)) / (2 * h)
            assert abs(fd - g[n, c]) <= 1e-6 * max(1.0, abs(g[n, c]))


def test_gradient_rows_sum_to_zero():
    s, t, y = _batch(2)
    g = distillation_grad(s, t, y, temperature=2.0, alpha=0.5)
    assert np.allclose(g.sum(axis=1), 0.0, atol=1e-15)


def test_float32_logits_accepted_and_mixed_dtypes_exact():
    s, t, y = _batch(3)
    a = distillation_loss(s.astype(np.float32), t, y, temperature=2.0, alpha=0.5)
    b = distillation_loss(s.astype(np.float32).astype(np.float64), t, y, temperature=2.0,
                          alpha=0.5)
    assert a == b


def test_bad_input():
    s, t, y = _batch()
    with pytest.raises(ShapeError, match="same shape"):
        distillation_loss(s, t[:, :3], y, temperature=2.0, alpha=0.5)
    with pytest.raises(ShapeError, match="same shape"):
        distillation_grad(s[:2], t, y, temperature=2.0, alpha=0.5)
    bad = s.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ParameterError, match="non-finite"):
        distillation_loss(bad, t, y, temperature=2.0, alpha=0.5)
    bad[0, 0] = np.inf
    with pytest.raises(ParameterError, match="non-finite"):
        softmax(bad)
    for T in (0, -1.0, float("nan"), float("inf"), True):
        with pytest.raises(ParameterError, match="temperature"):
            softmax(s, temperature=T)
    for a in (-0.1, 1.5, float("nan")):
        with pytest.raises(ParameterError, match="alpha"):
            distillation_loss(s, t, y, temperature=2.0, alpha=a)
    with pytest.raises(ParameterError, match="labels"):
        distillation_loss(s, t, y + 7, temperature=2.0, alpha=0.5)
    with pytest.raises(ShapeError, match="labels"):
        distillation_loss(s, t, y[:2], temperature=2.0, alpha=0.5)


def _ulp(v):
    """ulp of the float64 nearest an mpmath value (an exact power of two)."""
    return math.ulp(float(v))


def test_exp_is_the_c_library_within_half_an_ulp_of_mpmath():
    """The exp of softmax / log-softmax / the loss (refcomp.kernels.elementwise.exp64, the C
    library's exp, never NumPy's SIMD exp) against mpmath at 120 bits: below 0.52 ulp
    everywhere (glibc's bound), correctly rounded on nearly every argument."""
    import mpmath
    from refcomp.kernels.elementwise import exp64
    mpmath.mp.prec = 120
    rng = np.random.default_rng(11)
    x = np.concatenate([-rng.random(3000) * 40, -rng.random(500) * 745, rng.random(500) * 700,
                        [0.0, -0.0, -1e-300, -5e-324, -708.0, -745.0]])
    got = exp64(x)
    worst, wrong = 0.0, 0
    for v, g in zip(x.tolist(), got.tolist()):
        exact = mpmath.exp(mpmath.mpf(v))
        err = abs(mpmath.mpf(g) - exact) / _ulp(exact)
        worst = max(worst, float(err))
        wrong += float(exact) != g                        # float(): correctly rounded
    assert worst < 0.52
    assert wrong <= len(x) // 100


@pytest.mark.parametrize("T", [1.0, 0.5, 3.0, 7.25])
def test_softmax_against_mpmath_within_the_stated_bound(T):
    """Every softmax value within a relative (8 A + C + 5) 2**-53 of mpmath's softmax of the
    exact z / T (A = max |z / T|), the bound of the docstring; log-softmax within the
    absolute counterpart; rows of huge spread underflow exactly as mpmath rounds them."""
    import mpmath
    mpmath.mp.prec = 120
    rng = np.random.default_rng(12)
    z = np.concatenate([rng.standard_normal((6, 10)) * 4,
                        rng.integers(-30, 30, (2, 10)).astype(np.float64),
                        [[700.0, -700.0, 0.0, 1e-300, -1e-300, 5.0, 5.0, 5.0, 0.5, 0.25]]])
    p = softmax(z, temperature=T)
    lp = log_softmax(z, temperature=T)
    u = 2.0 ** -53
    for n in range(z.shape[0]):
        a = [mpmath.mpf(v) / mpmath.mpf(T) for v in z[n].tolist()]
        m = max(a)
        e = [mpmath.exp(v - m) for v in a]
        s = mpmath.fsum(e)
        A = float(max(abs(v) for v in a))
        bound = (8 * A + z.shape[1] + 5) * u
        for c in range(z.shape[1]):
            exact = e[c] / s
            if float(exact) == 0.0:
                assert p[n, c] < 1e-300
                continue
            assert abs(mpmath.mpf(p[n, c]) - exact) <= bound * exact
            lexact = (a[c] - m) - mpmath.log(s)
            assert abs(mpmath.mpf(lp[n, c]) - lexact) <= bound * max(1, abs(lexact))


def test_softmax_is_the_reference_softmax_layer_bit_for_bit():
    """distill.softmax / log_softmax are refcomp.layers' reference softmax of z / T (one exp
    path for the whole library), and distill.softmax calls no np.exp."""
    from unittest import mock
    from refcomp.layers import log_softmax as layer_log_softmax, softmax as layer_softmax
    s, t, y = _batch(4)
    a = s / 2.5
    assert np.array_equal(softmax(s, temperature=2.5).view(np.uint64),
                          layer_softmax(a, axis=1).view(np.uint64))
    assert np.array_equal(log_softmax(s, temperature=2.5).view(np.uint64),
                          layer_log_softmax(a, axis=1).view(np.uint64))
    with mock.patch.object(np, "exp", side_effect=AssertionError("np.exp called")), \
            mock.patch.object(np, "log", side_effect=AssertionError("np.log called")):
        softmax(s, temperature=2.0)
        distillation_loss(s, t, y, temperature=2.0, alpha=0.5)
        distillation_grad(s, t, y, temperature=2.0, alpha=0.5)
