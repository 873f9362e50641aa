"""Fixtures for the Hugging Face backend: tiny random models built locally, offline."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing here may reach a model hub
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest

pytest.importorskip("transformers", reason="the Hugging Face backend needs the 'hf' extra")
pytest.importorskip("peft", reason="the Hugging Face backend needs the 'hf' extra")

import torch

from .tiny_models import make_model


@pytest.fixture(scope="session", autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory):
    """A random 2-layer Llama (hidden 64) with a locally trained BPE tokenizer."""
    return make_model(tmp_path_factory.mktemp("llama"), "llama", hidden=64, layers=2, seed=2)


@pytest.fixture(scope="session")
def tiny_qwen2_chat(tmp_path_factory):
    """A random 1-layer Qwen2 (hidden 32) whose tokenizer has a chat template."""
    return make_model(tmp_path_factory.mktemp("qwen2-chat"), "qwen2", hidden=32, layers=1, seed=1, chat=True)
