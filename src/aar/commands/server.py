"""``aar server ...``: scoring-server administration on a local data dir."""

from __future__ import annotations

import typer

from aar.commands.common import data_dir as _data_dir
from aar.commands.common import fail as _fail

server_app = typer.Typer(help="Scoring server administration on a local data dir.", no_args_is_help=True)


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
    from aar.server.errors import ApiError

    url = db_url or f"sqlite:///{_data_dir(data_dir) / 'server.db'}"
    migrate(url)
    try:
        _, token = ops.create_agent(Database(url), name, budget_per_hour, budget_total)
    except ApiError as e:  # reserved, malformed or existing name
        _fail(e.message)
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
