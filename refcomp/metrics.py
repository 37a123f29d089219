"""Metrics of Resmerita et al. (seed 002): accuracy eq. (9), KL eq. (11),
parameter MSE eq. (14) and compression ratio eq. (19)."""

import math

import numpy as np

from ._errors import ShapeError
from ._validate import as_float_array, describe

__all__ = ["accuracy", "mean_kl", "kl_in_unit", "KL_UNITS", "log_softmax64", "parameter_mse",
           "compression_ratio"]

#: units of :func:`mean_kl` (and of the study's KL column)
KL_UNITS = ("nats", "bits")


def accuracy(outputs, labels):
    """Accuracy eq. (9): fraction of samples whose argmax (eq. (10)) equals the label.

    outputs : (N, C) float scores (probabilities or logits: argmax is the same).
    labels : (N,) integer class indices.
    Ties in the argmax go to the lowest class index (``np.argmax``); a row
    containing NaN predicts the first NaN's index (NumPy rule).  Returns a
    Python float, ``correct / N`` (correctly rounded); N = 0 is an error.
    """
    as_float_array("outputs", outputs, ndim=2)
    labels = np.asarray(labels)
    if labels.shape != (outputs.shape[0],) or labels.dtype.kind not in "iu":
        raise ShapeError(f"labels must be integers of shape ({outputs.shape[0]},), got "
                         f"{describe(labels)}")
    if outputs.shape[0] == 0:
        raise ShapeError("accuracy of an empty test set is undefined")
    correct = int(np.count_nonzero(np.argmax(outputs, axis=1) == labels))
    return correct / outputs.shape[0]


def log_softmax64(logits):
    """log softmax along the last axis in float64: ``z - m - log(sum(exp(z - m)))``.

    exp and log through libm (:mod:`refcomp.kernels.elementwise` for exp;
    ``np.log`` of the row sums, one value per row), row sum sequential.
    Never returns -inf for finite logits closer than ~1e308.
    """
    from .kernels.elementwise import exp64
    z = np.asarray(logits, dtype=np.float64)
    m = z.max(axis=-1, keepdims=True)
    e = exp64(z - m)
    s = np.zeros(e.shape[:-1])
    for j in range(e.shape[-1]):
        s += e[..., j]
    logs = np.array([math.log(v) for v in s.reshape(-1)]).reshape(s.shape)
    return z - m - logs[..., None]


def mean_kl(logits_ref, logits_hat, *, unit="nats"):
    """Mean over samples of KL(p, p^) eq. (11), in nats (natural log) or bits.

    ``p = softmax(logits_ref)`` is the original network's output and
    ``p^ = softmax(logits_hat)`` the compressed one's, both from the
    pre-softmax outputs (logits).  Computed in float64 from log-softmax:
    ``KL_i = sum_c p_c (log p_c - log p^_c)``, so p^_c = 0 never occurs for
    finite logits (no clamping needed); terms with p_c = 0 (exp underflow)
    contribute exactly 0 (the limit p log p -> 0).  Per-sample sums are
    sequential over classes; the mean is ``math.fsum(KL_i) / N`` (correctly
    rounded sum).

    ``unit``: "nats" (default; what the study's runs.csv and tables
    report unless asked otherwise: eq. (11) writes ``log`` without a base)
    or "bits": :func:`kl_in_unit` of the nats value (one more float64
    rounding).  Seed 002 writes its cross-entropy eq. (8) with ``log2`` but
    not its KL.
    """
    a = as_float_array("logits_ref", logits_ref, ndim=2)
    b = as_float_array("logits_hat", logits_hat, ndim=2)
    if a.shape != b.shape:
        raise ShapeError(f"logits_ref {describe(a)} and logits_hat {describe(b)} differ in shape")
    lp, lq = log_softmax64(a), log_softmax64(b)
    from .kernels.elementwise import exp64
    p = exp64(lp)
    terms = np.where(p > 0, p * (lp - lq), 0.0)
    kl = np.zeros(a.shape[0])
    for c in range(a.shape[1]):
        kl += terms[:, c]
    return kl_in_unit(math.fsum(kl.tolist()) / a.shape[0], unit)


def kl_in_unit(nats, unit):
    """A KL divergence given in nats, expressed in ``unit`` ("nats" or "bits").

    "nats": ``nats`` itself; "bits": ``nats / math.log(2)``, one float64
    division by the float64 value of ln 2 (so at most one more rounding
    than the nats value; 1 nat = 1/ln 2 ≈ 1.4427 bits).
    """
    from ._validate import check_choice
    check_choice("unit", unit, KL_UNITS)
    return nats if unit == "nats" else nats / math.log(2)


def parameter_mse(original, decoded):
    """MSE eq. (14): ``(1/|theta|) sum (w - Q(w))^2`` over all given arrays.

    original, decoded : sequences of arrays (same shapes pairwise).  Each
    difference and square is formed in float64 (exact difference for
    float32 data, one rounding for the square); the sum is ``math.fsum``
    (correctly rounded, order-independent), then one division by |theta|.
    """
    total, n = [], 0
    for w, q in zip(original, decoded):
        if np.shape(w) != np.shape(q):
            raise ShapeError(f"original {np.shape(w)} and decoded {np.shape(q)} differ")
        d = np.asarray(w, dtype=np.float64) - np.asarray(q, dtype=np.float64)
        total.extend((d * d).reshape(-1).tolist())
        n += d.size
    if n == 0:
        return 0.0
    return math.fsum(total) / n


def compression_ratio(original_bits, compressed_bits):
    """tau eq. (19) = initial size / size after compression (Resmerita et al., seed 002).

    Both sizes in bits, Python ints (or exact floats); the result is the
    Python true division, a correctly rounded float64.  A compressed size
    <= 0 raises ShapeError.
    """
    if compressed_bits <= 0:
        raise ShapeError(f"compressed size must be positive, got {compressed_bits}")
    return original_bits / compressed_bits
