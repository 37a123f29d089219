"""Hypothesis strategies for property tests of your own implementation against refcomp.

Needs `hypothesis <https://hypothesis.readthedocs.io>`_ (``pip install
"refcomp[test]"``); importing this package without it raises
:class:`refcomp.MissingDependencyError` naming that extra.

Every strategy is built from Hypothesis' own primitives, or from a
``numpy.random.Generator`` seeded by a drawn integer, so a run is as
deterministic as the Hypothesis settings make it (``derandomize=True``,
as in refcomp's ``ci`` profile, gives the same examples on every run).

================================  ==================================================
:func:`weight_arrays`             float32-exact weight tensors: Gaussian / Laplacian
                                  at realistic scales, many ties, exact (signed)
                                  zeros, optional subnormals and specials
:func:`dense_configs`             (N, in, out, bias)
:func:`conv2d_configs`            shapes, strides, paddings (int, pairs, "same",
                                  "valid", asymmetric), dilations and groups that fit
:func:`pool2d_configs`            max / average pooling that fit
:func:`recurrent_configs`         lstm / gru (both formulas) / mgu / simple_rnn
:func:`layers`                    one :class:`refcomp.Layer` of any kind, with its input
:func:`models`                    small :class:`refcomp.Model` of every layer kind,
                                  with an input batch
:func:`affine_params`, ...        quantizer parameters (:func:`quantizer_params`),
                                  and :func:`affine_tie_cases` (exact ties)
================================  ==================================================

A test of your own dense layer against refcomp's derived bound::

    from hypothesis import given
    from refcomp.testing import assert_conforms
    from refcomp.testing.strategies import layers

    @given(layers(kinds=("dense",)))
    def test_my_dense(case):
        layer, x = case
        model = refcomp.Model([layer])
        assert_conforms(lambda x: my_dense(x, layer.weights["W"], layer.weights.get("b")),
                        model, x)
"""

try:
    import hypothesis  # noqa: F401
except ImportError:                                   # pragma: no cover - depends on the env
    from ..._errors import MissingDependencyError
    raise MissingDependencyError(
        "refcomp.testing.strategies needs hypothesis: pip install \"refcomp[test]\"") from None

from ._arrays import float32_values, weight_arrays
from ._configs import (conv1d_configs, conv2d_configs, dense_configs, pool2d_configs,
                       pool_nd_configs, recurrent_configs)
from ._models import LAYER_KINDS_DRAWN, layers, models
from ._quantizers import (affine_params, affine_tie_cases, fixed_point_params,
                          minifloat_params, quantizer_params, uniform_params)

__all__ = ["float32_values", "weight_arrays", "dense_configs", "conv2d_configs",
           "conv1d_configs", "pool2d_configs", "pool_nd_configs", "recurrent_configs",
           "layers", "models", "LAYER_KINDS_DRAWN",
           "affine_params", "uniform_params", "minifloat_params", "fixed_point_params",
           "quantizer_params", "affine_tie_cases"]
