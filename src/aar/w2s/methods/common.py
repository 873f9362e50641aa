"""Helpers shared by the shipped methods."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from aar.w2s.data import Example
from aar.w2s.losses import XentLoss
from aar.w2s.methods.base import MethodContext
from aar.w2s.models.base import JudgeModel, predict_proba
from aar.w2s.train import Loss, finetune


def train_student(
    ctx: MethodContext,
    examples: Sequence[Example],
    targets: np.ndarray,
    loss: Loss | None = None,
    weights: np.ndarray | None = None,
    seed_offset: int = 0,
) -> JudgeModel:
    """Fine-tune a fresh strong model on (examples, targets) with the protocol's training config."""
    model = ctx.strong_model()
    return finetune(
        model,
        list(examples),
        targets,
        ctx.train_config,
        loss=loss or XentLoss(),
        weights=weights,
        seed=ctx.seed * 1000 + seed_offset,
    )


def balanced_confident(probs: np.ndarray, keep: float) -> np.ndarray:
    """Indices of the ``keep`` most confident examples, taken per predicted class in proportion."""
    if not 0.0 < keep <= 1.0:
        raise ValueError(f"keep must be in (0, 1], got {keep}")
    hard = probs > 0.5
    chosen = []
    for cls in (True, False):
        idx = np.flatnonzero(hard == cls)
        if idx.size == 0:
            continue
        conf = np.abs(probs[idx] - 0.5)
        n = max(1, round(keep * idx.size))
        chosen.append(idx[np.argsort(-conf, kind="stable")[:n]])
    return np.sort(np.concatenate(chosen)) if chosen else np.arange(0)


def predict(model: JudgeModel, ctx: MethodContext) -> np.ndarray:
    """The model's P(label=1) on the inputs the context asks about."""
    return predict_proba(model, ctx.predict_inputs)
