"""The typer application object; command modules register on it."""

from __future__ import annotations

import typer

from abasto import __version__

app = typer.Typer(
    name="abasto",
    help="Stockout early warning for gaseosas SA: embedded services, synthetic world, lake, model, alerts.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root() -> None:
    """Stockout early warning for gaseosas SA. Start with `abasto up`, then `abasto demo`."""


@app.command()
def version() -> None:
    """Print abasto's version."""
    typer.echo(__version__)
