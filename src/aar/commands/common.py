"""What the command modules share: a clear one-line failure, the server's data dir."""

from __future__ import annotations

from pathlib import Path
from typing import NoReturn

import typer


def fail(message: str) -> NoReturn:
    """Print a clear error and exit with status 2."""
    typer.secho(f"error: {message}", err=True, fg="red")
    raise typer.Exit(2)


def data_dir(value: str | None) -> Path:
    """The server data dir: ``value``, else ``$AAR_HOME/server``."""
    from aar.server.config import default_data_dir

    return Path(value) if value else default_data_dir()
