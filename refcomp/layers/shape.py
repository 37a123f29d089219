"""Shape-only layers: flatten and reshape (exact, no arithmetic)."""

import numpy as np

from .._errors import ParameterError, ShapeError
from .._validate import as_float_array, check_int, describe
from ._common import check_layout

__all__ = ["flatten", "reshape"]


def flatten(x, *, layout="NCHW", axis=1):
    """Flatten every axis but the batch axis (ONNX ``Flatten`` with any ``axis``).

    Element order is C order of the array as laid out: for NCHW input the
    feature index is ``(c*H + h)*W + w`` (PyTorch ``nn.Flatten``); for NHWC
    it is ``(h*W + w)*C + c`` (Keras ``Flatten`` on channels_last).  See
    :func:`refcomp.convert.dense_from_keras` to move a Dense kernel between
    the two orders (FACTS.md §3.2).  Returns a (N, prod(rest)) array of the
    input dtype (a copy only if x is not contiguous).

    ``axis`` (ONNX ``Flatten``, default 1): the output is 2-D
    (prod(shape[:axis]), prod(shape[axis:])) in C order; ``axis`` in
    [-ndim, ndim] (negative counts from the back; 0 gives (1, size)).
    Any axis other than 1 (or its negative equivalent) merges the batch
    axis with others: the first output axis is then not the batch.
    """
    check_layout(layout)
    as_float_array("x", x)
    if x.ndim < 1:
        raise ShapeError(f"x must have a batch axis, got {describe(x)}")
    axis = check_int("axis", axis, lo=-x.ndim, hi=x.ndim)
    axis = axis + x.ndim if axis < 0 else axis
    return np.ascontiguousarray(x).reshape(int(np.prod(x.shape[:axis], dtype=np.int64)),
                                           int(np.prod(x.shape[axis:], dtype=np.int64)))


def reshape(x, shape):
    """Reshape every axis but the batch axis to ``shape`` (C order); exact.

    Parameters
    ----------
    x : ndarray (N, ...), float32 or float64 (at least 1-D: the batch axis)
    shape : tuple or list of ints >= 0 (or a 1-D integer ndarray; no ``-1``
        wildcard) whose product is the number of elements per sample of x.

    Returns
    -------
    y : ndarray (N, *shape), dtype of x, elements in C order (a copy only
        if x is not contiguous).  No arithmetic: NaN and -0.0 are kept.

    Raises
    ------
    DTypeError for a non-array or a dtype other than float32/float64;
    ShapeError for a 0-d x or a size mismatch; ParameterError for a shape
    that is not a sequence of non-negative ints.
    """
    as_float_array("x", x)
    if x.ndim < 1:
        raise ShapeError(f"x must have a batch axis, got {describe(x)}")
    if isinstance(shape, np.ndarray) and shape.ndim == 1 and shape.dtype.kind in "iu":
        shape = shape.tolist()
    if not isinstance(shape, (tuple, list)):
        raise ParameterError(f"shape must be a tuple or list of ints, got {shape!r}")
    shape = tuple(check_int(f"shape[{i}]", s, lo=0) for i, s in enumerate(shape))
    if int(np.prod(shape)) != int(np.prod(x.shape[1:])):
        raise ShapeError(f"cannot reshape x {describe(x)} to (N, {', '.join(map(str, shape))})")
    return np.ascontiguousarray(x).reshape((x.shape[0],) + shape)
