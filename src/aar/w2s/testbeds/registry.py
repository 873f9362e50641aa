"""Loading a testbed by name: a built-in one (built on first use) or an imported one.

The built-in specs are in :mod:`aar.w2s.testbeds.builtin` (``TESTBEDS`` is importable from here too);
every testbed satisfies :class:`~aar.w2s.testbeds.protocol.LabelledTestbed`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from aar.w2s.cache import CacheError, aar_home, load_json
from aar.w2s.data import Dataset
from aar.w2s.methods.base import TeacherOutputs
from aar.w2s.models.judge import TinyJudge
from aar.w2s.models.tiny import GPT, GPTConfig
from aar.w2s.references import teacher_outputs
from aar.w2s.testbeds.build import Progress, build_testbed, testbed_dir
from aar.w2s.testbeds.builtin import TESTBEDS
from aar.w2s.testbeds.imported import imported_names, load_imported
from aar.w2s.testbeds.protocol import LabelledTestbed
from aar.w2s.testbeds.spec import TestbedSpec
from aar.w2s.train import TrainConfig

__all__ = ["TESTBEDS", "Testbed", "UnknownTestbedError", "get_spec", "is_built", "load_testbed"]

class UnknownTestbedError(KeyError):
    """No testbed of that name is registered."""

    def __str__(self) -> str:
        return str(self.args[0])


def get_spec(name: str) -> TestbedSpec:
    """The spec of a registered testbed; raises :class:`UnknownTestbedError` with the known names."""
    if name not in TESTBEDS:
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

    @property
    def teacher_on_test(self) -> bool:
        """The protocol option of the spec: the public view carries the teacher's dev/test outputs."""
        return self.spec.teacher_on_test

    def teacher(self, seed: int) -> TeacherOutputs:
        """The weak teacher's outputs for ``seed`` (trained and cached on first use)."""
        return teacher_outputs(self, seed)

    def public_strong_model(self) -> dict[str, Any] | None:
        """``None``: the public view ships this testbed's small ``strong.pt`` itself."""
        return None

    def imported_teacher(self, seed: int) -> dict[str, float]:
        """Built-in testbeds ship no teacher outputs: the teacher is trained (``{}``)."""
        return {}

    def weak_model(self) -> TinyJudge:
        """A fresh copy of the pretrained weak LM with its judgment head."""
        return self._load("weak")


def is_built(name: str, home: Path | None = None) -> bool:
    """Whether the testbed's cache entry is complete."""
    return (testbed_dir(get_spec(name), home or aar_home()) / "COMPLETE").exists()


def load_testbed(
    name: str, home: Path | None = None, progress: Progress | None = None
) -> LabelledTestbed:
    """Load a testbed, building it first if its cache entry is missing.

    Names that are not built-in are looked up among the imported testbeds
    (:mod:`aar.w2s.testbeds.imported`, under ``<home>/imported/``).
    """
    if name not in TESTBEDS:
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
