"""Deterministic draws of hypothesis examples for the conformance runs."""

import zlib

from ._common import require

__all__ = ["draw_examples", "case_seed"]


def case_seed(seed, name):
    """Seed of one case: ``seed`` combined with a CRC-32 of its name (stable across runs)."""
    return (int(seed) * 1_000_003 + zlib.crc32(name.encode())) % (2 ** 32)


def draw_examples(strategy, n, seed):
    """Up to ``n`` examples of a hypothesis ``strategy``, the same for the same seed.

    Hypothesis runs its generation phase only (no shrinking, no example
    database), seeded by ``hypothesis.seed(seed)``: the examples depend on
    the seed and on the Hypothesis version only.  It may return fewer than
    ``n`` when the strategy has fewer distinct examples.
    """
    hyp = require("hypothesis")
    out = []

    @hyp.seed(seed)
    @hyp.settings(max_examples=n, database=None, deadline=None, derandomize=False,
                  phases=[hyp.Phase.generate], suppress_health_check=list(hyp.HealthCheck))
    @hyp.given(strategy)
    def collect(example):
        out.append(example)
    collect()
    return out[:n]
