"""Weight arrays of the shipped models (``data/digits_*.h5``) for the quantizers and pruning suites.

The layers suite runs the shipped models whole; the code suites run each
quantizer, cast and pruning utility on trained weights too (their ranges,
outliers and ties are not those of the drawn Gaussian / Laplacian arrays):
two weight arrays per model, the first and the last weighted layer, as
float32 matrices ``(out, everything else)`` so that a per-channel quantizer
works along axis 0 (conv2d OIHW kernels flattened to (O, C·kh·kw)).
"""

import functools

import numpy as np

from .._errors import FormatError

__all__ = ["SHIPPED_WEIGHTS", "shipped_weights", "with_shipped", "shipped_note"]

#: (model, layer path, weight) of the arrays used, from data/digits_<model>.h5.
SHIPPED_WEIGHTS = (("mlp", "1", "W"), ("mlp", "5", "W"), ("cnn", "1", "W"), ("cnn", "9", "W"),
                   ("resnet", "3/0", "W"), ("resnet", "9", "W"), ("lstm", "0", "W_hh"),
                   ("lstm", "1", "W"), ("gru", "0", "W_hh"), ("gru", "1", "W"))

#: Quantizer parameters of the shipped arrays, alternating (keys of
#: :func:`refcomp.testing.strategies.affine_params`): int8 symmetric narrow range,
#: the TFLite weight scheme, and uint8 asymmetric.
SHIPPED_PARAMS = ({"bits": 8, "symmetric": True, "narrow_range": True, "signed": True,
                   "axis": None, "rounding": "half_even", "scale_op": "divide"},
                  {"bits": 8, "symmetric": False, "narrow_range": False, "signed": False,
                   "axis": None, "rounding": "half_even", "scale_op": "divide"})


@functools.lru_cache(maxsize=1)
def _load():
    import refcomp
    from ..data import default_data_dir
    out = []
    models = {}
    try:
        for m, path, name in SHIPPED_WEIGHTS:
            if m not in models:
                models[m] = dict(refcomp.load(default_data_dir() / f"digits_{m}.h5")
                                 .named_layers())
            W = np.asarray(models[m][path].weights[name])
            if W.dtype != np.float32:
                continue
            W = np.ascontiguousarray(W.reshape(W.shape[0], -1))
            W.flags.writeable = False
            out.append((f"digits_{m} {path}/{name}", W))
    except (FormatError, OSError):                  # no data/ directory (a wheel install)
        return ()
    return tuple(out)


def shipped_weights():
    """``[(label, w)]``: float32 (out, n) copies of :data:`SHIPPED_WEIGHTS`; empty
    without the data/ directory."""
    return [(label, w.copy()) for label, w in _load()]


def with_shipped(examples, extra=SHIPPED_PARAMS):
    """The drawn examples followed by one per shipped array.

    ``examples`` are tuples ``(w, x)``; the shipped ones are ``(w, extra[i %
    len(extra)])`` (a quantizer's parameters, a pruning amount ...).
    """
    return list(examples) + [(w, extra[i % len(extra)])
                             for i, (_, w) in enumerate(shipped_weights())]


def shipped_note():
    """The note of a case that ran the shipped arrays, or of one that could not."""
    k = len(_load())
    if not k:
        return "shipped models: no data/ directory, drawn examples only"
    return (f"includes {k} weight arrays of the shipped models (data/digits_*.h5: two "
            "layers each)")
