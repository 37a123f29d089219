"""PyTorch cases of the quantizers, pruning and integer suites.

Each compares a PyTorch function with the refcomp function documented to
reproduce it (FACTS.md §5.8, §6.1, §6.3, §7.3):

==============================  ===========================================================
fake_quantize_per_tensor        ``torch.fake_quantize_per_tensor_affine`` vs
                                ``affine(scale_op="reciprocal").dequantize()``, bits
fake_quantize_per_channel       ``torch.fake_quantize_per_channel_affine`` (axis 0), same
quantize_per_tensor             ``torch.quantize_per_tensor(...).int_repr()`` vs
                                ``affine(scale_op="torch")`` codes
quantize_per_channel            ``torch.quantize_per_channel`` (axis 0), same
bfloat16 cast                   ``tensor.to(torch.bfloat16)`` vs ``to_bfloat16`` patterns
float8_e4m3fn / e5m2 casts      ``tensor.to(torch.float8_*)`` vs ``to_float8_*`` (e4m3fn
                                saturating, e5m2 not, as PyTorch converts)
l1_unstructured                 ``torch.nn.utils.prune.l1_unstructured`` masks vs
                                ``prune.magnitude`` (ties at the threshold reported apart)
int32 GEMM                      ``torch.matmul`` of int32 tensors vs exact int64 products
==============================  ===========================================================
"""

import warnings

import numpy as np

from ..quantize import affine, to_bfloat16, to_float8_e4m3fn, to_float8_e5m2
from ..prune import magnitude
from ._codes import CodeTally
from ._common import require
from ._draw import case_seed, draw_examples
from ._report import CaseResult
from ._shipped import shipped_note, with_shipped

__all__ = ["TORCH_CASES"]


def _weights(n, seed, name, **kw):
    from hypothesis import strategies as st

    from ..testing.strategies import affine_params, weight_arrays
    shape = st.tuples(st.integers(1, 6), st.integers(1, 40))
    return with_shipped(draw_examples(st.tuples(weight_arrays(shape, **kw),
                                                affine_params(ndim=2)), n,
                                      case_seed(seed, name)))


def _fake_quant(n, seed, *, per_channel):
    torch = require("torch")
    name = f"fake_quantize_per_{'channel' if per_channel else 'tensor'}"
    tally = CodeTally()
    tally.notes.append(shipped_note())
    for w, p in _weights(n, seed, name):
        axis = 0 if per_channel else None
        q0 = affine(w, p["bits"], symmetric=p["symmetric"], signed=p["signed"],
                    narrow_range=p["narrow_range"], axis=axis)
        s, zp = q0.params["scale"], q0.params["zero_point"]
        qmin, qmax = q0.params["qmin"], q0.params["qmax"]
        q = affine(w, p["bits"], scale=s, zero_point=zp, signed=p["signed"],
                   narrow_range=p["narrow_range"], axis=axis, scale_op="reciprocal")
        t = torch.from_numpy(w)
        if per_channel:
            out = torch.fake_quantize_per_channel_affine(
                t, torch.from_numpy(s), torch.from_numpy(zp.astype(np.int32)), 0, qmin, qmax)
        else:
            out = torch.fake_quantize_per_tensor_affine(t, float(s[0]), int(zp[0]), qmin, qmax)
        tally.exact(out.numpy(), q.dequantize(), "dequantized value")
    return tally.result("quantizers", name)


def _quantize(n, seed, *, per_channel):
    torch = require("torch")
    name = f"quantize_per_{'channel' if per_channel else 'tensor'}"
    tally = CodeTally()
    tally.notes.append(shipped_note())
    for w, p in _weights(n, seed, name):
        axis = 0 if per_channel else None
        signed = p["signed"]
        q0 = affine(w, 8, symmetric=p["symmetric"], signed=signed, axis=axis)
        s, zp = q0.params["scale"], q0.params["zero_point"]
        q = affine(w, 8, scale=s, zero_point=zp, signed=signed, axis=axis, scale_op="torch")
        dt = torch.qint8 if signed else torch.quint8
        t = torch.from_numpy(w)
        with warnings.catch_warnings():        # "deprecated" (PyTorch >= 2.10): still the API
            warnings.simplefilter("ignore", UserWarning)
            if per_channel:
                qt = torch.quantize_per_channel(t, torch.from_numpy(s.astype(np.float64)),
                                                torch.from_numpy(zp.astype(np.int64)), 0, dt)
            else:
                qt = torch.quantize_per_tensor(t, float(s[0]), int(zp[0]), dt)
        tally.add(qt.int_repr().numpy(), w, q)
    return tally.result("quantizers", name)


def _cast(n, seed, *, fmt):
    torch = require("torch")
    name = f"{fmt} cast"
    tally = CodeTally()
    tally.notes.append(shipped_note())
    tdt, ref, view, udt = {
        "bfloat16": (torch.bfloat16, lambda w: to_bfloat16(w), torch.int16, np.uint16),
        "float8_e4m3fn": (torch.float8_e4m3fn, lambda w: to_float8_e4m3fn(w, saturate=True),
                          torch.uint8, np.uint8),
        "float8_e5m2": (torch.float8_e5m2, lambda w: to_float8_e5m2(w, saturate=False),
                        torch.uint8, np.uint8)}[fmt]
    for w, _ in _weights(n, seed, name, subnormals=True, specials=True):
        codes = torch.from_numpy(w).to(tdt).view(view).numpy().view(udt)
        tally.add(codes, w, ref(w))
    known = None
    if fmt == "bfloat16":
        known = "PyTorch encodes every NaN as 0xFFFF (refcomp/ml_dtypes: quiet NaN, sign kept)"
    return tally.result("quantizers", name, known=known)


def _l1_unstructured(n, seed):
    torch = require("torch")
    import torch.nn.utils.prune  # noqa: F401  (a submodule torch does not import itself)
    from hypothesis import strategies as st

    from ..testing.strategies import weight_arrays
    name = "l1_unstructured"
    strat = st.tuples(weight_arrays(st.tuples(st.integers(1, 8), st.integers(1, 30)),
                                    ties="always"),
                      st.sampled_from((0.1, 0.25, 0.3, 0.5, 0.7, 0.9)))
    ex, elements, bad, ties, counts = 0, 0, 0, 0, 0
    for w, amount in with_shipped(draw_examples(strat, n, case_seed(seed, name)), (0.5, 0.9)):
        mod = torch.nn.Linear(w.shape[1], w.shape[0], bias=False)
        with torch.no_grad():
            mod.weight.copy_(torch.from_numpy(w))
        torch.nn.utils.prune.l1_unstructured(mod, "weight", amount=amount)
        m_t = mod.weight_mask.numpy().astype(bool)
        ex += 1
        elements += w.size
        n_t = int((~m_t).sum())
        m_r = magnitude(w, sparsity=amount)
        if n_t != int((~m_r).sum()):
            # PyTorch prunes round(amount * n) with the float product; refcomp rounds the
            # exact binary value of amount times n (0.3 * 5 is 1.5 in float, 1.4999... exactly)
            if n_t == round(amount * w.size):
                counts += 1
                m_r = magnitude(w, sparsity=n_t / w.size)       # compare at torch's count
            if n_t != int((~m_r).sum()):
                bad += int(np.count_nonzero(m_t != m_r))
                continue
        diff = m_t != m_r
        if diff.any():
            # every differing entry must share its magnitude with the threshold
            a = np.abs(w.astype(np.float64))
            thr = np.sort(a.reshape(-1))[n_t - 1]
            at = diff & (a == thr)
            ties += int(np.count_nonzero(at))
            bad += int(np.count_nonzero(diff & ~at))
    note = []
    if ties:
        note.append(f"{ties} entries tied at the pruning threshold kept/pruned differently "
                    "(torch.topk's order among equal magnitudes; refcomp prunes the lower "
                    "flat index first)")
    if counts:
        note.append(f"{counts} examples prune round(amount * n) of the float product (PyTorch) "
                    "instead of the exact binary amount times n (refcomp): masks compared at "
                    "PyTorch's count")
    note.append(shipped_note())
    verdict = "FAIL" if bad else ("known difference" if ties or counts else "pass")
    return CaseResult("pruning", name, examples=ex, elements=elements, mismatches=bad,
                      verdict=verdict, note="; ".join(note))


def _tfmot(n, seed):
    try:
        import tensorflow_model_optimization  # noqa: F401
    except ImportError:
        return CaseResult("pruning", "tfmot PolynomialDecay schedule", verdict="skipped",
                          note="tensorflow_model_optimization is not installed "
                               "(refcomp.prune.polynomial_sparsity follows FACTS.md §7.3)")
    return CaseResult("pruning", "tfmot PolynomialDecay schedule", verdict="skipped",
                      note="tfmot found, but its schedule needs TensorFlow; not run")


def _int_gemm(n, seed):
    torch = require("torch")
    rng = np.random.default_rng(case_seed(seed, "int32 GEMM"))
    tally = CodeTally()
    for _ in range(n):
        m, k, o = rng.integers(1, 40, 3)
        a = rng.integers(-128, 128, (m, k)).astype(np.int32)
        b = rng.integers(-128, 128, (k, o)).astype(np.int32)
        ref = a.astype(np.int64) @ b.astype(np.int64)
        got = torch.matmul(torch.from_numpy(a), torch.from_numpy(b)).numpy().astype(np.int64)
        tally.exact(got, ref, "int32 accumulator")
    tally.notes.append("int8 x int8 products summed in int32 (torch.matmul on int8 tensors "
                       "wraps to int8: not used)")
    return tally.result("integer", "int32 GEMM (torch.matmul)")


TORCH_CASES = {
    "quantizers": [
        ("fake_quantize_per_tensor", lambda n, s: _fake_quant(n, s, per_channel=False)),
        ("fake_quantize_per_channel", lambda n, s: _fake_quant(n, s, per_channel=True)),
        ("quantize_per_tensor", lambda n, s: _quantize(n, s, per_channel=False)),
        ("quantize_per_channel", lambda n, s: _quantize(n, s, per_channel=True)),
        ("bfloat16 cast", lambda n, s: _cast(n, s, fmt="bfloat16")),
        ("float8_e4m3fn cast", lambda n, s: _cast(n, s, fmt="float8_e4m3fn")),
        ("float8_e5m2 cast", lambda n, s: _cast(n, s, fmt="float8_e5m2")),
    ],
    "pruning": [("l1_unstructured", _l1_unstructured),
                ("tfmot PolynomialDecay schedule", _tfmot)],
    "integer": [("int32 GEMM", _int_gemm)],
}
