"""Building a testbed: generate the world, pretrain the strong and weak LMs, make the splits.

Deterministic given the spec's seed, cached under ``AAR_HOME/testbeds/<name>-<key>/`` and
written atomically, so a killed build leaves no half-written entry.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path

import torch

from aar.w2s.cache import build_atomically, key_of, save_torch_atomic
from aar.w2s.data import SPLITS, Dataset, Example, write_json_atomic
from aar.w2s.models.pretrain import pretrain
from aar.w2s.testbeds.spec import ModelSpec, TestbedSpec
from aar.w2s.testbeds.worlds import WORLDS

_SHORT = {"train_label": "tl", "train_unlabel": "tu", "dev": "dv", "test": "te"}
Progress = Callable[[str, int, int], None]  # (task, done, total)


def make_dataset(spec: TestbedSpec) -> tuple[Dataset, list[tuple[str, str]]]:
    """The judgment splits and the pretraining corpus of ``spec``'s world.

    Judgment problems never appear in the corpus unless the world is a knowledge domain
    (``pretrain_share`` 1.0), in which case splits are disjoint by problem group instead.
    """
    world = WORLDS[spec.world](**spec.world_kwargs)
    rng = random.Random(spec.seed)
    problems = world.problems(rng)
    sum(spec.sizes[s] for s in SPLITS)
    if spec.pretrain_share >= 1.0:
        corpus_problems = problems
        by_group: dict[str, list] = {}
        for p in problems:
            by_group.setdefault(p.key.split(".")[0], []).append(p)
        keys = sorted(by_group)
        rng.shuffle(keys)
        groups = [by_group[k] for k in keys]
    else:
        cut = int(spec.pretrain_share * len(problems))
        corpus_problems, groups = problems[:cut], [[p] for p in problems[cut:]]
    corpus = [
        world.corpus_line(p, spec.corpus_error_rate, rng)
        for p in corpus_problems
        for _ in range(spec.corpus_repeats)
    ]
    # Whole groups go to one split, so no underlying problem (or creature) spans two splits.
    splits: dict[str, list[Example]] = {}
    it = iter(groups)
    for split in SPLITS:
        chosen: list = []
        while len(chosen) < spec.sizes[split]:
            group = next(it, None)
            if group is None:
                raise ValueError(f"testbed {spec.name}: not enough judgment problems for the split sizes")
            chosen.extend(group)
        splits[split] = [
            world.judgment(p, spec.judgment_error_share, rng, f"{spec.name}-{_SHORT[split]}{j:05d}")
            for j, p in enumerate(chosen[: spec.sizes[split]])
        ]
    return Dataset(spec.name, splits), corpus


def _pretrain_one(
    label: str,
    mspec: ModelSpec,
    spec: TestbedSpec,
    corpus: list[tuple[str, str]],
    seed: int,
    progress: Progress | None,
) -> torch.nn.Module:
    def on_step(step: int, loss: float) -> None:
        if progress is not None and (step % 25 == 0 or step == mspec.steps - 1):
            progress(f"{spec.name}: pretrain {label} (loss {loss:.3f})", step + 1, mspec.steps)

    return pretrain(
        mspec.gpt_config(spec.block_size), corpus, mspec.steps, mspec.batch_size, mspec.lr, seed, on_step
    )


BUILD_VERSION = 1  # bump when pretraining or splitting changes: it is part of the cache key
# Fine-tuning configs do not change what a build makes; the teacher and ceiling caches key on them.
_NOT_IN_BUILD = ("weak_train", "strong_train", "description", "teacher_on_test")


def testbed_dir(spec: TestbedSpec, home: Path) -> Path:
    """Cache folder of ``spec``: a key of what the build depends on (spec, world and builder versions)."""
    built_from = {k: v for k, v in spec.to_dict().items() if k not in _NOT_IN_BUILD}
    key = key_of({"spec": built_from, "world": WORLDS[spec.world].version, "build": BUILD_VERSION})
    return home / "testbeds" / f"{spec.name}-{key}"


def build_testbed(
    spec: TestbedSpec, home: Path, progress: Progress | None = None, force: bool = False
) -> Path:
    """Build ``spec`` into its cache folder unless already complete; return the folder."""
    final = testbed_dir(spec, home)
    if (final / "COMPLETE").exists() and not force:
        return final
    torch.set_num_threads(1)

    def build(tmp: Path) -> None:
        t0 = time.time()
        data, corpus = make_dataset(spec)
        data.save(tmp / "dataset.json")
        timings = {}
        for label, mspec, seed in (
            ("strong", spec.strong, spec.seed + 1),
            ("weak", spec.weak, spec.seed + 2),
        ):
            t = time.time()
            gpt = _pretrain_one(label, mspec, spec, corpus, seed, progress)
            save_torch_atomic({"config": gpt.cfg.to_dict(), "state": gpt.state_dict()}, tmp / f"{label}.pt")
            timings[f"pretrain_{label}_s"] = round(time.time() - t, 2)
        timings["total_s"] = round(time.time() - t0, 2)
        write_json_atomic(
            tmp / "spec.json", {"spec": spec.to_dict(), "corpus_lines": len(corpus), "timings": timings}
        )

    return build_atomically(final, build)
