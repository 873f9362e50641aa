"""The ground-truth bundle a testbed hands to the scoring server.

It is written by the testbed builder, read only by the server, and never placed where an agent
can reach it. It holds the test labels, the public/private half of each test id, and the
per-seed predictions of the fixed reference runs (weak teacher, ceiling, shipped baselines) from
which the server computes its baselines on each half.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator

Half = Literal["public", "private"]


class VaultBundle(BaseModel):
    """Ground truth and reference predictions for one testbed's test split."""

    testbed_id: str = Field(min_length=1, max_length=64, pattern=r"^[a-zA-Z0-9_.-]+$")
    description: str = ""
    labels: dict[str, int]
    halves: dict[str, Half]
    # reference name ("weak", "ceiling", "vanilla", ...) -> one {example id: P(label=1)} per seed
    references: dict[str, list[dict[str, float]]]

    @field_validator("labels")
    @classmethod
    def _binary(cls, v: dict[str, int]) -> dict[str, int]:
        bad = [k for k, y in v.items() if y not in (0, 1)]
        if bad:
            raise ValueError(f"labels must be 0 or 1; bad ids: {bad[:5]}")
        if not v:
            raise ValueError("no test labels")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> VaultBundle:
        ids = set(self.labels)
        if set(self.halves) != ids:
            raise ValueError("halves must name exactly the labelled test ids")
        for half in ("public", "private"):
            if half not in self.halves.values():
                raise ValueError(f"the {half} half is empty")
        for name in ("weak", "ceiling"):
            if not self.references.get(name):
                raise ValueError(f"reference predictions for '{name}' are required")
        for name, runs in self.references.items():
            for run in runs:
                if set(run) != ids:
                    raise ValueError(f"reference '{name}' does not cover exactly the test ids")
        return self

    def save(self, path: Path) -> None:
        """Write atomically (temp file, then rename)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(self.model_dump_json())
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> VaultBundle:
        """Read and validate a bundle written by :meth:`save`."""
        return cls.model_validate(json.loads(Path(path).read_text()))
