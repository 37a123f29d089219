"""Post-training quantization of a float model to an integer model (TFLite int8 spec).

:func:`quantize_model` keeps the model's structure and replaces the weights of every dense and
conv2d layer by an :class:`refcomp.integer.IntegerLinear` (its float bias becomes the int32
bias inside it); the activation parameters go into ``metadata["integer"]`` (see
:mod:`refcomp.integer.run`).  The result runs through :func:`refcomp.integer.run` (pure integer)
and, layer by layer, through the ordinary float forward pass (``model(x)``), which equals the
integer pipeline bit for bit when the model has no average pooling and no residual block
(docs/integer.md).
"""

import numpy as np

from .._errors import DTypeError, ParameterError, ShapeError
from .._validate import check_choice, describe
from ..model import Layer, Model, _run_layer
from ..quantize.affine import affine, affine_params
from ..quantize.calibrate import calibrate
from .pooling import relu_bounds
from .requantize import LITERT_MODES, MODES, check_scale, dtype_range
from .requantize import act_dtype as _act_dtype
from .weight import IntegerLinear

__all__ = ["quantize_model", "quantize_layer", "set_modes", "WEIGHT_SCHEMES",
           "ACTIVATION_SCHEMES", "CALIBRATIONS"]

WEIGHT_SCHEMES = ("per_channel_symmetric", "per_tensor_symmetric")
ACTIVATION_SCHEMES = ("per_tensor_asymmetric", "per_tensor_symmetric")
CALIBRATIONS = ("minmax", "percentile", "entropy", "mse")
_RECURRENT = ("lstm", "gru", "mgu", "simple_rnn")
_PASS = ("max_pool2d", "avg_pool2d", "flatten", "reshape", "dropout")


def _check_model(layers, prefix=""):
    for i, layer in enumerate(layers):
        path = f"{prefix}{i}"
        where = f"layer {path} ({layer.kind} {layer.name!r})"
        if layer.kind in _RECURRENT:
            raise ParameterError(f"quantize_model: {where} is a recurrent layer; integer "
                                 "inference supports dense, conv2d, pooling, ReLU/ReLU6 and "
                                 "residual additions, not recurrent layers")
        if layer.kind == "batch_norm":
            raise ParameterError(f"quantize_model: {where}: fold batch normalization into the "
                                 "preceding convolution first (refcomp.layers.fold_batch_norm)")
        if layer.attrs.get("layout", "NCHW") != "NCHW":
            raise ParameterError(f"quantize_model: {where} uses layout "
                                 f"{layer.attrs['layout']!r}; integer models are NCHW")
        if layer.kind == "activation" and layer.attrs["function"] not in ("relu", "relu6",
                                                                          "linear"):
            raise ParameterError(f"quantize_model: {where}: activation "
                                 f"{layer.attrs['function']!r} has no integer implementation "
                                 "(relu, relu6, linear)")
        if layer.kind == "residual":
            if layer.weights.get("index_map") is not None:
                raise ParameterError(f"quantize_model: {where}: selective residual addition "
                                     "(index_map) is not supported")
            _check_model(layer.layers, path + "/")


def _fused(layers, i):
    """'relu' / 'relu6' when layers[i+1] is that activation (fused into layer i), else None."""
    if i + 1 < len(layers) and layers[i + 1].kind == "activation":
        f = layers[i + 1].attrs["function"]
        if f in ("relu", "relu6"):
            return f
    return None


class _Ctx:
    def __init__(self, mode, dt, calibration, weights, activations, percentile):
        self.mode, self.dt, self.calibration = mode, dt, calibration
        self.weights, self.activations, self.percentile = weights, activations, percentile
        self.adds = {}

    def act_params(self, t, where):
        """(scale, zero point) of a calibrated activation tensor t (float32)."""
        lo, hi = calibrate(np.ascontiguousarray(t), 8, method=self.calibration,
                           percentile=self.percentile)
        tmin, tmax = float(t.min()), float(t.max())
        lo, hi = max(lo, tmin), min(hi, tmax)   # symmetric methods: keep the observed side
        lo, hi = min(lo, 0.0), max(hi, 0.0)
        signed = self.dt == np.int8
        sym = self.activations == "per_tensor_symmetric"
        if hi == lo:
            return 1.0, (0 if signed else (128 if sym else 0))
        if sym:
            rule = "pytorch" if self.mode == "torch" else "refcomp"
        else:
            rule = "pytorch" if self.mode == "torch" else \
                "tflite" if self.mode in LITERT_MODES else "refcomp"
        s, z = affine_params(lo, hi, 8, symmetric=sym, signed=signed, dtype=np.float32,
                             rule=rule)
        try:
            check_scale("activation scale", s)
        except ParameterError as exc:
            raise ParameterError(f"quantize_model: {where}: {exc}") from None
        return float(s), int(z)


def _quantize_layer(layer, sin, zin, sout, zout, fused, ctx, where):
    W = layer.w("W")
    b = layer.w("b")
    if W.dtype != np.float32:
        raise DTypeError(f"quantize_model: {where}: weights must be float32, got {describe(W)}")
    rounding = "half_away" if ctx.mode in LITERT_MODES else "half_even"
    axis = 0 if ctx.weights == "per_channel_symmetric" else None
    qw = affine(W, 8, symmetric=True, narrow_range=True, signed=True, axis=axis,
                rounding=rounding)
    w_scale = np.asarray(qw.params["scale"], np.float32).reshape(-1)
    codes = qw.codes.astype(np.int8)
    bias = bias_float = None
    if b is not None:
        # bias scale fl32(s_in * s_w[c]) (TFLite SymmetricPerChannelBiasQuantize), one float32
        # division, rounded as the mode's boundary rounds; int32 range enforced.
        bscale = np.float32(sin) * np.broadcast_to(w_scale, (W.shape[0],))
        v = (b / bscale).astype(np.float64)
        r = np.trunc(v) + np.where(np.abs(v - np.trunc(v)) >= 0.5, np.sign(v), 0.0) \
            if rounding == "half_away" else np.rint(v)
        lim = float((1 << 31) - 1)
        if np.any(np.abs(r) > lim):
            raise ParameterError(f"quantize_model: {where}: a bias / (s_in * s_w) exceeds the "
                                 "int32 range")
        bias = r.astype(np.int32)
        if ctx.mode == "torch":
            bias_float = b.astype(np.float32)
    lo, hi = dtype_range(ctx.dt)
    if fused:
        lo, hi = relu_bounds(fused, sout, zout, ctx.dt, ctx.mode)
    return IntegerLinear(codes, w_scale, in_scale=sin, in_zero_point=zin, out_scale=sout,
                         out_zero_point=zout, mode=ctx.mode, bias=bias, bias_float=bias_float,
                         act_min=lo, act_max=hi, act_dtype=ctx.dt)


def _walk(layers, x, sz, prefix, ctx):
    """Quantize ``layers`` given the float input x and its params sz; returns
    (new layers, float output, params of the output)."""
    out = []
    i = 0
    while i < len(layers):
        layer = layers[i]
        path = f"{prefix}{i}"
        where = f"layer {path} ({layer.kind} {layer.name!r})"
        k = layer.kind
        if k in ("dense", "conv2d"):
            y = _run_layer(layer, x, "reference", path)
            fused = _fused(layers, i)
            t = y if fused is None else _run_layer(layers[i + 1], y, "reference", path)
            so, zo = ctx.act_params(t, where)
            w = _quantize_layer(layer, sz[0], sz[1], so, zo, fused, ctx, where)
            weights = {"W": w}
            out.append(Layer(k, name=layer.name, attrs=dict(layer.attrs), weights=weights))
            x, sz = y, (so, zo)
        elif k == "residual":
            body, fx, szb = _walk(layer.layers, x, sz, path + "/", ctx)
            y = x + fx
            fused = _fused(layers, i)
            t = y if fused is None else np.maximum(y, np.float32(0)) if fused == "relu" \
                else np.minimum(np.maximum(y, np.float32(0)), np.float32(6))
            so, zo = ctx.act_params(t, where)
            lo, hi = dtype_range(ctx.dt)
            if fused:
                lo, hi = relu_bounds(fused, so, zo, ctx.dt, ctx.mode)
            ctx.adds[path] = {"scale": so, "zero_point": zo, "act_min": lo, "act_max": hi}
            out.append(Layer("residual", name=layer.name, attrs=dict(layer.attrs), layers=body))
            x, sz = y, (so, zo)
        else:
            # pooling, flatten, reshape, dropout, activations: same tensor parameters
            x = _run_layer(layer, x, "reference", path)
            out.append(layer.copy())
        i += 1
    return out, x, sz


def quantize_model(model, x_calib, *, weights="per_channel_symmetric",
                   activations="per_tensor_asymmetric", calibration="minmax",
                   mode="tflite_double", bits=8, act_dtype=None, percentile=99.99):
    """Post-training integer quantization following the TFLite int8 specification.

    Parameters
    ----------
    model : refcomp.Model (float32), NCHW, made of dense, conv2d (groups, depthwise),
        max / average pooling, flatten, reshape, dropout, ReLU / ReLU6 / linear activations
        and residual blocks without index_map
    x_calib : ndarray float32 (N, *model.input_shape), the calibration inputs
    weights : {"per_channel_symmetric", "per_tensor_symmetric"}
        int8 in [-127, 127], zero point 0, scale max|W_c| / 127 (per output channel, or per
        tensor), rounded to float32 (``refcomp.quantize.affine(symmetric=True,
        narrow_range=True)``); codes ``round(W / s)`` with half away from zero for the TFLite
        modes, half even otherwise.
    activations : {"per_tensor_asymmetric", "per_tensor_symmetric"}
        One (scale, zero point) per tensor from the calibrated range (widened to contain 0 and
        intersected with the observed [min, max]): TFLite's ``ChooseQuantizationParams``
        nudging for the TFLite modes, PyTorch's MinMaxObserver rule for "torch", refcomp's
        rule for the ONNX modes (:func:`refcomp.quantize.affine_params`).
    calibration : {"minmax", "percentile", "entropy", "mse"}
        :func:`refcomp.quantize.calibrate` on each activation tensor of the float model.
    mode : one of :data:`refcomp.integer.MODES`
    bits : 8 (other widths are refused)
    act_dtype : {"int8", "uint8"} or None
        Activation codes; default int8, uint8 for mode "torch" (fbgemm takes quint8).
    percentile : float, for calibration="percentile"

    Returns
    -------
    refcomp.Model
        Same layers; dense / conv2d weights are :class:`refcomp.integer.IntegerLinear` with the
        int32 bias of scale ``fl32(s_in * s_w[c])`` (rounded as the weights), the layer's "b"
        removed; a ReLU / ReLU6 right after a dense, conv2d or residual block is fused into
        its clamp (its output parameters come from the post-activation tensor; the activation
        layer stays and is then an identity); ``metadata["integer"]`` holds the mode, the input
        / output parameters and the residual additions' parameters.  In mode "torch" the
        weights also keep the float bias (PyTorch adds it in float).

    Raises
    ------
    ParameterError
        A recurrent layer (named), batch_norm, an unsupported activation or layout, bits != 8,
        unknown option names, a scale that is not a normal float32.
    DTypeError, ShapeError
        x_calib not float32 or not matching the model's input shape.
    """
    if not isinstance(model, Model):
        raise ParameterError(f"model must be a refcomp.Model, got {type(model).__name__}")
    if isinstance(bits, bool) or bits != 8:
        raise ParameterError(f"bits={bits!r}: unsupported bit width; integer inference is int8 "
                             "(8 bits) only")
    check_choice("weights", weights, WEIGHT_SCHEMES)
    check_choice("activations", activations, ACTIVATION_SCHEMES)
    check_choice("calibration", calibration, CALIBRATIONS)
    check_choice("mode", mode, MODES)
    dt = _act_dtype(act_dtype if act_dtype is not None
                    else ("uint8" if mode == "torch" else "int8"), "act_dtype")
    _check_model(model.layers)
    if not isinstance(x_calib, np.ndarray) or x_calib.dtype != np.float32:
        raise DTypeError(f"x_calib must be a float32 ndarray, got {describe(x_calib)}")
    if model.input_shape is not None and tuple(x_calib.shape[1:]) != tuple(model.input_shape):
        raise ShapeError(f"x_calib must have shape (N, {', '.join(map(str, model.input_shape))})"
                         f" for model {model.name!r}, got {describe(x_calib)}")
    if x_calib.shape[0] == 0:
        raise ShapeError("x_calib must hold at least one sample")
    ctx = _Ctx(mode, dt, calibration, weights, activations, percentile)
    sz_in = ctx.act_params(x_calib, "the model input")
    layers, _, sz_out = _walk(model.layers, x_calib, sz_in, "", ctx)
    meta = dict(model.metadata)
    meta["integer"] = {"mode": mode, "act_dtype": dt.name, "bits": 8, "weights": weights,
                       "activations": activations, "calibration": calibration,
                       "calibration_samples": int(x_calib.shape[0]),
                       "input": {"scale": sz_in[0], "zero_point": sz_in[1]},
                       "output": {"scale": sz_out[0], "zero_point": sz_out[1]},
                       "add": ctx.adds}
    return Model(layers, name=f"{model.name}_int8", input_shape=model.input_shape, metadata=meta)


def quantize_layer(model, path, x_calib, *, mode="tflite_double", calibration="minmax",
                   weights="per_channel_symmetric", activations="per_tensor_asymmetric",
                   act_dtype=None, percentile=99.99):
    """The :class:`IntegerLinear` of one dense / conv2d layer, calibrated in its float model.

    For models :func:`quantize_model` refuses as a whole (recurrent layers elsewhere): the
    float model runs on ``x_calib`` up to the layer at ``path`` (``"3"``, ``"3/0"`` inside a
    residual block); its input parameters come from the calibrated input activation, its
    output parameters from its output (after a following ReLU / ReLU6, which is fused into the
    clamp), with the rules of :func:`quantize_model`.  The layer then quantizes its float input
    itself (the float boundary of :class:`IntegerLinear`).

    Returns
    -------
    IntegerLinear
    """
    if not isinstance(model, Model):
        raise ParameterError(f"model must be a refcomp.Model, got {type(model).__name__}")
    check_choice("mode", mode, MODES)
    check_choice("calibration", calibration, CALIBRATIONS)
    check_choice("weights", weights, WEIGHT_SCHEMES)
    check_choice("activations", activations, ACTIVATION_SCHEMES)
    dt = _act_dtype(act_dtype if act_dtype is not None
                    else ("uint8" if mode == "torch" else "int8"), "act_dtype")
    if not isinstance(x_calib, np.ndarray) or x_calib.dtype != np.float32:
        raise DTypeError(f"x_calib must be a float32 ndarray, got {describe(x_calib)}")
    parts = [int(p) for p in str(path).split("/")]
    seq, x = model.layers, x_calib
    prefix = ""
    for depth, idx in enumerate(parts):
        if not 0 <= idx < len(seq):
            raise ParameterError(f"no layer at path {path!r}")
        for j in range(idx):
            x = _run_layer(seq[j], x, "reference", f"{prefix}{j}")
        if depth < len(parts) - 1:
            if seq[idx].kind != "residual":
                raise ParameterError(f"no layer at path {path!r}")
            prefix += f"{idx}/"
            seq = seq[idx].layers
    layer = seq[parts[-1]]
    where = f"layer {path} ({layer.kind} {layer.name!r})"
    if layer.kind not in ("dense", "conv2d"):
        raise ParameterError(f"quantize_layer: {where} is not a dense or conv2d layer")
    if layer.attrs.get("layout", "NCHW") != "NCHW":
        raise ParameterError(f"quantize_layer: {where} uses layout {layer.attrs['layout']!r}; "
                             "integer layers are NCHW")
    ctx = _Ctx(mode, dt, calibration, weights, activations, percentile)
    y = _run_layer(layer, x, "reference", str(path))
    fused = _fused(seq, parts[-1])
    t = y if fused is None else _run_layer(seq[parts[-1] + 1], y, "reference", str(path))
    sin, zin = ctx.act_params(x, f"the input of {where}")
    so, zo = ctx.act_params(t, where)
    return _quantize_layer(layer, sin, zin, so, zo, fused, ctx, where)


def set_modes(model, mode, *, dense=None, conv2d=None):
    """An integer model with other requantization modes (same codes and parameters).

    Parameters
    ----------
    model : integer refcomp.Model
    mode : the model-level mode (input quantization, residual additions, output
        dequantization) and the default of every layer
    dense, conv2d : optional modes of the dense / conv2d layers (e.g. LiteRT 2.3.0's
        reference kernels: ``set_modes(m, "tflite_double", dense="tflite_float64")``)

    Returns
    -------
    refcomp.Model (new layers and metadata; weight arrays shared)
    """
    from .run import integer_meta
    meta = integer_meta(model)
    for name, m in (("mode", mode), ("dense", dense), ("conv2d", conv2d)):
        if m is not None:
            check_choice(name, m, MODES)
    per_kind = {"dense": dense or mode, "conv2d": conv2d or mode}
    mapping = {}
    for path, layer in model.named_layers():
        w = layer.weights.get("W")
        if layer.kind in per_kind and isinstance(w, IntegerLinear):
            mapping[(path, "W")] = w.with_mode(per_kind[layer.kind])
    new = model.replace_weights(mapping) if mapping else model.copy()
    new.metadata = dict(new.metadata)
    new.metadata["integer"] = dict(meta, mode=mode)
    return new
