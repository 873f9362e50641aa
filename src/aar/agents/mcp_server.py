"""``aar mcp``: the researcher tools as an MCP server, so Claude Code (or any MCP client) can act as an
automated alignment researcher.

It serves exactly the tools an LLM researcher of a campaign has (:class:`aar.agents.llm.workspace_tools
.Toolbox`: the shared research tools of :mod:`aar.agents.tools` plus file and command tools on the
agent's workspace), as one agent: the agent's scoring-server token is its credential. Over stdio the
token comes from ``AAR_TOKEN`` (or ``--token``); over streamable HTTP every request must also carry it
as ``Authorization: Bearer <token>``, so the endpoint acts only for the agent whose token it holds.

The tools run in this process, on the workspace given. The scoring server is reached as a campaign's
agents reach it (its Unix socket, or a URL); it is checked at start, and a tool that cannot reach it
says so. The server's instructions are a short version of the researcher's system prompt (budgets and
rules first: Claude Code keeps only the first 4,096 characters of a server's instructions); the whole
prompt is the ``researcher_guide`` tool and the ``aar://researcher-guide`` resource.

**One researcher per agent.** In a campaign, ``aar mcp`` refuses an agent whose own researcher is
running (the campaign state says so and its process is alive): two researchers acting as one agent
would share its workspace, notebook and budgets. It holds an exclusive ``flock`` on
``agents/<name>/agent.lock`` (outside the workspace) while it serves, so a second ``aar mcp`` for the
same agent is refused too. ``force`` overrides both checks.
"""

from __future__ import annotations

import fcntl
import hmac
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mcp.server.lowlevel import Server

    from aar.agents.llm.loop import AgentSpec
    from aar.agents.llm.workspace_tools import Toolbox
    from aar.client import Client

from aar.agents.experiments import EXPERIMENT_TIMEOUT_S

GUIDE_TOOL = "researcher_guide"
GUIDE_URI = "aar://researcher-guide"
# Claude Code (2.1) keeps the first 4,096 characters of a server's instructions; stay well below
MAX_INSTRUCTIONS_BYTES = 3800
LOCK_FILE = "agent.lock"
AGENT_PROCESS_MARKERS = (b"run_agent", b"_enter.py", b"bwrap", b"aar.agents.llm.executor")


class AgentBusy(ValueError):
    """Someone else acts as this agent (its own researcher, or another ``aar mcp``)."""


class ServerDown(ValueError):
    """The scoring server does not answer."""


@dataclass
class McpAgent:
    """Who the MCP server acts for and on what."""

    name: str
    token: str
    testbed_id: str
    view: Path
    workspace: Path
    server: str  # "unix:/path/server.sock" or "http://host:port"
    direction: dict[str, Any] | None = None
    deadline: float | None = None
    max_submissions: int = 0
    experiment_timeout_s: float = EXPERIMENT_TIMEOUT_S

    campaign_dir: Path | None = None  # set when acting as an agent of a campaign
    agent_dir: Path | None = None  # the agent's supervisor-side folder (agents/<name>/, holds the lock)

    @classmethod
    def from_campaign(
        cls, directory: str | Path, agent: str, token: str | None = None, force: bool = False
    ) -> McpAgent:
        """An agent of a campaign directory (its workspace, view, server socket, token, remaining time).

        Refuses (:class:`AgentBusy`) while the agent's own researcher is running, unless ``force``.
        """
        from aar.campaign.state import CampaignState

        st = CampaignState.load(directory)
        matches = [a for a in st.agents if a.name == agent or str(a.index) == agent]
        if not matches:
            names = ", ".join(a.name for a in st.agents)
            raise ValueError(f"no agent {agent!r} in {directory}; agents: {names}")
        a = matches[0]
        opts = st.options
        if not force and a.status == "running" and a.pid and _is_agent_process(a.pid):
            raise AgentBusy(
                f"agent {a.name} is running in campaign {st.dir} (process {a.pid}): its researcher and "
                "an MCP client would act as one agent, sharing its workspace, notebook and budgets. Stop "
                f"the campaign first (Ctrl-C; continue it later with `aar campaign --resume {st.dir}`), "
                "attach to another agent, or give --force"
            )
        now = time.time()
        budget = float(opts.get("minutes", 10.0)) * 60
        left = budget - a.seconds(now)
        if left <= 0 and not force:
            raise ValueError(
                f"agent {a.name} has no wall-clock budget left in {st.dir}: it ran {a.seconds(now) / 60:.1f} "
                f"of its {budget / 60:g} minutes"
            )
        return cls(
            name=a.name,
            token=token or a.token,
            testbed_id=st.testbed,
            view=Path(opts["view"]),
            workspace=Path(a.workspace),
            server=f"unix:{st.server['socket']}",
            direction=a.direction,
            deadline=now + max(left, 0.0),
            max_submissions=int(opts.get("submissions", 0)),
            experiment_timeout_s=float(opts.get("experiment_timeout_s", EXPERIMENT_TIMEOUT_S)),
            campaign_dir=Path(st.dir),
            agent_dir=Path(a.workspace).parent,
        )

    def client(self) -> Client:
        """A scoring-server client with this agent's token."""
        from aar.client import connect

        return connect(self.server, self.token)


def toolbox_for(agent: McpAgent, client: Client) -> Toolbox:
    """The agent's toolbox (research tools on its server client, workspace tools on its workspace)."""
    from aar.agents.experiments import ExperimentRunner
    from aar.agents.llm.workspace_tools import Toolbox
    from aar.agents.tools import AgentEnv

    agent.workspace.mkdir(parents=True, exist_ok=True)
    runner = ExperimentRunner(agent.view, agent.workspace, timeout_s=agent.experiment_timeout_s)
    env = AgentEnv(client, agent.testbed_id, agent.view, agent.workspace, runner)
    return Toolbox(env, deadline=agent.deadline)


def _spec_for(agent: McpAgent) -> AgentSpec:
    from aar.agents.llm.loop import AgentSpec

    return AgentSpec(
        agent.name,
        agent.testbed_id,
        agent.view,
        agent.workspace,
        agent.direction or {"name": "open", "text": "Any direction you find promising."},
        agent.deadline or time.time() + 24 * 3600,
        agent.max_submissions,
    )


def guide_for(agent: McpAgent, specs: list[dict[str, Any]]) -> str:
    """The researcher's whole system prompt for this agent (what an API-backed researcher gets)."""
    from aar.agents.llm.loop import system_prompt_for

    return system_prompt_for(_spec_for(agent), specs)


def _sections(text: str) -> tuple[str, dict[str, str]]:
    """(text before the first ``## `` heading, {heading: section text with its heading})."""
    head, out, title = [], {}, None
    for line in text.splitlines():
        if line.startswith("## "):
            title = line[3:].split(":")[0].strip()
            out[title] = [line]
        elif title is None:
            head.append(line)
        else:
            out[title].append(line)
    return "\n".join(head).strip(), {k: "\n".join(v).strip() for k, v in out.items()}


def instructions_for(
    agent: McpAgent, specs: list[dict[str, Any]], limit: int = MAX_INSTRUCTIONS_BYTES
) -> str:
    """The MCP server's instructions: the prompt's budgets and rules first, then the task in brief and
    where the whole guide is; at most ``limit`` bytes of UTF-8 (the direction's text is cut to fit)."""
    head, sec = _sections(guide_for(agent, specs))
    intro = head.splitlines()[0] if head else f"You are {agent.name}, an automated alignment researcher."
    direction = agent.direction or {"name": "open", "text": "Any direction you find promising."}
    task = (
        f"## Your task\n\nTestbed `{agent.testbed_id}`. Find a weak-to-strong method (a Python file in your "
        "workspace, run with `run_experiment`, scored with `submit`) with a high performance gap recovered, "
        "PGR = (transfer_acc - weak_acc) / (ceiling_acc - weak_acc), that would also hold on other models "
        f"and data. Your starting direction, {direction.get('name', 'open')} (a starting point, not a "
        "constraint): "
    )
    guide = (
        f"## The full guide\n\nRead it before anything else: call the `{GUIDE_TOOL}` tool (or read the "
        f"resource {GUIDE_URI}). It has the background, the method-file format with an example, what a "
        "method's context holds, the tools, and how submissions are scored."
    )
    parts = [intro, sec.get("Your workspace and budgets", ""), sec.get("Rules", "")]

    def build(text: str) -> str:
        return "\n\n".join(p for p in [*parts, task + text, guide] if p)

    text = str(direction.get("text", ""))
    out = build(text)
    while len(out.encode()) > limit and text:
        text = text[: max(0, len(text) - max(16, len(out.encode()) - limit))].rstrip() + " [...]"
        text = "" if text == " [...]" else text
        out = build(text)
    return out


def _is_agent_process(pid: int) -> bool:
    """Whether ``pid`` is alive and an agent process (the launcher's, the sandbox's, or a tool executor)."""
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return any(m in cmd for m in AGENT_PROCESS_MARKERS)


def hold_agent_lock(agent_dir: Path, force: bool = False, holder: str = "aar mcp") -> IO[str]:
    """Take the exclusive lock of an agent's supervisor-side folder; returns the open file (keep it).

    Whoever acts as the agent holds it: an ``aar mcp`` server, or the campaign while the agent's own
    researcher runs, so two researchers never share one workspace and budget."""
    agent_dir.mkdir(parents=True, exist_ok=True)
    f = open(agent_dir / LOCK_FILE, "a+")  # noqa: SIM115 - held for the life of the server
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.seek(0)
        holder = f.read().strip() or "another process"
        if not force:
            f.close()
            raise AgentBusy(
                f"agent {agent_dir.name} is already being acted as ({holder}); two researchers would share "
                "its workspace and budgets. Close that session first, or give --force"
            ) from None
        return f
    f.seek(0)
    f.truncate()
    f.write(f"{holder}, pid {os.getpid()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
    f.flush()
    return f


def server_down_message(agent: McpAgent, error: BaseException | None = None) -> str:
    """What to say when the scoring server does not answer."""
    why = f" ({type(error).__name__}: {error})" if error else ""
    if agent.campaign_dir is not None:
        return (
            f"the campaign's scoring server is not running{why}: it runs only while `aar campaign` runs. "
            f"Continue the campaign (`aar campaign --resume {agent.campaign_dir}`) and try again"
        )
    return f"the scoring server at {agent.server} is not reachable{why}: start it (`aar serve`) and try again"


def check_server(agent: McpAgent, client: Client) -> None:
    """Raise :class:`ServerDown` with a clear message unless the server answers a health call."""
    import httpx

    try:
        client.health()
    except (httpx.TransportError, OSError) as e:
        raise ServerDown(server_down_message(agent, e)) from None


def call_tool(
    box: Toolbox, tool: str, args: Any, lock: threading.Lock | None = None, down: str = ""
) -> dict[str, Any]:
    """Run one tool; every failure (a tool bug, an unreachable server) is a tool error for the client."""
    import httpx

    with lock or threading.Lock():
        try:
            return box.call(tool, args)
        except httpx.TransportError as e:
            msg = down or "the scoring server is not reachable; it may have stopped"
            return {"error": f"{msg} ({type(e).__name__}: {e})"}
        except Exception as e:  # a tool bug is a tool error for the client, not a dead server
            return {"error": f"internal error in the tool: {type(e).__name__}: {e}"}


def build_server(
    box: Toolbox,
    instructions: str = "",
    name: str = "aar",
    guide: str | Callable[[], str] | None = None,
    down: str = "",
) -> Server:
    """An MCP server (official SDK, low-level API) serving ``box``'s tools. Calls run one at a time.

    ``guide`` (a string, or a function returning one) is served as the ``researcher_guide`` tool and the
    ``aar://researcher-guide`` resource; ``down`` is the message for an unreachable scoring server.
    """
    import anyio
    import mcp_types as types
    from mcp.server.lowlevel import Server

    import aar

    lock = threading.Lock()
    tools = [
        types.Tool(name=s["name"], description=s["description"], input_schema=s["input_schema"])
        for s in box.specs()
    ]
    about = (
        "The full researcher guide: background on weak-to-strong supervision and PGR, your direction, the "
        "method-file format with an example, the tools, your budgets and the rules. Read it first."
    )
    if guide is not None:
        tools.append(
            types.Tool(name=GUIDE_TOOL, description=about, input_schema={"type": "object", "properties": {}})
        )

    def _guide() -> str:
        return guide() if callable(guide) else str(guide)

    async def on_list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
        return types.ListToolsResult(tools=tools)

    async def on_call_tool(ctx: Any, params: Any) -> types.CallToolResult:
        if guide is not None and params.name == GUIDE_TOOL:
            text = await anyio.to_thread.run_sync(_guide)
            return types.CallToolResult(content=[types.TextContent(type="text", text=text)], is_error=False)
        result = await anyio.to_thread.run_sync(call_tool, box, params.name, params.arguments, lock, down)
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=json.dumps(result, default=str))],
            is_error=bool(isinstance(result, dict) and result.get("error")),
        )

    async def on_list_resources(ctx: Any, params: Any) -> types.ListResourcesResult:
        res = types.Resource(
            name="researcher-guide", uri=GUIDE_URI, mime_type="text/markdown", description=about
        )
        return types.ListResourcesResult(resources=[res])

    async def on_read_resource(ctx: Any, params: Any) -> types.ReadResourceResult:
        if str(params.uri) != GUIDE_URI:
            raise ValueError(f"unknown resource {params.uri}; resources: {GUIDE_URI}")
        text = await anyio.to_thread.run_sync(_guide)
        return types.ReadResourceResult(
            contents=[types.TextResourceContents(uri=GUIDE_URI, mime_type="text/markdown", text=text)]
        )

    return Server(
        name,
        version=getattr(aar, "__version__", "0"),
        instructions=instructions or None,
        on_list_tools=on_list_tools,
        on_call_tool=on_call_tool,
        on_list_resources=on_list_resources if guide else None,
        on_read_resource=on_read_resource if guide else None,
    )


def serve_stdio(server: Server) -> None:
    """Serve one client over stdin/stdout until it disconnects."""
    import anyio
    from mcp.server.stdio import stdio_server

    async def main() -> None:
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())

    anyio.run(main)


class BearerGate:
    """ASGI middleware: every HTTP request must carry ``Authorization: Bearer <token>``."""

    def __init__(self, app: Any, token: str) -> None:
        """Gate ``app`` with ``token``."""
        self.app, self.expected = app, f"Bearer {token}".encode()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
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


def http_app(server: Server, token: str, host: str = "127.0.0.1", path: str = "/mcp") -> BearerGate:
    """The streamable-HTTP ASGI app, behind the bearer-token gate."""
    return BearerGate(server.streamable_http_app(streamable_http_path=path, host=host), token)


def serve_http(
    server: Server, token: str, host: str = "127.0.0.1", port: int = 8770, path: str = "/mcp"
) -> None:
    """Serve over streamable HTTP at ``http://host:port/path`` until interrupted."""
    import uvicorn

    uvicorn.run(http_app(server, token, host, path), host=host, port=port, log_level="warning")


def server_for(agent: McpAgent, box: Toolbox) -> Server:
    """The MCP server of ``agent``: short instructions, the whole guide, the server-down message."""
    specs = box.specs()
    return build_server(
        box,
        instructions_for(agent, specs),
        guide=lambda: guide_for(agent, specs),
        down=server_down_message(agent),
    )


def run(
    agent: McpAgent, transport: str = "stdio", host: str = "127.0.0.1", port: int = 8770, force: bool = False
) -> None:
    """``aar mcp``: serve ``agent``'s tools until the client goes away (stdio) or interrupted (HTTP)."""
    if not agent.token:
        raise ValueError("the MCP server needs the agent's token (AAR_TOKEN or --token)")
    if transport not in ("stdio", "http"):
        raise ValueError(f"unknown transport {transport!r}: stdio or http")
    for k in [k for k in os.environ if k.endswith(("_API_KEY", "_AUTH_TOKEN"))]:
        os.environ.pop(k)  # commands run by the agent must not inherit model keys of the caller
    lock = hold_agent_lock(agent.agent_dir, force) if agent.agent_dir is not None else None
    try:
        with agent.client() as client:
            check_server(agent, client)
            server = server_for(agent, toolbox_for(agent, client))
            if transport == "stdio":
                serve_stdio(server)
            else:
                serve_http(server, agent.token, host, port)
    finally:
        if lock is not None:
            lock.close()
