"""Testbeds imported from the original study's data layout, run on Hugging Face models.

The original layout is a folder per domain holding ``train_label.jsonl``, ``train_unlabel.jsonl``
and ``test.jsonl``, with rows of one of two kinds:

- chat (pairwise): ``{"prompt", "first", "second", "label": "A" | "B", "subset"}``;
- binary (math, code): ``{"question", "choice", "label": true | false, "subset", "consistency_id"?}``.

:func:`import_testbed` turns such a folder plus a weak and a strong model into a testbed stored
under ``AAR_HOME/imported/<name>/``: ``manifest.json`` (models, LoRA and training settings, sizes)
and ``dataset.json`` (an :class:`~aar.w2s.data.Dataset`). Every file must carry labels: the
weak teacher trains on ``train_label``, the ceiling on ``train_unlabel``, and the test labels go to
the scoring server's vault (through :func:`aar.w2s.public.build_vault_bundle`); what agents see is
the public view, with every label stripped.

**Dev split.** By default the ``dev`` split is empty and ``train_unlabel`` is used whole, as in the
original (so the published baselines stay comparable). ``dev_size`` carves that many examples out
of ``train_unlabel`` deterministically (by a hash of testbed name and example id); they are then
neither used for transfer nor for the ceiling.

:class:`ImportedTestbed` has the interface of :class:`~aar.w2s.testbeds.registry.Testbed`
(``name``, ``spec``, ``path``, ``dataset``, ``strong_model()``, ``weak_model()``,
``strong_train``, ``teacher(seed)``), so experiments, baselines, the vault bundle and the public
view work on it unchanged; ``load_testbed(name)`` finds it.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from aar.w2s.cache import CacheError, build_atomically, load_json
from aar.w2s.data import Dataset, Example, write_json_atomic
from aar.w2s.methods.base import TeacherOutputs
from aar.w2s.train import TrainConfig

FILES = {"train_label": "train_label.jsonl", "train_unlabel": "train_unlabel.jsonl", "test": "test.jsonl"}
_SHORT = {"train_label": "tl", "train_unlabel": "tu", "dev": "dv", "test": "te"}
NAME_RE = re.compile(r"^[a-zA-Z0-9_.-]{1,64}$")
MANIFEST_FORMAT = 1

# The original's fine-tuning protocol: LoRA r=32 / alpha 32, lr 1e-4, batch 32, 5 epochs, linear
# schedule with 10% warmup; micro-batches of 8 (gradient accumulation 4) keep a 4B model on one GPU.
DEFAULT_TRAIN = TrainConfig(epochs=5, lr=1e-4, batch_size=32, grad_accum_steps=4, warmup_frac=0.1)


class LayoutError(ValueError):
    """A folder or row does not follow the original layout."""


def _label(value: object, pairwise: bool, where: str) -> int:
    if pairwise:
        if value in ("A", "a"):
            return 1
        if value in ("B", "b"):
            return 0
        raise LayoutError(f"{where}: chat label must be 'A' or 'B', got {value!r}")
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return int(value.lower() == "true")
    if value in (0, 1):
        return int(value)
    raise LayoutError(f"{where}: binary label must be true or false, got {value!r}")


def row_to_example(row: dict, ex_id: str, where: str) -> Example:
    """One JSONL row of the original layout as an :class:`Example` (label required)."""
    if not isinstance(row, dict):
        raise LayoutError(f"{where}: a row must be a JSON object")
    if "label" not in row or row["label"] is None:
        raise LayoutError(f"{where}: row has no label (every file of the layout must be labelled)")
    meta = {"subset": row["subset"]} if row.get("subset") is not None else {}
    if {"prompt", "first", "second"} <= row.keys():
        opts = (str(row["first"]), str(row["second"]))
        return Example(ex_id, str(row["prompt"]), opts, _label(row["label"], True, where), None, meta)
    if {"question", "choice"} <= row.keys():
        group = row.get("consistency_id")
        return Example(
            ex_id,
            str(row["question"]),
            (str(row["choice"]),),
            _label(row["label"], False, where),
            None if group is None else f"c{group}",
            meta,
        )
    raise LayoutError(
        f"{where}: expected chat fields (prompt, first, second) or binary fields (question, choice), "
        f"got {sorted(row)}"
    )


def read_split(path: Path, split: str) -> list[Example]:
    """The examples of one JSONL file; ids are ``<split short>-<line number>``."""
    out = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{n}"
            try:
                row = json.loads(line)
            except ValueError as e:
                raise LayoutError(f"{where}: not JSON: {e}") from None
            out.append(row_to_example(row, f"{_SHORT[split]}-{n:06d}", where))
    return out


def read_layout(folder: Path, name: str, dev_size: int = 0) -> Dataset:
    """Read one domain folder of the original layout into a :class:`Dataset`."""
    folder = Path(folder)
    missing = [f for f in FILES.values() if not (folder / f).is_file()]
    if missing:
        subs = (
            sorted(p.name for p in folder.iterdir() if p.is_dir() and (p / FILES["test"]).is_file())
            if folder.is_dir()
            else []
        )
        hint = f"; domain folders inside: {', '.join(subs)}" if subs else ""
        raise LayoutError(f"{folder} is not a domain folder of the original layout: missing {missing}{hint}")
    splits = {s: read_split(folder / f, s) for s, f in FILES.items()}
    for s, xs in splits.items():
        if not xs:
            raise LayoutError(f"{folder / FILES[s]} has no rows")
    kinds = {e.pairwise for xs in splits.values() for e in xs}
    if len(kinds) > 1:
        raise LayoutError(f"{folder} mixes chat (pairwise) and binary rows")
    tu = splits["train_unlabel"]
    if not 0 <= dev_size < len(tu):
        raise LayoutError(f"dev_size must be in [0, {len(tu)}) for {len(tu)} train_unlabel rows")
    order = sorted(tu, key=lambda e: hashlib.sha256(f"{name}/{e.id}".encode()).hexdigest())
    dev_ids = {e.id for e in order[:dev_size]}
    splits["dev"] = [e for e in tu if e.id in dev_ids]
    splits["train_unlabel"] = [e for e in tu if e.id not in dev_ids]
    return Dataset(name, splits)


@dataclass(frozen=True)
class ImportedSpec:
    """What an imported testbed is made of (the spec-like part of :class:`ImportedTestbed`)."""

    __test__ = False

    name: str
    world: str  # "pairwise" or "binary"
    source: str
    weak: dict  # HFModelSpec.to_dict() of the weak teacher's base model
    strong: dict  # ... and of the strong student's
    weak_train: TrainConfig = DEFAULT_TRAIN
    strong_train: TrainConfig = DEFAULT_TRAIN
    dev_size: int = 0
    description: str = ""
    sizes: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-ready dict (the manifest's ``spec``)."""
        return {
            "name": self.name,
            "world": self.world,
            "source": self.source,
            "weak": self.weak,
            "strong": self.strong,
            "weak_train": self.weak_train.to_dict(),
            "strong_train": self.strong_train.to_dict(),
            "dev_size": self.dev_size,
            "description": self.description,
            "sizes": self.sizes,
        }

    @classmethod
    def from_dict(cls, d: dict) -> ImportedSpec:
        """Inverse of :meth:`to_dict`."""
        d = dict(d)
        d["weak_train"] = TrainConfig(**d["weak_train"])
        d["strong_train"] = TrainConfig(**d["strong_train"])
        return cls(**d)


@dataclass
class ImportedTestbed:
    """An imported testbed; same interface as :class:`~aar.w2s.testbeds.registry.Testbed`."""

    __test__ = False

    spec: ImportedSpec
    path: Path
    dataset: Dataset

    @property
    def name(self) -> str:
        """The testbed's name."""
        return self.spec.name

    @property
    def strong_train(self) -> TrainConfig:
        """The protocol's fine-tuning config for the strong model."""
        return self.spec.strong_train

    def strong_model(self):
        """A fresh strong judge: the shared frozen strong base with a new LoRA adapter."""
        from aar.w2s.models.hf import HFJudge, HFModelSpec

        return HFJudge(HFModelSpec.from_dict(self.spec.strong))

    def weak_model(self):
        """A fresh weak judge: the shared frozen weak base with a new LoRA adapter."""
        from aar.w2s.models.hf import HFJudge, HFModelSpec

        return HFJudge(HFModelSpec.from_dict(self.spec.weak))

    def public_strong_model(self) -> dict:
        """What the public view records instead of copying weights: the strong model's settings."""
        return dict(self.spec.strong)

    def teacher(self, seed: int) -> TeacherOutputs:
        """The weak teacher's outputs for ``seed`` (trained and cached on first use)."""
        from aar.w2s.experiment import teacher_outputs

        return teacher_outputs(self, seed)


def imported_root(home: Path) -> Path:
    """Folder of imported testbeds under ``home``."""
    return Path(home) / "imported"


def imported_names(home: Path) -> list[str]:
    """Names of the complete imported testbeds under ``home``."""
    root = imported_root(home)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "COMPLETE").exists() and not p.name.startswith("."))


def _model_spec(model: str | dict, chat_template: bool | None, **settings) -> dict:
    from aar.w2s.models.hf import HFModelSpec

    if isinstance(model, dict):
        return HFModelSpec.from_dict(model).to_dict()
    p = Path(model).expanduser()
    path = str(p.resolve()) if p.exists() else model  # hub ids stay as they are
    return HFModelSpec(path, chat_template=chat_template, **settings).to_dict()


def import_testbed(
    source: Path,
    name: str,
    weak_model: str | dict,
    strong_model: str | dict,
    home: Path,
    dev_size: int = 0,
    weak_train: TrainConfig = DEFAULT_TRAIN,
    strong_train: TrainConfig = DEFAULT_TRAIN,
    weak_chat_template: bool | None = None,
    strong_chat_template: bool | None = None,
    model_settings: dict | None = None,
    description: str = "",
) -> ImportedTestbed:
    """Read ``source`` (one domain folder), store it as testbed ``name`` under ``home``; return it.

    ``weak_model`` / ``strong_model`` are local paths (folders or .gguf files), hub ids, or
    ``HFModelSpec`` dicts; ``model_settings`` are extra :class:`HFModelSpec` fields for both
    (e.g. ``max_length``, ``lora``, ``inference``). Importing again under the same name replaces
    the testbed and its caches. Nothing is loaded or trained here.
    """
    from aar.w2s.models.hf import LoraSettings
    from aar.w2s.testbeds.registry import TESTBEDS

    if not NAME_RE.match(name):
        raise LayoutError(f"testbed name {name!r} must match {NAME_RE.pattern}")
    if name in TESTBEDS:
        raise LayoutError(f"'{name}' is a built-in testbed; choose another name")
    settings = dict(model_settings or {})
    if isinstance(settings.get("lora"), dict):
        lora = dict(settings["lora"])
        if "target_modules" in lora:
            lora["target_modules"] = tuple(lora["target_modules"])
        settings["lora"] = LoraSettings(**lora)
    source = Path(source).expanduser().resolve()
    data = read_layout(source, name, dev_size)
    world = "pairwise" if data.splits["test"][0].pairwise else "binary"
    spec = ImportedSpec(
        name=name,
        world=world,
        source=str(source),
        weak=_model_spec(weak_model, weak_chat_template, **settings),
        strong=_model_spec(strong_model, strong_chat_template, **settings),
        weak_train=weak_train,
        strong_train=strong_train,
        dev_size=dev_size,
        description=description or f"{source.name} ({world}) from {source}, imported",
        sizes=data.sizes(),
    )

    def build(tmp: Path) -> None:
        data.save(tmp / "dataset.json")
        write_json_atomic(tmp / "manifest.json", {"format": MANIFEST_FORMAT, "spec": spec.to_dict()})

    path = build_atomically(imported_root(home) / name, build)
    return ImportedTestbed(spec, path, data)


def load_imported(name: str, home: Path) -> ImportedTestbed:
    """Open an imported testbed by name."""
    path = imported_root(home) / name
    if not (path / "COMPLETE").exists():
        raise CacheError(f"no imported testbed '{name}' in {imported_root(home)}")
    meta = load_json(path / "manifest.json")
    if meta.get("format") != MANIFEST_FORMAT:
        raise CacheError(f"{path / 'manifest.json'}: unknown manifest format {meta.get('format')!r}")
    try:
        spec = ImportedSpec.from_dict(meta["spec"])
        data = Dataset.load(path / "dataset.json")
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CacheError(f"corrupt imported testbed {path}: {e}; import it again") from e
    return ImportedTestbed(spec, path, data)
