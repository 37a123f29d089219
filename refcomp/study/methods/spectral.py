"""Spectral sparsification registered as a layer-level study method
(``refcomp study --methods spectral``).

The swept parameter ``samples`` is the sample count q as a percentage of
|W| (q = ceil(samples * |W| / 100)); edges are sampled by effective
resistance (:func:`refcomp.prune.spectral_sparsify`, exact resistances up to
1024 vertices, the JL sketch above) with a generator seeded by
``(seed, crc32(layer path))``, so every layer draws its own reproducible
stream.  No retraining.  Size: kept values at the weight precision plus a
one-bit-per-entry occupancy bitmap, biases at the weight precision.
"""

import math
import zlib

import numpy as np

from ..._errors import ParameterError
from ...prune.spectral import spectral_sparsify
from ..registry import CompressedLayer, register_method

#: Sample counts swept by default, in % of |W|.
SAMPLES = (5, 10, 20, 40, 80, 160)


def _spectral(layer, samples, *, seed):
    if layer.kind not in ("dense", "conv2d"):
        raise ParameterError(f"method 'spectral' sparsifies dense and conv2d weights; layer "
                             f"{layer.path} ({layer.label}) is a {layer.kind}")
    W = layer.weights["W"]
    rng = np.random.default_rng([int(seed), zlib.crc32(layer.path.encode())])
    res = spectral_sparsify(W, n_samples=max(1, math.ceil(samples * W.size / 100)), rng=rng)
    out = {"W": res.W}
    bits = res.nnz * W.dtype.itemsize * 8 + W.size
    for name in layer.names:
        if name != "W":
            out[name] = layer.weights[name].copy()
            bits += out[name].size * out[name].dtype.itemsize * 8
    return CompressedLayer(out, bits, res)


register_method(
    "spectral", _spectral, label="SS", param="samples", values=SAMPLES, min_value=1,
    max_value=100000, level="layer", extra_params={"seed": 0},
    description="spectral sparsification of |W| (Spielman & Srivastava 2011): samples = % of "
                "|W| edge samples by effective resistance, reweighted w/(q p), no retraining",
    accounting="kept values at the weight precision + |W| bits of occupancy bitmap (+ biases "
               "at the weight precision)")
