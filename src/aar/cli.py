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
