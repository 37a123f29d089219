"""Study methods defined at module level for tests/test_study.py.

They are deliberately NOT registered when this module is imported: the tests
register them in the main process only, so worker processes and Dask workers
know them solely through the Method objects shipped with the tasks (the
functions are pickled by reference and this module is imported on unpickling).
"""

import numpy as np

from refcomp import ParameterError
from refcomp.study import Compressed


def sign_mean(theta, bits):
    """Binary sign * mean|theta| whatever ``bits``; |theta| + 32 bits."""
    alpha = np.mean(np.abs(theta.astype(np.float64)))
    dec = np.where(theta >= 0, alpha, -alpha).astype(theta.dtype)
    return Compressed(dec, theta.size + 32)


def clipped_uniform(theta, bits, clip=1.0):
    """Clip theta to ``clip * max|theta|``, then the uniform quantizer.

    ``clip`` is an extra (fixed) float parameter of the method.
    """
    from refcomp.quantize.uniform import uniform
    lim = clip * float(np.max(np.abs(theta)))
    q = uniform(np.clip(theta, -lim, lim).astype(theta.dtype), bits)
    return Compressed(q.dequantize(), theta.size * q.bits + 64, q)


def failing(theta, bits):
    """Always fails (for the tests of what a failed study leaves behind)."""
    raise ParameterError("this method always fails")
