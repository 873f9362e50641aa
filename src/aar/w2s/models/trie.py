"""Answer log-likelihoods on the tiny GPT, computing each shared prompt prefix once.

A batch of judgment sequences (``BOS prompt answer EOS``, as :func:`aar.w2s.models.judge.encode_pairs`
builds them) repeats a lot of work: both answers of a pairwise example share their prompt, and many
prompts of a batch share their beginning (``u:what color is the ``). In a causal LM the hidden state
of a position depends only on the tokens up to it, so sequences with the same first ``t`` tokens have
the same hidden states there. :func:`prefix_trie` merges those positions into the nodes of a prefix
tree, and :func:`trie_logprob` runs the per-position layers (embeddings, layer norms, projections,
MLPs) once per node instead of once per padded position (on the chat testbed's batches the nodes are
34-44% of the positions). Attention still runs per sequence, on the usual right-padded causal layout
gathered from the nodes, so every position sees exactly the keys it saw before. The last block runs
only at the positions whose next-token distribution is scored (the answer and end token).
:func:`trie_hidden` gives :meth:`GPT.hidden`'s states the same way (the probe's features).

The values are those of :func:`aar.w2s.models.judge.sequence_logprob` and ``GPT.hidden`` on the same
batch: the forward pass computes the same per-row operations (bit-identical on the machines tried);
gradients are equal up to float rounding, since a shared prefix's gradient is summed once instead of
per row. Tests compare both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F

from aar.w2s.models.tiny import GPT, Block


@dataclass(frozen=True)
class PrefixTrie:
    """A batch of sequences as prefix-tree nodes.

    ``tokens``/``positions``: each node's input token and position. ``layout``: (rows, time) node of
    every position of every sequence's input (``seq[:-1]``), right-padded with node 0 (padding is only
    ever attended by padding, under the causal mask). ``first``: for each node, the flat index
    ``row * time + t`` of one position holding it. ``target_nodes``/``target_tokens``/``target_rows``:
    each scored next-token prediction (the node that predicts, the token it should predict, its row and
    input position).
    """

    tokens: torch.Tensor
    positions: torch.Tensor
    layout: torch.Tensor
    first: torch.Tensor
    target_nodes: torch.Tensor
    target_tokens: torch.Tensor
    target_rows: torch.Tensor
    target_positions: torch.Tensor

    @property
    def rows(self) -> int:
        """Number of sequences."""
        return int(self.layout.shape[0])


def prefix_trie(seqs: Sequence[Sequence[int]], starts: Sequence[int]) -> PrefixTrie:
    """The prefix tree of ``seqs``' inputs (each sequence but its last token).

    ``starts[r]``: the first input position of row ``r`` whose next token is scored (for
    ``BOS prompt answer EOS`` that is ``len(prompt)``: the position before the answer's first token).
    """
    if not seqs or len(seqs) != len(starts):
        raise ValueError("prefix_trie: need one start per sequence, and at least one sequence")
    width = max(len(s) for s in seqs) - 1
    if width < 1:
        raise ValueError("prefix_trie: every sequence needs at least two tokens")
    index: dict[tuple[int, int], int] = {}
    tokens: list[int] = []
    positions: list[int] = []
    first: list[int] = []
    layout = [[0] * width for _ in seqs]
    t_nodes: list[int] = []
    t_tokens: list[int] = []
    t_rows: list[int] = []
    t_positions: list[int] = []
    for r, (seq, start) in enumerate(zip(seqs, starts, strict=True)):
        row = layout[r]
        parent = -1
        for t in range(len(seq) - 1):
            key = (parent, seq[t])
            node = index.get(key)
            if node is None:
                node = index[key] = len(tokens)
                tokens.append(seq[t])
                positions.append(t)
                first.append(r * width + t)
            row[t] = node
            parent = node
            if t >= start:
                t_nodes.append(node)
                t_tokens.append(seq[t + 1])
                t_rows.append(r)
                t_positions.append(t)
    long = torch.long
    return PrefixTrie(
        torch.tensor(tokens, dtype=long),
        torch.tensor(positions, dtype=long),
        torch.tensor(layout, dtype=long),
        torch.tensor(first, dtype=long),
        torch.tensor(t_nodes, dtype=long),
        torch.tensor(t_tokens, dtype=long),
        torch.tensor(t_rows, dtype=long),
        torch.tensor(t_positions, dtype=long),
    )


def _attend(blk: Block, x: torch.Tensor, trie: PrefixTrie, out_nodes: torch.Tensor | None) -> torch.Tensor:
    """``blk``'s causal self-attention on the padded layout; the output at each node (or ``out_nodes``)."""
    d = x.shape[1]
    b, t = trie.layout.shape
    # (rows, time, 3d), the layout Block.forward sees (index_select: its backward is one index_add)
    qkv = blk.qkv(blk.ln1(x)).index_select(0, trie.layout.view(-1)).view(b, t, 3 * d)
    q, k, v = qkv.split(d, dim=2)
    q, k, v = (z.view(b, t, blk.n_head, d // blk.n_head).transpose(1, 2) for z in (q, k, v))
    y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    where = trie.first if out_nodes is None else trie.first[out_nodes]
    return y.transpose(1, 2).reshape(b * t, d).index_select(0, where)


def _through(gpt: GPT, trie: PrefixTrie, blocks: list[Block]) -> torch.Tensor:
    """Every node's residual stream after ``blocks`` (from the embeddings), shape (nodes, d)."""
    x = gpt.tok(trie.tokens) + gpt.pos(trie.positions)
    for blk in blocks:
        x = x + blk.proj(_attend(blk, x, trie, None))
        x = x + blk.mlp(blk.ln2(x))
    return cast(torch.Tensor, x)


def trie_hidden(gpt: GPT, trie: PrefixTrie) -> torch.Tensor:
    """:meth:`GPT.hidden` of the rows' inputs, in the padded (rows, time, d) layout.

    Padding positions hold node 0's state (``GPT.hidden`` gives them the padding token's): mask them.
    """
    h: torch.Tensor = gpt.ln_f(_through(gpt, trie, [cast(Block, b) for b in gpt.blocks]))
    b, t = trie.layout.shape
    return h.index_select(0, trie.layout.view(-1)).view(b, t, h.shape[1])


def trie_logprob(gpt: GPT, trie: PrefixTrie) -> torch.Tensor:
    """Per row, the sum of log P(target) over its scored positions (``sequence_logprob``'s value)."""
    blocks = [cast(Block, b) for b in gpt.blocks]
    x = _through(gpt, trie, blocks[:-1])
    # the last block: only the nodes whose next-token distribution is scored
    needed, inverse = torch.unique(trie.target_nodes, return_inverse=True)
    last = blocks[-1]
    h = x[needed] + last.proj(_attend(last, x, trie, needed))
    h = h + last.mlp(last.ln2(h))
    logits = gpt.ln_f(h) @ gpt.tok.weight.T
    logp = F.log_softmax(logits, dim=-1)[inverse, trie.target_tokens]
    # summed like sequence_logprob: over the padded (rows, time) grid, zeros where nothing is scored
    grid = torch.zeros(trie.layout.shape, dtype=logp.dtype)
    return grid.index_put((trie.target_rows, trie.target_positions), logp).sum(dim=1)
