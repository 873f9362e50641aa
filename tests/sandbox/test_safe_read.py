"""The supervisor's one safe reader of agent-written files: no FIFO, symlink or huge file gets through."""

from __future__ import annotations

import os
import threading

import pytest

from aar.sandbox.safe_read import (
    FileTooLargeError,
    UnsafeFileError,
    read_bytes_safely,
    read_json_safely,
)


def _returns_within(fn, seconds: float = 5.0):
    """Run ``fn`` in a thread; fail (instead of hanging the suite) if it has not returned in time."""
    out: dict = {}

    def target():
        try:
            out["value"] = fn()
        except BaseException as exc:  # handed back to the test
            out["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "the read blocked"
    return out


def test_regular_files_are_read(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.json").write_text('{"x": 1}')
    assert read_bytes_safely(tmp_path / "sub" / "a.json") == b'{"x": 1}'
    assert read_json_safely("sub/a.json", root=tmp_path) == {"x": 1}
    assert read_json_safely(tmp_path / "sub" / "a.json", root=tmp_path) == {"x": 1}
    with pytest.raises(FileNotFoundError):
        read_bytes_safely("missing.json", root=tmp_path)


def test_a_fifo_never_blocks_the_reader(tmp_path):
    os.mkfifo(tmp_path / "usage.json")
    out = _returns_within(lambda: read_bytes_safely(tmp_path / "usage.json"))
    assert isinstance(out.get("error"), UnsafeFileError), out
    out = _returns_within(lambda: read_bytes_safely("usage.json", root=tmp_path))
    assert isinstance(out.get("error"), UnsafeFileError), out


def test_symlinks_are_refused_anywhere_below_the_root(tmp_path):
    secret = tmp_path / "secret.json"
    secret.write_text('{"tokens": 999}')
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "usage.json").symlink_to(secret)
    (ws / "zero").symlink_to("/dev/zero")
    (ws / "up").symlink_to(tmp_path)
    for path in ("usage.json", "zero", "up/secret.json", "../secret.json", "/etc/passwd"):
        out = _returns_within(lambda p=path: read_bytes_safely(p, root=ws))
        assert isinstance(out.get("error"), UnsafeFileError), (path, out)
    with pytest.raises(UnsafeFileError):  # the last component is checked even without a root
        read_bytes_safely(ws / "zero")


def test_special_files_directories_and_size_cap(tmp_path):
    (tmp_path / "dir").mkdir()
    with pytest.raises(UnsafeFileError, match="not a regular file"):
        read_bytes_safely("dir", root=tmp_path)
    with pytest.raises(UnsafeFileError):
        read_bytes_safely("/dev/null")
    (tmp_path / "big").write_bytes(b"x" * 1001)
    with pytest.raises(FileTooLargeError):
        read_bytes_safely("big", 1000, root=tmp_path)
    with pytest.raises(ValueError):  # FileTooLargeError is also a ValueError
        read_bytes_safely("big", 1000, root=tmp_path)
    assert len(read_bytes_safely("big", 1001, root=tmp_path)) == 1001
