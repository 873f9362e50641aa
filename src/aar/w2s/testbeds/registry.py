"""The registry of built-in testbeds, and loading a built one.

``math``, ``code`` and ``chat`` are the calibrated testbeds (see the README's table); the
``*-tiny`` variants build in seconds for tests and smoke runs and are not calibrated.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from aar.w2s.cache import CacheError, aar_home, load_json
from aar.w2s.data import Dataset
from aar.w2s.methods.base import TeacherOutputs
from aar.w2s.models.judge import TinyJudge
from aar.w2s.models.tiny import GPT, GPTConfig
from aar.w2s.testbeds.build import Progress, build_testbed, testbed_dir
from aar.w2s.testbeds.spec import ModelSpec, TestbedSpec
from aar.w2s.train import TrainConfig

if TYPE_CHECKING:
    from aar.w2s.testbeds.imported import ImportedTestbed

# test and final are drawn from what the corpus and the public splits leave of each world's problems
# (math 2,098, code 2,481, chat 366 creatures x 6): final gets 1,000 and test the rest, since the
# pools cannot give 2,000 + 1,000 (test was 2,000 / 2,000 / 1,600 before the final split existed).
_PUBLIC = {"train_label": 500, "train_unlabel": 3000, "dev": 500}
_TINY = {"train_label": 150, "train_unlabel": 600, "dev": 100, "test": 300, "final": 200}

TESTBEDS: dict[str, TestbedSpec] = {
    "math": TestbedSpec(
        name="math",
        world="math",
        strong=ModelSpec(n_layer=4, d_model=64, n_head=4, steps=2000),
        weak=ModelSpec(n_layer=1, d_model=32, n_head=2, steps=300),
        sizes={**_PUBLIC, "test": 1098, "final": 1000},
        corpus_error_rate=0.5,
        judgment_error_share=0.6,
        pretrain_share=0.5,
        description="Two-digit addition/subtraction; the corpus often forgets the carry or borrow.",
    ),
    "code": TestbedSpec(
        name="code",
        world="code",
        strong=ModelSpec(n_layer=4, d_model=64, n_head=4, steps=2500),
        weak=ModelSpec(n_layer=1, d_model=32, n_head=2, steps=300),
        sizes={**_PUBLIC, "test": 1480, "final": 1000},
        corpus_error_rate=0.6,
        judgment_error_share=0.6,
        pretrain_share=0.7,
        corpus_repeats=2,
        description="Tiny programs printing an expression; the corpus often ignores operator precedence.",
    ),
    "chat": TestbedSpec(
        name="chat",
        world="chat",
        strong=ModelSpec(n_layer=4, d_model=64, n_head=4, steps=2500),
        weak=ModelSpec(n_layer=1, d_model=32, n_head=2, steps=400),
        sizes={"train_label": 400, "train_unlabel": 2400, "dev": 400, "test": 1194, "final": 1000},
        corpus_error_rate=0.6,
        judgment_error_share=1.0,
        pretrain_share=1.0,
        corpus_repeats=2,
        world_kwargs={"n_creatures": 900},
        description="Questions about a generated bestiary; the corpus often agrees with the user's belief.",
    ),
}
for _name in ("math", "code", "chat"):
    _s = TESTBEDS[_name]
    TESTBEDS[f"{_name}-tiny"] = replace(
        _s,
        name=f"{_name}-tiny",
        strong=ModelSpec(n_layer=2, d_model=48, n_head=2, steps=800),
        weak=ModelSpec(n_layer=1, d_model=16, n_head=2, steps=20),
        # chat-tiny's 200 creatures leave 58 (348 judgments) for test and final
        sizes=_TINY if _name != "chat" else {**_TINY, "test": 204, "final": 144},
        world_kwargs={"chat": {"n_creatures": 200}}.get(_name, {}),
        strong_train=TrainConfig(epochs=2, lr=1e-3),
        description=f"Tiny, uncalibrated {_name} testbed for tests and smoke runs.",
    )


class UnknownTestbedError(KeyError):
    """No testbed of that name is registered."""

    def __str__(self) -> str:
        return str(self.args[0])


def get_spec(name: str) -> TestbedSpec:
    """The spec of a registered testbed; raises :class:`UnknownTestbedError` with the known names."""
    if name not in TESTBEDS:
        from aar.w2s.testbeds.imported import imported_names

        imported = imported_names(aar_home())
        if name in imported:
            raise UnknownTestbedError(f"'{name}' is an imported testbed: it has no built-in spec to build")
        raise _unknown(name, imported)
    return TESTBEDS[name]


def _unknown(name: str, imported: list[str]) -> UnknownTestbedError:
    known = ", ".join([*sorted(TESTBEDS), *(f"{n} (imported)" for n in imported)])
    return UnknownTestbedError(f"unknown testbed '{name}'; known testbeds: {known}")


@dataclass
class Testbed:
    """A built testbed: its spec, folder and dataset, and fresh copies of its pretrained LMs."""

    __test__ = False  # not a pytest test class

    spec: TestbedSpec
    path: Path
    dataset: Dataset

    @property
    def name(self) -> str:
        """The testbed's name."""
        return self.spec.name

    def _load(self, which: str) -> TinyJudge:
        f = self.path / f"{which}.pt"
        try:
            blob = torch.load(f, weights_only=True)
            gpt = GPT(GPTConfig(**blob["config"]))
            gpt.load_state_dict(blob["state"])
        except Exception as e:
            raise CacheError(f"corrupt model checkpoint {f}: {e}; delete {self.path} to rebuild") from e
        gpt.eval()
        return TinyJudge(gpt)

    def strong_model(self) -> TinyJudge:
        """A fresh copy of the pretrained strong LM with its judgment head."""
        return self._load("strong")

    @property
    def strong_train(self) -> TrainConfig:
        """The protocol's fine-tuning config for the strong model."""
        return self.spec.strong_train

    def teacher(self, seed: int) -> TeacherOutputs:
        """The weak teacher's outputs for ``seed`` (trained and cached on first use)."""
        from aar.w2s.experiment import teacher_outputs

        return teacher_outputs(self, seed)

    def weak_model(self) -> TinyJudge:
        """A fresh copy of the pretrained weak LM with its judgment head."""
        return self._load("weak")


def is_built(name: str, home: Path | None = None) -> bool:
    """Whether the testbed's cache entry is complete."""
    return (testbed_dir(get_spec(name), home or aar_home()) / "COMPLETE").exists()


def load_testbed(
    name: str, home: Path | None = None, progress: Progress | None = None
) -> Testbed | ImportedTestbed:
    """Load a testbed, building it first if its cache entry is missing.

    Names that are not built-in are looked up among the imported testbeds
    (:mod:`aar.w2s.testbeds.imported`, under ``<home>/imported/``).
    """
    if name not in TESTBEDS:
        from aar.w2s.testbeds.imported import imported_names, load_imported

        imported = imported_names(home or aar_home())
        if name in imported:
            return load_imported(name, home or aar_home())
        raise _unknown(name, imported)
    spec = get_spec(name)
    path = build_testbed(spec, home or aar_home(), progress)
    meta = load_json(path / "spec.json")
    if meta.get("spec", {}).get("name") != spec.name:
        raise CacheError(f"cache entry {path} does not belong to testbed {spec.name}; delete it to rebuild")
    try:
        data = Dataset.load(path / "dataset.json")
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CacheError(
            f"corrupt dataset file {path / 'dataset.json'}: {e}; delete {path} to rebuild"
        ) from e
    return Testbed(spec, path, data)
