"""What the compiled kernels can assume about this machine (speed choices only).

Numba compiles for the host CPU unless ``NUMBA_CPU_NAME`` names another
target (for example ``generic`` for portable caches).  The vector kernels
(:mod:`refcomp.kernels._sell`, :mod:`refcomp.kernels._rowvec`) are chosen
only when the code is compiled for this host and the host has the vector
instructions they were measured with; otherwise the scalar kernels run.
Both give the same bits, so nothing here changes a result.
"""

import numba

__all__ = ["has_feature", "gathers_mitigated"]


def _host_features():
    if numba.config.CPU_NAME not in (None, "host"):
        return {}                    # compiled for another target: assume nothing
    try:
        import llvmlite.binding as llvm
        features = dict(llvm.get_host_cpu_features())
    except Exception:                # pragma: no cover - feature query unavailable
        return {}
    # NUMBA_CPU_FEATURES ("+avx2,-avx512f,...") overrides what Numba compiles for.
    for item in (numba.config.CPU_FEATURES or "").split(","):
        item = item.strip()
        if item[:1] in "+-" and len(item) > 1:
            features[item[1:]] = item[0] == "+"
    return features


_FEATURES = _host_features()


def has_feature(name):
    """Whether code compiled by Numba here may use the CPU feature ``name``
    (LLVM's name: ``"avx2"``, ``"avx512f"``, ...)."""
    return bool(_FEATURES.get(name, False))


def gathers_mitigated():
    """Whether Intel's Gather Data Sampling mitigation ("Downfall", 2023) is
    active: its microcode makes every AVX gather several times slower, so
    the gather kernels lose to the scalar ones (Linux reports it in sysfs;
    elsewhere assumed inactive)."""
    try:
        with open("/sys/devices/system/cpu/vulnerabilities/gather_data_sampling") as f:
            return f.read().startswith("Mitigation")
    except OSError:
        return False
