"""Keras 3 cases of the quantizer suite besides ``abs_max_quantize``.

Each compares a Keras function with the refcomp function documented to
reproduce it, on hypothesis-drawn arrays and the shipped models' weights:

=========================  ==================================================================
bfloat16 cast              ``keras.ops.cast(x, "bfloat16")`` vs ``to_bfloat16`` bit patterns
                           (round to nearest even on every backend)
float8_e4m3fn / e5m2 cast  ``keras.ops.cast(x, "float8_*")`` vs ``to_float8_*``; saturation
                           is the backend's: PyTorch saturates e4m3fn and not e5m2, JAX
                           (ml_dtypes) and TensorFlow saturate neither
fake_quant_with_min_max    ``keras.quantizers.fake_quant_with_min_max_vars`` (8 bits, per
_vars                      tensor, ``narrow_range`` both ways) vs ``affine(rounding=
                           "half_up")`` with Keras' nudged scale and zero point
=========================  ==================================================================

Keras' fake quantization off the TensorFlow backend (keras/src/quantizers/
quantizers.py ``adjust_and_nudge``), all in float32: ``scale = (max - min) /
(qmax - qmin)``, ``inv = (qmax - qmin) / (max - min)``, ``zp = round_half_even
(clip(qmin - min / scale, qmin, qmax))`` (TensorFlow's FakeQuant nudging
rounds it half away from zero: a known difference where ``qmin - min / scale``
is an exact half), ``nmin = (qmin - zp) scale``; then ``floor((clip(x, nmin,
nmax) - nmin) inv - zp + 0.5) scale``.  The code ``q - zp`` is read back from
the output (``round(y / scale)``, exact for these small integers) and compared
with ``affine(x, bits, scale=scale, zero_point=zp, rounding="half_up")``:
Keras multiplies by ``inv`` after shifting by ``nmin``, so codes may differ
where ``x / scale`` is within a few roundings of a cell boundary (listed as
boundary cases, not failures).
"""

import numpy as np

from ..quantize import affine, to_bfloat16, to_float8_e4m3fn, to_float8_e5m2
from ._codes import CodeTally
from ._common import NotExpressible, require
from ._draw import case_seed, draw_examples
from ._shipped import shipped_note, with_shipped

__all__ = ["KERAS_QUANTIZER_CASES"]


def _keras():
    import os
    os.environ.setdefault("KERAS_BACKEND", "torch")
    return require("keras")


def _drawn(n, seed, name, **kw):
    from hypothesis import strategies as st

    from ..testing.strategies import weight_arrays
    shape = st.tuples(st.integers(1, 6), st.integers(1, 40))
    return with_shipped([(w, None) for w in draw_examples(weight_arrays(shape, **kw), n,
                                                          case_seed(seed, name))])


def _bits(keras, y, udt):
    """Bit patterns (``udt``) of a backend tensor of a format NumPy may lack."""
    try:
        return np.asarray(keras.ops.convert_to_numpy(y)).view(udt)
    except TypeError:                       # torch: no NumPy conversion of float8 tensors
        if keras.backend.backend() != "torch":
            raise
        import torch
        tdt = torch.uint8 if np.dtype(udt).itemsize == 1 else torch.int16
        return y.view(tdt).cpu().numpy().view(udt)


def _cast(n, seed, *, fmt):
    keras = _keras()
    name = f"{fmt} cast"
    backend = keras.backend.backend()
    sat_e4m3 = backend == "torch"             # PyTorch's conversion saturates e4m3fn only
    ref, udt = {"bfloat16": (to_bfloat16, np.uint16),
                "float8_e4m3fn": (lambda w: to_float8_e4m3fn(w, saturate=sat_e4m3), np.uint8),
                "float8_e5m2": (lambda w: to_float8_e5m2(w, saturate=False), np.uint8)}[fmt]
    tally = CodeTally()
    for w, _ in _drawn(n, seed, name, subnormals=True, specials=True):
        try:
            y = keras.ops.cast(keras.ops.convert_to_tensor(w), fmt)
        except (TypeError, ValueError) as e:
            raise NotExpressible(f"keras.ops.cast to {fmt} on the {backend} backend: "
                                 f"{type(e).__name__}") from e
        tally.add(_bits(keras, y, udt).reshape(w.shape), w, ref(w))
    tally.notes.append(f"Keras backend {backend}")
    tally.notes.append(shipped_note())
    known = ("NaN encoded with other bits by the backend (refcomp/ml_dtypes: quiet NaN, "
             "sign kept)")
    return tally.result("quantizers", name, known=known)


def _nudge32(lo, hi, qmin, qmax):
    """Keras' ``adjust_and_nudge`` in float32: (scale, inv_scale, zero point)."""
    f = np.float32
    diff = f(f(hi) - f(lo))
    scale = f(diff / f(qmax - qmin))
    inv = f(f(qmax - qmin) / diff)
    zf = f(f(qmin) - f(f(lo) / scale))
    zp = int(np.round(np.clip(zf, f(qmin), f(qmax))))        # NumPy round: half even
    return scale, inv, zp, float(zf)


def _fake_quant(n, seed, *, narrow_range):
    keras = _keras()
    fq = getattr(keras.quantizers, "fake_quant_with_min_max_vars", None)
    if fq is None:
        raise NotExpressible("keras.quantizers.fake_quant_with_min_max_vars (Keras >= 3.8)")
    name = f"fake_quant_with_min_max_vars 8 bits{' narrow_range' if narrow_range else ''}"
    qmin, qmax = (1 if narrow_range else 0), 255
    tally = CodeTally()
    half_zp = ex = 0
    for w, _ in _drawn(n, seed, name):
        lo, hi = min(float(w.min()), 0.0), max(float(w.max()), 0.0)
        if not hi > lo:
            continue
        scale, inv, zp, zf = _nudge32(lo, hi, qmin, qmax)
        if not (np.isfinite(inv) and scale > 0):
            continue                                    # a range at the float32 limits
        half_zp += int(zf % 1 == 0.5 and qmin < zf < qmax)
        y = np.asarray(keras.ops.convert_to_numpy(
            fq(w, np.float32(lo), np.float32(hi), num_bits=8, narrow_range=narrow_range)),
            np.float32)
        codes = np.rint(y.astype(np.float64) / float(scale)).astype(np.int64) + zp
        q = affine(w, 8, scale=np.float32(scale), zero_point=zp, signed=False,
                   narrow_range=narrow_range, rounding="half_up")
        tally.add(codes.astype(q.codes.dtype), w, q)
        tally.exact(y, ((codes - zp) * np.float64(scale)).astype(np.float32), "output")
        ex += 1
    tally.examples = ex                     # add() and exact() each counted the example
    tally.notes.append(shipped_note())
    tally.notes.append("refcomp given Keras' float32 nudged scale and zero point; Keras "
                       "multiplies the shifted input by (qmax - qmin) / (max - min)")
    if half_zp:
        tally.notes.append(f"{half_zp} examples with qmin - min/scale an exact half: Keras "
                           "rounds the zero point half to even, TensorFlow's FakeQuant half "
                           "away from zero (known difference)")
    return tally.result("quantizers", name,
                        known="Keras rounds x half up (floor(t + 0.5)); ties toward +inf")


KERAS_QUANTIZER_CASES = [
    ("bfloat16 cast", lambda n, s: _cast(n, s, fmt="bfloat16")),
    ("float8_e4m3fn cast", lambda n, s: _cast(n, s, fmt="float8_e4m3fn")),
    ("float8_e5m2 cast", lambda n, s: _cast(n, s, fmt="float8_e5m2")),
    ("fake_quant_with_min_max_vars 8 bits",
     lambda n, s: _fake_quant(n, s, narrow_range=False)),
    ("fake_quant_with_min_max_vars 8 bits narrow_range",
     lambda n, s: _fake_quant(n, s, narrow_range=True)),
]
