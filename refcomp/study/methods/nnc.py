"""MPEG NNC core (NNCodec 2.1.3's defaults) registered as a study method (``--methods nnc``).

The swept parameter is ``neg_qp`` = -qp (higher = finer step, as the study's
adaptive search requires; step = 2**(qp / 4) at qp_density 2).  theta_k
(float32) is quantized with 8-state dependent quantization and coded with
DeepCABAC as one tensor (:func:`refcomp.quantize.nnc_quantize`).
Imported by :mod:`refcomp.study.registry` on first use.
"""
import numpy as np

from ..._errors import ParameterError
from ...quantize.nnc_weight import nnc_quantize
from ..registry import Compressed, register_method

#: Default sweep of -qp (NNCodec's default qp is -38).
NEG_QP_VALUES = (8, 12, 16, 20, 24, 28, 32, 38)


def _nnc(theta, neg_qp):
    if theta.dtype != np.float32:
        raise ParameterError("method nnc codes float32 weights (NNC's quantizer input), got "
                             f"{theta.dtype}")
    c = nnc_quantize(theta, qp=-int(neg_qp))
    return Compressed(c.dequantize(), c.stored_bits(), c)


register_method(
    "nnc", _nnc, label="NNC", param="neg_qp", values=NEG_QP_VALUES, min_value=0,
    max_value=200,
    description="MPEG NNC core as NNCodec 2.1.3: dependent quantization (8 states, trellis) "
                "at qp = -neg_qp, DeepCABAC coding (no retraining)",
    accounting="CABAC payload bytes (context-initialisation signalling and termination "
               "included) + 32 bits of qp")
