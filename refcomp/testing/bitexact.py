"""Bit-exact comparison for users: :func:`ulp_distance` and :func:`assert_bitexact`.

:func:`refcomp.testing.assert_bits_equal` is the terse check of refcomp's
kernel twins; :func:`assert_bitexact` is the one to run against another
implementation: it checks shape, dtype, NaN positions, NaN payloads, signed
zeros and then every bit, and reports what differs, where, and by how many
units in the last place.

The ULP distance (Muller et al., *Handbook of Floating-Point Arithmetic*,
§2.6; FACTS.md §8) is the number of representable values of the dtype
strictly between ``a`` and ``b``, plus one: ``0`` for equal values, ``1`` for
neighbours.  It is computed on the bit patterns: a float of ``w`` bits is
mapped to the integer ``key = bits`` when its sign bit is clear and ``key =
-(bits & ~sign)`` when set, an order-preserving bijection of the non-NaN
values onto consecutive integers in which ``+0.0`` and ``-0.0`` share the
key 0 and ``±inf`` follow ``±max``; the distance is ``|key(a) - key(b)|``.
"""

import numpy as np

from .._errors import DTypeError

__all__ = ["ulp_distance", "assert_bitexact", "NAN_DISTANCE"]

_UINT = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}
_INT = {1: np.int8, 2: np.int16, 4: np.int32, 8: np.int64}

#: ULP distance reported when exactly one of the two values is NaN.
NAN_DISTANCE = np.iinfo(np.uint64).max


def _is_float(dt):
    """IEEE-like binary floats: NumPy's and ml_dtypes' (bfloat16, float8 ...)."""
    if dt.kind == "f":
        return True
    try:
        import ml_dtypes
    except ImportError:
        return False
    try:
        ml_dtypes.finfo(dt)
    except (TypeError, ValueError):
        return False
    return dt.itemsize in _UINT


def _isnan(a):
    return np.isnan(a.astype(np.float32) if a.dtype.kind != "f" else a)


def _keys(a):
    """int64 keys of the module docstring (order-preserving, +0 = -0 = 0)."""
    w = a.dtype.itemsize
    u = np.ascontiguousarray(a).view(_UINT[w]).astype(np.uint64)
    sign = np.uint64(1) << np.uint64(8 * w - 1)
    mag = (u & ~sign).astype(np.int64)
    return np.where((u & sign) != 0, -mag, mag)


def ulp_distance(a, b):
    """Elementwise ULP distance between two float arrays of the same dtype.

    Parameters
    ----------
    a, b : array_like of one binary floating-point dtype
        float16, float32, float64 or an ml_dtypes format (bfloat16, float8
        ...), broadcastable to each other.  No value is converted: the
        distance is taken in the arrays' own dtype.

    Returns
    -------
    ndarray of uint64
        ``|key(a) - key(b)|`` with the keys of the module docstring:
        0 for bit-identical values and for ``+0.0`` against ``-0.0``; 1
        between neighbours (``max`` and ``inf`` are neighbours, as are
        ``-min_subnormal`` and ``+min_subnormal`` through the zeros, at
        distance 2).  NaN against NaN (any payloads) gives 0, NaN against a
        number gives :data:`NAN_DISTANCE` (``2**64 - 1``): the distance is
        undefined, and the largest value keeps ``max()`` reductions honest.
        The subtraction is done modulo 2**64 on the larger key minus the
        smaller, so it is exact for every pair (up to ``2**64 - 2``).

    Raises
    ------
    DTypeError
        ``a`` and ``b`` have different dtypes or a non-float dtype.
    """
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype != b.dtype:
        raise DTypeError(f"ulp_distance needs one dtype, got {a.dtype} and {b.dtype}")
    if not _is_float(a.dtype):
        raise DTypeError(f"ulp_distance needs a binary floating-point dtype, got {a.dtype}")
    a, b = np.broadcast_arrays(a, b)
    ka, kb = _keys(a), _keys(b)
    hi, lo = np.maximum(ka, kb).view(np.uint64), np.minimum(ka, kb).view(np.uint64)
    d = hi - lo                                  # modulo 2**64: exact for hi >= lo
    na, nb = _isnan(a), _isnan(b)
    d = np.where(na & nb, np.uint64(0), d)
    return np.where(na ^ nb, np.uint64(NAN_DISTANCE), d).astype(np.uint64)


def _bits(a):
    return np.ascontiguousarray(a).view(_UINT[a.dtype.itemsize])


def _val(v):
    """Shortest round-trip text of one element (``3.0000002``, ``nan``, ``-0.0``)."""
    return str(v)


def _fmt_bits(v, width):
    return f"0x{int(v):0{2 * width}x}"


def assert_bitexact(actual, desired, *, max_report=10, err_msg=""):
    """Assert that two arrays are the same bits, and say precisely how they differ.

    Checks, in this order, each failing with its own message:

    1. shape (no broadcasting) and dtype (no casting);
    2. for floats: NaN positions (count, first indices);
    3. NaN payloads: the bit patterns of NaNs at the same positions;
    4. signed zeros: ``+0.0`` against ``-0.0`` at the same position;
    5. every other bit (integers, booleans and floats alike).

    Parameters
    ----------
    actual : array_like
        The implementation under test (e.g. another framework's output).
    desired : array_like
        refcomp's result.
    max_report : int, keyword-only
        How many mismatching elements to list (default 10).
    err_msg : str, keyword-only
        Text put at the start of the failure message.

    Raises
    ------
    AssertionError
        With the count of differing elements and, for the first
        ``max_report`` of them in C order, the multi-index, both values
        (``repr`` and bit pattern) and, for floats, the ULP distance of
        :func:`ulp_distance`.  A shape or dtype difference is an assertion
        failure too (a conformance failure, not a usage error).
    """
    a, d = np.asarray(actual), np.asarray(desired)
    head = f"{err_msg}: " if err_msg else ""
    if a.shape != d.shape:
        raise AssertionError(f"{head}shape differs: actual {a.shape}, desired {d.shape}")
    if a.dtype != d.dtype:
        raise AssertionError(f"{head}dtype differs: actual {a.dtype}, desired {d.dtype}")
    isf = _is_float(a.dtype)
    if a.dtype.itemsize not in _UINT and not isf:
        same = np.asarray(a == d)
        bad = ~same
        if bad.any():
            _fail(head, "value", a, d, bad, max_report, False)
        return
    if isf:
        na, nd = _isnan(a), _isnan(d)
        if (na != nd).any():
            _fail(head, "NaN position", a, d, na != nd, max_report, True)
        both = na & nd
        if both.any() and (_bits(a)[both] != _bits(d)[both]).any():
            bad = both & (_bits(a) != _bits(d))
            _fail(head, "NaN payload", a, d, bad, max_report, True)
        zero = (a == 0) & (d == 0) & ~na
        if zero.any() and (_bits(a)[zero] != _bits(d)[zero]).any():
            _fail(head, "signed zero", a, d, zero & (_bits(a) != _bits(d)), max_report, True)
    bad = _bits(a) != _bits(d)
    if bad.any():
        _fail(head, "bit", a, d, bad, max_report, isf)


def _fail(head, what, a, d, bad, max_report, isf):
    idx = np.flatnonzero(bad.reshape(-1))
    n = idx.size
    lines = [f"{head}{n} of {a.size} elements differ ({what} mismatch)"]
    af, df = a.reshape(-1), d.reshape(-1)
    dist = ulp_distance(af[idx[:max_report]], df[idx[:max_report]]) if isf else None
    w = a.dtype.itemsize
    for j, i in enumerate(idx[:max_report]):
        where = np.unravel_index(int(i), a.shape) if a.ndim else ()
        item = f"  at {tuple(int(k) for k in where)}: actual {_val(af[i])}"
        if w in _UINT:
            item += f" ({_fmt_bits(_bits(af[i:i + 1])[0], w)})"
        item += f", desired {_val(df[i])}"
        if w in _UINT:
            item += f" ({_fmt_bits(_bits(df[i:i + 1])[0], w)})"
        if dist is not None:
            dj = int(dist[j])
            item += ", ulp distance " + ("undefined (NaN)" if dj == NAN_DISTANCE else str(dj))
        lines.append(item)
    if n > max_report:
        lines.append(f"  ... and {n - max_report} more")
    raise AssertionError("\n".join(lines))
