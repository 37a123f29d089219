"""Plain-array HDF5 files: :func:`read_arrays` / :func:`write_arrays`.

For weights exported as HDF5 datasets rather than as a refcomp model (e.g.
the input of ``refcomp run``).  Reading applies the dataset checks of
:mod:`._h5check` (strings accepted); writing is atomic.
"""

import fnmatch

import numpy as np

from ..weights._h5util import write_dataset
from .._errors import DTypeError
from ._atomic import atomic_path, checked_path
from ._format import _h5py
from ._h5check import _read_checked


def read_arrays(path, *, pattern="*"):
    """Read every dataset of a plain HDF5 file (read-only).

    Parameters
    ----------
    path : str or os.PathLike
    pattern : str
        Glob; only dataset paths matching it are read.

    Returns
    -------
    dict
        ``{"group/name": ndarray}``: keys are absolute HDF5 paths without
        the leading "/", in sorted (depth-first, name-ordered) order.

    Raises
    ------
    FormatError
        Not a readable HDF5 file, or a dataset whose declared size the file
        cannot back (:data:`MAX_ELEMENTS`, :data:`MAX_EXPANSION`,
        :data:`MAX_TOTAL_BYTES`, checked from the headers before reading).
    """
    h5py = _h5py()

    def body(f, reader):
        names, out = [], {}
        f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
        for n in sorted(names):
            if fnmatch.fnmatchcase(n, pattern):
                ds = f[n]
                reader.dataset(ds, f"/{n}", strings=True)
                out[n] = ds[()]
        return out

    return _read_checked(checked_path(path), body, keep_decode=False)


def write_arrays(path, arrays, *, attrs=None):
    """Write ``{"group/name": ndarray}`` as datasets (groups created), atomically.

    Parameters
    ----------
    path : str or os.PathLike
    arrays : dict
        Dataset path -> ndarray, stored with its exact dtype: booleans,
        integers, floats or byte strings (what :func:`read_arrays` reads
        back); other dtypes (complex, object, structured...) are refused
        with a DTypeError before anything is written.
    attrs : dict, optional
        Dataset path -> dict of attributes to set on that dataset.
    """
    h5py = _h5py()
    for n, a in arrays.items():
        dt = np.asarray(a).dtype
        if dt.kind not in "biufS" or dt.fields is not None:
            raise DTypeError(f"array {n!r} has dtype {dt}; plain-array files hold booleans, "
                             "integers, floats or byte strings; nothing was written")
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            for n, a in arrays.items():
                ds = write_dataset(f, n.lstrip("/"), a)
                for k, v in ((attrs or {}).get(n) or {}).items():
                    ds.attrs[k] = v
