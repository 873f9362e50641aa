"""The fine-tuning loop shared by weak, ceiling and transfer runs.

It trains any :class:`~aar.w2s.models.base.JudgeModel` on examples with soft targets, optional
per-example weights, and a loss from :mod:`aar.w2s.losses`. Deterministic given the seed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from aar.w2s.data import Example
from aar.w2s.losses import XentLoss
from aar.w2s.models.base import JudgeModel


@dataclass(frozen=True)
class TrainConfig:
    """Fine-tuning hyperparameters (the protocol fixes epochs: more epochs overfit weak labels)."""

    epochs: int = 1
    lr: float = 5e-4
    batch_size: int = 32
    weight_decay: float = 0.0
    # Optional, for large models (the Hugging Face backend). At their defaults the loop behaves
    # exactly as without them, and :meth:`to_dict` leaves them out so cache keys do not change.
    grad_accum_steps: int = 1  # split each batch of ``batch_size`` into this many micro-batches
    warmup_frac: float = 0.0  # share of optimizer steps with linear warmup before the linear decay

    def __post_init__(self) -> None:
        if self.grad_accum_steps < 1 or self.grad_accum_steps > self.batch_size:
            raise ValueError(f"grad_accum_steps must be in [1, batch_size], got {self.grad_accum_steps}")
        if not 0.0 <= self.warmup_frac < 1.0:
            raise ValueError(f"warmup_frac must be in [0, 1), got {self.warmup_frac}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (the optional large-model fields only where they differ from their defaults)."""
        d = asdict(self)
        for k in _OPTIONAL_DEFAULTS:
            if d[k] == _OPTIONAL_DEFAULTS[k]:
                del d[k]
        return d


_OPTIONAL_DEFAULTS = {"grad_accum_steps": 1, "warmup_frac": 0.0}


Loss = Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]


def finetune(
    model: JudgeModel,
    examples: Sequence[Example],
    targets: Sequence[float] | np.ndarray,
    cfg: TrainConfig = TrainConfig(),
    loss: Loss | None = None,
    weights: Sequence[float] | np.ndarray | None = None,
    seed: int = 0,
) -> JudgeModel:
    """Fine-tune ``model`` in place on (example, target) pairs and return it.

    ``targets`` are P(label=1) in [0, 1]; ``weights`` (non-negative) scale each example's loss
    in a weighted batch mean. One loop for every model: ``cfg.grad_accum_steps`` splits each batch
    (the same shuffled batches) into micro-batches whose gradients add up to the batch's, and
    ``cfg.warmup_frac`` adds a linear warmup before the linear decay.
    """
    t = np.asarray(targets, dtype=np.float32)
    if len(t) != len(examples):
        raise ValueError(f"finetune: {len(t)} targets for {len(examples)} examples")
    if len(examples) == 0:
        raise ValueError("finetune: no training examples")
    if not np.all(np.isfinite(t)) or t.min() < 0 or t.max() > 1:
        raise ValueError("finetune: targets must be finite probabilities in [0, 1]")
    w = None if weights is None else np.asarray(weights, dtype=np.float32)
    if w is not None and (len(w) != len(t) or w.min() < 0 or not np.all(np.isfinite(w))):
        raise ValueError("finetune: weights must be finite, non-negative, one per example")
    loss_fn = loss or XentLoss()
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    params = list(model.trainable_parameters())
    opt = torch.optim.AdamW(params, lr=cfg.lr, betas=(0.9, 0.98), weight_decay=cfg.weight_decay)
    n = len(examples)
    total = (n + cfg.batch_size - 1) // cfg.batch_size * cfg.epochs
    # Configurations without the large-model options keep the exact arithmetic their cached results
    # were computed with (the two formulas of the schedule and of the batch mean differ only in rounding).
    plain = cfg.grad_accum_steps == 1 and cfg.warmup_frac == 0
    step = 0
    model.train(True)
    for _ in range(cfg.epochs):
        order = torch.randperm(n, generator=gen).tolist()
        for i in range(0, n, cfg.batch_size):
            idx = order[i : i + cfg.batch_size]
            for g in opt.param_groups:
                g["lr"] = cfg.lr * (1 - step / total) if plain else _lr_at(cfg, step, total)
            opt.zero_grad(set_to_none=True)
            micro = -(-len(idx) // cfg.grad_accum_steps)
            denom = None if plain else _batch_weight(w, idx)
            for k in range(0, len(idx), micro):
                part = idx[k : k + micro]
                logits = model.logits([examples[j] for j in part])
                per = loss_fn(logits, torch.from_numpy(t[part]), step / total)
                _batch_loss(per, w, part, denom).backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            step += 1
    model.train(False)
    return model


def _lr_at(cfg: TrainConfig, step: int, total: int) -> float:
    """Linear warmup over ``warmup_frac`` of the steps, then linear decay to 0 (HF's linear schedule)."""
    warm = int(np.ceil(cfg.warmup_frac * total))
    if step < warm:
        return cfg.lr * (step + 1) / warm
    return cfg.lr * max(0.0, (total - step) / max(1, total - warm))


def _batch_weight(w: np.ndarray | None, idx: list[int]) -> float:
    """The divisor that makes a batch's micro-batch losses add up to its (weighted) mean."""
    return float(len(idx)) if w is None else max(float(w[idx].sum()), 1e-8)


def _batch_loss(
    per: torch.Tensor, w: np.ndarray | None, part: list[int], denom: float | None
) -> torch.Tensor:
    """One micro-batch's share of its batch's (weighted) mean loss.

    ``denom`` is ``None`` when the micro-batch is the whole batch of a plain configuration: then the
    mean is taken directly (the arithmetic of the cached results). Otherwise the micro-batch's sum over
    the batch's total weight from :func:`_batch_weight`, so the gradients of the micro-batches add up to
    the batch's. Losses that use batch statistics (``aux_conf``'s threshold) see micro-batches.
    """
    if denom is None:
        if w is None:
            return per.mean()
        bw = torch.from_numpy(w[part])
        return (per * bw).sum() / bw.sum().clamp_min(1e-8)
    value = per.sum() if w is None else (per * torch.from_numpy(w[part])).sum()
    return value / denom
