"""Content-addressed artifact store: blobs under ``<data_dir>/artifacts/<aa>/<sha256>``.

Writes stream to a temp file while hashing, are fsynced, then renamed into place, so a stored blob
is complete or absent. A blob, once stored, is never rewritten.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from aar.server.errors import ApiError


def blob_path(data_dir: Path, sha256: str) -> Path:
    """Where the blob with this hash lives."""
    return Path(data_dir) / "artifacts" / sha256[:2] / sha256


async def store_stream(data_dir: Path, chunks: AsyncIterator[bytes], limit: int) -> tuple[str, int]:
    """Store a streamed blob; returns (sha256, size). 413 past ``limit`` bytes, 422 when empty."""
    root = Path(data_dir) / "artifacts"
    root.mkdir(parents=True, exist_ok=True)
    digest, size = hashlib.sha256(), 0
    fd, tmp = tempfile.mkstemp(dir=root, prefix=".upload-")
    try:
        with os.fdopen(fd, "wb") as f:
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
