"""Entropy and universal codes (issue 7). Only universal codes are implemented so far."""
from .universal import choose_gap_code, code_length, decode_ints, encode_ints

__all__ = ["choose_gap_code", "code_length", "decode_ints", "encode_ints"]
