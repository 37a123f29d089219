"""Constants and shared helpers of the refcomp HDF5 format (``docs/FORMAT.md``).

Holds the format names and versions, the size limits a reader enforces
(:data:`MAX_ELEMENTS`, :data:`MAX_EXPANSION`, :data:`MAX_TOTAL_BYTES`,
:data:`MAX_DEPTH`), the tuple of exceptions treated as corrupt content
(``_CORRUPT``), the encoding look-up through :mod:`refcomp.weights`, the lazy
h5py import and the one-line message helpers.  Used by the checking
(:mod:`._h5check`), reading (:mod:`._h5read`) and writing (:mod:`._h5write`)
modules; the public names are re-exported by :mod:`refcomp.io.hdf5`.

The limits are read as attributes of this module at the time of each check
(``_format.MAX_TOTAL_BYTES``...), so this module is the one place they live;
change them with :func:`refcomp.io.limits.set_limits` or the ``REFCOMP_MAX_*``
environment variables (read once, at import: :data:`ENV_LIMITS`); assigning
the names re-exported by :mod:`refcomp.io.hdf5` has no effect.
"""

import os

from ..weights import encoding_reader, registered_encodings

FORMAT_NAME = "refcomp-model"
#: Newest format version: written for files holding any encoded (compressed) weight.
FORMAT_VERSION = 2
#: Version written for files holding raw datasets only.
RAW_FORMAT_VERSION = 1
#: Versions this reader accepts; any other ``format_version`` is a FormatError.
FORMAT_VERSIONS = (1, 2)
#: ``format`` attribute of a file holding one stored weight.
WEIGHT_FORMAT_NAME = "refcomp-weight"
#: Largest number of elements accepted in one dataset (refused before reading).
MAX_ELEMENTS = 1 << 31
#: A dataset with a compressing filter may declare at most this many bytes per
#: byte it occupies in the file; all datasets of a file together may declare
#: at most this many bytes per byte of the file.
MAX_EXPANSION = 1024
#: Budget of one file: its datasets together may declare at most this many
#: bytes, and its weights together may decode to at most this many bytes.
MAX_TOTAL_BYTES = 1 << 32
#: Deepest nesting of residual blocks, and of groups inside one weight entry.
MAX_DEPTH = 64
#: Ceiling of the working memory the command line lets one forward pass or input
#: batch need (bytes); None: the memory the system reports available.
MAX_RUN_BYTES = None

#: Environment variables read once at import (``refcomp.io.limits``): name -> limit.
ENV_LIMITS = {"REFCOMP_MAX_BYTES": "MAX_TOTAL_BYTES", "REFCOMP_MAX_ELEMENTS": "MAX_ELEMENTS",
              "REFCOMP_MAX_EXPANSION": "MAX_EXPANSION", "REFCOMP_MAX_DEPTH": "MAX_DEPTH",
              "REFCOMP_MAX_RUN_BYTES": "MAX_RUN_BYTES"}


def _env_limits():
    for var, name in ENV_LIMITS.items():
        text = os.environ.get(var)
        if text is None or not text.strip():
            continue
        try:
            value = int(text.strip().replace("_", ""), 0)
        except ValueError:
            value = -1
        if value < 1:
            from .._errors import ParameterError
            raise ParameterError(f"environment variable {var}={text!r} must be a positive "
                                 "integer (bytes, elements or levels)")
        globals()[name] = value


_env_limits()

#: Exceptions h5py, NumPy and the encoding readers raise on malformed content;
#: :func:`load` reports them as FormatError naming the HDF5 path being read.
_CORRUPT = (OSError, LookupError, RuntimeError, ValueError, TypeError, AttributeError,
            ArithmeticError, BufferError)


def _lookup_encoding(name):
    return encoding_reader(name) is not None


def _unknown_encoding(hpath, enc):
    return (f"{hpath}: unknown weight encoding {enc!r}: no class is registered for it "
            f"(registered: raw, {', '.join(registered_encodings())}; a type defined "
            "outside refcomp registers with refcomp.weights.register_encoding before "
            "the file is loaded)")


def _h5py():
    import h5py
    return h5py


def _one_line(obj):
    return " ".join(str(obj).split())


def _short(v, n=60):
    text = _one_line(repr(v))
    return text if len(text) <= n else text[:n] + "..."
