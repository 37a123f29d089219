"""Integer-only inference: TFLite / ONNX / PyTorch requantization semantics, bit for bit.

See docs/integer.md.

- :mod:`refcomp.integer.fixedpoint`: QuantizeMultiplier, SRDHM, RoundingDivideByPOT,
  MultiplyByQuantizedMultiplier (double / single rounding);
- :mod:`refcomp.integer.requantize`: :func:`requantize` in five modes, the float boundary
  (:func:`quantize`, :func:`dequantize`);
- :mod:`refcomp.integer.ops`: int32 accumulators of dense / conv2d, pooling, residual add;
- :class:`IntegerLinear`: an int8 layer as a compressed weight with compute hooks;
- :func:`quantize_model`: post-training quantization (TFLite int8 spec);
- :func:`run`: the pure integer pipeline of an integer model;
- :mod:`refcomp.integer.xnor`: XNOR-Net binary layers (XNOR-popcount, :class:`XnorLinear`);
- ONNX: :mod:`refcomp.integer.onnx_ops` (the integer operators), :func:`load_qdq` (import of the QDQ and QLinear forms),
  :func:`refcomp.integer.onnx_export.to_onnx`; LiteRT:
  :func:`refcomp.integer.tflite_export.to_tflite`.
"""

from .fixedpoint import (multiply_by_quantized_multiplier, quantize_multiplier,
                         rounding_divide_by_pot, saturating_rounding_doubling_high_mul)
from .onnx_import import load_qdq, load_quantized
from .add import add_q
from .ops import conv2d_acc, linear_acc
from .pooling import avg_pool2d_q, max_pool2d_q, relu_bounds
from .ptq import quantize_layer, quantize_model, set_modes
from .requantize import MODES, dequantize, quantize, requantize
from .run import integer_meta, run, run_codes
from .weight import IntegerLinear
from .xnor import XnorLinear, binary_dot, pack_signs, xnor_conv2d, xnor_dense

__all__ = ["quantize_multiplier", "saturating_rounding_doubling_high_mul",
           "rounding_divide_by_pot", "multiply_by_quantized_multiplier", "requantize",
           "quantize", "dequantize", "MODES", "linear_acc", "conv2d_acc", "max_pool2d_q",
           "avg_pool2d_q", "add_q", "relu_bounds", "IntegerLinear", "quantize_model",
           "quantize_layer", "set_modes", "load_qdq", "load_quantized", "run",
           "run_codes", "integer_meta", "XnorLinear", "binary_dot", "pack_signs",
           "xnor_dense", "xnor_conv2d"]
