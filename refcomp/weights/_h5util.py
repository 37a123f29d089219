"""Dataset writing shared by every refcomp HDF5 writer."""

import numpy as np


def write_dataset(group, name, data):
    """Create dataset ``name`` holding ``data`` with its exact dtype.

    Non-empty arrays get HDF5's Fletcher-32 checksum filter (which needs a
    chunked layout), so a corrupted byte in the stored values is detected on
    read (h5py raises OSError, reported as FormatError) instead of decoding
    to silent garbage.  Scalars and empty arrays are stored contiguously.
    """
    data = np.asarray(data)
    if data.ndim == 0 or data.size == 0:
        return group.create_dataset(name, data=data)
    return group.create_dataset(name, data=data, fletcher32=True, chunks=data.shape)


def shape_attr(value):
    """An HDF5 ``shape`` attribute as a tuple of Python ints."""
    return tuple(int(s) for s in value)


def parse_attrs(group, encoding, parsers, *, optional=()):
    """``{name: parse(group.attrs[name])}`` for ``parsers = {name: parse}``, in order.

    Raises
    ------
    FormatError
        ``"<group path>: bad <encoding> attribute '<name>' (<why>)"`` for the first
        attribute that is missing (unless in ``optional``: then None) or that its
        parser rejects (TypeError, ValueError, OverflowError), so that the message
        names the attribute at fault.
    """
    from .._errors import FormatError
    a, out = group.attrs, {}
    for key, parse in parsers.items():
        if key not in a:
            if key in optional:
                out[key] = None
                continue
            raise FormatError(f"{group.name}: bad {encoding} attributes (missing attribute "
                              f"{key!r})")
        try:
            out[key] = parse(a[key])
        except (TypeError, ValueError, OverflowError) as exc:
            why = " ".join(str(exc).split()) or type(exc).__name__
            raise FormatError(f"{group.name}: bad {encoding} attribute {key!r} ({why})") \
                from None
    return out
