"""Bin-level access to the NNC arithmetic coding engine (for tests and study).

:func:`encode_bins` codes a sequence of context-coded and bypass bins and
terminates the stream as NNCodec's ``finish()`` does; :func:`decode_bins`
reads it back given the same sequence of bin kinds, models and widths.  The
engine itself is described in :mod:`refcomp.coding.cabac`.
"""
import numpy as np

from ..._errors import DecodeError, ParameterError
from . import _kernels as _k
from . import _twins as _t

__all__ = ["encode_bins", "decode_bins"]


def _check(kinds, ctxs, nbits, ctx_eco):
    arrs = []
    for name, a in (("kinds", kinds), ("ctxs", ctxs), ("nbits", nbits), ("ctx_eco", ctx_eco)):
        if not isinstance(a, np.ndarray) or a.dtype != np.int64 or a.ndim != 1:
            raise ParameterError("%s must be a 1-D int64 ndarray, got %s" % (
                name, getattr(a, "dtype", type(a).__name__)))
        arrs.append(a)
    if not (kinds.size == ctxs.size == nbits.size):
        raise ParameterError("kinds, ctxs and nbits must have the same length")
    if kinds.size and (kinds.min() < 0 or kinds.max() > 1):
        raise ParameterError("kinds must be 0 (context bin) or 1 (bypass bins)")
    if ctx_eco.size == 0 or ctx_eco.min() < 0 or ctx_eco.max() > 8:
        raise ParameterError("ctx_eco must hold 1+ initialisation indices in 0..8")
    ctx_bins = ctxs[kinds == 0]
    if ctx_bins.size and (ctx_bins.min() < 0 or ctx_bins.max() >= ctx_eco.size):
        raise ParameterError("ctxs of context bins must index ctx_eco")
    ep = nbits[kinds == 1]
    if ep.size and (ep.min() < 0 or ep.max() > 32):
        raise ParameterError("bypass widths (nbits) must be in 0..32")


def encode_bins(kinds, ctxs, vals, nbits, ctx_eco, *, twin=False):
    """Payload (bytes) of a bin sequence.

    ``kinds[i]`` 0: one context-coded bin ``vals[i]`` (0/1) with model
    ``ctxs[i]``; 1: ``nbits[i]`` bypass bins holding ``vals[i]`` (MSB first,
    ``0 <= vals[i] < 2**nbits[i]``).  Model ``c`` starts from initialisation
    ``ctx_eco[c]`` (0..8).  All arrays int64, 1-D.

    Parameters
    ----------
    kinds : ndarray of int64, 1-D
        0 (one context-coded bin) or 1 (a group of bypass bins) per entry.
    ctxs : ndarray of int64, 1-D, length of ``kinds``
        Context model of each context-coded bin, an index into ``ctx_eco``
        (ignored for bypass entries).
    vals : ndarray of int64, shape of ``kinds``
        The bin (0/1) of a context entry; the value of a bypass group,
        ``0 <= vals[i] < 2**nbits[i]``, its bits coded most significant first.
    nbits : ndarray of int64, 1-D, length of ``kinds``
        Width 0..32 of each bypass group (ignored for context entries).
    ctx_eco : ndarray of int64, 1-D, non-empty
        Initialisation index 0..8 of every context model (NNC's nine
        shift / state sets, :mod:`refcomp.coding.cabac`).
    twin : bool
        Run the plain-Python twin instead of the Numba kernel (same bytes).

    Returns
    -------
    bytes
        The arithmetic-coded stream (integer arithmetic only: 9-bit range,
        32-bit low register with carry propagation), terminated with a
        terminating bin 1 and a final 1 bit, zero-padded to a byte, as
        NNCodec's ``finish()``.  Wrong dtypes, shapes or out-of-range
        entries: :class:`ParameterError`.
    """
    _check(kinds, ctxs, nbits, ctx_eco)
    if not isinstance(vals, np.ndarray) or vals.dtype != np.int64 or vals.shape != kinds.shape:
        raise ParameterError("vals must be an int64 ndarray shaped like kinds")
    ok_ctx = (kinds != 0) | ((vals == 0) | (vals == 1))
    ok_ep = (kinds != 1) | ((vals >= 0) & (vals < (np.int64(1) << np.minimum(nbits, 62))))
    if not (ok_ctx.all() and ok_ep.all()):
        raise ParameterError("a bin value does not fit its kind (0/1, or < 2**nbits)")
    if twin:
        return _t.encode_bins_twin(kinds, ctxs, vals, nbits, ctx_eco)
    cap = 64 + 8 * kinds.size + int(nbits.sum()) // 8
    out = np.empty(cap, dtype=np.uint8)
    status, n = _k.encode_bins(kinds, ctxs, vals, nbits, ctx_eco, out)
    if status != _k.OK:
        raise ParameterError("output buffer too small (internal bound)")
    return out[:n].tobytes()


def decode_bins(payload, kinds, ctxs, nbits, ctx_eco, *, twin=False):
    """Bin values (int64) of :func:`encode_bins`' payload; DecodeError when the
    stream is truncated, has trailing bytes or lacks the terminating bin.

    Parameters
    ----------
    payload : bytes-like
        The stream (read-only; copied once).  Fewer than 2 bytes:
        :class:`DecodeError`.
    kinds, ctxs, nbits, ctx_eco : ndarray of int64, 1-D
        The sequence of bin kinds, context models, bypass widths and model
        initialisations the stream was encoded with (as :func:`encode_bins`;
        the stream does not record them).
    twin : bool
        Run the plain-Python twin instead of the Numba kernel (same values,
        same errors).

    Returns
    -------
    ndarray of int64, length of ``kinds``
        Per entry, the decoded bin (0/1) of a context entry or the value of a
        bypass group (MSB first, ``< 2**nbits[i]``).  A stream whose decoder
        needs bytes past the end or leaves bytes unread (the length check is
        exact), or lacks the terminating bin: :class:`DecodeError`.
    """
    _check(kinds, ctxs, nbits, ctx_eco)
    data = np.frombuffer(bytes(payload), dtype=np.uint8)
    if data.size < 2:
        raise DecodeError("payload of %d bytes is truncated" % data.size)
    if twin:
        status, used, vals = _t.decode_bins_twin(data, kinds, ctxs, nbits, ctx_eco)
    else:
        vals = np.zeros(kinds.size, dtype=np.int64)
        status, used = _k.decode_bins(data, kinds, ctxs, nbits, ctx_eco, vals)
    if status != _k.OK:
        raise DecodeError("corrupt payload: no terminating bin")
    if used != data.size:
        raise DecodeError("payload length %d, but the stream uses %d bytes" % (data.size, used))
    return vals
