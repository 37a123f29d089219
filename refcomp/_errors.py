"""Exception hierarchy of refcomp.

Every error raised on purpose by refcomp derives from :class:`RefcompError`
and from the builtin exception a Python user would expect (``ValueError``,
``TypeError``), so ``except ValueError`` keeps working.
"""

__all__ = ["RefcompError", "ShapeError", "DTypeError", "FormatError",
           "DecodeError", "ParameterError", "MissingDependencyError", "ResourceLimitError"]


class RefcompError(Exception):
    """Base class of every refcomp error."""


class ShapeError(RefcompError, ValueError):
    """An array has the wrong number of dimensions or the wrong shape."""


class DTypeError(RefcompError, TypeError):
    """An array has a dtype the function does not accept (never cast silently)."""


class ParameterError(RefcompError, ValueError):
    """A scalar option is out of range or unknown (bits, sparsity, mode name...)."""


class FormatError(RefcompError, ValueError):
    """A file or model description is malformed, unsupported or inconsistent."""


class DecodeError(RefcompError, ValueError):
    """A compressed byte stream is corrupt, truncated or declares absurd sizes."""


class MissingDependencyError(RefcompError, ImportError):
    """An optional dependency (a framework, hypothesis, ...) is not installed; the
    message names the extra that installs it (``pip install "refcomp[frameworks]"``)."""


class ResourceLimitError(RefcompError, MemoryError):
    """Work refused *before* it starts because its estimated memory exceeds the budget
    (available memory, or a limit of :mod:`refcomp.io.limits`); the message gives both."""
