"""A composable weak-to-strong recipe: the ingredients of the method library behind one set of knobs.

Every ingredient defaults to "off", so ``recipe`` with default parameters is vanilla W2S. The
ingredients, in the order they apply:

1. targets: the teacher's log-odds divided by ``temperature``, plus ``prior_weight`` times the strong
   model's own zero-shot log-odds (a noisy-channel / product-of-experts fusion of the two views);
   hard (thresholded) unless ``soft``;
2. ``keep``: train only on that share of the most confident fused targets, per class;
3. ``weight_power``: weight each example's loss by ``|2p - 1| ** weight_power`` (reweighting);
4. ``aux_alpha``: the auxiliary confidence loss (Burns et al., 2023) instead of cross-entropy;
5. ``curriculum``: first fine-tune on the most confident half, then continue on the training set;
6. ``rounds``: self-training rounds relabelling with the student's ``self_keep`` most confident share;
7. ``ensemble``: average the log-odds of that many students (different shuffles and seeds);
8. ``post_prior``: add that multiple of the strong model's zero-shot log-odds at prediction time.

``prior_gate`` (selective elicitation) then gates the student: each input is predicted by the strong
prior where the prior is confident, and by the student trained as above (on the fused targets of
step 1) on the ``prior_gate`` share of inputs where the prior is least confident (the threshold is
that quantile of the prior's |log-odds| on the unlabelled inputs). It fits domains where the prior is
sharp on what it knows and systematically misled where it is unsure. It uses no teacher output on
test inputs: under the original protocol the teacher labels ``train_unlabel`` only, so the gate's
fallback is a trained student, not a test-time ensemble with the weak model.
"""

from __future__ import annotations

from dataclasses import replace
from typing import cast

import numpy as np

from aar.w2s.data import Example
from aar.w2s.losses import AuxConfidenceLoss, XentLoss
from aar.w2s.methods.base import MethodContext
from aar.w2s.methods.common import balanced_confident
from aar.w2s.models.base import JudgeModel, predict_proba
from aar.w2s.train import Loss, finetune

NAME = "recipe"
DESCRIPTION = (
    "Composable recipe: teacher targets fused with the strong prior (prior_weight), hard or soft, "
    "confidence filtering (keep) and reweighting (weight_power), aux confidence loss (aux_alpha), "
    "curriculum, self-training (rounds), student ensembles, prior mixing at prediction (post_prior), "
    "and prior_gate: the prior where it is confident, the trained student elsewhere."
)
PARAMS = {
    "soft": False,
    "temperature": 1.0,
    "prior_weight": 0.0,
    "keep": 1.0,
    "weight_power": 0.0,
    "aux_alpha": 0.0,
    "curriculum": False,
    "rounds": 0,
    "self_keep": 0.6,
    "ensemble": 1,
    "post_prior": 0.0,
    "prior_gate": 0.0,
}
MAX_TRAININGS = 4  # ensemble * (1 + rounds): keeps one run within a few vanilla runs of time


def logit(p: np.ndarray) -> np.ndarray:
    """Log-odds of probabilities, clipped away from 0 and 1."""
    p = np.clip(np.asarray(p, dtype=float), 1e-6, 1 - 1e-6)
    return cast(np.ndarray, np.log(p / (1 - p)))


def sigmoid(z: np.ndarray) -> np.ndarray:
    """Inverse of :func:`logit`."""
    return cast(np.ndarray, 1 / (1 + np.exp(-np.clip(z, -50, 50))))


def prior_logits(model: JudgeModel, examples: list[Example]) -> np.ndarray:
    """The strong model's zero-shot log-odds, symmetrised over option order for pairwise examples."""
    z = model.zero_shot_logits(examples)
    if any(e.pairwise for e in examples):
        swapped = [replace(e, options=e.options[::-1]) if e.pairwise else e for e in examples]
        pair = np.array([e.pairwise for e in examples])
        z = np.where(pair, (z - model.zero_shot_logits(swapped)) / 2, z)
    return z


def gate(base: JudgeModel, ctx: MethodContext, share: float, student_probs: np.ndarray) -> np.ndarray:
    """Selective elicitation: the prior where it is confident, ``student_probs`` on the ``share`` of
    inputs where it is least confident (threshold taken on the unlabelled inputs, not the test)."""
    threshold = np.quantile(np.abs(prior_logits(base, ctx.unlabelled)), share)
    z = prior_logits(base, ctx.predict_inputs)
    return sigmoid(np.where(np.abs(z) >= threshold, z, logit(student_probs)))


def _check(
    temperature: float, keep: float, self_keep: float, rounds: int, ensemble: int, prior_gate: float
) -> None:
    if not 0 <= prior_gate < 1:
        raise ValueError("prior_gate must be in [0, 1)")
    if temperature <= 0:
        raise ValueError("temperature must be positive")
    if not (0 < keep <= 1 and 0 < self_keep <= 1):
        raise ValueError("keep and self_keep must be in (0, 1]")
    if rounds < 0 or ensemble < 1 or ensemble * (1 + rounds) > MAX_TRAININGS:
        raise ValueError(f"need rounds >= 0, ensemble >= 1 and ensemble * (1 + rounds) <= {MAX_TRAININGS}")


def _student(
    ctx: MethodContext,
    xs: list[Example],
    targets: np.ndarray,
    conf: np.ndarray,
    weights: np.ndarray | None,
    loss: Loss,
    curriculum: bool,
    seed: int,
) -> JudgeModel:
    """One student; with ``curriculum`` it first sees the half most confident under ``conf``."""
    model = ctx.strong_model()
    if curriculum:
        easy = balanced_confident(conf, 0.5)
        finetune(model, [xs[i] for i in easy], targets[easy], ctx.train_config, seed=seed + 7)
    return finetune(model, xs, targets, ctx.train_config, loss=loss, weights=weights, seed=seed)


def run(
    ctx: MethodContext,
    soft: bool,
    temperature: float,
    prior_weight: float,
    keep: float,
    weight_power: float,
    aux_alpha: float,
    curriculum: bool,
    rounds: int,
    self_keep: float,
    ensemble: int,
    post_prior: float,
    prior_gate: float,
) -> np.ndarray:
    """Train the composed recipe and return P(label=1) on ``ctx.predict_inputs``."""
    _check(temperature, keep, self_keep, rounds, ensemble, prior_gate)
    xs = ctx.unlabelled
    # the prior model exists exactly when an ingredient reads it (the `base is not None` tests below
    # restate that for the type checker)
    base = ctx.strong_model() if (prior_weight or post_prior or prior_gate) else None
    fused = logit(ctx.teacher.of(xs)) / temperature
    if prior_weight and base is not None:
        fused = fused + prior_weight * prior_logits(base, xs)
    p = sigmoid(fused)
    idx = balanced_confident(p, keep) if keep < 1 else np.arange(len(xs))
    train_x = [xs[i] for i in idx]
    targets = p[idx] if soft else (p[idx] > 0.5).astype(float)
    weights = np.abs(2 * p[idx] - 1) ** weight_power + 1e-3 if weight_power > 0 else None
    loss = AuxConfidenceLoss(alpha_max=aux_alpha) if aux_alpha > 0 else XentLoss()
    out = np.zeros(len(ctx.predict_inputs))
    for k in range(ensemble):
        seed = ctx.seed * 1000 + 101 * k
        model = _student(ctx, train_x, targets, p[idx], weights, loss, curriculum, seed)
        for r in range(rounds):
            q = predict_proba(model, xs)
            keep_idx = balanced_confident(q, self_keep)
            model = _student(
                ctx,
                [xs[i] for i in keep_idx],
                (q[keep_idx] > 0.5).astype(float),
                q[keep_idx],
                None,
                XentLoss(),
                False,
                seed + r + 1,
            )
        probs = predict_proba(model, ctx.predict_inputs)
        if ensemble == 1 and not post_prior:
            # exactly the student's output (vanilla when every ingredient is off)
            return gate(base, ctx, prior_gate, probs) if prior_gate and base is not None else probs
        out += logit(probs) / ensemble
    if post_prior and base is not None:
        out = out + post_prior * prior_logits(base, ctx.predict_inputs)
    return gate(base, ctx, prior_gate, sigmoid(out)) if prior_gate and base is not None else sigmoid(out)
