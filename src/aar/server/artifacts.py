"""Content-addressed artifact store: blobs under ``<data_dir>/artifacts/<aa>/<sha256>``.

Writes stream to a temp file (``artifacts/.upload-*``) while hashing, are fsynced, then renamed into
place, so a stored blob is complete or absent. A blob, once stored, is never rewritten.

A process killed during an upload leaves its temp file behind. Each upload holds an exclusive flock on
its temp file for its whole life (the kernel drops it when the process dies), so :func:`clean_uploads`,
run at every start, removes exactly the temp files nobody holds, even while other worker processes
are uploading.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from aar.server.errors import ApiError


def blob_path(data_dir: Path, sha256: str) -> Path:
    """Where the blob with this hash lives."""
    return Path(data_dir) / "artifacts" / sha256[:2] / sha256


UPLOAD_PREFIX = ".upload-"


def locked_temp(root: Path, prefix: str = UPLOAD_PREFIX) -> tuple[int, str]:
    """A new temp file in ``root``, open and flocked for the writer's whole life; retried when a
    concurrent cleaner removed it between its creation and the lock (the name then no longer names the
    open file). Used for artifact uploads and vault registrations alike."""
    while True:
        fd, tmp = tempfile.mkstemp(dir=root, prefix=prefix)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            if os.stat(tmp).st_ino == os.fstat(fd).st_ino:
                return fd, tmp
        except FileNotFoundError:
            pass
        os.close(fd)


def clean_locked_temps(root: Path, prefix: str) -> int:
    """Remove temp files ``root/<prefix>*`` that no live process holds (their writer was killed);
    returns how many. A file whose writer is alive is flocked and left alone."""
    if not root.is_dir():
        return 0
    removed = 0
    for path in root.glob(prefix + "*"):
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # a writer in progress in another process
            os.close(fd)
            continue
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                path.unlink()
                removed += 1
        except FileNotFoundError:
            pass
        finally:
            os.close(fd)
    return removed


def clean_uploads(data_dir: Path) -> int:
    """Remove unfinished upload temp files that no live process holds; returns how many."""
    return clean_locked_temps(Path(data_dir) / "artifacts", UPLOAD_PREFIX)


async def store_stream(data_dir: Path, chunks: AsyncIterator[bytes], limit: int) -> tuple[str, int]:
    """Store a streamed blob; returns (sha256, size). 413 past ``limit`` bytes, 422 when empty."""
    root = Path(data_dir) / "artifacts"
    root.mkdir(parents=True, exist_ok=True)
    digest, size = hashlib.sha256(), 0
    fd, tmp = locked_temp(root)
    f = os.fdopen(fd, "wb")  # open (and so locked) until the temp file is renamed or removed
    try:
        async for chunk in chunks:
            size += len(chunk)
            if size > limit:
                raise ApiError(413, "body_too_large", f"artifact over {limit} bytes", {"limit": limit})
            digest.update(chunk)
            f.write(chunk)
        f.flush()
        os.fsync(f.fileno())
        if size == 0:
            raise ApiError(422, "empty_artifact", "an artifact needs at least one byte")
        sha = digest.hexdigest()
        dest = blob_path(data_dir, sha)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.exists():
            os.unlink(tmp)
        else:
            os.chmod(tmp, 0o444)
            os.replace(tmp, dest)
        return sha, size
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    finally:
        f.close()
