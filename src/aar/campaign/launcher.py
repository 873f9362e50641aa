"""Starting agent processes: one OS process (and process group) per agent, behind a small interface.

:class:`ProcessLauncher` runs agents as plain subprocesses (own session, killed with their whole
group, and with the campaign if it dies). :class:`SandboxLauncher` runs them in bubblewrap
sandboxes (:mod:`aar.sandbox`): only the agent's workspace (read-write), the testbed's public view
(read-only) and the server's Unix socket are visible, with CPU/memory/time limits.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol


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


class _PlainHandle:
    def __init__(self, popen: subprocess.Popen) -> None:
        self.popen, self.pid = popen, popen.pid
        self.stdin, self.stdout = popen.stdin, popen.stdout  # pipes when launched with pipes=True

    def poll(self) -> int | None:
        return self.popen.poll()

    def kill(self) -> None:
        from aar.agents.procs import kill_group

        kill_group(self.popen, grace=1.0)


class ProcessLauncher:
    """Agents as plain subprocesses (no isolation): for hosts without bubblewrap, with the unsafe flag."""

    name = "process (NO sandbox)"

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
                    preexec_fn=die_with_parent))
        return _PlainHandle(start_group(launch.command(), launch.log, env=env, cwd=launch.workspace))


class _SandboxHandle:
    def __init__(self, proc, log_file) -> None:
        self.proc, self.pid, self._log = proc, proc.pid, log_file
        self.stdin, self.stdout = proc.stdin, proc.stdout  # pipes when launched with pipes=True

    def poll(self) -> int | None:
        code = self.proc.poll()
        if code is not None and not self._log.closed:
            self._log.close()
        return code

    def kill(self) -> None:
        self.proc.kill("killed")
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        self._log.close()


class SandboxLauncher:
    """Agents in bubblewrap sandboxes, one unprivileged uid per agent."""

    name = "bubblewrap sandbox"

    def __init__(self, memory_mb: int = 4096, max_processes: int = 512, audit=None) -> None:
        """Per-agent memory and task limits (the wall limit comes from each agent's budget)."""
        self.memory_mb, self.max_processes, self.audit = memory_mb, max_processes, audit

    def start(self, launch: AgentLaunch) -> AgentHandle:
        """Start the agent in its sandbox; the workspace is handed to the agent's uid."""
        from aar.sandbox import Limits, SandboxSpec, popen_sandboxed, prepare_workspace, uid_for_agent

        uid = uid_for_agent(launch.index)
        prepare_workspace(launch.workspace, uid)
        _chown_tree(launch.workspace, uid)
        limits = Limits(
            memory_mb=self.memory_mb,
            wall_seconds=launch.wall_seconds + 60,
            cpu_seconds=max(60.0, 4 * launch.wall_seconds),
            max_processes=self.max_processes,
            disk_mb=2048,
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
        )
        log = open(launch.log, "ab")  # noqa: SIM115 - closed by the handle
        pipes = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE, "stderr": log} if launch.pipes else {
            "stdout": log, "stderr": subprocess.STDOUT}
        proc = popen_sandboxed(launch.command(), spec, audit=self.audit, label=launch.name, **pipes)
        return _SandboxHandle(proc, log)


def _chown_tree(path: Path, uid: int) -> None:
    import os

    if os.geteuid() != 0:
        return
    for p in [path, *path.rglob("*")]:
        if not p.is_symlink():
            os.chown(p, uid, uid)


def make_launcher(unsafe_no_sandbox: bool) -> Launcher:
    """The sandbox launcher when bubblewrap works; the plain one only with the explicit unsafe flag."""
    if unsafe_no_sandbox:
        return ProcessLauncher()
    from aar.sandbox import require_sandbox

    require_sandbox()
    return SandboxLauncher()
