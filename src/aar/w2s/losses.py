"""Small loss classes for fine-tuning on (possibly soft, possibly weak) targets.

Each loss maps (logits, targets, progress) to per-example losses, where targets are P(label=1) in [0, 1]
and ``progress`` in [0, 1] is the fraction of training done (some losses schedule on it). Modelled
on the loss classes of the OpenAI weak-to-strong code.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class XentLoss:
    """Binary cross-entropy against the targets (soft targets are kept soft)."""

    name = "xent"

    def __call__(self, logits: torch.Tensor, targets: torch.Tensor, progress: float) -> torch.Tensor:
        """Per-example binary cross-entropy."""
        return F.binary_cross_entropy_with_logits(logits, targets, reduction="none")


class AuxConfidenceLoss:
    """Burns et al. (2023) auxiliary confidence loss.

    The target mixes the weak label with the student's own hardened prediction:
    ``(1 - alpha) * weak + alpha * hard(student)``, where ``alpha`` ramps linearly from 0 to
    ``alpha_max`` over the first ``warmup`` fraction of training. The student's threshold is set
    so its hard labels keep the weak labels' class balance, which stops it collapsing to one class.
    """

    name = "aux_conf"

    def __init__(self, alpha_max: float = 0.75, warmup: float = 0.2) -> None:
        if not 0.0 <= alpha_max <= 1.0:
            raise ValueError(f"alpha_max must be in [0, 1], got {alpha_max}")
        self.alpha_max, self.warmup = alpha_max, warmup

    def __call__(self, logits: torch.Tensor, targets: torch.Tensor, progress: float) -> torch.Tensor:
        """Per-example cross-entropy against the mixed target."""
        alpha = self.alpha_max * min(1.0, progress / self.warmup) if self.warmup > 0 else self.alpha_max
        probs = torch.sigmoid(logits.detach())
        share = float((targets > 0.5).float().mean())
        thresh = torch.quantile(probs, 1.0 - share) if 0.0 < share < 1.0 else torch.tensor(0.5)
        hard = (probs >= thresh).float()
        mixed = (1 - alpha) * targets + alpha * hard
        return F.binary_cross_entropy_with_logits(logits, mixed, reduction="none")
