"""Knowledge distillation (Hinton, Vinyals & Dean, "Distilling the Knowledge in a
Neural Network", NIPS 2014 Deep Learning Workshop, arXiv:1503.02531, §2; cited
by seeds 000, 002 and 004): softened softmax, the distillation loss with its
T**2 scaling, and its closed-form gradient for external training loops.

Arithmetic shared by every function (all in float64, whatever the input
dtype; float32 logits convert exactly):

* ``a = z / T``: one float64 division per logit (exact when T is a power of
  two);
* ``m = max_c a[n, c]`` (exact); ``e = exp(a - m)``, one call of the C
  library's ``exp`` per element (:func:`refcomp.kernels.elementwise.exp64`,
  the path of the reference ``refcomp.layers.softmax``), never NumPy's
  ``np.exp``, whose SIMD implementations (AVX-512, AVX2, SVE, scalar) may
  differ in the last bit between machines of the same NumPy version;
* ``s = sum_c e[n, c]``, accumulated sequentially over c = 0, 1, ... from
  +0.0 (vectorised over rows, never reordered);
* softmax ``e / s`` (one division); log-softmax ``(a - m) - log(s)`` with
  the C library's ``log`` (Python's ``math.log``) once per row;
* softmax and log-softmax are exactly :func:`refcomp.layers.softmax` /
  :func:`refcomp.layers.log_softmax` (``precision="reference"``) of the
  float64 array ``a``;
* KL and cross-entropy terms per sample summed sequentially over classes;
  the batch mean is the sequential sum over samples divided once by N.

exp and log are not correctly rounded, but they are one scalar function
per C library, called element by element, so the bits depend neither on
NumPy's SIMD dispatch nor on the thread count.  glibc's double ``exp`` and
``log`` (since 2.28) are table-based with an error below 0.52 ulp; glibc
builds them with and without FMA (chosen by the CPU at load time), and the
two can differ only where the exact value lies within 0.02 ulp of the
midpoint between two doubles.
``tests/test_distill.py`` checks exp64 against mpmath (below 0.52 ulp:
worst 0.5023 ulp, 7 of 4000 arguments not correctly rounded, glibc 2.36)
and each softmax value against mpmath within the bound of :func:`softmax`.

Non-finite logits are refused (ParameterError): the loss of an Inf logit
has no meaning for training, and NaN would propagate silently.
"""

import math
import numbers

import numpy as np

from .._errors import ParameterError, ShapeError
from .._validate import as_float_array, check_finite, describe
from ..kernels.elementwise import exp64
from ..layers import activations as _act

__all__ = ["softmax", "log_softmax", "distillation_loss", "distillation_grad"]


def _temperature(temperature):
    if isinstance(temperature, bool) or not isinstance(temperature, (numbers.Real, np.floating)) \
            or not math.isfinite(float(temperature)) or float(temperature) <= 0:
        raise ParameterError(f"temperature must be a finite number > 0, got {temperature!r}")
    return float(temperature)


def _logits(name, z):
    as_float_array(name, z, ndim=2)
    if z.shape[1] == 0:
        raise ShapeError(f"{name} must have at least one class, got {describe(z)}")
    check_finite(name, z)
    return z.astype(np.float64)


def _row_sums(a):
    s = np.zeros(a.shape[0], dtype=np.float64)
    for c in range(a.shape[1]):        # sequential over classes (module docstring)
        s += a[:, c]
    return s


def softmax(z, *, temperature=1.0):
    """Softened softmax ``q_c = exp(z_c / T) / sum_j exp(z_j / T)`` (Hinton et al. eq. (1)).

    Parameters
    ----------
    z : ndarray (N, C), float32 or float64, finite
    temperature : float > 0 (T; 1 is the ordinary softmax)

    Returns
    -------
    ndarray (N, C) float64; each row sums to 1 within C ulps.  Arithmetic in
    the module docstring (max subtracted first, so no overflow; the C
    library's exp, never ``np.exp``): ``refcomp.layers.softmax(z / T)`` in
    float64.  Accuracy: with ``A = max |z / T|`` and ``u = 2**-53``, each
    value is within a relative ``(8 A + C + 5) u`` of the exact softmax of
    z / T (the division and the subtraction of the max perturb the
    exponent by at most ``4 A u``, exp adds < 1 ulp, the sum ``(C - 1) u``
    and the division ``u``); tested against mpmath.
    """
    a = _logits("z", z) / _temperature(temperature)
    return _act.softmax(a, axis=1)


def log_softmax(z, *, temperature=1.0):
    """``log softmax(z / T)`` in float64: ``(a - m) - log(sum exp(a - m))`` with the C
    library's exp and log (``refcomp.layers.log_softmax(z / T)`` in float64, module
    docstring); finite for finite ``z`` (no log of an underflowed probability)."""
    a = _logits("z", z) / _temperature(temperature)
    return _act.log_softmax(a, axis=1)


def _check_pair(student_logits, teacher_logits, labels, alpha):
    s = _logits("student_logits", student_logits)
    t = _logits("teacher_logits", teacher_logits)
    if s.shape != t.shape:
        raise ShapeError(f"student_logits and teacher_logits must have the same shape, got "
                         f"{describe(student_logits)} and {describe(teacher_logits)}")
    if isinstance(alpha, bool) or not isinstance(alpha, (numbers.Real, np.floating)) \
            or not 0 <= float(alpha) <= 1:
        raise ParameterError(f"alpha must be a number in [0, 1], got {alpha!r}")
    if not isinstance(labels, np.ndarray) or labels.dtype.kind not in "iu" \
            or labels.shape != (s.shape[0],):
        raise ShapeError(f"labels must be an integer ndarray of shape ({s.shape[0]},), got "
                         f"{describe(labels)}")
    if labels.size and (int(labels.min()) < 0 or int(labels.max()) >= s.shape[1]):
        raise ParameterError(f"labels must lie in [0, {s.shape[1]}) for {s.shape[1]} classes, "
                             f"got range [{int(labels.min())}, {int(labels.max())}]")
    if s.shape[0] == 0:
        raise ShapeError("the batch is empty (N = 0): the mean loss is undefined")
    return s, t, float(alpha)


def distillation_loss(student_logits, teacher_logits, labels, *, temperature, alpha):
    """Hinton et al.'s distillation objective, averaged over the batch.

    ``L = mean_n [ alpha * T**2 * KL(p_T || q_T) + (1 - alpha) * CE(y, q_1) ]``

    with ``p_T = softmax(teacher / T)``, ``q_T = softmax(student / T)``,
    ``q_1 = softmax(student)`` and ``CE(y, q) = -log q_y``.  The T**2 factor
    keeps the soft term's gradients of the same magnitude when T changes
    (§2.1).  The paper writes the soft term as the cross-entropy
    ``H(p_T, q_T)``; KL differs from it by the teacher's entropy, a constant
    of the student, so the gradient (:func:`distillation_grad`) is the
    same and the loss is 0 when the student matches the teacher.

    Parameters
    ----------
    student_logits, teacher_logits : ndarray (N, C), float32 or float64, same
        shape, finite (dtypes may differ: both are converted exactly to float64)
    labels : ndarray (N,) of integers in [0, C)
    temperature : float > 0
    alpha : float in [0, 1], the weight of the soft term

    Returns
    -------
    float (float64).  KL terms ``p (log p - log q)`` use log-softmax values
    and ``p = exp(log p)`` (the C library's exp; p = 0 contributes 0);
    per-sample terms are summed over classes sequentially,
    ``alpha * T * T * KL + (1 - alpha) * CE`` is formed in that order, and
    the batch mean is the sequential sum divided once by N.

    Raises
    ------
    ShapeError : mismatched logit shapes, wrong labels shape, empty batch
    ParameterError : non-finite logits, temperature <= 0, alpha outside [0, 1],
        labels out of range
    """
    s, t, alpha = _check_pair(student_logits, teacher_logits, labels, alpha)
    T = _temperature(temperature)
    lp = log_softmax(t, temperature=T)
    lq = log_softmax(s, temperature=T)
    p = exp64(lp)                    # the C library's exp (module docstring)
    kl = _row_sums(np.where(p > 0, p * (lp - lq), 0.0))
    ce = -log_softmax(s)[np.arange(s.shape[0]), labels]
    per = alpha * T * T * kl + (1.0 - alpha) * ce
    total = 0.0
    for v in per.tolist():
        total += v
    return total / s.shape[0]


def distillation_grad(student_logits, teacher_logits, labels, *, temperature, alpha):
    """Gradient of :func:`distillation_loss` with respect to the student logits.

    ``dL/dz[n] = ( alpha * T * (q_T[n] - p_T[n]) + (1 - alpha) * (q_1[n] - onehot(y_n)) ) / N``

    (d/dz KL(p || softmax(z / T)) = (q_T - p) / T, times T**2; Hinton et al.
    eq. (2)).  Closed form, for training loops outside refcomp (e.g. as the
    backward of a ``torch.autograd.Function``).

    Parameters
    ----------
    As :func:`distillation_loss`.

    Returns
    -------
    ndarray (N, C) float64: softmax values as in :func:`softmax`, then
    ``alpha * T`` times the difference, plus ``(1 - alpha)`` times the hard
    difference, divided by N, each step one float64 rounding in that order.
    """
    s, t, alpha = _check_pair(student_logits, teacher_logits, labels, alpha)
    T = _temperature(temperature)
    soft = softmax(s, temperature=T) - softmax(t, temperature=T)
    hard = softmax(s)
    hard[np.arange(s.shape[0]), labels] -= 1.0
    return (alpha * T * soft + (1.0 - alpha) * hard) / s.shape[0]
