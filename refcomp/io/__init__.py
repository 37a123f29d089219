"""File input/output: the refcomp HDF5 model format and plain-array files."""

from .hdf5 import load, read_arrays, register_encoding, save, write_arrays

__all__ = ["load", "save", "register_encoding", "read_arrays", "write_arrays"]
