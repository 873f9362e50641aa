"""``aar mcp`` with the official MCP Python client, over stdio (a subprocess, as Claude Code runs it) and
over streamable HTTP (with the agent's token as the bearer credential)."""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time

import anyio
import httpx
import pytest


@pytest.fixture(scope="module")
def agent_token(server):
    with server.admin() as admin:
        return admin.create_agent("mcp-researcher", budget_total=3).token


async def _session_script(session, ws, info: bool = True) -> dict:
    out = {}
    init = await session.initialize()
    out["instructions"] = init.instructions or ""
    out["tools"] = {t.name: t for t in (await session.list_tools()).tools}
    r = await session.call_tool("write_file", {"path": "notebook.md", "content": "# Notes\n- started\n"})
    out["write"] = (r.is_error, json.loads(r.content[0].text))
    if info:  # (imports the method library: torch)
        r = await session.call_tool("testbed_info", {})
        out["info"] = (r.is_error, json.loads(r.content[0].text))
    r = await session.call_tool(
        "forum_post", {"title": "hello", "body": "first post over MCP", "tags": ["note"]}
    )
    out["post"] = (r.is_error, json.loads(r.content[0].text))
    r = await session.call_tool("read_file", {"path": "../../etc/passwd"})
    out["escape"] = (r.is_error, json.loads(r.content[0].text))
    r = await session.call_tool("no_such_tool", {})
    out["unknown"] = (r.is_error, r.content[0].text)
    r = await session.call_tool(
        "run_command", {"command": "echo $AAR_TESTBED; echo ${ANTHROPIC_API_KEY:-nokey}"}
    )
    out["command"] = (r.is_error, json.loads(r.content[0].text))
    return out


def _check(out: dict, ws) -> None:
    assert {"run_experiment", "submit", "forum_post", "leaderboard", "write_file", "run_command"} <= set(
        out["tools"]
    )
    assert out["tools"]["submit"].input_schema["required"] == ["run_id", "description"]
    assert "weak-to-strong" in out["instructions"] and "PGR" in out["instructions"]
    assert out["write"][0] is False and (ws / "notebook.md").read_text().startswith("# Notes")
    if "info" in out:
        assert out["info"][0] is False and out["info"][1]["testbed_id"] == "math-tiny"
    assert out["post"][0] is False and out["post"][1]["post_id"] >= 1
    assert out["escape"][0] is True and "outside your workspace" in out["escape"][1]["error"]
    assert out["unknown"][0] is True and "unknown tool" in out["unknown"][1]
    assert out["command"][1]["output"].split() == ["math-tiny", "nokey"]


def test_mcp_over_stdio(server, view, agent_token, tmp_path):
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    ws = tmp_path / "ws"
    params = StdioServerParameters(
        command=sys.executable,
        args=[
            "-m",
            "aar.cli",
            "mcp",
            "--workspace",
            str(ws),
            "--view",
            str(view),
            "--testbed",
            "math-tiny",
            "--server",
            f"unix:{server.socket}",
        ],
        env={
            "AAR_TOKEN": agent_token,
            "ANTHROPIC_API_KEY": "sk-must-not-leak",
            "AAR_HOME": os.environ["AAR_HOME"],
        },
    )

    async def main():
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            return await _session_script(session, ws, info=False)

    _check(anyio.run(main), ws)
    with server.admin() as admin:
        posts = admin.posts(author="mcp-researcher").items
    assert [p.title for p in posts] == ["hello"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_mcp_over_streamable_http_needs_the_agent_token(server, view, agent_token, tmp_path):
    import uvicorn
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    from aar.agents.mcp_server import McpAgent, build_server, http_app, instructions_for, toolbox_for

    ws = tmp_path / "ws"
    agent = McpAgent("mcp-researcher", agent_token, "math-tiny", view, ws, f"unix:{server.socket}")
    port = _free_port()
    with agent.client() as client:
        box = toolbox_for(agent, client)
        app = http_app(build_server(box, instructions_for(agent, box.specs())), agent_token)
        userver = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=userver.run, daemon=True)
        thread.start()
        try:
            deadline = time.monotonic() + 20
            while not userver.started and time.monotonic() < deadline:
                time.sleep(0.05)
            url = f"http://127.0.0.1:{port}/mcp"
            # without the agent's token (or with another) the endpoint refuses
            assert httpx.post(url, json={}).status_code == 401
            assert httpx.post(url, json={}, headers={"Authorization": "Bearer nope"}).status_code == 401

            async def main():
                http = create_mcp_http_client(headers={"Authorization": f"Bearer {agent_token}"})
                async with http, streamable_http_client(url, http_client=http) as streams:
                    read, write = streams[0], streams[1]
                    async with ClientSession(read, write) as session:
                        return await _session_script(session, ws)

            _check(anyio.run(main), ws)
        finally:
            userver.should_exit = True
            thread.join(10)
