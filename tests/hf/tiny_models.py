"""Tiny random-weight causal LMs and a locally trained BPE tokenizer, written to a folder."""

from __future__ import annotations

from pathlib import Path

WORDS_TEXT = (
    "Question Answer Label True False A B is the answer correct which better yes no good bad "
    "what how why plus minus equals def return print sum value cat dog red blue one two three "
)
WORDS = WORDS_TEXT.split()

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def make_tokenizer(dest: Path, extra_text: list[str] = (), chat: bool = False):
    """A byte-level BPE tokenizer trained on a small local corpus, saved to ``dest``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    corpus = [" ".join(WORDS), *(f"Label: {w}" for w in ("True", "False", "A", "B")), *extra_text]
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<pad>", "<s>", "</s>", "<|user|>", "<|assistant|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(corpus * 5, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>")
    if chat:
        fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(dest)
    return fast


def make_model(
    dest: Path,
    arch: str = "llama",
    hidden: int = 32,
    layers: int = 2,
    seed: int = 0,
    chat: bool = False,
    extra_text: list[str] = (),
) -> Path:
    """A random ``arch`` ('llama' or 'qwen2') causal LM from config, with its tokenizer, in ``dest``."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig, Qwen2Config

    tok = make_tokenizer(dest, extra_text, chat)
    cls = {"llama": LlamaConfig, "qwen2": Qwen2Config}[arch]
    cfg = cls(
        vocab_size=len(tok),
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(cfg)
    model.save_pretrained(dest)
    return dest
