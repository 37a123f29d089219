"""Shape-only layers: flatten and reshape (exact, no arithmetic)."""

import numpy as np

from .._errors import ShapeError
from .._validate import as_float_array, describe
from ._common import check_layout

__all__ = ["flatten", "reshape"]


def flatten(x, *, layout="NCHW"):
    """Flatten every axis but the batch axis.

    Element order is C order of the array as laid out: for NCHW input the
    feature index is ``(c*H + h)*W + w`` (PyTorch ``nn.Flatten``); for NHWC
    it is ``(h*W + w)*C + c`` (Keras ``Flatten`` on channels_last).  See
    :func:`refcomp.convert.dense_from_keras` to move a Dense kernel between
    the two orders (FACTS.md §3.2).  Returns a (N, prod(rest)) array of the
    input dtype (a copy only if x is not contiguous).
    """
    check_layout(layout)
    as_float_array("x", x)
    if x.ndim < 1:
        raise ShapeError(f"x must have a batch axis, got {describe(x)}")
    return np.ascontiguousarray(x).reshape(x.shape[0], int(np.prod(x.shape[1:])))


def reshape(x, shape):
    """Reshape every axis but the batch axis to ``shape`` (C order); exact."""
    as_float_array("x", x)
    shape = tuple(int(s) for s in shape)
    if int(np.prod(shape)) != int(np.prod(x.shape[1:])):
        raise ShapeError(f"cannot reshape x {describe(x)} to (N, {', '.join(map(str, shape))})")
    return np.ascontiguousarray(x).reshape((x.shape[0],) + shape)
