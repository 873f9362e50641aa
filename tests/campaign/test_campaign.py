"""Whole campaigns on math-tiny: sandboxed end to end, kill -9 and resume, and a hung agent."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aar.campaign.orchestrator import CampaignOptions, run_campaign
from aar.campaign.state import CampaignState
from aar.client import Client

from .conftest import small_options


def _quiet(_msg: str) -> None:
    pass


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


def _check_report(d: Path) -> dict:
    r = json.loads((d / "report.json").read_text())
    for key in ("best_private_pgr", "best_baseline_private_pgr", "agent_hours", "submissions", "cost_usd"):
        assert key in r, key
    assert len(r["agents"]) == 2 and r["best_baseline"] == "vanilla"
    assert (d / "pgr_vs_agent_hours.png").stat().st_size > 1000
    md = (d / "report.md").read_text()
    assert "ranked by private PGR" in md and "pgr_vs_agent_hours.png" in md
    return r


def test_sandboxed_campaign_end_to_end(aar_home, tmp_path):
    from aar.sandbox import check_bubblewrap

    if not check_bubblewrap(200_000).available:
        pytest.skip("bubblewrap sandboxes are not available here")
    d = tmp_path / "camp"
    t0 = time.monotonic()
    state = run_campaign(CampaignOptions(**small_options(d)), say=_quiet)
    assert time.monotonic() - t0 < 150
    assert state.finished and all(a.status == "done" for a in state.agents)
    r = _check_report(d)
    timeline = json.loads((d / "timeline.json").read_text())
    assert r["submissions"] == len(timeline) >= 1
    assert all(t["agent_hours"] > 0 and t["private_pgr"] is not None for t in timeline)
    for a in state.agents:
        log = Path(a.log).read_text()
        assert "starting: direction" in log, log[-2000:]
        assert 0 < a.seconds() <= 0.6 * 60 + 10
        assert (Path(a.workspace) / "state.json").exists()
    assert not (d / "server.sock").exists() or not _server_answers(state)


def _server_answers(state: CampaignState) -> bool:
    try:
        with Client.over_unix_socket(state.server["socket"], state.server["admin_token"], timeout=2) as c:
            c.health()
        return True
    except Exception:
        return False


def _snapshot(state: CampaignState) -> tuple[set[int], set[int]]:
    with Client.over_unix_socket(state.server["socket"], state.server["admin_token"]) as c:
        subs = {s.id for s in c.admin_submissions(testbed_id=state.testbed, limit=100).items}
        posts = {p.id for p in c.posts(limit=100).items}
    return subs, posts


def test_kill_minus_nine_and_resume_loses_nothing(aar_home, tmp_path):
    d = tmp_path / "camp"
    opts = small_options(d, minutes=0.9, unsafe_no_sandbox=True)
    code = (
        "import json, sys; from aar.campaign.orchestrator import CampaignOptions, run_campaign; "
        "run_campaign(CampaignOptions(**json.loads(sys.argv[1])))"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, json.dumps(opts)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "AAR_HOME": str(aar_home)},
    )
    before_subs: set[int] = set()
    deadline = time.monotonic() + 150
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(1)
            if not (d / "campaign.json").exists():
                continue
            state = CampaignState.load(d)
            if not any(a.status == "running" for a in state.agents):
                continue
            try:
                before_subs, before_posts = _snapshot(state)
            except Exception:
                continue
            if before_subs:
                break
        assert before_subs, "no submission before the deadline"
        pids = [a.pid for a in CampaignState.load(d).agents if a.pid]
        proc.send_signal(signal.SIGKILL)  # the campaign dies mid-run, with no chance to clean up
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    time.sleep(2)
    assert not any(_alive(p) for p in pids), "agents outlived their campaign"
    killed = CampaignState.load(d)
    hours_before = killed.agent_seconds()
    assert any(a.status == "running" for a in killed.agents) and not killed.finished

    state = run_campaign(resume=str(d), say=_quiet)
    assert state.finished and len(state.sessions) == 2
    assert state.agent_seconds() > hours_before
    assert all(a.seconds() <= 0.9 * 60 + 15 for a in state.agents)
    r = _check_report(d)
    timeline = json.loads((d / "timeline.json").read_text())
    after_subs = {t["submission_id"] for t in timeline}
    assert before_subs <= after_subs
    from aar.campaign.server import LocalServer

    srv = LocalServer(d, state.server["admin_token"]).start()
    try:
        with srv.admin() as c:
            after_posts = {p.id for p in c.posts(limit=100).items}
            per_agent = {a.name: c.admin_submissions(agent=a.name, limit=100).total for a in state.agents}
    finally:
        srv.stop()
    assert before_posts <= after_posts
    # each researcher's notes agree with the server after the restart
    for a in state.agents:
        notes = json.loads((Path(a.workspace) / "state.json").read_text())
        assert notes["n_submitted"] >= per_agent[a.name]
    assert r["submissions"] == len(after_subs)
    # `aar report DIR` restarts the campaign's server to rewrite the report
    from typer.testing import CliRunner

    from aar.cli import app

    (d / "report.md").unlink()
    res = CliRunner().invoke(app, ["report", str(d)])
    assert res.exit_code == 0, res.output
    assert "best private PGR" in res.output and (d / "report.md").exists()


HUNG_AGENT = """
import signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
subprocess.Popen([sys.executable, "-c",
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"])
print("hanging", flush=True)
while True:
    time.sleep(1)
"""


def test_a_hung_agent_never_hangs_the_campaign(aar_home, tmp_path):
    script = tmp_path / "hang.py"
    script.write_text(HUNG_AGENT)
    d = tmp_path / "camp"
    opts = small_options(
        d,
        minutes=0.35,
        unsafe_no_sandbox=True,
        grace_seconds=2.0,
        agent_command=[sys.executable, str(script)],
    )
    t0 = time.monotonic()
    state = run_campaign(CampaignOptions(**opts), say=_quiet)
    took = time.monotonic() - t0
    assert took < 0.35 * 60 + 40, took
    assert all(a.stop_reason == "wall-clock budget" for a in state.agents)
    time.sleep(1)
    leftovers = subprocess.run(["pgrep", "-f", str(script)], capture_output=True, text=True).stdout.split()
    assert not leftovers, f"processes of the hung agent survived: {leftovers}"
    r = json.loads((d / "report.json").read_text())
    assert r["submissions"] == 0 and r["best_private_pgr"] is None


def test_a_crashing_agent_is_restarted_a_few_times(aar_home, tmp_path):
    d = tmp_path / "camp"
    opts = small_options(
        d, minutes=0.5, unsafe_no_sandbox=True, agent_command=[sys.executable, "-c", "exit(3)"]
    )
    t0 = time.monotonic()
    state = run_campaign(CampaignOptions(**opts), say=_quiet)
    assert time.monotonic() - t0 < 60
    for a in state.agents:
        assert a.restarts == 3 and a.exit_code == 3 and a.stop_reason == "exited (3)"
        assert len(a.intervals) == 4
