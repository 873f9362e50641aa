"""Benchmark of the Hugging Face backend: LoRA training and prediction throughput (examples/s).

Builds a Llama-architecture causal LM from a config (random weights; throughput does not depend on
them) with a BPE tokenizer trained locally, so it runs offline anywhere. Training is one epoch of
``finetune`` with the original protocol's settings (LoRA r=32 / alpha 32 on all attention and MLP
projections, batch 32, gradient accumulation, warmup 0.1, gradient checkpointing); prediction is
``predict_proba`` (batched, no gradients). Binary examples of about ``--tokens`` tokens each.
Figures are medians over ``--runs`` runs after a warm-up.

    python benchmarks/bench_hf.py                        # CPU, ~5M parameters, 1 thread
    python benchmarks/bench_hf.py --preset gpu           # GPU, ~300M parameters (bf16)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch

PRESETS = {
    "cpu": {"hidden": 256, "layers": 4, "examples": 128, "tokens": 96, "device": "cpu", "grad_accum": 4},
    "gpu": {"hidden": 1024, "layers": 20, "examples": 1024, "tokens": 256, "device": "cuda", "grad_accum": 1},
}
WORDS_TEXT = "the a is of and to in what how why value sum plus minus equals one two three cat dog red blue"
WORDS = WORDS_TEXT.split()


def build_model(dest: Path, hidden: int, layers: int) -> int:
    """A random Llama of the given shape with a locally trained tokenizer; returns its parameter count."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    rng = random.Random(0)
    corpus = [" ".join(rng.choice(WORDS) + str(rng.randint(0, 999)) for _ in range(30)) for _ in range(2000)]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=4000,
        special_tokens=["<pad>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator([*corpus, "Label: True False A B"], trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>")
    fast.save_pretrained(dest)
    cfg = LlamaConfig(
        vocab_size=len(fast),
        hidden_size=hidden,
        intermediate_size=int(hidden * 8 / 3) // 64 * 64,
        num_hidden_layers=layers,
        num_attention_heads=max(4, hidden // 64),
        num_key_value_heads=max(2, hidden // 256),
        max_position_embeddings=2048,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg)
    model.save_pretrained(dest)
    return sum(p.numel() for p in model.parameters())


def examples(n: int, tokens: int):
    """Binary examples of roughly ``tokens`` tokens each."""
    from aar.w2s.data import Example

    rng = random.Random(1)
    out = []
    for i in range(n):
        q = " ".join(rng.choice(WORDS) for _ in range(tokens * 2 // 3))
        a = " ".join(rng.choice(WORDS) for _ in range(tokens // 3))
        out.append(Example(f"x{i}", q, (a,), label=i % 2))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    ap.add_argument("--hidden", type=int)
    ap.add_argument("--layers", type=int)
    ap.add_argument("--examples", type=int)
    ap.add_argument("--tokens", type=int)
    ap.add_argument("--grad-accum", type=int)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "bench_hf.json"))
    args = ap.parse_args()
    cfg = dict(PRESETS[args.preset])
    for k in ("hidden", "layers", "examples", "tokens", "grad_accum"):
        if getattr(args, k) is not None:
            cfg[k] = getattr(args, k)
    torch.set_num_threads(args.threads)

    from aar.w2s.models.base import predict_proba
    from aar.w2s.models.hf import HFJudge, HFModelSpec
    from aar.w2s.train import TrainConfig, finetune

    with tempfile.TemporaryDirectory(prefix="bench-hf-") as tmp:
        n_params = build_model(Path(tmp), cfg["hidden"], cfg["layers"])
        spec = HFModelSpec(tmp, device=cfg["device"], max_length=cfg["tokens"] + 32, predict_batch_size=32)
        data = examples(cfg["examples"], cfg["tokens"])
        labels = [e.label for e in data]
        train_cfg = TrainConfig(
            epochs=1, lr=1e-4, batch_size=32, grad_accum_steps=cfg["grad_accum"], warmup_frac=0.1
        )
        base = HFJudge(spec)
        seq = statistics.mean(len(base.backbone.encode(e)) for e in data)
        finetune(base.clone(), data[:32], labels[:32], train_cfg)  # warm-up
        predict_proba(base, data[:32])
        train_eps, pred_eps = [], []
        for _ in range(args.runs):
            judge = base.clone()
            sync = torch.cuda.synchronize if spec.device == "cuda" else (lambda: None)
            t = time.perf_counter()
            finetune(judge, data, labels, train_cfg)
            sync()
            train_eps.append(len(data) / (time.perf_counter() - t))
            t = time.perf_counter()
            predict_proba(judge, data)
            sync()
            pred_eps.append(len(data) / (time.perf_counter() - t))
        lora = sum(p.numel() for p in judge.trainable_parameters())
    result = {
        "benchmark": "bench_hf",
        "device": cfg["device"],
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs visible"
        + (f", {torch.cuda.get_device_name()}" if cfg["device"] == "cuda" else ""),
        "torch_threads": args.threads,
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),  # other jobs share the CPUs
        "model": {"arch": "llama (random weights, from config)", "params": n_params, "lora_params": lora,
                  "hidden": cfg["hidden"], "layers": cfg["layers"], "dtype": str(base.backbone.dtype)},
        "examples": cfg["examples"],
        "mean_tokens": round(seq, 1),
        "train": {"config": train_cfg.to_dict(), "gradient_checkpointing": spec.gradient_checkpointing,
                  "examples_per_s_median": round(statistics.median(train_eps), 2),
                  "runs": [round(x, 2) for x in train_eps]},
        "predict": {"batch_size": spec.predict_batch_size,
                    "examples_per_s_median": round(statistics.median(pred_eps), 2),
                    "runs": [round(x, 2) for x in pred_eps]},
        "python": sys.version.split()[0],
        "torch": torch.__version__,
    }  # fmt: skip
    print(json.dumps(result, indent=2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
