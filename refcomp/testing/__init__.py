"""Helpers for users and for refcomp's own tests: bit comparison, strategies, bounds."""

from ._bits import assert_bits_equal, bits_equal
from ._bounds import dot_error_bound, dot_magnitude, gamma, model_error_bound, unit_roundoff

__all__ = ["assert_bits_equal", "bits_equal", "dot_error_bound", "dot_magnitude", "gamma",
           "model_error_bound", "unit_roundoff"]
