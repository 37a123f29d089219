"""The shipped digits data splits (``data/digits_{train,calib,test}.h5``).

Each split file holds ``x`` float32 (N, 8, 8) = scikit-learn's bundled
``load_digits().images / 16.0`` (exact: the pixel values 0..16 divided by a
power of two) and ``y`` int64 (N,) class labels 0..9.  The split rule and
the build are in ``data/build.py`` and ``data/README.md``.

The data directory is found in this order:

1. the environment variable ``REFCOMP_DATA_DIR`` if set;
2. ``<repository>/data`` next to the ``refcomp`` package, which is where it
   is when refcomp is run from a checkout or installed editable
   (``pip install -e .``).  A non-editable wheel does not carry ``data/``:
   set ``REFCOMP_DATA_DIR`` then.
"""

import os
from pathlib import Path

import numpy as np

from ._errors import FormatError, ParameterError

__all__ = ["default_data_dir", "load_split", "SPLITS"]

#: Names accepted by :func:`load_split` besides a file path.
SPLITS = ("train", "calib", "test")


def default_data_dir():
    """Path of the shipped ``data/`` directory (see the module docstring).

    Raises
    ------
    FormatError
        if no such directory exists.
    """
    env = os.environ.get("REFCOMP_DATA_DIR")
    if env:
        p = Path(env)
        if not p.is_dir():
            raise FormatError(f"REFCOMP_DATA_DIR={env!r} is not a directory")
        return p
    p = Path(__file__).resolve().parent.parent / "data"
    if not p.is_dir():
        raise FormatError(f"refcomp data directory not found at {p}; set REFCOMP_DATA_DIR "
                          "to the repository's data/ directory")
    return p


def _resolve(name_or_path):
    s = os.fspath(name_or_path)
    short = s[len("digits_"):] if s.startswith("digits_") else s
    if short in SPLITS:
        return default_data_dir() / f"digits_{short}.h5"
    if s.endswith(".h5") or os.sep in s or "/" in s:
        return Path(s)
    raise ParameterError(f"unknown split {s!r}: expected one of {list(SPLITS)} "
                         "(or 'digits_<split>') or a path to an .h5 file")


def load_split(name_or_path):
    """Load a data split: ``(x, y)``.

    Parameters
    ----------
    name_or_path : str or path-like
        ``"train"``, ``"calib"``, ``"test"`` (also ``"digits_test"`` etc.),
        or the path of an HDF5 file with datasets ``x`` and ``y``.

    Returns
    -------
    x : ndarray, float32 or float64, (N, ...) as stored (no cast)
    y : ndarray, integer, (N,)

    Raises
    ------
    FormatError
        missing file or dataset, non-float ``x``, non-integer ``y``, or
        mismatched lengths.
    """
    import h5py
    path = _resolve(name_or_path)
    if not path.is_file():
        raise FormatError(f"{path}: no such data file")
    try:
        with h5py.File(path, "r") as f:
            for k in ("x", "y"):
                if k not in f or not isinstance(f[k], h5py.Dataset):
                    raise FormatError(f"{path}: missing dataset {k!r}")
            x, y = f["x"][()], f["y"][()]
    except OSError as exc:
        raise FormatError(f"{path}: not a readable HDF5 file ({exc})") from None
    if x.dtype not in (np.float32, np.float64) or x.ndim < 1:
        raise FormatError(f"{path}: x must be float32/float64 with a batch axis, got "
                          f"{x.dtype} {x.shape}")
    if y.dtype.kind not in "iu" or y.shape != (x.shape[0],):
        raise FormatError(f"{path}: y must be integer of shape ({x.shape[0]},), got "
                          f"{y.dtype} {y.shape}")
    return x, y
