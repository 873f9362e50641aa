"""Packing code for the code store: deterministic tarballs of files and folders, and safe unpacking."""

from __future__ import annotations

import importlib.util
import io
import json
import tarfile
from pathlib import Path


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


def experiment_bundle(meta: dict, method: str) -> bytes:
    """The code artifact of an experiment: ``experiment.json`` (method, parameters, seeds) plus sources."""
    files = method_sources(method)
    files["experiment.json"] = json.dumps(meta, indent=1, sort_keys=True).encode()
    return pack(files)


def unpack(data: bytes, dest: Path) -> list[str]:
    """Extract a tarball into ``dest`` refusing links, devices and paths outside it; returns member names."""
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
        tar.extractall(dest, filter="data")
        return tar.getnames()
