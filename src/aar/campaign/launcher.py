"""Starting agent processes: one OS process (and process group) per agent, behind a small interface.

:class:`ProcessLauncher` runs agents as plain subprocesses (own session, killed with their whole
group, and with the campaign if it dies). :class:`SandboxLauncher` runs them in bubblewrap
sandboxes (:mod:`aar.sandbox`): only the agent's workspace (read-write), the testbed's public view
(read-only) and the server's Unix socket are visible, with CPU/memory/time/disk/file limits, each
agent under its own uid from a block held by the campaign (:mod:`aar.sandbox.uids`), so that two
campaigns on one machine never share uids. Both report to the campaign's audit trail (``audit=``):
``sandbox.start``/``sandbox.limit``/``sandbox.exit`` for sandboxes, ``process.start``/``process.exit``
for plain processes.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from aar.sandbox.process import SandboxProcess
    from aar.sandbox.uids import UidBlock

AuditFn = Callable[[dict[str, Any]], None]  # the campaign's audit trail (aar.campaign.events.AuditLog)


@dataclass
class AgentLaunch:
    """Everything needed to start one agent process."""

    name: str
    index: int
    workspace: Path
    config: Path  # the agent.json inside the workspace
    log: Path
    readonly: list[Path]
    socket: Path | None
    env: dict[str, str]
    wall_seconds: float
    argv: list[str] = field(default_factory=list)
    pipes: bool = False  # stdin/stdout as pipes (LLM backends: the supervisor talks to the tool executor)

    def command(self) -> list[str]:
        """``python -m aar.agents.run_agent CONFIG`` unless ``argv`` is set."""
        return self.argv or [sys.executable, "-m", "aar.agents.run_agent", str(self.config)]


class AgentHandle(Protocol):
    """A running agent."""

    pid: int

    def poll(self) -> int | None: ...

    def kill(self) -> None: ...


class Launcher(Protocol):
    """Starts agents; each gets its own process group that :meth:`AgentHandle.kill` ends entirely."""

    name: str

    def start(self, launch: AgentLaunch) -> AgentHandle: ...


NO_SANDBOX = "none (--unsafe-no-sandbox)"


class _PlainHandle:
    def __init__(self, popen: subprocess.Popen[bytes], audit: AuditFn | None = None, label: str = "") -> None:
        self.popen, self.pid = popen, popen.pid
        self.stdin, self.stdout = popen.stdin, popen.stdout  # pipes when launched with pipes=True
        self._audit, self._label, self._run_id, self._killed = audit, label, uuid.uuid4().hex[:12], False
        args = popen.args if isinstance(popen.args, (list, tuple)) else [popen.args]
        self._event("process.start", argv=[str(a) for a in args], pid=popen.pid, unsafe=True)

    def _event(self, event: str, **fields: Any) -> None:
        if self._audit is not None:
            self._audit({"event": event, "run_id": self._run_id, "label": self._label, **fields})

    def poll(self) -> int | None:
        code = self.popen.poll()
        if code is not None and self._run_id:
            self._event("process.exit", returncode=code, killed_reason="killed" if self._killed else None)
            self._run_id = ""
        return code

    def kill(self) -> None:
        from aar.agents.procs import kill_group

        self._killed = self.popen.poll() is None
        kill_group(self.popen, grace=1.0)
        self.poll()


class ProcessLauncher:
    """Agents as plain subprocesses (no isolation): for hosts without bubblewrap, with the unsafe flag."""

    name = "process (NO sandbox)"
    isolation = NO_SANDBOX

    def __init__(self, audit: AuditFn | None = None) -> None:
        """``audit``: the campaign's audit callback (start and exit of each agent process)."""
        self.audit = audit

    def start(self, launch: AgentLaunch) -> AgentHandle:
        """Start the agent in a new session with its environment; output to its log."""
        import os

        from aar.agents.procs import start_group

        env = {k: v for k, v in os.environ.items() if not k.startswith("AAR_")}
        env = {k: v for k, v in env.items() if not k.endswith(("_API_KEY", "_AUTH_TOKEN"))}  # model API keys
        env.update(launch.env)
        if launch.pipes:  # LLM backends: the tool executor speaks JSON lines on stdin/stdout
            from aar.agents.procs import die_with_parent

            with open(launch.log, "ab") as log:
                return _PlainHandle(subprocess.Popen(
                    launch.command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                    start_new_session=True, env=env, cwd=launch.workspace, close_fds=True,
                    preexec_fn=die_with_parent), self.audit, launch.name)
        popen = start_group(launch.command(), launch.log, env=env, cwd=launch.workspace)
        return _PlainHandle(popen, self.audit, launch.name)


class _SandboxHandle:
    def __init__(self, proc: SandboxProcess, log_file: IO[bytes]) -> None:
        self.proc, self.pid, self._log = proc, proc.pid, log_file
        self.stdin, self.stdout = proc.stdin, proc.stdout  # pipes when launched with pipes=True
        self._exited = False
        self._lock = threading.Lock()  # the LLM loop's thread and the campaign's both poll

    def poll(self) -> int | None:
        code = self.proc.poll()
        if code is not None:
            with self._lock:
                if not self._log.closed:
                    self._log.close()
                if not self._exited:  # the sandbox.exit audit event (return code, kill reason, peaks)
                    self._exited = True
                    self.proc.result()
        return code

    def kill(self) -> None:
        self.proc.kill("killed")
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        self._log.close()
        self.poll()


class SandboxLauncher:
    """Agents in bubblewrap sandboxes, one unprivileged uid per agent, from the campaign's own block."""

    name = "bubblewrap sandbox"
    isolation = "bubblewrap"

    def __init__(self, memory_mb: int = 4096, max_processes: int = 512, audit: AuditFn | None = None,
                 uids: UidBlock | None = None, max_files: int = 100_000,
                 devices: list[Path] | None = None) -> None:
        """Per-agent memory, task and file limits (the wall limit comes from each agent's budget).

        ``audit``: the campaign's audit callback; ``uids``: a held :class:`aar.sandbox.uids.UidBlock`
        (by default one is taken at the first start and held until :meth:`close` or the end of
        this process); ``devices``: host device nodes the agents may use (the GPUs a Ray node gave
        this agent; none by default).
        """
        self.memory_mb, self.max_processes, self.audit = memory_mb, max_processes, audit
        self.uids, self.max_files, self.devices = uids, max_files, list(devices or [])

    def uid_for(self, index: int) -> int:
        """The uid of agent ``index``: unique on this machine while the campaign runs."""
        if self.uids is None:
            from aar.sandbox.uids import allocate_uid_block

            self.uids = allocate_uid_block()
        return self.uids.uid(index)

    def close(self) -> None:
        """Give the campaign's block of uids back."""
        if self.uids is not None:
            self.uids.release()

    def start(self, launch: AgentLaunch) -> AgentHandle:
        """Start the agent in its sandbox; the workspace is handed to the agent's uid."""
        from aar.sandbox import Limits, SandboxSpec, popen_sandboxed, prepare_workspace

        uid = self.uid_for(launch.index)
        prepare_workspace(launch.workspace, uid)
        _chown_tree(launch.workspace, uid)
        limits = Limits(
            memory_mb=self.memory_mb,
            wall_seconds=launch.wall_seconds + 60,
            cpu_seconds=max(60.0, 4 * launch.wall_seconds),
            max_processes=self.max_processes,
            disk_mb=2048,
            max_files=self.max_files,
            poll_seconds=0.5,
            disk_poll_seconds=10.0,
        )
        spec = SandboxSpec(
            workspace=launch.workspace,
            readonly=launch.readonly,
            server_socket=launch.socket,
            env=launch.env,
            limits=limits,
            uid=uid,
            gid=uid,
            devices=self.devices,
        )
        log = open(launch.log, "ab")  # noqa: SIM115 - closed by the handle
        if launch.pipes:
            proc = popen_sandboxed(launch.command(), spec, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   stderr=log, audit=self.audit, label=launch.name)
        else:
            proc = popen_sandboxed(launch.command(), spec, stdout=log, stderr=subprocess.STDOUT,
                                   audit=self.audit, label=launch.name)
        return _SandboxHandle(proc, log)


def _chown_tree(path: Path, uid: int) -> None:
    import os

    if os.geteuid() != 0:
        return
    for p in [path, *path.rglob("*")]:
        if not p.is_symlink():
            os.chown(p, uid, uid, follow_symlinks=False)


def make_launcher(unsafe_no_sandbox: bool, audit: AuditFn | None = None) -> Launcher:
    """The sandbox launcher when bubblewrap works; the plain one only with the explicit unsafe flag.

    ``audit`` (the campaign's :class:`aar.campaign.events.AuditLog`) receives every sandbox event.
    """
    if unsafe_no_sandbox:
        if audit is not None:
            audit({"event": "sandbox.unsafe", "reason": "--unsafe-no-sandbox: agents run WITHOUT isolation"})
        return ProcessLauncher(audit)
    from aar.sandbox import require_sandbox

    require_sandbox()
    return SandboxLauncher(audit=audit)


def isolation_of(launcher: object) -> str:
    """How agents of ``launcher`` are isolated: ``bubblewrap``, ``none (--unsafe-no-sandbox)``, ...

    Wrapping launchers (LLM backends) are looked through via their ``base``.
    """
    while launcher is not None:
        isolation = getattr(launcher, "isolation", None)
        if isolation:
            return str(isolation)
        launcher = getattr(launcher, "base", None)
    return "unknown (custom launcher)"


def close_launcher(launcher: object) -> None:
    """Release what a launcher (or the launcher it wraps) holds, such as its block of uids."""
    while launcher is not None:
        close = getattr(launcher, "close", None)
        if callable(close):
            close()
        launcher = getattr(launcher, "base", None)
