"""HFJudge on tiny random Llama and Qwen2 models: formats, scoring, truncation, adapters, training."""

from __future__ import annotations

import gc

import numpy as np
import pytest
import torch

from aar.w2s.data import Example
from aar.w2s.models.base import JudgeModel, predict_proba
from aar.w2s.models.hf import HFJudge, HFModelSpec, LoraSettings, load_backbone
from aar.w2s.train import TrainConfig, _lr_at, finetune

SMALL_LORA = LoraSettings(rank=4, alpha=8)


def spec_of(path, **kw) -> HFModelSpec:
    kw.setdefault("max_length", 64)
    return HFModelSpec(str(path), lora=SMALL_LORA, **kw)


def binary(n: int, start: int = 0) -> list[Example]:
    return [
        Example(f"b{i}", f"is {i} the one", (f"{'yes' if i % 2 else 'no'} {i}",), label=i % 2)
        for i in range(start, start + n)
    ]


def pairs(n: int) -> list[Example]:
    return [
        Example(
            f"p{i}",
            "which is better",
            ("good cat", "bad dog") if i % 2 else ("bad dog", "good cat"),
            label=i % 2,
        )
        for i in range(n)
    ]


@pytest.fixture(params=["llama", "qwen2"])
def judge(request, tiny_llama, tiny_qwen2_chat) -> HFJudge:
    path = tiny_llama if request.param == "llama" else tiny_qwen2_chat
    return HFJudge(spec_of(path))


def test_prompt_formats_of_the_original(tiny_llama, tiny_qwen2_chat):
    bb = load_backbone(spec_of(tiny_llama))
    assert not bb.chat
    assert bb._render("Q?", ("x",)) == "Question: Q?\nAnswer: x\nLabel:"
    assert bb._render("Q?", ("x", "y")) == "Question: Q?\nAnswer A: x\nAnswer B: y\nLabel:"
    tok = bb.tok
    # the original's label tokens carry no leading space
    assert bb.label_ids["binary"] == (tok.encode("False")[0], tok.encode("True")[0])
    assert bb.label_ids["pairwise"] == (tok.encode("B")[0], tok.encode("A")[0])
    # a base model's prompt: [BOS] + body + "Label:", tokenized separately (the original's format)
    ex = Example("e", "Q?", ("x",))
    enc = lambda t: tok.encode(t, add_special_tokens=False)  # noqa: E731
    assert bb.encode(ex) == [tok.bos_token_id, *enc("Question: Q?\nAnswer: x\n"), *enc("Label:")]
    chat = load_backbone(spec_of(tiny_qwen2_chat))  # auto: has a template and "chat" in the path
    assert chat.chat
    text = chat._render("Q?", ("x",))
    # chat models: "Label:" ends the user turn; the label token starts the assistant turn
    assert text == "<|user|>\nQuestion: Q?\nAnswer: x\nLabel:\n<|assistant|>\n"
    assert not load_backbone(spec_of(tiny_qwen2_chat, chat_template=False)).chat


def test_judge_model_protocol_and_label_logits(judge):
    assert isinstance(judge, JudgeModel)
    exs = binary(3) + pairs(3)
    z = judge.logits(exs)
    assert z.shape == (6,) and z.dtype == torch.float32 and z.requires_grad
    # the logit is the log-odds of the two label tokens from a plain forward pass of one example
    bb = judge.backbone
    for k, ex in enumerate(exs):
        ids = torch.tensor([bb.encode(ex)])
        with torch.no_grad(), bb.model.disable_adapter():
            last = bb.model(input_ids=ids).logits[0, -1].float()
        neg, pos = bb.label_ids["pairwise" if ex.pairwise else "binary"]
        lp = torch.log_softmax(last, -1)
        assert float(z[k].detach()) == pytest.approx(float(lp[pos] - lp[neg]), abs=1e-4)
    # batched prediction (left padding, length-sorted chunks) matches one-at-a-time
    p = predict_proba(judge, exs)
    single = np.concatenate([predict_proba(judge, [e]) for e in exs])
    assert np.allclose(p, single, atol=1e-5)
    assert judge.features(exs).shape == (6, bb.model.config.hidden_size)


def test_long_inputs_are_truncated_not_dropped(tiny_llama):
    judge = HFJudge(spec_of(tiny_llama, max_length=32))
    bb = judge.backbone
    long_q = Example("long", "what is the value " * 60, ("yes the sum " * 40,))
    long_pair = Example("lp", "why " * 80, ("good cat " * 50, "bad dog " * 50))
    tail = bb.tok.encode("Label:", add_special_tokens=False)[-2:]
    for ex in (long_q, long_pair):
        ids = bb.encode(ex)
        assert len(ids) <= 32 and ids[-2:] == tail
    exs = [*binary(2), long_q, long_pair]
    p = predict_proba(judge, exs)
    assert p.shape == (4,) and np.all(np.isfinite(p))
    assert np.all(np.isfinite(judge.zero_shot_logits(exs)))


def test_training_moves_only_the_adapter_and_learns(tiny_llama):
    base = HFJudge(spec_of(tiny_llama))
    train = binary(32)
    before = predict_proba(base, train)
    prior = base.zero_shot_logits(train)
    student = base.clone()
    names = [n for n, _ in student.backbone.adapter_parameters(student.adapter)]
    assert names and all("lora_" in n for n in names)
    frozen = {n: p.detach().clone() for n, p in student.backbone.model.named_parameters() if "lora_" not in n}
    finetune(student, train, [e.label for e in train], TrainConfig(epochs=5, lr=5e-3, batch_size=8))
    after = predict_proba(student, train)
    assert np.mean((after > 0.5) == np.array([e.label for e in train])) >= 0.9
    # the source judge, the frozen base and the prior are untouched
    assert np.allclose(predict_proba(base, train), before, atol=1e-6)
    assert np.allclose(student.zero_shot_logits(train), prior, atol=1e-6)
    for n, p in student.backbone.model.named_parameters():
        if n in frozen:
            assert torch.equal(p, frozen[n]), n
    # a clone starts from the trained adapter and is then independent of it
    copy = student.clone()
    assert np.allclose(predict_proba(copy, train), after, atol=1e-6)
    finetune(copy, train, [1 - e.label for e in train], TrainConfig(epochs=2, lr=5e-3, batch_size=8))
    assert np.allclose(predict_proba(student, train), after, atol=1e-6)


def test_adapters_are_freed_with_their_judges(tiny_llama):
    bb = load_backbone(spec_of(tiny_llama))
    n = len(bb.model.peft_config)
    judges = [HFJudge(spec_of(tiny_llama)) for _ in range(3)]
    assert len(bb.model.peft_config) == n + 3
    del judges
    gc.collect()
    assert len(bb.model.peft_config) == n


def test_fresh_judges_are_identical_and_prepare_centres(tiny_llama):
    exs = binary(12)
    a, b = HFJudge(spec_of(tiny_llama)), HFJudge(spec_of(tiny_llama))
    assert np.allclose(predict_proba(a, exs), predict_proba(b, exs))
    raw = a.zero_shot_logits(exs)
    a.prepare(binary(40, start=100))
    assert a.center != 0.0
    assert np.allclose(a.zero_shot_logits(exs), raw - a.center)
    pair = pairs(4)
    assert np.allclose(a.zero_shot_logits(pair), b.zero_shot_logits(pair))  # pairs are never centred


def test_gradient_accumulation_matches_full_batches(tiny_qwen2_chat):
    train = binary(24) + pairs(8)
    targets = [e.label for e in train]
    out = []
    for accum in (1, 4):
        j = HFJudge(spec_of(tiny_qwen2_chat))
        finetune(
            j, train, targets, TrainConfig(epochs=2, lr=1e-3, batch_size=8, grad_accum_steps=accum), seed=3
        )
        out.append(predict_proba(j, train))
    assert np.allclose(out[0], out[1], atol=1e-4)


def test_warmup_schedule_and_config_keys():
    cfg = TrainConfig(lr=1.0, warmup_frac=0.1)
    lrs = [_lr_at(cfg, s, 20) for s in range(20)]
    assert lrs[0] == pytest.approx(0.5) and lrs[1] == pytest.approx(1.0)
    assert lrs[2] > lrs[3] > lrs[-1] > 0
    assert TrainConfig().to_dict() == {"epochs": 1, "lr": 5e-4, "batch_size": 32, "weight_decay": 0.0}
    assert TrainConfig(grad_accum_steps=2).to_dict()["grad_accum_steps"] == 2
    with pytest.raises(ValueError):
        TrainConfig(batch_size=4, grad_accum_steps=8)


def test_offline_hub_id_fails_clearly():
    with pytest.raises(OSError, match="offline"):
        HFJudge(HFModelSpec("nobody-here/no-such-model-xyz"))


def test_spec_round_trip_and_gguf_path():
    s = HFModelSpec("/models/x/model.Q4.gguf", lora=LoraSettings(rank=8, target_modules=("q_proj",)))
    assert s.path == "/models/x" and s.gguf_file == "model.Q4.gguf"
    assert HFModelSpec.from_dict(s.to_dict()) == s
    with pytest.raises(ValueError):
        HFModelSpec.from_dict({**s.to_dict(), "nonsense": 1})


def test_save_adapter_in_peft_format(tiny_llama, tmp_path):
    import json

    from safetensors.torch import load_file

    judge = HFJudge(spec_of(tiny_llama))
    out = judge.save_adapter(tmp_path / "adapter")
    cfg = json.loads((out / "adapter_config.json").read_text())
    assert cfg["r"] == 4 and cfg["lora_alpha"] == 8 and cfg["base_model_name_or_path"] == str(tiny_llama)
    tensors = load_file(str(out / "adapter_model.safetensors"))
    assert len(tensors) == len(list(judge.trainable_parameters()))
