"""Reading files an agent could have written, as the (often root) supervisor: the one safe reader.

Anything under an agent's workspace is hostile: a name the supervisor expects to be a small JSON file
can be a FIFO (a plain ``open`` blocks forever), a symlink to ``/dev/zero`` (a plain ``read`` never
ends), a symlink to a root-only file, a directory, or a 10 GB file. Every read of an agent-written
file by the campaign, its budgets or its report goes through :func:`read_bytes_safely` (or the
text/JSON helpers), which:

* walks the path from a trusted ``root`` one component at a time with ``openat(O_NOFOLLOW)``, so a
  symlink anywhere below ``root`` is refused (``root`` itself and its parents are the supervisor's);
* opens the file with ``O_NOFOLLOW | O_NONBLOCK`` (opening a FIFO returns at once instead of
  waiting for a writer) and checks with ``fstat`` on the opened descriptor that it is a regular
  file, so nothing can be swapped in between a check and the open;
* reads at most ``max_bytes`` (+1 to detect overflow) and raises instead of returning a partial file.

Refusals raise :class:`UnsafeFileError` (a ``PermissionError``); files over the cap raise
:class:`FileTooLargeError` (also a ``ValueError``). A missing file raises ``FileNotFoundError``.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from typing import Any

DEFAULT_MAX_BYTES = 16 * 2**20


class UnsafeFileError(PermissionError):
    """A file written by an agent was refused: symlink, FIFO/device/socket, path leaving its root."""

    def __init__(self, path: os.PathLike[str] | str, reason: str) -> None:
        super().__init__(f"refusing to read {os.fspath(path)!r}: {reason}")
        self.path, self.reason = os.fspath(path), reason


class FileTooLargeError(UnsafeFileError, ValueError):
    """A file written by an agent is larger than the reader's cap."""


def _components(path: str, root: str | None) -> tuple[str, list[str]]:
    """(directory to start from, relative components) for ``path`` under ``root``."""
    if root is None:
        head, tail = os.path.split(path)
        return head or ".", [tail]
    rel = path
    if os.path.isabs(path):
        rel = os.path.relpath(os.path.normpath(path), os.path.normpath(root))
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    if os.path.isabs(rel) or ".." in parts or not parts:
        raise UnsafeFileError(path, f"the path leaves {root!r}")
    return root, parts


def open_safely(path: os.PathLike[str] | str, *, root: os.PathLike[str] | str | None = None) -> int:
    """A read-only descriptor on the regular file ``path``, refusing symlinks and special files.

    With ``root``, ``path`` (relative to ``root``, or absolute inside it) is opened component by
    component below ``root`` without following any symlink; without it only the last component is
    untrusted. The caller closes the descriptor.
    """
    path = os.fspath(path)
    start, parts = _components(path, None if root is None else os.fspath(root))
    nofollow = os.O_NOFOLLOW if root is not None else 0
    fd = os.open(start, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC | nofollow)
    try:
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            flags = os.O_NOFOLLOW | os.O_CLOEXEC
            flags |= os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY if last else os.O_PATH | os.O_DIRECTORY
            try:
                nxt = os.open(part, flags, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.ENXIO, errno.EMLINK):
                    raise UnsafeFileError(path, "symlink, socket or non-directory on the path") from exc
                raise
            os.close(fd)
            fd = nxt
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise UnsafeFileError(path, f"not a regular file (mode {stat.filemode(mode)})")
        os.set_blocking(fd, True)
        return fd
    except BaseException:
        os.close(fd)
        raise


def read_bytes_safely(
    path: os.PathLike[str] | str,
    max_bytes: int = DEFAULT_MAX_BYTES,
    *,
    root: os.PathLike[str] | str | None = None,
) -> bytes:
    """The bytes of the regular file ``path`` (at most ``max_bytes``); see :func:`open_safely`."""
    fd = open_safely(path, root=root)
    try:
        if os.fstat(fd).st_size > max_bytes:
            raise FileTooLargeError(path, f"larger than {max_bytes} bytes")
        chunks, size = [], 0
        while size <= max_bytes:
            chunk = os.read(fd, min(1 << 20, max_bytes + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > max_bytes:
            raise FileTooLargeError(path, f"larger than {max_bytes} bytes")
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_text_safely(
    path: os.PathLike[str] | str,
    max_bytes: int = DEFAULT_MAX_BYTES,
    *,
    root: os.PathLike[str] | str | None = None,
    errors: str = "replace",
) -> str:
    """:func:`read_bytes_safely` decoded as UTF-8."""
    return read_bytes_safely(path, max_bytes, root=root).decode("utf-8", errors)


def read_json_safely(
    path: os.PathLike[str] | str,
    max_bytes: int = DEFAULT_MAX_BYTES,
    *,
    root: os.PathLike[str] | str | None = None,
) -> Any:
    """:func:`read_bytes_safely` parsed as JSON (``ValueError`` when it is not JSON)."""
    return json.loads(read_bytes_safely(path, max_bytes, root=root))
