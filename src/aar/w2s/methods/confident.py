"""Train only on the teacher's most confident labels."""

import numpy as np

from aar.w2s.methods.base import MethodContext
from aar.w2s.methods.common import balanced_confident, predict, train_student

NAME = "confident"
DESCRIPTION = "Fine-tune on hard weak labels of only the `keep` share the teacher is most confident about."
PARAMS = {"keep": 0.5}


def run(ctx: MethodContext, keep: float) -> np.ndarray:
    """Keep the most confident share per class, train on those hard labels."""
    p = ctx.teacher.of(ctx.unlabelled)
    idx = balanced_confident(p, keep)
    examples = [ctx.unlabelled[i] for i in idx]
    return predict(train_student(ctx, examples, (p[idx] > 0.5).astype(float)), ctx)
