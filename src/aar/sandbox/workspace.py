"""Agent workspaces on the host: creation, disk usage, and safe reading by the supervisor.

The sandbox uid owns its workspace (mode 700), so agents with different uids cannot read each
other's workspaces even on the host. The supervisor (often root) must never follow a link an
agent planted: :func:`read_workspace_file` opens every component without following symlinks
and only reads regular files.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aar.sandbox.safe_read import FileTooLargeError, UnsafeFileError, read_bytes_safely

AGENT_UID_BASE = 200_000


class WorkspaceEscape(UnsafeFileError):
    """A workspace path leads outside the workspace (symlink, '..', special file)."""


def uid_for_agent(index: int, base: int = AGENT_UID_BASE) -> int:
    """A dedicated unprivileged uid for agent number ``index`` (process caps count per uid)."""
    if index < 0:
        raise ValueError("agent index must be >= 0")
    return base + index


def prepare_workspace(path: os.PathLike[str] | str, uid: int, gid: int | None = None) -> Path:
    """Create ``path`` (and root-owned parents) and give it to the sandbox uid, mode 700.

    When the supervisor is not root the directory is only created (it belongs to the invoking
    user, who is also the sandbox's host uid in that case).
    """
    workspace = Path(path)
    workspace.parent.mkdir(parents=True, exist_ok=True)
    workspace.mkdir(exist_ok=True)
    if os.geteuid() == 0:
        os.chown(workspace, uid, uid if gid is None else gid, follow_symlinks=False)
    os.chmod(workspace, 0o700, follow_symlinks=False)
    return workspace


def disk_usage_bytes(path: os.PathLike[str] | str) -> int:
    """Bytes allocated on disk under ``path`` (``st_blocks``), without following symlinks."""
    return disk_usage(path)[0]


def disk_usage(path: os.PathLike[str] | str) -> tuple[int, int]:
    """(bytes allocated on disk, entries = inodes used) under ``path``, without following symlinks.

    Empty files take no blocks, so the byte count alone misses an agent exhausting the inodes.
    """
    total = count = 0
    stack = [os.fspath(path)]
    while stack:
        current = stack.pop()
        try:
            with os.scandir(current) as entries:
                for entry in entries:
                    try:
                        info = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    total += info.st_blocks * 512
                    count += 1
                    if stat.S_ISDIR(info.st_mode):
                        stack.append(entry.path)
        except OSError:
            continue
    return total, count


def read_workspace_file(
    workspace: os.PathLike[str] | str,
    relpath: str,
    *,
    max_bytes: int = 64 * 2**20,
    audit: Callable[[dict[str, Any]], None] | None = None,
) -> bytes:
    """Read a regular file inside ``workspace`` as the supervisor, refusing any escape.

    Raises :class:`WorkspaceEscape` for absolute paths, ``..``, symlinks anywhere on the way,
    FIFOs, devices and sockets (and records a ``workspace.escape_refused`` audit event), and
    :class:`~aar.sandbox.safe_read.FileTooLargeError` (a ``ValueError``) past ``max_bytes``.
    The reading itself is :func:`aar.sandbox.safe_read.read_bytes_safely`.
    """
    parts = [p for p in relpath.split("/") if p not in ("", ".")]

    def refuse(why: str) -> WorkspaceEscape:
        if audit is not None:
            audit({"event": "workspace.escape_refused", "workspace": os.fspath(workspace),
                   "path": relpath, "reason": why})
        return WorkspaceEscape(relpath, why)

    if relpath.startswith("/") or ".." in parts or not parts:
        raise refuse("path leaves the workspace")
    try:
        return read_bytes_safely("/".join(parts), max_bytes, root=workspace)
    except FileTooLargeError:
        raise
    except UnsafeFileError as exc:
        raise refuse(exc.reason) from exc
