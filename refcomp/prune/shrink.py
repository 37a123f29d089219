"""Physical removal of output neurons / channels (seed 003 §4.1, §4.5, appendix A
``LIMutils.shrink_layer``)."""

import numpy as np

from .._errors import DTypeError, ParameterError, ShapeError
from .._validate import describe
from ..model import Model
from . import _graph

__all__ = ["shrink", "keep_indices"]


def keep_indices(keep_outputs, n, name="keep_outputs"):
    """Validate a keep specification -> sorted unique int64 indices in [0, n).

    Accepts a bool ndarray of length n or an integer ndarray of distinct
    indices (any order; the kept neurons keep their original order).
    """
    if not isinstance(keep_outputs, np.ndarray):
        raise DTypeError(f"{name} must be a numpy.ndarray (bool mask or integer indices), "
                         f"got {type(keep_outputs).__name__}")
    if keep_outputs.ndim != 1:
        raise ShapeError(f"{name} must be 1-D, got {describe(keep_outputs)}")
    if keep_outputs.dtype == np.bool_:
        if keep_outputs.size != n:
            raise ShapeError(f"{name} as a bool mask must have length {n} (the layer's "
                             f"outputs), got {describe(keep_outputs)}")
        idx = np.flatnonzero(keep_outputs).astype(np.int64)
    elif keep_outputs.dtype.kind in "iu":
        idx = keep_outputs.astype(np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            raise ParameterError(f"{name} indices must be in [0, {n}), got range "
                                 f"[{idx.min()}, {idx.max()}]")
        if np.unique(idx).size != idx.size:
            raise ParameterError(f"{name} contains duplicate indices")
        idx = np.sort(idx)
    else:
        raise DTypeError(f"{name} must be bool or integer, got {describe(keep_outputs)}")
    if idx.size == 0:
        raise ParameterError(f"{name} keeps no output: a layer cannot be shrunk away entirely")
    return idx


def shrink(model, layer, keep_outputs):
    """Remove output neurons of one layer and the matching inputs downstream.

    Parameters
    ----------
    model : refcomp.Model (with ``input_shape``)
    layer : str or int
        Path of a dense or conv2d (groups=1) layer, as in ``model.named_layers()``
        ("3" or "3/2" inside residual block 3).  Recurrent layers (lstm, gru,
        mgu, simple_rnn) are refused: shrinking their hidden units (the
        gate blocks of ``W_ih``/``W_hh``/biases and the recurrent columns) is
        not supported; a dense layer after a recurrent one can be shrunk.
    keep_outputs : ndarray
        bool mask of length n_out, or distinct integer indices; the kept
        neurons stay in their original order.  Keeping nothing is an error.

    Returns
    -------
    Model
        A new model (untouched weights shared).  Rows/filters and bias
        entries of the removed outputs are dropped; through activations
        (not softmax), dropout, pooling, batch norm (its four vectors
        sliced) and flatten (the LIMutils unfold factor: kept features
        ``c*H*W + hw`` for NCHW, ``hw*C + c`` for NHWC) the matching inputs
        of the next dense/conv2d layer are dropped.  At the end of a
        residual block's body the block gets (or narrows) its ``index_map``:
        selective addition of the body output to the kept channels (seed 003
        §4.5).  Shrinking a layer whose output feeds a residual shortcut, a
        reshape, a recurrent layer or a grouped conv is refused.  The NCHW
        and NHWC layouts are both handled (channel axis 1 or 3).

    Notes
    -----
    Semantics: the result computes the same function as the *masked* model
    in which the removed neurons' weights and bias are zero.  Their output is
    then the constant ``act(0)`` after the pass-through layers; when that is
    exactly zero (ReLU, tanh, linear, max pooling) nothing else changes and,
    in reference precision, the shrunk model's outputs are bit-identical to
    the masked model's (removed products were exact zeros in the float64
    accumulators).  When it is not zero (sigmoid, batch norm shift...) its
    contribution is folded into the consumer's bias: the contribution is
    computed in float64 (products of the weight dtype exact in float64,
    summed in the dense/conv reference order), added to the float64 bias and
    rounded once (half-even) to the weight dtype; outputs then agree within
    the dense/conv rounding bound (FACTS.md §8,
    :func:`refcomp.testing.dot_error_bound`).  At the end of a residual body
    a non-zero constant is added to the trunk; it is folded into the next
    dense/conv2d layer after the block when only affine layers lie between
    (see :func:`refcomp.prune.remove_dead_neurons`).  A contribution that
    differs across positions (next conv zero-padded) or meets a non-affine
    layer first cannot be folded: ParameterError.
    Masked weights are sliced as Masked; other compressed weights are refused.
    """
    if not isinstance(model, Model):
        raise ParameterError(f"model must be a refcomp.Model, got {type(model).__name__}")
    seq, i, _ = _graph.locate(model, layer)
    _graph.check_producer(seq[i], layer)
    keep = keep_indices(keep_outputs, _graph.n_outputs(seq[i]))
    n = _graph.n_outputs(seq[i])
    preact = np.zeros(n, dtype=np.float64)
    try:
        return _graph.remove_outputs(model, layer, keep, preact)
    except _graph.Unfoldable as exc:
        raise ParameterError(f"cannot shrink layer {layer} exactly: {exc}") from None
