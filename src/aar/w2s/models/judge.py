"""Judgment heads on the tiny LMs: the LM's own likelihood of the stated answer.

A one-option example (is this answer correct?) gets the logit ``a * (log P(answer | prompt) - c)
+ b``, where ``c`` is the median score on unlabelled inputs (set without labels, so the prior is
centred). A two-option example (is A better than B?) gets ``a * (log P(A) - log P(B)) + b``.
Fine-tuning updates the whole LM and ``a``, ``b``. A head on a hidden state of a token the LM never
saw in pretraining carries no signal at this scale; the likelihood head elicits what the LM knows.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Iterator, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from aar.w2s.data import Example
from aar.w2s.models.tiny import BOS, EOS, GPT, PAD, CharTokenizer
from aar.w2s.models.trie import prefix_trie, trie_hidden, trie_logprob


def encode_pairs(
    tok: CharTokenizer, prompts: Sequence[str], answers: Sequence[str], block_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Batch ``BOS prompt answer EOS`` sequences; returns (ids, mask of answer+EOS targets).

    Prompts too long for the block are truncated from the left (the answer is always kept).
    """
    seqs, masks = [], []
    for p, a in zip(prompts, answers, strict=True):
        seq, start = encode_sequence(tok, p, a, block_size)
        seqs.append(seq)
        masks.append([0] * (1 + start) + [1] * (len(seq) - 1 - start))
    t = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), t), PAD, dtype=torch.long)
    mask = torch.zeros((len(seqs), t), dtype=torch.float32)
    for i, (s, m) in enumerate(zip(seqs, masks, strict=True)):
        ids[i, : len(s)] = torch.tensor(s)
        mask[i, : len(m)] = torch.tensor(m, dtype=torch.float32)
    return ids, mask


def encode_sequence(tok: CharTokenizer, prompt: str, answer: str, block_size: int) -> tuple[list[int], int]:
    """``BOS prompt answer EOS`` token ids and the prompt's kept length (see :func:`encode_pairs`).

    The answer's tokens and the end token are the scored targets: they follow input positions
    ``start ..`` where ``start`` is the returned prompt length.
    """
    pi, ai = tok.encode(prompt), [*tok.encode(answer), EOS]
    room = block_size - len(ai)
    if room < 1:
        raise ValueError(f"answer of {len(ai)} tokens does not fit block size {block_size}")
    pi = pi[-room:]
    return [BOS, *pi, *ai], len(pi)


def sequence_logprob(gpt: GPT, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Sum of log P(token) over masked target positions, per row."""
    logits = gpt(ids[:, :-1])
    logp = F.log_softmax(logits, dim=-1).gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
    return (logp * mask[:, 1:]).sum(dim=1)


# (weights digest, inputs digest) -> the median one-option score (see TinyJudge.prepare)
_CENTERS: dict[tuple[str, str], float] = {}


def _inputs_digest(examples: Sequence[Example]) -> str:
    """sha256 of the examples' prompts and options, in order."""
    h = hashlib.sha256()
    for e in examples:
        h.update(repr((e.prompt, e.options)).encode())
    return h.hexdigest()


class TinyJudge(nn.Module):
    """A pretrained tiny GPT with the likelihood head; implements :class:`JudgeModel`."""

    center: torch.Tensor  # a buffer: the median one-option score on unlabelled inputs (see prepare)

    def __init__(self, gpt: GPT, tok: CharTokenizer | None = None) -> None:
        super().__init__()
        self.gpt = gpt
        self.tok = tok or CharTokenizer()
        self.scale = nn.Parameter(torch.tensor(1.0))
        self.bias = nn.Parameter(torch.tensor(0.0))
        self.register_buffer("center", torch.tensor(0.0))
        self._codes: dict[tuple[str, str], tuple[list[int], int]] = {}

    def _encoded(self, prompt: str, answer: str) -> tuple[list[int], int]:
        """:func:`encode_sequence` of one (prompt, answer), memoised (methods score the same inputs often)."""
        key = (prompt, answer)
        hit = self._codes.get(key)
        if hit is None:
            hit = self._codes[key] = encode_sequence(self.tok, prompt, answer, self.gpt.cfg.block_size)
        return hit

    def _scores(self, examples: Sequence[Example]) -> torch.Tensor:
        seqs, starts, rows = [], [], []
        for ex in examples:
            for opt in ex.options:
                seq, start = self._encoded(ex.prompt, opt)
                seqs.append(seq)
                starts.append(start)
            rows.append(len(ex.options))
        # sequence_logprob of encode_pairs' batch, each shared prompt prefix computed once
        lp = trie_logprob(self.gpt, prefix_trie(seqs, starts))
        out, i = [], 0
        for n in rows:
            out.append(lp[i] if n == 1 else lp[i] - lp[i + 1])
            i += n
        return torch.stack(out)

    def raw_scores(self, examples: Sequence[Example]) -> torch.Tensor:
        """Uncentred prior scores: log P(answer), or log P(A) - log P(B) for pairs."""
        return self._scores(examples)

    def logits(self, examples: Sequence[Example]) -> torch.Tensor:
        """Differentiable log-odds of label 1."""
        s = self._scores(examples)
        pairwise = torch.tensor([ex.pairwise for ex in examples])
        centred = torch.where(pairwise, s, s - self.center)
        return self.scale * centred + self.bias

    def zero_shot_logits(self, examples: Sequence[Example]) -> np.ndarray:
        """The pretrained prior's centred scores (call :meth:`prepare` first for one-option tasks)."""
        self.train(False)
        with torch.no_grad():
            out = [self._scores(examples[i : i + 256]) for i in range(0, len(examples), 256)]
        s = torch.cat(out).numpy()
        pairwise = np.array([ex.pairwise for ex in examples])
        return np.where(pairwise, s, s - float(self.center))

    def features(self, examples: Sequence[Example]) -> np.ndarray:
        """Frozen features: prior score plus last-token and mean hidden states of prompt+option."""
        self.train(False)
        rows = []
        with torch.no_grad():
            for i in range(0, len(examples), 256):
                batch = examples[i : i + 256]
                score = self._scores(batch).unsqueeze(1)
                prompts = [e.prompt for e in batch]
                answers = [e.options[0] for e in batch]
                ids, _mask = encode_pairs(self.tok, prompts, answers, self.gpt.cfg.block_size - 1)
                # gpt.hidden(ids), each shared prefix computed once: every token is an input here
                # (the end token too), so each row gets a dummy last token and nothing is scored
                block = self.gpt.cfg.block_size - 1
                seqs = [
                    encode_sequence(self.tok, p, a, block)[0] for p, a in zip(prompts, answers, strict=True)
                ]
                h = trie_hidden(self.gpt, prefix_trie([[*q, PAD] for q in seqs], [len(q) for q in seqs]))
                valid = (ids != PAD).float().unsqueeze(-1)
                last = h[torch.arange(len(batch)), (ids != PAD).sum(1) - 1]
                mean = (h * valid).sum(1) / valid.sum(1)
                rows.append(torch.cat([score, last, mean], dim=1))
        return torch.cat(rows).numpy()

    def prepare(self, unlabelled: Sequence[Example]) -> None:
        """Centre one-option scores at their median on unlabelled inputs (uses no labels).

        The median is a function of the LM's weights and the inputs only, so it is memoised per
        process under a digest of both: every method run prepares fresh copies of the same strong
        model on the same inputs (some runs several), and a worker serves many runs.
        """
        single = [e for e in unlabelled if not e.pairwise]
        if single:
            key = (self._weights_digest(), _inputs_digest(single))
            center = _CENTERS.get(key)
            if center is None:
                self.train(False)
                with torch.no_grad():
                    s = torch.cat([self._scores(single[i : i + 256]) for i in range(0, len(single), 256)])
                center = _CENTERS[key] = float(s.median())
            self.center.fill_(center)

    def _weights_digest(self) -> str:
        """sha256 of what the scores depend on: the LM's weights, its block size and the vocabulary."""
        h = hashlib.sha256(f"{self.tok.vocab}|{self.gpt.cfg.block_size}".encode())
        for name, t in self.gpt.state_dict().items():
            h.update(f"|{name}:{tuple(t.shape)}:{t.dtype}|".encode())
            h.update(t.detach().contiguous().cpu().numpy().tobytes())
        return h.hexdigest()

    def trainable_parameters(self) -> Iterator[nn.Parameter]:
        """All LM parameters plus the head's scale and bias."""
        return self.parameters()

    def clone(self) -> TinyJudge:
        """Deep copy."""
        return copy.deepcopy(self)
