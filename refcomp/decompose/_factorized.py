"""Base class of the factorized weight types (PCA, SVD, Tucker-2, CP).

A factorized weight stores factors whose exact real product ``W*`` is the
approximated kernel.  Two forward passes:

* ``"reconstruct"``: ``dequantize()`` (``W*`` evaluated in a documented
  order, one rounding to the weight dtype) and the layer's own dense/conv2d
  on it, bit for bit :func:`refcomp.layers.dense` / :func:`refcomp.layers.conv2d`
  on the decoded array;
* ``"factorized"``: the chain of smaller products the factorization allows
  (the operation count the method saves), as each type documents.

Both are within a derived bound of the exact real output ``x * W* + b``
(:meth:`FactorizedWeight.error_bound`), so they agree with each other within
the sum of their two bounds.  Which pass the layer hooks run is the weight's
``forward`` attribute (stored in the file).
"""

import numpy as np

from .._errors import DecodeError, ParameterError
from .._validate import check_choice
from ..layers import conv2d, dense
from ..layers._common import from_nchw
from ..layers.conv import conv2d_setup
from ..weights import CompressedWeight
from ._common import abs_term, path_factor

__all__ = ["FactorizedWeight", "FORWARDS", "conv_geometry"]

#: Forward passes of every factorized weight.
FORWARDS = ("reconstruct", "factorized")


def conv_geometry(x, W_like, b, stride, padding, dilation, groups, layout):
    """(x NCHW, stride, dilation, groups, pads) exactly as refcomp.layers.conv2d resolves them."""
    return conv2d_setup(x, W_like, b, stride, padding, dilation, groups, layout)


class FactorizedWeight(CompressedWeight):
    """Common protocol part of the factorized types (abstract).

    Subclasses define ``dequantize``, ``stored_params``, ``_abs_weight64``
    (the reconstruction from the factors' absolute values, float64),
    ``_factor_conv`` / ``_factor_linear`` (the factorized pass on clean NCHW
    input) and ``_counts`` (roundings per real term of each pass).
    """

    __slots__ = ()

    @property
    def shape(self):
        return tuple(self._wshape)

    @property
    def dtype(self):
        return self._dtype

    def stored_bits(self):
        """Stored factors at the weight precision: ``stored_params() * itemsize * 8``."""
        return int(self.stored_params()) * self._dtype.itemsize * 8

    def with_forward(self, forward):
        """A copy (factors shared) whose layer hooks run ``forward``."""
        check_choice("forward", forward, FORWARDS)
        new = self._copy()
        new.forward = forward
        return new

    # -- hooks ---------------------------------------------------------------
    def linear(self, x, b=None, *, precision="reference"):
        """Dense product of this weight: see :meth:`forward_linear`."""
        return self.forward_linear(x, b, precision=precision)

    def conv2d(self, x, b=None, *, stride=1, padding=0, dilation=1, groups=1, layout="NCHW",
               precision="reference"):
        """Convolution with this weight: see :meth:`forward_conv2d`."""
        return self.forward_conv2d(x, b, stride=stride, padding=padding, dilation=dilation,
                                   groups=groups, layout=layout, precision=precision)

    def forward_linear(self, x, b=None, *, precision="reference", forward=None):
        """``x @ W.T + b`` by the pass ``forward`` (default: the weight's ``forward``).

        ``"reconstruct"``: :func:`refcomp.layers.dense` on ``dequantize()``
        (its arithmetic, bit for bit).  ``"factorized"``: the type's chain of
        dense products (see the class docstring).  Within
        :meth:`error_bound` of the exact real output.
        """
        forward = self._check_forward(forward, 2)
        if forward == "reconstruct":
            return dense(x, self.dequantize(), b, precision=precision)
        # validate exactly as the layer would, without decoding
        dense(x[:0], np.broadcast_to(np.zeros((), self._dtype), self.shape), b,
              precision="fast")
        return self._factor_linear(x, b, precision)

    def forward_conv2d(self, x, b=None, *, stride=1, padding=0, dilation=1, groups=1,
                       layout="NCHW", precision="reference", forward=None):
        """Convolution by the pass ``forward`` (default: the weight's ``forward``).

        ``"reconstruct"``: :func:`refcomp.layers.conv2d` on ``dequantize()``.
        ``"factorized"``: the type's chain of convolutions.  Arguments as for
        :func:`refcomp.layers.conv2d`; within :meth:`error_bound`.
        """
        forward = self._check_forward(forward, 4)
        if forward == "reconstruct":
            return conv2d(x, self.dequantize(), b, stride=stride, padding=padding,
                          dilation=dilation, groups=groups, layout=layout, precision=precision)
        stand_in = np.broadcast_to(np.zeros((), self._dtype), self.shape)
        xc, st, dil, g, pads = conv_geometry(x, stand_in, b, stride, padding, dilation,
                                             groups, layout)
        y = self._factor_conv(xc, b, st, pads, dil, g, precision)
        return from_nchw(y, layout)

    def _check_forward(self, forward, ndim):
        forward = self.forward if forward is None else forward
        check_choice("forward", forward, FORWARDS)
        if len(self.shape) != ndim:
            raise ParameterError(f"{type(self).__name__} of weight_shape {self.shape} is a "
                                 f"{'dense' if len(self.shape) == 2 else 'conv2d'} weight")
        return forward

    # -- bound ------------------------------------------------------------------
    def error_bound(self, x, b=None, *, forward=None, precision="reference", stride=1,
                    padding=0, dilation=1, groups=1, layout="NCHW"):
        """Elementwise bound on ``|pass output - exact output|``.

        The exact output is the real dense product / convolution of ``x``
        with ``W*``, the exact real product of the stored factors, plus
        ``b``.  The bound is ``f * M + a``:

        * ``M = |x| * R + |b|`` with ``R`` the reconstruction from the
          factors' absolute values (the sum of the absolute values of every
          real term of an output), evaluated in float64 and enlarged by
          ``1 + gamma`` to cover its own rounding (all terms are >= 0);
        * ``f = (1 + gamma_k64(2**-53)) (1 + gamma_kd(u)) - 1`` where ``k64``
          and ``kd`` count the float64 roundings and the roundings to the
          weight dtype (unit ``u``) that any real term goes through in the
          pass (``_counts``: products that may round, every addition of a
          sequential or BLAS sum, stored intermediates, the final rounding);
          each rounding multiplies a term by ``1 + delta``, ``|delta| <= u``
          (FACTS.md §8, standard model);
        * ``a``: half the smallest subnormal per term and rounding
          (underflow).

        Two passes therefore differ by at most the sum of their bounds.
        Finite inputs only; no bound for NaN/Inf.

        Returns
        -------
        ndarray float64 of the output's shape (and layout).
        """
        forward = self._check_forward(forward, len(self.shape))
        check_choice("precision", precision, ("reference", "fast"))
        R = self._abs_weight64()
        n = int(np.prod(self.shape[1:]))
        k64, kd = self._counts(forward, precision, n)
        f = path_factor(k64, kd, self._dtype)
        ax = np.abs(x.astype(np.float64))
        ab = None if b is None else np.abs(b.astype(np.float64))
        if len(self.shape) == 2:
            M = dense(ax, R, ab)
        else:
            M = conv2d(ax, R, ab, stride=stride, padding=padding, dilation=dilation,
                       groups=groups, layout=layout)
        inflate = 1.0 + path_factor(n + self._rank_terms() + 4, 0, np.float64)
        return f * M * inflate + abs_term(n * (self._rank_terms() + 1) + 2, k64 + kd,
                                          self._dtype)

    # -- helpers for subclasses -------------------------------------------------------
    def _rank_terms(self):
        """Largest number of factor products summed per kernel entry (for allowances)."""
        return 1


def check_forward_attr(value):
    v = value.decode() if isinstance(value, bytes) else str(value)
    if v not in FORWARDS:
        raise DecodeError(f"invalid forward {v!r} (expected one of {FORWARDS})")
    return v
