"""The `se-flow` command (placeholder until the CLI issue lands)."""

from __future__ import annotations

import typer

app = typer.Typer(help="se-flow: the Supported Employment workflow engine.")


@app.command()
def version() -> None:
    """Print the se-flow version."""
    from . import __version__

    typer.echo(__version__)


def main() -> None:
    app()
