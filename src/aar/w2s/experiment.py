"""Running a method on a testbed: one method run over the label-free view, validated.

The reference runs (weak teacher and ceiling, cached per seed) live in :mod:`aar.w2s.references`;
``teacher_outputs``, ``ceiling_probs`` and the split constants are importable from here too.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from aar.w2s.data import labels_of
from aar.w2s.methods.base import Method, MethodContext, check_predictions
from aar.w2s.references import CEILING_SPLITS, TEACHER_SPLITS, ceiling_probs, teacher_outputs
from aar.w2s.testbeds.protocol import LabelledTestbed
from aar.w2s.view import PublicTestbed, cached_public_view

__all__ = [
    "CEILING_SPLITS",
    "TEACHER_SPLITS",
    "MethodRun",
    "accuracy_on",
    "ceiling_probs",
    "holdout_ids",
    "run_method",
    "teacher_outputs",
]


@dataclass
class MethodRun:
    """The output of one method run: P(label=1) per requested example id, and its cost.

    ``holdout_probs``: predictions on the held-out slice of ``train_unlabel`` (see
    :func:`holdout_ids`) when the run held one out, else empty.
    """

    method: str
    params: dict[str, Any]
    seed: int
    probs: dict[str, float]
    seconds: float
    holdout_probs: dict[str, float] = field(default_factory=dict)


def holdout_ids(ids: list[str], share: float) -> set[str]:
    """A fixed slice of ``share`` of ``ids`` (by a hash of the id, the same for every seed and run).

    Diagnostics measure agreement with the teacher there: the run's student never trains on it and the
    method never sees the teacher's outputs for it, so agreement there is not memorisation.
    """
    if not 0.0 <= share < 1.0:
        raise ValueError(f"holdout share must be in [0, 1), got {share}")
    order = sorted(ids, key=lambda i: hashlib.sha256(f"holdout/{i}".encode()).hexdigest())
    return set(order[: round(share * len(order))])


def run_method(
    testbed: LabelledTestbed | PublicTestbed,
    method: Method,
    seed: int = 0,
    params: dict[str, Any] | None = None,
    splits: tuple[str, ...] = ("test",),
    holdout: float = 0.0,
) -> MethodRun:
    """Run ``method`` for ``seed`` over a label-free view and return validated predictions on ``splits``.

    A labelled testbed is first exported to its cached public view
    (:func:`aar.w2s.view.cached_public_view`): the method's context is built from the view only
    (inputs without labels, the teacher's ``train_unlabel`` outputs, a plain checkpoint loader), so no
    object it can reach leads to a label. Method *files* should still run in a child process
    (:mod:`aar.w2s.worker`): in this process the labelled testbed may be in memory. ``holdout`` keeps
    that share of ``train_unlabel`` away from the method (inputs and teacher outputs) and predicts it
    too (``MethodRun.holdout_probs``), for label-free diagnostics.
    """
    for s in splits:
        if s not in ("dev", "test"):
            raise ValueError(f"methods predict on 'dev' or 'test', not '{s}'")
    resolved = method.resolve_params(params)
    torch.set_num_threads(1)
    view = testbed if isinstance(testbed, PublicTestbed) else cached_public_view(testbed, [seed])
    d = view.dataset
    unlabelled = d.inputs("train_unlabel")
    held = holdout_ids([e.id for e in unlabelled], holdout) if holdout else set()
    held_inputs = [e for e in unlabelled if e.id in held]
    unlabelled = [e for e in unlabelled if e.id not in held]
    teacher = view.teacher(seed)
    visible_ids = [e.id for s in view.teacher_splits for e in d.inputs(s) if e.id not in held]
    split_inputs = [e for s in splits for e in d.inputs(s)]
    predict_inputs = split_inputs + held_inputs
    ctx = MethodContext(
        testbed=view.name,
        unlabelled=unlabelled,
        dev=d.inputs("dev"),
        predict_inputs=predict_inputs,
        teacher=teacher.restricted(visible_ids, teacher.scope),
        new_strong_model=view.strong_loader(),
        train_config=view.strong_train,
        seed=seed,
    )
    torch.manual_seed(seed)
    np.random.seed(seed)
    t0 = time.time()
    raw = method.run(ctx, **resolved)
    seconds = time.time() - t0
    p = check_predictions(raw, len(predict_inputs), method.name).tolist()
    n = len(split_inputs)
    return MethodRun(
        method.name,
        resolved,
        seed,
        dict(zip((e.id for e in split_inputs), p[:n], strict=True)),
        seconds,
        dict(zip((e.id for e in held_inputs), p[n:], strict=True)),
    )


def accuracy_on(testbed: LabelledTestbed, probs: dict[str, float], split: str = "test") -> float:
    """Accuracy of ``probs`` on a labelled split (for the harness, never for methods)."""
    exs = testbed.dataset.splits[split]
    p = np.array([probs[e.id] for e in exs])
    return float(np.mean((p > 0.5).astype(int) == np.array(labels_of(exs))))

