"""The agent-visible view of a testbed: what an agent, its sandbox and every method run see.

An agent gets only the *public view*: unlabelled inputs of ``train_unlabel``, ``dev`` and ``test``,
the weak teacher's outputs for a few seeds, and the strong model's checkpoint. No label, no
public/private assignment, no weak checkpoint or ``train_label`` data (which would let an agent
re-derive labels) is in it, and nothing of the ``final`` split. The server's ground-truth bundle is
built in :mod:`aar.w2s.public`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from aar.fileio import write_json_atomic
from aar.w2s.cache import CacheError, build_atomically, key_of, load_json
from aar.w2s.data import Dataset
from aar.w2s.methods.base import TRAIN_ONLY, TeacherOutputs
from aar.w2s.models.base import JudgeModel
from aar.w2s.models.judge import TinyJudge
from aar.w2s.models.tiny import GPT, GPTConfig
from aar.w2s.references import teacher_outputs
from aar.w2s.testbeds.protocol import LabelledTestbed
from aar.w2s.testbeds.spec import TestbedSpec
from aar.w2s.train import TrainConfig

VISIBLE_SPLITS = ("train_unlabel", "dev", "test")


VIEW_VERSION = 2  # 2: teacher outputs on train_unlabel only unless teacher_on_test


@dataclass(frozen=True)
class StrongModelLoader:
    """Loads a fresh pretrained strong model from a checkpoint file (or Hugging Face settings).

    What a :class:`~aar.w2s.methods.base.MethodContext` holds to make strong models: a plain value
    (a path or a settings dict), so nothing in it leads back to a labelled testbed object.
    """

    checkpoint: str | None = None
    hf: dict[str, Any] | None = None

    def __call__(self) -> JudgeModel:
        """A fresh copy of the pretrained strong LM with its judgment head."""
        if self.hf is not None:
            from aar.w2s.models.hf import HFJudge, HFModelSpec

            return HFJudge(HFModelSpec.from_dict(self.hf))
        if self.checkpoint is None:
            raise CacheError("the strong model loader names no checkpoint")
        blob = torch.load(self.checkpoint, weights_only=True)
        gpt = GPT(GPTConfig(**blob["config"]))
        gpt.load_state_dict(blob["state"])
        gpt.eval()
        return TinyJudge(gpt)


@dataclass
class PublicTestbed:
    """A testbed as an agent sees it: inputs without labels, teacher outputs, the strong model.

    Teacher outputs cover ``train_unlabel`` only, unless the testbed's protocol has
    ``teacher_on_test`` (then dev and test too).
    """

    __test__ = False  # not a pytest test class

    name: str
    path: Path
    dataset: Dataset  # train_label empty, every label None
    strong_train: TrainConfig
    seeds: list[int]
    strong_ref: dict[str, Any] | None = None  # Hugging Face model settings, where the view has no strong.pt
    teacher_on_test: bool = False

    def strong_loader(self) -> StrongModelLoader:
        """A plain loader of fresh strong models (what method contexts hold)."""
        if self.strong_ref is not None:
            return StrongModelLoader(hf=dict(self.strong_ref))
        return StrongModelLoader(checkpoint=str(self.path / "strong.pt"))

    def strong_model(self) -> JudgeModel:
        """A fresh copy of the pretrained strong LM with its judgment head."""
        return self.strong_loader()()

    @property
    def teacher_splits(self) -> tuple[str, ...]:
        """The splits the teacher's outputs cover in this view."""
        return VISIBLE_SPLITS if self.teacher_on_test else ("train_unlabel",)

    def teacher(self, seed: int) -> TeacherOutputs:
        """The weak teacher's outputs for ``seed`` (only the exported seeds exist)."""
        f = self.path / f"teacher-s{seed}.json"
        if not f.exists():
            raise CacheError(
                f"no teacher outputs for seed {seed} in {self.path}; exported seeds: {self.seeds}"
            )
        scope = "train_unlabel, dev and test inputs" if self.teacher_on_test else TRAIN_ONLY
        return TeacherOutputs({k: float(v) for k, v in load_json(f)["probs"].items()}, scope)


def export_public_view(
    testbed: LabelledTestbed, dest: Path, seeds: Sequence[int], teacher_on_test: bool | None = None
) -> Path:
    """Write ``testbed``'s public view to ``dest`` (atomically, world-readable); returns ``dest``.

    Teacher outputs go in for ``train_unlabel`` only, unless ``teacher_on_test`` (default: the
    testbed spec's option) also exposes dev and test; ``view.json`` records which.
    """
    on_test = protocol_teacher_on_test(testbed) if teacher_on_test is None else bool(teacher_on_test)
    teacher_splits = VISIBLE_SPLITS if on_test else ("train_unlabel",)

    def build(tmp: Path) -> None:
        splits = {s: testbed.dataset.inputs(s) for s in VISIBLE_SPLITS}
        Dataset(testbed.name, {"train_label": [], **splits}).save(tmp / "inputs.json")
        for seed in seeds:
            probs = teacher_outputs(testbed, seed).probs
            visible = {e.id: probs[e.id] for s in teacher_splits for e in splits[s]}
            write_json_atomic(tmp / f"teacher-s{seed}.json", {"seed": seed, "probs": visible})
        # built-in testbeds ship their small strong checkpoint; imported ones name their (large,
        # read-only) strong model instead of copying it
        ref = testbed.public_strong_model()
        if ref is None:
            shutil.copyfile(testbed.path / "strong.pt", tmp / "strong.pt")
        write_json_atomic(
            tmp / "view.json",
            {
                **({"strong_model": ref} if ref is not None else {}),
                "name": testbed.name,
                "description": testbed.spec.description,
                "task": testbed.spec.world,
                "sizes": {s: len(v) for s, v in splits.items()},
                "seeds": list(seeds),
                "strong_train": testbed.spec.strong_train.to_dict(),
                "teacher_on_test": on_test,
                "teacher_splits": list(teacher_splits),
                "view_version": VIEW_VERSION,
            },
        )
        for p in [tmp, *tmp.rglob("*")]:  # sandboxed readers run as other uids
            os.chmod(p, 0o755 if p.is_dir() else 0o644)

    return build_atomically(Path(dest), build)


def protocol_teacher_on_test(testbed: LabelledTestbed) -> bool:
    """The testbed's protocol option ``teacher_on_test`` (False where its spec has none)."""
    return testbed.teacher_on_test


def with_teacher_on_test(testbed: LabelledTestbed, on: bool = True) -> LabelledTestbed:
    """A copy of a built-in testbed whose protocol exposes the teacher's dev/test outputs (or not)."""
    if not isinstance(testbed.spec, TestbedSpec):
        raise ValueError(f"testbed {testbed.name} has no teacher_on_test option")
    return replace(testbed, spec=replace(testbed.spec, teacher_on_test=on))


def cached_public_view(testbed: LabelledTestbed, seeds: Sequence[int]) -> PublicTestbed:
    """The public view of ``testbed`` for ``seeds``, exported once and cached beside the testbeds.

    Every method the harness runs, shipped or not, runs over such a label-free view, never over the
    labelled testbed object. The cache key covers the seeds, the protocol, the teacher's training
    config and a digest of the visible example ids (so a redrawn test split makes a new view).
    """
    ids = hashlib.sha256()
    for s in VISIBLE_SPLITS:
        for e in testbed.dataset.splits.get(s, []):
            ids.update(e.id.encode() + b"\n")
    key = key_of(
        {
            "seeds": sorted(set(int(s) for s in seeds)),
            "teacher_on_test": protocol_teacher_on_test(testbed),
            "weak_train": testbed.spec.weak_train.to_dict(),
            "ids": ids.hexdigest(),
            "version": VIEW_VERSION,
        }
    )
    dest = Path(testbed.path).parent.parent / "views" / f"{Path(testbed.path).name}-{key}"
    if not (dest / "COMPLETE").exists():
        export_public_view(testbed, dest, sorted(set(int(s) for s in seeds)))
    return load_public_view(dest)


def load_public_view(path: Path) -> PublicTestbed:
    """Open a public view written by :func:`export_public_view`."""
    path = Path(path)
    if not (path / "COMPLETE").exists():
        raise CacheError(f"{path} is not a complete testbed view")
    meta = load_json(path / "view.json")
    data = Dataset.load(path / "inputs.json")
    for xs in data.splits.values():
        if any(e.label is not None for e in xs):
            raise CacheError(f"{path} carries labels: refusing to use it as a public view")
    return PublicTestbed(
        meta["name"],
        path,
        data,
        TrainConfig(**meta["strong_train"]),
        list(meta["seeds"]),
        meta.get("strong_model"),
        # views written before the protocol option carried teacher outputs on dev and test
        bool(meta.get("teacher_on_test", "view_version" not in meta)),
    )
