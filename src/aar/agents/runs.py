"""The files of an agent's runs folder (``runs/<run id>/`` in its workspace), as typed records.

``request.json`` is what :class:`~aar.agents.experiments.ExperimentRunner` asks the experiment worker
(:mod:`aar.w2s.worker`) to do; ``s<seed>.json`` is what the worker wrote for one finished seed. The
tools read both back (``submit``, ``run_experiment``'s ``with_run``), so the two sides share one
definition here. Unknown extra keys are kept out of the models but do not make a file unreadable.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

REQUEST_FILE = "request.json"


class RunRequest(BaseModel):
    """``request.json``: one experiment for the worker."""

    view: str  # the public view's folder
    method: str  # a shipped method name or the path of a method file
    params: dict[str, Any] = Field(default_factory=dict)
    seeds: list[int]
    splits: list[str]  # "dev" and/or "test"
    out_dir: str
    holdout: float = 0.0  # share of train_unlabel kept from the method and predicted too

    def write(self, run_dir: Path) -> Path:
        """Write ``run_dir/request.json``."""
        path = run_dir / REQUEST_FILE
        path.write_text(json.dumps(self.model_dump(), indent=1))
        return path


class SeedOutput(BaseModel):
    """``s<seed>.json``: the worker's predictions for one seed."""

    seed: int | None = None
    params: dict[str, Any] | None = None  # the parameters the method ran with
    seconds: float = 0.0  # the method's own run (method.run), as the method runner measured it
    run_seconds: float | None = None  # the worker's measure around the whole run of the seed
    probs: dict[str, float]  # example id -> P(label=1), over the requested splits
    holdout_probs: dict[str, float] | None = None  # on the held-out slice of train_unlabel


def has_request(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds a run (its ``request.json``)."""
    return (run_dir / REQUEST_FILE).exists()


def read_request(run_dir: Path) -> RunRequest:
    """``run_dir/request.json``."""
    return RunRequest.model_validate_json((run_dir / REQUEST_FILE).read_text())


def seed_file(run_dir: Path, seed: int) -> Path:
    """Where the worker writes seed ``seed``'s predictions."""
    return run_dir / f"s{seed}.json"


def read_seed(run_dir: Path, seed: int) -> SeedOutput | None:
    """Seed ``seed``'s predictions, or None while the seed has not finished."""
    f = seed_file(run_dir, seed)
    if not f.exists():
        return None
    return SeedOutput.model_validate_json(f.read_text())
