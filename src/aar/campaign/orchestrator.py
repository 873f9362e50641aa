"""Running a campaign: set-up (testbed, public view, ground truth, server, credentials), the agent
processes under budgets, live progress, kill-and-resume, the timeline and the final report.

Layout of a campaign directory::

    campaign.json        state (options, server, agents with tokens and run intervals), mode 600
    public/<testbed>/    the public view every agent reads (read-only inside sandboxes)
    server/              the local server's data dir (SQLite database, vault, artifacts, log)
    server.sock          its Unix socket (the only thing agents can reach)
    agents/<name>/ws/    each agent's workspace (agent.json, state.json, runs/...)
    agents/<name>/agent.log
    sandbox_events.jsonl the sandbox audit trail (start, limit breaches, exit of every agent sandbox)
    timeline.json        every scored submission, from the server, with cumulative agent-hours
    report.md, report.json, pgr_vs_agent_hours.png
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from aar.agents.experiments import EXPERIMENT_TIMEOUT_S
from aar.agents.mcp_server import AgentBusy, hold_agent_lock
from aar.campaign.budgets import Budgets, agent_over, campaign_over, usage
from aar.campaign.connection import CampaignServer
from aar.campaign.events import AUDIT_FILE, AuditLog
from aar.campaign.launcher import (
    AgentHandle,
    AgentLaunch,
    Launcher,
    close_launcher,
    isolation_of,
    make_launcher,
)
from aar.campaign.progress import Progress
from aar.campaign.server import LocalServer, attached_admin, free_port, new_admin_token
from aar.campaign.state import AgentState, CampaignState
from aar.campaign.timeline import all_submissions, build_timeline, write_timeline
from aar.client import ApiError, Client
from aar.w2s.cache import make_readable

MIN_RUN_SECONDS = 20.0  # an agent with less budget left is not restarted
MAX_RESTARTS = 3  # restarts of an agent that crashed (non-zero exit status)
MAX_NODE_LOSSES = 10  # restarts of an agent whose Ray node died (not counted as crashes)


@dataclass
class CampaignOptions:
    """What ``aar campaign`` was asked for."""

    testbed: str = "math"
    agents: int = 9
    minutes: float = 10.0
    dir: str | None = None
    server: str | None = None
    admin_token: str | None = None
    same_direction: str | None = None
    directions_file: str | None = None
    submissions: int = 24
    total_submissions: int | None = None
    agent_tokens: int | None = None
    agent_dollars: float | None = None
    total_dollars: float | None = None
    total_minutes: float | None = None  # the campaign's wall clock over all sessions
    seed: int = 0
    backend: str = "offline"
    model: str | None = None  # LLM backends (anthropic, openai): the model name
    base_url: str | None = None  # LLM backends: API base URL (OpenAI-compatible: vLLM, llama.cpp, ...)
    llm: dict[str, Any] = field(default_factory=dict)  # LLM loop settings (aar.agents.llm.campaign)
    unsafe_no_sandbox: bool = False
    experiment_timeout_s: float = EXPERIMENT_TIMEOUT_S
    teacher_seeds: int = 5  # teacher seeds in the public view and reference seeds of the bundle
    baselines: list[str] | None = None  # None: every shipped method
    agent_command: list[str] | None = None  # replaces the agent process (tests, custom backends)
    # per agent index ("3"): replaces that agent's process only (e.g. planted agents among researchers)
    agent_commands: dict[str, list[str]] = field(default_factory=dict)
    researcher: dict[str, Any] = field(default_factory=dict)  # ResearcherSettings overrides
    researcher_kind: str = "offline"  # offline, or a control researcher: random, tuned (aar.agents.controls)
    grace_seconds: float = 15.0  # past its wall budget an agent is killed whatever it is doing
    db_url: str | None = None  # the local server's database (default: SQLite in the campaign folder)
    ray: str | None = None  # a Ray cluster's address ("auto": the local one): agents run on its nodes
    agent_cpus: float = 1.0  # Ray: CPUs each agent's actor requests
    # Ray: GPUs each agent's actor requests (its experiments run on them); None: one for a Hugging Face
    # testbed on a cluster with GPUs, else none
    experiment_gpus: float | None = None

    def budgets(self) -> Budgets:
        """The budgets these options imply."""
        return Budgets(
            agent_seconds=self.minutes * 60,
            agent_submissions=self.submissions,
            total_submissions=self.total_submissions,
            agent_tokens=self.agent_tokens,
            agent_dollars=self.agent_dollars,
            total_dollars=self.total_dollars,
            total_seconds=None if self.total_minutes is None else self.total_minutes * 60,
            grace_seconds=self.grace_seconds,
        )


def default_dir() -> Path:
    """A new timestamped folder under ``./campaigns/``."""
    return Path("campaigns") / time.strftime("%Y%m%d-%H%M%S")


def create(
    opts: CampaignOptions, say: Callable[[str], None] = print
) -> tuple[CampaignState, LocalServer | None]:
    """Set up a new campaign directory and its server; returns the saved state (agents not started)."""
    from aar.agents.directions import assign, builtin_directions, load_directions
    from aar.w2s.baseline import resolve_methods
    from aar.w2s.public import build_vault_bundle, export_public_view
    from aar.w2s.testbeds.registry import load_testbed

    d = Path(opts.dir or default_dir()).absolute()
    tcp: tuple[str, int] | None = None
    if opts.ray:  # checked before anything is written; the server listens where the nodes reach it
        from aar.campaign.ray_launcher import (
            check_options,
            check_resources,
            cluster_gpus,
            connect,
            default_gpus,
        )

        check_options(opts)
        host = connect(opts.ray)
        if opts.experiment_gpus is None:
            opts.experiment_gpus = default_gpus(opts.testbed, cluster_gpus())
            say(f"each agent requests {opts.experiment_gpus:g} GPU(s) for its experiments")
        check_resources(opts.agent_cpus, opts.experiment_gpus)
        if not opts.server:
            tcp = (host, free_port(host))
    if (d / "campaign.json").exists():
        raise FileExistsError(f"{d} already holds a campaign; continue it with --resume {d}")
    d.mkdir(parents=True, exist_ok=True)
    directions = builtin_directions() + (
        load_directions(opts.directions_file) if opts.directions_file else []
    )
    chosen = assign(directions, opts.agents, opts.same_direction)
    say(f"campaign {d}: testbed {opts.testbed}, {opts.agents} agents, {opts.minutes:g} min each")
    tb = load_testbed(opts.testbed)
    seeds = list(range(opts.teacher_seeds))
    view = export_public_view(tb, d / "public" / opts.testbed, seeds)
    make_readable(d / "public")
    baselines = opts.baselines if opts.baselines is not None else resolve_methods(["all"])
    say(f"ground truth and shipped baselines ({', '.join(baselines)}) over seeds {seeds} (cached)")
    bundle = build_vault_bundle(tb, seeds, baselines)
    server = None
    if opts.server:
        if not opts.admin_token:
            raise ValueError("--server needs the server's admin token (--admin-token or AAR_ADMIN_TOKEN)")
        srv: dict[str, str | None] = {
            "mode": "attach",
            "url": opts.server,
            "socket": str(d / "server.sock"),
            "admin_token": opts.admin_token,
        }
        admin = attached_admin(opts.server, opts.admin_token)
    else:
        token = new_admin_token()
        server = LocalServer(d, token, db_url=opts.db_url, tcp=tcp).start()
        srv = {"mode": "local", "url": None, "socket": str(server.socket), "admin_token": token}
        if opts.db_url:
            srv["db_url"] = opts.db_url
        if tcp:
            srv["host"], srv["port"], srv["pid"] = tcp[0], str(tcp[1]), str(server.pid)
        admin = server.admin()
    with admin:
        try:
            admin.register_testbed(bundle)
        except ApiError as e:
            if e.code != "testbed_exists":
                raise
            say(f"testbed {bundle.testbed_id} is already registered on the server with other data; using it")
        cid = secrets.token_hex(2)
        agents = []
        for i, direction in enumerate(chosen):
            name = f"c{cid}-a{i}-{direction.name}"[:64]
            created = admin.create_agent(
                name, budget_per_hour=opts.submissions, budget_total=opts.submissions
            )
            agent_dir = d / "agents" / name
            agents.append(
                AgentState(
                    name=name,
                    index=i,
                    direction=direction.to_dict(),
                    seed=opts.seed * 1000 + i,
                    token=created.token,
                    workspace=str(agent_dir / "ws"),
                    log=str(agent_dir / "agent.log"),
                )
            )
            (agent_dir / "ws").mkdir(parents=True, exist_ok=True)
    state = CampaignState(
        dir=str(d),
        testbed=bundle.testbed_id,
        options={**asdict(opts), "dir": str(d), "view": str(view), "ray_namespace": f"aar-c{cid}"},
        server=srv,
        agents=agents,
    )
    state.save()
    return state, server


class Campaign:
    """A campaign being run (fresh or resumed) until every agent is done or a budget ends it."""

    def __init__(
        self,
        state: CampaignState,
        launcher: Launcher | None = None,
        server: LocalServer | None = None,
        progress: Progress | None = None,
        say: Callable[[str], None] = print,
    ) -> None:
        """Run ``state``; ``server`` is an already started local server (else one is started)."""
        self.state, self.say = state, say
        self.opts = CampaignOptions(
            **{k: v for k, v in state.options.items() if k in CampaignOptions.__dataclass_fields__}
        )
        self.budgets = self.opts.budgets()
        self.audit = AuditLog(Path(state.dir) / AUDIT_FILE)
        if launcher is None and self.opts.ray:  # agents on a Ray cluster's nodes
            from aar.campaign.ray_launcher import RayLauncher

            launcher = RayLauncher(state, audit=self.audit)
        self.launcher = launcher or make_launcher(self.opts.unsafe_no_sandbox, audit=self.audit)
        if self.opts.backend != "offline":  # LLM backends: model loop in this process, tools in the sandbox
            from aar.agents.llm.campaign import LLMLauncher

            if not isinstance(self.launcher, LLMLauncher):
                self.launcher = LLMLauncher(self.launcher, self.opts, state)
        self.connection = CampaignServer(state, server, relay_for_agents=not self.opts.ray)
        self.handles: dict[str, AgentHandle] = {}
        self.locks: dict[str, IO[str]] = {}  # agent name -> the held lock file of its supervisor-side folder
        self.progress = progress or Progress(f"campaign {Path(state.dir).name}")
        self.submissions: list[dict[str, Any]] = []
        self.stop_reason: str | None = None

    # -- server ------------------------------------------------------------------------------------
    def _connect(self) -> Client:
        return self.connection.connect()

    # -- agents ------------------------------------------------------------------------------------
    def _launch(self, a: AgentState, now: float) -> None:
        from aar.agents.run_agent import AgentConfig

        if a.name not in self.locks:  # an `aar mcp` acting as this agent makes this raise AgentBusy
            self.locks[a.name] = hold_agent_lock(Path(a.workspace).parent, holder="aar campaign")
        left = self.budgets.agent_seconds - a.seconds(now)
        ws = Path(a.workspace)
        ws.mkdir(parents=True, exist_ok=True)
        cfg = AgentConfig(
            name=a.name,
            testbed_id=self.state.testbed,
            view=self.state.options["view"],
            workspace=str(ws),
            direction=a.direction,
            seed=a.seed,
            deadline=now + left,
            max_submissions=self.opts.submissions,
            backend=self.opts.backend,
            experiment_timeout_s=self.opts.experiment_timeout_s,
            settings=self.opts.researcher,
            researcher=self.opts.researcher_kind,
            index=a.index,
            n_agents=len(self.state.agents),
        )
        cfg.save(ws / "agent.json")
        launch = AgentLaunch(
            name=a.name,
            index=a.index,
            workspace=ws,
            config=ws / "agent.json",
            log=Path(a.log),
            readonly=[Path(self.state.options["view"])],
            socket=Path(self.state.server["socket"]),
            env={"AAR_TOKEN": a.token, "AAR_SERVER_SOCKET": self.state.server["socket"]},
            wall_seconds=left,
            argv=list(self.opts.agent_commands.get(str(a.index)) or self.opts.agent_command or []),
        )
        self.handles[a.name] = h = self.launcher.start(launch)
        a.status, a.pid, a.stop_reason = "running", h.pid, None
        a.intervals.append([now, now])
        a.nodes += [None] * (len(a.intervals) - 1 - len(a.nodes))  # states written before nodes existed
        a.nodes.append(getattr(h, "node", None))

    def _stop(self, a: AgentState, reason: str, status: str = "done") -> None:
        h = self.handles.pop(a.name, None)
        if h is not None:
            h.kill()
            a.exit_code = h.poll()
        lock = self.locks.pop(a.name, None)
        if lock is not None:
            lock.close()
        if a.intervals:
            a.intervals[-1][1] = time.time()
        a.status, a.stop_reason = status, reason

    def _reap_leftovers(self) -> None:
        """After a hard kill of the previous session, end any of its agent processes still alive, or,
        with a launcher that can (Ray), reattach to those still running: they keep their run."""
        reattach = getattr(self.launcher, "reattach", None)
        for a in self.state.agents:
            if a.status == "running":
                h = reattach(a.name, Path(a.workspace), Path(a.log)) if callable(reattach) else None
                if h is not None:
                    with contextlib.suppress(AgentBusy):
                        self.locks[a.name] = hold_agent_lock(Path(a.workspace).parent, holder="aar campaign")
                    self.handles[a.name] = h
                    self.say(f"{a.name} is still running on its node; reattached")
                    continue
                if a.pid and _is_agent_process(a.pid):
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(a.pid, signal.SIGKILL)
                a.status = "interrupted"

    # -- the loop ----------------------------------------------------------------------------------
    def run(self) -> CampaignState:
        """Run until done; on SIGINT/SIGTERM stop every agent, save, and re-raise KeyboardInterrupt."""
        st = self.state
        self._reap_leftovers()
        st.sessions.append([time.time(), time.time()])
        isolation = isolation_of(self.launcher)
        if st.isolation and not st.isolation.endswith(isolation):
            isolation = f"{st.isolation}, then {isolation}"  # resumed in another mode
        st.isolation = isolation
        self.audit({"event": "campaign.session", "session": len(st.sessions), "isolation": isolation,
                    "launcher": self.launcher.name})
        st.save()
        old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

        def _interrupt(_signum: int, _frame: object) -> None:
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, _interrupt)
        try:
            with self._connect() as admin, self.progress:
                self._loop(admin)
                self._refresh(admin, final=True)
            st.finished = True
        except KeyboardInterrupt:
            for a in st.agents:
                if a.name in self.handles:
                    self._stop(a, "campaign interrupted", status="interrupted")
            self.say(f"\ninterrupted; continue with: aar campaign --resume {st.dir}")
            raise
        finally:
            for a in st.agents:
                if a.name in self.handles:
                    self._stop(a, "campaign ended", status="interrupted")
            st.sessions[-1][1] = time.time()
            st.save()
            for s, h in old.items():
                signal.signal(s, h)
            self.connection.close_relay()
        return st

    def _loop(self, admin: Client) -> None:
        st, b = self.state, self.budgets
        for a in st.agents:
            if a.status in ("pending", "interrupted") and b.agent_seconds - a.seconds() >= MIN_RUN_SECONDS:
                try:
                    self._launch(a, time.time())
                except AgentBusy as e:  # e.g. `aar mcp` acts as this agent: never two researchers in one
                    a.status, a.stop_reason = "interrupted", f"not started: {e}"
                    self.say(f"{a.name} not started: {e}")
            elif a.status in ("pending", "interrupted"):
                a.status, a.stop_reason = "done", "wall-clock budget"
        st.save()
        last_refresh = 0.0
        while self.handles:
            time.sleep(0.5)
            now = time.time()
            for a in st.agents:
                h = self.handles.get(a.name)
                if h is None:
                    continue
                code = h.poll()
                if code is None and getattr(h, "waiting", False):
                    a.intervals[-1] = [now, now]  # queued for a node with room: not the agent's time yet
                    continue
                a.intervals[-1][1] = now
                node = getattr(h, "node", None)
                if node and a.nodes and a.nodes[-1] != node:
                    a.nodes[-1] = node  # where the cluster placed it (known once it started)
                if code is not None:
                    self.handles.pop(a.name)
                    if (lock := self.locks.pop(a.name, None)) is not None:
                        lock.close()
                    a.exit_code, a.status, a.stop_reason = code, "done", f"exited ({code})"
                    left = b.agent_seconds - a.seconds(now)
                    lost = getattr(h, "lost", None)
                    if lost:  # its node died: not the agent's doing, so not counted as a crash
                        a.stop_reason = lost
                        if a.node_losses < MAX_NODE_LOSSES and left >= MIN_RUN_SECONDS:
                            a.node_losses += 1
                            self.say(f"{a.name}: {lost}; restarting it from its notes on another node")
                            self._launch(a, now)
                    elif code != 0 and a.restarts < MAX_RESTARTS and left >= MIN_RUN_SECONDS:
                        a.restarts += 1  # a crashed agent resumes from its own notes
                        self.say(f"{a.name} exited with status {code}; restart {a.restarts}/{MAX_RESTARTS}")
                        self._launch(a, now)
                    continue
                n_subs = sum(s["agent"] == a.name for s in self.submissions)
                reason = agent_over(b, a.seconds(now), n_subs, usage(a.workspace))
                if reason:
                    self._stop(a, reason)
            if now - last_refresh >= 3.0 or not self.handles:
                self._refresh(admin)
                last_refresh = now
                total_usd = sum(usage(a.workspace)["dollars"] for a in st.agents)
                elapsed = sum(e - s for s, e in st.sessions[:-1]) + now - st.sessions[-1][0]
                reason = campaign_over(b, len(self.submissions), total_usd, elapsed)
                if reason:
                    self.stop_reason = reason
                    for a in st.agents:
                        if a.name in self.handles:
                            self._stop(a, reason)
                st.save()

    def _refresh(self, admin: Client, final: bool = False) -> None:
        """Pull submissions from the server, write the timeline, update the display."""
        st = self.state
        names = {a.name for a in st.agents}
        try:
            self.submissions = all_submissions(admin, st.testbed, names)
        except (ApiError, OSError) as e:
            self.say(f"server not answering: {e}")
            return
        write_timeline(st, build_timeline(st, self.submissions))
        now = time.time()
        best: dict[str, dict[str, Any]] = {}
        for s in self.submissions:
            if s["improved"] or s["agent"] not in best:
                best[s["agent"]] = s
        agents = [
            {
                "name": a.name,
                "direction": a.direction["name"],
                "status": a.status,
                "seconds": a.seconds(now),
                "budget": self.budgets.agent_seconds,
                "submissions": sum(s["agent"] == a.name for s in self.submissions),
                "pgr": best[a.name]["released_pgr"] if a.name in best else None,
                "method": best[a.name]["method"] if a.name in best else None,
            }
            for a in st.agents
        ]
        pgrs = [x["pgr"] for x in agents if x["pgr"] is not None]
        elapsed = sum(e - s for s, e in st.sessions[:-1]) + now - st.sessions[-1][0]
        remaining = max(
            (self.budgets.agent_seconds - a.seconds(now) for a in st.agents if a.status == "running"),
            default=0.0,
        )
        self.progress.update(
            {
                "elapsed": elapsed,
                "remaining": remaining,
                "submissions": len(self.submissions),
                "best_pgr": max(pgrs) if pgrs else None,
                "agents": agents,
                "final": final,
            }
        )

    def close(self) -> None:
        """Stop the local server; give back what the launcher holds (its block of uids) and agent locks."""
        for lock in self.locks.values():
            lock.close()
        self.locks.clear()
        close_launcher(self.launcher)
        self.connection.close()


def _is_agent_process(pid: int) -> bool:
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"run_agent" in cmd or b"_enter.py" in cmd or b"bwrap" in cmd


def summary_line(state: CampaignState) -> str:
    """One line: best private PGR against the best shipped baseline, submissions, agent-hours."""
    from aar.campaign.report_data import read_report

    r = read_report(state.dir)
    best = "-" if r.best_private_pgr is None else f"{r.best_private_pgr:.3f}"
    base = "-" if r.best_baseline_private_pgr is None else f"{r.best_baseline_private_pgr:.3f}"
    return (
        f"best private PGR {best} ({r.best_method}) vs best shipped baseline {r.best_baseline} {base}; "
        f"{r.submissions} submissions, {r.agent_hours:.2f} agent-hours, ${r.cost_usd:.2f}"
    )


def run_campaign(
    opts: CampaignOptions | None = None,
    resume: str | None = None,
    report: bool = True,
    launcher: Launcher | None = None,
    progress: Progress | None = None,
    say: Callable[[str], None] = print,
    audit: bool = True,
) -> CampaignState:
    """Create (or resume) a campaign, run it to the end, audit its entries (unless ``audit`` is off)
    and write its report."""
    if resume:
        state, server = CampaignState.load(resume), None
        say(f"resuming {state.dir}: {state.agent_seconds() / 3600:.3f} agent-hours so far")
    else:
        state, server = create(opts or CampaignOptions(), say)
    camp = Campaign(state, launcher, server, progress, say)
    try:
        camp.run()
        if report:
            from aar.campaign.report import write_report

            with camp._connect() as admin:
                if audit:  # re-run the entries' code in fresh sandboxes (aar.audit); never fails the campaign
                    from aar.audit.core import audit_campaign

                    try:
                        audit_campaign(state.dir, admin=admin, say=say, write_report=False)
                    except Exception as e:  # the report then says the audit is missing
                        say(f"audit failed: {type(e).__name__}: {e}")
                out = write_report(state, admin)
            say(f"report: {out}")
            say(summary_line(state))
    finally:
        camp.close()
    return state
