"""NNC (ISO/IEC 15938-17) quantizers as NNCodec 2.1.3 runs them: uniform and dependent.

Step size (the standard's qp -> step mapping, ``qp_density`` d):
``k = 2**d``, ``step = (k + (qp & (k - 1))) * 2**((qp >> d) - d)``
(two's-complement ``&`` and floor ``>>`` for negative qp), computed exactly
and stored as float32 (NNCodec's ``qStepSize``).  Reconstruction:
``w = float32(step * float32(level))`` (float32 product, round half even).

Uniform reconstruction quantizer (``dq=False``, NNCodec ``quantLayer`` with
``lambda_scale = 0``): ``g = float32(1 / step)`` (float32 division),
``level = round_half_away(float32(g * w))``.

Dependent quantization (``dq=True``; Wiedemann et al., "DeepCABAC", IEEE JSTSP
2020, Sec. III-B; the standard's 8-state variant): two quantizers, Q0 with
the even multiples of ``step`` and Q1 with the odd multiples and zero; an
8-state machine (:data:`refcomp.coding.cabac.TRANS`) driven by the parity of
the coded value picks the quantizer of the next weight (states 0, 2, 4, 6:
Q0).  The levels are chosen by a Viterbi trellis over the tensor in scan
order that minimises ``sum (w / step - level)**2`` (distortion in units of
step**2, double precision; NNCodec's ``lambda_scale = 0`` default, whose
trellis carries no rate term: lambda = 0 stated).  The arithmetic and tie
rules are in :mod:`refcomp.quantize._nnc_kernels`.  ``dq_states=4`` runs
the same trellis on VVC's 4-state machine (:data:`refcomp.coding.cabac.
TRANS4`), a variant NNCodec does not have (docs/nnc.md).

Rate-distortion variants (``lambda_scale`` s > 0, NNCodec's
``quantLayer``): rates are DeepCABAC's estimates in 1/32768 bit (encoder
table ``EST_BITS``; bypass bins 1 bit) on context models adapting along the
path; costs are ``c * (w / step - t)**2 + rate`` with
``c = 2**15 / (s * 4 * (ln 2 / 6) * 0.7)`` in the trellis (lambda =
``s * 4 * ln(2) / 6 * 0.7`` in bits per step**2) and
``c = 2**15 / (s * ln(2) / 6)`` in the uniform quantizer, which picks, per
weight in scan order, the cheapest of 0, ``r - 1`` and ``r`` (``r = round
half away(|w| / step)``).  NNCodec's estimator quirks are mirrored (see
``_nnc_kernels``).  Where a level would leave int32 (NNCodec instead raises
qp silently), :class:`ParameterError`.
"""
import math

import numpy as np

from .._errors import ParameterError
from .._rounding import half_away
from .._validate import as_float_array, check_int
from ..coding.cabac import check_dq_states, scan_positions
from . import _nnc_kernels as _k

__all__ = ["nnc_step_size", "nnc_levels", "QP_DENSITY_MAX", "QP_RANGE"]

#: qp_density is coded on 3 bits in the standard.
QP_DENSITY_MAX = 7
#: |qp| accepted (the step must be a normal, finite float32 anyway).
QP_RANGE = 1 << 12
_MAX_SCALED = (1 << 31) - 3


def nnc_step_size(qp, qp_density=2):
    """Step size (float32 scalar) of ``qp`` at ``qp_density``; formula in the
    module docstring.  ParameterError when the step is not a normal finite
    float32 (an absurd qp).

    Parameters
    ----------
    qp : int
        Quantization parameter, ``|qp| <= 4096`` (:data:`QP_RANGE`); lower is
        finer.  Python ints (or NumPy integers) only: a float or bool is a
        :class:`ParameterError`.
    qp_density : int, 0..7
        ``d``: the step doubles every ``2**d`` qp values (NNCodec's default 2:
        every 4).

    Returns
    -------
    numpy.float32
        ``(2**d + (qp & (2**d - 1))) * 2**((qp >> d) - d)`` with two's-complement
        ``&`` and floor ``>>`` on Python ints; the product is an integer of at
        most 8 bits times a power of two, so it is exact in float64 and in
        float32 (no rounding), equal to NNCodec's ``qStepSize``.  A step
        outside ``[2**-126, 2**127)`` (``qp >> d`` outside -126..126):
        :class:`ParameterError`.
    """
    qp = check_int("qp", qp, lo=-QP_RANGE, hi=QP_RANGE)
    d = check_int("qp_density", qp_density, lo=0, hi=QP_DENSITY_MAX)
    k = 1 << d
    e = (qp >> d) - d
    if not -126 <= e + d <= 127 - 1:
        raise ParameterError("qp %d at qp_density %d gives a step outside float32's normal "
                             "range" % (qp, d))
    mul = k + (qp & (k - 1))
    return np.float32(np.ldexp(float(mul), e))


def nnc_levels(w, *, qp, qp_density=2, dq=True, lambda_scale=0.0, scan_order=0,
               cabac_unary_length_minus1=10, dq_states=8):
    """Integer levels (int32, shape of ``w``) of NNC's quantizer for ``w``.

    Parameters
    ----------
    w : ndarray of float32, ndim >= 1, finite
    qp, qp_density : int
        Step size :func:`nnc_step_size`.
    dq : bool
        Dependent (trellis) quantization; else the uniform quantizer.
    lambda_scale : float >= 0
        0.0 (NNCodec's default): distortion only.  Above 0, rate-distortion
        quantization with CABAC rate estimates (module docstring), rounded
        to float32 first as NNCodec's binding does.
    cabac_unary_length_minus1 : int
        Greater-than flags of the rate estimator (NNCodec passes this value,
        one less than its coder's, as ``maxNumNoRem``).
    scan_order : int, 0..4
        Scan of the trellis (the coder's scan, :func:`refcomp.coding.cabac.
        scan_positions`); irrelevant without ``dq``.
    dq_states : 8 or 4
        State machine of the trellis (ignored without ``dq``): 8, NNC's
        (default, NNCodec's levels); 4, VVC's (:data:`refcomp.coding.cabac.
        TRANS4`; same branch rule, costs and tie-breaking, not in NNCodec).
        Other values: :class:`ParameterError`.

    Returns
    -------
    ndarray of int32
        Reconstruction indices: the weight is ``level * step``.  With ``dq``
        every level belongs to the quantizer its state selects, so
        :func:`refcomp.coding.cabac.encode_levels` accepts it.
    """
    w = as_float_array("w", w, dtypes=(np.dtype(np.float32),), allow_empty=False)
    if w.ndim < 1:
        raise ParameterError("w must have ndim >= 1, got a scalar")
    if not np.isfinite(w).all():
        raise ParameterError("w must be finite (NaN/Inf cannot be quantized)")
    if not isinstance(lambda_scale, (int, float, np.floating)) or isinstance(lambda_scale, bool) \
            or not np.isfinite(lambda_scale) or lambda_scale < 0 or lambda_scale > 1e6:
        raise ParameterError("lambda_scale must be a finite float in [0, 1e6], got %r"
                             % (lambda_scale,))
    branches = _k.DQ_BRANCHES[check_dq_states(dq_states)]
    lam = float(np.float32(lambda_scale))       # NNCodec's binding takes a float32
    step = nnc_step_size(qp, qp_density)
    g32 = np.float32(1.0) / step
    scaled = half_away((g32 * w.astype(np.float32)).astype(np.float64))
    lim = _MAX_SCALED if dq else (1 << 31) - 1
    if scaled.size and (scaled.max() > lim or scaled.min() < -(lim if dq else lim + 1)):
        raise ParameterError("qp %d is too small for these weights: a level would overflow "
                             "int32 (NNCodec raises qp instead)" % qp)
    if not dq and lam <= 0.0:
        return scaled.astype(np.int32)
    order, _ = scan_positions(w.shape, scan_order if dq else 0)
    flat = w.ravel()[order].astype(np.float64)
    out = np.empty(flat.size, dtype=np.int32)
    g = 1.0 / float(step)
    num_gtx = check_int("cabac_unary_length_minus1", cabac_unary_length_minus1, lo=0, hi=31)
    if not dq:
        _k.urq_rd_kernel(flat, g, float(1 << 15) / (lam * (math.log(2.0) / 6.0)), num_gtx, out)
    elif lam <= 0.0:
        _k.tcq_kernel(flat, g, 1.0, branches, out)
    else:
        c = float(1 << 15) / (lam * 4.0 * (math.log(2.0) / 6.0) * 0.7)
        _k.tcq_rd_kernel(flat, g, c, num_gtx, branches, out)
    res = np.empty(flat.size, dtype=np.int32)
    res[order] = out
    return res.reshape(w.shape)
