"""Hugging Face backend: any causal LM (transformers) with LoRA adapters (peft) as a judge.

An :class:`HFJudge` scores a judgment from the LM's next-token distribution after the original
study's prompt formats:

- one option (binary): ``Question: {question}\\nAnswer: {choice}\\nLabel:``, tokens ``False`` / ``True``;
- two options (pairwise chat): ``Question: {prompt}\\nAnswer A: {first}\\nAnswer B: {second}\\nLabel:``,
  tokens ``A`` / ``B`` (label 1 means A is better).

As in the original, the label tokens carry no leading space, and a base model's prompt is ``[BOS]``,
the body and ``Label:`` tokenized separately. ``logits`` is ``log P(label-1 token) - log P(label-0
token)`` at the position after ``Label:``, so ``sigmoid(logit)`` is the softmax over the two label
tokens, and the fine-tuning loss (binary cross-entropy on it) is a loss on the label token only. With
``chat_template`` the whole body, ``Label:`` included, is the user turn of the tokenizer's chat
template, and the label token is the first token of the assistant turn (a Qwen3-style empty
``<think>`` block is dropped, as the original does).

Inputs longer than ``max_length`` tokens are truncated, never dropped: each field (question and
answers) is cut to a fair share of the room, keeping its beginning, and the prompt always ends with
``Label:`` (chat models: with ``Label:`` and the start of the assistant turn).

**Adapters and copies.** Loading a multi-billion-parameter model per copy is too expensive, so every
judge built from the same :class:`HFModelSpec` in a process shares one frozen base model (a
:class:`Backbone`, cached) and owns one LoRA adapter on it. A fresh judge gets a new adapter with the
same deterministic initialisation (LoRA's B is zero, so it starts as the pretrained model);
:meth:`HFJudge.clone` adds a new adapter initialised from this judge's adapter weights. Judges
switch the active adapter before each forward pass, so they are independent as long as they are
used one at a time (as the methods do). An adapter is deleted when its judge is garbage-collected.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
import warnings
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from aar.w2s.data import Example
from aar.w2s.models.hf_vllm import vllm_label_logits

LLAMA_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
# (label 0, label 1): the original's label tokens, without a leading space
LABEL_WORDS = {"binary": ("False", "True"), "pairwise": ("B", "A")}
LABEL_PROMPT = "Label:"
_EMPTY_THINK = "<think>\n\n</think>\n\n"  # Qwen3's templates; the original removes it
_PRIOR = "aar_prior"  # the never-trained adapter kept so the peft wrapper always has one


@dataclass(frozen=True)
class LoraSettings:
    """LoRA hyperparameters (the original's: rank 32, alpha 32, all attention and MLP projections)."""

    rank: int = 32
    alpha: int = 32
    dropout: float = 0.0
    # module names to adapt; if none of them exist in the model, peft's "all-linear" is used
    target_modules: tuple[str, ...] = LLAMA_PROJECTIONS
    init_seed: int = 0  # every fresh adapter starts from the same initialisation


@dataclass(frozen=True)
class HFModelSpec:
    """Which model to load and how to run it. Hashable: judges of equal specs share a backbone."""

    path: str  # local folder, a .gguf file, or a hub id (hub ids only where allow_download or cached)
    gguf_file: str | None = None  # GGUF file name inside ``path`` (set automatically for *.gguf paths)
    chat_template: bool | None = None  # None: auto (tokenizer has one and the path names a chat model)
    max_length: int = 1024  # tokens per input, truncating fields to fit
    predict_batch_size: int = 16  # examples per forward pass when predicting without gradients
    lora: LoraSettings = field(default_factory=LoraSettings)
    dtype: str = "auto"  # auto: bfloat16 on GPU, float32 on CPU; or float32 / bfloat16 / float16
    device: str = "auto"  # auto: cuda if available, else cpu
    gradient_checkpointing: bool = True
    center_prior: bool = True  # prepare(): centre one-option zero-shot scores at their median
    center_sample: int = 256  # unlabelled inputs used for that median
    inference: str = "transformers"  # or "vllm" (GPU machines with vllm installed; see hf_vllm)
    allow_download: bool = False  # offline by default: only local files / the local HF cache

    def __post_init__(self) -> None:
        p = Path(self.path)
        if self.gguf_file is None and p.suffix == ".gguf":
            object.__setattr__(self, "path", str(p.parent))
            object.__setattr__(self, "gguf_file", p.name)
        if self.inference not in ("transformers", "vllm"):
            raise ValueError(f"inference must be 'transformers' or 'vllm', got {self.inference!r}")
        if self.max_length < 16:
            raise ValueError(f"max_length must be at least 16 tokens, got {self.max_length}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        d = asdict(self)
        d["lora"]["target_modules"] = list(self.lora.target_modules)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> HFModelSpec:
        """Inverse of :meth:`to_dict` (unknown keys are an error)."""
        d = dict(d)
        lora = dict(d.pop("lora", {}) or {})
        if "target_modules" in lora:
            lora["target_modules"] = tuple(lora["target_modules"])
        known = {f.name for f in fields(cls)}
        bad = set(d) - known
        if bad:
            raise ValueError(f"unknown model settings: {sorted(bad)}")
        return cls(**d, lora=LoraSettings(**lora))


def _resolve_device(spec: HFModelSpec) -> torch.device:
    if spec.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(spec.device)


def _resolve_dtype(spec: HFModelSpec, device: torch.device) -> torch.dtype:
    if spec.dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[spec.dtype]


def _offline(spec: HFModelSpec) -> bool:
    return not spec.allow_download or os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")


class Backbone:
    """One frozen base model and its tokenizer, wrapped by peft, holding the judges' adapters."""

    def __init__(self, spec: HFModelSpec) -> None:
        from peft import LoraConfig, get_peft_model
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.spec = spec
        self.device = _resolve_device(spec)
        self.dtype = _resolve_dtype(spec, self.device)
        kw: dict[str, Any] = {"local_files_only": _offline(spec)}
        if spec.gguf_file:
            kw["gguf_file"] = spec.gguf_file
        try:
            tok = AutoTokenizer.from_pretrained(spec.path, **kw)
            model = AutoModelForCausalLM.from_pretrained(spec.path, dtype=self.dtype, **kw)
        except OSError as e:
            where = " (offline: local files and the local HF cache only)" if kw["local_files_only"] else ""
            raise OSError(f"cannot load model '{spec.path}'{where}: {e}") from e
        if tok.pad_token_id is None:
            tok.pad_token = tok.eos_token if tok.eos_token is not None else tok.convert_ids_to_tokens(0)
        tok.padding_side = "left"
        self.tok = tok
        model.to(self.device)  # type: ignore[arg-type]  # transformers types .to through a wrapper
        model.requires_grad_(False)
        model.config.use_cache = False
        if spec.gradient_checkpointing and getattr(model, "supports_gradient_checkpointing", False):
            kwargs = {"use_reentrant": False}
            if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.x
                model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
            else:
                model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
        names = {n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
        targets = [t for t in spec.lora.target_modules if t in names]
        self.lora_config = LoraConfig(
            r=spec.lora.rank,
            lora_alpha=spec.lora.alpha,
            lora_dropout=spec.lora.dropout,
            target_modules=targets or "all-linear",
            bias="none",
            task_type="CAUSAL_LM",
        )
        with self._seeded(), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # peft asks about deprecated checkpointing names
            self.model = get_peft_model(model, self.lora_config, adapter_name=_PRIOR)
        self.model.eval()
        self.active = _PRIOR
        self.chat = self._use_chat_template()
        self.label_ids = {kind: self._label_ids(words) for kind, words in LABEL_WORDS.items()}
        self._counter = itertools.count()
        self._keeps_logits = _accepts(self.model.get_base_model().forward, "logits_to_keep")
        self._centers: dict[tuple[str, ...], float] = {}
        self.lock = threading.RLock()
        self._vllm = None

    @contextlib.contextmanager
    def _seeded(self) -> Iterator[None]:
        """Seed the global RNGs with the adapter seed inside, restore them after (fork_rng)."""
        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.spec.lora.init_seed)
            yield

    def _use_chat_template(self) -> bool:
        has = bool(getattr(self.tok, "chat_template", None))
        if self.spec.chat_template is not None:
            if self.spec.chat_template and not has:
                raise ValueError(f"model '{self.spec.path}' has no chat template")
            return self.spec.chat_template
        name = f"{self.spec.path}/{self.spec.gguf_file or ''}".lower()
        return has and any(w in name for w in ("chat", "instruct"))

    def _label_ids(self, words: tuple[str, str]) -> tuple[int, int]:
        ids = []
        for w in words:
            toks = self.tok.encode(w, add_special_tokens=False)
            if not toks:
                raise ValueError(f"the tokenizer of '{self.spec.path}' encodes {w!r} to no token")
            ids.append(toks[0])  # the first token decides (single-token for the original's models)
        if ids[0] == ids[1]:
            raise ValueError(f"label words {words} share their first token in '{self.spec.path}'")
        return ids[0], ids[1]

    # adapters -------------------------------------------------------------------------------
    def new_adapter(self, init_from: str | None = None) -> str:
        """Add an adapter (fresh, or a copy of ``init_from``'s weights); returns its name."""
        with self.lock:
            name = f"aar{next(self._counter)}"
            with self._seeded():
                self.model.add_adapter(name, self.lora_config)
            if init_from is not None:
                src = dict(self.adapter_parameters(init_from))
                with torch.no_grad():
                    for n, p in self.adapter_parameters(name):
                        p.copy_(src[n.replace(f".{name}.", f".{init_from}.")])
            return name

    def adapter_parameters(self, name: str) -> Iterator[tuple[str, torch.nn.Parameter]]:
        """(qualified name, parameter) of one adapter's weights."""
        tag = f".{name}."
        for n, p in self.model.named_parameters():
            if tag in n:
                yield n, p

    def activate(self, name: str) -> None:
        """Make ``name`` the adapter forward passes use (and the trainable one)."""
        if self.active != name or self.model.active_adapter != name:
            self.model.set_adapter(name)
            self.active = name

    def drop_adapter(self, name: str) -> None:
        """Delete an adapter (called when its judge is garbage-collected)."""
        with self.lock:
            if name not in self.model.peft_config:
                return
            if self.active == name:
                self.activate(_PRIOR)
            self.model.delete_adapter(name)

    def save_adapter(self, name: str, path: Path) -> Path:
        """Write adapter ``name`` in peft's format (``adapter_config.json`` + safetensors) to ``path``."""
        from peft import get_peft_model_state_dict
        from safetensors.torch import save_file

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        sd = get_peft_model_state_dict(self.model, adapter_name=name)
        tensors = {k: v.detach().contiguous().cpu() for k, v in sd.items()}
        save_file(tensors, str(path / "adapter_model.safetensors"))
        cfg = replace(self.model.peft_config[name])
        cfg.base_model_name_or_path = self.spec.path
        cfg.save_pretrained(str(path))
        return path

    # encoding -------------------------------------------------------------------------------
    def _render(self, prompt: str, options: Sequence[str]) -> str:
        """The prompt as text (chat models: through the chat template; ends where the label goes)."""
        if len(options) == 2:
            body = f"Question: {prompt}\nAnswer A: {options[0]}\nAnswer B: {options[1]}\n{LABEL_PROMPT}"
        elif len(options) == 1:
            body = f"Question: {prompt}\nAnswer: {options[0]}\n{LABEL_PROMPT}"
        else:
            raise ValueError(f"an example has one or two options, not {len(options)}")
        if self.chat:
            msgs = [{"role": "user", "content": body}]
            text = str(self.tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True))
            return text[: -len(_EMPTY_THINK)] if text.endswith(_EMPTY_THINK) else text
        return body

    def _ids(self, text: str) -> list[int]:
        if self.chat:
            return cast(list[int], self.tok(text, add_special_tokens=False)["input_ids"])
        # the original's base-model format: [BOS] + body + "Label:", tokenized separately
        body = text[: -len(LABEL_PROMPT)] if text.endswith(LABEL_PROMPT) else text
        bos = [self.tok.bos_token_id] if self.tok.bos_token_id is not None else []
        enc = self.tok.encode
        tail = enc(LABEL_PROMPT, add_special_tokens=False) if text.endswith(LABEL_PROMPT) else []
        return cast(list[int], bos + enc(body, add_special_tokens=False) + tail)

    def encode(self, ex: Example) -> list[int]:
        """Token ids of ``ex``'s prompt, at most ``max_length`` long, ending where the label token goes."""
        limit = self.spec.max_length
        ids = self._ids(self._render(ex.prompt, ex.options))
        if len(ids) <= limit:
            return ids
        parts = [ex.prompt, *ex.options]
        toks = [self.tok.encode(p, add_special_tokens=False) for p in parts]
        room = sum(len(t) for t in toks) - (len(ids) - limit) - 8 * len(parts)
        cap = _water_fill([len(t) for t in toks], max(room, len(parts)))
        cut = [
            p if len(t) <= cap else str(self.tok.decode(t[:cap])) + " [...]"
            for p, t in zip(parts, toks, strict=True)
        ]
        ids = self._ids(self._render(cut[0], cut[1:]))
        if len(ids) > limit:  # boundary effects, or a template longer than the limit: keep both ends
            head = min(16, limit // 4)
            ids = ids[:head] + ids[len(ids) - (limit - head) :]
        return ids

    def batch(self, examples: Sequence[Example]) -> dict[str, torch.Tensor]:
        """Left-padded input ids, attention mask and position ids on the model's device."""
        seqs = [self.encode(e) for e in examples]
        t = max(len(s) for s in seqs)
        pad = self.tok.pad_token_id
        ids = torch.full((len(seqs), t), pad, dtype=torch.long)
        mask = torch.zeros((len(seqs), t), dtype=torch.long)
        for i, s in enumerate(seqs):
            ids[i, t - len(s) :] = torch.tensor(s, dtype=torch.long)
            mask[i, t - len(s) :] = 1
        pos = (mask.cumsum(-1) - 1).clamp_min(0)
        return {
            "input_ids": ids.to(self.device),
            "attention_mask": mask.to(self.device),
            "position_ids": pos.to(self.device),
        }

    def label_logits(self, examples: Sequence[Example]) -> torch.Tensor:
        """log P(label 1 token) - log P(label 0 token) at the last position, float32 on the CPU."""
        inputs = self.batch(examples)
        kw = {"logits_to_keep": 1} if self._keeps_logits else {}
        last = self.model(**inputs, use_cache=False, **kw).logits[:, -1, :].float()  # bf16 is too coarse
        out = []
        for i, ex in enumerate(examples):
            neg, pos = self.label_ids["pairwise" if ex.pairwise else "binary"]
            out.append(last[i, pos] - last[i, neg])
        return torch.stack(out).cpu()

    def last_hidden(self, examples: Sequence[Example]) -> torch.Tensor:
        """Final-layer hidden state at the last prompt position (before the label), float32 on the CPU."""
        out = self.model(**self.batch(examples), use_cache=False, output_hidden_states=True)
        return cast(torch.Tensor, out.hidden_states[-1][:, -1, :].float().cpu())


def _accepts(fn: Callable[..., object], name: str) -> bool:
    import inspect

    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def _water_fill(lengths: list[int], room: int) -> int:
    """The largest per-field cap c with sum(min(len, c)) <= room."""
    lo, hi = 1, max(lengths)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if sum(min(n, mid) for n in lengths) <= room:
            lo = mid
        else:
            hi = mid - 1
    return lo


_BACKBONES: dict[HFModelSpec, Backbone] = {}
_BACKBONES_LOCK = threading.Lock()


def load_backbone(spec: HFModelSpec) -> Backbone:
    """The process's shared backbone for ``spec`` (loaded on first use)."""
    with _BACKBONES_LOCK:
        if spec not in _BACKBONES:
            _BACKBONES[spec] = Backbone(spec)
        return _BACKBONES[spec]


def _ordered_chunks(examples: Sequence[Example], size: int) -> Iterator[list[int]]:
    """Indices of ``examples`` in chunks of similar length (less padding)."""
    order = sorted(
        range(len(examples)), key=lambda i: len(examples[i].prompt) + sum(map(len, examples[i].options))
    )
    for i in range(0, len(order), size):
        yield order[i : i + size]


class HFJudge:
    """A causal LM with a LoRA adapter as a judge; implements :class:`~aar.w2s.models.base.JudgeModel`."""

    def __init__(self, spec: HFModelSpec, _init_from: HFJudge | None = None) -> None:
        self.spec = spec
        self.backbone = load_backbone(spec)
        self.adapter: str = self.backbone.new_adapter(_init_from.adapter if _init_from else None)
        self.center: float = _init_from.center if _init_from else 0.0
        weakref.finalize(self, self.backbone.drop_adapter, self.adapter)

    # scoring --------------------------------------------------------------------------------
    def logits(self, examples: Sequence[Example]) -> torch.Tensor:
        """Log-odds of label 1 from the two label tokens (differentiable through the adapter)."""
        bb = self.backbone
        with bb.lock:
            bb.activate(self.adapter)
            if torch.is_grad_enabled():
                return bb.label_logits(examples)
            if self.spec.inference == "vllm":
                adapter = None if self.adapter == _PRIOR else self.adapter
                return torch.from_numpy(vllm_label_logits(bb, adapter, examples))
            return self._chunked(examples, bb.label_logits)

    def _chunked(
        self, examples: Sequence[Example], fn: Callable[[list[Example]], torch.Tensor]
    ) -> torch.Tensor:
        if not examples:
            return torch.zeros(0)
        out: list[torch.Tensor | None] = [None] * len(examples)
        for idx in _ordered_chunks(examples, self.spec.predict_batch_size):
            vals = fn([examples[i] for i in idx])
            for k, i in enumerate(idx):
                out[i] = vals[k]
        return torch.stack(out)  # type: ignore[arg-type]

    def _prior(self, examples: Sequence[Example]) -> np.ndarray:
        bb = self.backbone
        with bb.lock, torch.no_grad(), bb.model.disable_adapter():
            was = bb.model.training
            bb.model.eval()
            try:
                return self._chunked(examples, bb.label_logits).numpy().astype(np.float64)
            finally:
                bb.model.train(was)

    def zero_shot_logits(self, examples: Sequence[Example]) -> np.ndarray:
        """The pretrained model's label-token log-odds (no adapter); one-option scores centred."""
        z = self._prior(examples)
        single = np.array([not e.pairwise for e in examples], dtype=bool)
        return np.where(single, z - self.center, z) if len(z) else z

    def features(self, examples: Sequence[Example]) -> np.ndarray:
        """Final-layer hidden state at the last prompt position (with this judge's adapter)."""
        bb = self.backbone
        with bb.lock, torch.no_grad():
            bb.activate(self.adapter)
            return self._chunked(examples, bb.last_hidden).numpy()

    def prepare(self, unlabelled: Sequence[Example]) -> None:
        """Centre the prior's one-option scores at their median on a sample of unlabelled inputs.

        Used by :meth:`zero_shot_logits` only; fine-tuning starts from the plain label-token
        log-odds, as in the original. No labels are used; the result is cached per input set.
        """
        single = [e for e in unlabelled if not e.pairwise]
        if not self.spec.center_prior or not single:
            return
        step = max(1, len(single) // self.spec.center_sample)
        sample = single[::step][: self.spec.center_sample]
        key = tuple(e.id for e in sample)
        bb = self.backbone
        if key not in bb._centers:
            bb._centers[key] = float(np.median(self._prior(sample)))
        self.center = bb._centers[key]

    # training -------------------------------------------------------------------------------
    def trainable_parameters(self) -> Iterator[torch.nn.Parameter]:
        """This judge's LoRA weights."""
        with self.backbone.lock:
            self.backbone.activate(self.adapter)  # peft marks the active adapter trainable
            return iter([p for _, p in self.backbone.adapter_parameters(self.adapter)])

    def clone(self) -> HFJudge:
        """A new adapter on the same frozen base, initialised from this judge's adapter weights."""
        return HFJudge(self.spec, _init_from=self)

    def train(self, mode: bool = True) -> HFJudge:
        """Train/eval mode of the shared model (dropout, gradient checkpointing)."""
        self.backbone.model.train(mode)
        return self

    def save_adapter(self, path: Path) -> Path:
        """Write this judge's adapter in peft's format (``adapter_config.json`` + safetensors)."""
        return self.backbone.save_adapter(self.adapter, path)
