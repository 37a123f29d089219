"""HashedNets (Chen, Wilson, Tyree, Weinberger & Chen, ICML 2015; seed 001).

A hashed layer stores ``n_buckets`` values ``w`` and a seed; its virtual
weight is ``V[o, i] = xi(o, i) * w[h(o, i)]`` with the bucket ``h`` and the
sign ``xi`` given by xxHash32 of the authors' key strings (FACTS.md §7.6):

- :func:`xxh32`, :func:`string_key`, :func:`int_key`: the hash and its keys;
- :class:`HashedWeight`: the compressed weight type (HDF5 encoding
  ``"hashed"``: bucket values + seed), with ``linear`` / ``conv2d`` compute
  hooks that never form V (:func:`hashed_linear`, :func:`hashed_conv2d`);
- :func:`hash_compress`: least-squares bucket values for a trained weight;
  :func:`n_buckets_for`: the authors' ``ceil(size * compression)``.

See ``docs/seed001.md``.
"""

from ._xxh32 import DEFAULT_SEED, int_key, string_key, xxh32
from .fit import bucket_indices, hash_compress, n_buckets_for
from .ops import hashed_conv2d, hashed_linear
from .weight import HASHES, HashedWeight

__all__ = ["xxh32", "string_key", "int_key", "DEFAULT_SEED", "HashedWeight", "HASHES",
           "hash_compress", "n_buckets_for", "bucket_indices", "hashed_linear",
           "hashed_conv2d"]
