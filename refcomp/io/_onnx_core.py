"""Symbolic values of the ONNX importer (private; shared by the op handler modules).

A dynamic tensor is the chain of refcomp layers applied to the single graph
input (:class:`T`); a time-major sequence is :class:`TimeMajor` around the
batch-first one; small integer tensors are NumPy constants, the symbolic
batch size inside them being :data:`BATCH`.
"""

import numpy as np

from .._errors import FormatError
from .keras import out_shape

__all__ = ["BATCH", "T", "TimeMajor", "NCHWView", "Zeros", "Batched", "Unused", "fail", "append",
           "describe", "dec", "onnx_attrs"]

BATCH = np.int64(-(1 << 40))     # marker of the symbolic batch size in folded shapes


class T:
    """Dynamic batch-first tensor: layer chain from the input and per-sample shape."""

    def __init__(self, chain, shape):
        self.chain, self.shape = chain, tuple(int(s) for s in shape)


class TimeMajor:
    """A (T, N, ...) tensor: the batch-first tensor ``t`` with its first two axes swapped."""

    def __init__(self, t):
        self.t = t


class NCHWView:
    """The NCHW transpose (perm 0,3,1,2) of a channels-last activation ``t`` (per-sample
    H, W, C): Keras exports wrap every conv / pooling in such a Transpose pair."""

    def __init__(self, t):
        self.t = t


class Zeros:
    """A zero tensor of a batch-dependent shape (an initial recurrent state)."""


class Batched:
    """A constant repeated along the batch: ``value`` has size 1 on axis ``axis``, which is
    the symbolic batch size (a learned initial state ``h0.expand(-1, N, -1)``)."""

    def __init__(self, value, axis):
        self.value, self.axis = value, int(axis)

    @property
    def ndim(self):
        return self.value.ndim


class Unused:
    """An output refcomp does not model; using it is an error."""

    def __init__(self, node, name):
        self.node, self.name = node, name


def describe(v):
    """What a non-constant value is, for error messages."""
    if isinstance(v, T):
        return f"an activation tensor of per-sample shape {v.shape}"
    if isinstance(v, TimeMajor):
        return f"a time-major activation sequence of per-sample shape {v.t.shape}"
    if isinstance(v, NCHWView):
        return f"the NCHW transpose of a channels-last activation of per-sample shape {v.t.shape}"
    if isinstance(v, Zeros):
        return "a batch-dependent zero tensor (an initial recurrent state)"
    if isinstance(v, Batched):
        shape = list(v.value.shape)
        shape[v.axis] = "N"
        return f"a constant repeated along the batch (shape {shape})"
    if isinstance(v, Unused):
        return f"output {v.name!r} of node {v.node.name!r}, which refcomp does not model"
    d = getattr(v, "describe", None)
    return d() if callable(d) else type(v).__name__


def fail(node, msg):
    raise FormatError(f"node {node.name!r} (op {node.op_type}): {msg}")


def dec(v):
    return v.decode() if isinstance(v, bytes) else v


def onnx_attrs(node):
    import onnx
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def append(node, t, layer):
    return T(t.chain + (layer,), out_shape(layer, t.shape))
