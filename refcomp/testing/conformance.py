"""Conformance on derived bounds: :func:`reference_and_bound`, :func:`check_conforms`,
:func:`assert_conforms`.

Every framework's own tests pick a tolerance by hand (1e-3 in ONNX's backend
tests, ±1 LSB in TFLite, 0.1 in tfmot).  Here the tolerance is derived per
output element from the model, the input and the standard model of
floating-point arithmetic (FACTS.md §8; the propagation rules are those of
:mod:`refcomp.testing.framework_bound`): a candidate *conforms* when every
element lies within the bound of the exact value, and when it does not, the
failure says by how much, where, and which usual mistake reproduces it
(:mod:`refcomp.testing._diagnose`).
"""

import numpy as np

from .._errors import ParameterError
from .framework_bound import _propagate, smallest_normal_of, unit_roundoff_of
from ._diagnose import diagnose

__all__ = ["reference_and_bound", "check_conforms", "assert_conforms", "Conformance"]

_U64 = 2.0 ** -53


def reference_and_bound(model, x, *, dtype="float32", func_ulps=4, conv_algorithm="direct"):
    """The exact computation in float64 and the bound any conforming evaluation meets.

    Parameters
    ----------
    model : refcomp.Model
        Layers of :data:`refcomp.testing.framework_bound.BOUNDED_KINDS`
        (dense, conv2d, pooling, flatten, reshape, dropout, batch_norm,
        residual, lstm, gru, mgu, simple_rnn; relu, linear, tanh, sigmoid,
        hard_sigmoid and softmax activations).  Compressed weights count by
        their decoded values (``dequantize()``).
    x : ndarray, float32 or float64
        The input batch.
    dtype : {"float32", "float64", "float16", "bfloat16"}, keyword-only
        The dtype the candidate computes in.  Coarser than the model's
        weights (float16 or bfloat16 for a float32 model): the weights and
        the input are first rounded to it (one more rounding per term).
    func_ulps : float, keyword-only
        Accuracy, in ulps of ``dtype``, assumed of the candidate's ``exp``,
        ``tanh`` and ``sigmoid`` (default 4).
    conv_algorithm : {"direct", "im2col", "gemm"}, keyword-only
        How the candidate evaluates convolutions: any sum of products, in
        any order (FACTS.md §8).  "fft" and "winograd" are refused by name
        (ParameterError): their errors are not a dot product's.

    Returns
    -------
    reference : ndarray of float64
        The model's function evaluated in float64 on float64 copies of the
        weights and of ``x`` (the refcomp reference layer functions, in
        their documented order): the exact real computation up to float64
        roundings.
    bound : ndarray of float64, the shape of ``reference``
        ``e + smallest_normal(dtype)``: ``e`` is the first-order bound of
        :mod:`refcomp.testing.framework_bound` computed with the unit
        roundoff ``u(dtype) + 2**-53`` (the candidate's roundings plus those
        of the float64 reference itself; the bound grows with ``u``, so the
        sum of two evaluations' errors is within it), the absolute term
        covers gradual underflow (half a subnormal spacing per operation).
        Every evaluation that rounds each elementary operation once to
        ``dtype``, sums in any order and evaluates ``exp``/``tanh`` within
        ``func_ulps`` ulps lands within ``bound`` of ``reference``.  The
        neglected second-order terms are ``O(n u)`` relative to the bound
        (below 1e-4 in float32 for fan-ins under 1000).

    Raises
    ------
    ParameterError
        An unsupported dtype, or a layer, activation or algorithm refused
        by name (the message names the layer path and kind).
    """
    unit_roundoff_of(dtype)                                # ParameterError first
    v, e = _propagate(model, np.asarray(x), func_ulps, dtype=dtype,
                      conv_algorithm=conv_algorithm, extra_u=_U64)
    return v, e + smallest_normal_of(dtype)


class Conformance:
    """Result of :func:`check_conforms`.

    Attributes
    ----------
    passed : bool
        Every element within its bound.
    n_out, size : int
        Elements out of bound, and elements compared.
    worst_ratio : float
        max(|candidate - reference| / bound) (inf for a NaN or Inf where the
        reference is finite); 0.0 for an empty output.
    worst_index : tuple of int or None
        Multi-index of that element.
    worst_candidate, worst_reference, worst_bound : float
        The candidate's value, the reference and the bound there.
    findings : list of refcomp.testing._diagnose.Finding
        The diagnosis (empty when passed or when ``diagnose=False``).
    shape_mismatch : tuple or None
        (candidate shape, reference shape) when they differ.
    """

    __slots__ = ("passed", "n_out", "size", "worst_ratio", "worst_index", "worst_candidate",
                 "worst_reference", "worst_bound", "findings", "shape_mismatch", "dtype")

    def __init__(self, **kw):
        for k in self.__slots__:
            setattr(self, k, kw.get(k))

    def diagnosis(self):
        """One line: the mistakes that reproduce the candidate, or the closest one."""
        f = self.findings or []
        hits = [x for x in f if x.matches]
        if hits:
            best = hits[0]
            text = (f"{best.mistake}: {best.detail} reproduces the candidate (every re-run "
                    f"element within the bound, worst ratio {best.worst:.3g})")
            if len(hits) > 1:
                text += "; also consistent: " + "; ".join(
                    f"{x.mistake}: {x.detail} ({x.worst:.3g})" for x in hits[1:3])
                text += f" and {len(hits) - 3} more" if len(hits) > 3 else ""
            return text
        if f and np.isfinite(f[0].worst):
            return (f"no usual mistake reproduces the candidate; closest: {f[0].mistake}: "
                    f"{f[0].detail} ({f[0].n_out} of {f[0].size} re-run elements still out, "
                    f"worst ratio {f[0].worst:.3g})")
        return "no usual mistake reproduces the candidate"

    def message(self, model_name=""):
        """The multi-line failure report of :func:`assert_conforms`."""
        name = f" model {model_name!r}" if model_name else ""
        if self.shape_mismatch:
            lines = [f"candidate output shape {self.shape_mismatch[0]} differs from the "
                     f"reference shape {self.shape_mismatch[1]} of{name}"]
        else:
            lines = [f"candidate does not conform to{name} in {self.dtype}: {self.n_out} of "
                     f"{self.size} elements out of bound",
                     f"worst error / bound = {self.worst_ratio:.4g} at index {self.worst_index}"
                     f" (input sample {self.worst_index[0] if self.worst_index else '-'}): "
                     f"candidate {self.worst_candidate!r}, reference {self.worst_reference!r}, "
                     f"bound {self.worst_bound:.3g}"]
        if self.findings is not None:
            lines.append("diagnosis: " + self.diagnosis())
        return "\n".join(lines)


def _candidate_output(candidate, x):
    y = candidate(x) if callable(candidate) else candidate
    if hasattr(y, "detach"):                          # a torch tensor; never imports torch
        y = y.detach().cpu().numpy()
    return np.asarray(y)


def check_conforms(candidate, model, x, *, dtype="float32", func_ulps=4,
                   conv_algorithm="direct", diagnose_failure=True, max_samples=8):
    """Compare a candidate with the bound of :func:`reference_and_bound`; return a report.

    Parameters
    ----------
    candidate : array_like or callable
        The candidate's output for ``x``, or ``candidate(x)`` computing it
        (a NumPy array or anything ``numpy.asarray`` takes; a torch tensor
        is detached first).
    model, x, dtype, func_ulps, conv_algorithm : as :func:`reference_and_bound`.
    diagnose_failure : bool, keyword-only
        On failure, run the diagnosis (default True).
    max_samples : int, keyword-only
        Samples re-run by the diagnosis (those with out-of-bound elements
        first).

    Returns
    -------
    Conformance
        An element conforms when ``|candidate - reference| <= bound``
        (compared in float64; the candidate's values are widened exactly),
        or when both are NaN, or both the same infinity.
    """
    x = np.asarray(x)
    y = _candidate_output(candidate, x)
    if y.dtype.kind not in "fiu" and y.dtype.name != "bfloat16":
        raise ParameterError(f"candidate output must be numeric, got dtype {y.dtype}")
    v, bound = reference_and_bound(model, x, dtype=dtype, func_ulps=func_ulps,
                                   conv_algorithm=conv_algorithm)

    def bound_fn(m, xs):
        return reference_and_bound(m, xs, dtype=dtype, func_ulps=func_ulps,
                                   conv_algorithm=conv_algorithm)

    if y.shape != v.shape:
        findings = diagnose(y, model, x, bound_fn=bound_fn, max_samples=max_samples) \
            if diagnose_failure else None
        return Conformance(passed=False, n_out=None, size=v.size, worst_ratio=np.inf,
                           findings=findings, shape_mismatch=(y.shape, v.shape), dtype=dtype)
    y64 = y.astype(np.float64)
    err = np.abs(y64 - v)
    ok = (err <= bound) | (np.isnan(y64) & np.isnan(v)) | (y64 == v)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(ok & ~(err <= bound), 0.0, err / bound)
    ratio = np.where(np.isnan(ratio), np.inf, ratio)
    n_out = int((~ok).sum())
    if ratio.size:
        flat = int(np.argmax(ratio))
        idx = tuple(int(i) for i in np.unravel_index(flat, ratio.shape))
        worst = dict(worst_ratio=float(ratio.reshape(-1)[flat]), worst_index=idx,
                     worst_candidate=float(y64.reshape(-1)[flat]),
                     worst_reference=float(v.reshape(-1)[flat]),
                     worst_bound=float(bound.reshape(-1)[flat]))
    else:
        worst = dict(worst_ratio=0.0, worst_index=None, worst_candidate=None,
                     worst_reference=None, worst_bound=None)
    findings = None
    if n_out and diagnose_failure:
        bad_rows = np.flatnonzero((~ok).reshape(ok.shape[0], -1).any(axis=1)) if ok.ndim else []
        rank = np.argsort(-ratio.reshape(ratio.shape[0], -1).max(axis=1), kind="stable")
        bad = set(int(r) for r in bad_rows)
        rows = [int(r) for r in rank if int(r) in bad]
        findings = diagnose(y, model, x, bound_fn=bound_fn, max_samples=max_samples,
                            sample_rows=rows)
    return Conformance(passed=n_out == 0, n_out=n_out, size=int(v.size), findings=findings,
                       shape_mismatch=None, dtype=dtype, **worst)


def assert_conforms(candidate, model, x, *, dtype="float32", func_ulps=4,
                    conv_algorithm="direct", diagnose_failure=True, max_samples=8):
    """Assert that a candidate's output lies within refcomp's derived bound, elementwise.

    Passes if and only if every element of the candidate's output is within
    the bound of :func:`reference_and_bound` of the exact value (NaN where
    the reference is NaN and equal infinities also pass).

    Parameters
    ----------
    candidate : array_like or callable
        The candidate's output, or a callable computing it from ``x``.
    model : refcomp.Model
        The model the candidate implements (refcomp's canonical layouts:
        dense (out, in), conv OIHW, LSTM i,f,g,o, GRU r,z,n).
    x : ndarray
        The input batch given to the candidate.
    dtype, func_ulps, conv_algorithm : keyword-only
        As :func:`reference_and_bound`.
    diagnose_failure : bool, keyword-only
        Whether a failure runs the diagnosis (default True).
    max_samples : int, keyword-only
        Samples the diagnosis re-runs (default 8).

    Returns
    -------
    Conformance
        The report (``passed`` is True), e.g. to log ``worst_ratio``.

    Raises
    ------
    AssertionError
        With the count of elements out of bound; the worst ratio error /
        bound, its index, both values, the bound and the input sample; and
        the diagnosis: which usual mistake, re-run in refcomp, reproduces the
        candidate (LSTM/GRU gate order, GRU reset_after, transposed weights,
        NHWC vs NCHW input or flatten order, padding off by one, "same"
        padding on the wrong side, bias added twice or missing, ...; see
        :mod:`refcomp.testing._diagnose`).  A shape mismatch fails too, and
        is diagnosed the same way.
    ParameterError
        A layer, activation or algorithm the bound refuses by name.

    Examples
    --------
    >>> import numpy as np, refcomp
    >>> from refcomp.testing import assert_conforms
    >>> rng = np.random.default_rng(0)
    >>> W = rng.standard_normal((3, 4)).astype(np.float32)
    >>> m = refcomp.Model([refcomp.Layer("dense", weights={"W": W})])
    >>> x = rng.standard_normal((5, 4)).astype(np.float32)
    >>> assert_conforms(lambda x: x @ W.T, m, x).passed
    True
    """
    report = check_conforms(candidate, model, x, dtype=dtype, func_ulps=func_ulps,
                            conv_algorithm=conv_algorithm, diagnose_failure=diagnose_failure,
                            max_samples=max_samples)
    if not report.passed:
        raise AssertionError(report.message(getattr(model, "name", "")))
    return report
