"""The prefix-shared scoring of the tiny judges equals the plain padded computation.

``trie_logprob`` (each shared prompt prefix computed once, the last block only where a token is
scored) must give ``sequence_logprob`` of ``encode_pairs``' padded batch, and the same gradients, on
pairwise and one-option judgments, with prompts that are truncated to fit the block.
"""

import pytest
import torch

from aar.w2s.data import Example
from aar.w2s.models.judge import TinyJudge, encode_pairs, encode_sequence, sequence_logprob
from aar.w2s.models.tiny import BOS, EOS, GPT, PAD, CharTokenizer, GPTConfig
from aar.w2s.models.trie import prefix_trie, trie_hidden, trie_logprob

TOK = CharTokenizer()
BLOCK = 48


def _gpt(seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(n_layer=3, n_head=2, d_model=32, block_size=BLOCK))


def _pairs() -> list[tuple[str, str]]:
    """Chat-like and math-like (prompt, answer) rows: shared prompts, shared beginnings, truncation."""
    rows = []
    for name in ("loko", "zarafin", "mu"):
        for belief in ("", "i think red. ", "i think a very long belief about it. "):
            prompt = f"u:{belief}what color is the {name}? a:"
            rows += [(prompt, " red."), (prompt, " gold."), (prompt, " black.")]
    rows += [("65+28=", "093"), ("65+21=", "086"), ("7-3=", "4"), ("x=38;y=4;print(x+y*4)>", "054")]
    return rows


def _trie(rows: list[tuple[str, str]]):
    enc = [encode_sequence(TOK, p, a, BLOCK) for p, a in rows]
    return prefix_trie([s for s, _ in enc], [start for _, start in enc])


def test_encode_pairs_layout_is_unchanged():
    ids, mask = encode_pairs(TOK, ["ab", "abcd"], ["c", "x"], BLOCK)
    a, b, c, d, x = (TOK.encode(ch)[0] for ch in "abcdx")
    assert ids.tolist() == [[BOS, a, b, c, EOS, PAD, PAD], [BOS, a, b, c, d, x, EOS]]
    assert mask.tolist() == [[0, 0, 0, 1, 1, 0, 0], [0, 0, 0, 0, 0, 1, 1]]
    seq, start = encode_sequence(TOK, "abcd", "x", 4)  # room for 2 prompt tokens: keeps the end
    assert (seq, start) == ([BOS, c, d, x, EOS], 2)
    with pytest.raises(ValueError, match="does not fit"):
        encode_sequence(TOK, "ab", "abcd", 4)


def test_trie_merges_shared_prefixes_and_keeps_positions():
    rows = [("u:abc a:", " red."), ("u:abc a:", " gold."), ("u:abd a:", " red.")]
    trie = _trie(rows)
    # inputs are the sequences but their end token; the second row adds only its answer after the
    # shared space ("gold."), the third branches after "u:ab"
    first = 1 + len("u:abc a:") + len(" red.")
    assert len(trie.tokens) == first + len("gold.") + len("d a: red.")
    for r, (p, a) in enumerate(rows):
        seq, _ = encode_sequence(TOK, p, a, BLOCK)
        nodes = trie.layout[r, : len(seq) - 1]
        assert trie.tokens[nodes].tolist() == seq[:-1]
        assert trie.positions[nodes].tolist() == list(range(len(seq) - 1))
    # one scored prediction per answer token and end token
    assert len(trie.target_tokens) == sum(len(a) + 1 for _, a in rows)
    with pytest.raises(ValueError):
        prefix_trie([], [])


def test_trie_logprob_equals_padded_logprob_and_gradients():
    gpt = _gpt()
    rows = _pairs()
    ids, mask = encode_pairs(TOK, [p for p, _ in rows], [a for _, a in rows], BLOCK)
    trie = _trie(rows)
    assert len(trie.tokens) < 0.7 * (ids.shape[0] * (ids.shape[1] - 1))  # the sharing is real
    weights = torch.randn(len(rows), generator=torch.Generator().manual_seed(1))
    plain = sequence_logprob(gpt, ids, mask)
    shared = trie_logprob(gpt, trie)
    torch.testing.assert_close(shared, plain, rtol=1e-6, atol=1e-5)
    params = list(gpt.parameters())
    g_plain = torch.autograd.grad((plain * weights).sum(), params)
    g_shared = torch.autograd.grad((shared * weights).sum(), params)
    for a, b in zip(g_shared, g_plain, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_trie_hidden_equals_gpt_hidden_and_features_match():
    gpt = _gpt(4).eval()
    rows = _pairs()
    ids, _ = encode_pairs(TOK, [p for p, _ in rows], [a for _, a in rows], BLOCK - 1)
    seqs = [encode_sequence(TOK, p, a, BLOCK - 1)[0] for p, a in rows]
    with torch.no_grad():
        plain = gpt.hidden(ids)
        shared = trie_hidden(gpt, prefix_trie([[*q, PAD] for q in seqs], [len(q) for q in seqs]))
    valid = (ids != PAD).unsqueeze(-1)
    assert shared.shape == plain.shape
    torch.testing.assert_close(shared * valid, plain * valid, rtol=1e-6, atol=1e-5)
    # the probe's features: prior score, last-token and mean hidden state
    judge = TinyJudge(gpt)
    examples = [Example(f"e{i}", p, (a,), None) for i, (p, a) in enumerate(rows)]
    feats = judge.features(examples)
    lengths = valid.sum(1).squeeze(-1)
    with torch.no_grad():
        score = sequence_logprob(gpt, *encode_pairs(TOK, [p for p, _ in rows], [a for _, a in rows], BLOCK))
    last = plain[torch.arange(len(rows)), lengths - 1]
    mean = (plain * valid).sum(1) / lengths.unsqueeze(-1)
    expected = torch.cat([score.unsqueeze(1), last, mean], dim=1).numpy()
    assert feats.shape == expected.shape
    assert abs(feats - expected).max() < 1e-5


def test_judge_logits_match_the_padded_formula():
    judge = TinyJudge(_gpt(2))
    examples = [
        Example("p1", "u:what color is the loko? a:", (" red.", " gold."), None),
        Example(
            "p2",
            "u:i think a very long belief about it. what color is the zarafin? a:",
            (" red.", " black."),
            None,
        ),
        Example("b1", "65+28=", ("093",), None),
    ]
    judge.center.fill_(-3.0)
    prompts = [e.prompt for e in examples for _ in e.options]
    answers = [o for e in examples for o in e.options]
    lp = sequence_logprob(judge.gpt, *encode_pairs(TOK, prompts, answers, BLOCK))
    expected = torch.stack([lp[0] - lp[1], lp[2] - lp[3], lp[4] + 3.0])
    with torch.no_grad():
        torch.testing.assert_close(judge.logits(examples), expected, rtol=1e-6, atol=1e-5)
        # the memoised encodings give the same scores the second time
        torch.testing.assert_close(judge.logits(examples), expected, rtol=1e-6, atol=1e-5)


def test_prepare_memo_equals_recomputation_and_follows_the_weights():
    from aar.w2s.models import judge as judge_mod

    examples = [Example(f"b{i}", f"{i}+{i}=", (f"{2 * i:03d}",), None) for i in range(40)]
    judge = TinyJudge(_gpt(3))
    judge.prepare(examples)
    memoised = float(judge.center)
    with torch.no_grad():
        direct = float(judge.raw_scores(examples).median())
    assert memoised == direct
    # a fresh copy of the same weights reads the memo and gets the same centre
    judge_mod._CENTERS.clear()
    again = TinyJudge(_gpt(3))
    again.prepare(examples)
    assert float(again.center) == memoised
    assert len(judge_mod._CENTERS) == 1
    again.prepare(examples)
    assert len(judge_mod._CENTERS) == 1  # a hit, not a second entry
    # other weights (or other inputs) are another key: recomputed, not reused
    with torch.no_grad():
        again.gpt.ln_f.weight.mul_(1.5)  # sharper next-token distributions
        moved = float(again.raw_scores(examples).median())
    again.prepare(examples)
    assert float(again.center) == moved != memoised
    again.prepare(examples[:20])
    assert len(judge_mod._CENTERS) == 3
