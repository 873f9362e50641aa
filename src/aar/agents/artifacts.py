"""Packing code for the code store: deterministic tarballs of files and folders, and safe unpacking
(:func:`safe_unpack`, the one function that extracts a tarball anywhere in aar)."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
import tarfile
from pathlib import Path
from typing import Any


def pack(files: dict[str, bytes]) -> bytes:
    """A gzipped tarball of ``{name: bytes}`` with fixed metadata, so equal content hashes equally."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=6, format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(files[name]), 0, 0o644
            tar.addfile(info, io.BytesIO(files[name]))
    # gzip stores a timestamp in its header: zero it so the bytes are reproducible
    data = bytearray(buf.getvalue())
    data[4:8] = b"\0\0\0\0"
    return bytes(data)


def pack_path(path: Path) -> tuple[bytes, str]:
    """A file's bytes as they are, or a folder as a deterministic tarball; returns (bytes, name)."""
    if path.is_file():
        return path.read_bytes(), path.name
    files = {
        str(p.relative_to(path)): p.read_bytes()
        for p in sorted(path.rglob("*"))
        if p.is_file() and not p.is_symlink() and "__pycache__" not in p.parts
    }
    return pack(files), f"{path.name}.tar.gz"


def method_sources(method: str) -> dict[str, bytes]:
    """Source files behind a method: the user's ``.py`` file, or the shipped module and its helpers."""
    if method.endswith(".py"):
        p = Path(method)
        return {p.name: p.read_bytes()}
    out = {}
    for mod in (f"aar.w2s.methods.{method}", "aar.w2s.methods.common", "aar.w2s.losses"):
        spec = importlib.util.find_spec(mod)
        if spec is not None and spec.origin:
            out[f"src/{mod.replace('.', '/')}.py"] = Path(spec.origin).read_bytes()
    return out


def experiment_bundle(meta: dict[str, Any], method: str) -> bytes:
    """The code artifact of an experiment: ``experiment.json`` (method, parameters, seeds) plus sources."""
    files = method_sources(method)
    files["experiment.json"] = json.dumps(meta, indent=1, sort_keys=True).encode()
    return pack(files)


MAX_UNPACK_MEMBERS = 2_000
MAX_UNPACK_BYTES = 50 * 2**20  # total size of the files in one tarball
_TAR_OVERHEAD = 3 * 512  # per member: header, a possible PAX header, padding


class UnsafeArchive(ValueError):
    """A tarball refused by :func:`safe_unpack`: links, devices, bad names, too many or too large members."""


def _decompress(data: bytes, limit: int) -> bytes:
    """The raw tar stream of ``data`` (gzip, bzip2, xz or none), refusing more than ``limit`` bytes."""
    import bz2
    import lzma
    import zlib

    dec: Any
    if data[:2] == b"\x1f\x8b":
        dec = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    elif data[:3] == b"BZh":
        dec = bz2.BZ2Decompressor()
    elif data[:6] == b"\xfd7zXZ\x00":
        dec = lzma.LZMADecompressor()
    else:
        if len(data) > limit:
            raise UnsafeArchive(f"tarball larger than {limit} bytes")
        return data
    try:
        out: bytes = dec.decompress(data, limit + 1)
    except (OSError, EOFError, ValueError, zlib.error, lzma.LZMAError) as exc:
        raise UnsafeArchive(f"corrupt compressed tarball: {exc}") from exc
    if len(out) > limit:
        raise UnsafeArchive(f"tarball expands to more than {limit} bytes")
    return out


def _members(data: bytes) -> list[tuple[list[str], bytes | None]]:
    """Checked ``(path parts, content or None for a directory)`` of every member, read in memory."""
    raw = _decompress(data, MAX_UNPACK_BYTES + _TAR_OVERHEAD * (MAX_UNPACK_MEMBERS + 2))
    out: list[tuple[list[str], bytes | None]] = []
    total = 0
    try:
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tar:
            while (info := tar.next()) is not None:
                if len(out) >= MAX_UNPACK_MEMBERS:
                    raise UnsafeArchive(f"more than {MAX_UNPACK_MEMBERS} members")
                name = info.name
                parts = [p for p in name.split("/") if p not in ("", ".")]
                if name.startswith("/") or "\\" in name or "\0" in name or not parts or ".." in parts:
                    raise UnsafeArchive(f"member name {name!r} leaves the destination")
                if info.isdir():
                    out.append((parts, None))
                    continue
                if not info.isreg():
                    raise UnsafeArchive(f"member {name!r} is not a regular file or directory (link, device?)")
                total += info.size
                if total > MAX_UNPACK_BYTES:
                    raise UnsafeArchive(f"members larger than {MAX_UNPACK_BYTES} bytes in total")
                handle = tar.extractfile(info)
                content = handle.read(info.size + 1) if handle is not None else b""
                if len(content) != info.size:
                    raise UnsafeArchive(f"member {name!r} is truncated")
                out.append((parts, content))
    except tarfile.TarError as exc:
        raise UnsafeArchive(f"not a readable tarball: {exc}") from exc
    return out


def _open_dir(parent: int, name: str) -> int:
    """Descriptor of directory ``name`` in ``parent`` (created if missing), never following a link."""
    with contextlib.suppress(FileExistsError):
        os.mkdir(name, 0o755, dir_fd=parent)
    try:
        return os.open(name, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
    except OSError as exc:
        raise UnsafeArchive(f"{name!r} exists in the destination and is not a directory") from exc


def safe_unpack(data: bytes, dest: Path) -> list[str]:
    """Extract a tarball into ``dest``, safely even as root; returns the member names.

    Chosen approach: *in memory, with checks, no privileges needed*. The (possibly compressed)
    tarball is decompressed with a cap, then every member is read through :mod:`tarfile` without
    extracting anything; the whole archive is refused (:class:`UnsafeArchive`) if a member is a
    symlink, hard link, device, FIFO or anything but a regular file or directory, if a name is
    absolute or contains ``..``, if there are more than ``MAX_UNPACK_MEMBERS`` members or more than
    ``MAX_UNPACK_BYTES`` bytes in total. Only then are files written, by this code rather than by
    ``tarfile``: directories are walked with ``openat(O_NOFOLLOW)``, files created with
    ``O_CREAT | O_EXCL | O_NOFOLLOW`` (an existing file of the same name is unlinked first, never
    written through), with mode 0644 and owned by the caller. Nothing in the archive can choose an
    owner, a mode, a link target or a location, so no privilege drop is needed; the report (root)
    and the agents' ``code_download`` tool both use this one function. ``dest`` itself and its
    parents belong to the caller and are created normally.
    """
    members = _members(data)
    dest.mkdir(parents=True, exist_ok=True)
    root = os.open(dest, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    names: list[str] = []
    try:
        for parts, content in members:
            fds = [root]
            try:
                for part in parts[:-1] if content is not None else parts:
                    fds.append(_open_dir(fds[-1], part))
                if content is not None:
                    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
                    try:
                        with contextlib.suppress(FileNotFoundError):
                            os.unlink(parts[-1], dir_fd=fds[-1])  # a file or link there goes, unfollowed
                        fd = os.open(parts[-1], flags, 0o644, dir_fd=fds[-1])
                    except (IsADirectoryError, FileExistsError, PermissionError) as exc:
                        raise UnsafeArchive(f"{'/'.join(parts)!r} clashes with a directory") from exc
                    with os.fdopen(fd, "wb") as handle:
                        handle.write(content)
            finally:
                for fd in fds[1:]:
                    os.close(fd)
            names.append("/".join(parts))
    finally:
        os.close(root)
    return names


unpack = safe_unpack  # the historical name
