"""CLI commands: demo."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from abasto.cli.app import app
from abasto.settings import load_settings

# the demo pipeline (every layer: MLflow, DuckDB, pyiceberg…) is imported inside the command:
# `abasto --help` must not pay for it.

__all__ = ["app"]


@app.command()
def demo(
    scale: Annotated[float, typer.Option(min=0.05, help="Multiply the number of stores (and events).")] = 1.0,
    seed: Annotated[int | None, typer.Option(help="World seed (default: settings world.seed).")] = None,
    days: Annotated[int | None, typer.Option(min=7, help="Days of sales history.")] = None,
    speed: Annotated[
        float | None, typer.Option(help="Replay the live day at N× real time (default: as fast as possible).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object with the figures.")] = False,
    html: Annotated[Path | None, typer.Option(help="Where to write the HTML report.")] = None,
) -> None:
    """Run gaseosas SA's stockout early-warning loop end to end on the embedded services.

    Starts the services, generates the world, loads history, captures changes into the lake,
    curates Iceberg tables, trains and approves the model, streams a live day from the devices,
    raises and routes alerts, and scores them against the ground truth.
    """
    from abasto.demo.pipeline import DemoOptions, run_demo  # noqa: PLC0415
    from abasto.demo.report import render_terminal, write_html  # noqa: PLC0415

    world: dict[str, object] = {}
    if seed is not None:
        world["seed"] = seed
    if days is not None:
        world["history_days"] = days
    settings = load_settings(**({"world": world} if world else {}))
    console = Console(stderr=True) if as_json else Console()
    result = run_demo(settings, DemoOptions(scale=scale, speed=speed), console)
    report_dir = settings.reports_dir
    html_path = write_html(result, html or report_dir / "demo.html")
    result.artefacts["HTML report"] = str(html_path)
    json_path = report_dir / "demo.json"
    json_path.write_text(json.dumps(result.to_json(), indent=2, default=str), encoding="utf-8")
    result.artefacts["JSON figures"] = str(json_path)
    if as_json:
        sys.stdout.write(json.dumps(result.to_json(), default=str) + "\n")
        return
    render_terminal(result, console)
    console.print(
        f"\nOpen the report: [bold]{html_path}[/]. Services keep running: `abasto status`, "
        '`abasto sql "SELECT * FROM curated.sales_by_hour LIMIT 5"`, `abasto jobs status`, '
        "`abasto api token add me --profile analyst` then `abasto api serve` for SQL over HTTP, "
        "`abasto down` to stop."
    )
