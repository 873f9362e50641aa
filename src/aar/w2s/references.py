"""The reference runs of a labelled testbed: the weak teacher and the ceiling, cached per seed.

The weak teacher (the small LM fine-tuned on ``train_label``) and the ceiling (the strong LM
fine-tuned on the ground truth of ``train_unlabel``) are run once per seed and cached in the
testbed's folder, keyed by seed, the training config and the ids they predict on. Everything above
(testbeds' ``teacher()``, the public view, the vault bundle, method runs) reads them from here.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from pathlib import Path

import torch

from aar.fileio import write_json_atomic
from aar.w2s.cache import CacheError, key_of, load_json
from aar.w2s.data import labels_of
from aar.w2s.methods.base import TeacherOutputs
from aar.w2s.models.base import predict_proba
from aar.w2s.testbeds.protocol import LabelledTestbed
from aar.w2s.train import finetune

TEACHER_SPLITS = ("train_unlabel", "dev", "test", "final")  # what the weak teacher predicts on
CEILING_SPLITS = ("dev", "test", "final")  # ... and the ceiling


def _ids_digest(testbed: LabelledTestbed, splits: tuple[str, ...]) -> str:
    """sha256 of the sorted ids of ``splits`` (the same however the examples are split or ordered)."""
    ids = sorted(e.id for s in splits for e in testbed.dataset.splits.get(s, []))
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()


def _read_probs(path: Path) -> dict[str, float]:
    probs = load_json(path).get("probs")
    if not isinstance(probs, dict) or not probs:
        raise CacheError(f"corrupt cache file {path}: no predictions; delete it to rebuild")
    return {k: float(v) for k, v in probs.items()}


def _cached_probs(
    testbed: LabelledTestbed,
    kind: str,
    seed: int,
    compute: Callable[[], dict[str, float]],
    splits: tuple[str, ...],
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


def teacher_outputs(testbed: LabelledTestbed, seed: int) -> TeacherOutputs:
    """The weak teacher of ``seed``: trained on ``train_label``, P(label=1) on every other split.

    Every other split includes ``final`` (operator side only: public views export a subset).

    A testbed with imported teacher outputs (``imported_teacher(seed)``: P by example id) uses them
    on the splits they cover and trains the teacher only for the others.
    """
    fixed = testbed.imported_teacher(seed)

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


def ceiling_probs(testbed: LabelledTestbed, seed: int) -> dict[str, float]:
    """The ceiling of ``seed``: strong LM trained on the truth of ``train_unlabel``; P on dev, test, final."""

    def compute() -> dict[str, float]:
        d = testbed.dataset
        model = testbed.strong_model()
        model.prepare(d.inputs("train_unlabel"))
        tu = d.splits["train_unlabel"]
        finetune(model, tu, labels_of(tu), testbed.spec.strong_train, seed=seed * 1000)
        out: dict[str, float] = {}
        for split in CEILING_SPLITS:
            xs = d.inputs(split)
            if xs:
                out.update(zip((e.id for e in xs), predict_proba(model, xs).tolist(), strict=True))
        return out

    return _cached_probs(testbed, "ceiling", seed, compute, CEILING_SPLITS)
