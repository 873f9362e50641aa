"""``aar mcp`` as an agent of a campaign: instructions that fit Claude Code's 4 KB, the agent's real
remaining budget, a stopped campaign server, and one researcher per agent."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import anyio
import pytest
from typer.testing import CliRunner

from aar.agents.mcp_server import (
    GUIDE_TOOL,
    GUIDE_URI,
    AgentBusy,
    McpAgent,
    ServerDown,
    build_server,
    call_tool,
    check_server,
    guide_for,
    hold_agent_lock,
    instructions_for,
    server_down_message,
    server_for,
    toolbox_for,
)
from aar.campaign.state import AgentState, CampaignState
from aar.cli import app

CLAUDE_CODE_LIMIT = 4096  # characters of a server's instructions Claude Code 2.1 keeps


def make_campaign(tmp_path, view, socket, token, minutes=30.0, used_s=300.0, status="done", pid=None):
    """A campaign directory as the orchestrator leaves it (state only; no processes)."""
    d = tmp_path / "camp"
    ws = d / "agents" / "agent-00" / "ws"
    ws.mkdir(parents=True)
    now = time.time()
    agent = AgentState(
        name="agent-00",
        index=0,
        direction={"name": "elicitation", "text": "Elicit the strong model's latent knowledge. " * 80},
        seed=0,
        token=token,
        workspace=str(ws),
        log=str(d / "agents" / "agent-00" / "agent.log"),
        intervals=[[now - 1000, now - 1000 + used_s]],
        status=status,
        pid=pid,
    )
    st = CampaignState(
        dir=str(d),
        testbed="math-tiny",
        options={"view": str(view), "minutes": minutes, "submissions": 7, "experiment_timeout_s": 60.0},
        server={"mode": "local", "socket": str(socket), "url": None, "admin_token": "x"},
        agents=[agent],
    )
    st.save()
    return d


@pytest.fixture(scope="module")
def token(server):
    with server.admin() as admin:
        return admin.create_agent("agent-00", budget_total=3).token


def test_instructions_fit_claude_codes_limit_with_budgets_and_rules_first(tmp_path, view, server, token):
    d = make_campaign(tmp_path, view, server.socket, token)
    agent = McpAgent.from_campaign(d, "0")
    with agent.client() as client:
        box = toolbox_for(agent, client)
        specs = box.specs()
        text = instructions_for(agent, specs)
        guide = guide_for(agent, specs)
        assert len(guide.encode()) > CLAUDE_CODE_LIMIT  # the whole prompt would be cut
        assert len(text.encode("utf-8")) < CLAUDE_CODE_LIMIT
        kept = text[:CLAUDE_CODE_LIMIT]
        budgets, rules = kept.index("## Your workspace and budgets"), kept.index("## Rules")
        assert budgets < rules < kept.index("## Your task") < kept.index("## The full guide")
        assert "7 submissions" in kept and "Never try to obtain labels" in kept and "weak-to-strong" in kept
        assert GUIDE_TOOL in kept and GUIDE_URI in kept and "[...]" in kept  # long direction text cut
        # non-ASCII text counts in bytes
        agent.direction = {"name": "é", "text": "é" * 3000}
        assert len(instructions_for(agent, specs).encode("utf-8")) < CLAUDE_CODE_LIMIT

        # the whole prompt: the researcher_guide tool and the aar://researcher-guide resource
        from mcp.client.client import Client

        async def main():
            async with Client(server_for(McpAgent.from_campaign(d, "0"), box)) as c:
                tools = {t.name for t in (await c.list_tools()).tools}
                r = await c.call_tool(GUIDE_TOOL, {})
                return c.instructions, tools, r, await c.list_resources(), await c.read_resource(GUIDE_URI)

        instructions, tools, r, res, read = anyio.run(main)
        assert instructions and len(instructions.encode()) < CLAUDE_CODE_LIMIT
        assert GUIDE_TOOL in tools and "submit" in tools
        assert not r.is_error and "## Background" in r.content[0].text and "## Rules" in r.content[0].text
        assert [str(x.uri) for x in res.resources] == [GUIDE_URI]
        assert "## Background" in read.contents[0].text


def test_campaign_mode_states_the_agents_real_remaining_budget(tmp_path, view, server, token):
    d = make_campaign(tmp_path, view, server.socket, token, minutes=30.0, used_s=300.0)
    agent = McpAgent.from_campaign(d, "agent-00")
    assert agent.deadline == pytest.approx(time.time() + 25 * 60, abs=5)
    with agent.client() as client:
        text = instructions_for(agent, toolbox_for(agent, client).specs())
    m = re.search(r"Budgets: (\d+)m(\d+)s of wall-clock time", text)
    assert m, text
    assert 24 * 60 + 50 <= int(m.group(1)) * 60 + int(m.group(2)) <= 25 * 60
    assert "23h59m" not in text
    spent = make_campaign(tmp_path / "spent", view, server.socket, token, minutes=5.0, used_s=300.0)
    with pytest.raises(ValueError, match="no wall-clock budget left"):
        McpAgent.from_campaign(spent, "0")


def test_a_stopped_campaign_server_is_a_clear_error(tmp_path, view, token):
    d = make_campaign(tmp_path, view, tmp_path / "gone.sock", token)
    r = CliRunner().invoke(app, ["mcp", "--campaign", str(d), "--agent", "0"])
    assert r.exit_code == 2, r.output
    assert "the campaign's scoring server is not running" in r.output
    assert f"aar campaign --resume {d}" in r.output
    # tools that hit a connection error say so, rather than a raw ConnectError
    agent = McpAgent.from_campaign(d, "0")
    with agent.client() as client:
        with pytest.raises(ServerDown, match="not running"):
            check_server(agent, client)
        box = toolbox_for(agent, client)
        out = call_tool(box, "forum_post", {"title": "t", "body": "b"}, down=server_down_message(agent))
        assert out["error"].startswith("the campaign's scoring server is not running")
        out = call_tool(box, "leaderboard", {})
        assert "scoring server is not reachable" in out["error"]
        assert build_server(box, "x") is not None


def test_one_researcher_per_agent(tmp_path, view, server, token):
    # the agent's own researcher runs (a live process whose command line is an agent's)
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "aar.agents.run_agent"])
    try:
        d = make_campaign(tmp_path, view, server.socket, token, status="running", pid=proc.pid)
        r = CliRunner().invoke(app, ["mcp", "--campaign", str(d), "--agent", "0"])
        assert r.exit_code == 2 and "agent-00 is running in campaign" in r.output, r.output
        assert "--force" in r.output and "aar campaign --resume" in r.output
        assert McpAgent.from_campaign(d, "0", force=True).name == "agent-00"
    finally:
        proc.kill()
        proc.wait()
    # its process is gone (a killed campaign): attaching is fine
    agent = McpAgent.from_campaign(d, "0")
    assert agent.agent_dir == d / "agents" / "agent-00"
    # a second MCP server for the same agent is refused while the first holds the agent's lock
    held = hold_agent_lock(agent.agent_dir)
    try:
        with pytest.raises(AgentBusy, match="already being acted as"):
            hold_agent_lock(agent.agent_dir)
        r = subprocess.run(
            [sys.executable, "-m", "aar.cli", "mcp", "--campaign", str(d), "--agent", "0"],
            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        assert r.returncode == 2 and "already being acted as (aar mcp, pid" in r.stderr, r.stderr
        hold_agent_lock(agent.agent_dir, force=True).close()
    finally:
        held.close()
    hold_agent_lock(agent.agent_dir).close()
    assert json.loads((d / "campaign.json").read_text())["agents"][0]["name"] == "agent-00"
