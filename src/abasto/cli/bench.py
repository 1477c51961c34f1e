"""CLI commands: bench."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from abasto.cli.app import app

__all__ = ["app"]


@app.command()
def bench(
    suites: Annotated[list[str] | None, typer.Argument(help="Suites to run (default: all).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    quick: Annotated[bool, typer.Option(help="Smaller inputs, fewer repeats (smoke run).")] = False,
) -> None:
    """Run benchmarks; each figure is printed beside its limit measured in the same run."""
    from abasto.benchmarks.runner import as_json as to_json  # noqa: PLC0415
    from abasto.benchmarks.runner import print_table, run_suites  # noqa: PLC0415

    figures = run_suites(suites, quick=quick)
    if as_json:
        typer.echo(json.dumps(to_json(figures)))
    else:
        print_table(figures)
