"""Forward passes of the layers, on plain weight arrays.

Every function validates its inputs (dtype, ndim, shapes; nothing is cast),
takes ``precision="reference"`` (bit-exact, documented order) or ``"fast"``
(NumPy/BLAS) and returns arrays of the input dtype.
"""

from .activations import hard_sigmoid, linear, log_softmax, relu, sigmoid, softmax, tanh
from .conv import conv1d, conv2d
from .dense import dense, gemm, matmul
from .normalization import batch_norm, fold_batch_norm
from .pooling import avg_pool, avg_pool1d, avg_pool2d, max_pool, max_pool1d, max_pool2d
from .recurrent import gru, lstm, mgu, simple_rnn
from .shape import flatten, reshape

__all__ = ["dense", "gemm", "matmul", "conv2d", "conv1d", "max_pool2d", "avg_pool2d", "max_pool",
           "avg_pool", "max_pool1d", "avg_pool1d", "flatten", "reshape", "relu",
           "sigmoid", "hard_sigmoid", "tanh", "softmax", "log_softmax", "linear", "batch_norm",
           "fold_batch_norm", "lstm", "gru", "mgu", "simple_rnn"]
