"""The contract of a labelled testbed, declared once.

Two kinds of testbed exist: the built-in ones (:class:`~aar.w2s.testbeds.registry.Testbed`, tiny LMs
pretrained here) and those imported from the original study's layout
(:class:`~aar.w2s.testbeds.imported.ImportedTestbed`, Hugging Face models). The reference runs, the
public view, the vault bundle, baselines and reports work on either through :class:`LabelledTestbed`
alone, so they depend on this module and not on the two implementations.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Protocol

from aar.w2s.data import Dataset
from aar.w2s.methods.base import TeacherOutputs
from aar.w2s.models.base import JudgeModel
from aar.w2s.train import TrainConfig


class TestbedSpecLike(Protocol):
    """What callers read of a testbed's spec (built-in :class:`TestbedSpec` or imported ``ImportedSpec``)."""

    @property
    def name(self) -> str:
        """The testbed's name."""

    @property
    def world(self) -> str:
        """The task family (``math``, ``code``, ``chat``; ``binary`` or ``pairwise`` when imported)."""

    @property
    def description(self) -> str:
        """One line for listings, views and bundles."""

    @property
    def weak_train(self) -> TrainConfig:
        """The protocol's fine-tuning config for the weak teacher."""

    @property
    def strong_train(self) -> TrainConfig:
        """The protocol's fine-tuning config for the strong model."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (recorded in results and manifests)."""


class LabelledTestbed(Protocol):
    """A testbed with its labels: held by the harness and the server's operator, never by a method.

    ``teacher`` and the reference runs cache their results under ``path``; ``public_strong_model``
    says what the public view records of the strong model (``None``: copy ``path/strong.pt``);
    ``imported_teacher`` gives fixed teacher outputs shipped with the testbed (empty: train one).
    Both implementations are dataclasses, so :func:`dataclasses.replace` makes modified copies.
    """

    __dataclass_fields__: ClassVar[dict[str, Any]]

    @property
    def spec(self) -> TestbedSpecLike:
        """The testbed's spec."""

    @property
    def path(self) -> Path:
        """The testbed's cache folder."""

    @property
    def dataset(self) -> Dataset:
        """Every split, with labels."""

    @property
    def name(self) -> str:
        """The testbed's name."""

    @property
    def strong_train(self) -> TrainConfig:
        """The protocol's fine-tuning config for the strong model."""

    @property
    def teacher_on_test(self) -> bool:
        """The protocol option: does the public view carry the teacher's dev/test outputs too?"""

    def strong_model(self) -> JudgeModel:
        """A fresh copy of the pretrained strong LM with its judgment head."""

    def weak_model(self) -> JudgeModel:
        """A fresh copy of the pretrained weak LM with its judgment head."""

    def teacher(self, seed: int) -> TeacherOutputs:
        """The weak teacher's outputs for ``seed`` (trained and cached on first use)."""

    def public_strong_model(self) -> dict[str, Any] | None:
        """The strong model's settings for the public view, or ``None`` to ship ``strong.pt``."""

    def imported_teacher(self, seed: int) -> dict[str, float]:
        """Teacher outputs shipped with the testbed for ``seed`` (P(label=1) by id), or ``{}``."""
