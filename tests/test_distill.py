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
