"""The atomic-write helpers: content, permissions, no temp files left, old file kept on failure."""

from __future__ import annotations

import json
import multiprocessing
import os
import stat
from pathlib import Path

import pytest

from aar.fileio import atomic_writer, write_bytes_atomic, write_json_atomic, write_text_atomic


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_writes_and_replaces_content(tmp_path: Path) -> None:
    p = tmp_path / "a" / "b" / "x.bin"  # parents are created
    assert write_bytes_atomic(p, b"one") == p
    assert p.read_bytes() == b"one"
    write_text_atomic(p, "two ü")
    assert p.read_text(encoding="utf-8") == "two ü"
    write_json_atomic(p, {"b": 1, "a": [1, 2]}, indent=1, sort_keys=True)
    assert p.read_text() == json.dumps({"b": 1, "a": [1, 2]}, indent=1, sort_keys=True)
    assert sorted(x.name for x in p.parent.iterdir()) == ["x.bin"]


def test_default_mode_follows_umask_like_open(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        plain = tmp_path / "plain"
        plain.write_text("x")
        atomic = write_text_atomic(tmp_path / "atomic", "x")
    finally:
        os.umask(old)
    assert _mode(atomic) == _mode(plain) == 0o644


@pytest.mark.parametrize("mode", [0o600, 0o640, 0o444])
def test_explicit_mode_is_exact(tmp_path: Path, mode: int) -> None:
    p = tmp_path / "secret"
    p.write_text("old")
    os.chmod(p, 0o666)
    write_text_atomic(p, "new", mode=mode)
    assert _mode(p) == mode
    assert p.read_text() == "new"


def test_failure_keeps_old_file_and_leaves_no_temp(tmp_path: Path) -> None:
    p = tmp_path / "state.json"
    write_json_atomic(p, {"v": 1})
    with pytest.raises(TypeError):
        write_json_atomic(p, {"v": object()})
    with pytest.raises(RuntimeError), atomic_writer(p) as f:
        f.write(b"half")
        raise RuntimeError("killed mid-write")
    assert json.loads(p.read_text()) == {"v": 1}
    assert [x.name for x in tmp_path.iterdir()] == ["state.json"]


def test_streaming_writer(tmp_path: Path) -> None:
    p = tmp_path / "blob"
    with atomic_writer(p, mode=0o600) as f:
        for i in range(3):
            f.write(bytes([i]) * 4)
    assert p.read_bytes() == b"\x00" * 4 + b"\x01" * 4 + b"\x02" * 4
    assert _mode(p) == 0o600


def _writer(path: str, n: int, tag: int) -> None:
    for i in range(n):
        write_json_atomic(Path(path), {"tag": tag, "i": i, "pad": "x" * 4096})


def test_concurrent_writers_never_expose_half_a_file(tmp_path: Path) -> None:
    p = tmp_path / "shared.json"
    write_json_atomic(p, {"tag": -1, "i": 0, "pad": ""})
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(p), 200, t)) for t in range(2)]
    for pr in procs:
        pr.start()
    reads = 0
    while any(pr.is_alive() for pr in procs) or reads == 0:
        d = json.loads(p.read_text())  # every read parses: never a torn or empty file
        assert d["tag"] in (-1, 0, 1)
        reads += 1
    for pr in procs:
        pr.join()
        assert pr.exitcode == 0
    assert json.loads(p.read_text())["i"] == 199
    assert [x.name for x in tmp_path.iterdir()] == ["shared.json"]


def test_a_write_that_is_not_durable_is_still_atomic(tmp_path):
    target = tmp_path / "notes.json"
    write_json_atomic(target, {"step": 1}, durable=False)
    write_json_atomic(target, {"step": 2}, durable=False)
    assert json.loads(target.read_text()) == {"step": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["notes.json"]  # no temp file left behind
