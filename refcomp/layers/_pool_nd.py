"""N-D pooling with every ONNX MaxPool / AveragePool attribute (private engine).

Channels-first input (N, C, *spatial), 1 to 3 spatial axes.  Each spatial
axis has a kernel size k, stride s, dilation d, padding (lo, hi) and the
output size

    floor((in + lo + hi - ((k - 1) d + 1)) / s) + 1            (ceil_mode False)
    ceil(...) + 1, minus one if the last window starts at or
    beyond in + lo (in the right padding)                      (ceil_mode True)

(ONNX MaxPool/AveragePool, PyTorch ``ceil_mode``).  A window position is
*real* (inside the input), *padding* (inside lo / hi) or *overhang* (beyond
hi, reached only in ceil mode); overhang is never counted or compared.
Plain NumPy (no Numba kernel, so no twin): the loops below are over the
k1*k2*... window offsets, each a vectorised selection / addition.
"""

import numbers
from itertools import product

import numpy as np

from .._errors import ParameterError, ShapeError
from .._validate import check_int, describe

__all__ = ["tuple_n", "resolve_padding_nd", "pool_geometry", "max_pool_nd", "avg_pool_nd"]


def tuple_n(name, value, n, *, lo=1):
    """An int or a sequence of n ints, each >= lo -> tuple of n ints (ParameterError)."""
    if isinstance(value, (numbers.Integral, np.integer)) and not isinstance(value, bool):
        value = (int(value),) * n
    try:
        items = tuple(value)
    except TypeError:
        raise ParameterError(f"{name} must be an int or {n} ints, got {value!r}") from None
    if len(items) != n or any(isinstance(v, bool) or not isinstance(v, (numbers.Integral,
                                                                         np.integer))
                              for v in items):
        raise ParameterError(f"{name} must be an int or {n} ints, got {value!r}")
    items = tuple(int(v) for v in items)
    if any(v < lo for v in items):
        raise ParameterError(f"{name} must be >= {lo}, got {value!r}")
    return items


def _same(size, k, s, d, lower):
    out = (size + s - 1) // s
    total = max(0, (out - 1) * s + (k - 1) * d + 1 - size)
    small, big = total // 2, total - total // 2
    return (big, small) if lower else (small, big)


def resolve_padding_nd(padding, sizes, k, s, d):
    """Padding spec -> tuple of (lo, hi) per spatial axis.

    int (all sides), n ints (symmetric per axis), n pairs (lo, hi), or a
    string: "valid" (none), "same" / "same_upper" (out = ceil(in / s); an
    odd total puts the extra pixel at the end: TensorFlow SAME, ONNX
    SAME_UPPER), "same_lower" (the extra pixel at the beginning: ONNX
    SAME_LOWER).  The total is max(0, (out - 1) s + (k - 1) d + 1 - in).
    """
    n = len(sizes)
    if isinstance(padding, str):
        p = padding.lower()
        if p == "valid":
            return ((0, 0),) * n
        if p in ("same", "same_upper", "same_lower"):
            return tuple(_same(sizes[i], k[i], s[i], d[i], p == "same_lower") for i in range(n))
        raise ParameterError(f"padding must be an int, {n} ints, {n} pairs, 'valid', 'same', "
                             f"'same_upper' or 'same_lower', got {padding!r}")
    if isinstance(padding, (numbers.Integral, np.integer)) and not isinstance(padding, bool):
        p = check_int("padding", padding, lo=0)
        return ((p, p),) * n
    try:
        items = list(padding)
    except TypeError:
        raise ParameterError(f"invalid padding {padding!r}") from None
    if len(items) != n:
        raise ParameterError(f"padding must have {n} entries (one per spatial axis), got "
                             f"{padding!r}")
    out = []
    for i, it in enumerate(items):
        if isinstance(it, (tuple, list)):
            out.append(tuple_n(f"padding[{i}]", it, 2, lo=0))
        else:
            v = tuple_n(f"padding[{i}]", it, 1, lo=0)[0]
            out.append((v, v))
    return tuple(out)


def pool_geometry(sizes, k, s, d, pads, ceil_mode, x):
    """Output sizes; ShapeError for windows without a real element."""
    outs = []
    for i, size in enumerate(sizes):
        lo, hi = pads[i]
        eff = (k[i] - 1) * d[i] + 1
        if lo >= eff or hi >= eff:
            raise ShapeError(f"padding {pads[i]} must be smaller than the pool size {k[i]} "
                             f"(dilated: {eff}) along spatial axis {i}")
        span = size + lo + hi - eff
        if span < 0:
            raise ShapeError(f"padded input smaller than the pool window {tuple(k)} "
                             f"(x {describe(x)})")
        o = (-(-span // s[i]) if ceil_mode else span // s[i]) + 1
        if ceil_mode and (o - 1) * s[i] >= size + lo:
            o -= 1                      # the last window would start in the right padding
        for start in (0, (o - 1) * s[i]):
            pos = [start + j * d[i] - lo for j in range(k[i])]
            if not any(0 <= p < size for p in pos):
                raise ShapeError(f"a pooling window along spatial axis {i} holds no input "
                                 f"element (kernel {k[i]}, dilation {d[i]}, padding "
                                 f"{pads[i]}, input size {size}); refcomp defines no max or "
                                 "average of padding alone")
        outs.append(o)
    return tuple(outs)


def _plan(x, k, s, d, pads, outs):
    """Padded array (zeros outside the input) and, per window offset, its view,
    real-element mask and the input coordinates of each output."""
    sp = x.shape[2:]
    widths = [(lo, max(hi, (o - 1) * st + (kk - 1) * dd + 1 - lo - size, 0))
              for (lo, hi), o, st, kk, dd, size in zip(pads, outs, s, k, d, sp)]
    xp = np.pad(x, ((0, 0), (0, 0)) + tuple(widths))
    real = np.pad(np.ones(sp, dtype=bool), tuple(widths))
    padm = np.pad(np.ones(sp, dtype=bool), tuple((lo, hi) for lo, hi in pads),
                  constant_values=True)                     # real or explicit padding
    padm = np.pad(padm, tuple((0, w[1] - hi) for w, (_, hi) in zip(widths, pads)))
    for off in product(*(range(kk) for kk in k)):
        sl = tuple(slice(j * dd, j * dd + (o - 1) * st + 1, st)
                   for j, dd, o, st in zip(off, d, outs, s))
        coords = [np.arange(o) * st + j * dd - lo
                  for o, st, j, dd, (lo, _) in zip(outs, s, off, d, pads)]
        yield xp[(Ellipsis,) + sl], real[sl], padm[sl], coords


def max_pool_nd(x, k, s, d, pads, ceil_mode, want_indices, storage_order):
    """Maxima (and flat indices) over the real elements of every window.

    Window offsets are visited in row-major order; a value replaces the
    held one if it is a NaN and the held one is not, or if it is greater
    (so the first NaN and, among equal values such as +0.0 / -0.0, the
    first one win, as :func:`refcomp.layers.max_pool2d`).  Indices (int64)
    are flat positions in the unpadded input (N, C, *spatial): row-major
    (``storage_order`` 0) or with the spatial axes in column-major order
    (1), as ONNX MaxPool's ``Indices`` output.
    """
    outs = pool_geometry(x.shape[2:], k, s, d, pads, ceil_mode, x)
    n, c = x.shape[:2]
    sp = x.shape[2:]
    acc = np.zeros((n, c) + outs, dtype=x.dtype)
    have = np.zeros(outs, dtype=bool)
    idx = np.zeros((n, c) + outs, dtype=np.int64) if want_indices else None
    base = (np.arange(n)[:, None] * c + np.arange(c)[None, :]).astype(np.int64) * int(np.prod(sp))
    for v, real, _, coords in _plan(x, k, s, d, pads, outs):
        with np.errstate(invalid="ignore"):
            better = (v > acc) | (np.isnan(v) & ~np.isnan(acc))
        take = real & (~have | (better & ~np.isnan(acc)))
        acc = np.where(take, v, acc)
        if want_indices:
            grids = np.meshgrid(*coords, indexing="ij") if coords else []
            order = range(len(sp)) if storage_order == 0 else range(len(sp) - 1, -1, -1)
            lin = np.zeros(outs, dtype=np.int64)
            for a in order:
                lin = lin * sp[a] + np.clip(grids[a], 0, sp[a] - 1)
            idx = np.where(take, base.reshape((n, c) + (1,) * len(sp)) + lin, idx)
        have |= real
    return acc, idx


def avg_pool_nd(x, k, s, d, pads, ceil_mode, count_include_pad, work):
    """Averages: sequential sum in ``work`` over the window offsets in row-major
    order, from +0.0, of the real elements (padding adds +0.0, which changes no
    sum that starts at +0.0); then one division by the count of real elements
    (plus the padding ones when ``count_include_pad``; overhang never counts)."""
    outs = pool_geometry(x.shape[2:], k, s, d, pads, ceil_mode, x)
    acc = np.zeros(x.shape[:2] + outs, dtype=work)
    count = np.zeros(outs, dtype=work)
    xw = x.astype(work, copy=False)
    for v, real, padm, _ in _plan(xw, k, s, d, pads, outs):
        acc = np.where(real, acc + v, acc)
        count += (padm if count_include_pad else real).astype(work)
    return acc / count
