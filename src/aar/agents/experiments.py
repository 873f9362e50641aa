"""Running an agent's experiments in child processes under a timeout that kills the whole process group.

An experiment is a method (shipped name or a ``.py`` file in the workspace) with parameters, over
one or more seeds, predicting the dev and/or test inputs of the agent's public view; it runs in
:mod:`aar.w2s.worker` (a child process that loads only the view). A fixed slice of ``train_unlabel``
(``holdout``, default 10%) is kept from the method and predicted too, so the diagnostics can measure
agreement with the teacher where the student did not train (the teacher's outputs exist for
``train_unlabel`` only under the original protocol). Its outputs
stay in the workspace under ``runs/<run id>/``; a hung or runaway experiment is killed with its
whole group when the timeout (or the agent's remaining time) runs out, and the agent goes on.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from aar.agents.procs import start_group, wait_or_kill
from aar.agents.runs import RunRequest, read_seed

# Seconds one experiment may run before its process group is killed (campaign default, ``aar run-agent``
# and ``aar mcp``): many agents share few cores, so runs are slower than alone.
EXPERIMENT_TIMEOUT_S = 300.0


@dataclass
class ExperimentResult:
    """Outcome of one experiment: per-seed predictions (by example id) or an error."""

    run_id: str
    method: str
    params: dict[str, Any]
    seeds: list[int]
    splits: list[str]
    ok: bool
    timed_out: bool = False
    error: str | None = None
    wall_seconds: float = 0.0
    seconds: list[float] = field(default_factory=list)
    probs: list[dict[str, float]] = field(default_factory=list)  # one per finished seed
    holdout_probs: list[dict[str, float]] = field(default_factory=list)  # on the held-out slice

    def summary(self) -> dict[str, Any]:
        """The result without its predictions (what a tool returns)."""
        d = asdict(self)
        d.pop("probs")
        d.pop("holdout_probs")
        d["finished_seeds"] = self.seeds[: len(self.probs)]
        return d


class ExperimentRunner:
    """Starts experiment workers for one agent, each in its own process group, with a timeout."""

    def __init__(
        self,
        view: Path,
        workspace: Path,
        timeout_s: float = EXPERIMENT_TIMEOUT_S,
        python: str | None = None,
        env: dict[str, str] | None = None,
        holdout: float = 0.1,
    ) -> None:
        """Runner on the public view ``view``, keeping runs under ``workspace/runs``; ``holdout`` is the
        share of ``train_unlabel`` kept from every method for diagnostics (0: none)."""
        self.view = Path(view)
        self.runs_dir = Path(workspace) / "runs"
        self.timeout_s = timeout_s
        self.python = python or sys.executable
        self.env = env
        self.holdout = holdout

    def _new_run_id(self) -> str:
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        n = sum(1 for p in self.runs_dir.iterdir() if p.is_dir())
        return f"r{n + 1:04d}"

    def run(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        seeds: list[int] | tuple[int, ...] = (0,),
        splits: tuple[str, ...] = ("dev", "test"),
        timeout_s: float | None = None,
    ) -> ExperimentResult:
        """Run ``method`` with ``params`` for each seed; never raises for what the method does."""
        run_id = self._new_run_id()
        out = self.runs_dir / run_id
        out.mkdir()
        request = RunRequest(
            view=str(self.view),
            method=method,
            params=params or {},
            seeds=list(seeds),
            splits=list(splits),
            out_dir=str(out),
            holdout=self.holdout,
        ).write(out)
        limit = self.timeout_s if timeout_s is None else min(timeout_s, self.timeout_s)
        t0 = time.monotonic()
        proc = start_group(
            [self.python, "-m", "aar.w2s.worker", str(request)],
            out / "worker.log",
            env=self.env,
            cwd=out,
        )
        code, timed_out = wait_or_kill(proc, limit)
        res = ExperimentResult(
            run_id,
            method,
            params or {},
            list(seeds),
            list(splits),
            ok=False,
            timed_out=timed_out,
            wall_seconds=round(time.monotonic() - t0, 2),
        )
        for seed in seeds:
            blob = read_seed(out, seed)
            if blob is None:
                break
            res.probs.append(blob.probs)
            res.seconds.append(blob.seconds)
            res.holdout_probs.append(blob.holdout_probs or {})
            res.params = res.params if blob.params is None else blob.params
        if timed_out:
            res.error = f"timed out after {limit:.0f}s; the experiment's process group was killed"
        elif (out / "error.txt").exists():
            res.error = (out / "error.txt").read_text()[:2000]
        elif code != 0:
            tail = (out / "worker.log").read_text(errors="replace")[-1500:]
            res.error = f"worker exited with status {code}: {tail}"
        res.ok = res.error is None and len(res.probs) == len(res.seeds)
        (out / "result.json").write_text(json.dumps(res.summary(), indent=1))
        return res
