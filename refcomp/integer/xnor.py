"""XNOR-Net binary layers (Rastegari, Ordonez, Redmon & Farhadi, ECCV 2016, §3.2): bit-packed
signs of weights and activations, XNOR-popcount dot products, a scale alpha per output
filter and an optional activation scale.

Definitions (FACTS.md §7.5 for the weight part, from the authors' code):

* sign: +1 for x >= 0 (so sign(0) = +1: a bit has no zero), -1 otherwise;
* alpha_o = ||W_o||_1 / n, n = in (dense) or C*kh*kw (conv), summed exactly (``math.fsum``)
  and rounded once to float32;
* the binary dot product ``dot = sum_i sign(x_i) sign(w_i)`` is computed by XNOR and
  popcount on packed bits (:mod:`refcomp.kernels.xnor`); it is an exact int32 equal to the
  float product of the sign matrices (zero padding of a convolution contributes 0 terms);
* optional activation scale (``input_scale=True``): beta_n = ||x_n||_1 / in for a dense
  layer; for a convolution the map K = A * k of the paper, A = sum_c |x_c| / C and k a
  kh x kw box of weights 1 / (kh kw) with the layer's stride, padding and dilation (zero
  padding): A in float64 (numpy channel sum), the box sum sequential in row-major window
  order in float64, divided by kh kw;
* output ``y = fl32(dot * alpha_o * beta + b_o)``, the product and sum in float64 left to
  right, one rounding to float32.

The paper's first and last layers are not binarised (FACTS.md §7.5); choosing the layers is
the caller's.
"""

import math

import numpy as np

from .._errors import DTypeError, FormatError, ParameterError, ShapeError
from .._validate import describe
from ..kernels.xnor import pack_rows, xnor_dot
from ..weights import CompressedWeight, register_encoding
from ..weights._h5util import parse_attrs, shape_attr, write_dataset

__all__ = ["XnorLinear", "xnor_dense", "xnor_conv2d", "binary_dot", "pack_signs"]


def pack_signs(a):
    """Packed sign bits (uint64 (rows, ceil(n/64))) of a 2-D float array, bit 1 = (a >= 0)."""
    if not isinstance(a, np.ndarray) or a.dtype.kind != "f" or a.ndim != 2:
        raise DTypeError(f"a must be a 2-D float ndarray, got {describe(a)}")
    if not np.all(np.isfinite(a)):
        raise ParameterError("a contains NaN or Inf: they have no sign bit here")
    return pack_rows(a >= 0)


def binary_dot(x, W):
    """Exact int32 ``sign(x) @ sign(W).T`` by XNOR-popcount (x (N, in), W (out, in) float)."""
    if x.shape[1:] != W.shape[1:]:
        raise ShapeError(f"x {describe(x)} and W {describe(W)} have different inputs")
    return xnor_dot(pack_signs(x), pack_signs(W), x.shape[1])


def _alpha(Wm):
    return np.array([math.fsum(np.abs(r).astype(np.float64).tolist()) / r.size for r in Wm],
                    np.float64).astype(np.float32)


def _check_float(name, v, ndim):
    if not isinstance(v, np.ndarray) or v.dtype != np.float32 or v.ndim != ndim:
        raise DTypeError(f"{name} must be a {ndim}-D float32 ndarray, got {describe(v)}")
    if not np.all(np.isfinite(v)):
        raise ParameterError(f"{name} contains NaN or Inf")


def _finish(dot, alpha, beta, b):
    y = dot.astype(np.float64) * alpha.astype(np.float64)
    if beta is not None:
        y = y * beta
    if b is not None:
        y = y + b.astype(np.float64)
    return y.astype(np.float32)


def xnor_dense(x, W, b=None, *, input_scale=False):
    """XNOR-Net binary dense layer (module docstring).

    Parameters
    ----------
    x : float32 (N, in); W : float32 (out, in); b : float32 (out,), optional
    input_scale : bool, multiply by beta_n = ||x_n||_1 / in

    Returns
    -------
    float32 (N, out)
    """
    _check_float("x", x, 2)
    _check_float("W", W, 2)
    if b is not None:
        _check_float("b", b, 1)
    return XnorLinear.from_float(W, input_scale=input_scale).linear(x, b)


def xnor_conv2d(x, W, b=None, *, stride=1, padding=0, dilation=1, input_scale=False):
    """XNOR-Net binary 2-D convolution (NCHW / OIHW, groups 1; module docstring)."""
    _check_float("x", x, 4)
    _check_float("W", W, 4)
    if b is not None:
        _check_float("b", b, 1)
    return XnorLinear.from_float(W, input_scale=input_scale).conv2d(
        x, b, stride=stride, padding=padding, dilation=dilation)


class XnorLinear(CompressedWeight):
    """Binary weights (signs packed in uint64 words) and alpha per output filter, with
    XNOR-popcount ``linear`` / ``conv2d`` hooks (encoding ``"xnor_packed"``).

    ``dequantize()`` is ``alpha_o * sign(W)`` in float32 (exact).  ``stored_bits()``: one bit
    per weight plus 32 per alpha.
    """

    __slots__ = ("bits", "alpha", "_shape", "input_scale")
    encoding = "xnor_packed"

    def __init__(self, bits, alpha, shape, *, input_scale=False):
        shape = tuple(int(s) for s in shape)
        if len(shape) not in (2, 4):
            raise ShapeError(f"shape must be 2-D (dense) or 4-D (conv2d), got {shape}")
        n = int(np.prod(shape[1:]))
        if not isinstance(bits, np.ndarray) or bits.dtype != np.uint64 or \
                bits.shape != (shape[0], (n + 63) // 64):
            raise DTypeError(f"bits must be uint64 of shape ({shape[0]}, {(n + 63) // 64}), "
                             f"got {describe(bits)}")
        if n % 64 and np.any(bits[:, -1] >> np.uint64(n % 64)):
            raise FormatError("bits beyond the weight count must be zero")
        _check_float("alpha", alpha, 1)
        if alpha.shape != (shape[0],) or np.any(alpha < 0):
            raise ParameterError(f"alpha must be non-negative, shape ({shape[0]},)")
        self.bits, self.alpha, self._shape = bits, alpha, shape
        self.input_scale = bool(input_scale)

    @classmethod
    def from_float(cls, W, *, input_scale=False):
        """Binarise float32 weights (O, ...): signs and alpha_o = mean |W_o|."""
        _check_float("W", W, W.ndim)
        Wm = W.reshape(W.shape[0], -1)
        return cls(pack_signs(Wm), _alpha(Wm), W.shape, input_scale=input_scale)

    shape = property(lambda self: self._shape)
    dtype = property(lambda self: np.dtype(np.float32))

    def _signs(self):
        n = int(np.prod(self._shape[1:]))
        bits = np.unpackbits(self.bits.view(np.uint8).reshape(self.bits.shape[0], -1),
                             axis=1, bitorder="little")[:, :n]
        return np.where(bits == 1, np.float32(1), np.float32(-1))

    def dequantize(self):
        return (self._signs() * self.alpha[:, None]).reshape(self._shape).astype(np.float32)

    def stored_bits(self):
        return int(np.prod(self._shape)) + 32 * self.alpha.size

    def to_hdf5(self, group):
        group.attrs["encoding"] = self.encoding
        write_dataset(group, "bits", self.bits)
        write_dataset(group, "alpha", self.alpha)
        group.attrs["shape"] = np.array(self._shape, np.int64)
        group.attrs["input_scale"] = bool(self.input_scale)

    @classmethod
    def from_hdf5(cls, group, *, max_elements=1 << 31):
        a = parse_attrs(group, "xnor_packed", {"shape": shape_attr, "input_scale": _flag},
                        optional=("input_scale",))
        try:
            shape = a["shape"]
            if int(np.prod(shape)) > max_elements:
                raise FormatError(f"{group.name}: declared shape {shape} is too large")
            return cls(group["bits"][()], group["alpha"][()], shape,
                       input_scale=bool(a["input_scale"]))
        except KeyError as exc:
            raise FormatError(f"{group.name}: xnor_packed entry lacks {exc}") from None
        except (ParameterError, DTypeError, ShapeError) as exc:
            raise FormatError(f"{group.name}: invalid xnor_packed entry: {exc}") from None

    def linear(self, x, b=None, *, precision="reference"):
        """Dense hook: exact XNOR-popcount dot, then ``fl32(dot * alpha * beta + b)``."""
        if len(self._shape) != 2:
            raise ShapeError("linear hook of a 4-D (conv) XnorLinear")
        _check_float("x", x, 2)
        dot = xnor_dot(pack_signs(x), self.bits, self._shape[1])
        beta = None
        if self.input_scale:
            beta = np.array([math.fsum(np.abs(r).astype(np.float64).tolist()) / r.size
                             for r in x], np.float64)[:, None]
        return _finish(dot, self.alpha, beta, b)

    def conv2d(self, x, b=None, *, stride=1, padding=0, dilation=1, groups=1, layout="NCHW",
               precision="reference"):
        """Conv hook (groups 1): packed sign windows with a validity mask for the padding."""
        from .ops import _pair, conv_pads
        if len(self._shape) != 4 or groups != 1:
            raise ParameterError("XNOR conv2d: a 4-D weight and groups=1 are supported")
        xc = x if layout == "NCHW" else x.transpose(0, 3, 1, 2)
        _check_float("x", np.ascontiguousarray(xc), 4)
        st, dil = _pair("stride", stride), _pair("dilation", dilation)
        o, c, kh, kw = self._shape
        if xc.shape[1] != c:
            raise ShapeError(f"x has {xc.shape[1]} channels, W expects {c}")
        (pt, pb), (pl, pr) = conv_pads(padding, xc.shape[2:], (kh, kw), st, dil)
        n, _, h, w = xc.shape
        sg = np.zeros((n, c, h + pt + pb, w + pl + pr), bool)
        valid = np.zeros_like(sg)
        sg[:, :, pt:pt + h, pl:pl + w] = xc >= 0
        valid[:, :, pt:pt + h, pl:pl + w] = True
        eh, ew = (kh - 1) * dil[0] + 1, (kw - 1) * dil[1] + 1
        oh = (sg.shape[2] - eh) // st[0] + 1
        ow = (sg.shape[3] - ew) // st[1] + 1

        def cols(a):
            v = np.lib.stride_tricks.sliding_window_view(a, (eh, ew), axis=(2, 3))
            v = v[:, :, ::st[0], ::st[1], ::dil[0], ::dil[1]][:, :, :oh, :ow]
            return v.transpose(0, 2, 3, 1, 4, 5).reshape(n * oh * ow, c * kh * kw)
        dot = xnor_dot(pack_rows(cols(sg)), self.bits, c * kh * kw, mask=pack_rows(cols(valid)))
        beta = None
        if self.input_scale:
            a = np.zeros(sg.shape[:1] + sg.shape[2:], np.float64)
            a[:, pt:pt + h, pl:pl + w] = np.abs(xc.astype(np.float64)).sum(axis=1) / c
            win = np.lib.stride_tricks.sliding_window_view(a, (eh, ew), axis=(1, 2))
            win = win[:, ::st[0], ::st[1], ::dil[0], ::dil[1]][:, :oh, :ow]
            box = np.zeros(win.shape[:3], np.float64)
            for i in range(kh):             # window sum in row-major order, float64
                for j in range(kw):
                    box += win[..., i, j]
            beta = (box / (kh * kw)).reshape(-1, 1)
        y = _finish(dot, self.alpha, beta, b).reshape(n, oh, ow, o).transpose(0, 3, 1, 2)
        y = np.ascontiguousarray(y)
        return y if layout == "NCHW" else np.ascontiguousarray(y.transpose(0, 2, 3, 1))


def _flag(value):
    """A boolean HDF5 attribute (a scalar; ValueError otherwise)."""
    v = np.asarray(value)
    if v.ndim or v.dtype.kind not in "biu":
        raise ValueError(f"expected a boolean scalar, got {v.dtype} of shape {v.shape}")
    return bool(v)


register_encoding("xnor_packed", XnorLinear)
