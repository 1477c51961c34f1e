"""CLI commands: sources and change capture.

``abasto load-world``, ``abasto import freshretailnet PATH``, ``abasto cdc full-load|run|status``.
"""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from abasto.bootstrap import Platform
from abasto.cli.app import app
from abasto.settings import load_settings

if TYPE_CHECKING:
    from abasto.cdc import CaptureResult
    from abasto.sources.progress import LoadProgress, LoadResult, ProgressCallback

# the sources, the capture and the world (psycopg, pyarrow) are imported inside the commands:
# `abasto --help` must not pay for them.

__all__ = ["app"]

import_app = typer.Typer(help="Import real datasets into the sources.", no_args_is_help=True)
app.add_typer(import_app, name="import")
cdc_app = typer.Typer(
    help="Change capture (DMS-like): full load and ongoing replication.", no_args_is_help=True
)
app.add_typer(cdc_app, name="cdc")


def _progress_printer(console: Console) -> ProgressCallback:
    last: dict[str, int] = {}

    def show(progress: LoadProgress) -> None:
        if (
            progress.rows_done == progress.rows_total
            or progress.rows_done - last.get(progress.table, 0) >= 500_000
        ):
            last[progress.table] = progress.rows_done
            console.print(
                f"  {progress.table}: {progress.rows_done:,}/{progress.rows_total:,}", highlight=False
            )

    return show


def _result_table(title: str, result: LoadResult) -> Table:
    table = Table(title=title)
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, rows in result.rows.items():
        table.add_row(name, f"{rows:,}")
    table.add_row("[bold]total[/]", f"[bold]{result.total_rows:,}[/]")
    table.caption = f"{result.seconds:.1f} s · {result.rows_per_second:,.0f} rows/s"
    return table


@app.command("load-world")
def load_world_command(
    world_dir: Annotated[
        Path | None, typer.Option(help="Generated world to load (default: settings world_dir).")
    ] = None,
) -> None:
    """Load the generated world's history into the sales database and the behaviour store."""
    from abasto.sources.behavior import load_visit_analyses  # noqa: PLC0415
    from abasto.sources.sales_db import load_world  # noqa: PLC0415
    from abasto.world import World  # noqa: PLC0415
    from abasto.world.views import history_tables  # noqa: PLC0415

    platform = Platform(load_settings())
    console = Console()
    world = World.load(world_dir or platform.settings.world_dir)
    console.print(f"loading history before {world.history_end.isoformat()} into the sales database")
    history = history_tables(world)
    result = load_world(
        platform.sales_dsn, history, until=world.history_end, on_progress=_progress_printer(console)
    )
    console.print(_result_table("sales database", result))
    with platform.document_store() as store:
        docs = load_visit_analyses(store, history["visit_analyses"])
    console.print(f"behaviour store: {docs:,} visit analyses")


@import_app.command("freshretailnet")
def import_freshretailnet_command(
    path: Annotated[Path, typer.Argument(help="Folder with stores.csv and frn50k_dev_hourly_*.parquet.")],
    stores: Annotated[int | None, typer.Option(help="Import only the first N stores of stores.csv.")] = None,
) -> None:
    """Import FreshRetailNet-50K (real hourly sales + stockout flags) into the sales database."""
    from abasto.sources.freshretailnet import ATTRIBUTION, import_freshretailnet  # noqa: PLC0415

    platform = Platform(load_settings())
    console = Console()
    console.print(f"[dim]{ATTRIBUTION}[/]")
    result = import_freshretailnet(
        platform.sales_dsn,
        path,
        stores=stores,
        on_progress=_progress_printer(console),
    )
    console.print(_result_table("FreshRetailNet-50K → sales database", result))


@cdc_app.command("full-load")
def cdc_full_load_command(
    reload: Annotated[
        bool, typer.Option("--reload", help="Drop the slot and load again from a new snapshot.")
    ] = False,
) -> None:
    """Create the replication slot and copy every captured table into the raw zone."""
    from abasto.cdc.lsn import format_lsn  # noqa: PLC0415

    platform = Platform(load_settings())
    settings = platform.settings
    console = Console()
    with platform.cdc() as pipeline:
        result = pipeline.full_load(
            reload=reload,
            on_progress=lambda table, rows: console.print(f"  {table}: {rows:,} rows", highlight=False),
        )
    console.print(
        f"full load at LSN {format_lsn(result.lsn)}: {result.rows:,} rows in {len(result.files)} files, "
        f"{result.seconds:.1f} s ({result.rows_per_second:,.0f} rows/s) → {settings.raw_uri}"
    )


@cdc_app.command("run")
def cdc_run_command(
    once: Annotated[bool, typer.Option("--once", help="Capture what is pending, then exit.")] = False,
    max_changes: Annotated[int, typer.Option(help="Changes per batch (whole transactions).")] = 20_000,
    poll_interval: Annotated[float, typer.Option(help="Seconds between polls when idle.")] = 1.0,
) -> None:
    """Capture changes into the raw zone (until Ctrl-C, or once with --once)."""
    from abasto.cdc.lsn import format_lsn  # noqa: PLC0415

    platform = Platform(load_settings())
    settings = platform.settings
    console = Console()

    def report(result: CaptureResult) -> None:
        if result.changes:
            console.print(
                f"{result.changes:,} changes in {result.transactions:,} transactions "
                f"→ {len(result.files)} files, confirmed {format_lsn(result.last_lsn or 0)} "
                f"({result.changes_per_second:,.0f} changes/s)",
                highlight=False,
            )

    with platform.cdc() as pipeline:
        if once:
            total = 0
            while True:
                result = pipeline.capture_once(max_changes)
                report(result)
                total += result.changes
                if result.drained:
                    break
            console.print(f"captured {total:,} changes")
            return
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        console.print(f"capturing into {settings.raw_uri} (Ctrl-C stops)")
        pipeline.run(stop, poll_interval, max_changes=max_changes, on_batch=report)


@cdc_app.command("status")
def cdc_status_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show the slot's position, its lag and what the raw zone holds."""
    with Platform(load_settings()).cdc() as pipeline:
        status = pipeline.status()
    if as_json:
        typer.echo(json.dumps(status.as_dict(), indent=2))
        return
    table = Table(title=f"change capture · slot {status.slot}", show_header=False)
    table.add_column("", style="bold")
    table.add_column("")
    for key, value in status.as_dict().items():
        table.add_row(
            key.replace("_", " "),
            "—"
            if value is None
            else f"{value:,}"
            if isinstance(value, int) and not isinstance(value, bool)
            else str(value),
        )
    Console().print(table)


def _cell(value: object) -> str:
    if value is None:
        return "—"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)
