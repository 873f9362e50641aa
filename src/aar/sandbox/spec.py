"""What a sandbox may see (``SandboxSpec``) and what a sandboxed run reports (``SandboxResult``)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from aar.sandbox.limits import Limits

# what subprocess.Popen takes for stdin, stdout and stderr: a file descriptor, a file, PIPE, DEVNULL
StdStream = int | IO[Any] | None
NOBODY_UID = 65534


class SandboxError(RuntimeError):
    """A sandbox could not be set up as specified."""


class SandboxUnavailable(SandboxError):
    """bubblewrap cannot run here and running without isolation was not explicitly allowed."""


@dataclass(frozen=True)
class SandboxSpec:
    """Everything a sandbox may see or use; anything not listed here is invisible inside.

    workspace: the agent's directory, read-write, mounted at its own host path (so paths in logs,
        tracebacks and symlinks mean the same inside and out); the working directory and ``HOME``.
        Create it with :func:`aar.sandbox.prepare_workspace` so that the sandbox uid owns it.
    readonly: further host paths visible read-only at their own paths (testbed public view,
        cached teacher outputs, model checkpoints). The Python installation, the system
        libraries and the installed ``aar`` package are added automatically.
    server_socket: the scoring server's Unix socket, bind-mounted at its own path; the only
        way out of the sandbox's empty network namespace. It must be connectable by ``uid``.
    env: the only environment variables passed in, besides ``PATH``, ``HOME``, ``TMPDIR``,
        ``LANG``, ``USER`` and ``PYTHONNOUSERSITE``. Put the agent's own token here, nothing else.
    limits: resource budgets (see :class:`aar.sandbox.Limits`).
    uid / gid: the unprivileged host ids the sandbox runs as. ``RLIMIT_NPROC`` counts per uid,
        so give each agent its own uid (:func:`aar.sandbox.uid_for_agent`) and run its
        experiments under the same one. Ignored when the supervisor is not root (the sandbox
        then runs as the invoking user, who is mapped to ``uid`` inside).
    devices: host device nodes to expose (for example ``/dev/nvidia0``); none by default.
    """

    workspace: Path
    readonly: Sequence[Path] = ()
    server_socket: Path | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    limits: Limits = field(default_factory=Limits)
    uid: int = NOBODY_UID
    gid: int = NOBODY_UID
    devices: Sequence[Path] = ()

    def __post_init__(self) -> None:
        if self.uid == 0 or self.gid == 0:
            raise SandboxError("a sandbox never runs as uid/gid 0")
        for key, value in self.env.items():
            if not key or "=" in key or "\0" in key or "\0" in str(value):
                raise SandboxError(f"invalid environment variable {key!r}")


@dataclass(frozen=True)
class SandboxResult:
    """Outcome of one sandboxed command.

    killed_reason: why the supervisor killed the tree (``wall``, ``cpu``, ``memory``,
        ``processes``, ``disk``, ``files``, ``killed`` for an explicit kill) or ``None``.
    file_growth: files (inodes) the workspace gained, at most (as ``disk_growth_mb`` for bytes).
    unsafe: ``True`` when the command ran WITHOUT isolation (explicit unsafe flag).
    """

    run_id: str
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    killed_reason: str | None
    wall_seconds: float
    cpu_seconds: float
    peak_memory_mb: float
    peak_tasks: int
    disk_growth_mb: float
    unsafe: bool
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    file_growth: int = 0

    @property
    def ok(self) -> bool:
        """True when the command exited 0 and was not killed."""
        return self.returncode == 0 and self.killed_reason is None

    def tool_error(self) -> str | None:
        """A one-paragraph error for the agent when the run failed, else ``None``."""
        if self.killed_reason is not None:
            return (
                f"sandbox killed the command (limit exceeded: {self.killed_reason}) after "
                f"{self.wall_seconds:.1f}s wall, {self.cpu_seconds:.1f}s CPU, "
                f"{self.peak_memory_mb:.0f} MiB peak memory, {self.peak_tasks} tasks"
            )
        if self.returncode != 0:
            tail = self.stderr[-2000:].strip()
            return f"command exited with status {self.returncode}" + (f":\n{tail}" if tail else "")
        return None


def resolve(path: os.PathLike[str] | str) -> str:
    """Absolute, symlink-free form of a host path given by the (trusted) supervisor."""
    return os.path.realpath(os.fspath(path))
