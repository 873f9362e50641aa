"""Running a submission's cited code again, operator-side, in a fresh bubblewrap sandbox.

The artifact (downloaded from the code store by the admin) is unpacked with the one safe
extractor; its ``experiment.json`` names the method (a shipped name, run from the installed
package, or a ``.py`` file of the artifact), its parameters and its seed. Each run gets a new,
empty workspace under its own unprivileged uid, the method file copied in, one view mounted
read-only, no server socket, no network, and runs the same worker the agents' experiments use
(``MethodContext`` only: no labels anywhere in the sandbox). Its predictions are read back with the
safe reader and checked (one finite probability in [0, 1] per requested id). Nothing is shared
between runs: an artifact cannot leave anything behind for another run or another audit.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import math
import os
import shutil
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aar.audit.config import AuditConfig
from aar.sandbox.process import AuditFn

MAX_PREDICTIONS_BYTES = 64 * 2**20
AGENT_HOLDOUT = 0.1  # aar.agents.experiments.ExperimentRunner's default holdout share
AUDIT_UID_BASE = 290_000  # one uid per run in flight (RLIMIT_NPROC counts per uid)
_uid_counter = itertools.count()
_uid_lock = threading.Lock()


class ArtifactError(RuntimeError):
    """The artifact cannot be run: not a tarball, no ``experiment.json``, no method."""


@dataclass
class Experiment:
    """What an artifact says it ran."""

    method: str  # a shipped method name, or a file name inside the artifact
    params: dict[str, Any]
    seed: int
    files: dict[str, bytes] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def is_file(self) -> bool:
        """True when the method is a ``.py`` file of the artifact."""
        return self.method.endswith(".py")


def load_experiment(data: bytes, dest: Path, fallback_seed: int | None = None) -> Experiment:
    """Unpack ``data`` into ``dest`` (safely) and read its ``experiment.json``."""
    from aar.agents.artifacts import UnsafeArchive, safe_unpack
    from aar.sandbox.safe_read import read_bytes_safely, read_json_safely

    try:
        names = safe_unpack(data, dest)
    except (UnsafeArchive, OSError) as e:
        raise ArtifactError(f"the artifact is not a tarball with experiment.json ({e})") from e
    if "experiment.json" not in names:
        raise ArtifactError("the artifact has no experiment.json (a bare code upload cannot be re-run)")
    try:
        meta = read_json_safely("experiment.json", 2**20, root=dest)
    except (OSError, ValueError) as e:
        raise ArtifactError(f"unreadable experiment.json: {e}") from e
    if not isinstance(meta, dict) or not isinstance(meta.get("method"), str):
        raise ArtifactError("experiment.json names no method")
    method = meta["method"]
    params = meta.get("params") or {}
    seed = meta.get("seed", fallback_seed)
    if not isinstance(params, dict) or not isinstance(seed, int):
        raise ArtifactError("experiment.json has no parameters object or no integer seed")
    files = {}
    for name in names:
        try:
            files[name] = read_bytes_safely(name, 8 * 2**20, root=dest)
        except OSError:
            continue
    if method.endswith(".py"):
        if "/" in method or method.startswith(".") or method not in files:
            raise ArtifactError(f"experiment.json cites {method!r}, which is not a file of the artifact")
    else:
        from aar.w2s.methods.registry import builtin_methods

        if method not in builtin_methods():
            raise ArtifactError(f"experiment.json cites {method!r}, neither a shipped method nor a .py file")
    return Experiment(method, params, seed, files, meta)


def worker_module() -> str:
    """The experiment worker: ``aar.w2s.worker`` where it exists, else the agents' one."""
    for mod in ("aar.w2s.worker", "aar.agents.worker"):
        if importlib.util.find_spec(mod) is not None:
            return mod
    raise RuntimeError("no experiment worker module found")


@dataclass
class RunResult:
    """One sandboxed run: predictions by id, or why there are none."""

    ok: bool
    probs: dict[str, float] | None = None
    error: str | None = None
    seconds: float = 0.0
    killed: str | None = None


def _next_uid() -> int:
    """A uid for a run started without one (single runs; :mod:`aar.audit.core` takes a uid block)."""
    with _uid_lock:
        return AUDIT_UID_BASE + next(_uid_counter) % 10_000


def _check(probs: object, ids: list[str]) -> dict[str, float]:
    if not isinstance(probs, dict):
        raise ValueError("predictions are not a mapping")
    out = {}
    for i in ids:
        v = probs.get(i)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not 0 <= v <= 1:
            raise ValueError(f"no valid probability for {i}")
        out[i] = float(v)
    return out


def run_experiment(
    exp: Experiment,
    view: Path,
    seed: int,
    ids: list[str],
    work: Path,
    cfg: AuditConfig,
    uid: int | None = None,
    audit_log: AuditFn | None = None,
    label: str = "audit",
) -> RunResult:
    """Run ``exp`` at ``seed`` on ``view`` in a fresh sandbox under ``work`` (removed afterwards);
    predictions for ``ids`` (test, plus final on the audit views)."""
    from aar.sandbox import Limits, SandboxSpec, prepare_workspace, run_sandboxed
    from aar.sandbox.safe_read import read_json_safely, read_text_safely

    uid = _next_uid() if uid is None else uid
    if work.exists():
        shutil.rmtree(work)
    ws = prepare_workspace(work, uid)
    t0 = time.monotonic()
    try:
        method = exp.method
        if exp.is_file:
            (ws / exp.method).write_bytes(exp.files[exp.method])
            method = str(ws / exp.method)
        out = ws / "out"
        out.mkdir()
        req = {
            "view": str(view),
            "method": method,
            "params": exp.params,
            "seeds": [seed],
            "splits": ["test"],
            "out_dir": str(out),
            # the agents' runner keeps a share of train_unlabel out of training for its diagnostics:
            # re-run with the same share (recorded in experiment.json, else the runner's default)
            "holdout": float(exp.meta.get("holdout", AGENT_HOLDOUT)),
        }
        (ws / "request.json").write_text(json.dumps(req))
        if os.geteuid() == 0:
            for p in (ws, out, *ws.iterdir()):
                os.chown(p, uid, uid)
        limits = Limits(
            memory_mb=cfg.memory_mb,
            wall_seconds=cfg.timeout_s,
            cpu_seconds=cfg.timeout_s * 2,
            max_processes=64,
            disk_mb=512,
            poll_seconds=0.25,
            disk_poll_seconds=5.0,
        )
        spec = SandboxSpec(
            workspace=ws, readonly=[view], env={"OMP_NUM_THREADS": "1"}, limits=limits, uid=uid, gid=uid
        )
        res = run_sandboxed(
            [sys.executable, "-m", worker_module(), str(ws / "request.json")],
            spec,
            audit=audit_log,
            label=label,
            allow_unsafe=cfg.allow_unsafe,
        )
        seconds = round(time.monotonic() - t0, 2)
        if res.killed_reason:
            return RunResult(False, error=f"killed by the sandbox ({res.killed_reason}) after "
                             f"{res.wall_seconds:.0f}s", seconds=seconds, killed=res.killed_reason)
        try:
            blob = read_json_safely(f"out/s{seed}.json", MAX_PREDICTIONS_BYTES, root=ws)
            return RunResult(True, _check(blob.get("probs") if isinstance(blob, dict) else None, ids),
                             seconds=seconds)
        except (OSError, ValueError) as e:
            try:
                err = read_text_safely("out/error.txt", 8000, root=ws).strip()
            except OSError:
                err = (res.stderr or "")[-1500:].strip() or f"exit status {res.returncode}"
            return RunResult(False, error=f"no valid predictions ({e}): {err[-1500:]}", seconds=seconds)
    finally:
        shutil.rmtree(work, ignore_errors=True)
