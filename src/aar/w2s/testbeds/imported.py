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

**Weak outputs of the original.** The original release ships its weak teachers' outputs
(``cache_results/<dataset>_weak_artifacts/<config>/seed_N.json``: ``soft_labels``, one
``[P(label 0), P(label 1)]`` pair in the original's convention per ``train_unlabel`` row, in file
order, plus ``weak_acc``). ``weak_outputs=`` imports them: the teacher of aar seed ``k`` is then the
``k``-th smallest original seed's, on ``train_unlabel`` (and the dev examples carved out of it), so
transfer runs learn from the very labels of the published baselines. The original's label 0 of a
chat row is "A is better", aar's label 1: P(label=1) is the pair's index 0 for chat rows and its index
1 (``True``) for binary rows. The release has no teacher outputs on ``test``: those (the weak
accuracy, and what agents see on test inputs) come from aar's own weak teacher of that seed, trained
as usual; the published ``weak_acc`` is kept in the manifest for comparison.

**Final split.** At import about a third of ``test.jsonl`` (whole consistency groups) is held
back as the ``final`` split, chosen by an HMAC under a salt made for this import and stored with
the testbed in ``secret/salt`` (mode 600); test and final examples get HMAC ids (the row's id stays
in ``meta["source_id"]``). Final is never scored in campaigns nor exported in a public view.

**Dev split.** By default the ``dev`` split is empty and ``train_unlabel`` is used whole, as in the
original (so the published baselines stay comparable). ``dev_size`` carves that many examples out
of ``train_unlabel`` deterministically (by a hash of testbed name and example id); they are then
neither used for transfer nor for the ceiling.

:class:`ImportedTestbed` satisfies :class:`~aar.w2s.testbeds.protocol.LabelledTestbed`, like the
built-in :class:`~aar.w2s.testbeds.registry.Testbed`, so experiments, baselines, the vault bundle and
the public view work on it unchanged; ``load_testbed(name)`` finds it.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aar.fileio import write_json_atomic
from aar.w2s.cache import CacheError, build_atomically, load_json
from aar.w2s.data import Dataset, Example
from aar.w2s.methods.base import TeacherOutputs
from aar.w2s.models.base import JudgeModel
from aar.w2s.references import teacher_outputs
from aar.w2s.testbeds.builtin import TESTBEDS
from aar.w2s.testbeds.secret import carve_final, new_salt, write_secret
from aar.w2s.train import TrainConfig

FILES = {"train_label": "train_label.jsonl", "train_unlabel": "train_unlabel.jsonl", "test": "test.jsonl"}
_SHORT = {"train_label": "tl", "train_unlabel": "tu", "dev": "dv", "test": "te"}
NAME_RE = re.compile(r"^[a-zA-Z0-9_.-]{1,64}$")
MANIFEST_FORMAT = 1
WEAK_OUTPUTS_FILE = "weak_outputs.json"  # the original's teacher outputs, if imported

# The original's fine-tuning protocol: LoRA r=32 / alpha 32, lr 1e-4, batch 32, 5 epochs, linear
# schedule with 10% warmup; micro-batches of 8 (gradient accumulation 4) keep a 4B model on one GPU.
DEFAULT_TRAIN = TrainConfig(epochs=5, lr=1e-4, batch_size=32, grad_accum_steps=4, warmup_frac=0.1)


class LayoutError(ValueError):
    """A folder or row does not follow the original layout."""


def _label(value: object, pairwise: bool, where: str) -> int:
    """aar's label (1: A is better / the answer is correct) of a row's label."""
    if pairwise:
        if value in ("A", "a"):
            return 1
        if value in ("B", "b"):
            return 0
        if isinstance(value, int) and not isinstance(value, bool) and value in (0, 1):
            return 1 - value  # the original's integers: 0 is "A" (A is better), 1 is "B"
        raise LayoutError(
            f"{where}: chat label must be 'A' or 'B' (or the original's 0 for A, 1 for B), got {value!r}"
        )
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return int(value.lower() == "true")
    if value in (0, 1):
        return int(value)
    raise LayoutError(f"{where}: binary label must be true or false, got {value!r}")


def row_to_example(row: dict[str, Any], ex_id: str, where: str) -> Example:
    """One JSONL row of the original layout as an :class:`Example` (label required)."""
    if not isinstance(row, dict):
        raise LayoutError(f"{where}: a row must be a JSON object")
    if "label" not in row or row["label"] is None:
        raise LayoutError(
            f"{where}: row has no label (every file must be labelled: import the original's "
            "labeled_data/<dataset> folder, not data/<dataset>)"
        )
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
    with open(path, "rb") as f:
        for n, raw in enumerate(f, 1):
            where = f"{path}:{n}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                bad = f"byte {raw[e.start]:#04x} at offset {e.start}"
                raise LayoutError(f"{where}: not UTF-8 text ({bad} of the line)") from None
            if not line.strip():
                continue
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
        if missing == [FILES["train_label"]]:
            hint += (
                "; without train_label.jsonl this looks like the agents' data/<dataset> folder of the "
                "original release, which has no labels: import labeled_data/<dataset> instead"
            )
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
    weak: dict[str, Any]  # HFModelSpec.to_dict() of the weak teacher's base model
    strong: dict[str, Any]  # ... and of the strong student's
    weak_train: TrainConfig = DEFAULT_TRAIN
    strong_train: TrainConfig = DEFAULT_TRAIN
    dev_size: int = 0
    description: str = ""
    sizes: dict[str, Any] = field(default_factory=dict[str, Any])
    weak_outputs: dict[str, Any] | None = None  # imported original teacher outputs: config, seeds, weak_acc

    def to_dict(self) -> dict[str, Any]:
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
            "weak_outputs": self.weak_outputs,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ImportedSpec:
        """Inverse of :meth:`to_dict`."""
        d = dict(d)
        d["weak_train"] = TrainConfig(**d["weak_train"])
        d["strong_train"] = TrainConfig(**d["strong_train"])
        return cls(**d)


@dataclass
class ImportedTestbed:
    """An imported testbed (a :class:`~aar.w2s.testbeds.protocol.LabelledTestbed`)."""

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

    def strong_model(self) -> JudgeModel:
        """A fresh strong judge: the shared frozen strong base with a new LoRA adapter."""
        from aar.w2s.models.hf import HFJudge, HFModelSpec

        return HFJudge(HFModelSpec.from_dict(self.spec.strong))

    def weak_model(self) -> JudgeModel:
        """A fresh weak judge: the shared frozen weak base with a new LoRA adapter."""
        from aar.w2s.models.hf import HFJudge, HFModelSpec

        return HFJudge(HFModelSpec.from_dict(self.spec.weak))

    def public_strong_model(self) -> dict[str, Any]:
        """What the public view records instead of copying weights: the strong model's settings."""
        return dict(self.spec.strong)

    def imported_teacher(self, seed: int) -> dict[str, float]:
        """The original's teacher outputs of ``seed`` (P(label=1) by example id), or {} if none imported."""
        if not self.spec.weak_outputs:
            return {}
        blob = load_json(self.path / WEAK_OUTPUTS_FILE)
        seeds = blob["seeds"]
        if not 0 <= seed < len(seeds):
            raise CacheError(
                f"testbed {self.name} has the original's weak outputs for seeds 0..{len(seeds) - 1} "
                f"(original seeds {', '.join(str(x['original_seed']) for x in seeds)}), not seed {seed}"
            )
        return {k: float(v) for k, v in seeds[seed]["probs"].items()}

    @property
    def teacher_on_test(self) -> bool:
        """Imported testbeds follow the original protocol: teacher outputs on ``train_unlabel`` only."""
        return False

    def teacher(self, seed: int) -> TeacherOutputs:
        """The weak teacher's outputs for ``seed`` (trained and cached on first use)."""
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


def _model_spec(model: str | dict[str, Any], chat_template: bool | None, **settings: Any) -> dict[str, Any]:
    from aar.w2s.models.hf import HFModelSpec

    if isinstance(model, dict):
        return HFModelSpec.from_dict(model).to_dict()
    p = Path(model).expanduser()
    path = str(p.resolve()) if p.exists() else model  # hub ids stay as they are
    return HFModelSpec(path, chat_template=chat_template, **settings).to_dict()


def check_model(spec: dict[str, Any], role: str) -> None:
    """A clear error at import for a model that could not be loaded later (nothing is loaded here)."""
    from aar.w2s.models.hf import HFModelSpec, _offline

    path, gguf = spec["path"], spec.get("gguf_file")
    p = Path(path).expanduser()
    if p.is_dir():
        if gguf and not (p / gguf).is_file():
            raise LayoutError(f"{role} model: no GGUF file {gguf!r} in {p}")
        if not gguf and not (p / "config.json").is_file():
            raise LayoutError(
                f"{role} model {p}: not a model folder (no config.json); give a folder written by "
                "save_pretrained, a .gguf file, or a hub id"
            )
        return
    if p.exists():
        raise LayoutError(f"{role} model {p}: not a model folder or .gguf file")
    if gguf or path.startswith(("/", ".", "~")) or path.count("/") > 1:
        raise LayoutError(f"{role} model {path}: no such file or folder")
    if not _offline(HFModelSpec.from_dict(spec)):
        return  # a hub id that may be downloaded
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - comes with transformers
        return
    if not isinstance(try_to_load_from_cache(path, "config.json"), str):
        raise LayoutError(
            f"{role} model {path!r}: no such local folder or .gguf file, and no hub model of that id in the "
            "local Hugging Face cache (aar never downloads weights: fetch the model first)"
        )


def _seed_files(folder: Path) -> list[tuple[int, Path]]:
    files = []
    for f in folder.glob("seed_*.json"):
        m = re.fullmatch(r"seed_(-?\d+)\.json", f.name)
        if m:
            files.append((int(m.group(1)), f))
    return sorted(files)


def read_weak_outputs(folder: Path, data: Dataset, source: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The original's weak-teacher outputs in ``folder`` as (manifest entry, stored blob).

    ``folder`` is ``<dataset>_weak_artifacts/<config>`` (or its parent, if it holds one config).
    Pairs are aligned by position with the rows of ``source``'s ``train_unlabel.jsonl``.
    """
    folder = Path(folder).expanduser().resolve()
    if not folder.is_dir():
        raise LayoutError(f"weak outputs: {folder} is not a folder")
    files = _seed_files(folder)
    if not files:
        configs = sorted(d.name for d in folder.iterdir() if d.is_dir() and _seed_files(d))
        if len(configs) != 1:
            found = f"; configurations inside: {', '.join(configs)} (choose one)" if configs else ""
            raise LayoutError(f"weak outputs: no seed_N.json in {folder}{found}")
        folder = folder / configs[0]
        files = _seed_files(folder)
    ids = [e.id for e in read_split(source / FILES["train_unlabel"], "train_unlabel")]
    pairwise = data.splits["test"][0].pairwise
    seeds = []
    for original_seed, f in files:
        where = str(f)
        try:
            blob = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise LayoutError(f"{where}: not a JSON file: {e}") from None
        soft = blob.get("soft_labels") if isinstance(blob, dict) else None
        if not isinstance(soft, list):
            raise LayoutError(f"{where}: no soft_labels list")
        if len(soft) != len(ids):
            raise LayoutError(
                f"{where}: {len(soft)} soft labels for {len(ids)} train_unlabel rows of {source} "
                "(they must be the outputs on this very file, in its order)"
            )
        probs = {}
        for n, (ex_id, pair) in enumerate(zip(ids, soft, strict=True)):
            ok = (
                isinstance(pair, list)
                and len(pair) == 2
                and all(isinstance(x, (int, float)) and not isinstance(x, bool) and 0 <= x <= 1 for x in pair)
            )
            if not ok or sum(pair) <= 0:
                raise LayoutError(f"{where}: soft_labels[{n}] must be a pair of probabilities, got {pair!r}")
            # the original's label 0 is "A" (chat) and False (binary); aar's label 1 is "A" and True
            probs[ex_id] = float(pair[0 if pairwise else 1]) / float(sum(pair))
        acc = blob.get("weak_acc")
        seeds.append(
            {
                "original_seed": original_seed,
                "weak_acc": float(acc) if isinstance(acc, (int, float)) else None,
                "probs": probs,
            }
        )
    entry = {
        "config": folder.name,
        "original_seeds": [x["original_seed"] for x in seeds],
        "weak_acc": [x["weak_acc"] for x in seeds],
    }
    return entry, {"config": folder.name, "seeds": seeds}


def import_testbed(
    source: Path,
    name: str,
    weak_model: str | dict[str, Any],
    strong_model: str | dict[str, Any],
    home: Path,
    dev_size: int = 0,
    weak_train: TrainConfig = DEFAULT_TRAIN,
    strong_train: TrainConfig = DEFAULT_TRAIN,
    weak_chat_template: bool | None = None,
    strong_chat_template: bool | None = None,
    model_settings: dict[str, Any] | None = None,
    description: str = "",
    weak_outputs: Path | None = None,
) -> ImportedTestbed:
    """Read ``source`` (one domain folder), store it as testbed ``name`` under ``home``; return it.

    ``weak_model`` / ``strong_model`` are local paths (folders or .gguf files), hub ids, or
    ``HFModelSpec`` dicts; ``model_settings`` are extra :class:`HFModelSpec` fields for both
    (e.g. ``max_length``, ``lora``, ``inference``); both are checked to exist (a local folder or
    file, or a hub id in the local cache). ``weak_outputs`` is a folder of the original's weak-teacher
    outputs (see the module's docstring). Importing again under the same name replaces the testbed
    and its caches. Nothing is loaded or trained here.
    """
    from aar.w2s.models.hf import LoraSettings
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
    salt = new_salt()  # holds back about a third of the test file as the final split (secret.py)
    data = carve_final(data, salt)
    world = "pairwise" if data.splits["test"][0].pairwise else "binary"
    weak, strong = (
        _model_spec(m, t, **settings)
        for m, t in ((weak_model, weak_chat_template), (strong_model, strong_chat_template))
    )
    check_model(weak, "weak")
    check_model(strong, "strong")
    entry, blob = read_weak_outputs(weak_outputs, data, source) if weak_outputs else (None, None)
    spec = ImportedSpec(
        name=name,
        world=world,
        source=str(source),
        weak=weak,
        strong=strong,
        weak_train=weak_train,
        strong_train=strong_train,
        dev_size=dev_size,
        description=description or f"{source.name} ({world}), imported from the original study's data",
        sizes=data.sizes(),
        weak_outputs=entry,
    )

    def build(tmp: Path) -> None:
        write_secret(tmp, salt)
        data.save(tmp / "dataset.json")
        write_json_atomic(tmp / "manifest.json", {"format": MANIFEST_FORMAT, "spec": spec.to_dict()})
        if blob is not None:
            write_json_atomic(tmp / WEAK_OUTPUTS_FILE, blob)

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
