"""The on-disk cache under ``AAR_HOME`` (default ``~/.cache/aar``): keys, atomic writes, checks."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import torch

from aar.fileio import atomic_writer


class CacheError(RuntimeError):
    """A cache entry is missing a file or cannot be read; rebuild it."""


def aar_home() -> Path:
    """Root of aar's caches: ``$AAR_HOME`` or ``~/.cache/aar``."""
    return Path(os.environ.get("AAR_HOME") or Path.home() / ".cache" / "aar")


def key_of(obj: object) -> str:
    """Short stable hash of a JSON-able object (everything that affects a cached result)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:12]


def build_atomically(final: Path, build: Callable[[Path], object]) -> Path:
    """Run ``build(tmpdir)`` into a temp folder beside ``final``, then rename it into place.

    A killed build leaves only a temp folder (ignored and cleaned later), never a half entry.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        build(tmp)
        (tmp / "COMPLETE").write_text("ok")
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def save_torch_atomic(obj: object, path: Path) -> None:
    """torch.save through :func:`aar.fileio.atomic_writer` (temp file, fsync, rename)."""
    with atomic_writer(path) as f:
        torch.save(obj, f)


def load_json(path: Path) -> dict[str, Any]:
    """Read a JSON cache file, turning any failure into a :class:`CacheError` naming the file."""
    try:
        return cast(dict[str, Any], json.loads(Path(path).read_text()))
    except (OSError, ValueError) as e:
        raise CacheError(f"corrupt or unreadable cache file {path}: {e}; delete it to rebuild") from e


def make_readable(path: Path) -> None:
    """World-readable tree (directories 755, files 644) with traversable parents."""
    for p in [path, *path.rglob("*")]:
        if not p.is_symlink():
            os.chmod(p, 0o755 if p.is_dir() else 0o644)
    for parent in list(path.parents)[:4]:
        if parent.exists() and os.access(parent, os.W_OK):
            os.chmod(parent, parent.stat().st_mode | 0o111)
