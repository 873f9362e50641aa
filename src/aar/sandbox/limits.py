"""Resource limits of a sandbox, and how each one is enforced.

Two layers, so that one failing does not open the door:

* **Kernel rlimits**, set in the launcher process just before it becomes the sandbox
  (``_enter.py``). They need no privilege and act instantly, per process:
  ``RLIMIT_AS`` (address space), ``RLIMIT_CPU``, ``RLIMIT_NPROC`` (tasks of the sandbox uid:
  threads count), ``RLIMIT_FSIZE`` (largest file), ``RLIMIT_NOFILE``, ``RLIMIT_CORE=0``.
* **A watchdog** in the supervising process (``process.py``), which samples the whole process
  tree every ``poll_seconds`` and kills all of it when a *tree-wide* budget is exceeded: wall
  clock, total CPU time, resident memory, task count and growth of the workspace on disk, in
  bytes and in files (inodes: empty files take no blocks but exhaust the file system's inodes).
* **Mount options** of the private ``/tmp`` and ``/dev/shm``: ``size=`` and, when the supervisor
  is root (it mounts them itself, see ``_enter.py``), ``nr_inodes=``. Without root bubblewrap
  mounts them with a size only (its command line has no inode option).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Limits:
    """Budgets for one sandboxed command (the whole process tree, unless said otherwise).

    memory_mb: resident memory of the tree (watchdog; kill reason ``memory``).
    address_space_mb: per-process ``RLIMIT_AS``, a hard backstop that makes allocations fail
        at once. ``None`` means ``2 * memory_mb + 1024`` (room for the virtual reservations of
        numpy/torch); ``0`` disables it (CUDA reserves far more address space than it uses).
    cpu_seconds: CPU time of the tree (watchdog; each process also gets ``RLIMIT_CPU``).
    wall_seconds: wall clock from launch.
    max_processes: tasks (processes and threads) of the sandbox uid: ``RLIMIT_NPROC``; the
        watchdog kills the tree when it reaches the cap (reason ``processes``).
    disk_mb: growth of the workspace allowed in one run (watchdog); also the largest single
        file (``RLIMIT_FSIZE``) and the size of each private tmpfs (``/tmp``, ``/dev/shm``).
    max_files: files, directories and links the workspace may gain in one run (watchdog, kill
        reason ``files``); also the inode count of each private tmpfs (``nr_inodes=``, root only).
    max_open_files: ``RLIMIT_NOFILE``.
    output_kb: stdout/stderr kept per stream by :func:`aar.sandbox.run_sandboxed`.
    poll_seconds: watchdog sampling period.
    disk_poll_seconds: period of the full workspace scan; a scan also runs as soon as the
        bytes written by the tree could have pushed the workspace over its budget.
    """

    memory_mb: int = 2048
    address_space_mb: int | None = None
    cpu_seconds: float = 600
    wall_seconds: float = 900
    max_processes: int = 128
    disk_mb: int = 512
    max_files: int = 20_000
    max_open_files: int = 1024
    output_kb: int = 1024
    poll_seconds: float = 0.1
    disk_poll_seconds: float = 1.0

    def __post_init__(self) -> None:
        for name in ("memory_mb", "cpu_seconds", "wall_seconds", "max_processes", "disk_mb", "max_files"):
            if getattr(self, name) <= 0:
                raise ValueError(f"Limits.{name} must be positive")
        if self.max_processes < 4:
            raise ValueError("Limits.max_processes must be at least 4 (the launcher itself uses 2)")

    def effective_address_space_mb(self) -> int | None:
        """The ``RLIMIT_AS`` cap in MiB, or ``None`` when disabled."""
        if self.address_space_mb == 0:
            return None
        if self.address_space_mb is None:
            return 2 * self.memory_mb + 1024
        return self.address_space_mb

    def as_dict(self) -> dict[str, Any]:
        """Plain dict, for audit records and result files."""
        return asdict(self)


def rlimits_for(limits: Limits, *, nproc_base: int = 0) -> dict[str, tuple[int, int]]:
    """The ``{RLIMIT_NAME: (soft, hard)}`` map the launcher applies before exec.

    ``nproc_base`` is added to the task cap; it is non-zero only when sandboxes share the
    invoking user's uid (no root), because ``RLIMIT_NPROC`` counts every task of that uid.
    The CPU rlimit sits one second above the tree budget so that the watchdog, which sees the
    whole tree, normally acts first; the rlimit is the backstop if the watchdog cannot.
    """
    mb = 1024 * 1024
    cpu = int(limits.cpu_seconds) + 1
    out: dict[str, tuple[int, int]] = {
        "RLIMIT_CPU": (cpu, cpu + 1),
        "RLIMIT_NPROC": (limits.max_processes + nproc_base, limits.max_processes + nproc_base),
        "RLIMIT_FSIZE": (limits.disk_mb * mb, limits.disk_mb * mb),
        "RLIMIT_NOFILE": (limits.max_open_files, limits.max_open_files),
        "RLIMIT_CORE": (0, 0),
    }
    address_space = limits.effective_address_space_mb()
    if address_space is not None:
        out["RLIMIT_AS"] = (address_space * mb, address_space * mb)
    return out

