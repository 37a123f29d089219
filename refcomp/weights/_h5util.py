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
