"""refcomp HDF5 format, versions 1 and 2 (specification: ``docs/FORMAT.md``).

Two kinds of refcomp file share the layout rules: a whole model
(``format = "refcomp-model"``) and a single stored weight such as one
:class:`refcomp.quantize.Quantized` (``format = "refcomp-weight"``).
:func:`save` / :func:`load` handle both.

Version 1 holds raw datasets only; version 2 adds the compressed encodings
(quantized, masked, csr/csc, product/residual quantized, deep_compressed...).
A writer uses the lowest version that can hold the file's content, so a
model of plain arrays stays readable by version-1 readers.

Also plain-array files (:func:`read_arrays` / :func:`write_arrays`) for users
who export weights as HDF5 datasets rather than as a refcomp model.

The implementation is split by concern into private modules of
:mod:`refcomp.io`; this module re-exports their public names:

- ``_format``: format names, versions, size limits and shared helpers
  (the limits are read from ``refcomp.io._format`` at each check: change
  them there, not here);
- ``_h5check``: validation of untrusted files (links, datatypes, declared
  sizes, global heaps) and the checked open ``_read_checked``;
- ``_h5read``: reading the model format (:func:`load`, :func:`load_model`);
- ``_h5write``: writing (:func:`save`);
- ``_arrays``: plain-array files (:func:`read_arrays`, :func:`write_arrays`).
"""

from ..weights import register_encoding
from ._arrays import read_arrays, write_arrays
from ._format import (FORMAT_NAME, FORMAT_VERSION, FORMAT_VERSIONS, MAX_DEPTH, MAX_ELEMENTS,
                      MAX_EXPANSION, MAX_TOTAL_BYTES, WEIGHT_FORMAT_NAME)
from ._format import RAW_FORMAT_VERSION  # noqa: F401  (public, not in __all__ as before)
from ._h5read import load, load_model
from ._h5write import save

__all__ = ["save", "load", "load_model", "register_encoding", "read_arrays", "write_arrays",
           "FORMAT_NAME", "FORMAT_VERSION", "FORMAT_VERSIONS", "WEIGHT_FORMAT_NAME",
           "MAX_ELEMENTS", "MAX_EXPANSION", "MAX_TOTAL_BYTES", "MAX_DEPTH"]
