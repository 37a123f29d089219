"""DeepCABAC coding of one tensor of integer levels, bit-exact with NNCodec 2.1.3.

:func:`encode_levels` and :func:`decode_levels` write and read the CABAC
payload of one tensor exactly as NNCodec's ``deepCABAC.Encoder.encodeLayer``
/ ``Decoder.decodeLayer`` do (``initCtxModels(cabac_unary_length_minus1 + 1,
param_opt)``, no codebook, no row skipping, no history-dependent significance
probability, no temporal context): same bytes, same levels.  The binarization
and the engine are described in :mod:`refcomp.coding.cabac`.
"""
import numpy as np

from ..._errors import DecodeError, ParameterError, ShapeError
from ..._validate import check_choice, check_int
from . import _kernels as _k
from . import _twins as _t

__all__ = ["encode_levels", "decode_levels", "scan_positions", "max_levels_for", "MAX_ABS_LEVEL",
           "MAX_LEVELS", "DQ_STATES", "check_dq_states"]

#: Largest |level| accepted (NNCodec's quantizer limit, ``2**31 - 3``).
MAX_ABS_LEVEL = (1 << 31) - 3
#: Largest number of levels one call codes (NNCodec counts in uint32).
MAX_LEVELS = (1 << 31) - 1
_BLOCK = {1: 8, 2: 16, 3: 32, 4: 64}
#: Dependent-quantization state machines: 8 (NNC / NNCodec, the default) or 4
#: (VVC's, a refcomp variant NNCodec does not read).  See docs/nnc.md.
DQ_STATES = (8, 4)


def check_dq_states(dq_states):
    """``dq_states`` (int 8 or 4) or ParameterError; returns it as an int."""
    return check_choice("dq_states", check_int("dq_states", dq_states), DQ_STATES)


def _geometry(shape):
    n = 1
    for s in shape:
        n *= int(s)
    width = n // int(shape[0]) if len(shape) >= 1 and int(shape[0]) > 0 else 1
    if len(shape) <= 1:
        width = 1
    return n, width


def scan_positions(shape, scan_order):
    """Scan of a tensor as NNCodec orders it.

    Returns ``(order, reset_after)``: ``order`` (int64) lists flat C-order
    positions in coding order; ``reset_after[i]`` (uint8) is 1 where the
    coder resets its contexts after scan index ``i`` (the end of a block row,
    except the last).  The tensor is seen as a matrix of ``shape[0]`` rows of
    ``prod(shape[1:])`` columns; ``scan_order`` 0 is row-major, 1..4 are
    blocks of 8, 16, 32, 64 square (blocks row-major, row-major inside a
    block, partial blocks at the right and bottom borders).  Tensors of one
    row or one column always use ``scan_order`` 0 (as NNCodec does).
    """
    n, width = _geometry(shape)
    if width == 1 or n == width:
        scan_order = 0
    if scan_order == 0:
        return np.arange(n, dtype=np.int64), np.zeros(n, dtype=np.uint8)
    b = _BLOCK[scan_order]
    height = n // width
    pos = np.arange(n, dtype=np.int64).reshape(height, width)
    parts, resets = [], []
    for r0 in range(0, height, b):
        for c0 in range(0, width, b):
            parts.append(pos[r0:r0 + b, c0:c0 + b].ravel())
        resets.append(sum(p.size for p in parts) - 1)
    order = np.concatenate(parts)
    reset = np.zeros(n, dtype=np.uint8)
    reset[np.array(resets[:-1], dtype=np.int64)] = 1
    return order, reset


def _options(shape, scan_order, cabac_unary_length_minus1, general_profile_idc):
    check_int("scan_order", scan_order, lo=0, hi=4)
    check_int("cabac_unary_length_minus1", cabac_unary_length_minus1, lo=0, hi=31)
    check_int("general_profile_idc", general_profile_idc, lo=0, hi=1)
    n, width = _geometry(shape)
    order, reset = scan_positions(shape, scan_order)
    row_skip_bin = bool(general_profile_idc == 1 and width > 1 and n > width)
    eff_scan = 0 if (width == 1 or n == width) else scan_order
    ep_start = bool(eff_scan != 0 and int(reset.sum()) > 0)
    return order, reset, row_skip_bin, ep_start, cabac_unary_length_minus1 + 1


def max_levels_for(nbytes):
    """Most levels a payload of ``nbytes`` bytes can carry.

    Every level costs at least one context-coded bin.  After a
    renormalisation the range is in [256, 510]; a most-probable-symbol bin
    subtracts ``rLPS >= 2`` from it, and a least-probable one renormalises at
    once, so 128 context bins consume at least one bit.  The decoder stops
    reading 4 bytes past the end, so it consumes at most ``8 * (nbytes + 4)``
    bits beyond its 16-bit start: at most ``128 * (8 * nbytes + 48)`` bins.

    Parameters
    ----------
    nbytes : int
        Payload length in bytes (``int()`` is applied; not validated: the
        callers pass a buffer's length, >= 0).

    Returns
    -------
    int
        ``128 * (8 * nbytes + 48)``, exact (Python integer arithmetic, no
        overflow): an upper bound, not the capacity of a real stream.
        :func:`decode_levels` refuses a shape declaring more levels before it
        allocates anything.
    """
    return 128 * (8 * int(nbytes) + 48)


def encode_levels(levels, *, dq=True, scan_order=0, cabac_unary_length_minus1=10,
                  param_opt=True, general_profile_idc=1, dq_states=8, twin=False):
    """CABAC payload of one tensor of integer levels (NNCodec ``encodeLayer``).

    Parameters
    ----------
    levels : ndarray of int32, ndim >= 1
        Reconstruction indices (weight = level * step).  With ``dq`` each
        non-zero level must belong to the quantizer its dependent-quantization
        state selects (even levels in states 0, 2, 4, 6 (quantizer Q0), odd
        levels in states 1, 3, 5, 7 (Q1)), as :func:`refcomp.quantize.nnc.
        nnc_quantize` produces them; otherwise :class:`ParameterError`
        names the first offending position (NNCodec would silently code a
        different level).  ``|level| <= 2**31 - 3``.
    dq : bool
        Dependent quantization (NNC ``dq_flag``): the state machine
        (``dq_states``) drives context selection and halves the coded values.
    scan_order : int, 0..4
        0 row-major; 1..4 block scans (see :func:`scan_positions`).
    cabac_unary_length_minus1 : int, 0..31
        Number of greater-than flags minus one (NNCodec default 10: 11 flags).
    param_opt : bool
        Choose each context's initialisation from the 9 candidate sets by the
        estimated rate of this tensor (NNCodec ``param_opt_flag``, default
        on); the choice is always signalled (one context bin each, plus 3
        bypass bins when not the default).
    general_profile_idc : 0 or 1
        1 (NNCodec's default) writes the row-skip flag (always 0 here) in
        front of a tensor of more than one row and column.
    dq_states : 8 or 4
        The dependent-quantization state machine (ignored without ``dq``): 8,
        NNC's (:data:`refcomp.coding.cabac.TRANS`, the default, bit-exact with
        NNCodec); 4, VVC's (:data:`refcomp.coding.cabac.TRANS4`, 12
        significance contexts instead of 24; NNCodec has no such mode).  Other
        values: :class:`ParameterError`.
    twin : bool
        Run the plain-Python twin instead of the Numba kernel (same bytes).

    Returns
    -------
    bytes
        The payload, terminated and byte-aligned as NNCodec's ``finish()``.
    """
    if not isinstance(levels, np.ndarray) or levels.dtype != np.int32:
        raise ParameterError("levels must be an int32 ndarray, got %s" % (
            getattr(levels, "dtype", type(levels).__name__),))
    if levels.ndim < 1 or levels.size == 0:
        raise ShapeError("levels must be non-empty with ndim >= 1, got shape %s" % (levels.shape,))
    if levels.size > MAX_LEVELS:
        raise ParameterError("levels has %d elements, above %d" % (levels.size, MAX_LEVELS))
    if levels.size and int(np.abs(levels.astype(np.int64)).max()) > MAX_ABS_LEVEL:
        raise ParameterError("levels must satisfy |level| <= %d" % MAX_ABS_LEVEL)
    order, reset, rsb, eps, num_gtx = _options(levels.shape, scan_order,
                                               cabac_unary_length_minus1, general_profile_idc)
    trans = _k.DQ_TRANS[check_dq_states(dq_states)]
    flat = np.ascontiguousarray(levels).ravel()
    if twin:
        status, data, idx = _t.encode_layer_twin(flat, order, reset, bool(dq), trans.tolist(),
                                                 rsb, eps, num_gtx, bool(param_opt))
    else:
        cap = 256 + 2 * flat.size
        while True:
            out = np.empty(cap, dtype=np.uint8)
            status, nbytes, idx = _k.encode_layer(flat, order, reset, bool(dq), trans, rsb,
                                                  eps, num_gtx, bool(param_opt), out)
            if status != _k.FULL:
                break
            cap *= 4
        data = out[:nbytes].tobytes()
    if status == _k.PARITY:
        pos = np.unravel_index(int(order[idx]), levels.shape)
        raise ParameterError("levels%s = %d does not belong to the quantizer its dependent-"
                             "quantization state selects (dq=True)"
                             % (tuple(int(p) for p in pos), int(levels[pos])))
    return data


def decode_levels(payload, shape, *, dq=True, scan_order=0, cabac_unary_length_minus1=10,
                  general_profile_idc=1, dq_states=8, twin=False):
    """Levels (int32, ``shape``) of a payload written by :func:`encode_levels`
    or by NNCodec's ``encodeLayer`` with the same options.

    The payload must be exactly one terminated tensor stream: a stream that
    needs bytes past its end (truncated), leaves bytes unread, lacks the
    terminating bin, sets the row-skip flag (not supported), or decodes a
    level above ``2**31 - 1`` raises :class:`DecodeError`.  Work is bounded
    by ``prod(shape)`` levels of at most ``cabac_unary_length_minus1 + 66``
    bins each; memory by the int32 output, and a shape declaring more levels
    than the payload can hold (:func:`max_levels_for`) is refused before
    anything is allocated.

    Parameters
    ----------
    payload : bytes, bytearray or memoryview
        The CABAC payload (read-only; copied once into a uint8 array).  Fewer
        than 2 bytes: :class:`DecodeError`.
    shape : sequence of int
        Shape of the tensor, non-empty, every size > 0 (:class:`ShapeError`
        otherwise), at most :data:`MAX_LEVELS` elements
        (:class:`ParameterError`).  It fixes the scan, as in
        :func:`encode_levels`.
    dq, scan_order, cabac_unary_length_minus1, general_profile_idc, dq_states
        The options the payload was encoded with (see :func:`encode_levels`;
        nothing in the payload records them, so other values decode other,
        or no, levels).
    twin : bool
        Run the plain-Python twin instead of the Numba kernel (same levels,
        same errors).

    Returns
    -------
    ndarray of int32, shape ``shape``
        The levels in C order (reconstruction indices: weight = level *
        step).  With ``dq`` they are the dependent-quantization levels, the
        coded values mapped back through the state machine
        ``2 k - sgn(k) (state & 1)`` in integer arithmetic.
    """
    if not isinstance(payload, (bytes, bytearray, memoryview)):
        raise ParameterError("payload must be bytes, got %s" % type(payload).__name__)
    shape = tuple(int(s) for s in shape)
    if len(shape) < 1 or any(s <= 0 for s in shape):
        raise ShapeError("shape must be non-empty with positive sizes, got %s" % (shape,))
    n, _ = _geometry(shape)
    if n > MAX_LEVELS:
        raise ParameterError("shape %s has %d elements, above %d" % (shape, n, MAX_LEVELS))
    data = np.frombuffer(bytes(payload), dtype=np.uint8)
    if data.size < 2:
        raise DecodeError("CABAC payload of %d bytes is truncated (at least 2 needed)" % data.size)
    if n > max_levels_for(data.size):
        raise DecodeError("shape %s declares %d levels: a %d-byte CABAC payload holds at most "
                          "%d" % (shape, n, data.size, max_levels_for(data.size)))
    order, reset, rsb, eps, num_gtx = _options(shape, scan_order, cabac_unary_length_minus1,
                                               general_profile_idc)
    trans = _k.DQ_TRANS[check_dq_states(dq_states)]
    if twin:
        status, used, out = _t.decode_layer_twin(data, order, reset, bool(dq), trans.tolist(),
                                                 rsb, eps, num_gtx, n)
    else:
        out = np.zeros(n, dtype=np.int32)
        status, used = _k.decode_layer(data, order, reset, bool(dq), trans, rsb, eps, num_gtx,
                                       out)
    if status != _k.OK:
        raise DecodeError("corrupt CABAC payload for shape %s (invalid level, unsupported row "
                          "skipping or no terminating bin)" % (shape,))
    if used > data.size:
        raise DecodeError("CABAC payload truncated for shape %s: %d bytes needed, %d given"
                          % (shape, used, data.size))
    if used < data.size:
        raise DecodeError("CABAC payload has %d trailing bytes" % (data.size - used))
    return out.reshape(shape)
