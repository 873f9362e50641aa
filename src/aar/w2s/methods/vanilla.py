"""Vanilla weak-to-strong: fine-tune the strong model on the teacher's hard labels."""

from typing import Any

import numpy as np

from aar.w2s.methods.base import MethodContext
from aar.w2s.methods.common import predict, train_student

NAME = "vanilla"
DESCRIPTION = "Fine-tune the strong model on the weak teacher's hard (thresholded) labels."
PARAMS: dict[str, Any] = {}


def run(ctx: MethodContext) -> np.ndarray:
    """Train on hard weak labels of the unlabelled split; predict."""
    hard = (ctx.teacher.of(ctx.unlabelled) > 0.5).astype(float)
    return predict(train_student(ctx, ctx.unlabelled, hard), ctx)
