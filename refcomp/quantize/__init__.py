"""Quantizers: every one returns a :class:`Quantized`."""

from ._quantized import Quantized, narrowest_code_dtype, register_decoder
from .decode import from_codes
from .kmeans import kmeans
from .kmeans_optimal import kmeans_optimal
from .product import ProductQuantized, product_quantize
from .residual import ResidualQuantized, residual_quantize
from .sharing import share_weights
from .uniform import uniform
from .affine import affine, affine_params
from .calibrate import calibrate
from .fixed_point import fixed_point, dynamic_fixed_point
from .minifloat import minifloat
from .float_formats import (to_bfloat16, to_float16, to_float4_e2m1, to_float8_e4m3fn,
                            to_float8_e4m3fnuz, to_float8_e5m2, to_float8_e5m2fnuz, to_format)
from .posit import posit
from .power_of_two import power_of_two
from .binary import binary, xnor, ternary, ternary_ttq
from .nnc import nnc_levels, nnc_step_size
from .nnc_weight import NNCCoded, nnc_quantize

__all__ = ["Quantized", "narrowest_code_dtype", "register_decoder", "from_codes"]
__all__ += ["kmeans", "kmeans_optimal", "product_quantize", "ProductQuantized", "share_weights",
            "residual_quantize", "ResidualQuantized"]
__all__ += ["uniform", "affine", "affine_params", "calibrate", "fixed_point",
            "dynamic_fixed_point", "minifloat", "to_bfloat16", "to_float16", "to_float8_e4m3fn",
            "to_float8_e5m2", "to_float8_e4m3fnuz", "to_float8_e5m2fnuz", "to_float4_e2m1",
            "to_format", "posit", "power_of_two", "binary", "xnor", "ternary", "ternary_ttq"]
__all__ += ["nnc_levels", "nnc_step_size", "NNCCoded", "nnc_quantize"]
