"""Building a testbed: generate the world, pretrain the strong and weak LMs, make the splits.

What anyone with the package can regenerate, and what only the operator holds:

- **Public, deterministic given the spec** (its seed): the world's problems, the pretraining corpus,
  the pretrained strong and weak LMs, and the ``train_label`` / ``train_unlabel`` / ``dev`` splits.
- **Secret, drawn per build**: the ``test`` and ``final`` splits. Their problems come from what is
  left of the problem pool after the corpus and the public splits (so never from the corpus, except
  in knowledge domains, and never sharing an underlying problem or creature with a public split),
  drawn, rendered (which answer is shown, hence the label) and named by a random generator keyed
  by a 32-byte salt made with :func:`secrets.token_bytes` at build time. The salt lives in the
  testbed's cache folder, ``secret/salt`` (folder mode 700, file mode 600), and is never exported;
  example ids of both splits are an HMAC of the salt, so they reveal neither the draw nor the order.

``aar build --force`` rebuilds with the *same* salt (the same draw: bundles already registered on a
server stay valid); ``--new-draw`` makes a new salt, hence new test and final splits and new ids.

Builds are cached under ``AAR_HOME/testbeds/<name>-<key>/`` (the key covers what the build depends
on, not the salt) and written atomically, so a killed build leaves no half-written entry. The
pretrained checkpoints are cached on their own under ``AAR_HOME/pretrained/``, keyed by a digest of
the corpus, the model spec and the pretraining seed, so a new draw (or a change of split sizes)
never repeats pretraining; checkpoints of an earlier build of the same corpus and models (build
version 1) are adopted instead of retrained.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import random
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path

import torch

from aar.fileio import atomic_writer, write_json_atomic
from aar.w2s.cache import build_atomically, key_of, load_json, save_torch_atomic
from aar.w2s.data import Dataset, Example
from aar.w2s.models.pretrain import pretrain
from aar.w2s.models.tiny import GPT
from aar.w2s.testbeds.secret import drawn_id, keyed, new_salt, read_salt, write_secret
from aar.w2s.testbeds.spec import ModelSpec, TestbedSpec
from aar.w2s.testbeds.worlds import WORLDS, Problem, World

PUBLIC_SPLITS = ("train_label", "train_unlabel", "dev")  # regenerable from the spec
DRAWN_SPLITS = ("test", "final")  # drawn under the build's secret salt
_SHORT = {"train_label": "tl", "train_unlabel": "tu", "dev": "dv"}
Progress = Callable[[str, int, int], None]  # (task, done, total)
Corpus = list[tuple[str, str]]


def _public_part(spec: TestbedSpec) -> tuple[World, dict[str, list[Example]], Corpus, list[list[Problem]]]:
    """World, public splits, corpus and the groups of problems left for the secret draw.

    This is the generation of build version 1 up to its ``dev`` split, consuming the seeded rng in
    the same order, so the corpus and the public splits are byte-identical to it.
    """
    world = WORLDS[spec.world](**spec.world_kwargs)
    rng = random.Random(spec.seed)
    problems = world.problems(rng)
    if spec.pretrain_share >= 1.0:
        corpus_problems = problems
        by_group: dict[str, list[Problem]] = {}
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
    for split in PUBLIC_SPLITS:
        chosen = _take_groups(it, spec.sizes[split], spec.name)
        splits[split] = [
            world.judgment(p, spec.judgment_error_share, rng, f"{spec.name}-{_SHORT[split]}{j:05d}")
            for j, p in enumerate(chosen)
        ]
    return world, splits, corpus, list(it)


def _take_groups(it: Iterator[list[Problem]], size: int, name: str) -> list[Problem]:
    """The next whole groups from ``it`` until ``size`` problems (the last group's rest is dropped)."""
    chosen: list[Problem] = []
    while len(chosen) < size:
        group = next(it, None)
        if group is None:
            raise ValueError(f"testbed {name}: not enough judgment problems for the split sizes")
        chosen.extend(group)
    return chosen[:size]


def draw_splits(
    spec: TestbedSpec, world: World, pool: list[list[Problem]], salt: bytes
) -> dict[str, list[Example]]:
    """The ``test`` and ``final`` splits drawn from ``pool`` (groups of problems) under ``salt``."""
    if len(salt) < 16:
        raise ValueError("the draw salt must have at least 16 bytes")
    rng = random.Random(keyed(salt, f"draw/{spec.name}"))
    groups = list(pool)
    rng.shuffle(groups)
    it = iter(groups)
    out: dict[str, list[Example]] = {}
    for split in DRAWN_SPLITS:
        chosen = _take_groups(it, spec.sizes.get(split, 0), spec.name)
        out[split] = [
            world.judgment(p, spec.judgment_error_share, rng, drawn_id(spec.name, salt, split, j))
            for j, p in enumerate(chosen)
        ]
    return out


def make_dataset(spec: TestbedSpec, salt: bytes | None = None) -> tuple[Dataset, Corpus]:
    """The judgment splits and the pretraining corpus of ``spec``'s world.

    Without ``salt`` only the public part exists: ``test`` and ``final`` are empty (they are drawn
    under the secret salt of a build, see the module docstring). Judgment problems never appear in
    the corpus unless the world is a knowledge domain (``pretrain_share`` 1.0), in which case splits
    are disjoint by problem group instead.
    """
    world, splits, corpus, pool = _public_part(spec)
    drawn = draw_splits(spec, world, pool, salt) if salt is not None else {s: [] for s in DRAWN_SPLITS}
    return Dataset(spec.name, {**splits, **drawn}), corpus


def corpus_digest(corpus: Corpus) -> str:
    """sha256 of the corpus as JSON (what pretraining depends on, besides the model and seed)."""
    return hashlib.sha256(json.dumps(corpus).encode()).hexdigest()


PRETRAIN_VERSION = 1  # bump when pretraining itself changes: it is part of the checkpoints' cache key


def pretrained_path(home: Path, spec: TestbedSpec, mspec: ModelSpec, seed: int, corpus: Corpus) -> Path:
    """Cache file of one pretrained LM: keyed by corpus digest, model spec, block size and seed."""
    key = key_of(
        {
            "corpus": corpus_digest(corpus),
            "model": asdict(mspec),
            "block_size": spec.block_size,
            "seed": seed,
            "version": PRETRAIN_VERSION,
        }
    )
    return Path(home) / "pretrained" / f"{spec.world}-{key}.pt"


def _pretrain_one(
    label: str,
    mspec: ModelSpec,
    spec: TestbedSpec,
    corpus: Corpus,
    seed: int,
    progress: Progress | None,
) -> GPT:
    def on_step(step: int, loss: float) -> None:
        if progress is not None and (step % 25 == 0 or step == mspec.steps - 1):
            progress(f"{spec.name}: pretrain {label} (loss {loss:.3f})", step + 1, mspec.steps)

    return pretrain(
        mspec.gpt_config(spec.block_size), corpus, mspec.steps, mspec.batch_size, mspec.lr, seed, on_step
    )


BUILD_VERSION = 2  # bump when pretraining or splitting changes: it is part of the cache key
# 2: test drawn under a secret salt, a final split. Version 1's pretrained LMs are still valid.
# Fine-tuning configs and protocol options do not change what a build makes (the teacher and
# ceiling caches key on the configs).
_NOT_IN_BUILD = ("weak_train", "strong_train", "description", "teacher_on_test")
_PRETRAIN_FIELDS = (
    "world", "world_kwargs", "seed", "pretrain_share", "corpus_error_rate", "corpus_repeats", "block_size",
)


def testbed_dir(spec: TestbedSpec, home: Path) -> Path:
    """Cache folder of ``spec``: a key of what the build depends on (spec, world and builder versions)."""
    built_from = {k: v for k, v in spec.to_dict().items() if k not in _NOT_IN_BUILD}
    key = key_of({"spec": built_from, "world": WORLDS[spec.world].version, "build": BUILD_VERSION})
    return home / "testbeds" / f"{spec.name}-{key}"


def _legacy_checkpoint(spec: TestbedSpec, home: Path, label: str) -> Path | None:
    """``label``.pt of a complete build-version-1 entry of the same world, corpus and model, if any.

    Version 1 pretrained exactly as now on the same corpus (the corpus is unchanged, see
    :func:`_public_part`); the folder name must be the key its own ``spec.json`` gives, so the
    entry was built by version 1 with the current world version.
    """
    now = spec.to_dict()
    for d in sorted((Path(home) / "testbeds").glob(f"{spec.name}-*")):
        f = d / f"{label}.pt"
        if not (d / "COMPLETE").exists() or not f.exists() or not (d / "spec.json").exists():
            continue
        try:
            old = load_json(d / "spec.json")["spec"]
            built_from = {k: v for k, v in old.items() if k not in _NOT_IN_BUILD}
            key = key_of({"spec": built_from, "world": WORLDS[spec.world].version, "build": 1})
        except Exception:  # an unreadable old entry is simply not adopted
            continue
        same = all(old.get(k) == now[k] for k in (*_PRETRAIN_FIELDS, label))
        if d.name == f"{spec.name}-{key}" and same:
            return f
    return None


def pretrained_checkpoint(
    spec: TestbedSpec, home: Path, label: str, corpus: Corpus, progress: Progress | None = None
) -> tuple[Path, str]:
    """The cached checkpoint of the ``label`` ("strong" or "weak") LM; pretrain it on a miss.

    Returns the file and how it was obtained: "cached", "adopted" (from a version-1 build) or
    "trained".
    """
    mspec, seed = (spec.strong, spec.seed + 1) if label == "strong" else (spec.weak, spec.seed + 2)
    path = pretrained_path(home, spec, mspec, seed, corpus)
    if path.exists():
        return path, "cached"
    path.parent.mkdir(parents=True, exist_ok=True)
    legacy = _legacy_checkpoint(spec, home, label)
    if legacy is not None:
        with open(legacy, "rb") as src, atomic_writer(path) as dst:
            shutil.copyfileobj(src, dst)
        return path, "adopted"
    torch.set_num_threads(1)
    gpt = _pretrain_one(label, mspec, spec, corpus, seed, progress)
    save_torch_atomic({"config": gpt.cfg.to_dict(), "state": gpt.state_dict()}, path)
    return path, "trained"


def build_testbed(
    spec: TestbedSpec,
    home: Path,
    progress: Progress | None = None,
    force: bool = False,
    new_draw: bool = False,
    salt: bytes | None = None,
) -> Path:
    """Build ``spec`` into its cache folder unless already complete; return the folder.

    ``force`` rebuilds a complete entry keeping its salt (the same test and final draw);
    ``new_draw`` (implies ``force``) makes a new salt. ``salt`` fixes the salt outright (tests and
    reproductions of a known draw); otherwise a new one comes from :func:`secrets.token_bytes`.
    """
    final = testbed_dir(spec, home)
    if (final / "COMPLETE").exists() and not (force or new_draw) and salt is None:
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    # one builder at a time: a second one waits and then finds the entry complete, so concurrent
    # builders never replace each other's draw
    with open(final.parent / f".{final.name}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _build_locked(spec, home, final, progress, force, new_draw, salt)


def _build_locked(
    spec: TestbedSpec,
    home: Path,
    final: Path,
    progress: Progress | None,
    force: bool,
    new_draw: bool,
    salt: bytes | None,
) -> Path:
    complete = (final / "COMPLETE").exists()
    if complete and not (force or new_draw) and (salt is None or read_salt(final) == salt):
        return final
    if salt is None and not new_draw and complete:
        salt = read_salt(final)
    salt = salt if salt is not None else new_salt()
    torch.set_num_threads(1)

    def build(tmp: Path) -> None:
        t0 = time.time()
        data, corpus = make_dataset(spec, salt)
        write_secret(tmp, salt)
        data.save(tmp / "dataset.json")
        timings, pretrained = {}, {}
        for label in ("strong", "weak"):
            t = time.time()
            src, how = pretrained_checkpoint(spec, home, label, corpus, progress)
            shutil.copyfile(src, tmp / f"{label}.pt")
            timings[f"pretrain_{label}_s"] = round(time.time() - t, 2)
            pretrained[label] = {"file": src.name, "how": how}
        timings["total_s"] = round(time.time() - t0, 2)
        write_json_atomic(
            tmp / "spec.json",
            {
                "spec": spec.to_dict(),
                "build": BUILD_VERSION,
                "corpus_lines": len(corpus),
                "corpus_sha256": corpus_digest(corpus),
                "pretrained": pretrained,
                "timings": timings,
            },
        )

    return build_atomically(final, build)
