"""CLI commands: lake and SQL (``abasto sql``, ``abasto tables``, ``abasto jobs run``)."""

from __future__ import annotations

import io
import json
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
) -> None:
    """Merge pending raw change files into the curated Iceberg tables."""
    from abasto.lake import run_curate_jobs  # noqa: PLC0415

    platform = Platform(load_settings())
    results = run_curate_jobs(platform.settings, [table] if table else None, catalog=platform.catalog)
    rows = [
        [
            r.table,
            str(r.files),
            str(r.rows_in),
            str(r.rows_upserted),
            str(r.rows_deleted),
            str(r.snapshot_id or "-"),
            f"{r.duration_s:.2f}",
        ]
        for r in results
    ]
    headers = ["table", "files", "rows in", "upserted", "deleted", "snapshot", "seconds"]
    Console().print(_rich_table(headers, rows))


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
