"""ONNX QuantizeLinear / DequantizeLinear / DynamicQuantizeLinear / Cast nodes -> refcomp.quantize.qdq."""

import numpy as np

from refcomp.quantize import qdq


def _type_name(enum):
    from onnx import helper
    return np.dtype(helper.tensor_dtype_to_np_dtype(enum)).name


def run_quant(kind, node, a, x):
    ins = [x.get(n) if n else None for n in node.input]
    if kind == "QuantizeLinear":
        X, s = ins[0], ins[1]
        zp = ins[2] if len(ins) > 2 else None
        out = a.get("output_dtype")
        prec = a.get("precision")
        return [qdq.quantize_linear(X, s, zp, axis=a.get("axis", 1),
                                    block_size=a.get("block_size", 0),
                                    saturate=bool(a.get("saturate", 1)),
                                    output_dtype=None if not out else _type_name(out),
                                    precision=None if not prec else _type_name(prec))]
    if kind == "DequantizeLinear":
        X, s = ins[0], ins[1]
        zp = ins[2] if len(ins) > 2 else None
        out = a.get("output_dtype")
        return [qdq.dequantize_linear(X, s, zp, axis=a.get("axis", 1),
                                      block_size=a.get("block_size", 0),
                                      output_dtype=None if not out else _type_name(out))]
    if kind == "DynamicQuantizeLinear":
        return list(qdq.dynamic_quantize_linear(ins[0]))
    X = ins[0]
    # ONNX's expected data are ml_dtypes' casts: its float4 NaN is the named variant
    return [qdq.cast(X, _type_name(a["to"]), saturate=bool(a.get("saturate", 1)),
                     finite_nan="ml_dtypes")]
