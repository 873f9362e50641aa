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


def test_make_launcher_wires_the_audit_trail_and_unique_uids(tmp_path, monkeypatch):
    import sys
    import time

    import pytest

    from aar.campaign.events import AuditLog
    from aar.campaign.launcher import (
        AgentLaunch,
        SandboxLauncher,
        close_launcher,
        isolation_of,
        make_launcher,
    )
    from aar.sandbox import check_bubblewrap
    from aar.sandbox.uids import allocate_uid_block

    monkeypatch.setenv("AAR_UID_DIR", str(tmp_path / "uids"))
    other = allocate_uid_block()  # another campaign on this machine holds the first block
    audit = AuditLog(tmp_path / "sandbox_events.jsonl")
    assert isolation_of(make_launcher(True, audit=audit)) == "none (--unsafe-no-sandbox)"
    if not check_bubblewrap(other.uid(0)).available:
        pytest.skip("bubblewrap sandboxes are not available here")
    launcher = make_launcher(False, audit=audit)
    assert isinstance(launcher, SandboxLauncher) and launcher.audit is audit
    assert isolation_of(launcher) == "bubblewrap"
    ws = tmp_path / "agents" / "a" / "ws"
    ws.mkdir(parents=True)
    launch = AgentLaunch(name="a", index=0, workspace=ws, config=ws / "agent.json", log=ws.parent / "log",
                         readonly=[], socket=None, env={}, wall_seconds=30,
                         argv=[sys.executable, "-S", "-c", "import os; print(os.getuid())"])
    handle = launcher.start(launch)
    while handle.poll() is None:
        time.sleep(0.05)
    close_launcher(launcher)
    events = audit.events()
    assert [e["event"] for e in events] == ["sandbox.unsafe", "sandbox.start", "sandbox.exit"]
    start, end = events[1], events[2]
    assert start["label"] == end["label"] == "a" and end["returncode"] == 0 and end["killed_reason"] is None
    assert start["uid"] != other.uid(0) and start["uid"] == launcher.uids.uid(0)
    assert start["limits"]["max_files"] == launcher.max_files
    assert not launcher.uids.held
    other.release()
