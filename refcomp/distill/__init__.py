"""Knowledge distillation (Hinton, Vinyals & Dean 2015; seeds 000, 002, 004).

- :func:`softmax`, :func:`log_softmax`: the softened softmax at temperature T;
- :func:`distillation_loss`: ``alpha T^2 KL(p_T || q_T) + (1 - alpha) CE``;
- :func:`distillation_grad`: its closed-form gradient with respect to the
  student logits, for external training loops
  (``examples/distill_torch.py``).

Arithmetic in :mod:`refcomp.distill.loss`; see ``docs/seed001.md``.
"""

from .loss import distillation_grad, distillation_loss, log_softmax, softmax

__all__ = ["softmax", "log_softmax", "distillation_loss", "distillation_grad"]
