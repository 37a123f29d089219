"""Pruning and neuron removal.

- Masks: :func:`magnitude`, :func:`global_magnitude`, :func:`structured`,
  :func:`polynomial_sparsity` (gradual schedule), :func:`apply_masks` and the
  :class:`Masked` weight (HDF5 encoding "masked").
- Physical removal: :func:`shrink`, :func:`remove_dead_neurons`.
- "Less is more" group sparsity (seed 003): :func:`group_prox`, :func:`less_is_more`.
- Optimal Brain Damage: :func:`obd_saliency`, :func:`hessian_diagonal`, :func:`obd`.
- Spectral sparsification (Spielman & Srivastava 2011, seed 001):
  :func:`spectral_sparsify`, :func:`effective_resistances`, :func:`spectral_error`,
  :func:`spectral_error_estimate`.

See ``docs/prune.md``.
"""

from .masked import Masked, apply_masks, prunable_weights
from .magnitude import global_magnitude, magnitude
from .schedule import polynomial_sparsity
from .structured import group_scores, structured
from .shrink import shrink
from .dead import remove_dead_neurons
from .group_sparsity import group_norms, group_prox, less_is_more
from .obd import hessian_diagonal, obd, obd_saliency
from .spectral import (effective_resistances, spectral_error, spectral_error_estimate,
                       spectral_sparsify)

__all__ = ["Masked", "apply_masks", "prunable_weights", "magnitude", "global_magnitude",
           "polynomial_sparsity", "structured", "group_scores", "shrink",
           "remove_dead_neurons", "group_prox", "group_norms", "less_is_more",
           "obd_saliency", "hessian_diagonal", "obd", "spectral_sparsify",
           "effective_resistances", "spectral_error", "spectral_error_estimate"]
