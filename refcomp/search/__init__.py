"""Channel-number search (seed 001: AutoSlim) and the cost counts it uses.

- :func:`count_flops`, :func:`count_params`, :func:`total`
  (:mod:`refcomp.search.flops`): multiply-accumulates and weight elements per
  layer, the convention in the module docstring;
- :func:`autoslim` (:mod:`refcomp.search.autoslim`): AutoSlim's one-shot
  greedy channel slimming applied to a *trained* network (the original
  trains a slimmable network first; see the module docstring), channels
  removed with :func:`refcomp.prune.shrink`, no retraining.

The search imports no study code; ``refcomp slim`` injects the study's
executors for ``--workers`` / ``--scheduler``.  See ``docs/seed001.md``.
"""

from .autoslim import IMPORTANCES, SlimResult, autoslim, channel_importance, evaluate_candidate
from .flops import count_flops, count_params, total

__all__ = ["autoslim", "SlimResult", "channel_importance", "evaluate_candidate", "IMPORTANCES",
           "count_flops", "count_params", "total"]
