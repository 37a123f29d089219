"""xxHash32 and the HashedNets hash keys, in plain Python (the reference transcription).

xxHash32 (Y. Collet, XXH32 specification, ``doc/xxhash_spec.md`` of the xxHash
repository) on a byte string and an unsigned 32-bit seed, every operation
modulo 2**32 on Python ints:

* primes P1 = 2654435761, P2 = 2246822519, P3 = 3266489917, P4 = 668265263,
  P5 = 374761393; ``rotl(v, r)`` the 32-bit left rotation;
* length >= 16: four lanes ``v1 = seed + P1 + P2``, ``v2 = seed + P2``,
  ``v3 = seed``, ``v4 = seed - P1``; each 16-byte stripe updates lane k with
  its little-endian 32-bit word w: ``v = rotl(v + w * P2, 13) * P1``; then
  ``h = rotl(v1, 1) + rotl(v2, 7) + rotl(v3, 12) + rotl(v4, 18)``.
  Length < 16: ``h = seed + P5``;
* ``h += length`` (mod 2**32); each remaining 4-byte word:
  ``h = rotl(h + w * P3, 17) * P4``; each remaining byte:
  ``h = rotl(h + byte * P5, 11) * P1``;
* avalanche: ``h ^= h >> 15; h *= P2; h ^= h >> 13; h *= P3; h ^= h >> 16``.

The Numba kernels of :mod:`refcomp.hashing._kernels` compute the same
function; tests check both against the ``xxhash`` package.

Hash keys (FACTS.md §7.6, the HashedNets authors' Lua ``HasherME:hashFunc``,
Chen et al., ICML 2015): for the 1-based output index ``i`` and input index
``j`` of a virtual weight, with rep = 3::

    key = str(i) + str(i+1) + str(i+2) + "_" + str(j) + str(j+1) + str(j+2) + suffix

in ASCII decimal, suffix ``"idxW"`` for the bucket and ``"xi_W"`` for the
sign; default seed 1691.  The integer-key variant (refcomp's, faster: no
decimal formatting) hashes the 12 bytes of the little-endian uint32 words
``(i, j, tag)`` with tag 0 for the bucket and 1 for the sign.
"""

__all__ = ["xxh32", "string_key", "int_key", "P1", "P2", "P3", "P4", "P5", "SUFFIXES",
           "DEFAULT_SEED"]

P1, P2, P3, P4, P5 = 2654435761, 2246822519, 3266489917, 668265263, 374761393
_M = 0xFFFFFFFF
#: Key suffixes of the authors' code: bucket ("idx" + "W"), sign ("xi_" + "W").
SUFFIXES = (b"idxW", b"xi_W")
#: The authors' default ``config.hashSeed``.
DEFAULT_SEED = 1691


def _rotl(v, r):
    return ((v << r) | (v >> (32 - r))) & _M


def xxh32(data, seed=0):
    """XXH32 of ``data`` with ``seed`` (module docstring), as a Python int.

    Parameters
    ----------
    data : bytes or bytearray
    seed : int in [0, 2**32)

    Returns
    -------
    int in [0, 2**32): equal to ``xxhash.xxh32_intdigest(data, seed)``.
    """
    n = len(data)
    p = 0
    if n >= 16:
        v1 = (seed + P1 + P2) & _M
        v2 = (seed + P2) & _M
        v3 = seed & _M
        v4 = (seed - P1) & _M
        while p + 16 <= n:
            lanes = [int.from_bytes(data[p + 4 * k:p + 4 * k + 4], "little") for k in range(4)]
            v1 = (_rotl((v1 + lanes[0] * P2) & _M, 13) * P1) & _M
            v2 = (_rotl((v2 + lanes[1] * P2) & _M, 13) * P1) & _M
            v3 = (_rotl((v3 + lanes[2] * P2) & _M, 13) * P1) & _M
            v4 = (_rotl((v4 + lanes[3] * P2) & _M, 13) * P1) & _M
            p += 16
        h = (_rotl(v1, 1) + _rotl(v2, 7) + _rotl(v3, 12) + _rotl(v4, 18)) & _M
    else:
        h = (seed + P5) & _M
    h = (h + n) & _M
    while p + 4 <= n:
        w = int.from_bytes(data[p:p + 4], "little")
        h = (_rotl((h + w * P3) & _M, 17) * P4) & _M
        p += 4
    while p < n:
        h = (_rotl((h + data[p] * P5) & _M, 11) * P1) & _M
        p += 1
    h ^= h >> 15
    h = (h * P2) & _M
    h ^= h >> 13
    h = (h * P3) & _M
    h ^= h >> 16
    return h


def string_key(i, j, suffix):
    """The authors' key bytes for 1-based ``i`` (output) and ``j`` (input) (module doc)."""
    return (f"{i}{i + 1}{i + 2}_{j}{j + 1}{j + 2}".encode("ascii") + bytes(suffix))


def int_key(i, j, tag):
    """The integer-key variant's 12 bytes: little-endian uint32 ``i``, ``j``, ``tag``."""
    return (i.to_bytes(4, "little") + j.to_bytes(4, "little") + tag.to_bytes(4, "little"))
