"""DeepCABAC: the entropy coder of MPEG NNC (ISO/IEC 15938-17), bit-exact with NNCodec 2.1.3.

Engine (binary arithmetic coder; Wiedemann et al., "DeepCABAC", IEEE JSTSP
14(4) 2020, and the standard's clause on the arithmetic decoding engine)
------------------------------------------------------------------------
9-bit range (start 510), 32-bit low register with byte-wise output and
carry propagation through buffered 0xFF bytes (the HEVC arrangement).  A
context-coded bin looks up the LPS sub-range in a 8 x 32 table
(:data:`refcomp.coding.cabac._tables.RLPS`) by ``|s >> 7|`` and
``range & 0xE0``; the most probable symbol is 1 when ``s >= 0``.  Bypass
bins split the range in halves; the stream ends with a terminating bin 1
and a final 1 bit (byte alignment).

Probability estimator (dual rate): each context holds a fast state ``s0``
(int, ~8 bits) and the combined state ``s = s1 + 16 s0`` (slow state ``s1``,
~12 bits); after a bin ``b`` with ``d = +1`` (b = 1) or ``-1``:
``s0 += d * (CURVE[16 + (d*s0 >> 3)] >> sh0)``,
``s1 += d * (CURVE[16 + (d*s1 >> 7)] >> sh1)`` (``>>``: floor shifts on
Python/two's-complement ints).  A context starts from one of 9
initialisations (``ECO_SETS``: shifts and states); which one is signalled
per context at the start of each tensor.

Binarization of a value ``v`` (DeepCABAC)
-----------------------------------------
``sig`` (v != 0); ``sign`` (v < 0); greater-than flags ``gt_j`` (|v| > j + 1)
for ``j = 0 .. N-1`` while the previous is 1, with ``N =
cabac_unary_length_minus1 + 1``; then ``|v| - N - 1`` as an order-0
Exp-Golomb code whose unary prefix (at most 31 bins) is context coded and
whose suffix is bypass coded.

Context selection (147 models for N = 11, NNCodec's store)
-----------------------------------------------------------
- sig: ``3 * state + c(nb)`` (24 models with dependent quantization, 12 with
  ``dq_states=4``, else 3),
  ``c(nb)`` = 0, 1, 2 when the previous value in scan order is 0, < 0, > 0;
- sign: ``48 + c(nb)``;
- gt_j: ``53 + 2 j + (v < 0)``;
- Exp-Golomb prefix bin ``k``: ``53 + 4 N + k``;
- the initialisation flags: ``53 + 4 N + 34``.
(the remaining models of NNCodec's store belong to tools refcomp does not
write: temporal context, history-dependent significance, row skipping.)
"Neighbouring level" in NNCodec 2.1.3 is the previous value in scan order,
reset to 0 at the start of a tensor and of each block row.

Dependent quantization: levels alternate between quantizer Q0 (even
multiples of the step) and Q1 (odd multiples, and 0); an 8-state machine
(``TRANS``, next state from the parity of the coded value) selects the
quantizer Q(state & 1); the coded value is ``(level + sgn * (state & 1)) >> 1``.
``dq_states=4`` selects VVC's 4-state machine instead (``TRANS4``, relabelled
so that the quantizer is also Q(state & 1); 12 significance contexts), a
refcomp variant outside NNCodec (docs/nnc.md).

Modules: :mod:`.layer` (one tensor: :func:`encode_levels`,
:func:`decode_levels`), ``_kernels`` (Numba) and ``_twins`` (plain Python).
Scope and what is not written: docs/nnc.md.
"""
from ._kernels import TRANS, TRANS4
from .layer import (DQ_STATES, MAX_ABS_LEVEL, MAX_LEVELS, check_dq_states, decode_levels,
                    encode_levels, scan_positions)

__all__ = ["encode_levels", "decode_levels", "scan_positions", "TRANS", "TRANS4", "DQ_STATES",
           "check_dq_states", "MAX_ABS_LEVEL", "MAX_LEVELS"]
