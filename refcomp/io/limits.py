"""Resource limits of refcomp's readers and of the command line's forward pass.

One place sets them all, :func:`set_limits` (or, once at import, environment
variables); :func:`get_limits` reads them:

================  =======================  =============================================
limit             environment variable     meaning (default)
================  =======================  =============================================
``max_bytes``     ``REFCOMP_MAX_BYTES``    the datasets of one file may declare, and its
                                           weights decode to, at most this many bytes in
                                           total (2**32)
``max_elements``  ``REFCOMP_MAX_ELEMENTS`` elements of one dataset, ONNX initializer or
                                           decoded array (2**31)
``max_expansion`` ``REFCOMP_MAX_EXPANSION`` bytes a compressed dataset may declare per
                                           byte it occupies; bytes all datasets of a file
                                           may declare per byte of the file (1024)
``max_depth``     ``REFCOMP_MAX_DEPTH``    nesting of residual blocks and weight groups (64)
``max_run_bytes`` ``REFCOMP_MAX_RUN_BYTES`` working memory the command line lets a
                                           model, an input batch or a forward pass need
                                           (None: the memory the system reports
                                           available, MemAvailable)
================  =======================  =============================================

Every declared size is checked against these limits *and* against the size of
the file holding it before anything is allocated (:mod:`._h5check`, the
Keras, ONNX and container readers, the bitstream decoders).  The command line
checks the model's and the input batch's declared sizes and a lower bound of the forward pass's
working memory (:func:`forward_bytes`) against :func:`run_budget` before it
reads or runs, and exits with one line naming both figures.
"""

import math
import os

import numpy as np

from .._errors import ParameterError, ResourceLimitError
from . import _format

__all__ = ["set_limits", "get_limits", "available_memory", "run_budget", "forward_bytes",
           "declared_bytes", "check_fits"]

_NAMES = {"max_bytes": "MAX_TOTAL_BYTES", "max_elements": "MAX_ELEMENTS",
          "max_expansion": "MAX_EXPANSION", "max_depth": "MAX_DEPTH",
          "max_run_bytes": "MAX_RUN_BYTES"}


def get_limits():
    """The current limits, ``{"max_bytes": ..., ...}`` (see the module docstring)."""
    return {k: getattr(_format, v) for k, v in _NAMES.items()}


def set_limits(**limits):
    """Change limits for this process; returns the previous values (pass them back
    to restore: ``old = set_limits(max_bytes=1 << 30); ...; set_limits(**old)``).

    Parameters
    ----------
    max_bytes, max_elements, max_expansion, max_depth : int >= 1, keyword-only
    max_run_bytes : int >= 1 or None

    Raises
    ------
    ParameterError
        An unknown name, or a value that is not a positive int (None only for
        ``max_run_bytes``).
    """
    old = get_limits()
    for key, value in limits.items():
        if key not in _NAMES:
            raise ParameterError(f"unknown limit {key!r}; known: {', '.join(_NAMES)}")
        if value is None and key == "max_run_bytes":
            continue
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ParameterError(f"limit {key} must be a positive int, got {value!r}")
    for key, value in limits.items():
        setattr(_format, _NAMES[key], None if value is None else int(value))
    return old


def available_memory():
    """Bytes the system reports available (Linux MemAvailable, else free pages), or None."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def run_budget():
    """(bytes, why): the smaller of the available memory and ``max_run_bytes``."""
    avail = available_memory()
    cap = _format.MAX_RUN_BYTES
    options = [(b, w) for b, w in ((avail, "available memory (MemAvailable)"),
                                   (cap, "max_run_bytes / REFCOMP_MAX_RUN_BYTES"))
               if b is not None]
    return min(options) if options else (None, "unknown")


def forward_bytes(model, batch):
    """A lower bound of the memory a forward pass of ``batch`` samples needs.

    The largest ``input + output`` of one top-level layer, per sample, in
    float64 (the reference precision's intermediates), times ``batch``; the
    output shapes come from a zero-batch pass (:meth:`refcomp.Model.output_shapes`),
    which allocates nothing.  Returns ``(bytes, layer index, output shape)``.
    """
    shapes = model.output_shapes()
    prev = math.prod(model.input_shape)
    best = (0, -1, tuple(model.input_shape))
    for i, s in enumerate(shapes):
        n = math.prod(s)
        best = max(best, ((prev + n) * 8 * int(batch), i, s))
        prev = n
    return best


def declared_bytes(path):
    """Bytes the datasets of an HDF5 file declare (headers only, nothing read);
    0 when the file cannot be walked (its reader then reports why)."""
    import h5py
    from ._h5check import _check_global_heaps
    total = []
    try:
        _check_global_heaps(path)             # the walk below must not meet a corrupt heap
        with h5py.File(path, "r") as f:
            f.visititems(lambda n, o: total.append(o.size * o.dtype.itemsize)
                         if isinstance(o, h5py.Dataset) and o.size is not None else None)
    except Exception:  # noqa: BLE001 (a corrupt file is read_arrays's to report)
        return 0
    return sum(total)


def check_fits(nbytes, what):
    """Raise :class:`ResourceLimitError` if ``nbytes`` exceeds :func:`run_budget`."""
    budget, why = run_budget()
    if budget is not None and nbytes > budget:
        raise ResourceLimitError(f"{what} needs at least {_gib(nbytes)}, more than the "
                                 f"{_gib(budget)} of the {why}; not started")


def _gib(n):
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            return f"{n / (1 << shift):,.1f} {unit}"
    return f"{n} bytes"
