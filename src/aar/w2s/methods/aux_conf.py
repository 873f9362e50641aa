"""Auxiliary confidence loss (Burns et al., 2023): let the student overrule the teacher."""

import numpy as np

from aar.w2s.losses import AuxConfidenceLoss
from aar.w2s.methods.base import MethodContext
from aar.w2s.methods.common import predict, train_student

NAME = "aux_conf"
DESCRIPTION = "Mix hard weak labels with the student's own hardened predictions (weight ramps to alpha)."
PARAMS = {"alpha": 0.75, "warmup": 0.2}


def run(ctx: MethodContext, alpha: float, warmup: float) -> np.ndarray:
    """Train with the auxiliary confidence loss on hard weak labels."""
    hard = (ctx.teacher.of(ctx.unlabelled) > 0.5).astype(float)
    loss = AuxConfidenceLoss(alpha_max=alpha, warmup=warmup)
    return predict(train_student(ctx, ctx.unlabelled, hard, loss=loss), ctx)
