"""The audit's runs: what to run for one submission (:class:`Plan`) and running many of them in
parallel, each in its own sandbox with its own uid (:func:`run_all`). Used by the audit of a campaign
(:mod:`aar.audit.core`) and by the re-runs on other testbeds (:mod:`aar.audit.generalise`)."""

from __future__ import annotations

import queue
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aar.audit.config import AuditConfig
from aar.audit.runner import Experiment, RunResult, run_experiment
from aar.audit.selection import Target
from aar.sandbox.process import AuditFn


@dataclass
class Plan:
    """One audited submission: its experiment, the runs to do (kind -> view, seed, example ids) and
    their results."""

    target: Target
    exp: Experiment | None
    error: str | None
    findings: list[dict[str, Any]]
    code_dir: Path
    runs: dict[str, tuple[Path, int, list[str]]] = field(default_factory=dict)  # kind -> (view, seed, ids)
    results: dict[str, RunResult] = field(default_factory=dict)


def run_all(
    jobs: list[tuple[Plan, str]], work: Path, cfg: AuditConfig, progress: bool, audit_log: AuditFn | None
) -> None:
    """Every run in its own sandbox, ``cfg.n_jobs()`` at a time, each with its own uid."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from aar.sandbox.uids import allocate_uid_block

    n = min(cfg.n_jobs(), max(1, len(jobs)))
    block = allocate_uid_block()
    uids: queue.Queue[int] = queue.Queue()
    for j in range(n):
        uids.put(block.uid(j))

    def one(job: tuple[Plan, str]) -> None:
        p, kind = job
        view, seed, ids = p.runs[kind]
        uid = uids.get()
        try:
            name = f"{p.target.submission_id}-{kind}"
            if p.exp is None:
                raise ValueError("the submission has no experiment to run")
            p.results[kind] = run_experiment(p.exp, view, seed, ids, work / name, cfg, uid=uid,
                                             audit_log=audit_log, label=f"audit-{name}")
        except Exception as e:  # a run that cannot even start is a failed run, not a failed audit
            p.results[kind] = RunResult(False, error=f"{type(e).__name__}: {e}")
        finally:
            uids.put(uid)

    try:
        with Progress(TextColumn("audit runs"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      disable=not progress) as bar:
            task = bar.add_task("runs", total=len(jobs))
            with ThreadPoolExecutor(max_workers=n) as pool:
                for _ in pool.map(one, jobs):
                    bar.advance(task)
    finally:
        block.release()
