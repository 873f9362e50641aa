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


if __name__ == "__main__":
    app()
