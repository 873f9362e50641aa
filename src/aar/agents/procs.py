"""Child processes in their own process group, and killing the whole group (and any stragglers)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def die_with_parent() -> None:
    """In a child before exec: get SIGKILL when the parent dies (Linux ``PR_SET_PDEATHSIG``)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def start_group(
    argv: Sequence[str], log_path: Path, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start ``argv`` as the leader of a new session (so of a new process group), output to ``log_path``.

    The child is killed if this process dies, so a killed supervisor leaves no orphan behind.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            close_fds=True,
            preexec_fn=die_with_parent,
        )


def _descendants(pid: int) -> list[int]:
    try:
        from aar.sandbox.proctree import descendants

        return [p for p in descendants(pid) if p != pid]
    except Exception:  # /proc unreadable or the process is gone: the group kill still applies
        return []


def kill_group(proc: subprocess.Popen[Any], grace: float = 0.0) -> int | None:
    """Kill ``proc``'s whole process group and every descendant still found; reap ``proc``.

    With ``grace`` > 0 the group first gets SIGTERM and that long to exit. Returns the exit code.
    """
    stragglers = _descendants(proc.pid)
    if grace > 0 and proc.poll() is None:
        _signal_group(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(grace)
        stragglers += _descendants(proc.pid)
    _signal_group(proc.pid, signal.SIGKILL)
    for pid in stragglers:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    try:
        return proc.wait(10)
    except subprocess.TimeoutExpired:
        return None


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def wait_or_kill(proc: subprocess.Popen[Any], timeout_s: float) -> tuple[int | None, bool]:
    """Wait up to ``timeout_s`` for ``proc``; on timeout kill its whole group. Returns (code, timed_out)."""
    deadline = time.monotonic() + max(0.0, timeout_s)
    while proc.poll() is None:
        if time.monotonic() >= deadline:
            return kill_group(proc), True
        time.sleep(0.05)
    # the leader exited: anything it left behind in its group goes too
    _signal_group(proc.pid, signal.SIGKILL)
    return proc.returncode, False
