"""The server on a Unix domain socket, and the `aar server` commands."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from aar.cli import app
from aar.client import Client

from .conftest import settings_for
from .helpers import ADMIN_TOKEN, ServerThread, labels_of, make_bundle


def test_unix_socket(tmp_path):
    sock_dir = Path(tempfile.mkdtemp(prefix="aar-uds-"))  # short path: sun_path is ~100 bytes
    srv = ServerThread(settings_for(tmp_path, None), uds=sock_dir / "s.sock").start()
    try:
        admin = srv.client()
        bundle = make_bundle(n=60, seed=3)
        admin.register_testbed(bundle)
        token = admin.create_agent("uds-agent").token
        with Client.over_unix_socket(sock_dir / "s.sock", token) as agent:
            sha = agent.upload_artifact(b"code").sha256
            r = agent.submit(bundle.testbed_id, {k: float(v) for k, v in labels_of(bundle).items()}, sha)
            assert r.public.accuracy == 1.0
    finally:
        srv.stop()


def test_cli_register_and_create_agent(tmp_path):
    bundle = make_bundle("clibed", n=40, seed=4)
    path = tmp_path / "bundle.json"
    bundle.save(path)
    data = tmp_path / "d"
    runner = CliRunner()
    res = runner.invoke(app, ["server", "register-testbed", str(path), "--data-dir", str(data)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["server", "create-agent", "cli-agent", "--data-dir", str(data)])
    assert res.exit_code == 0 and res.output.strip().startswith("aar_")
    token = res.output.strip()
    assert not list(data.glob("vault/*.tmp"))
    assert oct(data.joinpath("vault").stat().st_mode & 0o777) == "0o700"
    srv = ServerThread(settings_for(data, None)).start()
    try:
        with srv.client(token) as agent:
            assert [t.id for t in agent.testbeds()] == ["clibed"]
        res = runner.invoke(app, ["server", "revoke-agent", "cli-agent", "--data-dir", str(data)])
        assert res.exit_code == 0
    finally:
        srv.stop()


def test_serve_refuses_a_short_admin_token_clearly(tmp_path):
    res = CliRunner().invoke(app, ["serve", "--admin-token", "short-secret", "--data-dir", str(tmp_path)])
    text = res.output + (res.stderr if res.stderr_bytes is not None else "")
    assert res.exit_code == 2, text
    assert "admin_token: the admin token must be at least 16 characters long" in text
    assert "Traceback" not in text and "short-secret" not in text and "pydantic" not in text


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie nobody reaps yet counts as dead)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _wait(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_workers_die_with_a_killed_serve_process(tmp_path):
    port = _free_port()
    env = {**os.environ, "AAR_ADMIN_TOKEN": ADMIN_TOKEN}
    cmd = [sys.executable, "-m", "aar.cli", "serve", "--workers", "2", "--port", str(port)]
    cmd += ["--data-dir", str(tmp_path)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    children: list[int] = []
    try:
        with Client(f"http://127.0.0.1:{port}", ADMIN_TOKEN, timeout=2) as c:

            def answers() -> bool:
                assert proc.poll() is None, "aar serve exited"
                try:
                    return c.health()["status"] == "ok"
                except (httpx.HTTPError, OSError):
                    return False

            _wait(answers, 120, "the server to answer")
        children = [int(p) for p in Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()]
        assert len(children) >= 2, children
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        _wait(lambda: not any(_alive(p) for p in children), 60, "the workers to end")
        _wait(lambda: _port_free(port), 30, "the port to be free")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        for pid in children:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_cli_create_agent_refuses_reserved_and_malformed_names(tmp_path):
    runner = CliRunner()
    for name in ("admin", "Root", "sys-tem", "a b", "x\x1by"):
        res = runner.invoke(app, ["server", "create-agent", name, "--data-dir", str(tmp_path)])
        text = res.output + (res.stderr if res.stderr_bytes is not None else "")
        assert res.exit_code == 2 and "error:" in text and "Traceback" not in text, (name, text)
    res = runner.invoke(app, ["server", "create-agent", "alice", "--data-dir", str(tmp_path)])
    assert res.exit_code == 0 and res.output.strip().startswith("aar_")
