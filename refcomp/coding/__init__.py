"""Entropy and universal codes (issue 7). Only universal codes are implemented so far."""
from .universal import choose_gap_code, code_length, decode_ints, encode_ints

__all__ = ["choose_gap_code", "code_length", "decode_ints", "encode_ints"]
from .huffman import (MAX_SYMBOLS, canonical_codes, huffman_code_lengths, huffman_cost,  # noqa: E402
                      huffman_decode, huffman_encode, huffman_sizes)
__all__ += ["MAX_SYMBOLS", "canonical_codes", "huffman_code_lengths", "huffman_cost",
            "huffman_decode", "huffman_encode", "huffman_sizes"]
from .rans import quantize_frequencies, rans_decode, rans_encode  # noqa: E402
__all__ += ["quantize_frequencies", "rans_decode", "rans_encode"]
