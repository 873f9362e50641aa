"""The method ("idea") interface: what a method receives, and how methods are found.

A method is one Python module (or one user file) defining:

    NAME = "my_idea"                       # unique, lowercase
    DESCRIPTION = "one line on what it does"
    PARAMS = {"keep": 0.5}                 # parameters with defaults (numbers, strings, bools)
    def run(ctx: MethodContext, **params) -> numpy array of P(label=1), one per ctx.predict_inputs

The context carries everything a method may use and nothing it may not: unlabelled inputs, the
weak teacher's outputs on ``train_unlabel`` (the original study's protocol: teacher labels exist for
the unlabelled training split only; a testbed's ``teacher_on_test`` option also exposes dev/test),
fresh copies of the strong base model from a plain checkpoint loader, and a seed. There is
no path from it to any ground-truth label: the harness builds it from a label-free public view
(:class:`aar.w2s.public.PublicTestbed`), never from the labelled testbed object.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from aar.w2s.data import Example
from aar.w2s.models.base import JudgeModel
from aar.w2s.train import TrainConfig


class MethodError(ValueError):
    """A method is unknown, malformed, was given bad parameters, or returned bad predictions."""


TRAIN_ONLY = "train_unlabel inputs only (the original study's protocol; the testbed option teacher_on_test "
TRAIN_ONLY += "also exposes dev and test)"


@dataclass(frozen=True)
class TeacherOutputs:
    """The weak teacher's P(label=1), keyed by example id.

    ``scope`` says which inputs the outputs cover; asking for any other example is a
    :class:`MethodError` naming it (by default methods get ``train_unlabel`` outputs only).
    """

    probs: dict[str, float]
    scope: str = "the inputs it was given"

    def of(self, examples: Sequence[Example]) -> np.ndarray:
        """Teacher probabilities for ``examples``, in order."""
        try:
            return np.array([self.probs[e.id] for e in examples], dtype=float)
        except KeyError as e:
            raise MethodError(
                f"the weak teacher has no output for example {e.args[0]}: its outputs cover {self.scope}"
            ) from None

    def restricted(self, ids: Iterable[str], scope: str) -> TeacherOutputs:
        """The outputs for ``ids`` only (those the teacher has)."""
        return TeacherOutputs({i: self.probs[i] for i in ids if i in self.probs}, scope)


@dataclass
class MethodContext:
    """What a method may use. Inputs here carry no labels."""

    testbed: str
    unlabelled: list[Example]  # the train_unlabel split, labels stripped
    dev: list[Example]
    predict_inputs: list[Example]  # what to return probabilities for (test and/or dev)
    teacher: TeacherOutputs  # train_unlabel outputs (dev/test too only under teacher_on_test)
    new_strong_model: Callable[[], JudgeModel]  # a plain checkpoint loader, never a testbed's method
    train_config: TrainConfig
    seed: int = 0

    def __post_init__(self) -> None:
        for ex in (*self.unlabelled, *self.dev, *self.predict_inputs):
            if ex.label is not None:
                raise MethodError("a method context must not carry labels")

    def strong_model(self) -> JudgeModel:
        """A fresh pretrained strong model, prepared (centred) on the unlabelled inputs."""
        m = self.new_strong_model()
        m.prepare(self.unlabelled)
        return m


@dataclass(frozen=True)
class Method:
    """A loaded method: its name, description, parameter defaults and run function."""

    name: str
    description: str
    params: dict[str, Any]
    run: Callable[..., np.ndarray]
    source: str  # module name or file path

    def resolve_params(self, given: dict[str, Any] | None) -> dict[str, Any]:
        """Defaults overridden by ``given``; unknown names or wrong types are a :class:`MethodError`."""
        out = dict(self.params)
        for k, v in (given or {}).items():
            if k not in self.params:
                known = ", ".join(sorted(self.params)) or "none"
                raise MethodError(f"method '{self.name}' has no parameter '{k}' (parameters: {known})")
            default = self.params[k]
            if isinstance(default, bool) != isinstance(v, bool) or (
                isinstance(default, (int, float)) and not isinstance(v, (int, float))
            ):
                raise MethodError(f"parameter '{k}' of '{self.name}' must be like {default!r}, got {v!r}")
            out[k] = type(default)(v) if isinstance(default, float) else v
        return out


def check_predictions(probs: object, n: int, method: str) -> np.ndarray:
    """Validate a method's output: ``n`` finite probabilities in [0, 1]."""
    try:
        p = np.asarray(probs, dtype=float).reshape(-1)
    except (TypeError, ValueError) as e:
        raise MethodError(
            f"method '{method}' returned something that is not an array of numbers: {e}"
        ) from None
    if p.size != n:
        raise MethodError(f"method '{method}' returned {p.size} predictions for {n} inputs")
    if not np.all(np.isfinite(p)):
        raise MethodError(f"method '{method}' returned NaN or infinite predictions")
    if p.min() < 0 or p.max() > 1:
        raise MethodError(
            f"method '{method}' returned values outside [0, 1] (min {p.min():.3g}, max {p.max():.3g})"
        )
    return p
