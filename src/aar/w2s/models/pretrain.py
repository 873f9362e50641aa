"""Pretraining a tiny GPT on (prompt, answer) pairs, loss on the answer and end token only.

Recipe (measured to work at this scale): AdamW (0.9, 0.98), linear warmup then cosine decay,
gradient clipping at 1, one torch thread per process.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence

import torch

from aar.w2s.models.judge import encode_pairs, sequence_logprob
from aar.w2s.models.tiny import GPT, CharTokenizer, GPTConfig


def lr_at(step: int, total: int, peak: float, warmup: int) -> float:
    """Learning rate at ``step``: linear warmup to ``peak``, cosine decay to 10% of it."""
    if step < warmup:
        return peak * (step + 1) / warmup
    frac = (step - warmup) / max(1, total - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, frac))))


def pretrain(
    cfg: GPTConfig,
    corpus: Sequence[tuple[str, str]],
    steps: int,
    batch_size: int = 128,
    lr: float = 3e-3,
    seed: int = 0,
    on_step: Callable[[int, float], None] | None = None,
) -> GPT:
    """Train a fresh GPT of shape ``cfg`` on ``corpus`` for ``steps`` steps; deterministic per seed."""
    torch.manual_seed(seed)
    rng = random.Random(seed)
    tok = CharTokenizer()
    model = GPT(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.98), weight_decay=0.01)
    warmup = max(1, steps // 20)
    model.train()
    for step in range(steps):
        batch = [corpus[rng.randrange(len(corpus))] for _ in range(batch_size)]
        ids, mask = encode_pairs(tok, [p for p, _ in batch], [a for _, a in batch], cfg.block_size)
        loss = -(sequence_logprob(model, ids, mask).sum() / mask[:, 1:].sum())
        for g in opt.param_groups:
            g["lr"] = lr_at(step, steps, lr, warmup)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if on_step is not None:
            on_step(step, loss.item())
    model.eval()
    return model
