"""HashedNets registered as a layer-level study method (``refcomp study --methods hashed``).

The swept parameter ``keep`` is the percentage of |W| stored as buckets:
``n_buckets = ceil(|W| * keep / 100)`` (the authors' ``hsize_w = ceil(size *
compression)`` with compression = keep / 100, exact on the float's binary
value; higher = more faithful, like a bit width, as the adaptive search
expects).  The default sweep 50 ... 1.5625 is compression 1/2 ... 1/64.
Bucket values fitted by least
squares (:func:`refcomp.hashing.hash_compress`, no retraining), the
authors' string keys, sign hash and seed 1691.  The layer's ``W`` becomes a
:class:`refcomp.hashing.HashedWeight`, so the study's forward pass runs its
compute hook (V never formed).  Biases stay at full precision.
"""

from fractions import Fraction

from ..._errors import ParameterError
from ...hashing import hash_compress, n_buckets_for
from ...hashing.weight import SEED_BITS
from ..registry import CompressedLayer, register_method

#: Percentages of |W| kept as buckets, swept by default (1/2 ... 1/64).
KEEP_VALUES = (50, 25, 12.5, 6.25, 3.125, 1.5625)


def _hashed(layer, keep, *, seed, sign, hash):
    if layer.kind not in ("dense", "conv2d"):
        raise ParameterError(f"method 'hashed' hashes dense and conv2d weights; layer "
                             f"{layer.path} ({layer.label}) is a {layer.kind}")
    W = layer.weights["W"]
    hw = hash_compress(W, n_buckets_for(W.size, Fraction(keep) / 100), seed=seed,
                       sign=sign, hash=hash)
    out, bits = {"W": hw}, hw.stored_bits()
    for name in layer.names:
        if name != "W":
            out[name] = layer.weights[name].copy()
            bits += out[name].size * out[name].dtype.itemsize * 8
    return CompressedLayer(out, bits, hw)


register_method(
    "hashed", _hashed, label="HN", param="keep", values=KEEP_VALUES, min_value=0,
    max_value=100, level="layer",
    extra_params={"seed": 1691, "sign": True, "hash": "string"},
    description="HashedNets (Chen et al. 2015): W hashed into ceil(|W| keep/100) buckets with "
                "xxHash32 keys, least-squares bucket values, no retraining; keep = % of |W| as buckets",
    accounting=f"bucket values at the weight precision + {SEED_BITS}-bit seed (+ biases at "
               "the weight precision)")
