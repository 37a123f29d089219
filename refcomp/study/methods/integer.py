"""The ``int8`` study method (I8): a dense or conv2d layer as an integer layer.

The layer becomes a :class:`refcomp.integer.IntegerLinear` (TFLite int8 spec: int8 weights
per output channel, zero point 0, int32 bias, per-tensor int8 activations) that quantizes its
float input, accumulates in int32, requantizes with the selected mode and hands back the
exactly dequantized output; the study's forward pass runs it through its ``linear`` /
``conv2d`` hook.  Parameters come from :func:`refcomp.integer.quantize_model` on the study's
calibration split when the model is supported as a whole (so that quantizing every layer
gives exactly the integer model, whose hook path equals the pure integer pipeline for chains
without average pooling or residual additions), else from
:func:`refcomp.integer.quantize_layer`.

Swept parameter ``width`` (only 8).  Extra parameters: ``mode`` (a requantization mode of
:data:`refcomp.integer.MODES`, default "tflite_double") and ``method`` (the calibration:
minmax, percentile, entropy, mse).  Needs the model and the calibration split, and the study's joint
biases (the int32 bias is part of the layer).
"""

from ..._errors import ParameterError
from ...integer import quantize_layer, quantize_model
from ..registry import CompressedLayer, register_method

#: (model, x, mode, calibration, integer model or the error) of the last calls; holding the
#: objects keeps their ids from being reused.
_CACHE = []


def _integer_model(model, x, mode, calibration):
    for m, xx, md, cal, qm in _CACHE:
        if m is model and xx is x and md == mode and cal == calibration:
            return qm
    try:
        qm = quantize_model(model, x, mode=mode, calibration=calibration)
    except ParameterError as exc:          # e.g. a recurrent layer elsewhere in the model
        qm = exc
    _CACHE[:] = _CACHE[-3:] + [(model, x, mode, calibration, qm)]
    return qm


def _int8_method(layer, width, *, model, calibration, mode="tflite_double", method="minmax"):
    if layer.kind not in ("dense", "conv2d"):
        raise ParameterError(f"method 'int8' quantizes dense and conv2d layers; layer "
                             f"{layer.path} ({layer.label}) is a {layer.kind}")
    if width != 8:
        raise ParameterError(f"method 'int8': width must be 8, got {width}")
    if "b" in layer.weights and "b" not in layer.names:
        raise ParameterError("method 'int8' quantizes the bias to int32 with the weights; run "
                             "the study with joint biases (not --biases float)")
    x = calibration[0]
    qm = _integer_model(model, x, mode, method)
    if isinstance(qm, ParameterError):
        w = quantize_layer(model, layer.path, x, mode=mode, calibration=method)
    else:
        w = qm.get_layer(layer.path).weights["W"]
    out = {"W": w}
    if "b" in layer.names:
        # the float view of the int32 bias, which the hook accepts (and ignores) bit for bit
        out["b"] = w.bias_dequantized()
    return CompressedLayer(out, w.stored_bits(), w)


register_method(
    "int8", _int8_method, label="I8", param="width", values=(8,), min_value=8, max_value=8,
    level="layer", needs=("model", "calibration"),
    extra_params={"mode": "tflite_double", "method": "minmax"},
    description="integer-only layer (refcomp.integer, TFLite int8 spec): int8 weights per "
                "output channel, int32 bias, int8 activations calibrated on the calibration "
                "split (--param method=minmax|percentile|entropy|mse), int32 accumulation, "
                "requantization --param mode=tflite_double|tflite_single|onnx|onnx_reference|"
                "torch",
    accounting="8 bits per weight + 32 per weight scale + 32 per int32 bias entry + two "
               "activation (scale, zero point) pairs of 32 + 8 bits")
