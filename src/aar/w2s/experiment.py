"""Running methods on a testbed: cached teacher and ceiling runs, one method run, validation.

The weak teacher (the small LM fine-tuned on ``train_label``) and the ceiling (the strong LM
fine-tuned on the ground truth of ``train_unlabel``) are run once per seed and cached in the
testbed's folder, keyed by seed, the training config and the ids they predict on.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from aar.fileio import write_json_atomic
from aar.w2s.cache import CacheError, key_of, load_json
from aar.w2s.data import labels_of
from aar.w2s.methods.base import Budget, Method, MethodContext, TeacherOutputs, check_predictions
from aar.w2s.models.base import predict_proba
from aar.w2s.testbeds.registry import Testbed

if TYPE_CHECKING:
    from aar.w2s.public import PublicTestbed
from aar.w2s.train import finetune

TEACHER_SPLITS = ("train_unlabel", "dev", "test", "final")  # what the weak teacher predicts on
CEILING_SPLITS = ("dev", "test", "final")  # ... and the ceiling


def _ids_digest(testbed: Testbed, splits: tuple[str, ...]) -> str:
    """sha256 of the sorted ids of ``splits`` (the same however the examples are split or ordered)."""
    ids = sorted(e.id for s in splits for e in testbed.dataset.splits.get(s, []))
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()


def _read_probs(path: Path) -> dict[str, float]:
    probs = load_json(path).get("probs")
    if not isinstance(probs, dict) or not probs:
        raise CacheError(f"corrupt cache file {path}: no predictions; delete it to rebuild")
    return {k: float(v) for k, v in probs.items()}


def _cached_probs(
    testbed: Testbed, kind: str, seed: int, compute, splits: tuple[str, ...]
) -> dict[str, float]:
    """Cached predictions of ``kind`` for ``seed``: keyed by the training config and the predicted ids.

    The ids are in the key, so predictions made on another draw of the test or final split are
    never reused. A file of the older naming (config only) is reused only if it covers exactly the
    ids asked for (e.g. an imported testbed whose splits did not change).
    """
    cfg = testbed.spec.weak_train if kind == "teacher" else testbed.spec.strong_train
    ids_key = _ids_digest(testbed, splits)
    path = testbed.path / f"{kind}-s{seed}-{key_of({'config': cfg.to_dict(), 'ids': ids_key})}.json"
    if path.exists():
        return _read_probs(path)
    legacy = testbed.path / f"{kind}-s{seed}-{key_of(cfg.to_dict())}.json"
    wanted = {e.id for s in splits for e in testbed.dataset.splits.get(s, [])}
    if legacy.exists():
        try:
            old = _read_probs(legacy)
        except CacheError:
            old = {}
        if set(old) == wanted:
            legacy.replace(path)
            return old
    torch.set_num_threads(1)
    t0 = time.time()
    probs = compute()
    write_json_atomic(
        path,
        {
            "seed": seed,
            "config": cfg.to_dict(),
            "splits": list(splits),
            "ids_sha256": ids_key,
            "seconds": time.time() - t0,
            "probs": probs,
        },
    )
    return probs


def teacher_outputs(testbed: Testbed, seed: int) -> TeacherOutputs:
    """The weak teacher of ``seed``: trained on ``train_label``, P(label=1) on every other split.

    Every other split includes ``final`` (operator side only: public views export a subset).

    A testbed with imported teacher outputs (``imported_teacher(seed)``: P by example id) uses them
    on the splits they cover and trains the teacher only for the others.
    """
    fixed = testbed.imported_teacher(seed) if hasattr(testbed, "imported_teacher") else {}

    def compute() -> dict[str, float]:
        d = testbed.dataset
        splits = TEACHER_SPLITS
        todo = [s for s in splits if not all(e.id in fixed for e in d.splits[s])]
        out = {e.id: fixed[e.id] for s in splits if s not in todo for e in d.splits[s]}
        if not todo:
            return out
        model = testbed.weak_model()
        model.prepare(d.inputs("train_unlabel"))
        tl = d.splits["train_label"]
        finetune(model, tl, labels_of(tl), testbed.spec.weak_train, seed=seed)
        for split in todo:
            xs = d.inputs(split)
            out.update(zip((e.id for e in xs), predict_proba(model, xs).tolist(), strict=True))
        return out

    return TeacherOutputs(_cached_probs(testbed, "teacher", seed, compute, TEACHER_SPLITS))


def ceiling_probs(testbed: Testbed, seed: int) -> dict[str, float]:
    """The ceiling of ``seed``: strong LM trained on the truth of ``train_unlabel``; P on dev, test, final."""

    def compute() -> dict[str, float]:
        d = testbed.dataset
        model = testbed.strong_model()
        model.prepare(d.inputs("train_unlabel"))
        tu = d.splits["train_unlabel"]
        finetune(model, tu, labels_of(tu), testbed.spec.strong_train, seed=seed * 1000)
        out = {}
        for split in CEILING_SPLITS:
            xs = d.inputs(split)
            if xs:
                out.update(zip((e.id for e in xs), predict_proba(model, xs).tolist(), strict=True))
        return out

    return _cached_probs(testbed, "ceiling", seed, compute, CEILING_SPLITS)


@dataclass
class MethodRun:
    """The output of one method run: P(label=1) per requested example id, and its cost.

    ``holdout_probs``: predictions on the held-out slice of ``train_unlabel`` (see
    :func:`holdout_ids`) when the run held one out, else empty.
    """

    method: str
    params: dict
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
    testbed: Testbed | PublicTestbed,
    method: Method,
    seed: int = 0,
    params: dict | None = None,
    splits: tuple[str, ...] = ("test",),
    budget: Budget | None = None,
    holdout: float = 0.0,
) -> MethodRun:
    """Run ``method`` for ``seed`` over a label-free view and return validated predictions on ``splits``.

    A labelled :class:`Testbed` is first exported to its cached public view
    (:func:`aar.w2s.public.cached_public_view`): the method's context is built from the view only
    (inputs without labels, the teacher's ``train_unlabel`` outputs, a plain checkpoint loader), so no
    object it can reach leads to a label. Method *files* should still run in a child process
    (:mod:`aar.w2s.worker`): in this process the labelled testbed may be in memory. ``holdout`` keeps
    that share of ``train_unlabel`` away from the method (inputs and teacher outputs) and predicts it
    too (``MethodRun.holdout_probs``), for label-free diagnostics.
    """
    from aar.w2s.public import PublicTestbed, cached_public_view

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
        budget=budget or Budget(),
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


def accuracy_on(testbed: Testbed, probs: dict[str, float], split: str = "test") -> float:
    """Accuracy of ``probs`` on a labelled split (for the harness, never for methods)."""
    exs = testbed.dataset.splits[split]
    p = np.array([probs[e.id] for e in exs])
    return float(np.mean((p > 0.5).astype(int) == np.array(labels_of(exs))))


def save_run(run: MethodRun, path: Path) -> None:
    """Write a method run as JSON, atomically."""
    write_json_atomic(path, run.__dict__)
