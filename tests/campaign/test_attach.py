"""Attaching a campaign to an existing server over TCP: agents reach it through the relayed socket."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from aar.campaign.orchestrator import CampaignOptions, run_campaign
from aar.client import Client

from .conftest import small_options

PROBE_AGENT = """
import os
from aar.client import Client
with Client.over_unix_socket(os.environ["AAR_SERVER_SOCKET"], os.environ["AAR_TOKEN"]) as c:
    me = c.me()
    print("I am", me.name, me.role, [t.id for t in c.testbeds()], flush=True)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_attach_to_a_tcp_server(aar_home, tmp_path):
    port, token = _free_port(), "attach-admin-token-0123456789"
    srv = subprocess.Popen(
        [sys.executable, "-m", "aar.cli", "serve", "--port", str(port), "--data-dir", str(tmp_path / "srv")],
        env={**os.environ, "AAR_ADMIN_TOKEN": token},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                with Client(url, token, timeout=2) as c:
                    c.health()
                break
            except Exception:
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.3)
        script = tmp_path / "probe.py"
        script.write_text(PROBE_AGENT)
        opts = small_options(
            tmp_path / "camp",
            minutes=0.5,
            unsafe_no_sandbox=True,
            server=url,
            admin_token=token,
            agent_command=[sys.executable, str(script)],
        )
        state = run_campaign(CampaignOptions(**opts), say=lambda _m: None)
        for a in state.agents:
            log = Path(a.log).read_text()
            assert f"I am {a.name} agent ['math-tiny']" in log, log
            assert a.status == "done" and a.stop_reason == "exited (0)"
        assert not (tmp_path / "camp" / "server.sock").exists()  # the relay cleaned up
        with Client(url, token) as c:
            assert {a.name for a in state.agents} <= {x.name for x in c.agents()}
    finally:
        srv.terminate()
        srv.wait(10)
