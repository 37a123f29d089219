"""``IntegerLinear``: an int8 dense or conv2d layer of an integer-only model, as a compressed
weight with its own ``linear`` / ``conv2d`` compute hook (encoding ``"integer_linear"``).

It holds everything the integer layer needs: int8 weight codes with per-output-channel (or
per-tensor) float32 scales and zero point 0 (TFLite's symmetric weights), the int32 bias of
scale s_x * s_w[c], the input and output (scale, zero point) of the activations, the fused
activation clamp and the requantization mode.  A :class:`refcomp.Model` whose dense / conv2d
layers hold such weights (and no float bias) runs them through the hooks:

    float x --quantize(s_x, z_x)--> int8 --int32 accumulate + bias--> requantize(mode)
      --clamp--> int8 --dequantize(s_y, z_y)--> float32 y = fl32((q - z_y) * s_y)

The boundary is exact: the next integer layer re-quantizes y with the same (s_y, z_y) and gets
back exactly q (docs/integer.md proves it for every mode and tests check it on every element),
so a chain of such layers through max pooling, flatten, reshape, dropout and ReLU equals the
pure integer pipeline of :func:`refcomp.integer.run` bit for bit.  (Average pooling and residual
additions are integer operations of their own; :func:`refcomp.integer.run` runs them.)
"""

import numpy as np

from .._errors import DTypeError, FormatError, ParameterError, ShapeError
from .._validate import check_choice, describe
from ..weights import CompressedWeight, register_encoding
from ..weights._h5util import parse_attrs, write_dataset
from .ops import (_conv_acc, _fbgemm_depthwise_acc, _linear_acc, _pair, conv_pads,
                  fbgemm_depthwise_path)
from .requantize import (MODES, _torch_bias_term, check_scale, check_zero_point,
                         dequantize_codes, dtype_range, multipliers, quantize_codes, requantize3)
from .requantize import act_dtype as _act_dtype

__all__ = ["IntegerLinear"]


def _float_vector(name, v, n):
    if not isinstance(v, np.ndarray) or v.dtype != np.float32 or v.ndim != 1 \
            or v.shape[0] not in (1, n):
        raise DTypeError(f"{name} must be a float32 ndarray of shape ({n},) or (1,), got "
                         f"{describe(v)}")
    return v


class IntegerLinear(CompressedWeight):
    """int8 weights of a dense (O, I) or conv2d (O, C/groups, kh, kw) layer of an integer model.

    Parameters
    ----------
    codes : ndarray int8, 2-D (dense) or 4-D (conv2d, OIHW); weight zero point 0
    w_scale : ndarray float32 (O,) per output channel, or (1,) per tensor; normal float32 > 0
    in_scale, out_scale : float, exactly normal float32 values (activation scales)
    in_zero_point, out_zero_point : int in the range of ``act_dtype``
    mode : one of :data:`refcomp.integer.MODES`
    bias : ndarray int32 (O,), optional; real value bias * s_in * w_scale[c]
    bias_float : ndarray float32 (O,), optional, only with mode "torch": PyTorch's float bias,
        added as FBGEMM does (then ``bias`` is kept for the record but not used)
    act_min, act_max : int, optional; the fused activation clamp (default the dtype range)
    act_dtype : {"int8", "uint8"}; activation codes (uint8 is what PyTorch's fbgemm takes)

    Arithmetic of the hooks
    -----------------------
    float32 x -> codes ``quantize(x, in_scale, in_zero_point, mode)``
    (:func:`refcomp.integer.quantize`); int32 accumulator of :mod:`refcomp.integer.ops`
    (exact, wrapped modulo 2**32) plus the int32 bias; :func:`refcomp.integer.requantize` with
    the accumulator scales ``float(in_scale) * float(w_scale[c])`` (exact) and ``mode``;
    clamp to [act_min, act_max]; ``dequantize`` to float32.  ``dequantize()`` of the weight is
    ``fl32(codes * w_scale[c])``.
    """

    __slots__ = ("codes", "w_scale", "bias", "bias_float", "in_scale", "in_zero_point",
                 "out_scale", "out_zero_point", "mode", "act_min", "act_max", "act_dtype",
                 "_params", "_bterm")
    encoding = "integer_linear"

    def __init__(self, codes, w_scale, *, in_scale, in_zero_point, out_scale, out_zero_point,
                 mode, bias=None, bias_float=None, act_min=None, act_max=None,
                 act_dtype="int8"):
        if not isinstance(codes, np.ndarray) or codes.dtype != np.int8 or codes.ndim not in (2, 4):
            raise DTypeError(f"codes must be an int8 ndarray with 2 (dense) or 4 (conv2d) "
                             f"dimensions, got {describe(codes)}")
        check_choice("mode", mode, MODES)
        o = codes.shape[0]
        _float_vector("w_scale", w_scale, o)
        for i, s in enumerate(w_scale.tolist()):
            check_scale(f"w_scale[{i}]", s)
        dt = _act(act_dtype)
        self.codes = codes
        self.w_scale = w_scale
        self.act_dtype = dt
        self.in_scale = check_scale("in_scale", in_scale)
        self.out_scale = check_scale("out_scale", out_scale)
        self.in_zero_point = check_zero_point("in_zero_point", in_zero_point, dt)
        self.out_zero_point = check_zero_point("out_zero_point", out_zero_point, dt)
        lo, hi = dtype_range(dt)
        self.act_min = lo if act_min is None else check_zero_point("act_min", act_min, dt)
        self.act_max = hi if act_max is None else check_zero_point("act_max", act_max, dt)
        if self.act_min > self.act_max:
            raise ParameterError(f"act_min {self.act_min} > act_max {self.act_max}")
        if bias is not None and (not isinstance(bias, np.ndarray) or bias.dtype != np.int32
                                 or bias.shape != (o,)):
            raise DTypeError(f"bias must be an int32 ndarray of shape ({o},), got "
                             f"{describe(bias)}")
        if bias_float is not None:
            if mode != "torch":
                raise ParameterError("bias_float is PyTorch's float bias: mode must be 'torch'")
            if not isinstance(bias_float, np.ndarray) or bias_float.dtype != np.float32 \
                    or bias_float.shape != (o,) or not np.all(np.isfinite(bias_float)):
                raise DTypeError(f"bias_float must be a finite float32 ndarray of shape ({o},),"
                                 f" got {describe(bias_float)}")
        self.bias = bias
        self.bias_float = bias_float
        self.mode = mode
        s_acc = self.acc_scales()
        self._params = multipliers(s_acc, self.out_scale, mode)
        # FBGEMM divides by act_times_w_scale per channel, multiplies by its
        # reciprocal per tensor (w_scale of length 1).
        self._bterm = (None if bias_float is None else
                       _torch_bias_term(bias_float, s_acc, w_scale.shape[0] > 1))

    # -- protocol ---------------------------------------------------------------------
    shape = property(lambda self: tuple(int(s) for s in self.codes.shape))
    dtype = property(lambda self: np.dtype(np.float32))

    def acc_scales(self):
        """float64 (O,): the accumulator scales in_scale * w_scale[c] (exact products)."""
        ws = np.broadcast_to(self.w_scale.astype(np.float64), (self.codes.shape[0],))
        return ws * self.in_scale

    def dequantize(self):
        """float32 weights ``fl32(codes * w_scale[c])`` (one rounding of an exact product)."""
        shp = (-1,) + (1,) * (self.codes.ndim - 1)
        return (self.codes.astype(np.float32) * self.w_scale.reshape(shp)).astype(np.float32)

    def bias_dequantized(self):
        """float32 (O,): the bias as a float layer would hold it.

        ``bias_float`` if present, else ``fl32(float64(bias) * in_scale * w_scale[c])`` (zeros
        without a bias).  A layer may pass exactly this array as its ``b``; the hooks then
        ignore it and use the integer bias (any other ``b`` is refused).
        """
        if self.bias_float is not None:
            return self.bias_float.copy()
        if self.bias is None:
            return np.zeros(self.codes.shape[0], np.float32)
        return (self.bias.astype(np.float64) * self.acc_scales()).astype(np.float32)

    def stored_bits(self):
        """8 bits per weight code, 32 per weight scale and per int32 bias entry (and per float
        bias entry), and two activation (scale, zero point) pairs of 32 + 8 bits."""
        bits = self.codes.size * 8 + self.w_scale.size * 32 + 2 * (32 + 8)
        if self.bias is not None:
            bits += self.bias.size * 32
        if self.bias_float is not None:
            bits += self.bias_float.size * 32
        return int(bits)

    def to_hdf5(self, group):
        group.attrs["encoding"] = self.encoding
        write_dataset(group, "codes", self.codes)
        write_dataset(group, "w_scale", self.w_scale)
        if self.bias is not None:
            write_dataset(group, "bias", self.bias)
        if self.bias_float is not None:
            write_dataset(group, "bias_float", self.bias_float)
        for k in ("in_scale", "out_scale"):
            group.attrs[k] = np.float32(getattr(self, k))
        for k in ("in_zero_point", "out_zero_point", "act_min", "act_max"):
            group.attrs[k] = np.int32(getattr(self, k))
        group.attrs["mode"] = self.mode
        group.attrs["act_dtype"] = self.act_dtype.name

    @classmethod
    def from_hdf5(cls, group, *, max_elements=1 << 31):
        try:
            for name in ("codes", "w_scale", "bias", "bias_float"):
                if name in group and int(np.prod(group[name].shape)) > max_elements:
                    raise FormatError(f"{group.name}/{name} declares {group[name].shape}: more "
                                      f"than {max_elements} elements")
            arrays = {k: group[k][()] for k in ("codes", "w_scale", "bias", "bias_float")
                      if k in group}
            kw = parse_attrs(group, "integer_linear", {
                "in_scale": float, "out_scale": float, "in_zero_point": int,
                "out_zero_point": int, "act_min": int, "act_max": int, "mode": str,
                "act_dtype": str})
        except KeyError as exc:
            raise FormatError(f"{group.name}: integer_linear entry lacks {exc}") from None
        try:
            return cls(arrays["codes"], arrays["w_scale"], bias=arrays.get("bias"),
                       bias_float=arrays.get("bias_float"), **kw)
        except (ParameterError, DTypeError, ShapeError) as exc:
            raise FormatError(f"{group.name}: invalid integer_linear entry: {exc}") from None

    # -- integer forward on codes -------------------------------------------------------
    def _requant(self, acc3):
        return requantize3(acc3, None, self.out_scale, self.out_zero_point, self.mode,
                           self.act_min, self.act_max, self.act_dtype, bterm=self._bterm,
                           params=self._params)

    def _int_bias(self):
        return None if self.bias_float is not None else self.bias

    def linear_codes(self, xq):
        """Integer dense forward on codes: int8/uint8 (N, I) -> codes (N, O) (act_dtype)."""
        self._check_codes(xq, 2)
        if xq.shape[1] != self.codes.shape[1]:
            raise ShapeError(f"xq has {xq.shape[1]} features, the layer expects "
                             f"{self.codes.shape[1]} (xq {describe(xq)})")
        acc = _linear_acc(xq, self.in_zero_point, self.codes, self._int_bias())
        return self._requant(acc.reshape(acc.shape[0], acc.shape[1], 1)).reshape(acc.shape)

    def conv2d_codes(self, xq, *, stride=1, padding=0, dilation=1, groups=1):
        """Integer conv2d forward on NCHW codes -> codes (N, O, OH, OW) (act_dtype)."""
        self._check_codes(xq, 4)
        st, dil = _pair("stride", stride), _pair("dilation", dilation)
        o, cg = self.codes.shape[:2]
        if cg * groups != xq.shape[1] or o % groups:
            raise ShapeError(f"xq has {xq.shape[1]} channels; the layer expects {cg} x "
                             f"groups={groups} (xq {describe(xq)})")
        pads = conv_pads(padding, xq.shape[2:], self.codes.shape[2:], st, dil)
        if self.mode == "torch" and fbgemm_depthwise_path(xq.shape[1], o, groups,
                                                          self.codes.shape[2:], st, dil, pads):
            # PyTorch's fbgemm runs this shape on FBGEMM's depthwise kernel, whose int16
            # pair sums saturate (ops._fbgemm_depthwise_acc; docs/integer.md).
            acc = _fbgemm_depthwise_acc(xq, self.in_zero_point, self.codes, self._int_bias(),
                                        st, pads)
        else:
            acc = _conv_acc(xq, self.in_zero_point, self.codes, self._int_bias(), st, pads,
                            dil, int(groups))
        n, _, oh, ow = acc.shape
        return self._requant(acc.reshape(n, o, oh * ow)).reshape(acc.shape)

    def _check_codes(self, xq, ndim):
        if not isinstance(xq, np.ndarray) or xq.dtype != self.act_dtype or xq.ndim != ndim:
            raise DTypeError(f"xq must be a {ndim}-D {self.act_dtype.name} ndarray, got "
                             f"{describe(xq)}")

    # -- compute hooks (float boundary) ----------------------------------------------------
    def _check_b(self, b):
        if b is None:
            return
        ref = self.bias_dequantized()
        if b.shape != ref.shape or b.dtype != ref.dtype or \
                not np.array_equal(b.view(np.uint32), ref.view(np.uint32)):
            raise ParameterError("an integer layer holds its own int32 bias: the layer's b must "
                                 "be absent or equal IntegerLinear.bias_dequantized() bit for "
                                 "bit")

    def _quantize_in(self, x):
        bad = x.size - int(np.count_nonzero(np.isfinite(x)))
        if bad:
            raise ParameterError(f"x contains {bad} non-finite element(s) (NaN or Inf); an "
                                 "integer layer cannot quantize them")
        return quantize_codes(x, np.float32(self.in_scale), self.in_zero_point, self.mode,
                              self.act_dtype)

    def _out(self, q):
        return dequantize_codes(q, np.float32(self.out_scale), self.out_zero_point, self.mode)

    def linear(self, x, b=None, *, precision="reference"):
        """Dense hook: float32 (N, I) -> float32 (N, O) through the integer layer (class doc).

        ``precision`` is ignored: both precisions run the same exact integer arithmetic.
        """
        self._check_b(b)
        return self._out(self.linear_codes(self._quantize_in(x)))

    def conv2d(self, x, b=None, *, stride=1, padding=0, dilation=1, groups=1, layout="NCHW",
               precision="reference"):
        """Conv2d hook: float32 NCHW (or NHWC) -> float32, through the integer layer."""
        self._check_b(b)
        xc = x if layout == "NCHW" else x.transpose(0, 3, 1, 2)
        q = self.conv2d_codes(self._quantize_in(np.ascontiguousarray(xc)), stride=stride,
                              padding=padding, dilation=dilation, groups=groups)
        y = self._out(q)
        return y if layout == "NCHW" else np.ascontiguousarray(y.transpose(0, 2, 3, 1))

    def with_mode(self, mode):
        """The same integer layer requantized with another mode (a new object).

        The float bias of mode "torch" is kept only when ``mode`` is "torch".
        """
        check_choice("mode", mode, MODES)
        return IntegerLinear(self.codes, self.w_scale, in_scale=self.in_scale,
                             in_zero_point=self.in_zero_point, out_scale=self.out_scale,
                             out_zero_point=self.out_zero_point, mode=mode, bias=self.bias,
                             bias_float=self.bias_float if mode == "torch" else None,
                             act_min=self.act_min, act_max=self.act_max,
                             act_dtype=self.act_dtype)

    def __repr__(self):
        return (f"IntegerLinear({self.codes.shape}, mode={self.mode!r}, in=({self.in_scale!r}, "
                f"{self.in_zero_point}), out=({self.out_scale!r}, {self.out_zero_point}), "
                f"clamp=[{self.act_min}, {self.act_max}])")


def _act(dt):
    return _act_dtype(dt, "act_dtype")


register_encoding("integer_linear", IntegerLinear)
