"""Soft-label cross-entropy: keep the teacher's confidence in the targets."""

import numpy as np

from aar.w2s.methods.base import MethodContext
from aar.w2s.methods.common import predict, train_student

NAME = "soft"
DESCRIPTION = "Fine-tune on the teacher's soft probabilities (sharpened or flattened by a temperature)."
PARAMS = {"temperature": 1.0}


def run(ctx: MethodContext, temperature: float) -> np.ndarray:
    """Targets are sigmoid(logit(teacher) / temperature)."""
    if temperature <= 0:
        raise ValueError("temperature must be positive")
    p = np.clip(ctx.teacher.of(ctx.unlabelled), 1e-6, 1 - 1e-6)
    targets = 1 / (1 + np.exp(-np.log(p / (1 - p)) / temperature))
    return predict(train_student(ctx, ctx.unlabelled, targets), ctx)
