"""The supervisor against hostile agent files: usage.json tricks, tarballs in the report."""

from __future__ import annotations

import io
import os
import tarfile
import threading

from aar.campaign.budgets import usage

ZERO = {"tokens": 0, "dollars": 0.0}


def _call_within(fn, seconds: float = 5.0):
    out: list = []
    thread = threading.Thread(target=lambda: out.append(fn()), daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "the supervisor blocked on an agent's file"
    return out[0]


def test_usage_json_tricks_never_hang_or_fool_the_supervisor(tmp_path):
    ws = tmp_path / "agents" / "a" / "ws"
    ws.mkdir(parents=True)
    os.mkfifo(ws / "usage.json")  # a FIFO with no writer: a plain open() waits forever
    assert _call_within(lambda: usage(ws)) == ZERO
    (ws / "usage.json").unlink()
    other = tmp_path / "other.json"
    other.write_text('{"tokens": 999, "dollars": 9.0}')
    (ws / "usage.json").symlink_to(other)  # the root supervisor must not read through links
    assert _call_within(lambda: usage(ws)) == ZERO
    (ws / "usage.json").unlink()
    (ws / "usage.json").symlink_to("/dev/zero")
    assert _call_within(lambda: usage(ws)) == ZERO
    (ws / "usage.json").unlink()
    (ws / "usage.json").write_bytes(b" " * (2 << 20) + b"{}")  # oversized
    assert usage(ws) == ZERO
    (ws / "usage.json").write_text('{"tokens": -5, "dollars": NaN}')  # never lowers a total, never NaN
    assert usage(ws) == ZERO
    (ws / "usage.json").write_text('{"tokens": 5, "dollars": 0.5}')
    assert usage(ws) == {"tokens": 5, "dollars": 0.5}
    (ws.parent / "usage.json").write_text('{"tokens": 7, "dollars": 0.25}')  # the supervisor's own wins
    assert usage(ws) == {"tokens": 7, "dollars": 0.25}


class _Admin:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def download(self, sha: str) -> bytes:
        return self.data


def test_report_unpacks_agent_code_with_the_safe_unpacker(tmp_path):
    from aar.agents.artifacts import pack
    from aar.campaign.report import _code_of

    dest = tmp_path / "report_code"
    dest.mkdir()
    good = pack({"experiment.json": b'{"method": "vanilla"}', "m.py": b"x"})
    text = _code_of(_Admin(good), "a" * 64, dest)  # type: ignore[arg-type]
    assert '"method": "vanilla"' in text and "m.py" in text
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        link = tarfile.TarInfo("experiment.json")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/shadow"
        tar.addfile(link)
    text = _code_of(_Admin(buf.getvalue()), "b" * 64, dest)  # type: ignore[arg-type]
    assert "stored as" in text and "root:" not in text
    assert not (dest / ("b" * 16) / "experiment.json").is_symlink()
