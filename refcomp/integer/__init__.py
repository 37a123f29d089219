"""Integer-only inference: TFLite / ONNX / PyTorch requantization semantics, bit for bit.

See docs/integer.md.  Primitives (:mod:`refcomp.integer.fixedpoint`), requantization and the
float boundary (:mod:`refcomp.integer.requantize`).
"""

from .fixedpoint import (multiply_by_quantized_multiplier, quantize_multiplier,
                         rounding_divide_by_pot, saturating_rounding_doubling_high_mul)
from .requantize import MODES, dequantize, quantize, requantize

__all__ = ["quantize_multiplier", "saturating_rounding_doubling_high_mul",
           "rounding_divide_by_pot", "multiply_by_quantized_multiplier", "requantize",
           "quantize", "dequantize", "MODES"]
