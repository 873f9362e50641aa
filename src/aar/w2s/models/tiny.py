"""A tiny decoder-only transformer (pre-LN GPT, learned positions) and its character tokenizer.

Short and readable on purpose, in the spirit of nanoGPT. The built-in testbeds pretrain these
from scratch on generated corpora; methods fine-tune them through :mod:`aar.w2s.models.judge`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, cast

import torch
import torch.nn as nn
import torch.nn.functional as F

VOCAB = "\x00\x01\x02 0123456789abcdefghijklmnopqrstuvwxyz+-*=;:?.,>()|'/_"
PAD, BOS, EOS = 0, 1, 2


class CharTokenizer:
    """Maps the fixed character vocabulary to ids; PAD=0, BOS=1, EOS=2."""

    def __init__(self, vocab: str = VOCAB) -> None:
        self.vocab = vocab
        self.stoi = {c: i for i, c in enumerate(vocab)}

    @property
    def size(self) -> int:
        """Vocabulary size."""
        return len(self.vocab)

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``; raises on characters outside the vocabulary."""
        try:
            return [self.stoi[c] for c in text]
        except KeyError as e:
            raise ValueError(f"character {e.args[0]!r} is not in the tokenizer vocabulary") from None

    def decode(self, ids: list[int]) -> str:
        """Text of ``ids``, stopping at EOS and skipping PAD/BOS."""
        out = []
        for i in ids:
            if i == EOS:
                break
            if i > EOS:
                out.append(self.vocab[i])
        return "".join(out)


@dataclass(frozen=True)
class GPTConfig:
    """Shape of a tiny GPT."""

    n_layer: int = 4
    n_head: int = 4
    d_model: int = 64
    block_size: int = 48
    vocab_size: int = len(VOCAB)
    dropout: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


class Block(nn.Module):
    """Pre-LN transformer block: causal self-attention then MLP, each with a residual."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.n_head = cfg.n_head
        self.ln1 = nn.LayerNorm(cfg.d_model)
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.ln2 = nn.LayerNorm(cfg.d_model)
        self.mlp = nn.Sequential(
            nn.Linear(cfg.d_model, 4 * cfg.d_model), nn.GELU(), nn.Linear(4 * cfg.d_model, cfg.d_model)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block to a (batch, time, d_model) tensor."""
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=2)
        q, k, v = (z.view(b, t, self.n_head, d // self.n_head).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(y.transpose(1, 2).reshape(b, t, d))
        return cast(torch.Tensor, x + self.mlp(self.ln2(x)))


class GPT(nn.Module):
    """Token + position embeddings, a stack of blocks, a final norm and a tied LM head."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.tok = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.pos = nn.Embedding(cfg.block_size, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.apply(self._init)
        for name, p in self.named_parameters():
            if name.endswith("proj.weight") or name.endswith("mlp.2.weight"):
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.02)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, 0.0, 0.02)

    def hidden(self, idx: torch.Tensor) -> torch.Tensor:
        """Final-layer hidden states, shape (batch, time, d_model)."""
        t = idx.shape[1]
        if t > self.cfg.block_size:
            raise ValueError(f"sequence of {t} tokens exceeds block size {self.cfg.block_size}")
        x = self.tok(idx) + self.pos(torch.arange(t, device=idx.device))
        for blk in self.blocks:
            x = blk(x)
        return cast(torch.Tensor, self.ln_f(x))

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """Next-token logits, shape (batch, time, vocab)."""
        return self.hidden(idx) @ self.tok.weight.T

    def n_params(self) -> int:
        """Number of parameters."""
        return sum(p.numel() for p in self.parameters())
