"""The `aar` command line: thin commands over the packages.

Heavy imports (torch, the server) happen inside each command, so `aar --help` stays fast.
"""

from __future__ import annotations

import typer

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


def _fail(message: str) -> None:
    """Print a clear error and exit with status 2."""
    typer.secho(f"error: {message}", err=True, fg="red")
    raise typer.Exit(2)


def _progress_printer():
    """A rich progress bar callback: (task, done, total) -> None, plus the Progress to stop."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                   TimeRemainingColumn(), transient=True)
    tasks: dict[str, int] = {}

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
    force: bool = typer.Option(False, help="Rebuild even if cached."),
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
            path = build_testbed(spec, aar_home(), on_progress, force=force)
            bar.console.print(f"{spec.name}: {path}")


@app.command()
def baseline(
    testbed: str = typer.Option("math", help="Testbed name (see `aar testbeds`)."),
    methods: str = typer.Option("all", help="Comma-separated method names, or 'all'."),
    seeds: int = typer.Option(3, min=1, max=20, help="Number of seeds (0..N-1)."),
    out: str | None = typer.Option(None, help="Write the JSON result here."),
) -> None:
    """Run shipped methods over seeds; print weak, ceiling, transfer and PGR with 95% CIs."""
    import json
    from pathlib import Path

    from aar.w2s.baseline import render_table, run_baseline
    from aar.w2s.cache import CacheError
    from aar.w2s.data import write_json_atomic
    from aar.w2s.methods.base import MethodError
    from aar.w2s.metrics import GapError
    from aar.w2s.testbeds.registry import UnknownTestbedError, load_testbed

    bar, on_progress = _progress_printer()
    try:
        with bar:
            tb = load_testbed(testbed, progress=on_progress)
            task = bar.add_task("baseline", total=None)
            result = run_baseline(
                tb, [m.strip() for m in methods.split(",") if m.strip()], list(range(seeds)),
                on_progress=lambda msg: bar.update(task, description=msg),
            )
    except (UnknownTestbedError, MethodError, CacheError, GapError) as e:
        _fail(str(e))
    typer.echo(render_table(result))
    if out:
        write_json_atomic(Path(out), result)
        typer.echo(f"wrote {out}")
    else:
        summary = {k: result[k]["mean"] for k in ("weak_acc", "ceiling_acc")}
        typer.echo(json.dumps(summary))


server_app = typer.Typer(help="Scoring server administration on a local data dir.", no_args_is_help=True)
app.add_typer(server_app, name="server")


def _data_dir(data_dir: str | None):
    from pathlib import Path

    from aar.server.config import default_data_dir

    return Path(data_dir) if data_dir else default_data_dir()


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
    ladder_margin: float | None = typer.Option(None, help="Ladder margin (default 1/sqrt(n_public))."),
) -> None:
    """Start the scoring server (HTTP over TCP or a Unix domain socket)."""
    import os

    import uvicorn

    from aar.server.config import Settings
    from aar.server.db import migrate
    from aar.server.ops import admin_token as resolve_token

    ddir = _data_dir(data_dir)
    token, generated = resolve_token(ddir, admin_token)
    if generated:
        typer.echo(f"admin token (shown once, stored in {ddir / 'admin_token'}): {token}")
    settings = Settings(
        data_dir=ddir,
        db_url=db_url,
        admin_token=token,
        budget_per_hour=None if budget_per_hour < 0 else budget_per_hour,
        budget_total=None if budget_total < 0 else budget_total,
        ladder_margin=ladder_margin,
        auto_migrate=False,
    )
    migrate(settings.database_url())
    listen = {"uds": uds} if uds else {"host": host, "port": port}
    if workers > 1:
        os.environ.update(settings.to_env())
        uvicorn.run(
            "aar.server.app:app_from_env", factory=True, workers=workers, log_level="warning", **listen
        )
    else:
        from aar.server.app import create_app

        uvicorn.run(create_app(settings), log_level="warning", **listen)


@server_app.command("register-testbed")
def register_testbed(
    bundle: str = typer.Argument(..., help="Path to a VaultBundle JSON file."),
    data_dir: str | None = typer.Option(None, help="Server data dir."),
    db_url: str | None = typer.Option(None, help="SQLAlchemy URL of the server database."),
) -> None:
    """Put a testbed's ground truth into the server's vault."""
    from pathlib import Path

    from aar.server.vault import register_bundle
    from aar.w2s.vault import VaultBundle

    row = register_bundle(_data_dir(data_dir), VaultBundle.load(Path(bundle)), db_url)
    typer.echo(f"registered {row.id}: {row.n_test} test examples")


@server_app.command("create-agent")
def create_agent(
    name: str,
    data_dir: str | None = typer.Option(None, help="Server data dir."),
    db_url: str | None = typer.Option(None, help="SQLAlchemy URL of the server database."),
    budget_per_hour: int | None = typer.Option(None, help="Override the hourly budget."),
    budget_total: int | None = typer.Option(None, help="Override the total budget."),
) -> None:
    """Create an agent credential and print its token (shown once)."""
    from aar.server import ops
    from aar.server.db import Database, migrate

    url = db_url or f"sqlite:///{_data_dir(data_dir) / 'server.db'}"
    migrate(url)
    _, token = ops.create_agent(Database(url), name, budget_per_hour, budget_total)
    typer.echo(token)


@server_app.command("revoke-agent")
def revoke_agent(
    name: str,
    data_dir: str | None = typer.Option(None, help="Server data dir."),
    db_url: str | None = typer.Option(None, help="SQLAlchemy URL of the server database."),
) -> None:
    """Revoke an agent's token."""
    from aar.server import ops
    from aar.server.db import Database

    ops.revoke_agent(Database(db_url or f"sqlite:///{_data_dir(data_dir) / 'server.db'}"), name)
    typer.echo(f"revoked {name}")


if __name__ == "__main__":
    app()
