"""A linear probe on the strong model's frozen activations, fit to the weak labels."""

from __future__ import annotations

from typing import cast

import numpy as np
import torch

from aar.w2s.methods.base import MethodContext
from aar.w2s.methods.common import balanced_confident

NAME = "probe"
DESCRIPTION = (
    "Logistic-regression probe on the frozen strong model's features (prior score and hidden states), "
    "fit to the teacher's labels (hard or soft), optionally on its most confident `keep` share; "
    "`l2` is the ridge penalty."
)
PARAMS = {"l2": 1.0, "keep": 1.0, "soft": False}


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float, steps: int = 200) -> tuple[np.ndarray, float]:
    """L2-regularised logistic regression (L-BFGS); returns weights and bias for standardised ``x``."""
    xt = torch.from_numpy(x).float()
    yt = torch.from_numpy(y).float()
    w = torch.zeros(x.shape[1], requires_grad=True)
    b = torch.zeros(1, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=0.5, max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        z = xt @ w + b
        loss = torch.nn.functional.binary_cross_entropy_with_logits(z, yt) + l2 * (w @ w) / len(y)
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach().numpy().astype(float), float(b.detach())


def run(ctx: MethodContext, l2: float, keep: float, soft: bool) -> np.ndarray:
    """Probe predictions on ``ctx.predict_inputs``."""
    if l2 < 0:
        raise ValueError("l2 must be non-negative")
    model = ctx.strong_model()
    feats = model.features(ctx.unlabelled)
    mu, sd = feats.mean(0), feats.std(0) + 1e-6
    p = ctx.teacher.of(ctx.unlabelled)
    idx = balanced_confident(p, keep) if keep < 1 else np.arange(len(p))
    y = p[idx] if soft else (p[idx] > 0.5).astype(float)
    w, b = fit_logistic((feats[idx] - mu) / sd, y, l2)
    z = ((model.features(ctx.predict_inputs) - mu) / sd) @ w + b
    return cast(np.ndarray, 1 / (1 + np.exp(-np.clip(z, -50, 50))))
