"""Examples, splits and datasets for binary weak-to-strong judgment tasks.

Every task is binary. An example has a prompt and one or two options:
- one option: "is this answer to the prompt correct?" (label 1 = correct);
- two options: "which answer is better?" (label 1 = the first, A).
The label lives on the example only where the holder is allowed to see it; the views handed to
methods are stripped of labels (see :meth:`Dataset.inputs`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from aar.fileio import write_json_atomic

SPLITS = ("train_label", "train_unlabel", "dev", "test", "final")
# ``final`` is never scored during a campaign (audits and headlines only) and never in a public view;
# datasets written before it existed, and public views, simply have it empty.
OPTIONAL_SPLITS = ("final",)


@dataclass(frozen=True)
class Example:
    """One judgment: a prompt, its option(s), an optional label and a stable id."""

    id: str
    prompt: str
    options: tuple[str, ...]
    label: int | None = None
    group: str | None = None  # examples sharing a group ask about the same underlying problem
    meta: dict[str, Any] = field(default_factory=dict[str, Any], compare=False, hash=False)

    @property
    def pairwise(self) -> bool:
        """True for "which of two answers is better" examples."""
        return len(self.options) == 2

    def unlabeled(self) -> Example:
        """A copy without the label (what a method may see)."""
        return replace(self, label=None, meta={})

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict."""
        d = asdict(self)
        d["options"] = list(self.options)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Example:
        """Inverse of :meth:`to_json`."""
        return cls(
            id=str(d["id"]),
            prompt=str(d["prompt"]),
            options=tuple(d["options"]),
            label=d.get("label"),
            group=d.get("group"),
            meta=d.get("meta") or {},
        )


def labels_of(examples: Sequence[Example]) -> list[int]:
    """The 0/1 labels of labelled examples; raises if any is missing."""
    out = []
    for ex in examples:
        if ex.label is None:
            raise ValueError(f"example {ex.id} has no label")
        out.append(int(ex.label))
    return out


@dataclass
class Dataset:
    """A testbed's splits (:data:`SPLITS`).

    ``test`` is further split into public/private halves server-side; ``final`` (empty where a
    testbed has none) is held back from campaigns altogether.
    """

    name: str
    splits: dict[str, list[Example]]

    def __post_init__(self) -> None:
        for s in OPTIONAL_SPLITS:
            self.splits.setdefault(s, [])
        unknown = [s for s in self.splits if s not in SPLITS]
        if unknown:
            raise ValueError(f"dataset {self.name}: unknown splits {unknown}; expected {SPLITS}")
        missing = [s for s in SPLITS if s not in self.splits]
        if missing:
            raise ValueError(f"dataset {self.name}: missing splits {missing}")
        seen: set[str] = set()
        for split in SPLITS:
            for ex in self.splits[split]:
                if ex.id in seen:
                    raise ValueError(f"dataset {self.name}: duplicate example id {ex.id}")
                seen.add(ex.id)

    def sizes(self) -> dict[str, int]:
        """Number of examples per split (an empty optional split, e.g. no final, is left out)."""
        return {s: len(self.splits[s]) for s in SPLITS if self.splits[s] or s not in OPTIONAL_SPLITS}

    def inputs(self, split: str) -> list[Example]:
        """The split's examples with labels stripped."""
        if split not in SPLITS:
            raise KeyError(f"unknown split '{split}'; expected one of {SPLITS}")
        return [ex.unlabeled() for ex in self.splits[split]]

    def save(self, path: Path) -> None:
        """Write as JSON atomically (an empty optional split is left out, e.g. in public views)."""
        kept = {s: xs for s, xs in self.splits.items() if xs or s not in OPTIONAL_SPLITS}
        write_json_atomic(
            path, {"name": self.name, "splits": {s: [e.to_json() for e in xs] for s, xs in kept.items()}}
        )

    @classmethod
    def load(cls, path: Path) -> Dataset:
        """Read a dataset written by :meth:`save`."""
        d = json.loads(Path(path).read_text())
        return cls(d["name"], {s: [Example.from_json(e) for e in xs] for s, xs in d["splits"].items()})


