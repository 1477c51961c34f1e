"""CLI commands: lake and SQL (``abasto sql``, ``abasto tables``, ``abasto jobs …``)."""

from __future__ import annotations

import io
import json
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table as RichTable

from abasto.bootstrap import Platform
from abasto.cli.app import app
from abasto.settings import load_settings

if TYPE_CHECKING:
    import pyarrow as pa

    from abasto.lake.jobs import JobRun

# pyarrow, DuckDB, pyiceberg and the lake are imported inside the commands: `abasto --help` must
# not pay for them.

__all__ = ["app"]

jobs_app = typer.Typer(help="Lake jobs (raw → curated merges).", no_args_is_help=True)
app.add_typer(jobs_app, name="jobs")


class OutputFormat(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


@app.command("sql")
def sql_command(
    statement: Annotated[
        str, typer.Argument(help="One read-only statement, e.g. SELECT … FROM curated.skus")
    ],
    output: Annotated[
        OutputFormat, typer.Option("--format", "-f", help="Output format.")
    ] = OutputFormat.table,
    profile: Annotated[str, typer.Option("--as", help="Profile the query runs as.")] = "analyst",
    snapshot: Annotated[
        int | None, typer.Option("--snapshot", help="Time-travel the queried table to this snapshot id.")
    ] = None,
    limit: Annotated[int, typer.Option(help="Rows shown in table format.")] = 50,
) -> None:
    """Query the lake with SQL (governed, audited, read-only)."""
    with Platform(load_settings()).sql() as engine:
        result = engine.query(statement, principal=profile, snapshot_id=snapshot)
    if output is OutputFormat.json:
        typer.echo(json.dumps(result.to_pylist(), default=str, ensure_ascii=False, indent=1))
    elif output is OutputFormat.csv:
        import pyarrow.csv as pacsv  # noqa: PLC0415

        buffer = io.BytesIO()
        pacsv.write_csv(result, buffer)
        typer.echo(buffer.getvalue().decode(), nl=False)
    else:
        _print_table(result, limit)


@app.command("tables")
def tables_command() -> None:
    """List the curated tables with their rows, current snapshot and owner."""
    from abasto.catalog import CURATED, list_tables  # noqa: PLC0415

    infos = list_tables(Platform(load_settings()).catalog, CURATED)
    if not infos:
        typer.echo("no curated tables yet: run `abasto jobs run`")
        return
    rows = [
        [
            info.identifier,
            str(info.rows),
            str(info.snapshot_id or "-"),
            info.updated_at.strftime("%Y-%m-%d %H:%M:%S") if info.updated_at else "-",
            info.owner,
            info.classification,
        ]
        for info in infos
    ]
    Console().print(_rich_table(["table", "rows", "snapshot", "updated (UTC)", "owner", "class"], rows))


@jobs_app.command("run")
def jobs_run(
    table: Annotated[str | None, typer.Argument(help="Curated table (default: all).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the recorded runs as JSON.")] = False,
) -> None:
    """Merge pending raw files (change capture, device events) into the curated Iceberg tables
    (recorded as manual runs)."""
    from abasto.lake.jobs import JobRunner  # noqa: PLC0415

    platform = Platform(load_settings())
    runner = JobRunner(platform.settings, catalog=platform.catalog)
    _print_runs(runner.run_all([table] if table else None), as_json=as_json)


@jobs_app.command("backfill")
def jobs_backfill(
    table: Annotated[str, typer.Argument(help="Curated table.")],
    date_from: Annotated[
        datetime | None, typer.Option("--from", formats=["%Y-%m-%d"], help="First commit date (UTC).")
    ] = None,
    date_to: Annotated[
        datetime | None, typer.Option("--to", formats=["%Y-%m-%d"], help="Last commit date (UTC).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the recorded run as JSON.")] = False,
) -> None:
    """Re-discover the raw files of TABLE and apply the pending ones dated in the range (idempotent;
    commit dates of change files, `date=` partitions of device events)."""
    from abasto.lake.jobs import JobRunner  # noqa: PLC0415

    platform = Platform(load_settings())
    runner = JobRunner(platform.settings, catalog=platform.catalog)
    run = runner.backfill(
        table,
        date_from=date_from.date() if date_from else None,
        date_to=date_to.date() if date_to else None,
    )
    _print_runs([run], as_json=as_json)


@jobs_app.command("status")
def jobs_status(
    table: Annotated[str | None, typer.Argument(help="Curated table (default: all).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
    runs: Annotated[int, typer.Option("--runs", help="Recent runs listed (with a TABLE).")] = 10,
) -> None:
    """Pending raw files and the last job runs, per curated table."""
    from abasto.lake.jobs import JobRunner  # noqa: PLC0415

    platform = Platform(load_settings())
    runner = JobRunner(platform.settings, catalog=platform.catalog)
    statuses = runner.status([table] if table else None)
    recent = runner.store.runs(statuses[0].table, limit=runs) if table else []
    if as_json:
        doc: dict[str, object] = {"tables": [s.as_dict() for s in statuses]}
        if table:
            doc["runs"] = [r.as_dict() for r in recent]
        typer.echo(json.dumps(doc, indent=1))
        return
    rows = []
    for st in statuses:
        last = st.last_run
        rows.append(
            [
                st.table,
                str(st.applied_files),
                st.error or str(len(st.pending)),
                last.finished_at.strftime("%Y-%m-%d %H:%M:%S") if last else "-",
                last.trigger if last else "-",
                (last.status if last.ok else f"failed: {last.error}") if last else "-",
                str(last.files) if last else "-",
            ]
        )
    headers = ["table", "applied files", "pending files", "last run (UTC)", "trigger", "status", "files"]
    Console().print(_rich_table(headers, rows))
    if recent:
        _print_runs(recent, as_json=False)


@jobs_app.command("trigger-worker")
def jobs_trigger_worker(
    once: Annotated[bool, typer.Option("--once", help="Consume what is stored now, then exit.")] = False,
    max_files: Annotated[int, typer.Option(help="Objects of one table that start its job at once.")] = 100,
    max_wait: Annotated[float, typer.Option(help="Seconds an object waits for more of its table.")] = 5.0,
    watch_interval: Annotated[
        float, typer.Option(help="Seconds between scans for raw files nobody announced (0: never).")
    ] = 60.0,
) -> None:
    """Run curate jobs on object-created events of the raw zone (the S3 event → Lambda → Glue path)."""
    import asyncio  # noqa: PLC0415

    from abasto.lake.jobs import JobRunner, TriggerWorker, announce_unseen, lake_streams  # noqa: PLC0415

    platform = Platform(load_settings())
    runner = JobRunner(platform.settings, catalog=platform.catalog)

    async def main() -> None:
        async with platform.event_stream() as stream:
            await stream.ensure_streams(lake_streams())
            worker = TriggerWorker(stream, runner, max_files=max_files, max_wait_s=max_wait)
            if once:
                if watch_interval > 0:
                    await announce_unseen(stream, runner)
                _print_runs(await worker.run_once(), as_json=False)
                typer.echo(json.dumps(worker.stats.as_dict()))
                return
            stop = asyncio.Event()
            try:
                await worker.run_forever(stop, watch_interval_s=watch_interval or None)
            finally:
                stop.set()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        typer.echo("trigger worker stopped")


def _print_runs(runs: list[JobRun], *, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps([r.as_dict() for r in runs], indent=1))
    else:
        rows = [
            [
                r.table,
                r.trigger,
                r.status if r.ok else f"failed: {r.error}",
                str(r.files),
                str(r.rows_in),
                str(r.rows_upserted),
                str(r.rows_deleted),
                str(r.snapshot_id or "-"),
                _quarantined(r),
                f"{r.duration_s:.2f}",
            ]
            for r in runs
        ]
        headers = [
            "table",
            "trigger",
            "status",
            "files",
            "rows in",
            "upserted",
            "deleted",
            "snapshot",
            "quarantined",
            "seconds",
        ]
        Console().print(_rich_table(headers, rows))
    if any(not r.ok for r in runs):
        raise typer.Exit(1)


def _quarantined(run: JobRun) -> str:
    """Rows the run sent to quarantine ("-" for a job without quality checks)."""
    quality = run.detail.get("quality")
    return str(quality.get("rows_quarantined", "-")) if isinstance(quality, dict) else "-"


def _rich_table(headers: list[str], rows: list[list[str]]) -> RichTable:
    """A table whose names and ids are never elided (other columns wrap instead)."""
    view = RichTable()
    for i, header in enumerate(headers):
        widest = max([len(header), *(len(row[i]) for row in rows)])
        view.add_column(header, min_width=min(widest, 40), overflow="fold")
    for row in rows:
        view.add_row(*row)
    return view


def _print_table(result: pa.Table, limit: int) -> None:
    rows = [["" if v is None else str(v) for v in row.values()] for row in result.slice(0, limit).to_pylist()]
    console = Console()
    console.print(_rich_table(result.column_names, rows))
    if result.num_rows > limit:
        console.print(f"({result.num_rows} rows, {limit} shown; use --limit or --format csv)")
