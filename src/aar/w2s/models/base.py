"""The small backend interface every method uses, whatever the model behind it.

A :class:`JudgeModel` turns judgment examples into one logit each (log-odds that the label is
1), differentiably, so the shared fine-tuning loop in :mod:`aar.w2s.train` can train it. The
built-in tiny transformers and the Hugging Face backend both implement it, so every method runs
on both unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from aar.w2s.data import Example


@runtime_checkable
class JudgeModel(Protocol):
    """A model that scores binary judgments and can be fine-tuned."""

    def logits(self, examples: Sequence[Example]) -> torch.Tensor:
        """Differentiable log-odds of label 1, shape (len(examples),)."""
        ...

    def zero_shot_logits(self, examples: Sequence[Example]) -> np.ndarray:
        """Log-odds from the pretrained prior alone (no fine-tuning, no labels)."""
        ...

    def features(self, examples: Sequence[Example]) -> np.ndarray:
        """Frozen features for probes, shape (len(examples), d)."""
        ...

    def prepare(self, unlabelled: Sequence[Example]) -> None:
        """Label-free set-up before fine-tuning (e.g. centring the prior's scores)."""
        ...

    def trainable_parameters(self) -> Iterator[torch.nn.Parameter]:
        """Parameters the fine-tuning loop updates."""
        ...

    def clone(self) -> JudgeModel:
        """An independent copy (fine-tuning the copy leaves this one unchanged)."""
        ...

    def train(self, mode: bool = True) -> object:
        """Switch train/eval mode."""
        ...


def predict_proba(model: JudgeModel, examples: Sequence[Example], batch_size: int = 256) -> np.ndarray:
    """P(label=1) for each example, batched, without gradients."""
    model.train(False)
    out = []
    with torch.no_grad():
        for i in range(0, len(examples), batch_size):
            out.append(torch.sigmoid(model.logits(examples[i : i + batch_size])).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0)
