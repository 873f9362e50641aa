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

import contextlib
import json
import os
import select
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from aar.agents import timing
from aar.agents.procs import kill_group, start_group, wait_or_kill
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
    """Runs an agent's experiments in a worker process of its own process group, with a timeout.

    By default (``warm``) one long-lived worker (``python -m aar.w2s.worker --serve``) takes the runs one
    at a time, so its interpreter start and imports are paid once rather than per run; it reads the view
    afresh for every run. It is replaced by a fresh one (started at once, so it is ready by the next run)
    when a run times out (the whole group is killed, as for a per-run worker), when it dies, after a
    method *file* (agent code: nothing it leaves in the process reaches a later run) and when its memory
    after a run exceeds ``max_worker_mb`` (what a long life may accumulate). With ``warm=False`` every run
    starts its own worker process.
    """

    def __init__(
        self,
        view: Path,
        workspace: Path,
        timeout_s: float = EXPERIMENT_TIMEOUT_S,
        python: str | None = None,
        env: dict[str, str] | None = None,
        holdout: float = 0.1,
        warm: bool = True,
        max_worker_mb: float = 1536.0,
    ) -> None:
        """Runner on the public view ``view``, keeping runs under ``workspace/runs``; ``holdout`` is the
        share of ``train_unlabel`` kept from every method for diagnostics (0: none)."""
        if max_worker_mb <= 0:
            raise ValueError(f"max_worker_mb must be > 0, got {max_worker_mb}")
        self.view = Path(view)
        self.runs_dir = Path(workspace) / "runs"
        self.timeout_s = timeout_s
        self.python = python or sys.executable
        self.env = env
        self.holdout = holdout
        self.warm = warm
        self.max_worker_mb = max_worker_mb
        self._worker: WarmWorker | None = None

    def _new_run_id(self) -> str:
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        n = sum(1 for p in self.runs_dir.iterdir() if p.is_dir())
        return f"r{n + 1:04d}"

    def start(self) -> None:
        """Start the warm worker now (its imports overlap whatever the agent does before its first run)."""
        if self.warm and (self._worker is None or not self._worker.alive()):
            self.runs_dir.mkdir(parents=True, exist_ok=True)
            self._worker = WarmWorker(self.python, self.runs_dir / "worker.log", self.env, self.runs_dir)

    def close(self) -> None:
        """Stop the warm worker (its whole process group)."""
        if self._worker is not None:
            self._worker.close()
            self._worker = None

    def __enter__(self) -> ExperimentRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        seeds: list[int] | tuple[int, ...] = (0,),
        splits: tuple[str, ...] = ("dev", "test"),
        timeout_s: float | None = None,
    ) -> ExperimentResult:
        """Run ``method`` with ``params`` for each seed; never raises for what the method does."""
        with timing.span("experiment_overhead"):
            return self._run(method, params, seeds, splits, timeout_s)

    def _run(
        self,
        method: str,
        params: dict[str, Any] | None,
        seeds: list[int] | tuple[int, ...],
        splits: tuple[str, ...],
        timeout_s: float | None,
    ) -> ExperimentResult:
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
        if self.warm:
            code, timed_out, waited = self._run_warm(request, limit, method.endswith(".py"))
        else:
            proc = start_group(
                [self.python, "-m", "aar.w2s.worker", str(request)],
                out / "worker.log",
                env=self.env,
                cwd=out,
            )
            code, timed_out = wait_or_kill(proc, limit)
            waited = time.monotonic() - t0
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
        inside = 0.0
        for seed in seeds:
            blob = read_seed(out, seed)
            if blob is None:
                break
            res.probs.append(blob.probs)
            res.seconds.append(blob.seconds)
            res.holdout_probs.append(blob.holdout_probs or {})
            res.params = res.params if blob.params is None else blob.params
            inside += blob.seconds if blob.run_seconds is None else blob.run_seconds
        # a run killed at its limit was inside the method until then
        timing.record("experiment", min(waited, max(inside, waited if timed_out else 0.0)))
        if timed_out:
            res.error = f"timed out after {limit:.0f}s; the experiment's process group was killed"
        elif (out / "error.txt").exists():
            res.error = (out / "error.txt").read_text()[:2000]
        elif code != 0:
            log = out / "worker.log"
            tail = log.read_text(errors="replace")[-1500:] if log.exists() else ""
            res.error = f"worker exited with status {code}: {tail}"
        res.ok = res.error is None and len(res.probs) == len(res.seeds)
        (out / "result.json").write_text(json.dumps(res.summary(), indent=1))
        return res

    def _run_warm(self, request: Path, limit: float, agent_code: bool) -> tuple[int | None, bool, float]:
        """One request on the warm worker: (exit code, 0 when it answered; timed out; seconds waited)."""
        self.start()
        worker = self._worker
        assert worker is not None
        answer, timed_out, waited = worker.request(request, limit)
        big = answer is not None and float(answer.get("rss_mb") or 0.0) > self.max_worker_mb
        if answer is None or agent_code or big:
            # killed at its limit, dead, done with agent code, or grown too big: a fresh one next
            died = worker.close()
            code = died if answer is None else _answer_code(answer)
            self._worker = None
            self.start()
            return code, timed_out, waited
        return _answer_code(answer), False, waited


def _answer_code(answer: dict[str, Any]) -> int:
    """The warm worker's answer as a per-run worker's exit code: 0 when the request ran, 1 when it failed."""
    return 0 if answer.get("ok") else 1


class WarmWorker:
    """One ``python -m aar.w2s.worker --serve`` process: the leader of its own process group (killed whole,
    and with this process), fed request paths on stdin, answering one JSON line each on stdout.

    It dies with this process through a lifeline: a pipe whose only write end this process holds. When
    this process ends, however it ends, the worker reads end-of-file there and kills its own group. (The
    kernel's parent-death signal would follow the *thread* that started it, and the tools of ``aar mcp``
    run on pool threads that come and go.)
    """

    def __init__(self, python: str, log_path: Path, env: dict[str, str] | None, cwd: Path) -> None:
        """Start the worker; its stderr (imports, anything between requests) goes to ``log_path``."""
        life_r, self._lifeline = os.pipe()
        try:
            with open(log_path, "ab") as log:
                self.proc: subprocess.Popen[bytes] = subprocess.Popen(
                    [python, "-m", "aar.w2s.worker", "--serve", "--lifeline", str(life_r)],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=log,
                    start_new_session=True,
                    env=dict(env) if env is not None else None,
                    cwd=cwd,
                    close_fds=True,
                    pass_fds=(life_r,),
                )
        except BaseException:
            os.close(self._lifeline)
            raise
        finally:
            os.close(life_r)
        self._buffer = b""

    def alive(self) -> bool:
        """Whether the process is still running."""
        return self.proc.poll() is None

    def request(self, request: Path, limit: float) -> tuple[dict[str, Any] | None, bool, float]:
        """Send ``request`` and wait up to ``limit`` seconds for its answer; on timeout kill the whole group.

        Returns (the answer or None, timed out, seconds waited). None without a timeout: the worker died.
        """
        t0 = time.monotonic()
        assert self.proc.stdin is not None and self.proc.stdout is not None
        try:
            self.proc.stdin.write(f"{request}\n".encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            return None, False, time.monotonic() - t0
        deadline = t0 + max(0.0, limit)
        fd = self.proc.stdout.fileno()
        while True:
            while b"\n" in self._buffer:
                line, self._buffer = self._buffer.split(b"\n", 1)
                try:
                    msg = json.loads(line)
                except ValueError:
                    continue
                if isinstance(msg, dict) and msg.get("done") == str(request):
                    return msg, False, time.monotonic() - t0
            left = deadline - time.monotonic()
            if left <= 0:
                kill_group(self.proc)
                return None, True, time.monotonic() - t0
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:  # the worker is gone
                    return None, False, time.monotonic() - t0
                self._buffer += chunk

    def close(self) -> int | None:
        """End the worker and anything it left in its group; its exit code."""
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        code = kill_group(self.proc)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        if self._lifeline >= 0:
            with contextlib.suppress(OSError):
                os.close(self._lifeline)
            self._lifeline = -1
        return code
