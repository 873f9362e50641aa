"""Reading a process tree from /proc: members, CPU time, resident memory, tasks, bytes written."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass
class TreeSample:
    """Totals over a process tree at one instant."""

    pids: list[int]
    cpu_seconds: float  # live processes plus the reaped children they waited for
    rss_mb: float  # sum of RSS: an upper bound (pages shared after fork count once per process)
    tasks: int  # processes + threads, what RLIMIT_NPROC counts
    written_bytes: int  # wchar of live processes plus their reaped children


def descendants(root: int) -> list[int]:
    """``root`` and every process below it (via ``/proc/PID/task/TID/children``)."""
    out: list[int] = []
    stack = [root]
    seen: set[int] = set()
    while stack:
        pid = stack.pop()
        if pid in seen:
            continue
        seen.add(pid)
        out.append(pid)
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{pid}/task/{tid}/children") as handle:
                    stack.extend(int(c) for c in handle.read().split())
            except OSError:
                continue
    return out


def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            raw = handle.read()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    return raw[raw.rfind(")") + 2:].split()


def _pss_kib(pid: int) -> int | None:
    """Proportional set size: shared pages (e.g. after fork) are split between their users."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as handle:
            for line in handle:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def tree_pss_mb(pids: list[int]) -> float:
    """Sum of PSS over ``pids`` (shared pages split between users); RSS where PSS is unavailable.

    Costs a page-table walk per process (milliseconds for a large one), so the watchdog only
    asks for it when the cheap RSS sum is already over the limit.
    """
    total = 0
    for pid in pids:
        pss = _pss_kib(pid)
        if pss is not None:
            total += pss * 1024
        else:
            fields = _stat_fields(pid)
            total += int(fields[21]) * PAGE if fields else 0
    return total / 2**20


def _wchar(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/io") as handle:
            for line in handle:
                if line.startswith("wchar:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def sample_tree(root: int) -> TreeSample:
    """Sum CPU, memory, tasks and writes over the tree rooted at ``root``.

    Reaped children are accounted by the kernel into their parent's ``cutime``/``cstime`` and
    I/O counters, so summing over live processes also covers processes that already exited.
    """
    pids = descendants(root)
    ticks = rss = tasks = written = 0
    for pid in pids:
        fields = _stat_fields(pid)
        if fields is None:
            continue
        # After the name: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14)
        # ... num_threads(17) ... rss(21)
        ticks += int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])
        tasks += int(fields[17])
        rss += int(fields[21]) * PAGE
        written += _wchar(pid)
    return TreeSample(pids, ticks / CLK_TCK, rss / 2**20, tasks, written)


def kill_tree(root: int, pids: list[int] | None = None, grace: float = 2.0) -> None:
    """SIGKILL every process of the tree, innermost first, then ``root`` if it is still there.

    Killing the sandbox's pid-1 (the child of the outer bubblewrap) makes the kernel kill every
    process in its pid namespace; the outer bubblewrap then reaps it and exits by itself. Killing
    the outer one first would orphan pid-1 to the host's init, which in containers often never
    reaps: the zombie would keep counting against the uid's process cap.
    """
    members = descendants(root) if pids is None else list(pids)
    for pid in reversed(members):
        if pid != root:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and _running(root):
        time.sleep(0.01)
    action: Callable[[], None]
    for action in (lambda: os.kill(root, signal.SIGKILL), lambda: os.killpg(root, signal.SIGKILL)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            action()


def _running(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    fields = _stat_fields(pid)
    return fields is not None and fields[0] != "Z"
