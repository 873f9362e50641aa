"""Folders as ``{relative path: bytes}``: how a Ray campaign moves the public view and the agents'
workspaces between the supervisor and the nodes (through Ray's object store and actor calls, never
through a shared path).

Reading (:func:`scan`) goes through :func:`aar.sandbox.safe_read.read_bytes_safely`: a workspace is
written by an agent, so symlinks, FIFOs and oversized files are skipped, never followed or read whole.
Writing (:func:`write_tree`) checks every name (relative, no ``..``, no empty part), refuses to write
through a symlink and writes each file atomically (:func:`aar.fileio.write_bytes_atomic`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from aar.fileio import write_bytes_atomic

MAX_FILE_BYTES = 64 * 2**20  # one file larger than this is not synced (listed in ``Delta.skipped``)
MAX_DELTA_BYTES = 256 * 2**20  # one delta carries at most this much; the rest follows in the next


class TreeError(ValueError):
    """A file name that must not be written (absolute, ``..``, empty part) or a path through a link."""


@dataclass
class Delta:
    """What changed in a folder since the last scan: new or changed files, deleted names, skipped ones."""

    files: dict[str, bytes] = field(default_factory=dict)
    deleted: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def check_name(name: str) -> list[str]:
    """The parts of the relative file name ``name``; :class:`TreeError` if it could leave its folder."""
    parts = name.split("/")
    if not name or name.startswith("/") or any(p in ("", ".", "..") or "\0" in p for p in parts):
        raise TreeError(f"refused file name {name!r}")
    return parts


def scan(
    root: Path, seen: dict[str, tuple[int, int]], exclude: frozenset[str] = frozenset()
) -> Delta:
    """The regular files under ``root`` whose size or mtime differ from ``seen`` (updated in place).

    Symlinks and special files are never followed nor read; names in ``exclude`` (relative) are left
    out. A file that changes while it is read is simply sent again at the next scan."""
    from aar.sandbox.safe_read import UnsafeFileError, read_bytes_safely

    delta, total, present = Delta(), 0, set()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not os.path.islink(os.path.join(dirpath, d)))
        for fn in sorted(filenames):
            full = os.path.join(dirpath, fn)
            rel = os.path.relpath(full, root)
            if rel in exclude:
                continue
            try:
                st = os.lstat(full)
            except OSError:
                continue
            if not stat.S_ISREG(st.st_mode):
                continue
            present.add(rel)
            key = (st.st_size, st.st_mtime_ns)
            if seen.get(rel) == key:
                continue
            if st.st_size > MAX_FILE_BYTES:
                delta.skipped.append(rel)
                seen[rel] = key
                continue
            if total + st.st_size > MAX_DELTA_BYTES:
                continue  # the next scan sends it
            try:
                data = read_bytes_safely(full, MAX_FILE_BYTES, root=root)
            except (UnsafeFileError, OSError):
                continue
            delta.files[rel] = data
            total += len(data)
            seen[rel] = key
    for rel in sorted(set(seen) - present):
        del seen[rel]
        delta.deleted.append(rel)
    return delta


def read_folder(root: Path) -> dict[str, bytes]:
    """Every regular file under ``root`` (a folder this process owns, e.g. the public view)."""
    return scan(root, {}).files


def digest(files: dict[str, bytes]) -> str:
    """A sha256 over names and contents: the key under which a node caches a folder."""
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    return h.hexdigest()


def write_tree(dest: Path, files: dict[str, bytes], deleted: list[str] | tuple[str, ...] = ()) -> None:
    """Write ``files`` under ``dest`` (each atomically) and remove the ``deleted`` names.

    :class:`TreeError` for a bad name or a parent folder that is a symlink (nothing is written
    through a link)."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in deleted:
        _parent(dest, check_name(name), create=False)
        with contextlib.suppress(FileNotFoundError, IsADirectoryError):
            os.unlink(dest / name)
    for name, data in files.items():
        parts = check_name(name)
        _parent(dest, parts, create=True)
        target = dest / name
        if target.is_symlink() or target.is_dir():
            raise TreeError(f"{target} is a link or a folder; not overwritten")
        write_bytes_atomic(target, data)


def _parent(dest: Path, parts: list[str], create: bool) -> None:
    folder = dest
    for part in parts[:-1]:
        folder = folder / part
        if folder.is_symlink():
            raise TreeError(f"{folder} is a symlink; nothing is written through it")
        if create:
            folder.mkdir(exist_ok=True)
