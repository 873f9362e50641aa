"""Unpacking agents' tarballs safely (the report runs as root): links, devices, escapes and bombs refused."""

from __future__ import annotations

import io
import tarfile

import pytest

from aar.agents import artifacts
from aar.agents.artifacts import UnsafeArchive, pack, safe_unpack


def _tar(*members: tarfile.TarInfo, data: dict[str, bytes] | None = None, mode: str = "w:gz") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode, format=tarfile.PAX_FORMAT) as tar:
        for info in members:
            body = (data or {}).get(info.name)
            tar.addfile(info, io.BytesIO(body) if body is not None else None)
    return buf.getvalue()


def _member(name: str, kind=tarfile.REGTYPE, size: int = 0, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.size, info.linkname, info.mode = kind, size, linkname, 0o4755
    return info


def test_round_trip_of_packed_code(tmp_path):
    data = pack({"experiment.json": b"{}", "src/aar/m.py": b"print(1)"})
    names = safe_unpack(data, tmp_path / "out")
    assert sorted(names) == ["experiment.json", "src/aar/m.py"]
    assert (tmp_path / "out" / "src" / "aar" / "m.py").read_bytes() == b"print(1)"
    assert (tmp_path / "out" / "experiment.json").stat().st_mode & 0o7777 == 0o644  # no setuid from the tar
    assert sorted(safe_unpack(data, tmp_path / "out")) == sorted(names)  # unpacking again overwrites
    assert artifacts.unpack is safe_unpack


@pytest.mark.parametrize(
    "member",
    [
        _member("link", tarfile.SYMTYPE, linkname="/etc/passwd"),
        _member("hard", tarfile.LNKTYPE, linkname="/etc/shadow"),
        _member("dev", tarfile.CHRTYPE),
        _member("fifo", tarfile.FIFOTYPE),
        _member("/abs.py"),
        _member("../up.py"),
        _member("a/../../up.py"),
    ],
    ids=["symlink", "hardlink", "device", "fifo", "absolute", "dotdot", "nested-dotdot"],
)
def test_dangerous_members_refuse_the_whole_archive(tmp_path, member):
    ok = _member("fine.py", size=3)
    with pytest.raises(UnsafeArchive):
        safe_unpack(_tar(ok, member, data={"fine.py": b"abc"}), tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())  # nothing written
    assert not (tmp_path / "up.py").exists()


def test_member_count_and_total_size_are_capped(tmp_path, monkeypatch):
    many = [_member(f"f{i}") for i in range(artifacts.MAX_UNPACK_MEMBERS + 1)]
    with pytest.raises(UnsafeArchive, match="members"):
        safe_unpack(_tar(*many), tmp_path / "a")
    monkeypatch.setattr(artifacts, "MAX_UNPACK_BYTES", 10_000)
    big = _member("big.bin", size=10_001)
    with pytest.raises(UnsafeArchive, match="bytes"):
        safe_unpack(_tar(big, data={"big.bin": b"\0" * 10_001}), tmp_path / "b")
    bomb = _member("bomb.bin", size=2_000_000)  # compresses to a few KiB, expands past the cap
    for mode in ("w:gz", "w:bz2", "w:xz", "w"):
        with pytest.raises(UnsafeArchive):
            safe_unpack(_tar(bomb, data={"bomb.bin": b"\0" * 2_000_000}, mode=mode), tmp_path / "c")


def test_links_already_in_the_destination_are_never_followed(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim.py").write_text("original")
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "victim.py").symlink_to(outside / "victim.py")
    (dest / "sub").symlink_to(outside)
    safe_unpack(pack({"victim.py": b"new"}), dest)
    assert (outside / "victim.py").read_text() == "original"
    assert not (dest / "victim.py").is_symlink() and (dest / "victim.py").read_text() == "new"
    with pytest.raises(UnsafeArchive):
        safe_unpack(pack({"sub/victim.py": b"new"}), dest)
    assert (outside / "victim.py").read_text() == "original"
