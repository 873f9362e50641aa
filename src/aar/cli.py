"""The `aar` command line: thin commands over the packages.

Heavy imports (torch, the server) happen inside each command, so `aar --help` stays fast.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import typer

from aar.agents.experiments import EXPERIMENT_TIMEOUT_S
from aar.commands.common import data_dir as _data_dir
from aar.commands.common import fail as _fail
from aar.commands.server import server_app
from aar.commands.testbed import testbed_app

if TYPE_CHECKING:
    from rich.progress import Progress

    from aar.server.config import Settings

app = typer.Typer(
    help="aar: automated alignment research on weak-to-strong supervision.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.command()
def version() -> None:
    """Print the aar version."""
    from aar import __version__

    typer.echo(__version__)


def _progress_printer() -> tuple[Progress, Callable[[str, int, int], None]]:
    """A rich progress bar callback: (task, done, total) -> None, plus the Progress to stop."""
    from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

    bar = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                   TimeRemainingColumn(), transient=True)
    tasks: dict[str, TaskID] = {}

    def on_progress(task: str, done: int, total: int) -> None:
        key = task.split(" (")[0]
        if key not in tasks:
            tasks[key] = bar.add_task(task, total=total)
        bar.update(tasks[key], completed=done, description=task)

    return bar, on_progress


@app.command()
def testbeds() -> None:
    """List the built-in testbeds with their split sizes and cache status."""
    from aar.w2s.cache import aar_home
    from aar.w2s.testbeds.registry import TESTBEDS, is_built

    typer.echo(f"cache: {aar_home()}")
    for name, spec in TESTBEDS.items():
        sizes = ", ".join(f"{k} {v}" for k, v in spec.sizes.items())
        status = "built" if is_built(name) else "not built"
        typer.echo(f"{name:<10} {status:<10} {sizes}\n           {spec.description}")


@app.command()
def build(
    testbed: list[str] = typer.Option(["math", "code", "chat"], help="Testbeds to build (repeatable)."),
    force: bool = typer.Option(False, help="Rebuild even if cached (same secret test/final draw)."),
    new_draw: bool = typer.Option(False, help="Rebuild with a new secret salt: new test and final splits."),
) -> None:
    """Generate the corpus, pretrain the strong and weak LMs, and make the splits (cached)."""
    from aar.w2s.cache import aar_home
    from aar.w2s.testbeds.build import build_testbed
    from aar.w2s.testbeds.registry import UnknownTestbedError, get_spec

    try:
        specs = [get_spec(t) for t in testbed]
    except UnknownTestbedError as e:
        _fail(str(e))
    bar, on_progress = _progress_printer()
    with bar:
        for spec in specs:
            path = build_testbed(spec, aar_home(), on_progress, force=force, new_draw=new_draw)
            bar.console.print(f"{spec.name}: {path}")


@app.command()
def baseline(
    testbed: str = typer.Option("math", help="Testbed name (see `aar testbeds`)."),
    methods: str = typer.Option("all", help="Comma-separated method names, or 'all'."),
    seeds: int = typer.Option(5, min=1, max=20, help="Number of seeds (0..N-1)."),
    out: str | None = typer.Option(None, help="Write the JSON result here."),
    teacher_on_test: bool = typer.Option(
        False, help="Protocol: also give methods the teacher's outputs on dev/test (off in the original)."
    ),
) -> None:
    """Run shipped methods (or .py method files) over seeds; print weak, ceiling, transfer and PGR with
    95% intervals and a paired comparison with vanilla. Method files run in a child process, in a
    bubblewrap sandbox when one works (see the README)."""
    import json
    from pathlib import Path

    from aar.fileio import write_json_atomic
    from aar.w2s.baseline import render_table, run_baseline
    from aar.w2s.cache import CacheError
    from aar.w2s.methods.base import MethodError
    from aar.w2s.metrics import GapError
    from aar.w2s.testbeds.registry import UnknownTestbedError, load_testbed

    bar, on_progress = _progress_printer()
    try:
        with bar:
            tb = load_testbed(testbed, progress=on_progress)
            if teacher_on_test:
                from aar.w2s.public import with_teacher_on_test

                tb = with_teacher_on_test(tb)
            task = bar.add_task("baseline", total=None)
            result = run_baseline(
                tb, [m.strip() for m in methods.split(",") if m.strip()], list(range(seeds)),
                on_progress=lambda msg: bar.update(task, description=msg),
            )
    except (UnknownTestbedError, MethodError, CacheError, GapError, ValueError) as e:
        _fail(str(e))
    typer.echo(render_table(result))
    if out:
        write_json_atomic(Path(out), result)
        typer.echo(f"wrote {out}")
    else:
        summary = {k: result[k]["mean"] for k in ("weak_acc", "ceiling_acc")}
        typer.echo(json.dumps(summary))


app.add_typer(server_app, name="server")
app.add_typer(testbed_app, name="testbed")


def _server_settings(**values: Any) -> Settings:
    """Server settings from the command's options, or a one-line error (no traceback, no secrets)."""
    from pydantic import ValidationError

    from aar.server.config import Settings, settings_problem

    try:
        return Settings(**values)
    except ValidationError as e:
        _fail(f"invalid server settings: {settings_problem(e)}")


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="TCP host to listen on."),
    port: int = typer.Option(8765, help="TCP port."),
    uds: str | None = typer.Option(None, help="Listen on this Unix domain socket instead of TCP."),
    data_dir: str | None = typer.Option(None, help="Server data dir (default $AAR_HOME/server)."),
    db_url: str | None = typer.Option(None, help="SQLAlchemy URL (default: SQLite in the data dir)."),
    admin_token: str | None = typer.Option(None, envvar="AAR_ADMIN_TOKEN", help="Admin token."),
    workers: int = typer.Option(1, help="uvicorn worker processes."),
    budget_per_hour: int = typer.Option(60, help="Default submissions per agent per hour (-1: unlimited)."),
    budget_total: int = typer.Option(1000, help="Default submissions per agent in total (-1: unlimited)."),
    ladder: str = typer.Option("paired", help="Ladder rule: paired (default) or fixed (fixed margin)."),
    ladder_margin: float | None = typer.Option(
        None, help="Margin of the fixed Ladder (default 1/sqrt(n_public))."
    ),
) -> None:
    """Start the scoring server (HTTP over TCP or a Unix domain socket)."""
    import os

    import uvicorn

    from aar.server.db import migrate
    from aar.server.ops import admin_token as resolve_token
    from aar.server.vault import halves_key

    if ladder not in ("paired", "fixed"):
        _fail(f"--ladder must be paired or fixed, not {ladder!r}")
    ddir = _data_dir(data_dir)
    token, generated = resolve_token(ddir, admin_token)
    if generated:
        typer.echo(f"admin token (shown once, stored in {ddir / 'admin_token'}): {token}")
    settings = _server_settings(
        data_dir=ddir,
        db_url=db_url,
        admin_token=token,
        budget_per_hour=None if budget_per_hour < 0 else budget_per_hour,
        budget_total=None if budget_total < 0 else budget_total,
        ladder=ladder,
        ladder_margin=ladder_margin,
        auto_migrate=False,
    )
    migrate(settings.database_url())
    halves_key(ddir)  # the halves secret exists before any worker starts
    listen = {"uds": uds} if uds else {"host": host, "port": port}
    if workers > 1:
        from aar.server.app import PARENT_PID_ENV

        os.environ.update(settings.to_env())
        os.environ[PARENT_PID_ENV] = str(os.getpid())  # workers end when this process does
        uvicorn.run(
            "aar.server.app:app_from_env", factory=True, workers=workers, log_level="warning", **listen
        )
    else:
        from aar.server.app import create_app

        uvicorn.run(create_app(settings), log_level="warning", **listen)


@app.command()
def campaign(
    testbed: str = typer.Option("math", help="Testbed name (see `aar testbeds`)."),
    agents: int = typer.Option(9, min=1, max=64, help="Number of automated researchers."),
    minutes: float = typer.Option(
        10.0, min=0.1, help="Wall-clock budget per agent (they run in parallel; set-up adds 2-5 minutes)."
    ),
    dir: str | None = typer.Option(None, "--dir", help="Campaign directory (default ./campaigns/<time>)."),
    resume: str | None = typer.Option(None, help="Continue the campaign in this directory."),
    server: str | None = typer.Option(None, help="Attach to this server (http://host:port or unix:/path)."),
    admin_token: str | None = typer.Option(None, envvar="AAR_ADMIN_TOKEN", help="Admin token of --server."),
    same_direction: str | None = typer.Option(
        None, help="Give every agent this direction (the identical-direction ablation)."
    ),
    directions: str | None = typer.Option(None, help="Add starting directions from a JSON or text file."),
    submissions: int = typer.Option(24, min=1, help="Submissions per agent."),
    total_submissions: int | None = typer.Option(None, help="Submissions for the whole campaign."),
    total_minutes: float | None = typer.Option(None, help="Wall clock for the campaign (all sessions)."),
    agent_tokens: int | None = typer.Option(
        None, "--agent-tokens", "--max-tokens-per-agent", help="Token budget per agent (LLM backends)."
    ),
    agent_dollars: float | None = typer.Option(
        None, "--agent-dollars", "--max-dollars-per-agent", help="Dollar budget per agent (LLM backends)."
    ),
    total_dollars: float | None = typer.Option(
        None, "--total-dollars", "--max-dollars", help="Dollar budget for the campaign (LLM backends)."
    ),
    seed: int = typer.Option(0, help="Campaign seed (each agent's researcher seed derives from it)."),
    backend: str = typer.Option(
        "offline", help="Agent backend: offline (built-in researcher), anthropic or openai (LLM researchers)."
    ),
    model: str | None = typer.Option(None, help="LLM backends: model name (e.g. claude-sonnet-4-5)."),
    base_url: str | None = typer.Option(
        None, help="LLM backends: API base URL (an OpenAI-compatible server: vLLM, llama.cpp, Ollama)."
    ),
    prices: str | None = typer.Option(None, help="LLM backends: price table JSON (default: shipped table)."),
    unsafe_no_sandbox: bool = typer.Option(
        False, "--unsafe-no-sandbox", help="Run agents WITHOUT bubblewrap isolation."
    ),
    experiment_timeout: float = typer.Option(
        EXPERIMENT_TIMEOUT_S, min=5.0,
        help="Seconds one experiment may run before its process group is killed.",
    ),
    researcher: str = typer.Option(
        "offline",
        help="offline (the built-in researcher), or a control with the same budget: random (random search "
        "over the same method space) or tuned (the shipped baselines tuned on the public figure).",
    ),
    report: bool = typer.Option(True, help="Write the report at the end."),
    audit: bool = typer.Option(True, help="Audit the entries at the end (aar audit DIR)."),
    ray: str | None = typer.Option(
        None, "--ray", help="Run the agents on this Ray cluster's nodes (auto: the local cluster; or an "
        "address such as 10.0.0.1:6379); needs --db-url postgresql://... (pip install 'aar[ray]')."
    ),
    agent_cpus: float = typer.Option(1.0, help="With --ray: CPUs each agent requests on its node."),
    experiment_gpus: float | None = typer.Option(
        None, help="With --ray: GPUs each agent requests for its experiments (default: 1 for a Hugging "
        "Face testbed when the cluster has GPUs, else 0)."
    ),
    db_url: str | None = typer.Option(
        None, help="The campaign server's database, e.g. postgresql://USER@HOST/DB (default: SQLite)."
    ),
) -> None:
    """Run automated researchers in parallel on a testbed, scored by a server; resumable; reported."""
    from aar.campaign.orchestrator import CampaignOptions, run_campaign
    from aar.sandbox import SandboxUnavailable

    opts = CampaignOptions(
        testbed=testbed, agents=agents, minutes=minutes, dir=dir, server=server, admin_token=admin_token,
        same_direction=same_direction, directions_file=directions, submissions=submissions,
        total_submissions=total_submissions, agent_tokens=agent_tokens, agent_dollars=agent_dollars,
        total_dollars=total_dollars, total_minutes=total_minutes, seed=seed, backend=backend,
        unsafe_no_sandbox=unsafe_no_sandbox, experiment_timeout_s=experiment_timeout,
        researcher_kind=researcher, ray=ray, agent_cpus=agent_cpus, experiment_gpus=experiment_gpus,
        db_url=db_url,
    )
    if researcher not in ("offline", "random", "tuned"):
        _fail(f"unknown researcher {researcher!r}; choose offline, random or tuned")
    if researcher != "offline" and backend != "offline":
        _fail("control researchers (random, tuned) run without an LLM: use them with --backend offline")
    if backend != "offline" and not resume:  # LLM researchers: keys come from the environment, checked now
        from aar.agents.llm.campaign import check_options

        opts.model, opts.base_url, opts.llm = model, base_url, ({"prices_file": prices} if prices else {})
        try:
            check_options(backend, model, base_url, agent_dollars, total_dollars, opts.llm)
        except ValueError as e:
            _fail(str(e))
    if ray and not resume:  # refused before anything starts (a Ray campaign needs a server on PostgreSQL)
        from aar.campaign.ray_launcher import check_options as check_ray

        try:
            check_ray(opts)
        except ValueError as e:
            _fail(str(e))
    from aar.campaign.orchestrator import default_dir
    from aar.web.standalone import start_live

    if not resume and opts.dir is None:
        opts.dir = str(default_dir().absolute())  # known now: the dashboard watches it from the start
    live = start_live(str(resume or opts.dir), None if resume else server)
    try:
        state = run_campaign(None if resume else opts, resume=resume, report=report, audit=audit)
        typer.echo(f"dashboard of this campaign, read-only: aar dashboard {state.dir}")
    except (SandboxUnavailable, FileExistsError, FileNotFoundError, ValueError) as e:
        _fail(str(e))
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    finally:
        live.stop()


@app.command("mcp")
def mcp_cmd(
    campaign_dir: str | None = typer.Option(None, "--campaign", help="Act as an agent of this campaign."),
    agent: str | None = typer.Option(None, help="With --campaign: the agent's name or index."),
    token: str | None = typer.Option(None, envvar="AAR_TOKEN", help="The agent's server token (credential)."),
    workspace: str | None = typer.Option(None, help="Without --campaign: the agent's workspace folder."),
    view: str | None = typer.Option(None, help="Without --campaign: the testbed's public view folder."),
    testbed: str | None = typer.Option(None, help="Without --campaign: the testbed id on the server."),
    server: str | None = typer.Option(
        None, envvar="AAR_SERVER_URL", help="Without --campaign: server, http://host:port or unix:/path."
    ),
    transport: str = typer.Option("stdio", help="stdio (Claude Code, most clients) or http (streamable)."),
    host: str = typer.Option("127.0.0.1", help="HTTP transport: address to listen on."),
    port: int = typer.Option(8770, help="HTTP transport: port (endpoint http://HOST:PORT/mcp)."),
    force: bool = typer.Option(
        False, help="With --campaign: act as the agent even while its own researcher (or another MCP) runs."
    ),
) -> None:
    """Serve an agent's research tools over MCP, so Claude Code or any MCP client can be the researcher."""
    import os
    from pathlib import Path

    from aar.agents.mcp_server import McpAgent, run

    try:
        if campaign_dir:
            if not agent:
                _fail("--campaign needs --agent")
            who = McpAgent.from_campaign(campaign_dir, agent, token, force=force)
        else:
            sock = os.environ.get("AAR_SERVER_SOCKET")
            srv = server or (f"unix:{sock}" if sock else None)
            if not (workspace and view and testbed and srv):
                _fail("give --campaign DIR --agent NAME, or --workspace, --view, --testbed and --server")
            who = McpAgent("agent", token or "", testbed, Path(view), Path(workspace), srv)
        run(who, transport, host, port, force=force)
    except (ValueError, FileNotFoundError) as e:
        _fail(str(e))


@app.command("report")
def report_cmd(dirs: list[str] = typer.Argument(..., help="Campaign directories.")) -> None:
    """Write DIR/report.md, report.json and the PGR-vs-agent-hours PNG; compare several campaigns."""
    from aar.campaign.report import report_dir
    from aar.campaign.report_data import read_report

    for d in dirs:
        try:
            path = report_dir(d)
        except FileNotFoundError as e:
            _fail(str(e))
        r = read_report(d)
        how = f"same direction {r.same_direction}" if r.same_direction else "diverse directions"
        typer.echo(
            f"{path}: {r.testbed}, {r.n_agents} agents ({how}): best private PGR "
            f"{r.best_private_pgr} vs best baseline {r.best_baseline} "
            f"{r.best_baseline_private_pgr}; "
            f"{r.submissions} submissions, {r.agent_hours} agent-hours"
        )


@app.command("dashboard")
def dashboard_cmd(
    dir: str = typer.Argument(..., help="Campaign directory."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8780, help="TCP port (0: any free port)."),
    quiet: bool = typer.Option(False, help="Print nothing (used when aar campaign starts it)."),
    wait: bool = typer.Option(False, help="Serve a waiting page until the campaign in DIR is set up."),
) -> None:
    """Open a campaign's data in the web dashboard, read-only (pages under /dashboard/)."""
    import uvicorn

    from aar.web.standalone import PendingDashboard, dashboard_app, free_port, login_hint

    try:
        web = PendingDashboard(dir) if wait else dashboard_app(dir)
        chosen = free_port(host, port)
    except (FileNotFoundError, ValueError, OSError) as e:
        _fail(str(e))
    if port and chosen != port:
        _fail(f"port {port} on {host} is in use; pass --port 0 for any free port")
    port = chosen
    if not quiet:
        typer.echo(f"dashboard: http://{host}:{port}/dashboard/ (read-only; Ctrl-C to stop)")
        typer.echo(login_hint(dir))
    uvicorn.run(web, host=host, port=port, log_level="warning", lifespan="off")


@app.command("audit")
def audit_cmd(
    dir: str | None = typer.Argument(None, help="Campaign directory (or use --server)."),
    server: str | None = typer.Option(None, help="Audit a bare server: http://host:port or unix:/path."),
    admin_token: str | None = typer.Option(None, envvar="AAR_ADMIN_TOKEN", help="Admin token of --server."),
    testbed: str | None = typer.Option(None, help="With --server: the testbed to audit (a built-in name)."),
    out: str | None = typer.Option(None, help="With --server: folder for views, code, audit files."),
    view: str | None = typer.Option(None, help="With --server: the agents' public view."),
    top: int = typer.Option(5, min=0, help="Also audit the top K submissions by private PGR."),
    seeds: int = typer.Option(3, min=1, max=20, help="Hidden seeds each audited method is re-run at."),
    jobs: int = typer.Option(0, min=0, help="Sandboxed runs in parallel (0: one per CPU core)."),
    timeout: float = typer.Option(600.0, min=10.0, help="Seconds one audit run may take."),
    generalise: str | None = typer.Option(
        None, "--generalise", help="Re-run the top audited methods on these built-in testbeds (comma list)."
    ),
    force: bool = typer.Option(False, help="Audit again what this audit configuration already audited."),
    rejudge: bool = typer.Option(
        False, help="Only apply the current verdict rules to the stored checks (no re-runs; campaigns)."
    ),
    unsafe_no_sandbox: bool = typer.Option(
        False, "--unsafe-no-sandbox", help="Run the audit's re-runs WITHOUT bubblewrap isolation."
    ),
) -> None:
    """Re-run the code behind the entries, the top submissions and flagged ones in fresh sandboxes
    (reproduction, hidden seeds, strong-model and teacher ablations, static scan); store verdicts."""
    from pathlib import Path

    from aar.audit.config import AuditConfig
    from aar.audit.core import audit_campaign, audit_testbed
    from aar.sandbox import SandboxUnavailable

    cfg = AuditConfig(seeds=seeds, top=top, jobs=jobs, timeout_s=timeout, allow_unsafe=unsafe_no_sandbox)
    gen = [g.strip() for g in generalise.split(",") if g.strip()] if generalise else None
    try:
        if server:
            if not (admin_token and testbed):
                _fail("--server needs --admin-token (or AAR_ADMIN_TOKEN) and --testbed")
            from aar.campaign.server import attached_admin

            folder = Path(out or Path("audits") / testbed)
            with attached_admin(server, admin_token) as admin:
                audits = audit_testbed(admin, testbed, folder, cfg, agent_view=Path(view) if view else None,
                                       force=force)
            if gen:
                from aar.audit.generalise import generalise as run_generalise

                run_generalise(audits, gen, folder, cfg)
        elif dir:
            audits = audit_campaign(dir, cfg, force=force, generalise=gen, rejudge_only=rejudge)
        else:
            _fail("give a campaign directory or --server")
    except (SandboxUnavailable, FileNotFoundError, ValueError) as e:
        _fail(str(e))
    counts: dict[str, int] = {}
    for a in audits:
        counts[a["verdict"]] = counts.get(a["verdict"], 0) + 1
    summary = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
    typer.echo(f"audited {len(audits)} submissions: {summary}")


@app.command("compare")
def compare_cmd(
    dir: str = typer.Argument(..., help="The campaign whose headline is compared (audited)."),
    control: list[str] = typer.Option(
        ..., "--control", help="An audited control campaign (aar campaign --researcher random|tuned)."
    ),
) -> None:
    """Paired test, on the final split, of a campaign's headline against control campaigns' headlines;
    writes DIR/controls.json and adds a Controls section to DIR's report."""
    from aar.audit.compare import CompareError, compare_campaigns
    from aar.campaign.report import report_dir

    try:
        out = compare_campaigns(dir, control)
        report_dir(dir)
    except (CompareError, FileNotFoundError) as e:
        _fail(str(e))
    m = out["main"]["final_pgr"]
    typer.echo(f"{dir}: headline final PGR {m['mean']:.3f} [{m['ci_low']:.3f}, {m['ci_high']:.3f}]")
    for c in out["controls"]:
        d, f = c["main_minus_control"], c["final_pgr"]
        typer.echo(
            f"  vs {c['researcher']} control {c['dir']}: its headline {f['mean']:.3f}; difference "
            f"{d['diff']:+.3f} [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}], one-sided p {d['p_greater']:.3g}"
        )


if __name__ == "__main__":
    app()
