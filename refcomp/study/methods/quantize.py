"""Scalar and non-uniform quantizers registered as study methods.

Imported by :mod:`refcomp.study.registry` on first use, so that
``refcomp study --methods uniform,kmeans,kmeans_optimal,affine,...`` works
without changes to the study code.  Each entry maps a flat theta_k (weights
and biases of one layer, float32/float64) and a bit width to the decoded
approximation and the exact number of bits of its compressed form:
``|theta| * b`` bits of codes plus the decoding rule, counted as written in
the accounting string.  QU and KM are the two methods of seed 002 (Resmerita
et al. §5).
"""

import numpy as np

from ...quantize.affine import affine
from ...quantize.fixed_point import dynamic_fixed_point
from ...quantize.kmeans import kmeans
from ...quantize.kmeans_optimal import kmeans_optimal
from ...quantize.power_of_two import power_of_two
from ...quantize.uniform import uniform
from ..registry import Compressed, register_method

#: Bits charged for a per-tensor integer exponent (fixed-point fractional
#: length in [-32, 64], power-of-two e_min): one signed byte.
EXPONENT_BITS = 8


def _value_bits(dtype):
    return np.dtype(dtype).itemsize * 8


def _uniform(theta, bits):
    q = uniform(theta, bits)
    # payload: |theta| codes of q.bits bits; rule: theta_min and Delta, each
    # counted at the weights' precision (32 bits for float32).
    return Compressed(q.dequantize(), theta.size * q.bits + 2 * _value_bits(theta.dtype), q)


#: Side information seed 002's Table 4 charges a uniform-quantized layer: 12 bytes.
PAPER_SIDE_BITS = 96


def paper_table4_bytes(n, bits, side_bytes=12):
    """Layer size as seed 002's Table 4 counts it: ``n*bits/8 + side_bytes`` bytes (a real
    number; the table displays it truncated, in B below 1000 and KB = 1000 B above).

    QU rows: 12 side bytes (three 32-bit values; the paper does not say which:
    theta_min and Delta of eq. (15)-(16) plus one more), e.g. CONV 1 at 3 bits:
    320*3/8 + 12 = 132 B.  KM rows: the codebook, 2**bits float32 values
    (``side_bytes = 4 * 2**bits``), which reproduces CONV 2 (4.64 KB) and
    FC 2 (169 B) but not CONV 1 (150 B printed, 152 B counted) nor FC 1.
    """
    return n * bits / 8 + side_bytes


def _uniform_paper(theta, bits):
    q = uniform(theta, bits)
    # seed 002 Table 4: |theta|*b bits of codes + 12 bytes (96 bits) of side information
    return Compressed(q.dequantize(), theta.size * q.bits + PAPER_SIDE_BITS, q)


def _kmeans(theta, bits):
    q = kmeans(theta, bits=bits)
    k = int(np.asarray(q.codebook).size)
    return Compressed(q.dequantize(), theta.size * q.bits + k * _value_bits(theta.dtype), q)


def _kmeans_optimal(theta, bits):
    q = kmeans_optimal(theta, bits=bits)
    return Compressed(q.dequantize(), q.stored_bits(), q)


def _affine(theta, bits):
    q = affine(theta, bits)
    # stored_bits: codes + scale (weight dtype) + zero point (int32 array).
    return Compressed(q.dequantize(), q.stored_bits(), q)


def _fixed_point(theta, bits):
    q = dynamic_fixed_point(theta, bits)
    return Compressed(q.dequantize(), theta.size * q.bits + EXPONENT_BITS, q)


def _power_of_two(theta, bits):
    q = power_of_two(theta, bits)
    return Compressed(q.dequantize(), theta.size * q.bits + EXPONENT_BITS, q)


register_method(
    "uniform", _uniform, label="QU",
    description="uniform quantizer, Resmerita et al. eq. (15)-(16), grid='range'",
    accounting="|theta|*b bits of codes + theta_min and Delta at the weight precision")
register_method(
    "uniform_paper", _uniform_paper, label="QU12",
    description="uniform quantizer (as 'uniform'), seed 002 Table 4's size accounting",
    accounting="|theta|*b bits of codes + 96 bits (12 bytes, seed 002 Table 4) of side "
               "information; 'uniform' counts theta_min and Delta only (2 x 32 bits)")
register_method(
    "kmeans", _kmeans, label="KM",
    description="Lloyd k-means quantizer, Resmerita et al. eq. (17)-(18), linear init",
    accounting="|theta|*b bits of codes + codebook (k values at the weight precision)")
register_method(
    "kmeans_optimal", _kmeans_optimal, label="KO",
    description="globally optimal 1-D k-means (dynamic programming), k = 2**b",
    accounting="|theta|*b bits of codes + codebook (k values at the weight precision)")
register_method(
    "affine", _affine, label="AF", values=tuple(range(2, 9)), min_value=2,
    description="asymmetric per-tensor affine (gemmlowp), min/max range, half-even",
    accounting="|theta|*b bits of codes + scale at the weight precision + int32 zero point")
register_method(
    "fixed_point", _fixed_point, label="FX", values=tuple(range(2, 9)), min_value=2,
    max_value=32,
    description="dynamic fixed point (one fractional length per layer), half-even, saturating",
    accounting=f"|theta|*b bits of codes + {EXPONENT_BITS}-bit fractional length")
register_method(
    "power_of_two", _power_of_two, label="P2", values=tuple(range(2, 9)), min_value=2,
    max_value=8,
    description="powers of two and zero (log-domain rounding), Tang & Kwan",
    accounting=f"|theta|*b bits of codes + {EXPONENT_BITS}-bit e_min")
