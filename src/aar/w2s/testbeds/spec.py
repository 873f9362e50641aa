"""Typed description of a built-in testbed: its world, corpus, splits and models."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from aar.w2s.models.tiny import GPTConfig
from aar.w2s.train import TrainConfig


@dataclass(frozen=True)
class ModelSpec:
    """A tiny LM's shape and pretraining budget."""

    n_layer: int
    d_model: int
    n_head: int
    steps: int
    batch_size: int = 128
    lr: float = 3e-3

    def gpt_config(self, block_size: int) -> GPTConfig:
        """The GPT shape for this spec."""
        return GPTConfig(
            n_layer=self.n_layer, n_head=self.n_head, d_model=self.d_model, block_size=block_size
        )


@dataclass(frozen=True)
class TestbedSpec:
    """Everything that determines a built testbed (and so its cache key)."""

    __test__ = False  # not a pytest test class

    name: str
    world: str
    strong: ModelSpec
    weak: ModelSpec
    sizes: dict[str, int]  # per split; test and final are drawn under the build's secret salt
    corpus_error_rate: float  # share of pretraining lines carrying the popular error, where it applies
    judgment_error_share: float  # share of negative judgments that use the popular error
    pretrain_share: float = 0.6  # share of problems rendered into the corpus (1.0: all, a knowledge domain)
    corpus_repeats: int = 3
    block_size: int = 48
    seed: int = 0
    world_kwargs: dict[str, Any] = field(default_factory=dict[str, Any])
    weak_train: TrainConfig = TrainConfig(epochs=2, lr=1e-3)
    strong_train: TrainConfig = TrainConfig(epochs=1, lr=2e-4)
    description: str = ""
    # protocol, not build: expose the weak teacher's outputs on dev/test inputs too (the original
    # study gives teacher labels on train_unlabel only); not part of the build cache key
    teacher_on_test: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (also the input of the cache key)."""
        d = asdict(self)
        # TrainConfig.to_dict leaves out optional fields at their defaults: keeps cache keys stable
        d["weak_train"], d["strong_train"] = self.weak_train.to_dict(), self.strong_train.to_dict()
        return d
