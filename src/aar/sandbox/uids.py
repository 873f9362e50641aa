"""Unique sandbox uids per running campaign: a block of uids held with an ``flock`` while it lives.

Process caps (``RLIMIT_NPROC``) and file ownership count per uid, so two campaigns on one machine
must never hand the same uid to two agents. Each campaign takes a block of ``BLOCK_SIZE`` uids:
block ``k`` is ``UID_BASE + k * BLOCK_SIZE ...`` and is held by an exclusive ``flock`` on
``<runtime dir>/block-<k>.lock``. The lock lives as long as the open descriptor (close-on-exec,
so agents never inherit it): it is released by :meth:`UidBlock.release` or, whatever happens to
the campaign (``kill -9`` included), by the kernel when the holder dies, and the block is reused.

The runtime directory is root-owned ``/run/aar-uids`` for a root supervisor (only root can take
or fake a lock there), else ``$AAR_UID_DIR`` or ``<tmp>/aar-uids-<uid>`` (without root, sandboxes
run as the invoking user anyway and the uids only label them).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import tempfile
from pathlib import Path

UID_BASE = 200_000
BLOCK_SIZE = 1_000  # agents per campaign
MAX_BLOCKS = 64  # campaigns running at once on one machine


class NoFreeUids(RuntimeError):
    """Every block of sandbox uids is held by a running campaign."""


def runtime_dir() -> Path:
    """Where the block locks live (created root-owned, mode 700, when the supervisor is root)."""
    if os.environ.get("AAR_UID_DIR"):
        return Path(os.environ["AAR_UID_DIR"])
    if os.geteuid() == 0:
        return Path("/run/aar-uids")
    return Path(tempfile.gettempdir()) / f"aar-uids-{os.geteuid()}"


class UidBlock:
    """A held block of uids; :meth:`uid` gives agent ``index`` its uid. Release it (or exit)."""

    def __init__(self, index: int, fd: int, lock: Path) -> None:
        self._fd: int | None = fd
        self.index, self.lock = index, lock
        self.first = UID_BASE + index * BLOCK_SIZE
        self.size = BLOCK_SIZE

    def uid(self, agent_index: int) -> int:
        """The uid of agent number ``agent_index`` of this campaign."""
        if not 0 <= agent_index < self.size:
            raise ValueError(f"agent index {agent_index} outside the campaign's {self.size} uids")
        return self.first + agent_index

    @property
    def held(self) -> bool:
        """Whether this block is still held."""
        return self._fd is not None

    def release(self) -> None:
        """Give the block back (idempotent)."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None

    def __enter__(self) -> UidBlock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __del__(self) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"UidBlock({self.first}..{self.first + self.size - 1}, held={self.held})"


def _prepare(directory: Path) -> None:
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = os.lstat(directory)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o022:
        raise PermissionError(f"{directory}: not a directory of uid {os.geteuid()} closed to others")


def allocate_uid_block(directory: os.PathLike[str] | str | None = None) -> UidBlock:
    """Take the first free block of sandbox uids on this machine; raises :class:`NoFreeUids`."""
    where = Path(directory) if directory is not None else runtime_dir()
    _prepare(where)
    for index in range(MAX_BLOCKS):
        lock = where / f"block-{index}.lock"
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())  # who holds it, for people looking
        return UidBlock(index, fd, lock)
    raise NoFreeUids(f"all {MAX_BLOCKS} blocks of sandbox uids in {where} are held by running campaigns")
