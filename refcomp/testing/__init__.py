"""Helpers for users and for refcomp's own tests: bit comparison, strategies, bounds."""

from ._bits import assert_bits_equal, bits_equal

__all__ = ["assert_bits_equal", "bits_equal"]
