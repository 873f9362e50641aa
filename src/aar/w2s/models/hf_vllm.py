"""Optional vLLM inference for :class:`~aar.w2s.models.hf.HFJudge` (GPU machines with vllm installed).

Selected with ``HFModelSpec(inference="vllm")``; training always runs in transformers. For each
example the prompt is sent twice, once followed by each label token, and the label token's
prompt log-probability is read off (prefix caching makes the second copy almost free); the judge's
adapter is saved to a temporary folder and passed as a LoRA request. The transformers path gives
the same numbers up to numerics and always works; this path is only faster.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from aar.w2s.data import Example

if TYPE_CHECKING:
    from aar.w2s.models.hf import Backbone


def _engine(bb: Backbone) -> Any:
    if bb._vllm is None:
        try:
            from vllm import LLM
        except ImportError as e:
            raise RuntimeError("inference='vllm' needs the vllm package (GPU machines only)") from e
        path = str(Path(bb.spec.path) / bb.spec.gguf_file) if bb.spec.gguf_file else bb.spec.path
        bb._vllm = LLM(
            model=path,
            enable_lora=True,
            max_lora_rank=max(8, bb.spec.lora.rank),
            enable_prefix_caching=True,
            max_model_len=bb.spec.max_length + 8,
            gpu_memory_utilization=0.35,  # the transformers copy of the model stays on the GPU too
            dtype="bfloat16",
        )
    return bb._vllm


def vllm_label_logits(bb: Backbone, adapter: str | None, examples: Sequence[Example]) -> np.ndarray:
    """log P(label 1 token) - log P(label 0 token) per example, scored by vLLM with ``adapter``.

    ``adapter`` ``None`` scores with the base model alone (the never-trained prior adapter).
    """
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt
    from vllm.lora.request import LoRARequest

    if not examples:
        return np.zeros(0, dtype=np.float32)
    llm = _engine(bb)
    prompts = []
    for ex in examples:
        ids = bb.encode(ex)
        neg, pos = bb.label_ids["pairwise" if ex.pairwise else "binary"]
        prompts += [TokensPrompt(prompt_token_ids=[*ids, neg]), TokensPrompt(prompt_token_ids=[*ids, pos])]
    params = SamplingParams(max_tokens=1, prompt_logprobs=0, temperature=0.0)
    with tempfile.TemporaryDirectory(prefix="aar-lora-") as tmp:
        request = None
        if adapter is not None:
            bb.save_adapter(adapter, Path(tmp))
            request = LoRARequest(adapter, abs(hash(adapter)) % 2**31 + 1, tmp)
        outs = llm.generate(prompts, params, lora_request=request, use_tqdm=False)
    lps = []
    for out, prompt in zip(outs, prompts, strict=True):
        last = out.prompt_logprobs[-1]
        lps.append(last[prompt["prompt_token_ids"][-1]].logprob)
    lp = np.asarray(lps, dtype=np.float32).reshape(-1, 2)
    return lp[:, 1] - lp[:, 0]
