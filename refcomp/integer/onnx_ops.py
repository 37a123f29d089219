"""ONNX's integer operators as functions: QuantizeLinear, DequantizeLinear, MatMulInteger,
ConvInteger, QLinearMatMul, QLinearConv and (com.microsoft) QLinearAdd.

Arrays follow ONNX's layouts (MatMul ``a @ b`` with b (K, N); Conv NCHW / OIHW).  Integer
results are exact (the accumulators of :mod:`refcomp.integer.ops`, int32 wrap-around);
the rescaling of the QLinear operators is selected by ``mode``:

* ``"onnx_reference"`` (default): the ``onnx`` package's reference implementation
  (``onnx.reference``), which passes the operators' node tests: multiplier
  ``a_scale * b_scale / y_scale`` in the scales' float type, ``acc * M`` in float64, the zero
  point added before ``rint`` (half even), saturation;
* ``"onnx"``: what ONNX Runtime runs (float32 ``fl32(fl32(acc) * M)``, half even, then the
  zero point; :func:`refcomp.integer.requantize`).

QuantizeLinear / DequantizeLinear follow the specification and its reference: ``y =
saturate(rint(x / y_scale) + y_zero_point)`` with the division in numpy's promotion of the
two types (float32 for float32 x), ties to even, the zero point added after rounding;
``y = (x - x_zero_point) * x_scale`` in float32, cast to the scale's type.  Per-tensor,
per-axis and blocked scales.  Integer outputs uint8, int8, uint16, int16, uint4, int4, uint2,
int2 (4- and 2-bit values held in int8 / uint8 arrays); float8 / float4 outputs are refused.
"""

import numpy as np

from .._errors import DTypeError, ParameterError, ShapeError
from .._validate import check_choice, describe
from .ops import _conv_acc, conv_pads
from .requantize import _scales_in, dtype_range, requantize3

__all__ = ["quantize_linear", "dequantize_linear", "matmul_integer", "conv_integer",
           "qlinear_matmul", "qlinear_conv", "qlinear_add", "QTYPES"]

#: Integer output types of QuantizeLinear: name -> (numpy storage dtype, (qmin, qmax)).
QTYPES = {"uint8": (np.uint8, (0, 255)), "int8": (np.int8, (-128, 127)),
          "uint16": (np.uint16, (0, 65535)), "int16": (np.int16, (-32768, 32767)),
          "uint4": (np.uint8, (0, 15)), "int4": (np.int8, (-8, 7)),
          "uint2": (np.uint8, (0, 3)), "int2": (np.int8, (-2, 1))}
_FLOATS = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))
_QLINEAR_MODES = ("onnx_reference", "onnx")


def _float_arr(name, v):
    if not isinstance(v, np.ndarray) or v.dtype not in _FLOATS:
        raise DTypeError(f"{name} must be a float16/float32/float64 ndarray, got {describe(v)}")
    bad = int(np.count_nonzero(~np.isfinite(v) | (v <= 0))) if "scale" in name else 0
    if bad:
        raise ParameterError(f"{name} must be finite and > 0; {bad} entries are not")
    return v


def _broadcast_param(v, shape, axis, block_size, name):
    """ONNX's reshape of a scale / zero point to ``shape`` (onnx.reference _quant_utils)."""
    if v.ndim == 0 or v.size == 1:
        return v.reshape(())
    if not -len(shape) <= axis < len(shape):
        raise ParameterError(f"axis={axis} is out of range for an input of shape {shape}")
    axis %= len(shape)
    if not block_size:
        if v.ndim != 1 or v.shape[0] != shape[axis]:
            raise ShapeError(f"{name} must have {shape[axis]} entries along axis {axis}, got "
                             f"{describe(v)}")
        dims = [1] * len(shape)
        dims[axis] = v.size
        return v.reshape(dims)
    if block_size < 0 or v.ndim != len(shape):
        raise ShapeError(f"blocked {name} must have the input's rank and block_size > 0, got "
                         f"{describe(v)}, block_size={block_size}")
    r = np.repeat(v, block_size, axis=axis)
    if r.shape[axis] < shape[axis]:
        raise ShapeError(f"{name} {describe(v)} with block_size {block_size} does not cover "
                         f"axis {axis} of {shape}")
    return r.take(range(shape[axis]), axis=axis)


def _qtype(zero_point, output_dtype):
    if output_dtype is not None:
        check_choice("output_dtype", output_dtype, list(QTYPES))
    if zero_point is None:
        return output_dtype or "uint8"
    name = zero_point.dtype.name
    if output_dtype is not None and output_dtype in QTYPES and QTYPES[output_dtype][0] != \
            zero_point.dtype.type:
        raise DTypeError(f"output_dtype {output_dtype!r} does not match the zero point "
                         f"{describe(zero_point)}")
    if output_dtype is not None:
        return output_dtype
    if name not in QTYPES:
        raise ParameterError(f"unsupported quantized type {name} (integer types only: "
                             f"{', '.join(QTYPES)}); float8 / float4 are not supported here")
    return name


def quantize_linear(x, y_scale, y_zero_point=None, *, axis=1, block_size=0, output_dtype=None):
    """ONNX QuantizeLinear (opset 21-25) with integer outputs.

    Parameters
    ----------
    x : ndarray float16/float32/float64
    y_scale : ndarray float (0-d / size 1 per tensor, 1-D per axis, same rank for blocked)
    y_zero_point : integer ndarray of the output type, same layout as y_scale, optional
    axis, block_size : as ONNX
    output_dtype : one of :data:`QTYPES` names, when y_zero_point is absent (default uint8)

    Returns
    -------
    ndarray of the output type's storage dtype (4/2-bit values in int8/uint8)

    Arithmetic
    ----------
    ``v = x / y_scale`` in numpy's promoted float type (float32 for float32 operands),
    ``rint`` (ties to even), converted to int32, ``+ y_zero_point``, clipped to the type's
    range (the onnx reference order).  NaN/Inf in x are refused.
    """
    _float_arr("x", x)
    _float_arr("y_scale", y_scale)
    bad = x.size - int(np.count_nonzero(np.isfinite(x)))
    if bad:
        raise ParameterError(f"x contains {bad} non-finite element(s)")
    qt = _qtype(y_zero_point, output_dtype)
    store, (lo, hi) = QTYPES[qt]
    s = _broadcast_param(y_scale, x.shape, axis, block_size, "y_scale")
    xi = np.rint(x / s).astype(np.int64)
    if y_zero_point is not None:
        z = _broadcast_param(y_zero_point, x.shape, axis, block_size, "y_zero_point")
        if z.size and (z.min() < lo or z.max() > hi):
            raise ParameterError(f"y_zero_point outside the {qt} range [{lo}, {hi}]")
        xi = xi + z.astype(np.int64)
    return np.clip(xi, lo, hi).astype(store)


def dequantize_linear(x, x_scale, x_zero_point=None, *, axis=1, block_size=0):
    """ONNX DequantizeLinear (opset 21-25) of integer inputs.

    Arithmetic: ``fl32(x) - zero_point`` in float32 (exact for these integer widths), times
    the broadcast scale in numpy's promotion with float32, then cast to the scale's dtype
    (a float16 scale: float32 product rounded to float16, as the reference does).  An int32
    input has no zero point (an all-zero one is accepted).
    """
    if not isinstance(x, np.ndarray) or x.dtype.kind not in "iu":
        raise DTypeError(f"x must be an integer ndarray, got {describe(x)}")
    _float_arr("x_scale", x_scale)
    dx = x.astype(np.float32)
    if x_zero_point is not None:
        if x_zero_point.dtype != x.dtype:
            raise DTypeError(f"x_zero_point {describe(x_zero_point)} must have x's dtype "
                             f"{x.dtype}")
        if x.dtype == np.int32 and np.any(x_zero_point != 0):
            raise ParameterError("an int32 input of DequantizeLinear has no zero point (only "
                                 "an all-zero one, as ONNX Runtime's quantizer writes, is "
                                 "accepted)")
        dx = dx - _broadcast_param(x_zero_point, x.shape, axis, block_size,
                                   "x_zero_point").astype(np.float32)
    y = dx * _broadcast_param(x_scale, x.shape, axis, block_size, "x_scale")
    return y.astype(x_scale.dtype)


def _int8_operand(name, v):
    if not isinstance(v, np.ndarray) or v.dtype.name not in ("int8", "uint8"):
        raise DTypeError(f"{name} must be an int8 or uint8 ndarray, got {describe(v)}")
    return v


def _zp_value(name, zp, dt, n=None):
    if zp is None:
        return 0 if n is None else np.zeros(n, np.int64)
    if not isinstance(zp, np.ndarray) or zp.dtype != dt:
        raise DTypeError(f"{name} must be an ndarray of dtype {np.dtype(dt).name}, got "
                         f"{describe(zp)}")
    if zp.size == 1:
        return int(zp.reshape(-1)[0]) if n is None else np.full(n, int(zp.reshape(-1)[0]),
                                                                np.int64)
    if n is None or zp.ndim != 1 or zp.shape[0] != n:
        raise ShapeError(f"{name} must be a scalar{'' if n is None else f' or ({n},)'}, got "
                         f"{describe(zp)}")
    return zp.astype(np.int64)


def _matmul_acc(a, za, b, zb):
    """int32 (wrapped) ``(a - za) @ (b - zb)`` for batched a (..., M, K), b (K, N) or (..., K, N)
    with zb per column (N,) or scalar; exact through float64 (refcomp.integer.ops)."""
    from .ops import wrap_int32
    if a.shape[-1] != b.shape[-2 if b.ndim >= 2 else 0]:
        raise ShapeError(f"a {describe(a)} and b {describe(b)} do not multiply")
    if a.shape[-1] >= 1 << 37:
        raise ParameterError("too many terms for the exact float64 path")
    ac = a.astype(np.float64) - np.asarray(za, np.float64)
    bc = b.astype(np.float64) - np.asarray(zb, np.float64)
    return wrap_int32(np.matmul(ac, bc).astype(np.int64))


def matmul_integer(a, b, a_zero_point=None, b_zero_point=None):
    """ONNX MatMulInteger: int32 ``(a - a_zp) @ (b - b_zp)``, exact, wrapped modulo 2**32.

    a (..., M, K) and b (K, N) or batched, int8/uint8; a_zero_point scalar (or per row of a,
    (M,)); b_zero_point scalar or per column (N,).
    """
    _int8_operand("a", a)
    _int8_operand("b", b)
    za = _zp_value("a_zero_point", a_zero_point, a.dtype,
                   a.shape[-2] if a_zero_point is not None and a_zero_point.size > 1 else None)
    if not np.isscalar(za) and not isinstance(za, int):
        za = za.reshape(-1, 1)
    zb = _zp_value("b_zero_point", b_zero_point, b.dtype,
                   b.shape[-1] if b_zero_point is not None and b_zero_point.size > 1 else None)
    return _matmul_acc(a, za, b, zb)


def _conv_args(x, w, auto_pad, dilations, group, kernel_shape, pads, strides):
    if x.ndim != 4 or w.ndim != 4:
        raise ShapeError(f"2-D convolution only: x {describe(x)}, w {describe(w)}")
    st = tuple(strides or (1, 1))
    dil = tuple(dilations or (1, 1))
    if kernel_shape and tuple(kernel_shape) != tuple(w.shape[2:]):
        raise ShapeError(f"kernel_shape {kernel_shape} does not match w {describe(w)}")
    ap = (auto_pad or "NOTSET").upper()
    if ap == "NOTSET":
        p = tuple(pads or (0, 0, 0, 0))
        padding = ((p[0], p[2]), (p[1], p[3]))
    elif ap == "VALID":
        padding = ((0, 0), (0, 0))
    elif ap in ("SAME_UPPER", "SAME_LOWER"):
        same = conv_pads("same", x.shape[2:], w.shape[2:], st, dil)
        padding = same if ap == "SAME_UPPER" else tuple((b, a) for a, b in same)
    else:
        raise ParameterError(f"auto_pad must be NOTSET, VALID, SAME_UPPER or SAME_LOWER, got "
                             f"{auto_pad!r}")
    g = int(group or 1)
    if x.shape[1] != w.shape[1] * g or w.shape[0] % g:
        raise ShapeError(f"group={g}: x {describe(x)} and w {describe(w)} do not match")
    return st, dil, padding, g


def conv_integer(x, w, x_zero_point=None, w_zero_point=None, *, auto_pad="NOTSET",
                 dilations=None, group=1, kernel_shape=None, pads=None, strides=None):
    """ONNX ConvInteger (2-D): int32 convolution of the zero-point-subtracted operands,
    exact, wrapped modulo 2**32; padding holds the input zero point (a real 0)."""
    _int8_operand("x", x)
    _int8_operand("w", w)
    st, dil, padding, g = _conv_args(x, w, auto_pad, dilations, group, kernel_shape, pads,
                                     strides)
    zx = _zp_value("x_zero_point", x_zero_point, x.dtype)
    zw = _zp_value("w_zero_point", w_zero_point, w.dtype, w.shape[0])
    return _conv_acc(x, zx, w, None, st, padding, dil, g, zw)


def _qparams(scale, name):
    _float_arr(name, scale)
    return scale


def _rescale(acc, s_a, s_b, s_y, zy, out_dt, mode, axis):
    """Requantize ``acc`` with ONNX's multiplier a_scale * b_scale / y_scale (per channel
    along ``axis`` when b_scale is 1-D)."""
    check_choice("mode", mode, _QLINEAR_MODES)
    lo, hi = dtype_range(out_dt)
    zyv = int(zy.reshape(-1)[0]) if zy is not None else 0
    nchan = 1 if s_b.size == 1 else s_b.size
    if mode == "onnx":
        s_in = s_a.astype(np.float64).reshape(-1)[0] * s_b.astype(np.float64).reshape(-1)
        sc = _scales_in(s_in if nchan > 1 else s_in.reshape(()).item(), nchan)
        acc3 = _as3(acc, axis, nchan)
        out = requantize3(acc3, sc, float(np.float32(s_y.reshape(-1)[0])), zyv, "onnx", lo,
                          hi, np.dtype(out_dt))
        return out.reshape(acc.shape)
    # onnx_reference: M in the scales' type, acc * M in float64, + zp, rint, clip
    m = (s_a.reshape(()) * s_b.reshape(-1) / s_y.reshape(())) if nchan > 1 else \
        (s_a.reshape(()) * s_b.reshape(()) / s_y.reshape(()))
    if nchan > 1:
        shape = [1] * acc.ndim
        shape[axis] = nchan
        m = m.reshape(shape)
    d = acc * m.astype(np.float64) if m.dtype != np.float64 else acc * m
    d = d + float(zyv)
    return np.clip(np.rint(d), lo, hi).astype(out_dt)


def _as3(acc, axis, nchan):
    if nchan == 1:
        return np.ascontiguousarray(acc).reshape(1, 1, -1)
    axis %= acc.ndim
    a = int(np.prod(acc.shape[:axis], dtype=np.int64))
    return np.ascontiguousarray(acc).reshape(a, nchan, -1)


def qlinear_matmul(a, a_scale, a_zero_point, b, b_scale, b_zero_point, y_scale,
                   y_zero_point, *, mode="onnx_reference"):
    """ONNX QLinearMatMul: ``y = saturate(round(acc * a_scale * b_scale / y_scale) + y_zp)``.

    ``acc = (a - a_zp) @ (b - b_zp)`` exact in int32 (wrapped); per-tensor scales, or b_scale /
    b_zero_point per column (N,).  The rescaling is the module's ``mode``; the output has
    the dtype of y_zero_point.
    """
    _int8_operand("a", a)
    _int8_operand("b", b)
    for n, v in (("a_scale", a_scale), ("b_scale", b_scale), ("y_scale", y_scale)):
        _qparams(v, n)
    za = _zp_value("a_zero_point", a_zero_point, a.dtype)
    zb = _zp_value("b_zero_point", b_zero_point, b.dtype,
                   b.shape[-1] if b_zero_point is not None and b_zero_point.size > 1 else None)
    if y_zero_point is None or not isinstance(y_zero_point, np.ndarray):
        raise DTypeError("y_zero_point must be an int8/uint8 ndarray (it fixes the output type)")
    acc = _matmul_acc(a, za, b, zb)
    return _rescale(acc, a_scale, b_scale, y_scale, y_zero_point, y_zero_point.dtype, mode,
                    acc.ndim - 1)


def qlinear_conv(x, x_scale, x_zero_point, w, w_scale, w_zero_point, y_scale, y_zero_point,
                 B=None, *, auto_pad="NOTSET", dilations=None, group=1, kernel_shape=None,
                 pads=None, strides=None, mode="onnx_reference"):
    """ONNX QLinearConv (2-D): int32 convolution of the zero-point-subtracted operands plus
    the int32 bias ``B`` (scale x_scale * w_scale, zero point 0), then the module's ``mode``
    rescaling; w_scale / w_zero_point per tensor or per output channel.  Output dtype of
    y_zero_point."""
    _int8_operand("x", x)
    _int8_operand("w", w)
    for n, v in (("x_scale", x_scale), ("w_scale", w_scale), ("y_scale", y_scale)):
        _qparams(v, n)
    st, dil, padding, g = _conv_args(x, w, auto_pad, dilations, group, kernel_shape, pads,
                                     strides)
    zx = _zp_value("x_zero_point", x_zero_point, x.dtype)
    zw = _zp_value("w_zero_point", w_zero_point, w.dtype, w.shape[0])
    if B is not None and (not isinstance(B, np.ndarray) or B.dtype != np.int32
                          or B.shape != (w.shape[0],)):
        raise DTypeError(f"B must be an int32 ndarray of shape ({w.shape[0]},), got {describe(B)}")
    if y_zero_point is None or not isinstance(y_zero_point, np.ndarray):
        raise DTypeError("y_zero_point must be an int8/uint8 ndarray (it fixes the output type)")
    acc = _conv_acc(x, zx, w, B, st, padding, dil, g, zw)
    return _rescale(acc, x_scale, w_scale, y_scale, y_zero_point, y_zero_point.dtype, mode, 1)


def qlinear_add(a, a_scale, a_zero_point, b, b_scale, b_zero_point, c_scale, c_zero_point):
    """com.microsoft QLinearAdd as ONNX Runtime runs it (x86-64 AVX2,
    :func:`refcomp.integer.add_q` mode "onnx"); a and b of the same shape and dtype."""
    from .add import add_q

    def scal(v, n):
        if not isinstance(v, np.ndarray) or v.size != 1:
            raise ShapeError(f"{n} must be a one-element ndarray (per-tensor), got {describe(v)}")
        return v.reshape(-1)[0]
    return add_q(a, float(scal(a_scale, "a_scale")), int(scal(a_zero_point, "a_zero_point")),
                 b, float(scal(b_scale, "b_scale")), int(scal(b_zero_point, "b_zero_point")),
                 float(scal(c_scale, "c_scale")), int(scal(c_zero_point, "c_zero_point")),
                 mode="onnx")
