"""Weight-layout converters between Keras, ONNX and refcomp's canonical layouts.

Canonical (PyTorch) layouts: dense W (out, in); conv W OIHW; LSTM gate
blocks i, f, g, o along rows of W_ih (4H, F) / W_hh (4H, H) with two biases;
GRU r, z, n with W_ih (3H, F) / W_hh (3H, H) and two biases.

Gate orders (FACTS.md §1-2): Keras LSTM i,f,c,o (columns); ONNX LSTM
i,o,f,c (rows); Keras and ONNX GRU z,r,h.  Every converter only transposes
and permutes blocks (exact), returns new C-contiguous arrays of the input
dtype, and has an inverse; the one arithmetic step is merging two biases
into one where the target has a single bias (documented per function).
"""

import numpy as np

from ._errors import ParameterError, ShapeError
from ._validate import as_float_array, check_choice, check_int, check_same_dtype, describe

__all__ = ["lstm_from_keras", "lstm_to_keras", "lstm_from_onnx", "lstm_to_onnx",
           "gru_from_keras", "gru_to_keras", "gru_from_onnx", "gru_to_onnx",
           "dense_from_keras", "dense_to_keras", "conv2d_from_keras", "conv2d_to_keras",
           "dense_from_keras_after_flatten", "dense_to_keras_after_flatten",
           "rnn_from_onnx", "rnn_to_onnx", "peepholes_from_onnx", "peepholes_to_onnx"]

_LSTM_ONNX_FROM_CANON = (0, 3, 1, 2)   # ONNX block k = canonical block [..][k]: i,o,f,c
_LSTM_CANON_FROM_ONNX = (0, 2, 3, 1)   # canonical i,f,g,o taken from ONNX i,o,f,c
_GRU_SWAP = (1, 0, 2)                  # r,z,n <-> z,r,h (an involution)


def _blocks(a, order, gates, axis):
    parts = np.split(a, gates, axis=axis)
    return np.ascontiguousarray(np.concatenate([parts[k] for k in order], axis=axis))


def _merge_biases(b1, b2):
    """One bias from two: b1 + b2 rounded once in the dtype; exact (b1 returned
    unchanged, sign of zero included) when b2 is absent or all zeros."""
    if b1 is None and b2 is None:
        return None
    if b2 is None or not np.any(b2):
        return np.array(b1, copy=True) if b1 is not None else np.zeros_like(b2)
    if b1 is None:
        return np.array(b2, copy=True)
    return b1 + b2


def _check_rnn_keras(kernel, recurrent_kernel, gates, bias=None):
    as_float_array("kernel", kernel, ndim=2)
    as_float_array("recurrent_kernel", recurrent_kernel, ndim=2)
    if bias is not None:
        as_float_array("bias", bias)
    check_same_dtype([("kernel", kernel), ("recurrent_kernel", recurrent_kernel),
                      ("bias", bias)])
    h = recurrent_kernel.shape[0]
    if recurrent_kernel.shape != (h, gates * h) or kernel.shape[1] != gates * h:
        raise ShapeError(f"Keras RNN kernels must be (F, {gates}H) and (H, {gates}H); got kernel "
                         f"{describe(kernel)}, recurrent_kernel {describe(recurrent_kernel)}")
    return h


def _check_rnn_canonical(W_ih, W_hh, b_ih, b_hh, gates):
    """Validate canonical (PyTorch-layout) RNN weights; return H.

    W_ih (G*H, F), W_hh (G*H, H), b_ih/b_hh (G*H,) or None, one float dtype:
    DTypeError / ShapeError naming the argument with its shape and dtype.
    """
    as_float_array("W_ih", W_ih, ndim=2)
    as_float_array("W_hh", W_hh, ndim=2)
    for name, b in (("b_ih", b_ih), ("b_hh", b_hh)):
        if b is not None:
            as_float_array(name, b, ndim=1)
    check_same_dtype([("W_ih", W_ih), ("W_hh", W_hh), ("b_ih", b_ih), ("b_hh", b_hh)])
    h = W_hh.shape[1]
    if W_hh.shape != (gates * h, h):
        raise ShapeError(f"W_hh must have shape ({gates}*H, H) = ({gates * h}, {h}), "
                         f"got {describe(W_hh)}")
    if W_ih.shape[0] != gates * h:
        raise ShapeError(f"W_ih must have {gates}*H = {gates * h} rows like W_hh "
                         f"{describe(W_hh)}, got {describe(W_ih)}")
    for name, b in (("b_ih", b_ih), ("b_hh", b_hh)):
        if b is not None and b.shape != (gates * h,):
            raise ShapeError(f"{name} must have shape ({gates * h},) ({gates}*H), "
                             f"got {describe(b)}")
    return h


def _check_bool(name, value):
    # True/False (or 0/1, which compare equal to them); anything else is an error.
    check_choice(name, value, (False, True))
    return bool(value)


def lstm_from_keras(kernel, recurrent_kernel, bias=None):
    """Keras LSTM (kernel (F, 4H), recurrent_kernel (H, 4H), bias (4H,)) ->
    (W_ih (4H, F), W_hh (4H, H), b_ih, b_hh).

    Same gate order (Keras c == canonical g); b_ih = bias, b_hh = zeros
    (Keras has one bias).  Exact.
    """
    h = _check_rnn_keras(kernel, recurrent_kernel, 4, bias)
    b_ih = b_hh = None
    if bias is not None:
        as_float_array("bias", bias, ndim=1)
        if bias.shape != (4 * h,):
            raise ShapeError(f"bias must be ({4 * h},), got {describe(bias)}")
        b_ih, b_hh = np.array(bias, copy=True), np.zeros_like(bias)
    return (np.ascontiguousarray(kernel.T), np.ascontiguousarray(recurrent_kernel.T), b_ih, b_hh)


def lstm_to_keras(W_ih, W_hh, b_ih=None, b_hh=None):
    """Inverse of :func:`lstm_from_keras`: (kernel, recurrent_kernel, bias).

    bias = b_ih + b_hh in the dtype (one rounding; exact and b_ih returned
    unchanged when b_hh is absent or zero, as after :func:`lstm_from_keras`).
    W_ih (4H, F), W_hh (4H, H), b_ih/b_hh (4H,) or None, one float dtype
    (ShapeError / DTypeError otherwise).
    """
    _check_rnn_canonical(W_ih, W_hh, b_ih, b_hh, 4)
    return (np.ascontiguousarray(W_ih.T), np.ascontiguousarray(W_hh.T), _merge_biases(b_ih, b_hh))


def _squeeze_dir(name, a, ndim, direction=None):
    as_float_array(name, a)
    if a.ndim == ndim + 1:
        if direction is None:
            if a.shape[0] != 1:
                raise ShapeError(f"{name} has num_directions={a.shape[0]}; pass direction=0 "
                                 f"(forward) or 1 (reverse) to convert one of them, got "
                                 f"{describe(a)}")
            direction = 0
        check_int("direction", direction, lo=0, hi=a.shape[0] - 1)
        a = a[direction]
    if a.ndim != ndim:
        raise ShapeError(f"{name} must have {ndim} (or {ndim + 1} with a direction axis) "
                         f"dimensions, got {describe(a)}")
    return a


def lstm_from_onnx(W, R, B=None, *, direction=None):
    """ONNX LSTM (W [D, 4H, F], R [D, 4H, H], B [D, 8H], gates i,o,f,c) ->
    (W_ih, W_hh, b_ih, b_hh) in gate order i,f,g,o.  The direction axis may
    be omitted; with D = 2 (bidirectional) ``direction`` (0 forward, 1
    reverse) selects the one to convert.  b_ih = Wb, b_hh = Rb (kept apart,
    exact)."""
    W, R = _squeeze_dir("W", W, 2, direction), _squeeze_dir("R", R, 2, direction)
    if B is not None:
        B = _squeeze_dir("B", B, 1, direction)
    check_same_dtype([("W", W), ("R", R), ("B", B)])
    h = R.shape[1]
    if W.shape[0] != 4 * h or R.shape[0] != 4 * h:
        raise ShapeError(f"ONNX LSTM W/R must have 4H={4 * h} rows; W {describe(W)}, R {describe(R)}")
    b_ih = b_hh = None
    if B is not None:
        if B.shape != (8 * h,):
            raise ShapeError(f"B must have 8H={8 * h} elements, got {describe(B)}")
        b_ih = _blocks(B[:4 * h], _LSTM_CANON_FROM_ONNX, 4, 0)
        b_hh = _blocks(B[4 * h:], _LSTM_CANON_FROM_ONNX, 4, 0)
    return (_blocks(W, _LSTM_CANON_FROM_ONNX, 4, 0), _blocks(R, _LSTM_CANON_FROM_ONNX, 4, 0),
            b_ih, b_hh)


def lstm_to_onnx(W_ih, W_hh, b_ih=None, b_hh=None):
    """Inverse of :func:`lstm_from_onnx`: (W [1,4H,F], R [1,4H,H], B [1,8H]); exact.

    Inputs as :func:`lstm_to_keras` (validated the same way); missing biases
    are written as +0.0.
    """
    _check_rnn_canonical(W_ih, W_hh, b_ih, b_hh, 4)
    W = _blocks(W_ih, _LSTM_ONNX_FROM_CANON, 4, 0)[None]
    R = _blocks(W_hh, _LSTM_ONNX_FROM_CANON, 4, 0)[None]
    h = W_hh.shape[1]
    zero = np.zeros(4 * h, dtype=W_ih.dtype)
    bi = zero if b_ih is None else b_ih
    bh = zero if b_hh is None else b_hh
    B = np.concatenate([_blocks(bi, _LSTM_ONNX_FROM_CANON, 4, 0),
                        _blocks(bh, _LSTM_ONNX_FROM_CANON, 4, 0)])[None]
    return W, R, B


def gru_from_keras(kernel, recurrent_kernel, bias=None, *, reset_after):
    """Keras GRU (kernel (F, 3H), recurrent_kernel (H, 3H), gates z,r,h) ->
    (W_ih, W_hh, b_ih, b_hh) in gate order r,z,n.

    reset_after=True: bias (2, 3H), row 0 -> b_ih, row 1 -> b_hh.
    reset_after=False: bias (3H,) -> b_ih, b_hh = zeros (the Cho form of
    :func:`refcomp.layers.gru` with ``reset_after=False``).  Exact.
    """
    reset_after = _check_bool("reset_after", reset_after)
    h = _check_rnn_keras(kernel, recurrent_kernel, 3, bias)
    W_ih = _blocks(np.ascontiguousarray(kernel.T), _GRU_SWAP, 3, 0)
    W_hh = _blocks(np.ascontiguousarray(recurrent_kernel.T), _GRU_SWAP, 3, 0)
    b_ih = b_hh = None
    if bias is not None:
        as_float_array("bias", bias)
        want = (2, 3 * h) if reset_after else (3 * h,)
        if bias.shape != want:
            raise ShapeError(f"bias must have shape {want} for reset_after={reset_after}, "
                             f"got {describe(bias)}")
        if reset_after:
            b_ih, b_hh = _blocks(bias[0], _GRU_SWAP, 3, 0), _blocks(bias[1], _GRU_SWAP, 3, 0)
        else:
            b_ih, b_hh = _blocks(bias, _GRU_SWAP, 3, 0), np.zeros_like(bias)
    return W_ih, W_hh, b_ih, b_hh


def gru_to_keras(W_ih, W_hh, b_ih=None, b_hh=None, *, reset_after):
    """Inverse of :func:`gru_from_keras`: (kernel, recurrent_kernel, bias).

    reset_after=False merges b_ih + b_hh (one rounding; exact when b_hh is
    absent or zero).  That merge is only equivalent for the reset-before
    formula, where both biases sit outside the reset product.
    W_ih (3H, F), W_hh (3H, H), b_ih/b_hh (3H,) or None, one float dtype
    (ShapeError / DTypeError otherwise).
    """
    reset_after = _check_bool("reset_after", reset_after)
    _check_rnn_canonical(W_ih, W_hh, b_ih, b_hh, 3)
    kernel = np.ascontiguousarray(_blocks(W_ih, _GRU_SWAP, 3, 0).T)
    rec = np.ascontiguousarray(_blocks(W_hh, _GRU_SWAP, 3, 0).T)
    if b_ih is None and b_hh is None:
        return kernel, rec, None
    h = W_hh.shape[1]
    zero = np.zeros(3 * h, dtype=W_ih.dtype)
    bi = zero if b_ih is None else b_ih
    bh = zero if b_hh is None else b_hh
    if reset_after:
        return kernel, rec, np.stack([_blocks(bi, _GRU_SWAP, 3, 0), _blocks(bh, _GRU_SWAP, 3, 0)])
    return kernel, rec, _blocks(_merge_biases(bi, bh), _GRU_SWAP, 3, 0)


def gru_from_onnx(W, R, B=None, *, linear_before_reset, direction=None):
    """ONNX GRU (W [D, 3H, F], R [D, 3H, H], B [D, 6H], gates z,r,h) ->
    (W_ih, W_hh, b_ih, b_hh) in r,z,n.  Use with ``refcomp.layers.gru(...,
    reset_after=bool(linear_before_reset))``: for lbr=0 ONNX adds Rbh outside
    the reset product, exactly as refcomp's reset_before form adds b_hn.
    ``direction`` as :func:`lstm_from_onnx`.  Exact."""
    W, R = _squeeze_dir("W", W, 2, direction), _squeeze_dir("R", R, 2, direction)
    if B is not None:
        B = _squeeze_dir("B", B, 1, direction)
    check_same_dtype([("W", W), ("R", R), ("B", B)])
    h = R.shape[1]
    if W.shape[0] != 3 * h or R.shape[0] != 3 * h:
        raise ShapeError(f"ONNX GRU W/R must have 3H={3 * h} rows; W {describe(W)}, R {describe(R)}")
    del linear_before_reset  # layout does not depend on it; kept for an explicit call site
    b_ih = b_hh = None
    if B is not None:
        if B.shape != (6 * h,):
            raise ShapeError(f"B must have 6H={6 * h} elements, got {describe(B)}")
        b_ih, b_hh = _blocks(B[:3 * h], _GRU_SWAP, 3, 0), _blocks(B[3 * h:], _GRU_SWAP, 3, 0)
    return _blocks(W, _GRU_SWAP, 3, 0), _blocks(R, _GRU_SWAP, 3, 0), b_ih, b_hh


def gru_to_onnx(W_ih, W_hh, b_ih=None, b_hh=None):
    """Inverse of :func:`gru_from_onnx`: (W [1,3H,F], R [1,3H,H], B [1,6H]); exact.
    Export with ``linear_before_reset=1`` for reset_after=True models.
    Inputs as :func:`gru_to_keras` (validated the same way); missing biases
    are written as +0.0."""
    h = _check_rnn_canonical(W_ih, W_hh, b_ih, b_hh, 3)
    zero = np.zeros(3 * h, dtype=W_ih.dtype)
    bi = zero if b_ih is None else b_ih
    bh = zero if b_hh is None else b_hh
    B = np.concatenate([_blocks(bi, _GRU_SWAP, 3, 0), _blocks(bh, _GRU_SWAP, 3, 0)])[None]
    return _blocks(W_ih, _GRU_SWAP, 3, 0)[None], _blocks(W_hh, _GRU_SWAP, 3, 0)[None], B


def _check_dense(w_name, W, b_name, b, out_axis):
    as_float_array(w_name, W, ndim=2)
    if b is not None:
        as_float_array(b_name, b, ndim=1)
        check_same_dtype([(w_name, W), (b_name, b)])
        if b.shape != (W.shape[out_axis],):
            raise ShapeError(f"{b_name} must have shape ({W.shape[out_axis]},) (one per output "
                             f"of {w_name} {describe(W)}), got {describe(b)}")


def dense_from_keras(kernel, bias=None):
    """Keras Dense kernel (in, out) -> W (out, in); bias (out,) of the same
    dtype, copied.  Exact."""
    _check_dense("kernel", kernel, "bias", bias, 1)
    return np.ascontiguousarray(kernel.T), (None if bias is None else np.array(bias, copy=True))


def dense_to_keras(W, b=None):
    """Inverse of :func:`dense_from_keras`: W (out, in) -> kernel (in, out);
    b (out,) of the same dtype, copied.  Exact."""
    _check_dense("W", W, "b", b, 0)
    return np.ascontiguousarray(W.T), (None if b is None else np.array(b, copy=True))


def _check_hwc(hwc):
    if isinstance(hwc, (str, bytes)):
        hwc = None
    try:
        h, w, c = hwc
    except (TypeError, ValueError):
        raise ParameterError(f"hwc must be a triple (H, W, C) of ints, got {hwc!r}") from None
    return tuple(check_int(f"hwc[{i}]", v, lo=1) for i, v in enumerate((h, w, c)))


def conv2d_from_keras(kernel):
    """Keras/TF Conv2D kernel HWIO (kh, kw, C/groups, O) -> OIHW (FACTS.md §3.1).  Exact."""
    as_float_array("kernel", kernel, ndim=4)
    return np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))


def conv2d_to_keras(W):
    """OIHW -> HWIO, inverse of :func:`conv2d_from_keras`."""
    as_float_array("W", W, ndim=4)
    return np.ascontiguousarray(W.transpose(2, 3, 1, 0))


def dense_from_keras_after_flatten(kernel, hwc):
    """Keras Dense kernel (H*W*C, U) that follows a channels_last Flatten ->
    W (U, C*H*W) for an NCHW flatten (FACTS.md §3.2).  Exact permutation."""
    as_float_array("kernel", kernel, ndim=2)
    h, w, c = _check_hwc(hwc)
    if kernel.shape[0] != h * w * c:
        raise ShapeError(f"kernel has {kernel.shape[0]} rows, expected H*W*C = {h * w * c}")
    u = kernel.shape[1]
    return np.ascontiguousarray(kernel.reshape(h, w, c, u).transpose(3, 2, 0, 1).reshape(u, c * h * w))


def dense_to_keras_after_flatten(W, hwc):
    """Inverse of :func:`dense_from_keras_after_flatten`: W (U, C*H*W) -> kernel (H*W*C, U)."""
    as_float_array("W", W, ndim=2)
    h, w, c = _check_hwc(hwc)
    if W.shape[1] != h * w * c:
        raise ShapeError(f"W has {W.shape[1]} columns, expected C*H*W = {h * w * c}")
    u = W.shape[0]
    return np.ascontiguousarray(W.reshape(u, c, h, w).transpose(2, 3, 1, 0).reshape(h * w * c, u))


def rnn_from_onnx(W, R, B=None, *, direction=None):
    """ONNX RNN (W [D, H, F], R [D, H, H], B [D, 2H] = [Wb, Rb]) -> (W_ih, W_hh, b_ih, b_hh)
    of :func:`refcomp.layers.simple_rnn` (one gate: nothing to reorder).  ``direction``
    as :func:`lstm_from_onnx`.  Exact copies."""
    W, R = _squeeze_dir("W", W, 2, direction), _squeeze_dir("R", R, 2, direction)
    if B is not None:
        B = _squeeze_dir("B", B, 1, direction)
    check_same_dtype([("W", W), ("R", R), ("B", B)])
    h = R.shape[1]
    if W.shape[0] != h or R.shape != (h, h):
        raise ShapeError(f"ONNX RNN W/R must have H={h} rows; W {describe(W)}, R {describe(R)}")
    b_ih = b_hh = None
    if B is not None:
        if B.shape != (2 * h,):
            raise ShapeError(f"B must have 2H={2 * h} elements, got {describe(B)}")
        b_ih, b_hh = np.array(B[:h], copy=True), np.array(B[h:], copy=True)
    return np.array(W, copy=True), np.array(R, copy=True), b_ih, b_hh


def rnn_to_onnx(W_ih, W_hh, b_ih=None, b_hh=None):
    """Inverse of :func:`rnn_from_onnx`: (W [1,H,F], R [1,H,H], B [1,2H]); exact; missing
    biases are written as +0.0."""
    h = _check_rnn_canonical(W_ih, W_hh, b_ih, b_hh, 1)
    zero = np.zeros(h, dtype=W_ih.dtype)
    B = np.concatenate([zero if b_ih is None else b_ih, zero if b_hh is None else b_hh])[None]
    return np.array(W_ih, copy=True)[None], np.array(W_hh, copy=True)[None], B


def peepholes_from_onnx(P, *, direction=None):
    """ONNX LSTM peepholes P [D, 3H] in order i, o, f -> (3H,) in refcomp's order i, f, o
    (the ``peepholes`` of :func:`refcomp.layers.lstm`).  Exact."""
    P = _squeeze_dir("P", P, 1, direction)
    if P.shape[0] % 3:
        raise ShapeError(f"P must have 3H elements, got {describe(P)}")
    return _blocks(P, (0, 2, 1), 3, 0)


def peepholes_to_onnx(p):
    """Inverse of :func:`peepholes_from_onnx`: (3H,) i, f, o -> [1, 3H] i, o, f."""
    as_float_array("peepholes", p, ndim=1)
    if p.shape[0] % 3:
        raise ShapeError(f"peepholes must have 3H elements, got {describe(p)}")
    return _blocks(p, (0, 2, 1), 3, 0)[None]
