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
    # The campaign ends on an event, not on a clock: each agent stops itself after its one allowed
    # submission. The wall-clock budget is only a safety net, far above what a loaded machine needs.
    opts = small_options(d, minutes=10.0, submissions=1, experiment_timeout_s=300.0)
    state = run_campaign(CampaignOptions(**opts), say=_quiet)
    assert state.finished and all(a.status == "done" for a in state.agents)
    r = _check_report(d)
    timeline = json.loads((d / "timeline.json").read_text())
    assert r["submissions"] == len(timeline) == 2
    assert all(t["agent_hours"] > 0 and t["private_pgr"] is not None for t in timeline)
    for a in state.agents:
        log = Path(a.log).read_text()
        assert "starting: direction" in log and "submission budget used up" in log, log[-2000:]
        assert a.stop_reason == "exited (0)", a.stop_reason
        assert [t["agent"] for t in timeline].count(a.name) == 1
        assert (Path(a.workspace) / "state.json").exists()
    assert not (d / "server.sock").exists() or not _server_answers(state)
    # the sandbox audit trail: every agent's sandbox started under its own uid and its exit is recorded
    assert state.isolation == "bubblewrap"
    assert "Agent isolation: bubblewrap" in (d / "report.md").read_text()
    events = [json.loads(line) for line in (d / "sandbox_events.jsonl").read_text().splitlines()]
    starts = [e for e in events if e["event"] == "sandbox.start"]
    exits = [e for e in events if e["event"] == "sandbox.exit"]
    assert {e["label"] for e in starts} == {e["label"] for e in exits} == {a.name for a in state.agents}
    assert len({e["uid"] for e in starts}) == 2 and min(e["uid"] for e in starts) >= 200_000
    assert all(e["returncode"] == 0 and e["killed_reason"] is None for e in exits)
    assert events[0]["event"] == "campaign.session" and events[0]["isolation"] == "bubblewrap"
    assert (d / "sandbox_events.jsonl").stat().st_mode & 0o777 == 0o600


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
    state = run_campaign(CampaignOptions(**opts), say=_quiet)
    assert all(a.stop_reason == "wall-clock budget" for a in state.agents)
    assert all(a.seconds() <= 0.35 * 60 + 2.0 + 15 for a in state.agents)  # stopped at budget + grace
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
    state = run_campaign(CampaignOptions(**opts), say=_quiet)
    for a in state.agents:
        assert a.restarts == 3 and a.exit_code == 3 and a.stop_reason == "exited (3)"
        assert len(a.intervals) == 4
    # no sandbox: said in the state, the report and the audit trail (each start and exit recorded)
    assert state.isolation == "none (--unsafe-no-sandbox)"
    assert "Agent isolation: none (--unsafe-no-sandbox)" in (d / "report.md").read_text()
    events = [json.loads(line) for line in (d / "sandbox_events.jsonl").read_text().splitlines()]
    assert events[0]["event"] == "sandbox.unsafe"
    for a in state.agents:
        mine = [e for e in events if e.get("label") == a.name]
        assert [e["event"] for e in mine] == ["process.start", "process.exit"] * 4
        assert all(e["returncode"] == 3 for e in mine if e["event"] == "process.exit")


def test_an_agent_acted_as_over_mcp_is_not_started_twice(aar_home, tmp_path):
    """While `aar mcp` holds an agent's lock, the campaign does not start that agent's own researcher."""
    from aar.agents.mcp_server import hold_agent_lock
    from aar.campaign.orchestrator import Campaign, create

    d = tmp_path / "camp"
    opts = small_options(
        d, minutes=0.5, unsafe_no_sandbox=True, agent_command=[sys.executable, "-c", "exit(0)"]
    )
    state, server = create(CampaignOptions(**opts), say=_quiet)
    busy, free = state.agents
    held = hold_agent_lock(Path(busy.workspace).parent)  # what `aar mcp --campaign d --agent 0` holds
    camp = Campaign(state, None, server, say=_quiet)
    try:
        camp.run()
    finally:
        camp.close()
        held.close()
    assert busy.status == "interrupted" and "already being acted as" in busy.stop_reason
    assert not busy.intervals
    assert free.exit_code == 0 and len(free.intervals) == 1
    # the campaign gave its own lock back: the agent can be acted as now
    hold_agent_lock(Path(free.workspace).parent).close()
