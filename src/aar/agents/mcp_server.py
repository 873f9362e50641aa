"""``aar mcp``: the researcher tools as an MCP server, so Claude Code (or any MCP client) can act as an
automated alignment researcher.

It serves exactly the tools an LLM researcher of a campaign has (:class:`aar.agents.llm.workspace_tools
.Toolbox`: the shared research tools of :mod:`aar.agents.tools` plus file and command tools on the
agent's workspace), as one agent: the agent's scoring-server token is its credential. Over stdio the
token comes from ``AAR_TOKEN`` (or ``--token``); over streamable HTTP every request must also carry it
as ``Authorization: Bearer <token>``, so the endpoint acts only for the agent whose token it holds.

The tools run in this process, on the workspace given. The scoring server is reached as a campaign's
agents reach it (its Unix socket, or a URL). The server's instructions are the researcher's system
prompt (background, direction, rules).
"""

from __future__ import annotations

import hmac
import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass
class McpAgent:
    """Who the MCP server acts for and on what."""

    name: str
    token: str
    testbed_id: str
    view: Path
    workspace: Path
    server: str  # "unix:/path/server.sock" or "http://host:port"
    direction: dict | None = None
    deadline: float | None = None
    max_submissions: int = 0
    experiment_timeout_s: float = 300.0

    @classmethod
    def from_campaign(cls, directory: str | Path, agent: str, token: str | None = None) -> McpAgent:
        """An agent of a campaign directory (its workspace, view, server socket and token)."""
        from aar.campaign.state import CampaignState

        st = CampaignState.load(directory)
        matches = [a for a in st.agents if a.name == agent or str(a.index) == agent]
        if not matches:
            names = ", ".join(a.name for a in st.agents)
            raise ValueError(f"no agent {agent!r} in {directory}; agents: {names}")
        a = matches[0]
        opts = st.options
        return cls(
            name=a.name,
            token=token or a.token,
            testbed_id=st.testbed,
            view=Path(opts["view"]),
            workspace=Path(a.workspace),
            server=f"unix:{st.server['socket']}",
            direction=a.direction,
            max_submissions=int(opts.get("submissions", 0)),
            experiment_timeout_s=float(opts.get("experiment_timeout_s", 300.0)),
        )

    def client(self):
        """A scoring-server client with this agent's token."""
        from aar.client import Client

        if self.server.startswith("unix:"):
            return Client.over_unix_socket(self.server[len("unix:") :], self.token, timeout=120)
        return Client(self.server, self.token, timeout=120)


def toolbox_for(agent: McpAgent, client):
    """The agent's toolbox (research tools on its server client, workspace tools on its workspace)."""
    from aar.agents.experiments import ExperimentRunner
    from aar.agents.llm.workspace_tools import Toolbox
    from aar.agents.tools import AgentEnv

    agent.workspace.mkdir(parents=True, exist_ok=True)
    runner = ExperimentRunner(agent.view, agent.workspace, timeout_s=agent.experiment_timeout_s)
    env = AgentEnv(client, agent.testbed_id, agent.view, agent.workspace, runner)
    return Toolbox(env, deadline=agent.deadline)


def instructions_for(agent: McpAgent, specs: list[dict]) -> str:
    """The researcher's system prompt for this agent (what an API-backed researcher gets)."""
    from aar.agents.llm.loop import AgentSpec, system_prompt_for

    spec = AgentSpec(
        agent.name,
        agent.testbed_id,
        agent.view,
        agent.workspace,
        agent.direction or {"name": "open", "text": "Any direction you find promising."},
        agent.deadline or time.time() + 24 * 3600,
        agent.max_submissions,
    )
    return system_prompt_for(spec, specs)


def build_server(box, instructions: str = "", name: str = "aar"):
    """An MCP server (official SDK, low-level API) serving ``box``'s tools. Calls run one at a time."""
    import anyio
    import mcp_types as types
    from mcp.server.lowlevel import Server

    import aar

    lock = threading.Lock()
    tools = [
        types.Tool(name=s["name"], description=s["description"], input_schema=s["input_schema"])
        for s in box.specs()
    ]

    async def on_list_tools(ctx, params) -> types.ListToolsResult:
        return types.ListToolsResult(tools=tools)

    def _call(tool: str, args) -> dict:
        with lock:
            try:
                return box.call(tool, args)
            except Exception as e:  # a tool bug is a tool error for the client, not a dead server
                return {"error": f"internal error in the tool: {type(e).__name__}: {e}"}

    async def on_call_tool(ctx, params) -> types.CallToolResult:
        result = await anyio.to_thread.run_sync(_call, params.name, params.arguments)
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=json.dumps(result, default=str))],
            is_error=bool(isinstance(result, dict) and result.get("error")),
        )

    return Server(
        name,
        version=getattr(aar, "__version__", "0"),
        instructions=instructions or None,
        on_list_tools=on_list_tools,
        on_call_tool=on_call_tool,
    )


def serve_stdio(server) -> None:
    """Serve one client over stdin/stdout until it disconnects."""
    import anyio
    from mcp.server.stdio import stdio_server

    async def main() -> None:
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())

    anyio.run(main)


class BearerGate:
    """ASGI middleware: every HTTP request must carry ``Authorization: Bearer <token>``."""

    def __init__(self, app, token: str) -> None:
        self.app, self.expected = app, f"Bearer {token}".encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            got = dict(scope.get("headers") or []).get(b"authorization", b"")
            if not hmac.compare_digest(got, self.expected):
                body = json.dumps(
                    {"error": "this endpoint needs the agent's token as a Bearer token"}
                ).encode()
                await send(
                    {
                        "type": "http.response.start",
                        "status": 401,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"www-authenticate", b"Bearer"),
                            (b"content-length", str(len(body)).encode()),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


def http_app(server, token: str, host: str = "127.0.0.1", path: str = "/mcp"):
    """The streamable-HTTP ASGI app, behind the bearer-token gate."""
    return BearerGate(server.streamable_http_app(streamable_http_path=path, host=host), token)


def serve_http(server, token: str, host: str = "127.0.0.1", port: int = 8770, path: str = "/mcp") -> None:
    """Serve over streamable HTTP at ``http://host:port/path`` until interrupted."""
    import uvicorn

    uvicorn.run(http_app(server, token, host, path), host=host, port=port, log_level="warning")


def run(agent: McpAgent, transport: str = "stdio", host: str = "127.0.0.1", port: int = 8770) -> None:
    """``aar mcp``: serve ``agent``'s tools until the client goes away (stdio) or interrupted (HTTP)."""
    if not agent.token:
        raise ValueError("the MCP server needs the agent's token (AAR_TOKEN or --token)")
    for k in [k for k in os.environ if k.endswith(("_API_KEY", "_AUTH_TOKEN"))]:
        os.environ.pop(k)  # commands run by the agent must not inherit model keys of the caller
    with agent.client() as client:
        box = toolbox_for(agent, client)
        server = build_server(box, instructions_for(agent, box.specs()))
        if transport == "stdio":
            serve_stdio(server)
        elif transport == "http":
            serve_http(server, agent.token, host, port)
        else:
            raise ValueError(f"unknown transport {transport!r}: stdio or http")
