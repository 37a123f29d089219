"""calibrate(): minmax, percentile, entropy (two variants vs naive loops with scipy), mse."""

from collections import Counter

import numpy as np
import pytest

from refcomp._errors import DTypeError, ParameterError
from refcomp.quantize import calibrate

stats = pytest.importorskip("scipy.stats")


def _naive_pq(x, bits, num_bins):
    # Loop transcription of FACTS.md §7.2 (pytorch-quantization _compute_amax_entropy).
    a = np.abs(x.astype(np.float64))
    bins, edges = np.histogram(a, bins=num_bins, range=(0, a.max()))
    bins = bins.astype(np.float64)
    bins[0] = bins[1]
    nbins = 1 << (bits - 1)
    divs = []
    for i in range(128, len(bins) + 1):
        ref = list(bins[:i])
        ref[i - 1] += sum(bins[i:])
        space = np.linspace(0, i, num=nbins + 1)
        dig = [int(np.digitize(j, space)) - 1 for j in range(i)]
        dig = [-1 if bins[j] == 0 else d for j, d in enumerate(dig)]
        newc = [0.0] * nbins
        for j, d in enumerate(dig):
            if d != -1:
                newc[d] += bins[j]
        cnt = Counter(dig)
        for k, v in cnt.items():
            if k != -1:
                newc[k] /= v
        q = [newc[d] if d != -1 else 0.0 for d in dig]
        divs.append(stats.entropy(ref, q))
    divs = np.array(divs)
    last = len(divs) - 1 - int(np.argmin(divs[::-1]))
    return edges[last + 128]


def test_entropy_pytorch_quantization_matches_naive():
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(5000) * rng.choice([0.3, 1, 4], 5000)).astype(np.float32)
    lo, hi = calibrate(x, 8, method="entropy", num_bins=400)
    assert hi == pytest.approx(_naive_pq(x, 8, 400), rel=0, abs=0) and lo == -hi


def test_entropy_mxnet_runs_and_is_symmetric():
    rng = np.random.default_rng(1)
    x = rng.laplace(size=20000).astype(np.float32)
    lo, hi = calibrate(x, 8, method="entropy", variant="mxnet", num_bins=1001)
    assert lo == -hi and 0 < hi <= np.abs(x).max()


def test_minmax_percentile_mse():
    x = np.array([-3.0, 0.5, 1.0, 2.0], dtype=np.float64)
    assert calibrate(x, 8, method="minmax") == (-3.0, 2.0)
    assert calibrate(x, 8, method="percentile", percentile=100) == (-3.0, 3.0)
    rng = np.random.default_rng(2)
    y = np.concatenate([rng.standard_normal(10000), [60.0]]).astype(np.float32)
    lo, hi = calibrate(y, 4, method="mse")
    assert lo == -hi and hi < 30           # the single outlier is clipped
    assert calibrate(np.zeros(5), 8, method="entropy") == (0.0, 0.0)


def test_calibrate_bad_input():
    with pytest.raises(ParameterError, match="1 non-finite"):
        calibrate(np.array([1.0, np.inf]), method="minmax")
    with pytest.raises(ParameterError):
        calibrate(np.ones(3), method="kl")
    with pytest.raises(ParameterError):
        calibrate(np.ones(3), method="entropy", variant="tensorrt")
    with pytest.raises(DTypeError):
        calibrate(np.ones(3, np.int64), method="minmax")
