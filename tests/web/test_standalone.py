"""``aar dashboard DIR``: a finished campaign's data served read-only by its own process (the real
command on a loopback port), the waiting page of a campaign being set up, and the read-only database."""

from __future__ import annotations

import hashlib
import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from aar.server.errors import ApiError
from aar.web.standalone import PendingDashboard, ReadOnlyDatabase
from server.helpers import ADMIN_TOKEN

from .conftest import build_site


def _digest(directory: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.glob("server.db*"))
        if not p.name.endswith("-shm")  # shared-memory index, not data
    }


def _audit_rows(db: Path) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return conn.execute("SELECT count(*) FROM audit_log").fetchone()[0]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A seeded campaign whose server has stopped (the campaign is over)."""
    site = build_site(tmp_path_factory.mktemp("finished"))
    for c in site.clients.values():
        c.close()
    site.admin.close()
    site.srv.stop()
    return site


def _serve(directory: Path) -> tuple[subprocess.Popen, str]:
    """Run ``aar dashboard DIR --port 0`` and return it with the URL it prints."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "aar.cli", "dashboard", str(directory), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    line = proc.stdout.readline()
    match = re.search(r"(http://127\.0\.0\.1:\d+/dashboard/)", line)
    assert match, line + proc.stdout.read()
    return proc, match.group(1)


def _get_when_up(client: httpx.Client, url: str, proc: subprocess.Popen) -> httpx.Response:
    """The first answer of the freshly started server (it binds its port after printing the URL)."""
    deadline = time.monotonic() + 120  # a safety net: the loop waits for the server to answer
    while True:
        try:
            return client.get(url)
        except httpx.ConnectError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_aar_dashboard_serves_a_finished_campaign_read_only(finished):
    before, rows_before = _digest(finished.dir / "server"), _audit_rows(finished.dir / "server" / "server.db")
    proc, url = _serve(finished.dir)
    try:
        with httpx.Client(timeout=30) as http:
            first = _get_when_up(http, url, proc)
            assert first.status_code == 303 and "/dashboard/login" in first.headers["location"]
            bad = http.post(url + "login", data={"token": "aar_wrong", "next": "/dashboard/"})
            assert bad.status_code == 401 and "unknown token" in bad.text
            ok = http.post(url + "login", data={"token": ADMIN_TOKEN, "next": "/dashboard/chart"})
            assert ok.status_code == 303 and ok.headers["location"] == "/dashboard/chart"
            cookie = ok.headers["set-cookie"].lower()
            assert "httponly" in cookie and "samesite=strict" in cookie and "path=/dashboard" in cookie
            http.cookies.set("aar_dashboard", ADMIN_TOKEN, path="/dashboard")
            board = http.get(url + "leaderboard")
            assert board.status_code == 200 and "disqualified" in board.text
            assert "script-src 'self'" in board.headers["content-security-policy"]
            chart = http.get(url + "api/chart.json").json()
            assert chart["x_label"].startswith("cumulative agent-hours")
            assert sorted(chart["points"]["id"]) == sorted(finished.subs)
            assert all(0.0 < x <= 2.01 for x in chart["points"]["x"])  # two agents, open for an hour
            agents = http.get(url + "agents").text
            assert "direction-1" in agents and "sandbox.limit" in agents and "0.5000" in agents
            for path in (
                "submissions",
                f"submissions/{finished.subs[0]}",
                "forum",
                f"forum/{finished.posts['plain']}",
                f"code/{finished.codes['alice'][0]}",
            ):
                assert http.get(url + path).status_code == 200, path
            agent = httpx.Client(timeout=30, headers={"Authorization": f"Bearer {finished.tokens['bob']}"})
            with agent:
                page = agent.get(url + "leaderboard").text
                assert "private PGR" not in page and "disqualified" not in page
            assert http.delete(url + "leaderboard").status_code == 405
    finally:
        proc.terminate()
        proc.wait(10)
    assert _digest(finished.dir / "server") == before
    assert _audit_rows(finished.dir / "server" / "server.db") == rows_before


def test_the_read_only_database_refuses_writes(finished):
    db = ReadOnlyDatabase(finished.dir / "server" / "server.db")
    try:
        with pytest.raises(ApiError) as refused:
            db.write()
        assert refused.value.status == 405
        with db.read() as s, pytest.raises(Exception, match=r"readonly|read-only|query_only"):
            s.connection().exec_driver_sql("DELETE FROM posts")
        with db.read() as s:
            assert s.connection().exec_driver_sql("SELECT count(*) FROM posts").scalar() == 3
    finally:
        db.dispose()


def test_a_campaign_being_set_up_gets_a_waiting_page(tmp_path, finished):
    pending = tmp_path / "new-campaign"
    pending.mkdir()
    waiting = TestClient(PendingDashboard(pending)).get("/dashboard/")
    assert waiting.status_code == 503 and "being set up" in waiting.text
    assert "script-src 'self'" in waiting.headers["content-security-policy"]
    ready = TestClient(PendingDashboard(finished.dir)).get("/dashboard/login")
    assert ready.status_code == 200 and 'name="token"' in ready.text


def test_aar_dashboard_explains_a_directory_without_a_campaign(tmp_path):
    from typer.testing import CliRunner

    from aar.cli import app

    out = CliRunner().invoke(app, ["dashboard", str(tmp_path)])
    assert out.exit_code == 2 and "not a campaign directory" in out.output


def test_aar_dashboard_refuses_a_busy_port(finished):
    import socket

    from typer.testing import CliRunner

    from aar.cli import app

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = CliRunner().invoke(app, ["dashboard", str(finished.dir), "--port", str(port)])
    assert out.exit_code == 2 and f"port {port} on 127.0.0.1 is in use" in out.output
