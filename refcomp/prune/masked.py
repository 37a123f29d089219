"""The masked weight representation: values plus a boolean keep-mask.

A :class:`Masked` weight stands in a :class:`refcomp.Layer` wherever an
ndarray may (it has ``dequantize()``), is saved by :func:`refcomp.save` under
the HDF5 encoding ``"masked"`` and loads back bit for bit.  Sparse storage
formats and Deep Compression reuse it as their pruning stage.
"""

import numpy as np

from .._bitpack import pack_codes, unpack_codes
from .._errors import DecodeError, DTypeError, FormatError, ShapeError
from .._validate import as_float_array, describe
from ..weights import CompressedWeight, materialize, register_encoding
from ..weights._h5util import parse_attrs, shape_attr, write_dataset

__all__ = ["Masked", "apply_masks", "prunable_weights"]


class Masked(CompressedWeight):
    """A pruned weight: ``values`` where ``mask`` is True, exactly +0.0 elsewhere.

    Parameters
    ----------
    values : ndarray, float32 or float64, any shape
        The weight.  Entries where ``mask`` is False are replaced by +0.0 on
        construction (they are not stored, so keeping them would make a
        save/load round trip change the object).
    mask : ndarray of bool, same shape as ``values``
        True = kept.

    Notes
    -----
    ``dequantize()`` returns a new array of ``values.dtype``: kept entries
    bit-identical to the input (including -0.0, NaN payloads, Inf), pruned
    entries +0.0.  ``stored_bits()`` counts one bit per entry for the mask
    plus the full width of each kept value (headers excluded).
    """

    __slots__ = ("values", "mask")
    encoding = "masked"

    def __init__(self, values, mask):
        as_float_array("values", values)
        if not isinstance(mask, np.ndarray) or mask.dtype != np.bool_:
            raise DTypeError(f"mask must be a numpy.ndarray of dtype bool, got {describe(mask)}")
        if mask.shape != values.shape:
            raise ShapeError(f"mask must have the shape of values {values.shape}, got "
                             f"{describe(mask)}")
        self.values = np.where(mask, values, values.dtype.type(0.0))
        self.mask = mask.copy()

    @property
    def shape(self):
        return self.values.shape

    @property
    def dtype(self):
        return self.values.dtype

    @property
    def n_kept(self):
        """Number of kept entries."""
        return int(np.count_nonzero(self.mask))

    @property
    def density(self):
        """Kept fraction (float; 1.0 for an empty array)."""
        return self.n_kept / self.mask.size if self.mask.size else 1.0

    def dequantize(self):
        """Dense array: kept values bit-exact, pruned entries +0.0; dtype ``self.dtype``."""
        return self.values.copy()

    def __eq__(self, other):
        if not isinstance(other, Masked):
            return NotImplemented
        return (self.dtype == other.dtype and self.shape == other.shape
                and np.array_equal(self.mask, other.mask)
                and self.values.tobytes() == other.values.tobytes())

    __hash__ = None

    def __repr__(self):
        return (f"Masked(shape={self.shape}, dtype={self.dtype}, kept={self.n_kept}/"
                f"{self.mask.size})")

    # -- storage -------------------------------------------------------------------
    def stored_bits(self):
        """Mask bits (one per entry) plus the kept values at full width."""
        return self.mask.size + self.n_kept * self.dtype.itemsize * 8

    def to_hdf5(self, group):
        """Write into an empty h5py group: packed mask (1 bit/entry, C order, MSB
        first), kept values in C order, attributes encoding/dtype/shape."""
        group.attrs["encoding"] = "masked"
        group.attrs["dtype"] = self.dtype.str
        group.attrs["shape"] = np.asarray(self.shape, dtype=np.int64)
        write_dataset(group, "mask", pack_codes(self.mask.reshape(-1).astype(np.uint8), 1))
        write_dataset(group, "values", np.ascontiguousarray(self.values[self.mask]))

    @classmethod
    def from_hdf5(cls, group, *, max_elements=1 << 31):
        """Read what :meth:`to_hdf5` wrote; bit-exact.  Raises FormatError/DecodeError."""
        shape, dtype = parse_attrs(group, "masked", {"shape": shape_attr,
                                                     "dtype": np.dtype}).values()
        if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise FormatError(f"{group.name}: unsupported masked dtype {dtype}")
        if any(s < 0 for s in shape):
            raise DecodeError(f"{group.name}: invalid shape {shape}")
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        if count > max_elements:
            raise DecodeError(f"{group.name}: declares {count} entries, more than the limit "
                              f"{max_elements}")
        if "mask" not in group or "values" not in group:
            raise FormatError(f"{group.name}: missing 'mask' or 'values'")
        mask = unpack_codes(group["mask"][()], 1, count, name="'mask'").astype(np.bool_).reshape(shape)
        kept = group["values"]
        if kept.dtype != dtype or kept.shape != (int(np.count_nonzero(mask)),):
            raise DecodeError(f"{group.name}: 'values' holds {kept.shape} {kept.dtype}, the "
                              f"mask keeps {int(np.count_nonzero(mask))} of dtype {dtype}")
        values = np.zeros(shape, dtype=dtype)
        values[mask] = kept[()]
        return cls(values, mask)


def prunable_weights(model, *, kinds=("dense", "conv2d"), include_bias=False):
    """``{(path, "W"): ndarray}`` of the model's dense/conv weights (decoded), in
    ``named_layers()`` order: the input expected by
    :func:`refcomp.prune.global_magnitude` and :func:`apply_masks`."""
    out = {}
    for path, layer in model.named_layers():
        if layer.kind in kinds:
            out[(path, "W")] = materialize(layer.weights["W"])
            if include_bias and "b" in layer.weights:
                out[(path, "b")] = materialize(layer.weights["b"])
    return out


def apply_masks(model, masks, *, masked=True):
    """New model with the given keep-masks applied.

    Parameters
    ----------
    model : refcomp.Model
    masks : dict
        ``{(path, weight_name): bool ndarray}`` or ``{path: bool ndarray}``
        (weight "W"); each mask has the weight's shape.
    masked : bool, default True
        True: the weights become :class:`Masked` (saved under encoding
        "masked", ``stored_bits`` counts mask + kept values).  False: plain
        arrays with pruned entries +0.0.

    Returns
    -------
    Model (unmasked weights shared with ``model``).  A weight that is already
    Masked is masked again with the intersection of both masks.
    """
    from ..model import Model
    from .magnitude import check_mask
    from .._errors import ParameterError
    if not isinstance(model, Model):
        raise ParameterError(f"model must be a refcomp.Model, got {type(model).__name__}")
    if not isinstance(masks, dict):
        raise ParameterError(f"masks must be a dict, got {type(masks).__name__}")
    updates = {}
    for key, mask in masks.items():
        path, wname = key if isinstance(key, tuple) else (key, "W")
        layer = model.get_layer(path)
        if wname not in layer.weights:
            raise ParameterError(f"layer {path} ({layer.kind}) has no weight {wname!r}")
        w = layer.weights[wname]
        values = materialize(w)
        check_mask(f"masks[{key!r}]", mask, values.shape)
        if isinstance(w, Masked):
            mask = mask & w.mask
        m = Masked(values, mask)
        updates[(path, wname)] = m if masked else m.dequantize()
    return model.replace_weights(updates)


register_encoding("masked", Masked)
