"""Atomic file writes: the one way aar replaces a file that another process may be reading.

A reader (the server, an agent, a second campaign process, a resumed run) must never see half a file, and
a crash must leave either the old file or the new one. Every write therefore goes to a uniquely named
temp file in the same folder (so the rename stays on one file system and concurrent writers do not share
a temp file), is flushed and fsynced, renamed over the target with :func:`os.replace`, and the folder is
fsynced so the rename itself survives a power cut.

Permissions: by default the new file gets what a plain ``open(path, "w")`` would give (``0o666`` less
the umask), so switching a writer to these helpers changes nothing for readers. Pass ``mode`` (e.g.
``0o600`` for secrets) to set the exact permission bits; they are in place before the file is visible.

``durable=False`` skips the two fsyncs: the write stays atomic (a reader or a killed writer never
leaves half a file) but a power cut may lose it. For files rewritten often whose loss costs nothing
but a little work (an agent's notes, which resume from the server's record; an experiment's outputs).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import IO

__all__ = ["atomic_writer", "fsync_dir", "write_bytes_atomic", "write_json_atomic", "write_text_atomic"]


def fsync_dir(folder: Path) -> None:
    """fsync a folder so a rename or creation inside it is durable (no-op where a folder cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_writer(path: Path | str, *, mode: int | None = None, durable: bool = True) -> Iterator[IO[bytes]]:
    """Open a binary temp file beside ``path``; on a clean exit it replaces ``path`` atomically.

    For writers that stream (``torch.save(obj, f)``, ``shutil.copyfileobj``). If the body raises, the temp
    file is removed and ``path`` is left as it was. Missing parent folders are created.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666 if mode is None else 0o600)
    try:
        if mode is not None:
            os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            fd = -1
            yield f
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    if durable:
        fsync_dir(path.parent)


def write_bytes_atomic(
    path: Path | str, data: bytes, *, mode: int | None = None, durable: bool = True
) -> Path:
    """Replace ``path`` with ``data`` atomically and durably (see the module docstring); returns the path."""
    with atomic_writer(path, mode=mode, durable=durable) as f:
        f.write(data)
    return Path(path)


def write_text_atomic(
    path: Path | str, text: str, *, mode: int | None = None, encoding: str = "utf-8", durable: bool = True
) -> Path:
    """Replace ``path`` with ``text`` atomically and durably; returns the path."""
    return write_bytes_atomic(path, text.encode(encoding), mode=mode, durable=durable)


def write_json_atomic(
    path: Path | str,
    obj: object,
    *,
    mode: int | None = None,
    indent: int | None = None,
    sort_keys: bool = False,
    durable: bool = True,
) -> Path:
    """Replace ``path`` with ``obj`` as JSON (``json.dumps`` with ``indent``/``sort_keys``); returns the path.

    The object is serialised before anything is written, so an unserialisable object leaves no file.
    """
    return write_text_atomic(
        path, json.dumps(obj, indent=indent, sort_keys=sort_keys), mode=mode, durable=durable
    )
