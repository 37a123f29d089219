"""Helpers for users and for refcomp's own tests: bit comparison, derived bounds, conformance.

* bit-exact checks: :func:`assert_bitexact`, :func:`ulp_distance`
  (:mod:`refcomp.testing.bitexact`), and the terse kernel-twin check
  :func:`assert_bits_equal`;
* derived bounds: :func:`reference_and_bound`, :func:`assert_conforms`,
  :func:`check_conforms` (:mod:`refcomp.testing.conformance`), built on
  :func:`refcomp.testing.framework_bound.framework_error_bound`;
* quantizer codes: :func:`compare_quantized` (:mod:`refcomp.testing.quantized`);
* hypothesis strategies for users' own property tests:
  :mod:`refcomp.testing.strategies` (imported on demand: needs hypothesis).
"""

from ._bits import assert_bits_equal, bits_equal
from ._bounds import dot_error_bound, dot_magnitude, gamma, model_error_bound, unit_roundoff
from .bitexact import assert_bitexact, ulp_distance
from .conformance import Conformance, assert_conforms, check_conforms, reference_and_bound
from .quantized import QuantizedComparison, compare_quantized

__all__ = ["assert_bits_equal", "bits_equal", "dot_error_bound", "dot_magnitude", "gamma",
           "model_error_bound", "unit_roundoff", "assert_bitexact", "ulp_distance",
           "reference_and_bound", "assert_conforms", "check_conforms", "Conformance",
           "compare_quantized", "QuantizedComparison"]
