"""Checks on the files a command reads and writes (shared by every command).

Every writer refuses an output path that names one of its inputs (the same
file under another name included), refuses to replace an existing file
unless ``--force`` is given, and reports a missing output directory before
any work; readers refuse a directory or a missing path with one line.
"""

import os

from .._errors import FormatError
from . import CLIError

__all__ = ["add_force", "check_input", "check_output"]


def add_force(parser):
    """Add ``--force`` (replace an existing output) to a sub-command's parser."""
    parser.add_argument("--force", action="store_true",
                        help="replace an existing output file (never an input)")


def check_input(path, what="input"):
    """Refuse a missing path or a directory, naming ``what`` (FormatError, exit status 1)."""
    p = os.fspath(path)
    if os.path.isdir(p):
        raise FormatError(f"{what} {p!r} is a directory, not a file")
    if not os.path.exists(p):
        raise FormatError(f"{what} {p!r}: no such file")
    return p


def _same(a, b):
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def check_output(path, inputs=(), *, force=False, what="output"):
    """Refuse an output path that is an input, an existing file without ``force``,
    a directory, or a path in a missing directory (CLIError, exit status 2)."""
    p = os.fspath(path)
    for src in inputs:
        if src is not None and os.path.exists(os.fspath(src)) and _same(p, os.fspath(src)):
            raise CLIError(f"{what} {p!r} is the input {os.fspath(src)!r}; write to another "
                           "file")
    if os.path.isdir(p):
        raise CLIError(f"{what} {p!r} is a directory; give a file name")
    if os.path.exists(p) and not force:
        raise CLIError(f"{what} {p!r} exists; pass --force to replace it")
    parent = os.path.dirname(os.path.abspath(p))
    if not os.path.isdir(parent):
        raise CLIError(f"{what} {p!r}: directory {parent!r} does not exist")
    return p


def check_model_fits(path, what="the model"):
    """Refuse, before loading, a model (or plain-array) file whose declared arrays
    cannot fit (:func:`refcomp.io.limits.declared_bytes` against the run budget)."""
    from ..io.limits import check_fits, declared_bytes
    check_fits(declared_bytes(path), f"{what} {path}")


def load_split_checked(name, model=None):
    """``load_split(name)`` after refusing a split file whose declared arrays cannot
    fit, then (with ``model``) a forward pass of its ``x`` that cannot fit
    (:func:`check_forward_fits`); every check happens before the allocation."""
    from ..data import _resolve, load_split
    from ..io.limits import check_fits, declared_bytes
    path = _resolve(name)
    if os.path.isfile(path):
        check_fits(declared_bytes(path), f"the data split {os.fspath(name)}")
    x, y = load_split(name)
    if model is not None:
        check_forward_fits(model, x)
    return x, y


def check_forward_fits(model, x):
    """Refuse, before running, a forward pass whose working memory cannot fit
    (:func:`refcomp.io.limits.forward_bytes` of the batch ``x``)."""
    if model.input_shape is None or x.ndim == 0 or tuple(x.shape[1:]) != model.input_shape:
        return                        # the forward pass reports the mismatch itself
    check_batch_fits(model, x.shape[0])


def check_batch_fits(model, batch):
    """:func:`check_forward_fits` for a batch of ``batch`` samples of the model's input shape."""
    from ..io.limits import check_fits, forward_bytes
    need, i, shape = forward_bytes(model, batch)
    check_fits(need, f"the forward pass of model {model.name!r} on a batch of {batch} "
                     f"(layer {i} outputs {shape} per sample)")
