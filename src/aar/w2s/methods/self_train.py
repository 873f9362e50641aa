"""Self-training (bootstrapping): relabel with the student's own confident predictions, retrain."""

import numpy as np

from aar.w2s.methods.base import MethodContext
from aar.w2s.methods.common import balanced_confident, predict, train_student
from aar.w2s.models.base import predict_proba

NAME = "self_train"
DESCRIPTION = (
    "Train on hard weak labels, then for `rounds` rounds retrain a fresh strong model on the "
    "previous student's most confident `keep` share of its own labels."
)
PARAMS = {"rounds": 1, "keep": 0.6}


def run(ctx: MethodContext, rounds: int, keep: float) -> np.ndarray:
    """Bootstrapped student predictions."""
    if rounds < 0 or rounds > 5:
        raise ValueError("rounds must be between 0 and 5")
    labels = (ctx.teacher.of(ctx.unlabelled) > 0.5).astype(float)
    model = train_student(ctx, ctx.unlabelled, labels)
    for r in range(rounds):
        p = predict_proba(model, ctx.unlabelled)
        idx = balanced_confident(p, keep)
        model = train_student(
            ctx, [ctx.unlabelled[i] for i in idx], (p[idx] > 0.5).astype(np.float64), seed_offset=r + 1
        )
    return predict(model, ctx)
