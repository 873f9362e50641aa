"""The server on a Unix domain socket, and the `aar server` commands."""

from __future__ import annotations

import tempfile
from pathlib import Path

from typer.testing import CliRunner

from aar.cli import app
from aar.client import Client

from .conftest import settings_for
from .helpers import ServerThread, labels_of, make_bundle


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
