"""Bit-level array comparison (the kernel-twin check)."""

import numpy as np

_UINT = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


def bits_equal(a, b):
    """True when ``a`` and ``b`` have equal shape, dtype and bit patterns.

    Floats are compared through an unsigned-integer view, so NaN payloads and
    the sign of zero count.
    """
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.dtype.kind in "fc":
        u = _UINT[a.dtype.itemsize if a.dtype.kind == "f" else a.dtype.itemsize // 2]
        return np.array_equal(np.ascontiguousarray(a).view(u), np.ascontiguousarray(b).view(u))
    return np.array_equal(a, b)


def assert_bits_equal(a, b, msg=""):
    """Assert :func:`bits_equal`, reporting the first differing element."""
    if bits_equal(a, b):
        return
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.dtype != b.dtype:
        raise AssertionError(f"{msg} shape/dtype differ: {a.shape} {a.dtype} vs {b.shape} {b.dtype}")
    diff = np.flatnonzero(~(np.asarray(a == b).reshape(-1) | (np.isnan(a) & np.isnan(b)).reshape(-1))
                          if a.dtype.kind == "f" else np.asarray(a != b).reshape(-1))
    idx = int(diff[0]) if diff.size else None
    extra = f" first at flat index {idx}: {a.reshape(-1)[idx]!r} vs {b.reshape(-1)[idx]!r}" if idx is not None else " (NaN payload or zero sign)"
    raise AssertionError(f"{msg} arrays differ in {max(diff.size, 1)} element(s);{extra}")
