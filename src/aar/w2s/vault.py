"""The ground-truth bundle a testbed hands to the scoring server.

It is written by the testbed builder, read only by the server, and never placed where an agent
can reach it. It holds the labels of the ``test`` split (scored during campaigns; the server splits
it into a public and a private half with a keyed hash under its own secret, so nothing outside the
server knows which id is in which half) and of the ``final`` split (never scored during a campaign,
used only by the audit and the report's headline), and the per-seed predictions of the fixed
reference runs (weak teacher, ceiling, shipped baselines) on both splits, from which the server
computes its baselines.

Format 2 (this one) replaced format 1, which carried the halves itself (a plain hash of the id that
anyone with the package could recompute).
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from aar.fileio import write_text_atomic
from aar.textcheck import Line, Text

BUNDLE_FORMAT = 2


class VaultBundle(BaseModel):
    """Ground truth and reference predictions for one testbed's test and final splits."""

    model_config = ConfigDict(extra="forbid")

    format: int = BUNDLE_FORMAT
    testbed_id: str = Field(min_length=1, max_length=64, pattern=r"^[a-zA-Z0-9_.-]+$")
    description: Text = ""  # shown to agents: no control characters but \n and \t
    labels: dict[Line, int]  # the test split (public and private halves)
    final_labels: dict[Line, int] = Field(default_factory=dict)  # the final split (may be empty)
    # reference name ("weak", "ceiling", "vanilla", ...) -> one {example id: P(label=1)} per seed,
    # each covering the test ids and the final ids
    references: dict[Line, list[dict[Line, float]]]
    # protocol: whether methods saw the weak teacher's outputs on test inputs (off in the original study)
    teacher_on_test: bool = False

    @field_validator("format")
    @classmethod
    def _format(cls, v: int) -> int:
        if v != BUNDLE_FORMAT:
            raise ValueError(f"bundle format {v} is not supported (this version reads {BUNDLE_FORMAT})")
        return v

    @field_validator("labels", "final_labels")
    @classmethod
    def _binary(cls, v: dict[str, int]) -> dict[str, int]:
        bad = [k for k, y in v.items() if y not in (0, 1)]
        if bad:
            raise ValueError(f"labels must be 0 or 1; bad ids: {bad[:5]}")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> VaultBundle:
        if len(self.labels) < 2:
            raise ValueError("at least two test labels are needed (one per half)")
        shared = set(self.labels) & set(self.final_labels)
        if shared:
            raise ValueError(f"test and final splits share ids: {sorted(shared)[:5]}")
        ids = set(self.labels) | set(self.final_labels)
        for name in ("weak", "ceiling"):
            if not self.references.get(name):
                raise ValueError(f"reference predictions for '{name}' are required")
        for name, runs in self.references.items():
            if not runs:
                raise ValueError(f"reference '{name}' has no runs")
            for run in runs:
                if set(run) != ids:
                    raise ValueError(f"reference '{name}' does not cover exactly the test and final ids")
        return self

    def save(self, path: Path) -> None:
        """Write atomically (temp file, fsync, then rename)."""
        write_text_atomic(path, self.model_dump_json())

    @classmethod
    def load(cls, path: Path) -> VaultBundle:
        """Read and validate a bundle written by :meth:`save`."""
        return cls.model_validate(json.loads(Path(path).read_text()))
