"""NNC-coded weight: a tensor stored as its DeepCABAC payload (a compressed weight type).

:func:`nnc_quantize` quantizes a float32 tensor with NNC's quantizer
(:mod:`refcomp.quantize.nnc`) and codes the levels with DeepCABAC
(:mod:`refcomp.coding.cabac`); the result, :class:`NNCCoded`, keeps the
payload bytes (what NNCodec's ``encodeLayer`` writes for the tensor, byte for
byte) and the few parameters needed to decode it.  Registered under the HDF5
encoding ``"nnc"``: the payload is the only dataset.
"""
import math

import numpy as np

from .._errors import FormatError, ParameterError
from .._validate import check_int
from ..coding.cabac import check_dq_states, decode_levels, encode_levels
from ..weights import CompressedWeight, register_encoding
from ..weights._h5util import parse_attrs, shape_attr, write_dataset
from .nnc import QP_DENSITY_MAX, QP_RANGE, nnc_levels, nnc_step_size

__all__ = ["NNCCoded", "nnc_quantize", "ENCODING", "QP_BITS"]

ENCODING = "nnc"
#: Bits charged for the stored qp (NNC codes it per tensor; int32 here).
QP_BITS = 32


class NNCCoded(CompressedWeight):
    """A float32 weight stored as an NNC/DeepCABAC payload.

    Parameters
    ----------
    payload : bytes
        The CABAC payload of the levels (:func:`refcomp.coding.cabac.
        encode_levels`).  Decoded (and so validated) at construction:
        :class:`DecodeError` for a corrupt payload.
    shape : tuple of int
    qp, qp_density : int
        Step size :func:`refcomp.quantize.nnc.nnc_step_size`.
    dq : bool
        The levels use dependent quantization.
    scan_order, cabac_unary_length_minus1 : int
        Coder options (see :func:`encode_levels`).
    dq_states : 8 or 4
        Dependent-quantization state machine (8: NNC's, default; 4: VVC's);
        stored in HDF5 as the attribute ``dq_states`` only when it is 4, so
        8-state files are unchanged and a file without it reads as 8.

    ``dequantize()`` returns ``float32(step * float32(level))`` (one float32
    product, round half even), as NNCodec's ``dequantLayer``.
    """

    __slots__ = ("payload", "shape", "qp", "qp_density", "dq", "scan_order",
                 "cabac_unary_length_minus1", "dq_states", "levels")
    encoding = ENCODING

    def __init__(self, payload, shape, *, qp, qp_density=2, dq=True, scan_order=0,
                 cabac_unary_length_minus1=10, dq_states=8, _levels=None):
        if not isinstance(payload, (bytes, bytearray)):
            raise ParameterError("payload must be bytes, got %s" % type(payload).__name__)
        self.shape = tuple(check_int("shape", s, lo=1) for s in shape)
        self.qp = check_int("qp", qp, lo=-QP_RANGE, hi=QP_RANGE)
        self.qp_density = check_int("qp_density", qp_density, lo=0, hi=QP_DENSITY_MAX)
        nnc_step_size(self.qp, self.qp_density)
        self.dq = bool(dq)
        self.scan_order = check_int("scan_order", scan_order, lo=0, hi=4)
        self.cabac_unary_length_minus1 = check_int(
            "cabac_unary_length_minus1", cabac_unary_length_minus1, lo=0, hi=31)
        self.dq_states = check_dq_states(dq_states)
        self.payload = bytes(payload)
        if _levels is None:
            _levels = decode_levels(self.payload, self.shape, dq=self.dq,
                                    scan_order=self.scan_order,
                                    cabac_unary_length_minus1=self.cabac_unary_length_minus1,
                                    dq_states=self.dq_states)
        _levels.flags.writeable = False
        self.levels = _levels

    @property
    def dtype(self):
        return np.dtype(np.float32)

    @property
    def step(self):
        """The step size (float32)."""
        return nnc_step_size(self.qp, self.qp_density)

    def dequantize(self):
        """``float32(step * float32(level))`` (new array, ``shape``)."""
        return (self.step * self.levels.astype(np.float32)).astype(np.float32)

    def stored_bits(self):
        """8 bits per payload byte plus :data:`QP_BITS` for the qp (the shape and
        coder options are the header, not counted)."""
        return 8 * len(self.payload) + QP_BITS

    def __eq__(self, other):
        if not isinstance(other, NNCCoded):
            return NotImplemented
        return all(getattr(self, k) == getattr(other, k) for k in
                   ("payload", "shape", "qp", "qp_density", "dq", "scan_order",
                    "cabac_unary_length_minus1", "dq_states"))

    __hash__ = None

    def __repr__(self):
        return ("NNCCoded(shape=%s, qp=%d, qp_density=%d, dq=%s, %d payload bytes)"
                % (self.shape, self.qp, self.qp_density, self.dq, len(self.payload)))

    def to_hdf5(self, group):
        """Attributes ``encoding`` ("nnc"), ``shape``, ``qp``, ``qp_density``, ``dq``,
        ``scan_order``, ``cabac_unary_length_minus1`` (and ``dq_states`` when it
        is not 8); dataset ``payload`` (uint8, the CABAC bytes)."""
        a = group.attrs
        a["encoding"] = ENCODING
        a["shape"] = np.asarray(self.shape, dtype=np.int64)
        for k in ("qp", "qp_density", "scan_order", "cabac_unary_length_minus1"):
            a[k] = np.int64(getattr(self, k))
        a["dq"] = np.int8(self.dq)
        if self.dq_states != 8:
            a["dq_states"] = np.int64(self.dq_states)
        write_dataset(group, "payload", np.frombuffer(self.payload, dtype=np.uint8))

    @classmethod
    def from_hdf5(cls, group, *, max_elements=1 << 31):
        """Read what :meth:`to_hdf5` wrote; FormatError for missing or inconsistent
        fields or a shape above ``max_elements`` (checked before decoding);
        DecodeError for a corrupt payload."""
        name = group.name
        opts = parse_attrs(group, "nnc", {
            "shape": shape_attr, "qp": int, "qp_density": int, "scan_order": int,
            "cabac_unary_length_minus1": int, "dq": int, "dq_states": int},
            optional=("dq_states",))
        shape, dq = opts.pop("shape"), opts.pop("dq")
        if opts["dq_states"] is None:                   # written only when it is 4
            opts["dq_states"] = 8
        if not shape or any(s < 1 for s in shape) or math.prod(shape) > max_elements \
                or dq not in (0, 1):
            raise FormatError("%s: invalid nnc weight (shape %s, limit %d elements, dq %d)"
                              % (name, shape, max_elements, dq))
        ds = group.get("payload")
        if ds is None or not hasattr(ds, "dtype") or ds.ndim != 1 or ds.dtype != np.uint8:
            raise FormatError("%s: 'payload' must be a 1-D uint8 dataset" % name)
        try:
            return cls(ds[()].tobytes(), shape, dq=bool(dq), **opts)
        except ParameterError as exc:
            raise FormatError("%s: %s" % (name, exc)) from None


def nnc_quantize(w, *, qp, qp_density=2, dq=True, scan_order=0, cabac_unary_length_minus1=10,
                 param_opt=True, lambda_scale=0.0, dq_states=8):
    """Quantize ``w`` (float32) with NNC's quantizer and code it: :class:`NNCCoded`.

    Levels: :func:`refcomp.quantize.nnc.nnc_levels` (``lambda_scale``
    default 0, NNCodec's);
    payload: :func:`refcomp.coding.cabac.encode_levels`.  Both equal NNCodec
    2.1.3's ``quantLayer`` + ``encodeLayer`` for the same options
    (``dq_states=8``, the default; ``dq_states=4`` selects VVC's 4-state
    machine for both, a variant NNCodec does not have).
    """
    levels = nnc_levels(w, qp=qp, qp_density=qp_density, dq=dq, scan_order=scan_order,
                        lambda_scale=lambda_scale,
                        cabac_unary_length_minus1=cabac_unary_length_minus1,
                        dq_states=dq_states)
    payload = encode_levels(levels, dq=dq, scan_order=scan_order,
                            cabac_unary_length_minus1=cabac_unary_length_minus1,
                            param_opt=param_opt, dq_states=dq_states)
    return NNCCoded(payload, w.shape, qp=qp, qp_density=qp_density, dq=dq,
                    scan_order=scan_order, cabac_unary_length_minus1=cabac_unary_length_minus1,
                    dq_states=dq_states, _levels=levels)


register_encoding(ENCODING, NNCCoded)
